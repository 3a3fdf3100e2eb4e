/* Unit tests for cache/t_wcount: windowed counters driven by batch time. */
#include "live_fixture.h"

#include <limits.h>
#include <stdint.h>

#define T0 1700000000000ull /* a bucket boundary for every resolution used here */

START_TEST(test_incr_get)
{
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.INCR c"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 10, "WCOUNT.INCR c BY 5"), 6);
    ck_assert_int_eq(lf_int(ks, T0 + 20, "WCOUNT.GET c WINDOW 1"), 6);
    ck_assert_int_eq(lf_int(ks, T0 + 20, "WCOUNT.GET missing WINDOW 60"), 0);
    ck_assert_str_eq(lf_run(ks, T0, "TYPE c"), "+wcount\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.GET c WINDOW 0"),
                     "-ERR WINDOW must be a positive number of seconds\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.GET c SPAN 10"), "-ERR syntax error\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.INCR c BY"), "-ERR syntax error\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.INCR c BY x"),
                     "-ERR value is not an integer or out of range\r\n");
    lf_run(ks, T0, "SET s v");
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.INCR s"), "-WRONGTYPE", 10) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.GET s WINDOW 1"), "-WRONGTYPE", 10) == 0);
}
END_TEST

/* One event per second at T0 .. T0+9 s; then windows read at various times. */
static const struct {
    uint64_t at_ms;
    long long window;
    long long want;
} bounds[] = {
    {9000, 1, 1},       /* only the current bucket */
    {9999, 1, 1},
    {10000, 1, 0},      /* a new bucket: the last event left a 1 s window */
    {10000, 2, 1},
    {9000, 10, 10},
    {9500, 3, 3},
    {12000, 5, 2},      /* buckets 8..12: the events at 8 s and 9 s */
};

START_TEST(test_window_boundaries)
{
    for (int i = 0; i < 10; i++)
        lf_int(ks, T0 + (uint64_t)i * 1000, "WCOUNT.INCR c");
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        long long want = bounds[i].want;

        ck_assert_msg(lf_int(ks, T0 + bounds[i].at_ms, "WCOUNT.GET c WINDOW %lld", bounds[i].window) == want,
                      "case %zu", i);
    }
    /* a window that is not a whole number of buckets rounds up */
    lf_int(ks, T0, "WCOUNT.INCR r RESOLUTION 10 SPAN 100");
    lf_int(ks, T0 + 15000, "WCOUNT.INCR r");
    ck_assert_int_eq(lf_int(ks, T0 + 15000, "WCOUNT.GET r WINDOW 1"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 15000, "WCOUNT.GET r WINDOW 11"), 2);
    ck_assert_int_eq(lf_int(ks, T0 + 15000, "WCOUNT.GET r WINDOW 100"), 2);
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.GET r WINDOW 101"),
                     "-ERR WINDOW exceeds the counter's span of 100 seconds\r\n");
}
END_TEST

START_TEST(test_span_and_gaps)
{
    lf_int(ks, T0, "WCOUNT.INCR c BY 3 SPAN 10");
    ck_assert_int_eq(lf_int(ks, T0 + 9999, "WCOUNT.GET c WINDOW 10"), 3);
    ck_assert_int_eq(lf_int(ks, T0 + 10000, "WCOUNT.GET c WINDOW 10"), 0);
    /* a gap far longer than the ring, then new events */
    ck_assert_int_eq(lf_int(ks, T0 + 5, "WCOUNT.INCR c BY 2"), 5);
    ck_assert_int_eq(lf_int(ks, T0 + 1000000, "WCOUNT.INCR c"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 1000000, "WCOUNT.GET c WINDOW 10"), 1);
    /* a clock behind the newest write counts into the newest bucket */
    ck_assert_int_eq(lf_int(ks, T0 + 999000, "WCOUNT.INCR c"), 2);
    ck_assert_int_eq(lf_int(ks, T0 + 1000000, "WCOUNT.GET c WINDOW 1"), 2);
    /* options must match an existing counter */
    ck_assert_str_eq(lf_run(ks, T0 + 1000000, "WCOUNT.INCR c SPAN 20"),
                     "-ERR the counter exists with another RESOLUTION or SPAN\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + 1000000, "WCOUNT.INCR c SPAN 10 RESOLUTION 1"), 3);
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.INCR d SPAN 10 RESOLUTION 3"), "-ERR RESOLUTION", 15) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.INCR d SPAN 172800"), "-ERR RESOLUTION", 15) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.INCR d RESOLUTION 0"), "-ERR RESOLUTION", 15) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "WCOUNT.INCR d SPAN -1"), "-ERR RESOLUTION", 15) == 0);
    ck_assert_int_eq(lf_int(ks, T0, "EXISTS d"), 0);
}
END_TEST

START_TEST(test_large_negative)
{
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.INCR c BY -5"), -5);
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.INCR c BY 9223372036854775807"), LLONG_MAX - 5);
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.INCR c BY 5"), LLONG_MAX);
    ck_assert_str_eq(lf_run(ks, T0, "WCOUNT.INCR c"), "-ERR increment or decrement would overflow\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.GET c WINDOW 1"), LLONG_MAX);
    ck_assert_int_eq(lf_int(ks, T0 + 1000, "WCOUNT.INCR c BY -9223372036854775807"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 1000, "WCOUNT.GET c WINDOW 1"), -LLONG_MAX);
    ck_assert_int_eq(lf_int(ks, T0 + 1000, "WCOUNT.GET c WINDOW 2"), 0);
}
END_TEST

START_TEST(test_tick_deletes_empty)
{
    lf_int(ks, T0, "WCOUNT.INCR c SPAN 10");
    lf_int(ks, T0, "WCOUNT.INCR keep SPAN 100");
    ck_assert(!cache_live_due(ks, T0 + 9999));
    ck_assert(cache_live_due(ks, T0 + 10000));
    ck_assert_int_eq(lf_int(ks, T0 + 10000, "__live.tick"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 10000, "EXISTS c keep"), 1);
    ck_assert(!cache_live_due(ks, T0 + 10000));
}
END_TEST

START_TEST(test_generic_commands)
{
    const char *r;
    long long mem;

    lf_int(ks, T0, "WCOUNT.INCR c BY 7");
    mem = lf_int(ks, T0, "MEMORY USAGE c");
    ck_assert_int_gt(mem, 3600 * 8);
    ck_assert_int_eq(lf_int(ks, T0, "PEXPIRE c 100"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 100, "WCOUNT.GET c WINDOW 1"), 7);
    ck_assert_int_eq(lf_int(ks, T0 + 101, "EXISTS c"), 0);
    lf_int(ks, T0, "WCOUNT.INCR a");
    lf_int(ks, T0, "WCOUNT.INCR b");
    lf_run(ks, T0, "SET s 1");
    r = lf_run(ks, T0, "SCAN 0 TYPE wcount COUNT 100");
    ck_assert(strstr(r, "$1\r\na\r\n") != NULL && strstr(r, "$1\r\nb\r\n") != NULL);
    ck_assert(strstr(r, "$1\r\ns\r\n") == NULL);
    ck_assert_str_eq(lf_run(ks, T0, "RENAME a z"), "+OK\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WCOUNT.GET z WINDOW 5"), 1);
    ck_assert_int_eq(lf_int(ks, T0, "DEL z b"), 2);
}
END_TEST

START_TEST(test_snapshot_restore)
{
    cache_ks_t *c;
    struct evbuffer *s;
    size_t len;

    for (int i = 0; i < 50; i++)
        lf_int(ks, T0 + (uint64_t)i * 700, "WCOUNT.INCR c BY %d RESOLUTION 2 SPAN 60", i);
    lf_int(ks, T0, "WCOUNT.INCR d");
    c = lf_clone(ks, T0 + 35000);
    for (int w = 1; w <= 60; w += 7)
        ck_assert_int_eq(lf_int(c, T0 + 35000, "WCOUNT.GET c WINDOW %d", w),
                         lf_int(ks, T0 + 35000, "WCOUNT.GET c WINDOW %d", w));
    /* the clone keeps counting the same way */
    ck_assert_int_eq(lf_int(c, T0 + 40000, "WCOUNT.INCR c RESOLUTION 2 SPAN 60"),
                     lf_int(ks, T0 + 40000, "WCOUNT.INCR c RESOLUTION 2 SPAN 60"));
    ck_assert_str_eq(lf_run(c, T0, "TYPE d"), "+wcount\r\n");
    cache_ks_free(&c);
    /* every truncation of a snapshot is refused, nothing leaks */
    s = lf_snapshot(ks, T0);
    len = evbuffer_get_length(s);
    c = cache_ks_new();
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(cache_ks_restore(c, evbuffer_pullup(s, -1), cut), -EPROTO);
    ck_assert_int_eq(cache_ks_size(c), 0);
    cache_ks_free(&c);
    evbuffer_free(s);
    lf_flip_each_byte(ks, T0);
}
END_TEST

static Suite *wcount_suite(void)
{
    Suite *s = suite_create("cache/wcount");
    TCase *tc = tcase_create("wcount");

    tcase_add_checked_fixture(tc, lf_setup, lf_teardown);
    tcase_add_test(tc, test_incr_get);
    tcase_add_test(tc, test_window_boundaries);
    tcase_add_test(tc, test_span_and_gaps);
    tcase_add_test(tc, test_large_negative);
    tcase_add_test(tc, test_tick_deletes_empty);
    tcase_add_test(tc, test_generic_commands);
    tcase_add_test(tc, test_snapshot_restore);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wcount_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
