#include <stdio.h>
#include <stdlib.h>
static int asc(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }
static int desc(const void *a, const void *b) { return *(const int *)b - *(const int *)a; }
static int sq(int x) { return x * x; }
static int neg(int x) { return -x; }
static int (*const table[])(int) = {sq, neg, sq};
int main(void) {
  int v[] = {5, 3, 9, 1, 7, 2, 8};
  int (*cmps[])(const void *, const void *) = {asc, desc};
  for (int k = 0; k < 2; k++) {
    qsort(v, 7, sizeof v[0], cmps[k]);
    for (int i = 0; i < 7; i++) printf("%d ", v[i]);
    printf("\n");
  }
  int r = 0;
  for (int i = 0; i < 3; i++) r += table[i](i + 2);
  printf("r=%d\n", r);
  return r;
}
