/* Unit tests for oboro-bench's report rendering: the latency table, the
 * decade histogram and the JSON object. */
#include "cmd/oboro-bench/bench.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static char *take(struct evbuffer *b)
{
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);

    evbuffer_remove(b, s, n);
    s[n] = '\0';
    return s;
}

START_TEST(fmt)
{
    char b[32];

    ck_assert_str_eq(bench_fmt_ns(b, sizeof(b), 812), "812ns");
    ck_assert_str_eq(bench_fmt_ns(b, sizeof(b), 85830), "85.83us");
    ck_assert_str_eq(bench_fmt_ns(b, sizeof(b), 1675000), "1.675ms");
    ck_assert_str_eq(bench_fmt_ns(b, sizeof(b), 653000000), "653.000ms");
    ck_assert_str_eq(bench_fmt_ns(b, sizeof(b), 2896000000.0), "2.896s");
}
END_TEST

START_TEST(table)
{
    bench_hist_t *h = bench_hist_new();
    struct evbuffer *b = evbuffer_new();
    char *s, *line2, *line3;
    int i, bars = 0;

    /* 1000 requests: 990 at 100us, 9 at 2ms, 1 at 653ms */
    for (i = 0; i < 990; i++)
        bench_hist_record(h, 100000);
    for (i = 0; i < 9; i++)
        bench_hist_record(h, 2000000);
    bench_hist_record(h, 653000000);
    ck_assert_int_eq(bench_report_table(b, h), 0);
    s = take(b);
    ck_assert_str_eq(strtok(s, "\n"),
                     "       AVG |    50%ILE |    90%ILE |    95%ILE |    99%ILE |  99.5%ILE |       MAX |    STDDEV");
    line2 = strtok(NULL, "\n");
    line3 = strtok(NULL, "\n");
    /* columns line up under the header */
    ck_assert_uint_eq(strlen(line2), 94);
    for (i = 0; line2[i]; i++)
        bars += line2[i] == '|';
    ck_assert_int_eq(bars, 7);
    /* 2 ms lies inside a bucket 8.2 us wide: reported as its middle */
    ck_assert_str_eq(line2, "  770.00us |  100.00us |  100.00us |  100.00us |  100.00us |   2.003ms | 653.000ms |  20.636ms");
    ck_assert_str_eq(line3, "99.9%ILE: 2.003ms  99.99%ILE: 653.000ms");
    ck_assert_ptr_null(strtok(NULL, "\n"));
    free(s);

    ck_assert_int_eq(bench_report_decades(b, h), 0);
    s = take(b);
    ck_assert_ptr_nonnull(strstr(s, "   1ns ~ 10ns   |"));
    ck_assert_ptr_nonnull(strstr(s, "  10s ~        |"));
    /* 99% of the requests: 50 * 0.99 rounds to a 50-star bar */
    ck_assert_ptr_nonnull(strstr(s, " 100us ~ 1ms    |**************************************************|        990  99.000%\n"));
    /* a bin with any count shows at least one star */
    ck_assert_ptr_nonnull(strstr(s, " 100ms ~ 1s     |*                                                 |          1   0.100%\n"));
    ck_assert_ptr_nonnull(strstr(s, "   1ms ~ 10ms   |*                                                 |          9   0.900%\n"));
    ck_assert_ptr_nonnull(strstr(s, "    1s ~ 10s    |                                                  |          0   0.000%\n"));
    for (i = 0, line2 = s; (line2 = strchr(line2, '\n')) != NULL; line2++)
        i++;
    ck_assert_int_eq(i, BENCH_HIST_DECADES);
    free(s);

    ck_assert_int_eq(bench_report_json(b, h), 0);
    s = take(b);
    ck_assert_ptr_nonnull(strstr(s, "\"count\":1000,"));
    ck_assert_ptr_nonnull(strstr(s, "\"max_ns\":653000000,"));
    ck_assert_ptr_nonnull(strstr(s, "\"p50_ns\":100000,"));
    ck_assert_ptr_nonnull(strstr(s, "{\"from_ns\":100000,\"to_ns\":1000000,\"count\":990,\"percent\":99.0000}"));
    ck_assert_ptr_nonnull(strstr(s, "{\"from_ns\":10000000000,\"to_ns\":null,\"count\":0,\"percent\":0.0000}]}"));
    ck_assert_int_eq(s[0], '{');
    free(s);
    evbuffer_free(b);
    bench_hist_free(&h);
}
END_TEST

START_TEST(empty_table)
{
    bench_hist_t *h = bench_hist_new();
    struct evbuffer *b = evbuffer_new();
    char *s;

    ck_assert_int_eq(bench_report_table(b, h), 0);
    ck_assert_int_eq(bench_report_decades(b, h), 0);
    s = take(b);
    ck_assert_ptr_nonnull(strstr(s, "       0ns |       0ns |"));
    ck_assert_ptr_nonnull(strstr(s, "|          0   0.000%\n"));
    free(s);
    evbuffer_free(b);
    bench_hist_free(&h);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("bench/report");
    TCase *tc = tcase_create("render");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, fmt);
    tcase_add_test(tc, table);
    tcase_add_test(tc, empty_table);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
