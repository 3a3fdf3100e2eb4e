/* Unit tests for oboro-bench's parsers: rates, durations, sizes, RESP
 * replies, smaps_rollup. */
#include "cmd/oboro-bench/bench.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(rates)
{
    static const struct { const char *in; int rv; double per_s; } cases[] = {
        {"150000/min", 0, 2500},
        {"150000/m", 0, 2500},
        {"2500/s", 0, 2500},
        {"2500/sec", 0, 2500},
        {"2500", 0, 2500},
        {"0.5", 0, 0.5},
        {"9000/h", 0, 2.5},
        {"3/ms", 0, 3000},
        {"1e3/s", 0, 1000},
        {"max", 0, 0},
        {"MAX", 0, 0},
        {"0", 0, 0},
        {"", -EINVAL, 0},
        {"/s", -EINVAL, 0},
        {"-5/s", -EINVAL, 0},
        {"10/fortnight", -EINVAL, 0},
        {"10 /s", -EINVAL, 0},
        {"abc", -EINVAL, 0},
        {"nan", -EINVAL, 0},
        {"inf/s", -EINVAL, 0},
        {"1e300/s", -EINVAL, 0},
        {"2000000000", -EINVAL, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        double v = -1;
        int rv = bench_rate_parse(cases[i].in, &v);

        ck_assert_msg(rv == cases[i].rv, "'%s': rv %d", cases[i].in, rv);
        if (rv == 0)
            ck_assert_msg(v == cases[i].per_s, "'%s': %f", cases[i].in, v);
        else
            ck_assert_msg(v == -1, "'%s': output written on error", cases[i].in);
    }
    ck_assert_int_eq(bench_rate_parse(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(durations)
{
    static const struct { const char *in; int rv; uint64_t ns; } cases[] = {
        {"30s", 0, 30000000000ULL},
        {"10m", 0, 600000000000ULL},
        {"10min", 0, 600000000000ULL},
        {"1h", 0, 3600000000000ULL},
        {"500ms", 0, 500000000ULL},
        {"2", 0, 2000000000ULL},
        {"1.5s", 0, 1500000000ULL},
        {"250us", 0, 250000ULL},
        {"0", -EINVAL, 0},
        {"0s", -EINVAL, 0},
        {"-1s", -EINVAL, 0},
        {"s", -EINVAL, 0},
        {"10x", -EINVAL, 0},
        {"31d", -EINVAL, 0},
        {"1000h", -EINVAL, 0},
        {"", -EINVAL, 0},
    };
    size_t i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t v = 7;
        int rv = bench_duration_parse(cases[i].in, &v);

        ck_assert_msg(rv == cases[i].rv, "'%s': rv %d", cases[i].in, rv);
        ck_assert_msg(v == (rv == 0 ? cases[i].ns : 7), "'%s': %llu", cases[i].in,
                      (unsigned long long)v);
    }
}
END_TEST

START_TEST(sizes)
{
    uint64_t v = 0;

    ck_assert_int_eq(bench_size_parse("64", 1 << 20, &v), 0);
    ck_assert_uint_eq(v, 64);
    ck_assert_int_eq(bench_size_parse("4kb", 1 << 20, &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(bench_size_parse("1m", 1 << 20, &v), 0);
    ck_assert_uint_eq(v, 1 << 20);
    ck_assert_int_eq(bench_size_parse("2m", 1 << 20, &v), -EINVAL);
    ck_assert_int_eq(bench_size_parse("99999999999999999999999", UINT64_MAX, &v), -EINVAL);
    ck_assert_int_eq(bench_size_parse("-1", 1 << 20, &v), -EINVAL);
    ck_assert_int_eq(bench_size_parse("1q", 1 << 20, &v), -EINVAL);
    ck_assert_int_eq(bench_size_parse("", 1 << 20, &v), -EINVAL);
}
END_TEST

/* Reply cases: input, bytes one reply takes (or an error), error reply. */
static const struct { const char *in; size_t len; ssize_t want; int is_err; } replies[] = {
    {"+OK\r\n", 5, 5, 0},
    {"-ERR unknown command\r\n", 22, 22, 1},
    {":1000\r\n", 7, 7, 0},
    {":-3\r\n", 5, 5, 0},
    {"$5\r\nhello\r\n", 11, 11, 0},
    {"$0\r\n\r\n", 6, 6, 0},
    {"$-1\r\n", 5, 5, 0},
    {"*-1\r\n", 5, 5, 0},
    {"*0\r\n", 4, 4, 0},
    {"*2\r\n$1\r\na\r\n:2\r\n", 15, 15, 0},
    {"*2\r\n*1\r\n+x\r\n*0\r\n", 16, 16, 0},
    {"+OK\r\n+OK\r\n", 10, 5, 0},                       /* one reply at a time */
    {"_\r\n", 3, 3, 0},
    {"#t\r\n", 4, 4, 0},
    {",3.14\r\n", 7, 7, 0},
    {"(12345678901234567890123\r\n", 26, 26, 0},
    {"%1\r\n+k\r\n:1\r\n", 12, 12, 0},
    {"~2\r\n:1\r\n:2\r\n", 12, 12, 0},
    {">2\r\n+a\r\n+b\r\n", 12, 12, 0},
    {"!3\r\nERR\r\n", 9, 9, 1},
    {"=7\r\ntxt:abc\r\n", 13, 13, 0},
    {"|1\r\n+k\r\n:1\r\n+OK\r\n", 17, 17, 0},           /* attribute, then the value */
    {"$5\r\nhel\r\n\r\n", 11, 11, 0},                   /* CRLF inside a bulk is data */
    /* malformed */
    {"?\r\n", 3, -EPROTO, 0},
    {"+OK\n", 4, -EPROTO, 0},
    {"+O\rK\r\n", 6, -EPROTO, 0},
    {":12a\r\n", 6, -EPROTO, 0},
    {":\r\n", 3, -EPROTO, 0},
    {"$-2\r\n", 5, -EPROTO, 0},
    {"$3\r\nabcd\r\n", 10, -EPROTO, 0},
    {"$999999999999\r\n", 15, -EPROTO, 0},
    {"*-2\r\n", 5, -EPROTO, 0},
    {"*99999999\r\n", 11, -EPROTO, 0},
    {"#x\r\n", 4, -EPROTO, 0},
    {"_x\r\n", 4, -EPROTO, 0},
    {"~-1\r\n", 5, -EPROTO, 0},
};

START_TEST(reply_cases)
{
    size_t i, cut;

    for (i = 0; i < sizeof(replies) / sizeof(replies[0]); i++) {
        const char *in = replies[i].in;
        size_t len = strlen(in);
        int is_err = -1;
        ssize_t n;
        char *copy = malloc(len);

        /* an exact-size heap copy lets ASan catch any read past the end */
        memcpy(copy, in, len);
        n = bench_reply_skip(copy, len, &is_err);
        ck_assert_msg(n == replies[i].want, "case %zu: %zd", i, n);
        ck_assert_int_eq(is_err, replies[i].is_err);
        /* every proper prefix needs more input, or is already malformed */
        for (cut = 0; cut < len; cut++) {
            ssize_t m = bench_reply_skip(copy, cut, NULL);
            size_t whole = replies[i].want > 0 ? (size_t)replies[i].want : len;

            if (cut < whole)
                ck_assert_msg(m == -EAGAIN || (replies[i].want < 0 && m == -EPROTO),
                              "case %zu cut %zu: %zd", i, cut, m);
            else
                ck_assert_msg(m == replies[i].want, "case %zu cut %zu: %zd", i, cut, m);
        }
        free(copy);
    }
}
END_TEST

START_TEST(reply_limits)
{
    char buf[1024];
    size_t n = 0;
    int i;

    /* nesting deeper than the limit is malformed, at the limit fine */
    for (i = 0; i < BENCH_REPLY_MAX_DEPTH; i++)
        n += (size_t)sprintf(buf + n, "*1\r\n");
    n += (size_t)sprintf(buf + n, ":1\r\n");
    ck_assert_int_eq(bench_reply_skip(buf, n, NULL), (ssize_t)n);
    n = 0;
    for (i = 0; i < BENCH_REPLY_MAX_DEPTH + 1; i++)
        n += (size_t)sprintf(buf + n, "*1\r\n");
    n += (size_t)sprintf(buf + n, ":1\r\n");
    ck_assert_int_eq(bench_reply_skip(buf, n, NULL), -EPROTO);
    /* a status line without an end is malformed once it passes the limit */
    {
        size_t big = BENCH_REPLY_MAX_LINE + 10;
        char *line = malloc(big);

        line[0] = '+';
        memset(line + 1, 'a', big - 1);
        ck_assert_int_eq(bench_reply_skip(line, 100, NULL), -EAGAIN);
        ck_assert_int_eq(bench_reply_skip(line, big, NULL), -EPROTO);
        free(line);
    }
    ck_assert_int_eq(bench_reply_skip("", 0, NULL), -EAGAIN);
}
END_TEST

static const char rollup[] =
    "561c477c0000-7fffb197a000 ---p 00000000 00:00 0                          [rollup]\n"
    "Rss:                1784 kB\n"
    "Pss:                 410 kB\n"
    "Shared_Clean:       1588 kB\n"
    "Private_Clean:        84 kB\n"
    "Private_Dirty:       112 kB\n"
    "LazyFree:             16 kB\n"
    "Shared_Hugetlb:     2048 kB\n"
    "Private_Hugetlb:    4096 kB\n"
    "Swap:                  0 kB\n";

START_TEST(smaps)
{
    bench_mem_t m;
    char bad[sizeof(rollup)];

    ck_assert_int_eq(bench_smaps_parse(rollup, strlen(rollup), &m), 0);
    ck_assert_int_eq(m.rss_kb, 1784);
    ck_assert_int_eq(m.private_clean_kb, 84);
    ck_assert_int_eq(m.private_dirty_kb, 112);
    ck_assert_int_eq(m.private_hugetlb_kb, 4096);
    ck_assert_int_eq(m.lazyfree_kb, 16);
    ck_assert_int_eq(bench_mem_private_kb(&m), 84 + 112 + 4096);
    /* without the optional lines */
    ck_assert_int_eq(bench_smaps_parse("Private_Clean: 1 kB\nPrivate_Dirty: 2 kB", 39, &m), 0);
    ck_assert_int_eq(bench_mem_private_kb(&m), 3);
    ck_assert_int_eq(m.lazyfree_kb, 0);
    /* Private_Dirty missing, or a malformed number */
    ck_assert_int_eq(bench_smaps_parse("Private_Clean: 1 kB\n", 20, &m), -EPROTO);
    memcpy(bad, rollup, sizeof(rollup));
    memcpy(strstr(bad, "112 kB"), "1x2", 3);
    ck_assert_int_eq(bench_smaps_parse(bad, strlen(bad), &m), -EPROTO);
    ck_assert_int_eq(bench_smaps_parse("", 0, &m), -EPROTO);
}
END_TEST

START_TEST(smaps_self)
{
    bench_mem_t m;

    ck_assert_int_eq(bench_smaps_read(getpid(), &m), 0);
    ck_assert_int_gt(bench_mem_private_kb(&m), 0);
    ck_assert_int_eq(bench_smaps_read(0x3fffffff, &m), -ENOENT);
}
END_TEST

/* FLV: a header, a video keyframe tag of 5 bytes, an audio tag of 0. */
static const uint8_t flv[] = {
    'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0,
    9, 0, 0, 5, 0x12, 0x34, 0x56, 0x01, 0, 0, 0, 0x17, 1, 0, 0, 0, 0, 0, 0, 16,
    8, 0, 0, 0, 0, 0, 0x28, 0, 0, 0, 0, 0, 0, 0, 11,
};

START_TEST(flv_tags)
{
    bench_flv_tag_t t;
    size_t cut;

    ck_assert_int_eq(bench_flv_header_parse(flv, sizeof(flv)), 13);
    ck_assert_int_eq(bench_flv_tag_parse(flv + 13, sizeof(flv) - 13, &t), 20);
    ck_assert_uint_eq(t.type, 9);
    ck_assert_uint_eq(t.size, 5);
    ck_assert_uint_eq(t.timestamp_ms, 0x01123456);
    ck_assert_int_eq(t.keyframe, 1);
    ck_assert_int_eq(bench_flv_tag_parse(flv + 33, sizeof(flv) - 33, &t), 15);
    ck_assert_uint_eq(t.type, 8);
    ck_assert_uint_eq(t.timestamp_ms, 0x28);
    ck_assert_int_eq(t.keyframe, 0);
    /* split at every byte: need more, never malformed */
    for (cut = 0; cut < 13; cut++)
        ck_assert_int_eq(bench_flv_header_parse(flv, cut), -EAGAIN);
    for (cut = 0; cut < 20; cut++)
        ck_assert_int_eq(bench_flv_tag_parse(flv + 13, cut, &t), -EAGAIN);
}
END_TEST

START_TEST(flv_malformed)
{
    uint8_t b[sizeof(flv)];
    bench_flv_tag_t t;

    ck_assert_int_eq(bench_flv_header_parse((const uint8_t *)"FLX", 3), -EPROTO);
    ck_assert_int_eq(bench_flv_header_parse((const uint8_t *)"G", 1), -EPROTO);
    memcpy(b, flv, sizeof(b));
    b[8] = 8; /* header offset below 9 */
    ck_assert_int_eq(bench_flv_header_parse(b, sizeof(b)), -EPROTO);
    memcpy(b, flv, sizeof(b));
    b[13] = 7; /* unknown tag type */
    ck_assert_int_eq(bench_flv_tag_parse(b + 13, sizeof(b) - 13, &t), -EPROTO);
    b[13] = 9 | 0x20; /* filtered (encrypted) */
    ck_assert_int_eq(bench_flv_tag_parse(b + 13, sizeof(b) - 13, &t), -EPROTO);
    memcpy(b, flv, sizeof(b));
    b[32] = 17; /* PreviousTagSize does not match */
    ck_assert_int_eq(bench_flv_tag_parse(b + 13, sizeof(b) - 13, &t), -EPROTO);
    memcpy(b, flv, sizeof(b));
    b[14] = 0x50; /* 5 MiB + 5: above the limit, rejected before it arrives */
    b[15] = 0x00;
    ck_assert_int_eq(bench_flv_tag_parse(b + 13, 11, &t), -EPROTO);
}
END_TEST

START_TEST(proc_stat)
{
    static const char st[] = "28004 (a (b) c) R 27907 27907 6027 0 -1 4194304 100 0 0 0 "
                             "120 35 0 0 20 0 1 0 113595 3133440 390\n";
    uint64_t ticks = 0;

    ck_assert_int_eq(bench_stat_parse(st, strlen(st), &ticks), 0);
    ck_assert_uint_eq(ticks, 155);
    ck_assert_int_eq(bench_stat_parse("1 (x) R 1 2", 11, &ticks), -EPROTO);
    ck_assert_int_eq(bench_stat_parse("no parens", 9, &ticks), -EPROTO);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench/parse");
    TCase *tv = tcase_create("values");
    TCase *tr = tcase_create("replies");
    TCase *tm = tcase_create("smaps");
    SRunner *sr;
    int failed;

    tcase_add_test(tv, rates);
    tcase_add_test(tv, durations);
    tcase_add_test(tv, sizes);
    tcase_add_test(tr, reply_cases);
    tcase_add_test(tr, reply_limits);
    tcase_add_test(tm, smaps);
    tcase_add_test(tm, smaps_self);
    tcase_add_test(tm, proc_stat);
    tcase_add_test(tr, flv_tags);
    tcase_add_test(tr, flv_malformed);
    suite_add_tcase(s, tv);
    suite_add_tcase(s, tr);
    suite_add_tcase(s, tm);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
