; ModuleID = 'tls.c'
source_filename = "tls.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [46 x i8] c"threads: %ld %ld %ld main: counter=%d tag=%s\0A\00", align 1
@counter = internal thread_local global i32 100, align 4
@tag = internal thread_local global [8 x i8] c"main\00\00\00\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca [3 x i64], align 16
  %3 = alloca [3 x ptr], align 16
  %4 = alloca i64, align 8
  %5 = alloca i32, align 4
  store i32 0, ptr %1, align 4
  store i64 0, ptr %4, align 8
  br label %6

6:                                                ; preds = %16, %0
  %7 = load i64, ptr %4, align 8
  %8 = icmp slt i64 %7, 3
  br i1 %8, label %9, label %19

9:                                                ; preds = %6
  %10 = load i64, ptr %4, align 8
  %11 = getelementptr inbounds [3 x i64], ptr %2, i64 0, i64 %10
  %12 = load i64, ptr %4, align 8
  %13 = add nsw i64 %12, 1
  %14 = inttoptr i64 %13 to ptr
  %15 = call i32 @pthread_create(ptr noundef %11, ptr noundef null, ptr noundef @work, ptr noundef %14) #4
  br label %16

16:                                               ; preds = %9
  %17 = load i64, ptr %4, align 8
  %18 = add nsw i64 %17, 1
  store i64 %18, ptr %4, align 8
  br label %6, !llvm.loop !5

19:                                               ; preds = %6
  store i32 0, ptr %5, align 4
  br label %20

20:                                               ; preds = %32, %19
  %21 = load i32, ptr %5, align 4
  %22 = icmp slt i32 %21, 3
  br i1 %22, label %23, label %35

23:                                               ; preds = %20
  %24 = load i32, ptr %5, align 4
  %25 = sext i32 %24 to i64
  %26 = getelementptr inbounds [3 x i64], ptr %2, i64 0, i64 %25
  %27 = load i64, ptr %26, align 8
  %28 = load i32, ptr %5, align 4
  %29 = sext i32 %28 to i64
  %30 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 %29
  %31 = call i32 @pthread_join(i64 noundef %27, ptr noundef %30)
  br label %32

32:                                               ; preds = %23
  %33 = load i32, ptr %5, align 4
  %34 = add nsw i32 %33, 1
  store i32 %34, ptr %5, align 4
  br label %20, !llvm.loop !7

35:                                               ; preds = %20
  %36 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 0
  %37 = load ptr, ptr %36, align 16
  %38 = ptrtoint ptr %37 to i64
  %39 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 1
  %40 = load ptr, ptr %39, align 8
  %41 = ptrtoint ptr %40 to i64
  %42 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 2
  %43 = load ptr, ptr %42, align 16
  %44 = ptrtoint ptr %43 to i64
  %45 = call align 4 ptr @llvm.threadlocal.address.p0(ptr align 4 @counter)
  %46 = load i32, ptr %45, align 4
  %47 = call align 1 ptr @llvm.threadlocal.address.p0(ptr align 1 @tag)
  %48 = getelementptr inbounds [8 x i8], ptr %47, i64 0, i64 0
  %49 = call i32 (ptr, ...) @printf(ptr noundef @.str, i64 noundef %38, i64 noundef %41, i64 noundef %44, i32 noundef %46, ptr noundef %48)
  %50 = call align 4 ptr @llvm.threadlocal.address.p0(ptr align 4 @counter)
  %51 = load i32, ptr %50, align 4
  %52 = sub nsw i32 %51, 100
  ret i32 %52
}

; Function Attrs: nounwind
declare i32 @pthread_create(ptr noundef, ptr noundef, ptr noundef, ptr noundef) #1

; Function Attrs: noinline nounwind optnone uwtable
define internal ptr @work(ptr noundef %0) #0 {
  %2 = alloca ptr, align 8
  %3 = alloca i64, align 8
  %4 = alloca i32, align 4
  store ptr %0, ptr %2, align 8
  %5 = load ptr, ptr %2, align 8
  %6 = ptrtoint ptr %5 to i64
  store i64 %6, ptr %3, align 8
  store i32 0, ptr %4, align 4
  br label %7

7:                                                ; preds = %16, %1
  %8 = load i32, ptr %4, align 4
  %9 = icmp slt i32 %8, 1000
  br i1 %9, label %10, label %19

10:                                               ; preds = %7
  %11 = load i64, ptr %3, align 8
  %12 = trunc i64 %11 to i32
  %13 = call align 4 ptr @llvm.threadlocal.address.p0(ptr align 4 @counter)
  %14 = load i32, ptr %13, align 4
  %15 = add nsw i32 %14, %12
  store i32 %15, ptr %13, align 4
  br label %16

16:                                               ; preds = %10
  %17 = load i32, ptr %4, align 4
  %18 = add nsw i32 %17, 1
  store i32 %18, ptr %4, align 4
  br label %7, !llvm.loop !8

19:                                               ; preds = %7
  %20 = load i64, ptr %3, align 8
  %21 = add nsw i64 97, %20
  %22 = trunc i64 %21 to i8
  %23 = call align 1 ptr @llvm.threadlocal.address.p0(ptr align 1 @tag)
  %24 = getelementptr inbounds [8 x i8], ptr %23, i64 0, i64 0
  store i8 %22, ptr %24, align 1
  %25 = call align 4 ptr @llvm.threadlocal.address.p0(ptr align 4 @counter)
  %26 = load i32, ptr %25, align 4
  %27 = mul nsw i32 %26, 10
  %28 = call align 1 ptr @llvm.threadlocal.address.p0(ptr align 1 @tag)
  %29 = getelementptr inbounds [8 x i8], ptr %28, i64 0, i64 0
  %30 = load i8, ptr %29, align 1
  %31 = sext i8 %30 to i32
  %32 = sub nsw i32 %31, 97
  %33 = add nsw i32 %27, %32
  %34 = sext i32 %33 to i64
  %35 = inttoptr i64 %34 to ptr
  ret ptr %35
}

declare i32 @pthread_join(i64 noundef, ptr noundef) #2

declare i32 @printf(ptr noundef, ...) #2

; Function Attrs: nocallback nofree nosync nounwind speculatable willreturn memory(none)
declare nonnull ptr @llvm.threadlocal.address.p0(ptr nonnull) #3

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { nounwind "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #2 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #3 = { nocallback nofree nosync nounwind speculatable willreturn memory(none) }
attributes #4 = { nounwind }

!llvm.module.flags = !{!0, !1, !2, !3}
!llvm.ident = !{!4}

!0 = !{i32 1, !"wchar_size", i32 4}
!1 = !{i32 8, !"PIC Level", i32 2}
!2 = !{i32 7, !"uwtable", i32 2}
!3 = !{i32 7, !"frame-pointer", i32 2}
!4 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
!5 = distinct !{!5, !6}
!6 = !{!"llvm.loop.mustprogress"}
!7 = distinct !{!7, !6}
!8 = distinct !{!8, !6}
