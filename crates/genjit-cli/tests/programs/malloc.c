#include <stdio.h>
#include <stdlib.h>
#include <string.h>
struct node { int v; struct node *next; };
int main(void) {
  struct node *head = NULL;
  for (int i = 0; i < 1000; i++) { struct node *n = malloc(sizeof *n); n->v = i; n->next = head; head = n; }
  long sum = 0; int count = 0;
  while (head) { struct node *n = head; head = n->next; sum += n->v; count++; free(n); }
  char *s = calloc(32, 1); strcpy(s, "heap string"); s = realloc(s, 64); strcat(s, " grown");
  printf("sum=%ld count=%d %s\n", sum, count, s);
  free(s);
  return (int)(sum % 256);
}
