/* Unit tests for oboro-bench's histogram and fixed-rate schedule. */
#include "cmd/oboro-bench/bench.h"

#include "core/arena.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>

static bench_hist_t *h;

static void setup(void)
{
    h = bench_hist_new();
    ck_assert_ptr_nonnull(h);
}

static void teardown(void)
{
    bench_hist_free(&h);
    ck_assert_ptr_null(h);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_BENCH), 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* The exact percentile as defined: smallest value with >= p% at or below. */
static uint64_t exact_pct(const uint64_t *sorted, size_t n, double p)
{
    size_t rank = (size_t)ceil(p / 100.0 * (double)n);

    if (rank < 1)
        rank = 1;
    return sorted[rank - 1];
}

static double rel_err(uint64_t got, uint64_t want)
{
    return want ? fabs((double)got - (double)want) / (double)want : (double)got;
}

START_TEST(index_monotonic_and_covering)
{
    uint64_t v;
    unsigned prev = 0, i;

    /* every bucket's low value maps back to it, and indexes never go down */
    for (i = 0; i < BENCH_HIST_BUCKETS; i++)
        ck_assert_uint_eq(bench_hist_index(bench_hist_bucket_low(i)), i);
    for (v = 1; v < (1ULL << 62); v = v * 3 / 2 + 1) {
        unsigned idx = bench_hist_index(v);

        ck_assert_uint_ge(idx, prev);
        ck_assert_uint_lt(idx, BENCH_HIST_BUCKETS);
        ck_assert_uint_le(bench_hist_bucket_low(idx), v);
        /* the bucket is narrower than 1/128 of its values */
        ck_assert_uint_lt(v - bench_hist_bucket_low(idx), v / 128 + 1);
        prev = idx;
    }
    ck_assert_uint_eq(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
    ck_assert_uint_eq(bench_hist_index(0), 0);
    ck_assert_uint_eq(bench_hist_index(255), 255);
    ck_assert_uint_eq(bench_hist_index(256), 256);
}
END_TEST

START_TEST(empty)
{
    ck_assert_uint_eq(bench_hist_percentile(h, 50), 0);
    ck_assert_uint_eq(bench_hist_percentile(h, 100), 0);
    ck_assert(bench_hist_mean(h) == 0);
    ck_assert(bench_hist_stddev(h) == 0);
}
END_TEST

START_TEST(small_values_exact)
{
    uint64_t v;

    for (v = 1; v <= 100; v++)
        bench_hist_record(h, v);
    ck_assert_uint_eq(bench_hist_percentile(h, 50), 50);
    ck_assert_uint_eq(bench_hist_percentile(h, 90), 90);
    ck_assert_uint_eq(bench_hist_percentile(h, 99), 99);
    ck_assert_uint_eq(bench_hist_percentile(h, 99.5), 100);
    ck_assert_uint_eq(bench_hist_percentile(h, 100), 100);
    ck_assert_uint_eq(h->min, 1);
    ck_assert_double_eq_tol(bench_hist_mean(h), 50.5, 1e-9);
    /* population stddev of 1..100 = sqrt((100^2 - 1) / 12) */
    ck_assert_double_eq_tol(bench_hist_stddev(h), sqrt(9999.0 / 12.0), 1e-6);
}
END_TEST

/* Percentiles of random latency-like data are within 1% of the exact ones
 * (the design bound is 1/256). */
START_TEST(percentiles_within_one_percent)
{
    enum { N = 200000 };
    static const double pcts[] = {1, 10, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100};
    uint64_t *vals = malloc(N * sizeof(*vals));
    uint64_t seed = 88172645463325252ULL;
    long double sum = 0, sumsq = 0;
    size_t i;

    ck_assert_ptr_nonnull(vals);
    for (i = 0; i < N; i++) {
        double u;

        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        u = (double)(seed >> 11) / 9007199254740992.0;
        /* log-uniform from 1 us to 10 s: every range the table shows */
        vals[i] = (uint64_t)(1000.0 * pow(10.0, 7.0 * u));
        bench_hist_record(h, vals[i]);
        sum += vals[i];
        sumsq += (long double)vals[i] * vals[i];
    }
    qsort(vals, N, sizeof(*vals), cmp_u64);
    for (i = 0; i < sizeof(pcts) / sizeof(pcts[0]); i++) {
        uint64_t got = bench_hist_percentile(h, pcts[i]);
        uint64_t want = exact_pct(vals, N, pcts[i]);

        ck_assert_msg(rel_err(got, want) <= 0.01, "p%g: got %llu want %llu", pcts[i],
                      (unsigned long long)got, (unsigned long long)want);
        ck_assert_msg(rel_err(got, want) <= 1.0 / 256 + 1e-9, "p%g beyond the design bound", pcts[i]);
    }
    ck_assert_uint_eq(bench_hist_percentile(h, 100), vals[N - 1]);
    ck_assert_uint_eq(h->min, vals[0]);
    ck_assert_double_eq_tol(bench_hist_mean(h), (double)(sum / N), 1e-3);
    ck_assert_double_eq_tol(bench_hist_stddev(h), sqrt((double)(sumsq / N - (sum / N) * (sum / N))),
                            bench_hist_stddev(h) * 1e-6);
    free(vals);
}
END_TEST

START_TEST(decades)
{
    static const uint64_t vals[] = {0, 5, 10, 99, 100, 999, 1000, 999999, 1000000,
                                    999999999, 1000000000, 9999999999ULL, 10000000000ULL,
                                    UINT64_MAX};
    static const uint64_t want[BENCH_HIST_DECADES] = {2, 2, 2, 1, 0, 1, 1, 0, 1, 2, 2};
    size_t i;

    for (i = 0; i < sizeof(vals) / sizeof(vals[0]); i++)
        bench_hist_record(h, vals[i]);
    for (i = 0; i < BENCH_HIST_DECADES; i++)
        ck_assert_msg(h->decades[i] == want[i], "decade %zu: %llu", i,
                      (unsigned long long)h->decades[i]);
}
END_TEST

START_TEST(merge_equals_single)
{
    bench_hist_t *a = bench_hist_new(), *b = bench_hist_new();
    uint64_t v;

    for (v = 1; v < 1000000; v += 997) {
        bench_hist_record(h, v);
        bench_hist_record(v % 2 ? a : b, v);
    }
    bench_hist_merge(a, b);
    ck_assert_uint_eq(a->n, h->n);
    ck_assert_uint_eq(a->min, h->min);
    ck_assert_uint_eq(a->max, h->max);
    ck_assert_uint_eq(bench_hist_percentile(a, 99), bench_hist_percentile(h, 99));
    ck_assert_double_eq_tol(bench_hist_stddev(a), bench_hist_stddev(h), 1e-6);
    ck_assert_mem_eq(a->counts, h->counts, sizeof(h->counts));
    bench_hist_reset(b);
    ck_assert_uint_eq(b->n, 0);
    bench_hist_free(&a);
    bench_hist_free(&b);
}
END_TEST

/* The schedule releases exactly rate * duration requests, evenly: at any
 * time the number due is within one request of rate * elapsed, so the
 * achieved rate is the requested one to well within 1%. */
START_TEST(schedule_rate)
{
    static const struct { double per_s; uint64_t dur_ns; } cases[] = {
        {2500, 60000000000ULL},       /* 150000/min for a minute */
        {2500, 1000000000ULL},
        {1, 10000000000ULL},
        {333333, 3000000000ULL},
        {7, 1500000000ULL},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bench_sched_t s;
        uint64_t total = (uint64_t)(cases[i].per_s * (double)cases[i].dur_ns / 1e9 + 0.5);
        uint64_t start = 123456789, t, prev = 0;

        bench_sched_init(&s, start, cases[i].dur_ns, total);
        ck_assert_uint_eq(bench_sched_due(&s, start - 1), 0);
        ck_assert_uint_eq(bench_sched_due(&s, start), 1);
        for (t = 0; t <= cases[i].dur_ns; t += cases[i].dur_ns / 997) {
            uint64_t due = bench_sched_due(&s, start + t);
            double ideal = (double)total * (double)t / (double)cases[i].dur_ns;

            ck_assert_uint_ge(due, prev);
            /* request 0 is due at once, so due runs at most one ahead */
            ck_assert_msg((double)due - ideal >= 0 && (double)due - ideal <= 1.0 + 1e-9, "case %zu t=%llu due=%llu ideal=%f",
                          i, (unsigned long long)t, (unsigned long long)due, ideal);
            prev = due;
        }
        ck_assert_uint_eq(bench_sched_due(&s, start + cases[i].dur_ns + 1), total);
        ck_assert_uint_eq(bench_sched_due(&s, UINT64_MAX / 2), total);
        /* intended times are evenly spaced and inside the run */
        ck_assert_uint_eq(bench_sched_at(&s, 0), start);
        ck_assert_uint_lt(bench_sched_at(&s, total - 1), start + cases[i].dur_ns);
        if (total > 2) {
            double gap = (double)(bench_sched_at(&s, total - 1) - start) / (double)(total - 1);

            ck_assert_double_eq_tol(gap, (double)cases[i].dur_ns / (double)total, 1.0);
        }
        /* whole requests only: the count rounds rate * duration, which is
         * within 1% of the requested rate once a run holds 50 requests */
        if (total >= 50)
            ck_assert_double_eq_tol((double)total * 1e9 / (double)cases[i].dur_ns, cases[i].per_s,
                                    cases[i].per_s * 0.01);
        /* request k is due exactly from its intended time on */
        ck_assert_uint_eq(bench_sched_due(&s, bench_sched_at(&s, total / 2)), total / 2 + 1);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench/hist");
    TCase *tc = tcase_create("histogram");
    TCase *ts = tcase_create("schedule");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, index_monotonic_and_covering);
    tcase_add_test(tc, empty);
    tcase_add_test(tc, small_values_exact);
    tcase_add_test(tc, percentiles_within_one_percent);
    tcase_add_test(tc, decades);
    tcase_add_test(tc, merge_equals_single);
    tcase_add_test(ts, schedule_rate);
    suite_add_tcase(s, tc);
    suite_add_tcase(s, ts);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
