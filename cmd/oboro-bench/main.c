/* oboro-bench: load, latency and memory tools for oborod and its peers.
 * main() dispatches to a subcommand; the memory sampler lives here. */
#include "cmd/oboro-bench/tools.h"

#include "oboro_version.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int bench_sampler_open(bench_sampler_t *s, pid_t pid, const char *path)
{
    int rv;

    memset(s, 0, sizeof(*s));
    s->pid = pid;
    rv = bench_smaps_read(pid, &s->first);
    if (rv != 0)
        return rv;
    s->f = fopen(path, "w");
    if (s->f == NULL)
        return -errno;
    s->start_ns = bench_now_ns();
    s->next_ns = s->start_ns;
    bench_mem_csv_header(s->f);
    bench_sampler_poll(s);
    return 0;
}

static void sample(bench_sampler_t *s, uint64_t now)
{
    bench_mem_t m;
    int64_t priv;

    if (s->gone || bench_smaps_read(s->pid, &m) != 0) {
        s->gone = 1;
        return;
    }
    priv = bench_mem_private_kb(&m);
    if (priv > s->peak_private_kb)
        s->peak_private_kb = priv;
    s->last = m;
    s->samples++;
    bench_mem_csv_row(s->f, (double)(now - s->start_ns) / 1e9, &m);
}

void bench_sampler_poll(bench_sampler_t *s)
{
    uint64_t now = bench_now_ns();

    if (s->f == NULL || now < s->next_ns)
        return;
    sample(s, now);
    /* stay on the one-second grid even when a poll comes late */
    while (s->next_ns <= now)
        s->next_ns += 1000000000u;
}

void bench_sampler_close(bench_sampler_t *s)
{
    if (s->f == NULL)
        return;
    sample(s, bench_now_ns());
    fclose(s->f);
    s->f = NULL;
}

void bench_sampler_wait(bench_sampler_t *s, _Atomic int *done)
{
    while (!atomic_load(done)) {
        struct timespec ts = {0, 50 * 1000 * 1000};

        bench_sampler_poll(s);
        nanosleep(&ts, NULL);
    }
}

void bench_sampler_print(const bench_sampler_t *s, FILE *out)
{
    fprintf(out, "Memory (pid %d, %d samples): private first=%lldkB last=%lldkB peak=%lldkB "
            "drift=%+lldkB lazyfree last=%lldkB\n", (int)s->pid, s->samples,
            (long long)bench_mem_private_kb(&s->first), (long long)bench_mem_private_kb(&s->last),
            (long long)s->peak_private_kb,
            (long long)(bench_mem_private_kb(&s->last) - bench_mem_private_kb(&s->first)),
            (long long)s->last.lazyfree_kb);
}

static _Atomic int rss_stop;

static void rss_signal(int sig)
{
    atomic_store(&rss_stop, 1);
}

int bench_cmd_rss(int argc, char **argv)
{
    bench_sampler_t s;
    const char *out = NULL;
    uint64_t duration_ns = 0, end;
    pid_t pid = 0;
    int i, rv;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (strcmp(a, "--help") == 0) {
            printf("usage: oboro-bench rss --pid PID [--out FILE] [--duration D]\n"
                   "Samples Private_Clean + Private_Dirty + Private_Hugetlb and LazyFree of\n"
                   "/proc/PID/smaps_rollup once a second into FILE (rss-PID.csv) until D has\n"
                   "passed, PID exits, or SIGINT/SIGTERM arrives.\n");
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "oboro-bench rss: %s needs a value\n", a);
            return 2;
        }
        if (strcmp(a, "--pid") == 0) {
            char *e;
            long v = strtol(argv[++i], &e, 10);

            if (*e != '\0' || v < 1 || v > 1 << 30) {
                fprintf(stderr, "oboro-bench rss: bad pid '%s'\n", argv[i]);
                return 2;
            }
            pid = (pid_t)v;
        } else if (strcmp(a, "--out") == 0) {
            out = argv[++i];
        } else if (strcmp(a, "--duration") == 0) {
            if (bench_duration_parse(argv[++i], &duration_ns) != 0) {
                fprintf(stderr, "oboro-bench rss: bad duration '%s'\n", argv[i]);
                return 2;
            }
        } else {
            fprintf(stderr, "oboro-bench rss: unknown option '%s'\n", a);
            return 2;
        }
    }
    if (pid == 0) {
        fprintf(stderr, "oboro-bench rss: --pid is required\n");
        return 2;
    }
    {
        static char def[64];

        if (out == NULL) {
            snprintf(def, sizeof(def), "rss-%d.csv", (int)pid);
            out = def;
        }
    }
    rv = bench_sampler_open(&s, pid, out);
    if (rv != 0) {
        fprintf(stderr, "oboro-bench rss: cannot sample pid %d into %s: %s\n", (int)pid, out,
                strerror(-rv));
        return 1;
    }
    atomic_store(&rss_stop, 0);
    signal(SIGINT, rss_signal);
    signal(SIGTERM, rss_signal);
    end = duration_ns ? s.start_ns + duration_ns : UINT64_MAX;
    while (!atomic_load(&rss_stop) && !s.gone && bench_now_ns() < end) {
        struct timespec ts = {0, 20 * 1000 * 1000};

        bench_sampler_poll(&s);
        nanosleep(&ts, NULL);
    }
    bench_sampler_close(&s);
    bench_sampler_print(&s, stdout);
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: oboro-bench COMMAND [options]   (oboro-bench COMMAND --help for details)\n"
        "  resp      RESP load generator: fixed-rate or max, latency table and histogram\n"
        "  rss       sample a process's private memory once a second into a CSV\n"
        "  latency   publish over RTMP, play back, glass-to-glass latency per frame\n"
        "  fanout    N HTTP-FLV/LL-HLS viewers: drops, stalls, throughput, server CPU\n"
        "  version   print the version\n");
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "resp") == 0)
        return bench_cmd_resp(argc - 1, argv + 1);
    if (strcmp(argv[1], "rss") == 0)
        return bench_cmd_rss(argc - 1, argv + 1);
    if (strcmp(argv[1], "latency") == 0)
        return bench_cmd_latency(argc - 1, argv + 1);
    if (strcmp(argv[1], "fanout") == 0)
        return bench_cmd_fanout(argc - 1, argv + 1);
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("oboro-bench %s\n", OBORO_VERSION);
        return 0;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "oboro-bench: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
