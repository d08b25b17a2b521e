#include <stdio.h>
static char big_bss[96 << 20];
static int big_data[300000] = {1, 2, 3, [299999] = 42};
int main(void) {
  for (long i = 0; i < (long)sizeof big_bss; i += 4096) big_bss[i] = (char)(i >> 12);
  long sum = 0;
  for (long i = 0; i < (long)sizeof big_bss; i += 4096) sum += big_bss[i];
  printf("bss sum=%ld data=%d %d\n", sum, big_data[2], big_data[299999]);
  return big_data[299999];
}
