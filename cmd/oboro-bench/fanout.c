/* placeholder */
#include "cmd/oboro-bench/tools.h"
int bench_cmd_fanout(int argc, char **argv) { return 2; }
