; ModuleID = 'ctors.c'
source_filename = "ctors.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@order = internal global [4 x i32] zeroinitializer, align 16
@n = internal global i32 0, align 4
@.str = private unnamed_addr constant [27 x i8] c"destructor ran after main\0A\00", align 1
@.str.1 = private unnamed_addr constant [29 x i8] c"ctor order: %d %d %d (n=%d)\0A\00", align 1
@llvm.global_ctors = appending global [3 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 200, ptr @second, ptr null }, { i32, ptr, ptr } { i32 101, ptr @first, ptr null }, { i32, ptr, ptr } { i32 65535, ptr @last, ptr null }]
@llvm.global_dtors = appending global [1 x { i32, ptr, ptr }] [{ i32, ptr, ptr } { i32 65535, ptr @bye, ptr null }]

; Function Attrs: noinline nounwind optnone uwtable
define internal void @second() #0 {
  %1 = load i32, ptr @n, align 4
  %2 = add nsw i32 %1, 1
  store i32 %2, ptr @n, align 4
  %3 = sext i32 %1 to i64
  %4 = getelementptr inbounds [4 x i32], ptr @order, i64 0, i64 %3
  store i32 2, ptr %4, align 4
  ret void
}

; Function Attrs: noinline nounwind optnone uwtable
define internal void @first() #0 {
  %1 = load i32, ptr @n, align 4
  %2 = add nsw i32 %1, 1
  store i32 %2, ptr @n, align 4
  %3 = sext i32 %1 to i64
  %4 = getelementptr inbounds [4 x i32], ptr @order, i64 0, i64 %3
  store i32 1, ptr %4, align 4
  ret void
}

; Function Attrs: noinline nounwind optnone uwtable
define internal void @last() #0 {
  %1 = load i32, ptr @n, align 4
  %2 = add nsw i32 %1, 1
  store i32 %2, ptr @n, align 4
  %3 = sext i32 %1 to i64
  %4 = getelementptr inbounds [4 x i32], ptr @order, i64 0, i64 %3
  store i32 3, ptr %4, align 4
  ret void
}

; Function Attrs: noinline nounwind optnone uwtable
define internal void @bye() #0 {
  %1 = call i32 (ptr, ...) @printf(ptr noundef @.str)
  ret void
}

declare i32 @printf(ptr noundef, ...) #1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  store i32 0, ptr %1, align 4
  %2 = load i32, ptr @order, align 16
  %3 = load i32, ptr getelementptr inbounds ([4 x i32], ptr @order, i64 0, i64 1), align 4
  %4 = load i32, ptr getelementptr inbounds ([4 x i32], ptr @order, i64 0, i64 2), align 8
  %5 = load i32, ptr @n, align 4
  %6 = call i32 (ptr, ...) @printf(ptr noundef @.str.1, i32 noundef %2, i32 noundef %3, i32 noundef %4, i32 noundef %5)
  %7 = load i32, ptr @n, align 4
  ret i32 %7
}

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }

!llvm.module.flags = !{!0, !1, !2, !3}
!llvm.ident = !{!4}

!0 = !{i32 1, !"wchar_size", i32 4}
!1 = !{i32 8, !"PIC Level", i32 2}
!2 = !{i32 7, !"uwtable", i32 2}
!3 = !{i32 7, !"frame-pointer", i32 2}
!4 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
