/* Allocator benchmark driven by scripts/bench/alloc: one source, built three
 * times (oboro's core/arena with -DBENCH_ARENA, glibc malloc, and jemalloc
 * linked in place of malloc). Each run does one workload and prints one
 * line of key=value figures.
 *
 *   mix      server-like mix: per request a few short-lived small objects
 *            and a buffer, one long-lived cache value replaced in a ring of
 *            100,000, and now and then a media packet kept in a GOP ring.
 *   xthread  a worker allocates packets (200 B - 1.5 KiB), the main thread
 *            frees them (cross-thread free through a ring).
 *   frag     600,000 x 300 B, free a random 90%, then private RSS (for the
 *            arena also after purge and after compaction). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef BENCH_ARENA
#include "core/arena.h"
#define B_MALLOC(n) core_malloc(CORE_TAG_BENCH, (n))
#define B_FREE(p) core_free(p)
#define B_NAME "oboro-arena"
#else
#define B_MALLOC(n) malloc(n)
#define B_FREE(p) free(p)
#ifdef BENCH_JEMALLOC
#include <jemalloc/jemalloc.h>
#define B_NAME "jemalloc"
#else
#include <malloc.h>
#define B_NAME "glibc"
#endif
#endif

static uint64_t rng = 0x2545f4914f6cdd1dull;

static inline uint64_t rnd(void)
{
    rng ^= rng >> 12;
    rng ^= rng << 25;
    rng ^= rng >> 27;
    return rng * 0x2545f4914f6cdd1dull;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process: on a shared machine, time spent
 * descheduled does not count against the allocator */
static double cpu_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long long rss_private(void)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long long kb, sum = 0;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f) != NULL)
        if (sscanf(line, "Private_Clean: %lld kB", &kb) == 1 ||
            sscanf(line, "Private_Dirty: %lld kB", &kb) == 1)
            sum += kb * 1024;
    fclose(f);
    return sum;
}

static void *xmalloc(size_t n)
{
    void *p = B_MALLOC(n);

    if (p == NULL) {
        fprintf(stderr, "alloc_bench: out of memory\n");
        exit(1);
    }
    return p;
}

static void touch(void *p, size_t n)
{
    memset(p, 0x5a, n < 64 ? n : 64);
}

static int mix(long requests)
{
    enum { VALUES = 100000, GOP = 64 };
    static void *values[VALUES];
    static void *gop[GOP];
    long ops = 0;
    double t0, t, c0, c;

    t0 = now_s();
    c0 = cpu_s();
    for (long r = 0; r < requests; r++) {
        void *tmp[5];
        uint64_t x = rnd();
        size_t vi;

        for (int k = 0; k < 4; k++) {
            size_t n = 16 + ((x >> (k * 8)) & 0xf0);

            tmp[k] = xmalloc(n);
            touch(tmp[k], n);
        }
        tmp[4] = xmalloc(1024 + ((x >> 32) & 0x1fff));
        touch(tmp[4], 1024);
        vi = (size_t)((x >> 40) % VALUES);
        B_FREE(values[vi]);
        values[vi] = xmalloc(32 + ((x >> 20) & 0x3ff));
        touch(values[vi], 32);
        ops += 7;
        if ((r & 63) == 0) {
            size_t gi = (size_t)(r >> 6) % GOP;
            size_t n = 16384 + (size_t)((x >> 8) % 200000);

            B_FREE(gop[gi]);
            gop[gi] = xmalloc(n);
            touch(gop[gi], n);
            ops += 2;
        }
        for (int k = 0; k < 5; k++)
            B_FREE(tmp[k]);
    }
    t = now_s() - t0;
    c = cpu_s() - c0;
    for (size_t i = 0; i < VALUES; i++)
        B_FREE(values[i]);
    for (size_t i = 0; i < GOP; i++)
        B_FREE(gop[i]);
    printf("allocator=%s workload=mix ops=%ld seconds=%.3f cpu_seconds=%.3f mops=%.2f\n", B_NAME,
           ops, t, c, (double)ops / c / 1e6);
    return 0;
}

/* batches of packets handed from the worker to the main thread through a
 * bounded queue (mutex + condition variables: no spinning on a busy box) */
enum { BATCH = 1024, QLEN = 8 };
static void *queue[QLEN][BATCH];
static int q_head, q_count;
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_nonempty = PTHREAD_COND_INITIALIZER;
static pthread_cond_t q_nonfull = PTHREAD_COND_INITIALIZER;
static long xt_batches;

static void *producer(void *arg)
{
    static void *batch[BATCH];
    uint64_t x = 0x1234567;

    (void)arg;
    for (long b = 0; b < xt_batches; b++) {
        for (int i = 0; i < BATCH; i++) {
            size_t n;

            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            n = 200 + (size_t)(x % 1300);
            batch[i] = xmalloc(n);
            touch(batch[i], n);
        }
        pthread_mutex_lock(&q_lock);
        while (q_count == QLEN)
            pthread_cond_wait(&q_nonfull, &q_lock);
        memcpy(queue[(q_head + q_count) % QLEN], batch, sizeof(batch));
        q_count++;
        pthread_cond_signal(&q_nonempty);
        pthread_mutex_unlock(&q_lock);
    }
    return NULL;
}

static int xthread(long count)
{
    static void *batch[BATCH];
    pthread_t th;
    double t0, t, c0, c;

    xt_batches = count / BATCH;
    t0 = now_s();
    c0 = cpu_s();
    pthread_create(&th, NULL, producer, NULL);
    for (long b = 0; b < xt_batches; b++) {
        pthread_mutex_lock(&q_lock);
        while (q_count == 0)
            pthread_cond_wait(&q_nonempty, &q_lock);
        memcpy(batch, queue[q_head], sizeof(batch));
        q_head = (q_head + 1) % QLEN;
        q_count--;
        pthread_cond_signal(&q_nonfull);
        pthread_mutex_unlock(&q_lock);
        for (int i = 0; i < BATCH; i++)
            B_FREE(batch[i]);
    }
    pthread_join(th, NULL);
    t = now_s() - t0;
    c = cpu_s() - c0;
    printf("allocator=%s workload=xthread ops=%ld seconds=%.3f cpu_seconds=%.3f mops=%.2f\n",
           B_NAME, xt_batches * BATCH * 2, t, c, (double)xt_batches * BATCH * 2 / c / 1e6);
    return 0;
}

#ifdef BENCH_ARENA
typedef struct walk {
    void **slots;
    size_t n, cursor, moved;
} walk_t;

static int walker(void *arg, uint64_t deadline_us)
{
    walk_t *w = arg;

    for (;;) {
        for (int k = 0; k < 64 && w->cursor < w->n; k++, w->cursor++)
            if (w->slots[w->cursor] != NULL)
                w->moved += (size_t)core_mem_relocate(&w->slots[w->cursor]);
        if (w->cursor == w->n) {
            w->cursor = 0;
            return 1;
        }
        if ((uint64_t)(now_s() * 1e6) >= deadline_us)
            return 0;
    }
}
#endif

static int frag(void)
{
    enum { N = 600000, SZ = 300 };
    void **slots;
    long long start, after, live, kept = 0;

    start = rss_private();
    slots = xmalloc(N * sizeof(*slots));
    for (size_t i = 0; i < N; i++) {
        slots[i] = xmalloc(SZ);
        memset(slots[i], 1, SZ);
    }
    for (size_t i = 0; i < N; i++) {
        if (rnd() % 10 != 0) {
            B_FREE(slots[i]);
            slots[i] = NULL;
        } else {
            kept++;
        }
    }
    /* live data: the kept values and the array of pointers to them */
    live = kept * SZ + (long long)(N * sizeof(*slots));
    after = rss_private() - start;
    printf("allocator=%s workload=frag live=%lld rss=%lld ratio=%.2f", B_NAME, live, after,
           (double)after / (double)live);
    /* each allocator's own way of giving free memory back */
#if defined(BENCH_ARENA)
    core_mem_purge(0);
#elif defined(BENCH_JEMALLOC)
    mallctl("arena." "4096" ".purge", NULL, NULL, NULL, 0);
#else
    malloc_trim(0);
#endif
    after = rss_private() - start;
    printf(" rss_purged=%lld ratio_purged=%.2f", after, (double)after / (double)live);
#ifdef BENCH_ARENA
    {
        walk_t w = {slots, N, 0, 0};
        size_t before;

        core_mem_compact_register(walker, &w);
        /* 1 ms slices until a whole pass moves nothing */
        do {
            before = w.moved;
            do
                core_mem_compact_step(1000, 1);
            while (w.cursor != 0);
        } while (w.moved != before);
        core_mem_purge(0);
        after = rss_private() - start;
        printf(" rss_compacted=%lld ratio_compacted=%.2f moved=%zu", after,
               (double)after / (double)live, w.moved);
    }
#endif
    printf("\n");
    return 0;
}

int main(int argc, char **argv)
{
    long n = argc > 2 ? atol(argv[2]) : 0;

    if (argc > 1 && strcmp(argv[1], "mix") == 0)
        return mix(n > 0 ? n : 2000000);
    if (argc > 1 && strcmp(argv[1], "xthread") == 0)
        return xthread(n > 0 ? n : 3000000);
    if (argc > 1 && strcmp(argv[1], "frag") == 0)
        return frag();
    fprintf(stderr, "usage: alloc_bench mix|xthread|frag [count]\n");
    return 2;
}
