; ModuleID = 'switch.c'
source_filename = "switch.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [17 x i8] c"sum=%d %s %s %s\0A\00", align 1
@.str.1 = private unnamed_addr constant [5 x i8] c"zero\00", align 1
@.str.2 = private unnamed_addr constant [4 x i8] c"one\00", align 1
@.str.3 = private unnamed_addr constant [4 x i8] c"two\00", align 1
@.str.4 = private unnamed_addr constant [6 x i8] c"three\00", align 1
@.str.5 = private unnamed_addr constant [5 x i8] c"four\00", align 1
@.str.6 = private unnamed_addr constant [5 x i8] c"five\00", align 1
@.str.7 = private unnamed_addr constant [4 x i8] c"six\00", align 1
@.str.8 = private unnamed_addr constant [5 x i8] c"many\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca i32, align 4
  %3 = alloca i32, align 4
  store i32 0, ptr %1, align 4
  store i32 0, ptr %2, align 4
  store i32 -2, ptr %3, align 4
  br label %4

4:                                                ; preds = %13, %0
  %5 = load i32, ptr %3, align 4
  %6 = icmp slt i32 %5, 14
  br i1 %6, label %7, label %16

7:                                                ; preds = %4
  %8 = load i32, ptr %2, align 4
  %9 = mul nsw i32 %8, 3
  %10 = load i32, ptr %3, align 4
  %11 = call i32 @classify(i32 noundef %10)
  %12 = add nsw i32 %9, %11
  store i32 %12, ptr %2, align 4
  br label %13

13:                                               ; preds = %7
  %14 = load i32, ptr %3, align 4
  %15 = add nsw i32 %14, 1
  store i32 %15, ptr %3, align 4
  br label %4, !llvm.loop !5

16:                                               ; preds = %4
  %17 = load i32, ptr %2, align 4
  %18 = call ptr @word(i32 noundef 2)
  %19 = call ptr @word(i32 noundef 6)
  %20 = call ptr @word(i32 noundef 9)
  %21 = call i32 (ptr, ...) @printf(ptr noundef @.str, i32 noundef %17, ptr noundef %18, ptr noundef %19, ptr noundef %20)
  %22 = load i32, ptr %2, align 4
  %23 = and i32 %22, 127
  ret i32 %23
}

; Function Attrs: noinline nounwind optnone uwtable
define internal i32 @classify(i32 noundef %0) #0 {
  %2 = alloca i32, align 4
  %3 = alloca i32, align 4
  store i32 %0, ptr %3, align 4
  %4 = load i32, ptr %3, align 4
  switch i32 %4, label %17 [
    i32 0, label %5
    i32 1, label %6
    i32 2, label %7
    i32 3, label %8
    i32 4, label %9
    i32 5, label %10
    i32 6, label %11
    i32 7, label %12
    i32 8, label %13
    i32 9, label %14
    i32 10, label %15
    i32 11, label %16
  ]

5:                                                ; preds = %1
  store i32 11, ptr %2, align 4
  br label %18

6:                                                ; preds = %1
  store i32 23, ptr %2, align 4
  br label %18

7:                                                ; preds = %1
  store i32 37, ptr %2, align 4
  br label %18

8:                                                ; preds = %1
  store i32 41, ptr %2, align 4
  br label %18

9:                                                ; preds = %1
  store i32 53, ptr %2, align 4
  br label %18

10:                                               ; preds = %1
  store i32 67, ptr %2, align 4
  br label %18

11:                                               ; preds = %1
  store i32 71, ptr %2, align 4
  br label %18

12:                                               ; preds = %1
  store i32 89, ptr %2, align 4
  br label %18

13:                                               ; preds = %1
  store i32 97, ptr %2, align 4
  br label %18

14:                                               ; preds = %1
  store i32 101, ptr %2, align 4
  br label %18

15:                                               ; preds = %1
  store i32 7, ptr %2, align 4
  br label %18

16:                                               ; preds = %1
  store i32 3, ptr %2, align 4
  br label %18

17:                                               ; preds = %1
  store i32 -1, ptr %2, align 4
  br label %18

18:                                               ; preds = %17, %16, %15, %14, %13, %12, %11, %10, %9, %8, %7, %6, %5
  %19 = load i32, ptr %2, align 4
  ret i32 %19
}

declare i32 @printf(ptr noundef, ...) #1

; Function Attrs: noinline nounwind optnone uwtable
define internal ptr @word(i32 noundef %0) #0 {
  %2 = alloca ptr, align 8
  %3 = alloca i32, align 4
  store i32 %0, ptr %3, align 4
  %4 = load i32, ptr %3, align 4
  switch i32 %4, label %12 [
    i32 0, label %5
    i32 1, label %6
    i32 2, label %7
    i32 3, label %8
    i32 4, label %9
    i32 5, label %10
    i32 6, label %11
  ]

5:                                                ; preds = %1
  store ptr @.str.1, ptr %2, align 8
  br label %13

6:                                                ; preds = %1
  store ptr @.str.2, ptr %2, align 8
  br label %13

7:                                                ; preds = %1
  store ptr @.str.3, ptr %2, align 8
  br label %13

8:                                                ; preds = %1
  store ptr @.str.4, ptr %2, align 8
  br label %13

9:                                                ; preds = %1
  store ptr @.str.5, ptr %2, align 8
  br label %13

10:                                               ; preds = %1
  store ptr @.str.6, ptr %2, align 8
  br label %13

11:                                               ; preds = %1
  store ptr @.str.7, ptr %2, align 8
  br label %13

12:                                               ; preds = %1
  store ptr @.str.8, ptr %2, align 8
  br label %13

13:                                               ; preds = %12, %11, %10, %9, %8, %7, %6, %5
  %14 = load ptr, ptr %2, align 8
  ret ptr %14
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
!5 = distinct !{!5, !6}
!6 = !{!"llvm.loop.mustprogress"}
