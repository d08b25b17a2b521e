; ModuleID = 'structs.c'
source_filename = "structs.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

%struct.big = type { [6 x i64], double }
%struct.small = type { i32, float }
%struct.pair = type { i64, i64 }

@__const.main.b = private unnamed_addr constant %struct.big { [6 x i64] [i64 1, i64 2, i64 3, i64 4, i64 5, i64 6], double 5.000000e-01 }, align 8
@.str = private unnamed_addr constant [30 x i8] c"%d %.2f %ld %ld %.2f %ld %ld\0A\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca %struct.small, align 4
  %3 = alloca %struct.big, align 8
  %4 = alloca %struct.big, align 8
  %5 = alloca %struct.pair, align 8
  %6 = alloca %struct.pair, align 8
  store i32 0, ptr %1, align 4
  %7 = call i64 @mk(i32 noundef 4, float noundef 2.500000e+00)
  store i64 %7, ptr %2, align 4
  call void @llvm.memcpy.p0.p0.i64(ptr align 8 %3, ptr align 8 @__const.main.b, i64 56, i1 false)
  call void @scale(ptr dead_on_unwind writable sret(%struct.big) align 8 %4, ptr noundef byval(%struct.big) align 8 %3, i64 noundef 3)
  call void @llvm.memcpy.p0.p0.i64(ptr align 8 %3, ptr align 8 %4, i64 56, i1 false)
  %8 = getelementptr inbounds %struct.pair, ptr %6, i32 0, i32 0
  store i64 10, ptr %8, align 8
  %9 = getelementptr inbounds %struct.pair, ptr %6, i32 0, i32 1
  store i64 20, ptr %9, align 8
  %10 = getelementptr inbounds { i64, i64 }, ptr %6, i32 0, i32 0
  %11 = load i64, ptr %10, align 8
  %12 = getelementptr inbounds { i64, i64 }, ptr %6, i32 0, i32 1
  %13 = load i64, ptr %12, align 8
  %14 = call { i64, i64 } @swap(i64 %11, i64 %13)
  %15 = getelementptr inbounds { i64, i64 }, ptr %5, i32 0, i32 0
  %16 = extractvalue { i64, i64 } %14, 0
  store i64 %16, ptr %15, align 8
  %17 = getelementptr inbounds { i64, i64 }, ptr %5, i32 0, i32 1
  %18 = extractvalue { i64, i64 } %14, 1
  store i64 %18, ptr %17, align 8
  %19 = getelementptr inbounds %struct.small, ptr %2, i32 0, i32 0
  %20 = load i32, ptr %19, align 4
  %21 = getelementptr inbounds %struct.small, ptr %2, i32 0, i32 1
  %22 = load float, ptr %21, align 4
  %23 = fpext float %22 to double
  %24 = getelementptr inbounds %struct.big, ptr %3, i32 0, i32 0
  %25 = getelementptr inbounds [6 x i64], ptr %24, i64 0, i64 0
  %26 = load i64, ptr %25, align 8
  %27 = getelementptr inbounds %struct.big, ptr %3, i32 0, i32 0
  %28 = getelementptr inbounds [6 x i64], ptr %27, i64 0, i64 5
  %29 = load i64, ptr %28, align 8
  %30 = getelementptr inbounds %struct.big, ptr %3, i32 0, i32 1
  %31 = load double, ptr %30, align 8
  %32 = getelementptr inbounds %struct.pair, ptr %5, i32 0, i32 0
  %33 = load i64, ptr %32, align 8
  %34 = getelementptr inbounds %struct.pair, ptr %5, i32 0, i32 1
  %35 = load i64, ptr %34, align 8
  %36 = call i32 (ptr, ...) @printf(ptr noundef @.str, i32 noundef %20, double noundef %23, i64 noundef %26, i64 noundef %29, double noundef %31, i64 noundef %33, i64 noundef %35)
  %37 = getelementptr inbounds %struct.big, ptr %3, i32 0, i32 0
  %38 = getelementptr inbounds [6 x i64], ptr %37, i64 0, i64 5
  %39 = load i64, ptr %38, align 8
  %40 = getelementptr inbounds %struct.pair, ptr %5, i32 0, i32 0
  %41 = load i64, ptr %40, align 8
  %42 = add nsw i64 %39, %41
  %43 = trunc i64 %42 to i32
  ret i32 %43
}

; Function Attrs: noinline nounwind optnone uwtable
define internal i64 @mk(i32 noundef %0, float noundef %1) #0 {
  %3 = alloca %struct.small, align 4
  %4 = alloca i32, align 4
  %5 = alloca float, align 4
  store i32 %0, ptr %4, align 4
  store float %1, ptr %5, align 4
  %6 = getelementptr inbounds %struct.small, ptr %3, i32 0, i32 0
  %7 = load i32, ptr %4, align 4
  store i32 %7, ptr %6, align 4
  %8 = getelementptr inbounds %struct.small, ptr %3, i32 0, i32 1
  %9 = load float, ptr %5, align 4
  store float %9, ptr %8, align 4
  %10 = load i64, ptr %3, align 4
  ret i64 %10
}

; Function Attrs: nocallback nofree nounwind willreturn memory(argmem: readwrite)
declare void @llvm.memcpy.p0.p0.i64(ptr noalias nocapture writeonly, ptr noalias nocapture readonly, i64, i1 immarg) #1

; Function Attrs: noinline nounwind optnone uwtable
define internal void @scale(ptr dead_on_unwind noalias writable sret(%struct.big) align 8 %0, ptr noundef byval(%struct.big) align 8 %1, i64 noundef %2) #0 {
  %4 = alloca i64, align 8
  %5 = alloca i32, align 4
  store i64 %2, ptr %4, align 8
  store i32 0, ptr %5, align 4
  br label %6

6:                                                ; preds = %17, %3
  %7 = load i32, ptr %5, align 4
  %8 = icmp slt i32 %7, 6
  br i1 %8, label %9, label %20

9:                                                ; preds = %6
  %10 = load i64, ptr %4, align 8
  %11 = getelementptr inbounds %struct.big, ptr %1, i32 0, i32 0
  %12 = load i32, ptr %5, align 4
  %13 = sext i32 %12 to i64
  %14 = getelementptr inbounds [6 x i64], ptr %11, i64 0, i64 %13
  %15 = load i64, ptr %14, align 8
  %16 = mul nsw i64 %15, %10
  store i64 %16, ptr %14, align 8
  br label %17

17:                                               ; preds = %9
  %18 = load i32, ptr %5, align 4
  %19 = add nsw i32 %18, 1
  store i32 %19, ptr %5, align 4
  br label %6, !llvm.loop !5

20:                                               ; preds = %6
  %21 = load i64, ptr %4, align 8
  %22 = sitofp i64 %21 to double
  %23 = getelementptr inbounds %struct.big, ptr %1, i32 0, i32 1
  %24 = load double, ptr %23, align 8
  %25 = fmul double %24, %22
  store double %25, ptr %23, align 8
  call void @llvm.memcpy.p0.p0.i64(ptr align 8 %0, ptr align 8 %1, i64 56, i1 false)
  ret void
}

; Function Attrs: noinline nounwind optnone uwtable
define internal { i64, i64 } @swap(i64 %0, i64 %1) #0 {
  %3 = alloca %struct.pair, align 8
  %4 = alloca %struct.pair, align 8
  %5 = getelementptr inbounds { i64, i64 }, ptr %4, i32 0, i32 0
  store i64 %0, ptr %5, align 8
  %6 = getelementptr inbounds { i64, i64 }, ptr %4, i32 0, i32 1
  store i64 %1, ptr %6, align 8
  %7 = getelementptr inbounds %struct.pair, ptr %3, i32 0, i32 0
  %8 = getelementptr inbounds %struct.pair, ptr %4, i32 0, i32 1
  %9 = load i64, ptr %8, align 8
  store i64 %9, ptr %7, align 8
  %10 = getelementptr inbounds %struct.pair, ptr %3, i32 0, i32 1
  %11 = getelementptr inbounds %struct.pair, ptr %4, i32 0, i32 0
  %12 = load i64, ptr %11, align 8
  store i64 %12, ptr %10, align 8
  %13 = load { i64, i64 }, ptr %3, align 8
  ret { i64, i64 } %13
}

declare i32 @printf(ptr noundef, ...) #2

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { nocallback nofree nounwind willreturn memory(argmem: readwrite) }
attributes #2 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }

!llvm.module.flags = !{!0, !1, !2, !3}
!llvm.ident = !{!4}

!0 = !{i32 1, !"wchar_size", i32 4}
!1 = !{i32 8, !"PIC Level", i32 2}
!2 = !{i32 7, !"uwtable", i32 2}
!3 = !{i32 7, !"frame-pointer", i32 2}
!4 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
!5 = distinct !{!5, !6}
!6 = !{!"llvm.loop.mustprogress"}
