/* Unit tests for cache/t_wrank: windowed rankings driven by batch time,
 * checked against a naive model that sums every event in the window. */
#include "live_fixture.h"

#include <stdint.h>
#include <stdlib.h>

#define T0 1700000000000ull /* a multiple of every resolution used here */
#define S(n) ((uint64_t)(n) * 1000)

START_TEST(test_basic)
{
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r a 5"), 5);
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r b 7"), 7);
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r c 7"), 7);
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r a -1"), 4);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 10 WITHSCORES"),
                     "*6\r\n$1\r\nc\r\n$1\r\n7\r\n$1\r\nb\r\n$1\r\n7\r\n$1\r\na\r\n$1\r\n4\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 2 WINDOW 3600"), "*2\r\n$1\r\nc\r\n$1\r\nb\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 0"), "*0\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP none 5"), "*0\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.SCORE r a WINDOW 86400"), 4);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.SCORE r zz"), "$-1\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.SCORE none zz"), "$-1\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.RANK r c"), 0);
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.RANK r a"), 2);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.RANK r zz"), "$-1\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "TYPE r"), "+wrank\r\n");
    /* errors */
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 3 WINDOW 60"),
                     "-ERR WINDOW must be one of the ranking's windows: 3600 86400\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r -1"), "-ERR N must not be negative\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 1 BOGUS"), "-ERR syntax error\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP none 1 WINDOW 0"),
                     "-ERR WINDOW must be a positive number of seconds\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY r a 1.5"),
                     "-ERR value is not an integer or out of range\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY r a 1 WINDOW 60"),
                     "-ERR the ranking exists with another RESOLUTION or WINDOWs\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY n a 1 RESOLUTION 7"),
                     "-ERR each WINDOW must be a multiple of RESOLUTION, at most 86400 buckets\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY n a 1 WINDOW 60 WINDOW 60"),
                     "-ERR the same WINDOW twice\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY n a 1 WINDOW 1 WINDOW 2 WINDOW 3 WINDOW 4 WINDOW 5"),
                     "-ERR at most 4 WINDOWs\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY n a 1 RESOLUTION 0"), "-ERR RESOLUTION must be 1..86400 seconds\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "EXISTS n"), 0);
    lf_run(ks, T0, "SET s v");
    ck_assert(strncmp(lf_run(ks, T0, "WRANK.TOP s 1"), "-WRONGTYPE", 10) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "WRANK.INCRBY s a 1"), "-WRONGTYPE", 10) == 0);
}
END_TEST

START_TEST(test_window_boundaries)
{
    int64_t before = core_mem_tag_live(CORE_TAG_CACHE_VALUES);

    /* 10 s buckets, windows of 30 s (3 buckets) and 60 s (6 buckets) */
    lf_int(ks, T0, "WRANK.INCRBY r a 1 RESOLUTION 10 WINDOW 60 WINDOW 30");
    lf_int(ks, T0 + S(25), "WRANK.INCRBY r b 2");
    ck_assert_int_eq(lf_int(ks, T0 + S(29), "WRANK.SCORE r a WINDOW 30"), 1);
    ck_assert(!cache_live_due(ks, T0 + S(29)));
    /* at 30 s bucket 0 leaves the 30 s window: the leader's tick moves it */
    ck_assert(cache_live_due(ks, T0 + S(30)));
    ck_assert_int_eq(lf_int(ks, T0 + S(30), "__live.tick"), 0);
    ck_assert_str_eq(lf_run(ks, T0 + S(30), "WRANK.SCORE r a WINDOW 30"), "$-1\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + S(30), "WRANK.SCORE r a WINDOW 60"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + S(30), "WRANK.RANK r a WINDOW 60"), 1);
    ck_assert_str_eq(lf_run(ks, T0 + S(30), "WRANK.TOP r 5 WINDOW 30"), "*1\r\n$1\r\nb\r\n");
    /* at 60 s bucket 0 leaves the 60 s window too (advanced by a write) */
    ck_assert_int_eq(lf_int(ks, T0 + S(60), "WRANK.INCRBY r c 1"), 1);
    ck_assert_str_eq(lf_run(ks, T0 + S(60), "WRANK.SCORE r a"), "$-1\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + S(60), "WRANK.SCORE r b"), 2);
    ck_assert_str_eq(lf_run(ks, T0 + S(60), "WRANK.SCORE r b WINDOW 30"), "$-1\r\n");
    /* b (bucket 2) leaves the 60 s window at 80 s, c (bucket 6) at 120 s */
    ck_assert(!cache_live_due(ks, T0 + S(79)));
    ck_assert(cache_live_due(ks, T0 + S(80)));
    ck_assert_int_eq(lf_int(ks, T0 + S(119), "__live.tick"), 0);
    ck_assert_str_eq(lf_run(ks, T0 + S(119), "WRANK.SCORE r b"), "$-1\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + S(119), "WRANK.SCORE r c"), 1);
    /* everything gone: the tick deletes the key and its memory */
    ck_assert(!cache_live_due(ks, T0 + S(119)));
    ck_assert(cache_live_due(ks, T0 + S(120)));
    ck_assert_int_eq(lf_int(ks, T0 + S(120), "__live.tick"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + S(120), "EXISTS r"), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), before);
}
END_TEST

START_TEST(test_large_negative)
{
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r a 9007199254740992"), 9007199254740992LL);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY r a 1"), "-ERR increment or decrement would overflow\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY r b 9007199254740993"),
                     "-ERR increment or decrement would overflow\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.SCORE r a"), 9007199254740992LL);
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r b -9007199254740992"), -9007199254740992LL);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.INCRBY r b -1"), "-ERR increment or decrement would overflow\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 5"), "*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    /* back to exactly 0: the member leaves the ranking */
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.INCRBY r b 9007199254740992"), 0);
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.TOP r 5"), "*1\r\n$1\r\na\r\n");
    /* negative scores rank below zero-free members */
    lf_int(ks, T0, "WRANK.INCRBY r c -3");
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.RANK r c"), 1);
}
END_TEST

/* Random increments (both signs) over time against a model that sums every
 * event inside each window at query time. */
typedef struct ev {
    uint64_t t;
    int m;
    int d;
} ev_t;

#define NEV 4000
#define NMEM 50

static uint64_t rng = 88172645463325252ull;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

START_TEST(test_against_model)
{
    static ev_t evs[NEV];
    const uint64_t res = 5, wins[2] = {20, 60};
    uint64_t t = T0;

    for (int i = 0; i < NEV; i++) {
        t += next_rand() % 700;
        evs[i].t = t;
        evs[i].m = (int)(next_rand() % NMEM);
        evs[i].d = (int)(next_rand() % 21) - 7;
        lf_int(ks, t, "WRANK.INCRBY r m%d %d RESOLUTION 5 WINDOW 20 WINDOW 60", evs[i].m, evs[i].d);
        if (i % 97 == 0 && cache_live_due(ks, t + 300))
            lf_int(ks, t + 300, "__live.tick");
        if (i % 250 != 249)
            continue;
        if (cache_live_due(ks, t + 400))
            lf_int(ks, t + 400, "__live.tick");
        for (int w = 0; w < 2; w++) {
            int64_t want[NMEM] = {0};
            int64_t nowb = (int64_t)((t + 400) / (res * 1000));

            for (int j = 0; j <= i; j++)
                if ((int64_t)(evs[j].t / (res * 1000)) > nowb - (int64_t)(wins[w] / res))
                    want[evs[j].m] += evs[j].d;
            for (int m = 0; m < NMEM; m++) {
                const char *r = lf_run(ks, t + 400, "WRANK.SCORE r m%d WINDOW %llu", m,
                                       (unsigned long long)wins[w]);

                if (want[m] == 0) {
                    ck_assert_msg(strcmp(r, "$-1\r\n") == 0, "m%d w%d: %s", m, w, r);
                } else {
                    char exp[32];

                    snprintf(exp, sizeof(exp), ":%lld\r\n", (long long)want[m]);
                    ck_assert_msg(strcmp(r, exp) == 0, "m%d w%d: %s want %s", m, w, r, exp);
                }
            }
        }
    }
}
END_TEST

START_TEST(test_many_members_top)
{
    const char *r;
    char want[64];

    for (int i = 0; i < 10000; i++)
        lf_int(ks, T0 + (uint64_t)i, "WRANK.INCRBY big m%05d %d", i, (i * 7919) % 10007);
    /* the top score is (i * 7919) mod 10007 = 10006 */
    r = lf_run(ks, T0 + 20000, "WRANK.TOP big 20 WITHSCORES");
    ck_assert(strncmp(r, "*40\r\n", 5) == 0);
    snprintf(want, sizeof(want), "$5\r\n10006\r\n");
    ck_assert(strstr(r, want) != NULL);
    /* scores come out non-increasing */
    {
        long long prev = 1LL << 60;
        const char *p = r + 5;

        for (int i = 0; i < 20; i++) {
            long long v;

            p = strchr(p, '\n') + 1;    /* member length */
            p = strchr(p, '\n') + 1;    /* member */
            p = strchr(p, '\n') + 1;    /* score length */
            v = atoll(p);
            ck_assert_int_le(v, prev);
            prev = v;
            p = strchr(p, '\n') + 1;
        }
    }
    /* m00000 scored 0, so it is not ranked; m00001 scored 7919 */
    ck_assert_str_eq(lf_run(ks, T0, "WRANK.RANK big m00000"), "$-1\r\n");
    {
        long long above = 0;

        for (int i = 1; i < 10000; i++)
            above += (i * 7919) % 10007 > 7919;
        ck_assert_int_eq(lf_int(ks, T0, "WRANK.RANK big m00001"), above);
    }
}
END_TEST

START_TEST(test_snapshot_and_replicas)
{
    cache_ks_t *b = cache_ks_new(), *c;
    struct evbuffer *s;
    size_t len;

    for (int i = 0; i < 600; i++) {
        uint64_t t = T0 + (uint64_t)i * 250;
        cache_ks_t *both[2] = {ks, b};

        for (int k = 0; k < 2; k++) {
            lf_int(both[k], t, "WRANK.INCRBY r m%d %d RESOLUTION 2 WINDOW 10 WINDOW 40", i % 13, i % 5 - 1);
            if (i % 10 == 0)
                lf_int(both[k], t, "__live.tick");
        }
    }
    ck_assert(lf_same_snapshot(ks, b, T0 + 150000));
    c = lf_clone(ks, T0 + 150000);
    ck_assert_str_eq(lf_run(c, T0 + 150000, "TYPE r"), "+wrank\r\n");
    for (int m = 0; m < 13; m++) {
        char a[256];

        snprintf(a, sizeof(a), "%s", lf_run(ks, T0 + 150000, "WRANK.SCORE r m%d WINDOW 10", m));
        ck_assert_str_eq(lf_run(c, T0 + 150000, "WRANK.SCORE r m%d WINDOW 10", m), a);
        snprintf(a, sizeof(a), "%s", lf_run(ks, T0 + 150000, "WRANK.RANK r m%d WINDOW 40", m));
        ck_assert_str_eq(lf_run(c, T0 + 150000, "WRANK.RANK r m%d WINDOW 40", m), a);
    }
    /* both keep moving the same way */
    ck_assert_int_eq(lf_int(c, T0 + 200000, "__live.tick"), lf_int(ks, T0 + 200000, "__live.tick"));
    ck_assert_int_eq(lf_int(c, T0, "EXISTS r"), 0);
    cache_ks_free(&c);
    /* truncated snapshots are refused */
    lf_int(b, T0 + 150000, "WRANK.INCRBY small x 1");
    lf_int(b, T0 + 150000, "WRANK.INCRBY small y 2");
    s = lf_snapshot(b, T0 + 150000);
    len = evbuffer_get_length(s);
    c = cache_ks_new();
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(cache_ks_restore(c, evbuffer_pullup(s, -1), cut), -EPROTO);
    cache_ks_free(&c);
    evbuffer_free(s);
    lf_flip_each_byte(b, T0 + 150000);
    cache_ks_free(&b);
}
END_TEST

START_TEST(test_generic_commands)
{
    long long m1, m2;

    lf_int(ks, T0, "WRANK.INCRBY r a 1");
    m1 = lf_int(ks, T0, "MEMORY USAGE r");
    for (int i = 0; i < 100; i++)
        lf_int(ks, T0, "WRANK.INCRBY r member-%d 1", i);
    m2 = lf_int(ks, T0, "MEMORY USAGE r");
    ck_assert_int_gt(m2, m1 + 100 * 32);
    ck_assert_str_eq(lf_run(ks, T0, "RENAME r q"), "+OK\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "WRANK.SCORE q a"), 1);
    /* the renamed ranking is still found and deleted by the tick */
    ck_assert_int_eq(lf_int(ks, T0 + S(86400), "__live.tick"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + S(86400), "EXISTS q"), 0);
    lf_int(ks, T0, "WRANK.INCRBY r a 1");
    ck_assert_int_eq(lf_int(ks, T0, "EXPIRE r 10"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + S(10) + 1, "EXISTS r"), 0);
    ck_assert_int_eq(lf_int(ks, T0, "DEL r"), 1);
}
END_TEST

static Suite *wrank_suite(void)
{
    Suite *s = suite_create("cache/wrank");
    TCase *tc = tcase_create("wrank");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, lf_setup, lf_teardown);
    tcase_add_test(tc, test_basic);
    tcase_add_test(tc, test_window_boundaries);
    tcase_add_test(tc, test_large_negative);
    tcase_add_test(tc, test_against_model);
    tcase_add_test(tc, test_many_members_top);
    tcase_add_test(tc, test_snapshot_and_replicas);
    tcase_add_test(tc, test_generic_commands);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(wrank_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
