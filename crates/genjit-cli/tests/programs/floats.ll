; ModuleID = 'floats.c'
source_filename = "floats.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [47 x i8] c"acc=%.9f f=%.6f sqrt=%.12f sin=%.12f pow=%.6f\0A\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca float, align 4
  %3 = alloca double, align 8
  %4 = alloca i32, align 4
  store i32 0, ptr %1, align 4
  store float 1.500000e+00, ptr %2, align 4
  store double 0.000000e+00, ptr %3, align 8
  store i32 0, ptr %4, align 4
  br label %5

5:                                                ; preds = %21, %0
  %6 = load i32, ptr %4, align 4
  %7 = icmp slt i32 %6, 10
  br i1 %7, label %8, label %24

8:                                                ; preds = %5
  %9 = load i32, ptr %4, align 4
  %10 = sitofp i32 %9 to double
  %11 = fmul double %10, 5.000000e-01
  %12 = call double @poly(double noundef %11)
  %13 = load float, ptr %2, align 4
  %14 = fpext float %13 to double
  %15 = fadd double 1.000000e+00, %14
  %16 = fdiv double %12, %15
  %17 = load double, ptr %3, align 8
  %18 = fadd double %17, %16
  store double %18, ptr %3, align 8
  %19 = load float, ptr %2, align 4
  %20 = fmul float %19, 1.125000e+00
  store float %20, ptr %2, align 4
  br label %21

21:                                               ; preds = %8
  %22 = load i32, ptr %4, align 4
  %23 = add nsw i32 %22, 1
  store i32 %23, ptr %4, align 4
  br label %5, !llvm.loop !5

24:                                               ; preds = %5
  %25 = load double, ptr %3, align 8
  %26 = load float, ptr %2, align 4
  %27 = fpext float %26 to double
  %28 = load double, ptr %3, align 8
  %29 = call double @sqrt(double noundef %28) #4
  %30 = load double, ptr %3, align 8
  %31 = call double @sin(double noundef %30) #4
  %32 = call double @pow(double noundef 2.000000e+00, double noundef 5.000000e-01) #4
  %33 = call i32 (ptr, ...) @printf(ptr noundef @.str, double noundef %25, double noundef %27, double noundef %29, double noundef %31, double noundef %32)
  %34 = load double, ptr %3, align 8
  %35 = fptosi double %34 to i32
  %36 = srem i32 %35, 100
  ret i32 %36
}

; Function Attrs: noinline nounwind optnone uwtable
define internal double @poly(double noundef %0) #0 {
  %2 = alloca double, align 8
  store double %0, ptr %2, align 8
  %3 = load double, ptr %2, align 8
  %4 = fmul double 3.250000e+00, %3
  %5 = load double, ptr %2, align 8
  %6 = load double, ptr %2, align 8
  %7 = fmul double 1.000000e-03, %6
  %8 = fneg double %7
  %9 = call double @llvm.fmuladd.f64(double %4, double %5, double %8)
  %10 = fadd double %9, 0x4005BF0A8B145769
  ret double %10
}

declare i32 @printf(ptr noundef, ...) #1

; Function Attrs: nounwind
declare double @sqrt(double noundef) #2

; Function Attrs: nounwind
declare double @sin(double noundef) #2

; Function Attrs: nounwind
declare double @pow(double noundef, double noundef) #2

; Function Attrs: nocallback nofree nosync nounwind speculatable willreturn memory(none)
declare double @llvm.fmuladd.f64(double, double, double) #3

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #2 = { nounwind "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
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
