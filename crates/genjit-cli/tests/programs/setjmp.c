#include <stdio.h>
#include <setjmp.h>
static jmp_buf env;
static int depth(int n) { if (n == 5) longjmp(env, n * 10); return depth(n + 1) + 1; }
int main(void) {
  volatile int tries = 0;
  int v = setjmp(env);
  tries++;
  if (v == 0) depth(0);
  printf("jumped back with %d after %d tries\n", v, tries);
  return v;
}
