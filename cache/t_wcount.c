/* cache/t_wcount: windowed counters.
 *
 * A counter has buckets of RESOLUTION seconds and remembers SPAN seconds.
 * It keeps the running total of every increment ever made and, in a ring of
 * SPAN/RESOLUTION + 1 slots, the running total at the end of each recent
 * bucket; the count within the last k buckets is then one subtraction,
 * whatever the window: total - cum[now - k]. Writes take the batch time
 * (never a clock), so every node fills the same slots. */
#include "cache/t_live.h"

#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <string.h>

#define A(i) (&x->argv[(i)])
#define WC_DEF_RES 1
#define WC_DEF_SPAN 3600
#define WC_MAX_RES 86400
#define WC_MAX_BUCKETS 86400
#define WC_MAX_BUCKET_INDEX (1LL << 53) /* bucket numbers of Unix ms times are far below */

struct wcount {
    live_val_t lv;
    uint32_t res_s;     /* bucket width in seconds */
    uint32_t nb;        /* ring slots: span / res + 1 */
    int64_t total;      /* every increment ever */
    int64_t cur;        /* bucket of the newest write */
    int64_t cum[];      /* running total at the end of buckets (cur - nb, cur] */
};

static int64_t bucket_of(const wcount_t *w, uint64_t ms)
{
    return (int64_t)(ms / ((uint64_t)w->res_s * 1000));
}

static size_t slot(const wcount_t *w, int64_t b)
{
    int64_t m = b % (int64_t)w->nb;

    return (size_t)(m < 0 ? m + w->nb : m);
}

static wcount_t *wc_new(cache_ks_t *k, const char *key, size_t klen, uint32_t res, uint32_t nb)
{
    wcount_t *w = core_calloc(CORE_TAG_CACHE_VALUES, 1, sizeof(*w) + (size_t)nb * sizeof(int64_t));

    if (w == NULL)
        return NULL;
    w->res_s = res;
    w->nb = nb;
    if (live_val_init(k, &w->lv, CACHE_T_WCOUNT, key, klen) != 0) {
        core_free(w);
        return NULL;
    }
    return w;
}

void wcount_free(wcount_t *w)
{
    live_val_close(&w->lv);
    core_free(w);
}

size_t wcount_mem(const wcount_t *w)
{
    return sizeof(*w) + (size_t)w->nb * sizeof(int64_t) + w->lv.klen + 16;
}

static void advance(wcount_t *w, int64_t b)
{
    int64_t end;

    if (b <= w->cur)
        return;
    end = b - w->cur > (int64_t)w->nb ? w->cur + w->nb : b;
    for (int64_t i = w->cur + 1; i <= end; i++)
        w->cum[slot(w, i)] = w->total;
    w->cur = b;
}

int64_t wcount_sum(const wcount_t *w, uint64_t now_ms, uint32_t buckets)
{
    int64_t bt = bucket_of(w, now_ms), from, d;

    if (bt < w->cur)
        bt = w->cur;    /* a clock behind the newest write: read at the newest */
    if (buckets >= w->nb)
        buckets = w->nb - 1;
    from = bt - buckets;
    if (from >= w->cur)
        return 0;
    /* increments of both signs can make a window's sum exceed int64 */
    if (__builtin_sub_overflow(w->total, w->cum[slot(w, from)], &d))
        return w->total > 0 ? INT64_MAX : INT64_MIN;
    return d;
}

int wcount_expired(const wcount_t *w, uint64_t now_ms)
{
    return bucket_of(w, now_ms) - w->cur >= (int64_t)w->nb - 1;
}

/* WCOUNT.INCR key [BY n] [RESOLUTION s] [SPAN s] */
CMD(cmd_wcount_incr)
{
    long long by = 1, res = LLONG_MIN, span = LLONG_MIN; /* LLONG_MIN: not given */
    int wrong = 0;
    cache_entry_t *e;
    wcount_t *w;

    for (int i = 2; i < x->argc; i += 2) {
        long long *dst;

        if (arg_eq(A(i), "by"))
            dst = &by;
        else if (arg_eq(A(i), "resolution"))
            dst = &res;
        else if (arg_eq(A(i), "span"))
            dst = &span;
        else
            dst = NULL;
        if (dst == NULL || i + 1 >= x->argc) {
            add_err(x, err_syntax);
            return;
        }
        if (get_ll_or_reply(x, A(i + 1), dst, NULL) != 0)
            return;
    }
    if ((res != LLONG_MIN && res < 1) || (span != LLONG_MIN && span < 1))
        res = span = -1; /* given, but not a positive number: refused below */
    if (res == LLONG_MIN)
        res = 0;
    if (span == LLONG_MIN)
        span = 0;
    if (res < 0 || res > WC_MAX_RES || span < 0 || (span > 0 && res > 0 && span % res != 0) ||
        (span > 0 && span / (res ? res : WC_DEF_RES) > WC_MAX_BUCKETS) ||
        (span > 0 && span < (res ? res : WC_DEF_RES))) {
        add_err(x, "ERR RESOLUTION must be 1..86400 seconds and SPAN a multiple of it, "
                   "at most 86400 buckets");
        return;
    }
    e = lookup_typed(x, A(1), CACHE_T_WCOUNT, &wrong);
    if (wrong)
        return;
    if (e != NULL) {
        w = ent_ptr(e);
        if ((res && (uint32_t)res != w->res_s) || (span && (uint32_t)(span / w->res_s) != w->nb - 1)) {
            add_err(x, "ERR the counter exists with another RESOLUTION or SPAN");
            return;
        }
    } else {
        uint32_t r = res ? (uint32_t)res : WC_DEF_RES;
        uint32_t nb = (uint32_t)((span ? span : (WC_DEF_SPAN > r ? WC_DEF_SPAN : r)) / r) + 1;

        w = wc_new(x->ks, A(1)->p, A(1)->len, r, nb);
        if (w == NULL || cache_ks_add_ptr(x->ks, A(1)->p, A(1)->len, CACHE_T_WCOUNT, w) == NULL) {
            if (w != NULL)
                wcount_free(w);
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        w->cur = bucket_of(w, x->now_ms);
    }
    if ((by > 0 && w->total > INT64_MAX - by) || (by < 0 && w->total < INT64_MIN - by)) {
        add_err(x, "ERR increment or decrement would overflow");
        return;
    }
    advance(w, bucket_of(w, x->now_ms));
    w->total += by;
    w->cum[slot(w, w->cur)] = w->total;
    add_int(x, wcount_sum(w, x->now_ms, w->nb - 1));
}

/* WCOUNT.GET key WINDOW seconds */
CMD(cmd_wcount_get)
{
    long long win;
    int wrong = 0;
    cache_entry_t *e;
    wcount_t *w;
    uint64_t k;

    if (!arg_eq(A(2), "window")) {
        add_err(x, err_syntax);
        return;
    }
    if (get_ll_or_reply(x, A(3), &win, NULL) != 0)
        return;
    if (win < 1) {
        add_err(x, "ERR WINDOW must be a positive number of seconds");
        return;
    }
    e = lookup_typed(x, A(1), CACHE_T_WCOUNT, &wrong);
    if (wrong)
        return;
    if (e == NULL) {
        add_int(x, 0);
        return;
    }
    w = ent_ptr(e);
    k = ((uint64_t)win + w->res_s - 1) / w->res_s;
    if (k > w->nb - 1) {
        add_errf(x, "ERR WINDOW exceeds the counter's span of %llu seconds",
                 (unsigned long long)(w->nb - 1) * w->res_s);
        return;
    }
    add_int(x, wcount_sum(w, x->now_ms, (uint32_t)k));
}

/* ---- snapshot: u32 res | u32 nb | i64 total | i64 cur | nb x i64 ---------- */

int wcount_dump(const wcount_t *w, struct evbuffer *out)
{
    int64_t hdr[2] = {w->total, w->cur};
    uint32_t h32[2] = {w->res_s, w->nb};

    if (evbuffer_add(out, h32, sizeof(h32)) != 0 || evbuffer_add(out, hdr, sizeof(hdr)) != 0 ||
        evbuffer_add(out, w->cum, (size_t)w->nb * sizeof(int64_t)) != 0)
        return -ENOMEM;
    return 0;
}

int wcount_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp, size_t *left,
                wcount_t **out)
{
    uint32_t h32[2];
    int64_t hdr[2];
    wcount_t *w;

    if (live_get(pp, left, h32, sizeof(h32)) != 0 || live_get(pp, left, hdr, sizeof(hdr)) != 0)
        return -EPROTO;
    if (h32[0] < 1 || h32[0] > WC_MAX_RES || h32[1] < 2 || h32[1] > WC_MAX_BUCKETS + 1 ||
        hdr[1] < 0 || hdr[1] > WC_MAX_BUCKET_INDEX || *left < (size_t)h32[1] * sizeof(int64_t))
        return -EPROTO;
    w = wc_new(k, key, klen, h32[0], h32[1]);
    if (w == NULL)
        return -ENOMEM;
    w->total = hdr[0];
    w->cur = hdr[1];
    live_get(pp, left, w->cum, (size_t)w->nb * sizeof(int64_t));
    *out = w;
    return 0;
}
