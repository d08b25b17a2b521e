#include <stdio.h>
static long ack(long m, long n) { return m == 0 ? n + 1 : n == 0 ? ack(m - 1, 1) : ack(m - 1, ack(m, n - 1)); }
static int even(int n);
static int odd(int n) { return n == 0 ? 0 : even(n - 1); }
static int even(int n) { return n == 0 ? 1 : odd(n - 1); }
int main(void) { printf("ack(2,3)=%ld ack(3,3)=%ld even(101)=%d\n", ack(2, 3), ack(3, 3), even(101)); return (int)ack(2, 2); }
