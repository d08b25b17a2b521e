#include <stdio.h>
#include <string.h>
#include <ctype.h>
int main(void) {
  char buf[64];
  const char *words[] = {"alpha", "beta", "gamma"};
  snprintf(buf, sizeof buf, "%s-%s-%s", words[0], words[1], words[2]);
  for (char *p = buf; *p; p++) *p = (char)toupper((unsigned char)*p);
  printf("%s len=%zu cmp=%d chr=%s\n", buf, strlen(buf), strcmp(words[0], words[1]) < 0, strchr(buf, 'G'));
  fprintf(stderr, "to stderr\n");
  puts("done");
  return (int)strlen(buf);
}
