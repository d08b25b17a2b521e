#include <stdio.h>
int main(void) {
  volatile __int128 a = (__int128)123456789012345678LL * 1000000007LL;
  volatile __int128 b = 998244353;
  __int128 q = a / b, r = a % b;
  unsigned __int128 u = (unsigned __int128)a * 3 / 7;
  printf("q=%lld r=%lld u=%llu\n", (long long)q, (long long)r, (unsigned long long)(u >> 3));
  return (int)(r % 97);
}
