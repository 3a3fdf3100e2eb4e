/* oboro-bench: the subcommands and what they share (I/O side). */
#ifndef OBORO_BENCH_TOOLS_H
#define OBORO_BENCH_TOOLS_H

#include "cmd/oboro-bench/bench.h"

#include <stdio.h>
#include <sys/types.h>

/* Each subcommand parses its own arguments (argv[0] is the subcommand's
 * name) and returns the process exit code: 0 done, 1 failure, 2 usage. */
int bench_cmd_resp(int argc, char **argv);
int bench_cmd_rss(int argc, char **argv);
int bench_cmd_latency(int argc, char **argv);
int bench_cmd_fanout(int argc, char **argv);

/* Memory sampler: one CSV row per second of /proc/PID/smaps_rollup. */
typedef struct bench_sampler {
    pid_t pid;
    FILE *f;
    uint64_t start_ns, next_ns;
    int samples, gone;
    bench_mem_t first, last;
    int64_t peak_private_kb;
} bench_sampler_t;

/* Open path (truncating) and take the first sample. Returns 0 or a
 * negative errno (-ENOENT: no such process). */
int bench_sampler_open(bench_sampler_t *s, pid_t pid, const char *path);

/* Take a sample if a second has passed since the last one. */
void bench_sampler_poll(bench_sampler_t *s);

/* Take a last sample and close the file. */
void bench_sampler_close(bench_sampler_t *s);

/* Sleep until every sampler is due or *done becomes nonzero, polling
 * each; returns when *done is set. */
void bench_sampler_wait(bench_sampler_t *s, _Atomic int *done);

/* One line about the samples for the text report (stdout). */
void bench_sampler_print(const bench_sampler_t *s, FILE *out);

#endif
