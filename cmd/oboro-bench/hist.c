/* oboro-bench: log-linear latency histogram, fixed-rate schedule, clocks. */
#include "cmd/oboro-bench/bench.h"

#include "core/arena.h"

#include <math.h>
#include <string.h>
#include <time.h>

#define SUB_HALF 128u
#define SUB_FULL 256u

bench_hist_t *bench_hist_new(void)
{
    bench_hist_t *h = core_malloc(CORE_TAG_BENCH, sizeof(*h));

    if (h != NULL)
        bench_hist_reset(h);
    return h;
}

void bench_hist_free(bench_hist_t **hp)
{
    core_free(*hp);
    *hp = NULL;
}

void bench_hist_reset(bench_hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t v)
{
    unsigned e, shift;

    if (v < SUB_FULL)
        return (unsigned)v;
    e = 63u - (unsigned)__builtin_clzll(v);
    shift = e - 7u;
    return SUB_FULL + (shift - 1u) * SUB_HALF + (unsigned)((v >> shift) - SUB_HALF);
}

uint64_t bench_hist_bucket_low(unsigned idx)
{
    unsigned k, shift;

    if (idx < SUB_FULL)
        return idx;
    k = idx - SUB_FULL;
    shift = k / SUB_HALF + 1u;
    return (uint64_t)(k % SUB_HALF + SUB_HALF) << shift;
}

/* Representative value of a bucket: its middle, so the error is at most
 * half a bucket width either way. */
static uint64_t bucket_mid(unsigned idx)
{
    uint64_t low = bench_hist_bucket_low(idx);
    unsigned shift;

    if (idx < SUB_FULL)
        return low;
    shift = (idx - SUB_FULL) / SUB_HALF + 1u;
    return low + (((uint64_t)1 << shift) >> 1);
}

static unsigned decade_of(uint64_t v)
{
    uint64_t edge = 10;
    unsigned d = 0;

    while (d < BENCH_HIST_DECADES - 1 && v >= edge) {
        d++;
        edge *= 10;
    }
    return d;
}

void bench_hist_record(bench_hist_t *h, uint64_t v)
{
    long double x = (long double)v;

    h->counts[bench_hist_index(v)]++;
    h->decades[decade_of(v)]++;
    h->n++;
    h->sum += x;
    h->sumsq += x * x;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(bench_hist_t *dst, const bench_hist_t *src)
{
    unsigned i;

    if (src->n == 0)
        return;
    for (i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    for (i = 0; i < BENCH_HIST_DECADES; i++)
        dst->decades[i] += src->decades[i];
    dst->n += src->n;
    dst->sum += src->sum;
    dst->sumsq += src->sumsq;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_percentile(const bench_hist_t *h, double p)
{
    uint64_t rank, seen = 0, v;
    unsigned i;

    if (h->n == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    if (p <= 0.0)
        return h->min;
    /* p / 100 * n in floating point may land a hair above an integer
     * (99.9% of 1000 = 999.0000000000001): round that back down */
    rank = (uint64_t)ceil(p / 100.0 * (double)h->n * (1.0 - 1e-12));
    if (rank < 1)
        rank = 1;
    for (i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank)
            break;
    }
    if (i == BENCH_HIST_BUCKETS)
        return h->max;
    /* the buckets of the extremes hold them exactly */
    if (i == bench_hist_index(h->max))
        return h->max;
    if (i == bench_hist_index(h->min))
        return h->min;
    v = bucket_mid(i);
    if (v < h->min)
        v = h->min;
    if (v > h->max)
        v = h->max;
    return v;
}

double bench_hist_mean(const bench_hist_t *h)
{
    return h->n ? (double)(h->sum / (long double)h->n) : 0.0;
}

double bench_hist_stddev(const bench_hist_t *h)
{
    long double mean, var;

    if (h->n == 0)
        return 0.0;
    mean = h->sum / (long double)h->n;
    var = h->sumsq / (long double)h->n - mean * mean;
    return var > 0 ? sqrt((double)var) : 0.0;
}

void bench_sched_init(bench_sched_t *s, uint64_t start_ns, uint64_t duration_ns, uint64_t count)
{
    s->start_ns = start_ns;
    s->total = count;
    s->period_ns = count ? (double)duration_ns / (double)count : 0.0;
}

uint64_t bench_sched_due(const bench_sched_t *s, uint64_t now_ns)
{
    double k;

    if (s->total == 0 || now_ns < s->start_ns)
        return 0;
    /* request k is due when start + k * period <= now: k <= elapsed/period */
    k = floor((double)(now_ns - s->start_ns) / s->period_ns + 1e-9) + 1.0;
    return k >= (double)s->total ? s->total : (uint64_t)k;
}

uint64_t bench_sched_at(const bench_sched_t *s, uint64_t k)
{
    return s->start_ns + (uint64_t)ceil((double)k * s->period_ns);
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t bench_wall_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
