#include <stdio.h>
struct small { int a; float b; };
struct big { long x[6]; double d; };
struct pair { long lo, hi; };
static struct small mk(int a, float b) { struct small s = {a, b}; return s; }
static struct big scale(struct big b, long k) { for (int i = 0; i < 6; i++) b.x[i] *= k; b.d *= k; return b; }
static struct pair swap(struct pair p) { struct pair q = {p.hi, p.lo}; return q; }
int main(void) {
  struct small s = mk(4, 2.5f);
  struct big b = {{1, 2, 3, 4, 5, 6}, 0.5};
  b = scale(b, 3);
  struct pair p = swap((struct pair){10, 20});
  printf("%d %.2f %ld %ld %.2f %ld %ld\n", s.a, s.b, b.x[0], b.x[5], b.d, p.lo, p.hi);
  return (int)(b.x[5] + p.lo);
}
