/* oboro-bench: latency table, decade histogram and JSON rendering. */
#include "cmd/oboro-bench/bench.h"

#include <errno.h>
#include <event2/buffer.h>
#include <math.h>
#include <string.h>

#define BAR_WIDTH 50

static const double table_pcts[] = {50, 90, 95, 99, 99.5};
static const char *const decade_names[BENCH_HIST_DECADES] = {
    "1ns", "10ns", "100ns", "1us", "10us", "100us", "1ms", "10ms", "100ms", "1s", "10s",
};

char *bench_fmt_ns(char *buf, size_t size, double ns)
{
    if (ns < 1e3)
        snprintf(buf, size, "%.0fns", ns);
    else if (ns < 1e6)
        snprintf(buf, size, "%.2fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, size, "%.3fms", ns / 1e6);
    else
        snprintf(buf, size, "%.3fs", ns / 1e9);
    return buf;
}

static int add_cell(struct evbuffer *out, double ns, int last)
{
    char b[32];

    return evbuffer_add_printf(out, " %9s%s", bench_fmt_ns(b, sizeof(b), ns), last ? "\n" : " |") < 0;
}

int bench_report_table(struct evbuffer *out, const bench_hist_t *h)
{
    char a[32], b[32];
    size_t i;
    int bad = 0;

    bad |= evbuffer_add_printf(out, "%10s |%10s |%10s |%10s |%10s |%10s |%10s |%10s\n",
                               "AVG", "50%ILE", "90%ILE", "95%ILE", "99%ILE", "99.5%ILE",
                               "MAX", "STDDEV") < 0;
    bad |= add_cell(out, bench_hist_mean(h), 0);
    for (i = 0; i < sizeof(table_pcts) / sizeof(table_pcts[0]); i++)
        bad |= add_cell(out, (double)bench_hist_percentile(h, table_pcts[i]), 0);
    bad |= add_cell(out, (double)(h->n ? h->max : 0), 0);
    bad |= add_cell(out, bench_hist_stddev(h), 1);
    bad |= evbuffer_add_printf(out, "99.9%%ILE: %s  99.99%%ILE: %s\n",
                               bench_fmt_ns(a, sizeof(a), (double)bench_hist_percentile(h, 99.9)),
                               bench_fmt_ns(b, sizeof(b), (double)bench_hist_percentile(h, 99.99))) < 0;
    return bad ? -ENOMEM : 0;
}

int bench_report_decades(struct evbuffer *out, const bench_hist_t *h)
{
    char bar[BAR_WIDTH + 1];
    unsigned d;
    int bad = 0;

    for (d = 0; d < BENCH_HIST_DECADES; d++) {
        double pct = h->n ? 100.0 * (double)h->decades[d] / (double)h->n : 0.0;
        int len = (int)lround(pct / 100.0 * BAR_WIDTH);

        if (len == 0 && h->decades[d] > 0)
            len = 1;
        memset(bar, '*', (size_t)len);
        bar[len] = '\0';
        bad |= evbuffer_add_printf(out, "%6s ~ %-6s |%-*s| %10llu %7.3f%%\n", decade_names[d],
                                   d + 1 < BENCH_HIST_DECADES ? decade_names[d + 1] : "",
                                   BAR_WIDTH, bar, (unsigned long long)h->decades[d], pct) < 0;
    }
    return bad ? -ENOMEM : 0;
}

int bench_report_json(struct evbuffer *out, const bench_hist_t *h)
{
    uint64_t from = 1;
    unsigned d;
    int bad = 0;

    bad |= evbuffer_add_printf(out,
        "{\"count\":%llu,\"avg_ns\":%.1f,\"min_ns\":%llu,\"p50_ns\":%llu,\"p90_ns\":%llu,"
        "\"p95_ns\":%llu,\"p99_ns\":%llu,\"p99_5_ns\":%llu,\"p99_9_ns\":%llu,"
        "\"p99_99_ns\":%llu,\"max_ns\":%llu,\"stddev_ns\":%.1f,\"histogram\":[",
        (unsigned long long)h->n, bench_hist_mean(h), (unsigned long long)(h->n ? h->min : 0),
        (unsigned long long)bench_hist_percentile(h, 50),
        (unsigned long long)bench_hist_percentile(h, 90),
        (unsigned long long)bench_hist_percentile(h, 95),
        (unsigned long long)bench_hist_percentile(h, 99),
        (unsigned long long)bench_hist_percentile(h, 99.5),
        (unsigned long long)bench_hist_percentile(h, 99.9),
        (unsigned long long)bench_hist_percentile(h, 99.99),
        (unsigned long long)(h->n ? h->max : 0), bench_hist_stddev(h)) < 0;
    for (d = 0; d < BENCH_HIST_DECADES; d++, from *= 10) {
        double pct = h->n ? 100.0 * (double)h->decades[d] / (double)h->n : 0.0;

        if (d + 1 < BENCH_HIST_DECADES)
            bad |= evbuffer_add_printf(out, "%s{\"from_ns\":%llu,\"to_ns\":%llu,\"count\":%llu,\"percent\":%.4f}",
                                       d ? "," : "", (unsigned long long)from,
                                       (unsigned long long)from * 10,
                                       (unsigned long long)h->decades[d], pct) < 0;
        else
            bad |= evbuffer_add_printf(out, ",{\"from_ns\":%llu,\"to_ns\":null,\"count\":%llu,\"percent\":%.4f}",
                                       (unsigned long long)from,
                                       (unsigned long long)h->decades[d], pct) < 0;
    }
    bad |= evbuffer_add(out, "]}", 2) != 0;
    return bad ? -ENOMEM : 0;
}
