/* core/metrics: registry and Prometheus text rendering. */
#include "core/metrics.h"

#include "core/arena.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdatomic.h>
#include <string.h>

#define MAX_BOUNDS 32

typedef enum { M_COUNTER, M_GAUGE, M_HISTOGRAM } mtype_t;

struct core_metric {
    mtype_t type;
    char *name;
    char *help;
    _Atomic int64_t value;   /* counter, gauge; histogram: count */
    _Atomic int64_t sum_us;  /* histogram */
    size_t nbounds;
    double bounds[MAX_BOUNDS];
    _Atomic int64_t buckets[MAX_BOUNDS];
};

typedef struct collector {
    core_metrics_collect_cb cb;
    void *arg;
} collector_t;

struct core_metrics {
    core_metric_t **v;
    size_t n, cap;
    collector_t *cols;
    size_t ncols;
};

static core_metrics_t *global;

core_metrics_t *core_metrics_new(void)
{
    return core_calloc(CORE_TAG_CORE, 1, sizeof(core_metrics_t));
}

void core_metrics_free(core_metrics_t **mp)
{
    core_metrics_t *m = *mp;

    if (m == NULL)
        return;
    for (size_t i = 0; i < m->n; i++) {
        core_free(m->v[i]->name);
        core_free(m->v[i]->help);
        core_free(m->v[i]);
    }
    core_free(m->v);
    core_free(m->cols);
    core_free(m);
    *mp = NULL;
}

core_metrics_t *core_metrics_global(void)
{
    if (global == NULL)
        global = core_metrics_new();
    return global;
}

void core_metrics_global_free(void)
{
    core_metrics_free(&global);
}

static core_metric_t *add(core_metrics_t *m, mtype_t type, const char *name, const char *help)
{
    core_metric_t *x;

    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->v[i]->name, name) == 0)
            return m->v[i]->type == type ? m->v[i] : NULL;
    if (m->n == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 64;
        core_metric_t **v = core_realloc(CORE_TAG_CORE, m->v, cap * sizeof(*v));

        if (v == NULL)
            return NULL;
        m->v = v;
        m->cap = cap;
    }
    x = core_calloc(CORE_TAG_CORE, 1, sizeof(*x));
    if (x == NULL)
        return NULL;
    x->type = type;
    x->name = core_strdup(CORE_TAG_CORE, name);
    x->help = core_strdup(CORE_TAG_CORE, help ? help : "");
    if (x->name == NULL || x->help == NULL) {
        core_free(x->name);
        core_free(x->help);
        core_free(x);
        return NULL;
    }
    m->v[m->n++] = x;
    return x;
}

core_metric_t *core_metrics_counter(core_metrics_t *m, const char *name, const char *help)
{
    return add(m, M_COUNTER, name, help);
}

core_metric_t *core_metrics_gauge(core_metrics_t *m, const char *name, const char *help)
{
    return add(m, M_GAUGE, name, help);
}

core_metric_t *core_metrics_histogram(core_metrics_t *m, const char *name, const char *help,
                                      const double *bounds, size_t nbounds)
{
    core_metric_t *x;

    if (nbounds > MAX_BOUNDS)
        return NULL;
    x = add(m, M_HISTOGRAM, name, help);
    if (x != NULL && x->nbounds == 0) {
        memcpy(x->bounds, bounds, nbounds * sizeof(*bounds));
        x->nbounds = nbounds;
    }
    return x;
}

int core_metrics_collector(core_metrics_t *m, core_metrics_collect_cb cb, void *arg)
{
    collector_t *c = core_realloc(CORE_TAG_CORE, m->cols, (m->ncols + 1) * sizeof(*c));

    if (c == NULL)
        return -ENOMEM;
    m->cols = c;
    c[m->ncols].cb = cb;
    c[m->ncols].arg = arg;
    m->ncols++;
    return 0;
}

void core_metric_inc(core_metric_t *c, int64_t by)
{
    if (c != NULL)
        atomic_fetch_add_explicit(&c->value, by, memory_order_relaxed);
}

void core_metric_set(core_metric_t *g, int64_t v)
{
    if (g != NULL)
        atomic_store_explicit(&g->value, v, memory_order_relaxed);
}

int64_t core_metric_value(const core_metric_t *c)
{
    return c ? atomic_load_explicit(&((core_metric_t *)c)->value, memory_order_relaxed) : 0;
}

void core_metric_observe_us(core_metric_t *h, int64_t us)
{
    double s = (double)us / 1e6;

    if (h == NULL)
        return;
    atomic_fetch_add_explicit(&h->value, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    for (size_t i = 0; i < h->nbounds; i++) {
        if (s <= h->bounds[i]) {
            atomic_fetch_add_explicit(&h->buckets[i], 1, memory_order_relaxed);
            break;
        }
    }
}

static size_t base_len(const char *name)
{
    const char *b = strchr(name, '{');

    return b ? (size_t)(b - name) : strlen(name);
}

/* The label part without braces ("" when none). */
static void labels(const char *name, const char **l, int *len)
{
    const char *b = strchr(name, '{');

    if (b == NULL) {
        *l = "";
        *len = 0;
    } else {
        *l = b + 1;
        *len = (int)(strlen(b + 1) - 1);
    }
}

int core_metrics_render(core_metrics_t *m, struct evbuffer *out)
{
    static const char *const tnames[] = {"counter", "gauge", "histogram"};

    for (size_t i = 0; i < m->n; i++) {
        core_metric_t *x = m->v[i];
        size_t bl = base_len(x->name);
        int header = 1;

        for (size_t j = 0; j < i; j++)
            if (base_len(m->v[j]->name) == bl && strncmp(m->v[j]->name, x->name, bl) == 0)
                header = 0;
        if (header)
            evbuffer_add_printf(out, "# HELP %.*s %s\n# TYPE %.*s %s\n", (int)bl, x->name,
                                x->help, (int)bl, x->name, tnames[x->type]);
        if (x->type != M_HISTOGRAM) {
            evbuffer_add_printf(out, "%s %lld\n", x->name, (long long)core_metric_value(x));
        } else {
            const char *l;
            int ll;
            int64_t cum = 0;

            labels(x->name, &l, &ll);
            for (size_t b = 0; b < x->nbounds; b++) {
                cum += atomic_load_explicit(&x->buckets[b], memory_order_relaxed);
                evbuffer_add_printf(out, "%.*s_bucket{%.*s%sle=\"%g\"} %lld\n", (int)bl, x->name,
                                    ll, l, ll ? "," : "", x->bounds[b], (long long)cum);
            }
            evbuffer_add_printf(out, "%.*s_bucket{%.*s%sle=\"+Inf\"} %lld\n", (int)bl, x->name,
                                ll, l, ll ? "," : "", (long long)core_metric_value(x));
            evbuffer_add_printf(out, "%.*s_sum%s%.*s%s %.6f\n", (int)bl, x->name, ll ? "{" : "",
                                ll, l, ll ? "}" : "",
                                (double)atomic_load(&x->sum_us) / 1e6);
            evbuffer_add_printf(out, "%.*s_count%s%.*s%s %lld\n", (int)bl, x->name,
                                ll ? "{" : "", ll, l, ll ? "}" : "",
                                (long long)core_metric_value(x));
        }
    }
    for (size_t i = 0; i < m->ncols; i++)
        m->cols[i].cb(out, m->cols[i].arg);
    return 0;
}
