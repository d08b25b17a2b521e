; ModuleID = 'strings.c'
source_filename = "strings.c"
target datalayout = "e-m:e-p270:32:32-p271:32:32-p272:64:64-i64:64-i128:128-f80:128-n8:16:32:64-S128"
target triple = "x86_64-pc-linux-gnu"

@.str = private unnamed_addr constant [6 x i8] c"alpha\00", align 1
@.str.1 = private unnamed_addr constant [5 x i8] c"beta\00", align 1
@.str.2 = private unnamed_addr constant [6 x i8] c"gamma\00", align 1
@__const.main.words = private unnamed_addr constant [3 x ptr] [ptr @.str, ptr @.str.1, ptr @.str.2], align 16
@.str.3 = private unnamed_addr constant [9 x i8] c"%s-%s-%s\00", align 1
@.str.4 = private unnamed_addr constant [26 x i8] c"%s len=%zu cmp=%d chr=%s\0A\00", align 1
@stderr = external global ptr, align 8
@.str.5 = private unnamed_addr constant [11 x i8] c"to stderr\0A\00", align 1
@.str.6 = private unnamed_addr constant [5 x i8] c"done\00", align 1

; Function Attrs: noinline nounwind optnone uwtable
define i32 @main() #0 {
  %1 = alloca i32, align 4
  %2 = alloca [64 x i8], align 16
  %3 = alloca [3 x ptr], align 16
  %4 = alloca ptr, align 8
  store i32 0, ptr %1, align 4
  call void @llvm.memcpy.p0.p0.i64(ptr align 16 %3, ptr align 16 @__const.main.words, i64 24, i1 false)
  %5 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  %6 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 0
  %7 = load ptr, ptr %6, align 16
  %8 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 1
  %9 = load ptr, ptr %8, align 8
  %10 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 2
  %11 = load ptr, ptr %10, align 16
  %12 = call i32 (ptr, i64, ptr, ...) @snprintf(ptr noundef %5, i64 noundef 64, ptr noundef @.str.3, ptr noundef %7, ptr noundef %9, ptr noundef %11) #5
  %13 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  store ptr %13, ptr %4, align 8
  br label %14

14:                                               ; preds = %25, %0
  %15 = load ptr, ptr %4, align 8
  %16 = load i8, ptr %15, align 1
  %17 = icmp ne i8 %16, 0
  br i1 %17, label %18, label %28

18:                                               ; preds = %14
  %19 = load ptr, ptr %4, align 8
  %20 = load i8, ptr %19, align 1
  %21 = zext i8 %20 to i32
  %22 = call i32 @toupper(i32 noundef %21) #6
  %23 = trunc i32 %22 to i8
  %24 = load ptr, ptr %4, align 8
  store i8 %23, ptr %24, align 1
  br label %25

25:                                               ; preds = %18
  %26 = load ptr, ptr %4, align 8
  %27 = getelementptr inbounds i8, ptr %26, i32 1
  store ptr %27, ptr %4, align 8
  br label %14, !llvm.loop !5

28:                                               ; preds = %14
  %29 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  %30 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  %31 = call i64 @strlen(ptr noundef %30) #6
  %32 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 0
  %33 = load ptr, ptr %32, align 16
  %34 = getelementptr inbounds [3 x ptr], ptr %3, i64 0, i64 1
  %35 = load ptr, ptr %34, align 8
  %36 = call i32 @strcmp(ptr noundef %33, ptr noundef %35) #6
  %37 = icmp slt i32 %36, 0
  %38 = zext i1 %37 to i32
  %39 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  %40 = call ptr @strchr(ptr noundef %39, i32 noundef 71) #6
  %41 = call i32 (ptr, ...) @printf(ptr noundef @.str.4, ptr noundef %29, i64 noundef %31, i32 noundef %38, ptr noundef %40)
  %42 = load ptr, ptr @stderr, align 8
  %43 = call i32 (ptr, ptr, ...) @fprintf(ptr noundef %42, ptr noundef @.str.5) #5
  %44 = call i32 @puts(ptr noundef @.str.6)
  %45 = getelementptr inbounds [64 x i8], ptr %2, i64 0, i64 0
  %46 = call i64 @strlen(ptr noundef %45) #6
  %47 = trunc i64 %46 to i32
  ret i32 %47
}

; Function Attrs: nocallback nofree nounwind willreturn memory(argmem: readwrite)
declare void @llvm.memcpy.p0.p0.i64(ptr noalias nocapture writeonly, ptr noalias nocapture readonly, i64, i1 immarg) #1

; Function Attrs: nounwind
declare i32 @snprintf(ptr noundef, i64 noundef, ptr noundef, ...) #2

; Function Attrs: nounwind willreturn memory(read)
declare i32 @toupper(i32 noundef) #3

declare i32 @printf(ptr noundef, ...) #4

; Function Attrs: nounwind willreturn memory(read)
declare i64 @strlen(ptr noundef) #3

; Function Attrs: nounwind willreturn memory(read)
declare i32 @strcmp(ptr noundef, ptr noundef) #3

; Function Attrs: nounwind willreturn memory(read)
declare ptr @strchr(ptr noundef, i32 noundef) #3

; Function Attrs: nounwind
declare i32 @fprintf(ptr noundef, ptr noundef, ...) #2

declare i32 @puts(ptr noundef) #4

attributes #0 = { noinline nounwind optnone uwtable "frame-pointer"="all" "min-legal-vector-width"="0" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #1 = { nocallback nofree nounwind willreturn memory(argmem: readwrite) }
attributes #2 = { nounwind "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #3 = { nounwind willreturn memory(read) "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #4 = { "frame-pointer"="all" "no-trapping-math"="true" "stack-protector-buffer-size"="8" "target-cpu"="x86-64" "target-features"="+cmov,+cx8,+fxsr,+mmx,+sse,+sse2,+x87" "tune-cpu"="generic" }
attributes #5 = { nounwind }
attributes #6 = { nounwind willreturn memory(read) }

!llvm.module.flags = !{!0, !1, !2, !3}
!llvm.ident = !{!4}

!0 = !{i32 1, !"wchar_size", i32 4}
!1 = !{i32 8, !"PIC Level", i32 2}
!2 = !{i32 7, !"uwtable", i32 2}
!3 = !{i32 7, !"frame-pointer", i32 2}
!4 = !{!"Debian clang version 19.1.7 (3~deb12u1)"}
!5 = distinct !{!5, !6}
!6 = !{!"llvm.loop.mustprogress"}
