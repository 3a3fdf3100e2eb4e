/* cache/t_wrank: windowed rankings.
 *
 * A ranking has buckets of RESOLUTION seconds; each bucket holds the sum of
 * the deltas each member received in it (a small hash). For each of its
 * windows (up to WR_MAXWIN, each a whole number of buckets) the ranking
 * keeps an ordered aggregate, a sorted set whose score is the member's sum
 * over the buckets inside the window. An increment updates the current
 * bucket and every aggregate; when time moves on, each bucket that leaves a
 * window is subtracted from that window's aggregate, and a bucket that
 * leaves the largest window is freed. Queries read an aggregate: top-N is
 * O(log n + N), never a union of buckets.
 *
 * Sums are integers kept exactly (|sum| <= 2^53, so the double scores of
 * the aggregates are exact); a member whose sum in a window returns to 0
 * leaves that window's aggregate. Time is the batch's (the leader's clock
 * in the log entry); the leader replicates __live.tick when buckets are due
 * to leave a window, so reads see windows at most one cron tick late. */
#include "cache/t_live.h"

#include <errno.h>
#include <limits.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define A(i) (&x->argv[(i)])
#define WR_MAXWIN 4
#define WR_DEF_RES 60
#define WR_MAX_RES 86400
#define WR_MAX_BUCKETS 86400
#define WR_MAX_ABS 9007199254740992LL /* 2^53 */
#define CELL_OFF offsetof(wcell_t, key)

typedef struct wcell {
    ht_node_t h;
    int64_t v;
    char key[];
} wcell_t;

struct wrank {
    live_val_t lv;
    uint32_t res_s;
    uint32_t nwin;
    uint32_t win[WR_MAXWIN];    /* window lengths in buckets, ascending */
    zset_t *agg[WR_MAXWIN];
    uint32_t nb;                /* ring slots = the largest window */
    uint32_t nused;             /* non-NULL ring slots */
    int64_t cur;                /* newest bucket */
    size_t ncells, cellbytes;
    ht_t **ring;                /* bucket b at ring[b mod nb]; NULL = empty */
};

static int64_t bucket_of(const wrank_t *r, uint64_t ms)
{
    return (int64_t)(ms / ((uint64_t)r->res_s * 1000));
}

static size_t slot(const wrank_t *r, int64_t b)
{
    int64_t m = b % (int64_t)r->nb;

    return (size_t)(m < 0 ? m + r->nb : m);
}

static void cell_free_cb(void *arg, ht_node_t *n)
{
    wrank_t *r = arg;

    r->ncells--;
    r->cellbytes -= n->klen;
    core_free(n);
}

static void bucket_free(wrank_t *r, size_t s)
{
    if (r->ring[s] == NULL)
        return;
    ht_foreach(r->ring[s], cell_free_cb, r);
    ht_close(r->ring[s]);
    core_free(r->ring[s]);
    r->ring[s] = NULL;
    r->nused--;
}

void wrank_free(wrank_t *r)
{
    if (r == NULL)
        return;
    if (r->ring != NULL)
        for (uint32_t i = 0; i < r->nb; i++)
            bucket_free(r, i);
    for (uint32_t j = 0; j < r->nwin; j++)
        zset_free(r->agg[j]);
    core_free(r->ring);
    live_val_close(&r->lv);
    core_free(r);
}

/* New empty ranking (windows in buckets, ascending, distinct). */
static wrank_t *wr_new(cache_ks_t *k, const char *key, size_t klen, uint32_t res, uint32_t nwin,
                       const uint32_t *win)
{
    wrank_t *r = core_calloc(CORE_TAG_CACHE_VALUES, 1, sizeof(*r));

    if (r == NULL)
        return NULL;
    r->res_s = res;
    r->nwin = nwin;
    memcpy(r->win, win, nwin * sizeof(win[0]));
    r->nb = win[nwin - 1];
    r->ring = core_calloc(CORE_TAG_CACHE_VALUES, r->nb, sizeof(r->ring[0]));
    if (r->ring == NULL)
        goto fail;
    for (uint32_t j = 0; j < nwin; j++) {
        r->agg[j] = zset_new();
        if (r->agg[j] == NULL)
            goto fail;
    }
    if (live_val_init(k, &r->lv, CACHE_T_WRANK, key, klen) != 0)
        goto fail;
    return r;
fail:
    for (uint32_t j = 0; j < nwin; j++)
        zset_free(r->agg[j]);
    core_free(r->ring);
    core_free(r);
    return NULL;
}

size_t wrank_mem(const wrank_t *r)
{
    size_t n = sizeof(*r) + (size_t)r->nb * sizeof(r->ring[0]) + r->lv.klen + 16;

    n += r->ncells * (sizeof(wcell_t) + 16 + sizeof(void *)) + r->cellbytes;
    n += r->nused * (sizeof(ht_t) + 16);
    for (uint32_t j = 0; j < r->nwin; j++) {
        const zset_t *z = r->agg[j];

        n += sizeof(*z) + (z->dict.mask[0] + 1) * sizeof(void *) +
             z->length * (sizeof(zmember_t) + sizeof(zsl_node_t) + 2 * sizeof(struct zsl_level) + 32);
    }
    return n;
}

/* Add d to member's score in z (removed at exactly 0). */
static int agg_add(zset_t *z, const char *m, size_t ml, int64_t d)
{
    zmember_t *zm = zset_find(z, m, ml);
    double s = (zm != NULL ? zm->score : 0) + (double)d;

    if (s == 0)
        return zm != NULL ? (zset_del(z, m, ml), 0) : 0;
    return zset_set(z, m, ml, s) < 0 ? -ENOMEM : 0;
}

typedef struct sub_ctx {
    zset_t *z;
    int err;
} sub_ctx_t;

static void sub_cb(void *arg, ht_node_t *n)
{
    sub_ctx_t *s = arg;
    wcell_t *c = (wcell_t *)n;

    if (agg_add(s->z, c->key, c->h.klen, -c->v) != 0)
        s->err = -ENOMEM;
}

int wrank_due(const wrank_t *r, uint64_t now_ms)
{
    int64_t b = bucket_of(r, now_ms);

    if (b <= r->cur)
        return 0;
    for (uint32_t j = 0; j < r->nwin; j++) {
        int64_t lo = r->cur - r->win[j] + 1, hi = b - r->win[j];

        if (hi > r->cur)
            hi = r->cur;
        for (int64_t i = lo; i <= hi; i++)
            if (r->ring[slot(r, i)] != NULL)
                return 1;
    }
    return 0;
}

static int advance(wrank_t *r, int64_t b)
{
    int err = 0;

    if (b <= r->cur)
        return 0;
    for (uint32_t j = 0; j < r->nwin; j++) {
        int64_t lo = r->cur - r->win[j] + 1, hi = b - r->win[j];
        sub_ctx_t s = {r->agg[j], 0};

        if (hi > r->cur)
            hi = r->cur;
        for (int64_t i = lo; i <= hi; i++)
            if (r->ring[slot(r, i)] != NULL)
                ht_foreach(r->ring[slot(r, i)], sub_cb, &s);
        if (s.err)
            err = s.err;
    }
    {
        int64_t lo = r->cur - r->nb + 1, hi = b - r->nb;

        if (hi > r->cur)
            hi = r->cur;
        for (int64_t i = lo; i <= hi; i++)
            bucket_free(r, slot(r, i));
    }
    r->cur = b;
    return err;
}

int wrank_advance(wrank_t *r, uint64_t now_ms)
{
    int rv = advance(r, bucket_of(r, now_ms));

    if (rv < 0)
        return rv;
    return r->nused == 0;
}

zset_t *wrank_window(wrank_t *r, long long window_s)
{
    if (window_s == 0)
        return r->agg[r->nwin - 1];
    for (uint32_t j = 0; j < r->nwin; j++)
        if ((long long)r->win[j] * r->res_s == window_s)
            return r->agg[j];
    return NULL;
}

static int cell_add(wrank_t *r, int64_t b, const char *m, size_t ml, int64_t d)
{
    size_t s = slot(r, b);
    wcell_t *c;

    if (r->ring[s] == NULL) {
        r->ring[s] = core_malloc(CORE_TAG_CACHE_VALUES, sizeof(ht_t));
        if (r->ring[s] == NULL)
            return -ENOMEM;
        ht_init(r->ring[s], CELL_OFF, CORE_TAG_CACHE_VALUES);
        r->nused++;
    }
    c = (wcell_t *)ht_find(r->ring[s], m, ml);
    if (c != NULL) {
        c->v += d;
        return 0;
    }
    c = core_malloc(CORE_TAG_CACHE_VALUES, sizeof(*c) + ml);
    if (c == NULL)
        return -ENOMEM;
    c->h.hash = cache_hash(m, ml);
    c->h.klen = (uint32_t)ml;
    c->v = d;
    memcpy(c->key, m, ml);
    if (ht_insert(r->ring[s], &c->h) != 0) {
        core_free(c);
        return -ENOMEM;
    }
    r->ncells++;
    r->cellbytes += ml;
    return 0;
}

static void reply_windows(cache_ctx_t *x, const wrank_t *r)
{
    char buf[128];
    size_t n = 0;

    buf[0] = '\0';
    for (uint32_t j = 0; j < r->nwin && n < sizeof(buf); j++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%llu", j ? " " : "",
                              (unsigned long long)r->win[j] * r->res_s);
    add_errf(x, "ERR WINDOW must be one of the ranking's windows: %s", buf);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

/* WRANK.INCRBY key member delta [RESOLUTION s] [WINDOW s]... */
CMD(cmd_wrank_incrby)
{
    long long d, res = LLONG_MIN, ws[WR_MAXWIN]; /* LLONG_MIN: not given */
    uint32_t nw = 0, win[WR_MAXWIN];
    int wrong = 0;
    cache_entry_t *e;
    wrank_t *r;
    zmember_t *zm;

    if (get_ll_or_reply(x, A(3), &d, NULL) != 0)
        return;
    if (d > WR_MAX_ABS || d < -WR_MAX_ABS) {
        add_err(x, "ERR increment or decrement would overflow");
        return;
    }
    for (int i = 4; i < x->argc; i += 2) {
        long long v;

        if (i + 1 >= x->argc || (!arg_eq(A(i), "resolution") && !arg_eq(A(i), "window"))) {
            add_err(x, err_syntax);
            return;
        }
        if (get_ll_or_reply(x, A(i + 1), &v, NULL) != 0)
            return;
        if (arg_eq(A(i), "resolution")) {
            res = v;
        } else {
            if (nw == WR_MAXWIN) {
                add_err(x, "ERR at most 4 WINDOWs");
                return;
            }
            ws[nw++] = v;
        }
    }
    if (res == LLONG_MIN)
        res = WR_DEF_RES;
    if (nw == 0) {
        ws[0] = 3600;
        ws[1] = 86400;
        nw = 2;
    }
    if (res < 1 || res > WR_MAX_RES) {
        add_err(x, "ERR RESOLUTION must be 1..86400 seconds");
        return;
    }
    for (uint32_t j = 0; j < nw; j++) {
        if (ws[j] < res || ws[j] % res != 0 || ws[j] / res > WR_MAX_BUCKETS) {
            add_err(x, "ERR each WINDOW must be a multiple of RESOLUTION, at most 86400 buckets");
            return;
        }
        win[j] = (uint32_t)(ws[j] / res);
    }
    qsort(win, nw, sizeof(win[0]), cmp_u32);
    for (uint32_t j = 1; j < nw; j++)
        if (win[j] == win[j - 1]) {
            add_err(x, "ERR the same WINDOW twice");
            return;
        }
    e = lookup_typed(x, A(1), CACHE_T_WRANK, &wrong);
    if (wrong)
        return;
    if (e != NULL) {
        r = ent_ptr(e);
        if (x->argc > 4 && (r->res_s != (uint32_t)res || r->nwin != nw ||
                            memcmp(r->win, win, nw * sizeof(win[0])) != 0)) {
            add_err(x, "ERR the ranking exists with another RESOLUTION or WINDOWs");
            return;
        }
    } else {
        r = wr_new(x->ks, A(1)->p, A(1)->len, (uint32_t)res, nw, win);
        if (r == NULL || cache_ks_add_ptr(x->ks, A(1)->p, A(1)->len, CACHE_T_WRANK, r) == NULL) {
            if (r != NULL)
                wrank_free(r);
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        r->cur = bucket_of(r, x->now_ms);
    }
    if (advance(r, bucket_of(r, x->now_ms)) != 0) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
    /* check every sum first so that an overflow changes nothing */
    {
        double cur[WR_MAXWIN];
        wcell_t *c = NULL;
        ht_t *t = r->ring[slot(r, r->cur)];

        for (uint32_t j = 0; j < r->nwin; j++) {
            zm = zset_find(r->agg[j], A(2)->p, A(2)->len);
            cur[j] = zm != NULL ? zm->score : 0;
            if (cur[j] + (double)d > (double)WR_MAX_ABS || cur[j] + (double)d < -(double)WR_MAX_ABS) {
                add_err(x, "ERR increment or decrement would overflow");
                return;
            }
        }
        if (t != NULL)
            c = (wcell_t *)ht_find(t, A(2)->p, A(2)->len);
        if (c != NULL) {
            if (c->v + d > WR_MAX_ABS || c->v + d < -WR_MAX_ABS) {
                add_err(x, "ERR increment or decrement would overflow");
                return;
            }
            c->v += d;
        } else if (cell_add(r, r->cur, A(2)->p, A(2)->len, d) != 0) {
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        for (uint32_t j = 0; j < r->nwin; j++) {
            double s = cur[j] + (double)d;
            int rv = s == 0 ? (zset_del(r->agg[j], A(2)->p, A(2)->len), 0)
                            : zset_set(r->agg[j], A(2)->p, A(2)->len, s);

            if (rv < 0) {
                add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
                return;
            }
        }
        add_int(x, (long long)(cur[r->nwin - 1] + (double)d));
    }
}

/* Parse [WINDOW s] / [WITHSCORES] options from argv[start] and pick the
 * aggregate (*z = NULL when r is NULL). Returns 0, or -1 after replying an
 * error. */
static int pick(cache_ctx_t *x, wrank_t *r, int start, int *withscores, zset_t **z)
{
    long long w = 0;

    *z = NULL;
    for (int i = start; i < x->argc; i++) {
        if (withscores != NULL && arg_eq(A(i), "withscores")) {
            *withscores = 1;
        } else if (arg_eq(A(i), "window") && i + 1 < x->argc) {
            if (get_ll_or_reply(x, A(i + 1), &w, NULL) != 0)
                return -1;
            if (w < 1) {
                add_err(x, "ERR WINDOW must be a positive number of seconds");
                return -1;
            }
            i++;
        } else {
            add_err(x, err_syntax);
            return -1;
        }
    }
    if (r == NULL)
        return 0;
    *z = wrank_window(r, w);
    if (*z == NULL) {
        reply_windows(x, r);
        return -1;
    }
    return 0;
}

/* Lookup for the read commands: *missing set when the key does not exist
 * (options still checked). Returns the ranking or NULL. */
static wrank_t *rank_of(cache_ctx_t *x, int *done)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_WRANK, &wrong);

    *done = wrong;
    return e != NULL ? ent_ptr(e) : NULL;
}

/* WRANK.TOP key N [WINDOW s] [WITHSCORES] */
CMD(cmd_wrank_top)
{
    long long n;
    int ws = 0, done;
    wrank_t *r;
    zset_t *z;
    size_t cnt, i = 0;

    if (get_ll_or_reply(x, A(2), &n, NULL) != 0)
        return;
    if (n < 0) {
        add_err(x, "ERR N must not be negative");
        return;
    }
    r = rank_of(x, &done);
    if (done)
        return;
    if (pick(x, r, 3, &ws, &z) != 0)
        return;
    if (z == NULL) {
        add_array(x, 0);
        return;
    }
    cnt = (size_t)n < z->length ? (size_t)n : z->length;
    add_array(x, ws ? cnt * 2 : cnt);
    for (zsl_node_t *p = z->tail; p != NULL && i < cnt; p = p->back, i++) {
        add_bulk(x, p->m->key, p->m->h.klen);
        if (ws)
            add_bulk_ll(x, (long long)p->score);
    }
}

/* The member argv[2] of WRANK.SCORE / WRANK.RANK in the ranking the
 * window picks. NULL when the reply is already made (an error, or a null
 * for an absent key or member). */
static zmember_t *member_of(cache_ctx_t *x, zset_t **zp)
{
    int done;
    wrank_t *r = rank_of(x, &done);
    zmember_t *zm;

    if (done || pick(x, r, 3, NULL, zp) != 0)
        return NULL;
    zm = *zp != NULL ? zset_find(*zp, A(2)->p, A(2)->len) : NULL;
    if (zm == NULL)
        add_null(x);
    return zm;
}

/* WRANK.SCORE key member [WINDOW s] */
CMD(cmd_wrank_score)
{
    zset_t *z;
    zmember_t *zm = member_of(x, &z);

    if (zm != NULL)
        add_int(x, (long long)zm->score);
}

/* WRANK.RANK key member [WINDOW s]: 0 = the highest score */
CMD(cmd_wrank_rank)
{
    zset_t *z;
    zmember_t *zm = member_of(x, &z);

    if (zm != NULL)
        add_int(x, (long long)(z->length - 1 - zset_rank(z, zm->score, zm->key, zm->h.klen)));
}

/* ---- snapshot ----------------------------------------------------------------
 * u32 res | u32 nwin | nwin x u32 window (buckets) | i64 cur | u32 nused |
 * nused x { i64 bucket | u32 ncells | ncells x { u32 len | member | i64 v } }
 * The aggregates are rebuilt from the buckets on load. */

typedef struct dump_ctx {
    struct evbuffer *out;
    int err;
} dump_ctx_t;

static void dump_cell(void *arg, ht_node_t *n)
{
    dump_ctx_t *d = arg;
    wcell_t *c = (wcell_t *)n;
    uint32_t l = c->h.klen;

    if (evbuffer_add(d->out, &l, 4) != 0 || evbuffer_add(d->out, c->key, l) != 0 ||
        evbuffer_add(d->out, &c->v, 8) != 0)
        d->err = -ENOMEM;
}

int wrank_dump(const wrank_t *r, struct evbuffer *out)
{
    uint32_t h[2] = {r->res_s, r->nwin};
    dump_ctx_t d = {out, 0};

    if (evbuffer_add(out, h, sizeof(h)) != 0 || evbuffer_add(out, r->win, r->nwin * 4) != 0 ||
        evbuffer_add(out, &r->cur, 8) != 0 || evbuffer_add(out, &r->nused, 4) != 0)
        return -ENOMEM;
    /* oldest bucket first */
    for (int64_t b = r->cur - r->nb + 1; b <= r->cur; b++) {
        ht_t *t = r->ring[slot(r, b)];
        uint32_t nc;

        if (t == NULL)
            continue;
        nc = (uint32_t)ht_size(t);
        if (evbuffer_add(out, &b, 8) != 0 || evbuffer_add(out, &nc, 4) != 0)
            return -ENOMEM;
        ht_foreach(t, dump_cell, &d);
    }
    return d.err;
}

int wrank_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp, size_t *left,
               wrank_t **out)
{
    uint32_t h[2], win[WR_MAXWIN], nused;
    int64_t cur, prev;
    wrank_t *r;
    int rv = -EPROTO;

    if (live_get(pp, left, h, sizeof(h)) != 0 || h[0] < 1 || h[0] > WR_MAX_RES || h[1] < 1 ||
        h[1] > WR_MAXWIN || live_get(pp, left, win, h[1] * 4) != 0 ||
        live_get(pp, left, &cur, 8) != 0 || live_get(pp, left, &nused, 4) != 0 || cur < 0 ||
        cur > WR_MAX_ABS)
        return -EPROTO;
    for (uint32_t j = 0; j < h[1]; j++)
        if (win[j] < 1 || win[j] > WR_MAX_BUCKETS || (j > 0 && win[j] <= win[j - 1]))
            return -EPROTO;
    if (nused > win[h[1] - 1])
        return -EPROTO;
    r = wr_new(k, key, klen, h[0], h[1], win);
    if (r == NULL)
        return -ENOMEM;
    r->cur = cur;
    prev = cur - r->nb;
    for (uint32_t i = 0; i < nused; i++) {
        int64_t b;
        uint32_t nc;

        if (live_get(pp, left, &b, 8) != 0 || b <= prev || b > cur || live_get(pp, left, &nc, 4) != 0 ||
            nc == 0)
            goto fail;
        prev = b;
        for (uint32_t c = 0; c < nc; c++) {
            uint32_t ml;
            const char *m;
            int64_t v;
            ht_t *t = r->ring[slot(r, b)];

            if (live_get(pp, left, &ml, 4) != 0 || *left < ml)
                goto fail;
            m = (const char *)*pp;
            *pp += ml;
            *left -= ml;
            if (live_get(pp, left, &v, 8) != 0 || v > WR_MAX_ABS || v < -WR_MAX_ABS ||
                (t != NULL && ht_find(t, m, ml) != NULL))
                goto fail;
            if (cell_add(r, b, m, ml, v) != 0) {
                rv = -ENOMEM;
                goto fail;
            }
            for (uint32_t j = 0; j < r->nwin; j++)
                if (b > cur - r->win[j] && agg_add(r->agg[j], m, ml, v) != 0) {
                    rv = -ENOMEM;
                    goto fail;
                }
        }
    }
    *out = r;
    return 0;
fail:
    wrank_free(r);
    return rv;
}
