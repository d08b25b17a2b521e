#include <cstdio>
#include <stdexcept>
#include <string>
struct Noisy { const char *name; Noisy(const char *n) : name(n) { std::printf("construct %s\n", n); }
  ~Noisy() { std::printf("destroy %s\n", name); } };
static Noisy global_object("global");
static int thrower(int x) { Noisy local("local"); if (x > 2) throw std::runtime_error("too big: " + std::to_string(x)); return x; }
int main() {
  int caught = 0;
  for (int i = 0; i < 5; i++) {
    try { thrower(i); } catch (const std::exception &e) { std::printf("caught '%s'\n", e.what()); caught++; }
  }
  try { throw 42; } catch (int v) { std::printf("caught int %d\n", v); caught += v; }
  return caught;
}
