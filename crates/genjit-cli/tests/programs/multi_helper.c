int shared_total = 5;
static int factor = 3;
int helper_scale(int x) { return x * factor; }
const char *helper_name(void) { return "helper-module"; }
