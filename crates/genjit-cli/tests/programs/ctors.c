#include <stdio.h>
static int order[4], n;
__attribute__((constructor(200))) static void second(void) { order[n++] = 2; }
__attribute__((constructor(101))) static void first(void) { order[n++] = 1; }
__attribute__((constructor)) static void last(void) { order[n++] = 3; }
__attribute__((destructor)) static void bye(void) { printf("destructor ran after main\n"); }
int main(void) { printf("ctor order: %d %d %d (n=%d)\n", order[0], order[1], order[2], n); return n; }
