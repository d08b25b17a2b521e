#include <stdio.h>
static int interp(const unsigned char *code) {
  static void *ops[] = {&&push1, &&add, &&dup, &&halt};
  int stack[16], sp = 0;
  goto *ops[*code++];
push1: stack[sp++] = 1; goto *ops[*code++];
add: sp--; stack[sp - 1] += stack[sp]; goto *ops[*code++];
dup: stack[sp] = stack[sp - 1]; sp++; goto *ops[*code++];
halt: return stack[sp - 1];
}
int main(void) {
  unsigned char prog[] = {0, 2, 1, 2, 1, 2, 1, 0, 1, 3};
  int r = interp(prog);
  printf("interp=%d\n", r);
  return r;
}
