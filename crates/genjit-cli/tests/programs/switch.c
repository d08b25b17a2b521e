#include <stdio.h>
static int classify(int x) {
  switch (x) {
  case 0: return 11; case 1: return 23; case 2: return 37; case 3: return 41; case 4: return 53;
  case 5: return 67; case 6: return 71; case 7: return 89; case 8: return 97; case 9: return 101;
  case 10: return 7; case 11: return 3; default: return -1;
  }
}
static const char *word(int x) {
  switch (x) { case 0: return "zero"; case 1: return "one"; case 2: return "two"; case 3: return "three";
  case 4: return "four"; case 5: return "five"; case 6: return "six"; default: return "many"; }
}
int main(void) {
  int sum = 0;
  for (int i = -2; i < 14; i++) sum = sum * 3 + classify(i);
  printf("sum=%d %s %s %s\n", sum, word(2), word(6), word(9));
  return sum & 0x7f;
}
