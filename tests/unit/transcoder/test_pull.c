/* Unit tests for transcoder/pull: rules, URL templates, stream names,
 * timestamp normalisation and the reconnect backoff. */
#include "transcoder/pull_int.h"

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- rules -------------------------------------------------------------- */

static const struct {
    const char *text;
    int rv;
    const char *pattern, *url;
    tc_pull_mode_t mode;
} rule_cases[] = {
    {"live/* rtmp://origin:1935/live/$name", 0, "live/*", "rtmp://origin:1935/live/$name", TC_PULL_ON_DEMAND},
    {"live/* rtmp://o/live/$name on-demand", 0, "live/*", "rtmp://o/live/$name", TC_PULL_ON_DEMAND},
    {"  tv/news\thttp://o/$app/$name.flv   always  ", 0, "tv/news", "http://o/$app/$name.flv", TC_PULL_ALWAYS},
    {"*/* srt://o:9000?streamid=$app/$name", 0, "*/*", "srt://o:9000?streamid=$app/$name", TC_PULL_ON_DEMAND},
    {"", -EINVAL, NULL, NULL, 0},
    {"live/*", -EINVAL, NULL, NULL, 0},
    {"live/* rtmp://o/x sometimes", -EINVAL, NULL, NULL, 0},
    {"live/* rtmp://o/x always extra", -EINVAL, NULL, NULL, 0},
    {"live rtmp://o/x", -EINVAL, NULL, NULL, 0},
    {"/x rtmp://o/x", -EINVAL, NULL, NULL, 0},
    {"live/ rtmp://o/x", -EINVAL, NULL, NULL, 0},
    {"a/b/c rtmp://o/x", -EINVAL, NULL, NULL, 0},
    {"live/* not-a-url", -EINVAL, NULL, NULL, 0},
    {"live/* rtmp://o/$name always", -EINVAL, NULL, NULL, 0},   /* always needs one name */
    {"live/a?b rtmp://o/x always", -EINVAL, NULL, NULL, 0},
};

START_TEST(rule_parse_table)
{
    for (size_t i = 0; i < sizeof(rule_cases) / sizeof(rule_cases[0]); i++) {
        tc_pull_rule_t r;
        const char *why = NULL;
        int rv = tc_pull_rule_parse(rule_cases[i].text, &r, &why);

        ck_assert_msg(rv == rule_cases[i].rv, "case %zu '%s': %d", i, rule_cases[i].text, rv);
        if (rv == 0) {
            ck_assert_str_eq(r.pattern, rule_cases[i].pattern);
            ck_assert_str_eq(r.url, rule_cases[i].url);
            ck_assert_int_eq(r.mode, rule_cases[i].mode);
        } else {
            ck_assert_ptr_nonnull(why);
        }
    }
}
END_TEST

START_TEST(rule_parse_limits)
{
    char text[4096];
    tc_pull_rule_t r;
    const char *why;

    memset(text, 'a', sizeof(text) - 1);
    text[sizeof(text) - 1] = '\0';
    text[1] = '/';
    ck_assert_int_eq(tc_pull_rule_parse(text, &r, &why), -EINVAL);   /* pattern too long */
    snprintf(text, sizeof(text), "live/* rtmp://");
    memset(text + strlen(text), 'u', 2000);
    text[14 + 2000] = '\0';
    ck_assert_int_eq(tc_pull_rule_parse(text, &r, &why), -EINVAL);   /* URL too long */
}
END_TEST

START_TEST(rule_match)
{
    tc_pull_rule_t r;
    const char *why;

    ck_assert_int_eq(tc_pull_rule_parse("live/* rtmp://o/$name", &r, &why), 0);
    ck_assert(tc_pull_rule_match(&r, "live", "cam1"));
    ck_assert(!tc_pull_rule_match(&r, "tv", "cam1"));
    ck_assert(!tc_pull_rule_match(&r, "live", "a/b"));   /* '*' stops at '/' */
    ck_assert_int_eq(tc_pull_rule_parse("live/cam? rtmp://o/$name", &r, &why), 0);
    ck_assert(tc_pull_rule_match(&r, "live", "cam7"));
    ck_assert(!tc_pull_rule_match(&r, "live", "cam10"));
    ck_assert_int_eq(tc_pull_rule_parse("tv/news rtmp://o/tv/news always", &r, &why), 0);
    ck_assert(tc_pull_rule_match(&r, "tv", "news"));
    ck_assert(!tc_pull_rule_match(&r, "tv", "news2"));
}
END_TEST

START_TEST(names)
{
    static const struct { const char *s; int ok; } cases[] = {
        {"cam1", 1}, {"a.b-c_D9", 1}, {"", 0}, {".hidden", 0}, {"..", 0}, {"a/b", 0},
        {"a b", 0}, {"a?x=1", 0}, {"a%2f", 0}, {"a\"b", 0}, {"\xc3\xa9", 0},
    };
    char longname[120];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(tc_pull_name_valid(cases[i].s) == cases[i].ok, "case '%s'", cases[i].s);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ck_assert(!tc_pull_name_valid(longname));
    longname[99] = '\0';
    ck_assert(tc_pull_name_valid(longname));
}
END_TEST

START_TEST(url_expand)
{
    char out[64];

    ck_assert_int_eq(tc_pull_url_expand("rtmp://o/$app/$name", "live", "cam", out, sizeof(out)), 17);
    ck_assert_str_eq(out, "rtmp://o/live/cam");
    ck_assert_int_gt(tc_pull_url_expand("http://o/${app}x/${name}.flv?$nam", "a", "b", out, sizeof(out)), 0);
    ck_assert_str_eq(out, "http://o/ax/b.flv?$nam");
    ck_assert_int_eq(tc_pull_url_expand("no vars", "a", "b", out, sizeof(out)), 7);
    ck_assert_str_eq(out, "no vars");
    /* exactly fitting, one too long */
    ck_assert_int_eq(tc_pull_url_expand("$name", "a", "1234567", out, 8), 7);
    ck_assert_int_eq(tc_pull_url_expand("$name", "a", "12345678", out, 8), -ENAMETOOLONG);
    ck_assert_int_eq(tc_pull_url_expand("x", "a", "b", out, 0), -ENAMETOOLONG);
}
END_TEST

START_TEST(rtmp_url_parse)
{
    static const struct {
        const char *url;
        int rv;
        const char *host, *app, *stream;
        int port, numeric;
    } cases[] = {
        {"rtmp://127.0.0.1:1936/live/cam1", 0, "127.0.0.1", "live", "cam1", 1936, 1},
        {"rtmp://origin-1/live/cam1?token=x", 0, "origin-1", "live", "cam1?token=x", 1935, 0},
        {"rtmp://[::1]:1935/a/b/c", -EINVAL, NULL, NULL, NULL, 0, 0},   /* brackets: not supported */
        {"rtmp://10.0.0.2/app/inst/name", 0, "10.0.0.2", "app", "inst/name", 1935, 1},
        {"rtmp://h:0/a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp://h:99999/a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp://h:12x/a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp://h/a", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp://h/a/", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp:///a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmp://h", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"http://h/a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
        {"rtmps://h/a/b", -EINVAL, NULL, NULL, NULL, 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tc_pull_rtmp_url_t u;
        int rv = tc_pull_rtmp_url_parse(cases[i].url, &u);

        ck_assert_msg(rv == cases[i].rv, "case %s: %d", cases[i].url, rv);
        if (rv != 0)
            continue;
        ck_assert_str_eq(u.host, cases[i].host);
        ck_assert_str_eq(u.app, cases[i].app);
        ck_assert_str_eq(u.stream, cases[i].stream);
        ck_assert_int_eq(u.port, cases[i].port);
        ck_assert_int_eq(u.numeric, cases[i].numeric);
    }
}
END_TEST

/* ---- timestamps ---------------------------------------------------------- */

START_TEST(ts_starts_at_zero_and_follows)
{
    tc_pull_ts_t t = {0};

    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 90000), 0);
    ck_assert_int_eq(tc_pull_ts_map(&t, 1, 90010), 10);
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 90040), 40);
    /* audio slightly behind video is interleaving, not a jump */
    ck_assert_int_eq(tc_pull_ts_map(&t, 1, 90030), 30);
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 90080), 80);
    ck_assert_uint_eq(t.jumps, 0);
}
END_TEST

START_TEST(ts_never_backwards_per_track)
{
    tc_pull_ts_t t = {0};

    tc_pull_ts_map(&t, 0, 1000);
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 1100), 100);
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 1050), 100);   /* clamped */
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 1150), 150);
}
END_TEST

START_TEST(ts_wrap_and_jumps_continue)
{
    tc_pull_ts_t t = {0};
    int64_t out, prev;

    /* a 32-bit RTMP clock wrapping */
    tc_pull_ts_map(&t, 0, 4294967000LL);
    prev = tc_pull_ts_map(&t, 0, 4294967240LL);
    ck_assert_int_eq(prev, 240);
    out = tc_pull_ts_map(&t, 0, 40);
    ck_assert_int_eq(out, prev + 1);
    ck_assert_int_eq(tc_pull_ts_map(&t, 0, 80), prev + 41);
    ck_assert_uint_eq(t.jumps, 1);
    /* a jump forward by an hour: no hour-long gap in the output */
    prev = tc_pull_ts_map(&t, 1, 100);
    out = tc_pull_ts_map(&t, 0, 3600100);
    ck_assert_int_le(out, prev + 1 + 100);
    ck_assert_uint_eq(t.jumps, 2);
    /* random input never makes any track go backwards */
    {
        int64_t last[2] = {-1, -1}, in = 0;

        srand(7);
        for (int i = 0; i < 100000; i++) {
            int tr = rand() & 1;

            in += (rand() % 100) - 20;
            if (rand() % 1000 == 0)
                in += (rand() % 2 ? 1 : -1) * (int64_t)(rand() % 100000000);
            out = tc_pull_ts_map(&t, tr, in);
            ck_assert_int_ge(out, 0);
            ck_assert_int_ge(out, last[tr]);
            last[tr] = out;
        }
    }
}
END_TEST

/* ---- backoff ------------------------------------------------------------- */

START_TEST(backoff_doubles_to_30s_with_jitter)
{
    static const uint64_t base[] = {1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000};

    for (unsigned a = 1; a <= 8; a++) {
        uint64_t lo = UINT64_MAX, hi = 0;

        for (uint32_t r = 0; r < 5000; r++) {
            uint64_t ms = tc_pull_backoff_ms(a, r * 2654435761u);

            lo = ms < lo ? ms : lo;
            hi = ms > hi ? ms : hi;
        }
        ck_assert_uint_le(hi, base[a - 1]);
        ck_assert_uint_ge(lo, base[a - 1] - base[a - 1] / 4);
        ck_assert_uint_gt(hi - lo, base[a - 1] / 8);   /* there is jitter */
    }
    ck_assert_uint_le(tc_pull_backoff_ms(1000000, 0), 30000);
    ck_assert_uint_ge(tc_pull_backoff_ms(0, 0), 750);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("transcoder/pull");
    TCase *tc;
    SRunner *sr;
    int failed;

    tc = tcase_create("rules");
    tcase_add_test(tc, rule_parse_table);
    tcase_add_test(tc, rule_parse_limits);
    tcase_add_test(tc, rule_match);
    tcase_add_test(tc, names);
    tcase_add_test(tc, url_expand);
    tcase_add_test(tc, rtmp_url_parse);
    suite_add_tcase(s, tc);
    tc = tcase_create("timestamps");
    tcase_add_test(tc, ts_starts_at_zero_and_follows);
    tcase_add_test(tc, ts_never_backwards_per_track);
    tcase_add_test(tc, ts_wrap_and_jumps_continue);
    suite_add_tcase(s, tc);
    tc = tcase_create("backoff");
    tcase_add_test(tc, backoff_doubles_to_30s_with_jitter);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
