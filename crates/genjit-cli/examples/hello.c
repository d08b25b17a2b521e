#include <stdio.h>
#include <stdlib.h>
static int fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }
int main(int argc, char **argv) {
  int n = argc > 1 ? atoi(argv[1]) : 20;
  printf("hello from genjit: fib(%d) = %d\n", n, fib(n));
  return fib(n) % 256 == 109 ? 0 : 1;
}
