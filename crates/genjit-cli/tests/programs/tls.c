#include <stdio.h>
#include <pthread.h>
static _Thread_local int counter = 100;
static _Thread_local char tag[8] = "main";
static void *work(void *arg) {
  long id = (long)arg;
  for (int i = 0; i < 1000; i++) counter += (int)id;
  tag[0] = (char)('a' + id);
  return (void *)(long)(counter * 10 + (tag[0] - 'a'));
}
int main(void) {
  pthread_t t[3]; void *r[3];
  for (long i = 0; i < 3; i++) pthread_create(&t[i], NULL, work, (void *)(i + 1));
  for (int i = 0; i < 3; i++) pthread_join(t[i], &r[i]);
  printf("threads: %ld %ld %ld main: counter=%d tag=%s\n", (long)r[0], (long)r[1], (long)r[2], counter, tag);
  return counter - 100;
}
