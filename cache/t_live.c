/* cache/t_live: what the live-stream types share: the registry of live
 * values, the replicated __live.tick, the keyspace hooks (free, memory,
 * snapshot), and the viewer-event API of cache.h used by the stream hub. */
#include "cache/t_live.h"

#include "core/loop.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

static void reg_init(cache_ks_t *k)
{
    if (k->live.next == NULL) {
        k->live.next = &k->live;
        k->live.prev = &k->live;
    }
}

int live_val_init(cache_ks_t *k, live_val_t *v, int type, const char *key, size_t klen)
{
    char *copy = core_malloc(CORE_TAG_CACHE_VALUES, klen ? klen : 1);

    if (copy == NULL)
        return -ENOMEM;
    memcpy(copy, key, klen);
    reg_init(k);
    v->type = (uint8_t)type;
    v->key = copy;
    v->klen = (uint32_t)klen;
    /* append: the registry keeps creation order, the same on every node */
    v->link.prev = k->live.prev;
    v->link.next = &k->live;
    k->live.prev->next = &v->link;
    k->live.prev = &v->link;
    return 0;
}

void live_val_close(live_val_t *v)
{
    if (v->link.next != NULL) {
        v->link.prev->next = v->link.next;
        v->link.next->prev = v->link.prev;
        v->link.next = v->link.prev = NULL;
    }
    core_free(v->key);
    v->key = NULL;
}

typedef struct find_ctx {
    void *val;
    cache_entry_t *found;
} find_ctx_t;

static void find_cb(void *arg, ht_node_t *n)
{
    find_ctx_t *f = arg;
    cache_entry_t *e = (cache_entry_t *)n;

    if (e->type >= CACHE_T_WCOUNT && e->type <= CACHE_T_PRESENCE && ent_ptr(e) == f->val)
        f->found = e;
}

void live_val_delete_key(cache_ks_t *k, live_val_t *v)
{
    cache_entry_t *e = cache_ks_find(k, v->key, v->klen, 0, 0);
    find_ctx_t f = {v, NULL};

    if (e != NULL && e->type == v->type && ent_ptr(e) == v) {
        cache_ks_del_entry(k, e);
        return;
    }
    /* renamed since it was created: find the entry holding v */
    ht_foreach(&k->ht, find_cb, &f);
    if (f.found != NULL)
        cache_ks_del_entry(k, f.found);
}

const char *live_type_name(int type)
{
    switch (type) {
    case CACHE_T_WCOUNT: return "wcount";
    case CACHE_T_WRANK: return "wrank";
    case CACHE_T_PRESENCE: return "presence";
    default: return NULL;
    }
}

void live_value_free(int type, void *p)
{
    if (type == CACHE_T_WCOUNT)
        wcount_free(p);
    else if (type == CACHE_T_WRANK)
        wrank_free(p);
    else if (type == CACHE_T_PRESENCE)
        presence_free(p);
}

size_t live_value_mem(int type, void *p)
{
    if (type == CACHE_T_WCOUNT)
        return wcount_mem(p);
    if (type == CACHE_T_WRANK)
        return wrank_mem(p);
    if (type == CACHE_T_PRESENCE)
        return presence_mem(p);
    return 0;
}

int live_value_dump(int type, void *p, struct evbuffer *out)
{
    if (type == CACHE_T_WCOUNT)
        return wcount_dump(p, out);
    if (type == CACHE_T_WRANK)
        return wrank_dump(p, out);
    if (type == CACHE_T_PRESENCE)
        return presence_dump(p, out);
    return -EINVAL;
}

int live_value_load(cache_ks_t *k, int type, const char *key, size_t klen,
                    const unsigned char **pp, size_t *left, void **out)
{
    if (type == CACHE_T_WCOUNT)
        return wcount_load(k, key, klen, pp, left, (wcount_t **)out);
    if (type == CACHE_T_WRANK)
        return wrank_load(k, key, klen, pp, left, (wrank_t **)out);
    if (type == CACHE_T_PRESENCE)
        return presence_load(k, key, klen, pp, left, (presence_t **)out);
    return -EPROTO;
}

int live_get(const unsigned char **pp, size_t *left, void *dst, size_t n)
{
    if (*left < n)
        return -1;
    memcpy(dst, *pp, n);
    *pp += n;
    *left -= n;
    return 0;
}

/* ---- the replicated tick ------------------------------------------------ */

int cache_live_due(cache_ks_t *k, uint64_t now_ms)
{
    if (k->live.next == NULL)
        return 0;
    for (cache_live_link_t *l = k->live.next; l != &k->live; l = l->next) {
        live_val_t *v = (live_val_t *)l;

        if (v->type == CACHE_T_PRESENCE && presence_due((presence_t *)v, now_ms))
            return 1;
        if (v->type == CACHE_T_WRANK && wrank_due((wrank_t *)v, now_ms))
            return 1;
        if (v->type == CACHE_T_WCOUNT && wcount_expired((wcount_t *)v, now_ms))
            return 1;
    }
    return 0;
}

/* __live.tick: the time-driven work of every live value at the batch
 * time. Replies the number of keys deleted. */
CMD(cmd_live_tick)
{
    cache_ks_t *k = x->ks;
    long long deleted = 0;

    if (k->live.next == NULL) {
        add_int(x, 0);
        return;
    }
    for (cache_live_link_t *l = k->live.next, *next; l != &k->live; l = next) {
        live_val_t *v = (live_val_t *)l;
        int empty = 0;

        next = l->next;
        if (v->type == CACHE_T_PRESENCE)
            empty = presence_sweep(k, (presence_t *)v, x->now_ms) == 1;
        else if (v->type == CACHE_T_WRANK)
            empty = wrank_advance((wrank_t *)v, x->now_ms) == 1;
        else if (v->type == CACHE_T_WCOUNT)
            empty = wcount_expired((wcount_t *)v, x->now_ms);
        if (empty) {
            live_val_delete_key(k, v);
            deleted++;
        }
    }
    add_int(x, deleted);
}

/* ---- viewer events and reads for the stream hub (cache.h) --------------- */

#define VIEWER_KEY "viewers:"
#define JOINS_KEY "joins:"
#define RANK_VIEWERS "rank:viewers"
#define RANK_VIEWS "rank:views"

static void arg_of(resp_arg_t *a, const char *p, size_t n)
{
    a->p = p;
    a->len = n;
    a->off = 0;
    a->esc = 0;
}

static int stream_ok(const char *stream, const char *session)
{
    size_t sl = strlen(stream);

    return sl > 0 && sl <= CACHE_LIVE_NAME_MAX && (session == NULL || strlen(session) <= 64);
}

/* The leader appends to its write batch; another node forwards the
 * command to the leader (t_live_fwd.c). */
static int emit(cache_server_t *s, int leader, int argc, const resp_arg_t *argv)
{
    struct event_base *base;
    const char *addr, *pass;
    live_fwd_t **f;

    if (leader)
        return cache_server_enqueue(s, argc, argv);
    f = (live_fwd_t **)cache_server_live_fwd(s, &base, &addr, &pass);
    return live_fwd_send(f, base, addr, pass, argc, argv);
}

int cache_event_viewer_touch(cache_server_t *s, const char *stream, const char *session,
                             uint64_t ttl_ms, int join)
{
    char key[CACHE_LIVE_NAME_MAX + 16], jkey[CACHE_LIVE_NAME_MAX + 16], at[24];
    resp_arg_t av[7];
    int kl, jl, rv, lead;

    if (s == NULL || !stream_ok(stream, session) || ttl_ms == 0 || ttl_ms > (1ull << 40))
        return -EINVAL;
    lead = cache_server_writable(s);
    kl = snprintf(key, sizeof(key), VIEWER_KEY "%s", stream);
    jl = snprintf(jkey, sizeof(jkey), JOINS_KEY "%s", stream);
    arg_of(&av[1], key, (size_t)kl);
    arg_of(&av[2], session, strlen(session));
    if (lead) {
        /* the deadline is absolute before logging, as PRESENCE.TOUCH's prep does */
        arg_of(&av[0], "__presence.touchat", strlen("__presence.touchat"));
        arg_of(&av[3], at, (size_t)snprintf(at, sizeof(at), "%llu",
                                            (unsigned long long)(cache_server_batch_now(s) + ttl_ms)));
    } else {
        /* the leader makes it absolute with its own clock */
        arg_of(&av[0], "PRESENCE.TOUCH", 14);
        arg_of(&av[3], at, (size_t)snprintf(at, sizeof(at), "%llu", (unsigned long long)ttl_ms));
    }
    arg_of(&av[4], "MIRROR", 6);
    arg_of(&av[5], RANK_VIEWERS, strlen(RANK_VIEWERS));
    arg_of(&av[6], stream, strlen(stream));
    rv = emit(s, lead, 7, av);
    if (rv != 0 || !join)
        return rv;
    arg_of(&av[0], "WCOUNT.INCR", 11);
    arg_of(&av[1], jkey, (size_t)jl);
    rv = emit(s, lead, 2, av);
    if (rv != 0)
        return rv;
    arg_of(&av[0], "WRANK.INCRBY", 12);
    arg_of(&av[1], RANK_VIEWS, strlen(RANK_VIEWS));
    arg_of(&av[2], stream, strlen(stream));
    arg_of(&av[3], "1", 1);
    return emit(s, lead, 4, av);
}

int cache_event_viewer_leave(cache_server_t *s, const char *stream, const char *session)
{
    char key[CACHE_LIVE_NAME_MAX + 16];
    resp_arg_t av[3];
    int kl;

    if (s == NULL || !stream_ok(stream, session))
        return -EINVAL;
    kl = snprintf(key, sizeof(key), VIEWER_KEY "%s", stream);
    arg_of(&av[0], "PRESENCE.LEAVE", 14);
    arg_of(&av[1], key, (size_t)kl);
    arg_of(&av[2], session, strlen(session));
    return emit(s, cache_server_writable(s), 3, av);
}

static void *typed(cache_ks_t *k, const char *key, size_t klen, int type, uint64_t now)
{
    cache_entry_t *e = cache_ks_find(k, key, klen, now, 0);

    return e != NULL && e->type == type ? ent_ptr(e) : NULL;
}

long long cache_live_viewers(cache_server_t *s, const char *stream)
{
    char key[CACHE_LIVE_NAME_MAX + 16];
    uint64_t now = core_wall_ms();
    presence_t *p;
    int kl;

    if (s == NULL || !stream_ok(stream, NULL))
        return -1;
    kl = snprintf(key, sizeof(key), VIEWER_KEY "%s", stream);
    p = typed(cache_server_ks(s), key, (size_t)kl, CACHE_T_PRESENCE, now);
    return p != NULL ? (long long)presence_live_count(p, now) : 0;
}

int cache_live_ranking(cache_server_t *s, long long window_s, cache_live_rank_t *out, size_t n,
                       size_t *count)
{
    uint64_t now = core_wall_ms();
    wrank_t *r;
    zset_t *z;
    size_t i = 0;

    *count = 0;
    if (s == NULL)
        return -EINVAL;
    r = typed(cache_server_ks(s), RANK_VIEWS, strlen(RANK_VIEWS), CACHE_T_WRANK, now);
    if (r == NULL)
        return window_s == 3600 || window_s == 86400 ? 0 : -EINVAL; /* the defaults */
    z = wrank_window(r, window_s);
    if (z == NULL)
        return -EINVAL;
    for (zsl_node_t *x = z->tail; x != NULL && i < n; x = x->back) {
        size_t ml = x->m->h.klen;

        if (ml > CACHE_LIVE_NAME_MAX || x->score <= 0)
            continue;
        memcpy(out[i].stream, x->m->key, ml);
        out[i].stream[ml] = '\0';
        out[i].views = (long long)x->score;
        out[i].viewers = cache_live_viewers(s, out[i].stream);
        i++;
    }
    *count = i;
    return 0;
}
