/* core/metrics: counters, gauges and histograms in one registry, rendered
 * in the Prometheus text exposition format.
 *
 * Updates are lock-free (relaxed atomics) and may come from any thread.
 * Registration and rendering happen on the loop thread. Names may carry a
 * label set ("oboro_rtmp_bytes_total{dir=\"in\"}"); metrics that share a
 * base name are rendered under one HELP/TYPE header. */
#ifndef CORE_METRICS_H
#define CORE_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

typedef struct core_metrics core_metrics_t;
typedef struct core_metric core_metric_t;

/* Called while rendering to append further exposition lines (for values
 * computed on demand, such as memory per tag). */
typedef void (*core_metrics_collect_cb)(struct evbuffer *out, void *arg);

core_metrics_t *core_metrics_new(void);
void core_metrics_free(core_metrics_t **mp);

/* Register a metric. name and help are copied. Returns NULL on -ENOMEM or
 * when the name is already registered with another type. Registering the
 * same name and type twice returns the existing metric. Owned by the
 * registry. bounds: histogram bucket upper bounds in seconds, ascending,
 * copied; at most 32. */
core_metric_t *core_metrics_counter(core_metrics_t *m, const char *name, const char *help);
core_metric_t *core_metrics_gauge(core_metrics_t *m, const char *name, const char *help);
core_metric_t *core_metrics_histogram(core_metrics_t *m, const char *name, const char *help,
                                      const double *bounds, size_t nbounds);

/* Add a collector. Returns 0 or -ENOMEM. */
int core_metrics_collector(core_metrics_t *m, core_metrics_collect_cb cb, void *arg);

void core_metric_inc(core_metric_t *c, int64_t by);     /* counter or gauge */
void core_metric_set(core_metric_t *g, int64_t v);      /* gauge */
void core_metric_observe_us(core_metric_t *h, int64_t us); /* histogram, microseconds */
int64_t core_metric_value(const core_metric_t *c);

/* Append the whole exposition to out. Returns 0 or -ENOMEM. */
int core_metrics_render(core_metrics_t *m, struct evbuffer *out);

/* The process-wide registry the daemon renders on /metrics. Created on
 * first use; freed by core_metrics_global_free(). */
core_metrics_t *core_metrics_global(void);
void core_metrics_global_free(void);

#endif
