#include <stdio.h>
#include <math.h>
static double poly(double x) { return 3.25 * x * x - 1.0e-3 * x + 2.718281828459045; }
int main(void) {
  float f = 1.5f;
  double acc = 0;
  for (int i = 0; i < 10; i++) { acc += poly(i * 0.5) / (1.0 + f); f *= 1.125f; }
  printf("acc=%.9f f=%.6f sqrt=%.12f sin=%.12f pow=%.6f\n", acc, f, sqrt(acc), sin(acc), pow(2.0, 0.5));
  return (int)acc % 100;
}
