#include <stdio.h>
int counter = 7;
const char *names[] = {"zero", "one", "two"};
static int *ptr_to_counter = &counter;
static int next(void) { static int calls = 100; return ++calls; }
int main(void) {
  for (int i = 0; i < 3; i++) *ptr_to_counter += next();
  printf("counter=%d name=%s next=%d\n", counter, names[counter % 3], next());
  return counter % 100;
}
