; ModuleID = 'int128.c'
source_filename = "int128.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [22 x i8] c"q=%lld r=%lld u=%llu\0A\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca i128, align 16
  %3 = alloca i128, align 16
  %4 = alloca i128, align 16
  %5 = alloca i128, align 16
  %6 = alloca i128, align 16
  store i32 0, ptr %1, align 4
  store volatile i128 123456789876543201086419746, ptr %2, align 16
  store volatile i128 998244353, ptr %3, align 16
  %7 = load volatile i128, ptr %2, align 16
  %8 = load volatile i128, ptr %3, align 16
  %9 = sdiv i128 %7, %8
  store i128 %9, ptr %4, align 16
  %10 = load volatile i128, ptr %2, align 16
  %11 = load volatile i128, ptr %3, align 16
  %12 = srem i128 %10, %11
  store i128 %12, ptr %5, align 16
  %13 = load volatile i128, ptr %2, align 16
  %14 = mul i128 %13, 3
  %15 = udiv i128 %14, 7
  store i128 %15, ptr %6, align 16
  %16 = load i128, ptr %4, align 16
  %17 = trunc i128 %16 to i64
  %18 = load i128, ptr %5, align 16
  %19 = trunc i128 %18 to i64
  %20 = load i128, ptr %6, align 16
  %21 = lshr i128 %20, 3
  %22 = trunc i128 %21 to i64
  %23 = call i32 (ptr, ...) @printf(ptr noundef @.str, i64 noundef %17, i64 noundef %19, i64 noundef %22)
  %24 = load i128, ptr %5, align 16
  %25 = srem i128 %24, 97
  %26 = trunc i128 %25 to i32
  ret i32 %26
}

declare i32 @printf(ptr noundef, ...) #1

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }

!llvm.module.flags = !{!0, !1, !2, !3}
!llvm.ident = !{!4}

!0 = !{i32 1, !"wchar_size", i32 4}
!1 = !{i32 8, !"PIC Level", i32 2}
!2 = !{i32 7, !"uwtable", i32 2}
!3 = !{i32 7, !"frame-pointer", i32 2}
!4 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
