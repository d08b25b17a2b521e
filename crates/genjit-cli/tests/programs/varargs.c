#include <stdio.h>
#include <stdarg.h>
static double mean(int n, ...) {
  va_list ap; va_start(ap, n); double s = 0;
  for (int i = 0; i < n; i++) s += va_arg(ap, double);
  va_end(ap); return s / n;
}
static void logf_(const char *fmt, ...) { va_list ap; va_start(ap, fmt); vprintf(fmt, ap); va_end(ap); }
int main(void) { logf_("mean=%.3f %s %d\n", mean(4, 1.0, 2.0, 3.5, 4.25), "x", 42); return 3; }
