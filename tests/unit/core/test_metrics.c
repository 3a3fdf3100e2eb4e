/* Unit tests for core/metrics: registry and Prometheus text. */
#include "core/metrics.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

static char *render(core_metrics_t *m)
{
    static char buf[8192];
    struct evbuffer *b = evbuffer_new();
    size_t n;

    ck_assert_int_eq(core_metrics_render(m, b), 0);
    n = evbuffer_remove(b, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    evbuffer_free(b);
    return buf;
}

static void extra(struct evbuffer *out, void *arg)
{
    evbuffer_add_printf(out, "extra_metric %d\n", *(int *)arg);
}

START_TEST(counter_gauge)
{
    core_metrics_t *m = core_metrics_new();
    core_metric_t *c = core_metrics_counter(m, "oboro_x_total{dir=\"in\"}", "X.");
    core_metric_t *c2 = core_metrics_counter(m, "oboro_x_total{dir=\"out\"}", "X.");
    core_metric_t *g = core_metrics_gauge(m, "oboro_g", "G.");
    char *out;

    core_metric_inc(c, 5);
    core_metric_inc(c2, 1);
    core_metric_set(g, -3);
    ck_assert_ptr_eq(core_metrics_counter(m, "oboro_x_total{dir=\"in\"}", "X."), c);
    ck_assert_ptr_null(core_metrics_gauge(m, "oboro_x_total{dir=\"in\"}", "X."));
    out = render(m);
    ck_assert_ptr_nonnull(strstr(out, "# HELP oboro_x_total X.\n# TYPE oboro_x_total counter\n"
                                      "oboro_x_total{dir=\"in\"} 5\noboro_x_total{dir=\"out\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "# TYPE oboro_g gauge\noboro_g -3\n"));
    /* one header per base name */
    ck_assert_ptr_null(strstr(strstr(out, "# TYPE oboro_x_total") + 1, "# TYPE oboro_x_total"));
    core_metrics_free(&m);
    ck_assert_ptr_null(m);
}
END_TEST

START_TEST(histogram)
{
    core_metrics_t *m = core_metrics_new();
    static const double b[] = {0.001, 0.01, 0.1};
    core_metric_t *h = core_metrics_histogram(m, "oboro_lat_seconds", "L.", b, 3);
    int v = 7;
    char *out;

    core_metric_observe_us(h, 500);    /* 0.0005 */
    core_metric_observe_us(h, 5000);   /* 0.005 */
    core_metric_observe_us(h, 500000); /* 0.5 */
    core_metrics_collector(m, extra, &v);
    out = render(m);
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_bucket{le=\"0.001\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_bucket{le=\"0.01\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_bucket{le=\"0.1\"} 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_bucket{le=\"+Inf\"} 3\n"));
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_sum 0.505500\n"));
    ck_assert_ptr_nonnull(strstr(out, "oboro_lat_seconds_count 3\n"));
    ck_assert_ptr_nonnull(strstr(out, "extra_metric 7\n"));
    core_metrics_free(&m);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/metrics");
    TCase *tc = tcase_create("registry");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, counter_gauge);
    tcase_add_test(tc, histogram);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
