/* cache/t_hash: hashes (field -> value), iterated in insertion order like
 * Redis's small (listpack) hashes. */
#include "cache/cache_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#define A(i) (&x->argv[(i)])
#define HF_OFF offsetof(hfield_t, key)

chash_t *chash_new(void)
{
    chash_t *h = core_calloc(CORE_TAG_CACHE_VALUES, 1, sizeof(*h));

    if (h != NULL)
        ht_init(&h->ht, HF_OFF, CORE_TAG_CACHE_VALUES);
    return h;
}

void chash_free(chash_t *h)
{
    hfield_t *f, *n;

    if (h == NULL)
        return;
    for (f = h->first; f != NULL; f = n) {
        n = f->onext;
        core_free(f);
    }
    ht_close(&h->ht);
    core_free(h);
}

static void order_unlink(chash_t *h, hfield_t *f)
{
    if (f->oprev)
        f->oprev->onext = f->onext;
    else
        h->first = f->onext;
    if (f->onext)
        f->onext->oprev = f->oprev;
    else
        h->last = f->oprev;
}

static void order_append(chash_t *h, hfield_t *f)
{
    f->onext = NULL;
    f->oprev = h->last;
    if (h->last)
        h->last->onext = f;
    else
        h->first = f;
    h->last = f;
}

int chash_set(chash_t *h, const char *f, size_t fl, const char *v, size_t vl)
{
    uint32_t hash = cache_hash(f, fl);
    ht_node_t **slot = ht_findp(&h->ht, f, fl, hash);
    hfield_t *n;

    if (slot != NULL) {
        hfield_t *o = (hfield_t *)*slot;

        if (o->vlen != vl) {
            n = core_realloc(CORE_TAG_CACHE_VALUES, o, sizeof(*n) + fl + vl);
            if (n == NULL)
                return -ENOMEM;
            if (n != o) {
                *slot = &n->h;
                if (n->oprev)
                    n->oprev->onext = n;
                else
                    h->first = n;
                if (n->onext)
                    n->onext->oprev = n;
                else
                    h->last = n;
            }
            o = n;
            o->vlen = (uint32_t)vl;
        }
        memcpy(o->key + fl, v, vl);
        return 0;
    }
    n = core_malloc(CORE_TAG_CACHE_VALUES, sizeof(*n) + fl + vl);
    if (n == NULL)
        return -ENOMEM;
    n->h.hash = hash;
    n->h.klen = (uint32_t)fl;
    n->vlen = (uint32_t)vl;
    memcpy(n->key, f, fl);
    memcpy(n->key + fl, v, vl);
    if (ht_insert(&h->ht, &n->h) != 0) {
        core_free(n);
        return -ENOMEM;
    }
    order_append(h, n);
    return 1;
}

static hfield_t *hfind(chash_t *h, const resp_arg_t *f)
{
    return (hfield_t *)ht_find(&h->ht, f->p, f->len);
}

static int hdel(chash_t *h, const resp_arg_t *f)
{
    ht_node_t **slot = ht_findp(&h->ht, f->p, f->len, cache_hash(f->p, f->len));
    hfield_t *n;

    if (slot == NULL)
        return 0;
    n = (hfield_t *)*slot;
    ht_unlink(&h->ht, slot);
    order_unlink(h, n);
    core_free(n);
    ht_maybe_shrink(&h->ht);
    return 1;
}

static chash_t *get_hash(cache_ctx_t *x, int create, int *wrong, cache_entry_t **ep)
{
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_HASH, wrong);
    chash_t *h;

    if (ep)
        *ep = e;
    if (*wrong)
        return NULL;
    if (e != NULL)
        return ent_ptr(e);
    if (!create)
        return NULL;
    h = chash_new();
    if (h == NULL)
        return NULL;
    e = cache_ks_add_ptr(x->ks, A(1)->p, A(1)->len, CACHE_T_HASH, h);
    if (e == NULL) {
        chash_free(h);
        return NULL;
    }
    if (ep)
        *ep = e;
    return h;
}

static void oom(cache_ctx_t *x)
{
    add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
}

static void drop_if_empty(cache_ctx_t *x, cache_entry_t *e, chash_t *h)
{
    if (e != NULL && ht_size(&h->ht) == 0)
        cache_ks_del_entry(x->ks, e);
}

CMD(cmd_hset)
{
    int wrong = 0;
    long long added = 0;
    cache_entry_t *e;
    chash_t *h;

    if (x->argc % 2 == 1) {
        add_err(x, "ERR wrong number of arguments for 'hset' command");
        return;
    }
    h = get_hash(x, 1, &wrong, &e);
    if (wrong)
        return;
    if (h == NULL) {
        oom(x);
        return;
    }
    for (int i = 2; i < x->argc; i += 2) {
        int a = chash_set(h, A(i)->p, A(i)->len, A(i + 1)->p, A(i + 1)->len);

        if (a < 0) {
            drop_if_empty(x, e, h);
            oom(x);
            return;
        }
        added += a;
    }
    /* HMSET (same code path) replies +OK */
    if (x->argv[0].len == 5)
        add_ok(x);
    else
        add_int(x, added);
}

CMD(cmd_hsetnx)
{
    int wrong = 0;
    cache_entry_t *e;
    chash_t *h = get_hash(x, 0, &wrong, &e);

    if (wrong)
        return;
    if (h != NULL && hfind(h, A(2)) != NULL) {
        add_int(x, 0);
        return;
    }
    h = get_hash(x, 1, &wrong, &e);
    if (h == NULL || chash_set(h, A(2)->p, A(2)->len, A(3)->p, A(3)->len) < 0) {
        if (h != NULL)
            drop_if_empty(x, e, h);
        oom(x);
        return;
    }
    add_int(x, 1);
}

CMD(cmd_hget)
{
    int wrong = 0;
    chash_t *h = get_hash(x, 0, &wrong, NULL);
    hfield_t *f;

    if (wrong)
        return;
    f = h ? hfind(h, A(2)) : NULL;
    if (f == NULL)
        add_null(x);
    else
        add_bulk(x, f->key + f->h.klen, f->vlen);
}

CMD(cmd_hmget)
{
    int wrong = 0;
    chash_t *h = get_hash(x, 0, &wrong, NULL);

    if (wrong)
        return;
    add_array(x, (size_t)x->argc - 2);
    for (int i = 2; i < x->argc; i++) {
        hfield_t *f = h ? hfind(h, A(i)) : NULL;

        if (f == NULL)
            add_null(x);
        else
            add_bulk(x, f->key + f->h.klen, f->vlen);
    }
}

CMD(cmd_hdel)
{
    int wrong = 0;
    cache_entry_t *e;
    chash_t *h = get_hash(x, 0, &wrong, &e);
    long long n = 0;

    if (wrong)
        return;
    if (h != NULL) {
        for (int i = 2; i < x->argc; i++)
            n += hdel(h, A(i));
        drop_if_empty(x, e, h);
    }
    add_int(x, n);
}

static void hgetall_generic(cache_ctx_t *x, int keys, int vals)
{
    int wrong = 0;
    chash_t *h = get_hash(x, 0, &wrong, NULL);
    size_t n;

    if (wrong)
        return;
    n = h ? ht_size(&h->ht) : 0;
    if (keys && vals)
        add_map(x, n);
    else
        add_array(x, n);
    if (h == NULL)
        return;
    for (hfield_t *f = h->first; f != NULL; f = f->onext) {
        if (keys)
            add_bulk(x, f->key, f->h.klen);
        if (vals)
            add_bulk(x, f->key + f->h.klen, f->vlen);
    }
}

CMD(cmd_hgetall)
{
    hgetall_generic(x, 1, 1);
}

CMD(cmd_hkeys)
{
    hgetall_generic(x, 1, 0);
}

CMD(cmd_hvals)
{
    hgetall_generic(x, 0, 1);
}

CMD(cmd_hincrby)
{
    int wrong = 0;
    long long incr, old = 0, nv;
    cache_entry_t *e;
    chash_t *h;
    hfield_t *f;
    char buf[24];

    if (get_ll_or_reply(x, A(3), &incr, NULL) != 0)
        return;
    h = get_hash(x, 0, &wrong, &e);
    if (wrong)
        return;
    f = h ? hfind(h, A(2)) : NULL;
    if (f != NULL && resp_str2ll(f->key + f->h.klen, f->vlen, &old) != 0) {
        add_err(x, "ERR hash value is not an integer");
        return;
    }
    if ((incr < 0 && old < 0 && incr < (LLONG_MIN - old)) ||
        (incr > 0 && old > 0 && incr > (LLONG_MAX - old))) {
        add_err(x, err_overflow);
        return;
    }
    nv = old + incr;
    if (h == NULL)
        h = get_hash(x, 1, &wrong, &e);
    if (h == NULL || chash_set(h, A(2)->p, A(2)->len, buf, resp_ll2str(buf, nv)) < 0) {
        if (h != NULL)
            drop_if_empty(x, e, h);
        oom(x);
        return;
    }
    add_int(x, nv);
}

CMD(cmd_hexists)
{
    int wrong = 0;
    chash_t *h = get_hash(x, 0, &wrong, NULL);

    if (!wrong)
        add_int(x, h && hfind(h, A(2)) ? 1 : 0);
}

CMD(cmd_hlen)
{
    int wrong = 0;
    chash_t *h = get_hash(x, 0, &wrong, NULL);

    if (!wrong)
        add_int(x, h ? (long long)ht_size(&h->ht) : 0);
}
