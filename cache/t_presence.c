/* cache/t_presence: presence sets (who is here now).
 *
 * A presence set maps members to deadlines (Unix ms), ordered by deadline
 * (a sorted set whose score is the deadline). A member counts while the
 * time is not past its deadline. PRESENCE.TOUCH is logged with an absolute
 * deadline (__presence.touchat, computed by the proposer from the batch
 * time), and members past their deadline are removed by the replicated
 * __live.tick, so every node drops the same members at the same log index.
 *
 * MIRROR zkey zmember, given to PRESENCE.TOUCH, makes every change of the
 * live count also set zmember's score in the sorted set zkey to that count
 * (removed at 0): this is how rank:viewers follows viewers:APP/NAME. */
#include "cache/t_live.h"

#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <string.h>

#define A(i) (&x->argv[(i)])
#define PR_MAX_TTL (1LL << 40)
#define OOM_MSG "OOM command not allowed when used memory > 'maxmemory'."

struct presence {
    live_val_t lv;
    zset_t *z;          /* member -> deadline */
    char *mkey, *mmem;  /* mirror, or NULL */
    uint32_t mklen, mmlen;
};

static presence_t *pr_new(cache_ks_t *k, const char *key, size_t klen)
{
    presence_t *p = core_calloc(CORE_TAG_CACHE_VALUES, 1, sizeof(*p));

    if (p == NULL)
        return NULL;
    p->z = zset_new();
    if (p->z == NULL || live_val_init(k, &p->lv, CACHE_T_PRESENCE, key, klen) != 0) {
        zset_free(p->z);
        core_free(p);
        return NULL;
    }
    return p;
}

static void mirror_clear(presence_t *p)
{
    core_free(p->mkey);
    core_free(p->mmem);
    p->mkey = p->mmem = NULL;
    p->mklen = p->mmlen = 0;
}

void presence_free(presence_t *p)
{
    if (p == NULL)
        return;
    zset_free(p->z);
    mirror_clear(p);
    live_val_close(&p->lv);
    core_free(p);
}

size_t presence_mem(const presence_t *p)
{
    const zset_t *z = p->z;

    return sizeof(*p) + p->lv.klen + p->mklen + p->mmlen + 48 + sizeof(*z) +
           (z->dict.mask[0] + 1) * sizeof(void *) +
           z->length * (sizeof(zmember_t) + sizeof(zsl_node_t) + 2 * sizeof(struct zsl_level) + 32);
}

/* Members whose deadline is before t. */
static size_t count_before(const zset_t *z, double t)
{
    const zsl_node_t *x = z->head;
    size_t rank = 0;

    for (int i = z->level - 1; i >= 0; i--)
        while (x->level[i].fwd != NULL && x->level[i].fwd->score < t) {
            rank += x->level[i].span;
            x = x->level[i].fwd;
        }
    return rank;
}

size_t presence_live_count(const presence_t *p, uint64_t now_ms)
{
    return p->z->length - count_before(p->z, (double)now_ms);
}

int presence_due(const presence_t *p, uint64_t now_ms)
{
    const zsl_node_t *first = p->z->head->level[0].fwd;

    return first != NULL && first->score < (double)now_ms;
}

/* Write count into the mirror (removed at 0). A mirror key holding another
 * type is left alone. */
static void mirror_set(cache_ks_t *k, const char *mkey, size_t mklen, const char *mm, size_t mml,
                       size_t count, uint64_t now_ms)
{
    cache_entry_t *e = cache_ks_find(k, mkey, mklen, now_ms, 0);
    zset_t *z;

    if (e == NULL) {
        /* absent, or expired: an expired sorted set may be replaced (it is
         * not a live value, so no registry walk can be holding it) */
        cache_entry_t *old = cache_ks_find(k, mkey, mklen, 0, 0);

        if (old != NULL) {
            if (old->type != CACHE_T_ZSET)
                return;
            cache_ks_del_entry(k, old);
        }
        if (count == 0)
            return;
        z = zset_new();
        if (z == NULL)
            return;
        if (cache_ks_add_ptr(k, mkey, mklen, CACHE_T_ZSET, z) == NULL) {
            zset_free(z);
            return;
        }
        zset_set(z, mm, mml, (double)count);
        return;
    }
    if (e->type != CACHE_T_ZSET)
        return;
    z = ent_ptr(e);
    if (count > 0) {
        zset_set(z, mm, mml, (double)count);
        return;
    }
    zset_del(z, mm, mml);
    if (z->length == 0)
        cache_ks_del_entry(k, e);
}

static void mirror_update(cache_ks_t *k, presence_t *p, uint64_t now_ms)
{
    if (p->mkey != NULL)
        mirror_set(k, p->mkey, p->mklen, p->mmem, p->mmlen, presence_live_count(p, now_ms), now_ms);
}

int presence_sweep(cache_ks_t *k, presence_t *p, uint64_t now_ms)
{
    int changed = 0;

    for (zsl_node_t *f = p->z->head->level[0].fwd; f != NULL && f->score < (double)now_ms;
         f = p->z->head->level[0].fwd) {
        zset_del(p->z, f->m->key, f->m->h.klen);
        changed = 1;
    }
    if (changed)
        mirror_update(k, p, now_ms);
    return p->z->length == 0;
}

/* Parse "key member deadline-or-ttl [MIRROR zkey zmember]". Returns 0, or
 * -1 after replying. */
static int parse_touch(cache_ctx_t *x, long long *t, int *mirror)
{
    *mirror = 0;
    if (get_ll_or_reply(x, A(3), t, NULL) != 0)
        return -1;
    if (x->argc == 7 && arg_eq(A(4), "mirror")) {
        *mirror = 1;
    } else if (x->argc != 4) {
        add_err(x, err_syntax);
        return -1;
    }
    return 0;
}

static void touch(cache_ctx_t *x, long long deadline, int mirror)
{
    int wrong = 0, isnew;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_PRESENCE, &wrong);
    presence_t *p;
    zmember_t *zm;

    if (wrong)
        return;
    if (e == NULL) {
        if (deadline < (long long)x->now_ms) {
            add_int(x, 0);
            return;
        }
        p = pr_new(x->ks, A(1)->p, A(1)->len);
        if (p == NULL || cache_ks_add_ptr(x->ks, A(1)->p, A(1)->len, CACHE_T_PRESENCE, p) == NULL) {
            presence_free(p);
            add_err(x, OOM_MSG);
            return;
        }
    } else {
        p = ent_ptr(e);
    }
    if (mirror && (p->mkey == NULL || p->mklen != A(5)->len || p->mmlen != A(6)->len ||
                   memcmp(p->mkey, A(5)->p, A(5)->len) != 0 || memcmp(p->mmem, A(6)->p, A(6)->len) != 0)) {
        char *mk = core_malloc(CORE_TAG_CACHE_VALUES, A(5)->len + 1);
        char *mm = core_malloc(CORE_TAG_CACHE_VALUES, A(6)->len + 1);

        if (mk == NULL || mm == NULL) {
            core_free(mk);
            core_free(mm);
            if (p->z->length == 0)
                live_val_delete_key(x->ks, &p->lv);
            add_err(x, OOM_MSG);
            return;
        }
        if (p->mkey != NULL)
            mirror_set(x->ks, p->mkey, p->mklen, p->mmem, p->mmlen, 0, x->now_ms);
        mirror_clear(p);
        memcpy(mk, A(5)->p, A(5)->len);
        memcpy(mm, A(6)->p, A(6)->len);
        p->mkey = mk;
        p->mklen = (uint32_t)A(5)->len;
        p->mmem = mm;
        p->mmlen = (uint32_t)A(6)->len;
    }
    zm = zset_find(p->z, A(2)->p, A(2)->len);
    isnew = zm == NULL || zm->score < (double)x->now_ms;
    if (deadline < (long long)x->now_ms) {
        /* a deadline already past: the member is gone */
        zset_del(p->z, A(2)->p, A(2)->len);
        isnew = 0;
    } else if (zset_set(p->z, A(2)->p, A(2)->len, (double)deadline) < 0) {
        if (p->z->length == 0)
            live_val_delete_key(x->ks, &p->lv);
        add_err(x, OOM_MSG);
        return;
    }
    mirror_update(x->ks, p, x->now_ms);
    if (p->z->length == 0)
        live_val_delete_key(x->ks, &p->lv);
    add_int(x, isnew);
}

/* PRESENCE.TOUCH key member ttl-ms [MIRROR zkey zmember], when applied as
 * it is (the proposer normally logs it as __presence.touchat). */
CMD(cmd_presence_touch)
{
    long long ttl;
    int mirror;

    if (parse_touch(x, &ttl, &mirror) != 0)
        return;
    if (ttl < 1 || ttl > PR_MAX_TTL) {
        add_err(x, "ERR invalid ttl-ms: 1..2^40 milliseconds");
        return;
    }
    touch(x, (long long)x->now_ms + ttl, mirror);
}

/* __presence.touchat key member deadline-ms [MIRROR zkey zmember] */
CMD(cmd_presence_touchat)
{
    long long at;
    int mirror;

    if (parse_touch(x, &at, &mirror) != 0)
        return;
    touch(x, at, mirror);
}

PREP(prep_presence_touch)
{
    long long ttl;
    int mirror;
    resp_arg_t *nv;

    if (parse_touch(x, &ttl, &mirror) != 0)
        return -1;
    if (ttl < 1 || ttl > PR_MAX_TTL) {
        add_err(x, "ERR invalid ttl-ms: 1..2^40 milliseconds");
        return -1;
    }
    nv = argv_dup(x, scope, x->argc);
    if (nv == NULL || arg_set_ll(scope, &nv[3], (long long)x->now_ms + ttl) != 0) {
        add_err(x, OOM_MSG);
        return -1;
    }
    arg_set_lit(&nv[0], "__presence.touchat");
    x->argv = nv;
    return 0;
}

/* PRESENCE.LEAVE key member */
CMD(cmd_presence_leave)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_PRESENCE, &wrong);
    presence_t *p;
    zmember_t *zm;
    int was_live;

    if (wrong)
        return;
    if (e == NULL) {
        add_int(x, 0);
        return;
    }
    p = ent_ptr(e);
    zm = zset_find(p->z, A(2)->p, A(2)->len);
    if (zm == NULL) {
        add_int(x, 0);
        return;
    }
    was_live = zm->score >= (double)x->now_ms;
    zset_del(p->z, A(2)->p, A(2)->len);
    mirror_update(x->ks, p, x->now_ms);
    if (p->z->length == 0)
        live_val_delete_key(x->ks, &p->lv);
    add_int(x, was_live);
}

/* PRESENCE.COUNT key */
CMD(cmd_presence_count)
{
    int wrong = 0;
    cache_entry_t *e = lookup_typed(x, A(1), CACHE_T_PRESENCE, &wrong);

    if (wrong)
        return;
    add_int(x, e != NULL ? (long long)presence_live_count(ent_ptr(e), x->now_ms) : 0);
}

/* PRESENCE.MEMBERS key [COUNT n]: live members, latest deadline first */
CMD(cmd_presence_members)
{
    long long n = LLONG_MAX;
    int wrong = 0;
    cache_entry_t *e;
    presence_t *p;
    size_t live, cnt, i = 0;

    if (x->argc != 2) {
        if (x->argc != 4 || !arg_eq(A(2), "count")) {
            add_err(x, err_syntax);
            return;
        }
        if (get_ll_or_reply(x, A(3), &n, NULL) != 0)
            return;
        if (n < 0) {
            add_err(x, "ERR COUNT must not be negative");
            return;
        }
    }
    e = lookup_typed(x, A(1), CACHE_T_PRESENCE, &wrong);
    if (wrong)
        return;
    if (e == NULL) {
        add_array(x, 0);
        return;
    }
    p = ent_ptr(e);
    live = presence_live_count(p, x->now_ms);
    cnt = (size_t)n < live ? (size_t)n : live;
    add_array(x, cnt);
    for (zsl_node_t *f = p->z->tail; f != NULL && i < cnt; f = f->back, i++)
        add_bulk(x, f->m->key, f->m->h.klen);
}

/* ---- snapshot ---------------------------------------------------------------
 * u32 n | n x { u32 len | member | i64 deadline } | u8 mirror |
 * [u32 len | zkey | u32 len | zmember] */

static int put_str(struct evbuffer *out, const void *p, uint32_t n)
{
    return evbuffer_add(out, &n, 4) != 0 || evbuffer_add(out, p, n) != 0 ? -ENOMEM : 0;
}

int presence_dump(const presence_t *p, struct evbuffer *out)
{
    uint32_t n = (uint32_t)p->z->length;
    uint8_t m = p->mkey != NULL;

    if (evbuffer_add(out, &n, 4) != 0)
        return -ENOMEM;
    for (zsl_node_t *f = p->z->head->level[0].fwd; f != NULL; f = f->level[0].fwd) {
        int64_t d = (int64_t)f->score;

        if (put_str(out, f->m->key, f->m->h.klen) != 0 || evbuffer_add(out, &d, 8) != 0)
            return -ENOMEM;
    }
    if (evbuffer_add(out, &m, 1) != 0)
        return -ENOMEM;
    if (m && (put_str(out, p->mkey, p->mklen) != 0 || put_str(out, p->mmem, p->mmlen) != 0))
        return -ENOMEM;
    return 0;
}

static int get_str(const unsigned char **pp, size_t *left, const char **s, uint32_t *n)
{
    if (live_get(pp, left, n, 4) != 0 || *left < *n)
        return -1;
    *s = (const char *)*pp;
    *pp += *n;
    *left -= *n;
    return 0;
}

static char *dup_bytes(const char *s, uint32_t n)
{
    char *d = core_malloc(CORE_TAG_CACHE_VALUES, (size_t)n + 1);

    if (d != NULL)
        memcpy(d, s, n);
    return d;
}

int presence_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp,
                  size_t *left, presence_t **out)
{
    presence_t *p;
    uint32_t n;
    uint8_t m;
    int rv = -EPROTO;

    if (live_get(pp, left, &n, 4) != 0 || n == 0)
        return -EPROTO;
    p = pr_new(k, key, klen);
    if (p == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < n; i++) {
        const char *s;
        uint32_t sl;
        int64_t d;
        int a;

        if (get_str(pp, left, &s, &sl) != 0 || live_get(pp, left, &d, 8) != 0 || d < 0)
            goto fail;
        a = zset_set(p->z, s, sl, (double)d);
        if (a < 0) {
            rv = -ENOMEM;
            goto fail;
        }
        if (a == 0)
            goto fail;
    }
    if (live_get(pp, left, &m, 1) != 0 || m > 1)
        goto fail;
    if (m) {
        const char *a, *b;
        uint32_t al, bl;

        if (get_str(pp, left, &a, &al) != 0 || get_str(pp, left, &b, &bl) != 0)
            goto fail;
        p->mkey = dup_bytes(a, al);
        p->mmem = dup_bytes(b, bl);
        p->mklen = al;
        p->mmlen = bl;
        if (p->mkey == NULL || p->mmem == NULL) {
            rv = -ENOMEM;
            goto fail;
        }
    }
    *out = p;
    return 0;
fail:
    presence_free(p);
    return rv;
}
