/* cache/keyspace: keys, inline string values, expiry, snapshot/restore. */
#include "cache/cache_int.h"
#include "cache/t_live.h"

#include <errno.h>
#include <event2/buffer.h>
#include <string.h>

#define ENT_OFF offsetof(cache_entry_t, key)

static size_t ent_bytes(size_t klen, size_t vlen, unsigned flags)
{
    return sizeof(cache_entry_t) + klen + vlen + ((flags & CACHE_E_EXPIRE) ? 8 : 0);
}

int64_t ent_expire(const cache_entry_t *e)
{
    int64_t v;

    if (!(e->flags & CACHE_E_EXPIRE))
        return -1;
    memcpy(&v, e->key + e->klen + e->vlen, 8);
    return v;
}

static void ent_put_expire(cache_entry_t *e, int64_t v)
{
    memcpy(e->key + e->klen + e->vlen, &v, 8);
}

cache_ks_t *cache_ks_new(void)
{
    cache_ks_t *k = core_calloc(CORE_TAG_CACHE_KEYS, 1, sizeof(*k));

    if (k == NULL)
        return NULL;
    ht_init(&k->ht, ENT_OFF, CORE_TAG_CACHE_KEYS);
    return k;
}

void cache_value_free(int type, void *p)
{
    if (type == CACHE_T_HASH)
        chash_free(p);
    else if (type == CACHE_T_ZSET)
        zset_free(p);
    else
        live_value_free(type, p);
}

static void free_entry(cache_entry_t *e)
{
    if (e->type != CACHE_T_STRING)
        cache_value_free(e->type, ent_ptr(e));
    core_free(e);
}

static void free_cb(void *arg, ht_node_t *n)
{
    free_entry((cache_entry_t *)n);
}

void cache_ks_clear(cache_ks_t *k)
{
    ht_foreach(&k->ht, free_cb, NULL);
    ht_close(&k->ht);
    ht_init(&k->ht, ENT_OFF, CORE_TAG_CACHE_KEYS);
    k->nvolatile = 0;
    k->expire_cursor = 0;
}

void cache_ks_free(cache_ks_t **kp)
{
    cache_ks_t *k = *kp;

    if (k == NULL)
        return;
    cache_ks_clear(k);
    ht_close(&k->ht);
    core_free(k);
    *kp = NULL;
}

size_t cache_ks_size(const cache_ks_t *k)
{
    return ht_size(&k->ht);
}

size_t cache_ks_volatile(const cache_ks_t *k)
{
    return k->nvolatile;
}

static void unlink_free(cache_ks_t *k, ht_node_t **slot)
{
    cache_entry_t *e = (cache_entry_t *)*slot;

    if (e->flags & CACHE_E_EXPIRE)
        k->nvolatile--;
    ht_unlink(&k->ht, slot);
    free_entry(e);
    ht_maybe_shrink(&k->ht);
}

cache_entry_t *cache_ks_find(cache_ks_t *k, const char *key, size_t klen, uint64_t now_ms,
                             int del_expired)
{
    ht_node_t **slot = ht_findp(&k->ht, key, klen, cache_hash(key, klen));
    cache_entry_t *e;

    if (slot == NULL)
        return NULL;
    e = (cache_entry_t *)*slot;
    if ((e->flags & CACHE_E_EXPIRE) && (int64_t)now_ms > ent_expire(e)) {
        if (del_expired) {
            unlink_free(k, slot);
            k->expired_total++;
        }
        return NULL;
    }
    return e;
}

/* Reallocate e (found at its slot) to size bytes; returns the new entry. */
static cache_entry_t *relocate(cache_ks_t *k, cache_entry_t *e, size_t size)
{
    ht_node_t **slot = ht_findp(&k->ht, e->key, e->klen, e->hash);
    cache_entry_t *n;

    if (slot == NULL)
        return NULL;
    n = core_realloc(CORE_TAG_CACHE_KEYS, e, size);
    if (n == NULL)
        return NULL;
    *slot = (ht_node_t *)n;
    return n;
}

static cache_entry_t *new_entry(cache_ks_t *k, const char *key, size_t klen, uint32_t hash,
                                size_t vlen, int type)
{
    cache_entry_t *e = core_malloc(CORE_TAG_CACHE_KEYS, ent_bytes(klen, vlen, 0));

    if (e == NULL)
        return NULL;
    e->next = NULL;
    e->hash = hash;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->type = (uint8_t)type;
    e->flags = 0;
    e->spare = 0;
    memcpy(e->key, key, klen);
    if (ht_insert(&k->ht, (ht_node_t *)e) != 0) {
        core_free(e);
        return NULL;
    }
    return e;
}

cache_entry_t *cache_ks_set_str(cache_ks_t *k, const char *key, size_t klen, const char *v,
                                size_t vlen, int64_t expire_ms, int keep_ttl, uint64_t now_ms)
{
    uint32_t hash = cache_hash(key, klen);
    ht_node_t **slot = ht_findp(&k->ht, key, klen, hash);
    cache_entry_t *e;
    int64_t exp = expire_ms;

    if (slot != NULL) {
        e = (cache_entry_t *)*slot;
        if ((e->flags & CACHE_E_EXPIRE) && (int64_t)now_ms > ent_expire(e))
            keep_ttl = 0; /* logically a new key */
        if (keep_ttl && exp < 0)
            exp = ent_expire(e);
        if (e->type == CACHE_T_STRING && e->vlen == vlen &&
            ((exp >= 0) == ((e->flags & CACHE_E_EXPIRE) != 0))) {
            memcpy(e->key + klen, v, vlen);
            if (exp >= 0)
                ent_put_expire(e, exp);
            return e;
        }
        if (e->type != CACHE_T_STRING) {
            cache_value_free(e->type, ent_ptr(e));
            e->type = CACHE_T_STRING;
            e->vlen = 0;
        }
        {
            cache_entry_t *n = core_realloc(CORE_TAG_CACHE_KEYS, e,
                                            ent_bytes(klen, vlen, exp >= 0 ? CACHE_E_EXPIRE : 0));

            if (n == NULL) {
                /* keep the key consistent: drop it */
                unlink_free(k, slot);
                return NULL;
            }
            *slot = (ht_node_t *)n;
            e = n;
        }
        if (e->flags & CACHE_E_EXPIRE)
            k->nvolatile--;
        e->flags = 0;
    } else {
        e = new_entry(k, key, klen, hash, vlen, CACHE_T_STRING);
        if (e == NULL)
            return NULL;
        if (exp >= 0) {
            cache_entry_t *n = relocate(k, e, ent_bytes(klen, vlen, CACHE_E_EXPIRE));

            if (n == NULL) {
                cache_ks_del_entry(k, e);
                return NULL;
            }
            e = n;
        }
    }
    e->vlen = (uint32_t)vlen;
    memcpy(e->key + klen, v, vlen);
    if (exp >= 0) {
        e->flags |= CACHE_E_EXPIRE;
        k->nvolatile++;
        ent_put_expire(e, exp);
    }
    return e;
}

cache_entry_t *cache_ks_resize_str(cache_ks_t *k, cache_entry_t *e, size_t vlen)
{
    int64_t exp = ent_expire(e);
    size_t keep = vlen < e->vlen ? vlen : e->vlen;
    cache_entry_t *n;

    if (vlen == e->vlen)
        return e;
    if (vlen > e->vlen) {
        n = relocate(k, e, ent_bytes(e->klen, vlen, e->flags));
        if (n == NULL)
            return NULL;
        e = n;
        e->vlen = (uint32_t)vlen;
        if (exp >= 0)
            ent_put_expire(e, exp);
        return e;
    }
    (void)keep;
    e->vlen = (uint32_t)vlen;
    if (exp >= 0)
        ent_put_expire(e, exp);
    n = relocate(k, e, ent_bytes(e->klen, vlen, e->flags));
    return n != NULL ? n : e;
}

cache_entry_t *cache_ks_add_ptr(cache_ks_t *k, const char *key, size_t klen, int type, void *ptr)
{
    cache_entry_t *e = new_entry(k, key, klen, cache_hash(key, klen), sizeof(void *), type);

    if (e == NULL)
        return NULL;
    memcpy(e->key + klen, &ptr, sizeof(ptr));
    return e;
}

int cache_ks_del(cache_ks_t *k, const char *key, size_t klen)
{
    ht_node_t **slot = ht_findp(&k->ht, key, klen, cache_hash(key, klen));

    if (slot == NULL)
        return 0;
    unlink_free(k, slot);
    return 1;
}

void cache_ks_del_entry(cache_ks_t *k, cache_entry_t *e)
{
    ht_node_t **slot = ht_findp(&k->ht, e->key, e->klen, e->hash);

    if (slot != NULL)
        unlink_free(k, slot);
}

cache_entry_t *cache_ks_set_expire(cache_ks_t *k, cache_entry_t *e, int64_t expire_ms)
{
    cache_entry_t *n;

    if (expire_ms < 0) {
        if (!(e->flags & CACHE_E_EXPIRE))
            return e;
        e->flags &= (uint8_t)~CACHE_E_EXPIRE;
        k->nvolatile--;
        n = relocate(k, e, ent_bytes(e->klen, e->vlen, 0));
        return n != NULL ? n : e;
    }
    if (e->flags & CACHE_E_EXPIRE) {
        ent_put_expire(e, expire_ms);
        return e;
    }
    n = relocate(k, e, ent_bytes(e->klen, e->vlen, CACHE_E_EXPIRE));
    if (n == NULL)
        return NULL;
    n->flags |= CACHE_E_EXPIRE;
    k->nvolatile++;
    ent_put_expire(n, expire_ms);
    return n;
}

cache_entry_t *cache_ks_rename(cache_ks_t *k, cache_entry_t *e, const char *dst, size_t dlen)
{
    size_t vb = e->vlen + ((e->flags & CACHE_E_EXPIRE) ? 8 : 0);
    cache_entry_t *n = core_malloc(CORE_TAG_CACHE_KEYS, sizeof(cache_entry_t) + dlen + vb);
    ht_node_t **slot;

    if (n == NULL)
        return NULL;
    memcpy(n, e, sizeof(*n));
    n->klen = (uint32_t)dlen;
    n->hash = cache_hash(dst, dlen);
    memcpy(n->key, dst, dlen);
    memcpy(n->key + dlen, e->key + e->klen, vb);
    slot = ht_findp(&k->ht, e->key, e->klen, e->hash);
    ht_unlink(&k->ht, slot);
    core_free(e);
    if (ht_insert(&k->ht, (ht_node_t *)n) != 0) {
        if (n->flags & CACHE_E_EXPIRE)
            k->nvolatile--;
        free_entry(n);
        return NULL;
    }
    return n;
}

size_t cache_entry_mem(cache_entry_t *e)
{
    size_t n = ent_bytes(e->klen, e->vlen, e->flags) + 16;

    if (e->type == CACHE_T_HASH) {
        chash_t *h = ent_ptr(e);

        n += sizeof(*h) + (h->ht.mask[0] + 1) * sizeof(void *) + ht_size(&h->ht) * (sizeof(hfield_t) + 16);
    } else if (e->type == CACHE_T_ZSET) {
        zset_t *z = ent_ptr(e);

        n += sizeof(*z) + (z->dict.mask[0] + 1) * sizeof(void *) +
             z->length * (sizeof(zmember_t) + sizeof(zsl_node_t) + 2 * sizeof(struct zsl_level) + 32);
    } else if (e->type != CACHE_T_STRING) {
        n += live_value_mem(e->type, ent_ptr(e));
    }
    return n;
}

/* ---- snapshot ----------------------------------------------------------- */

#define SNAP_MAGIC "OBKS"
#define SNAP_VERSION 1u
#define SNAP_END 0xff

typedef struct snap_ctx {
    struct evbuffer *out;
    uint64_t now;
    uint64_t count;
    int err;
} snap_ctx_t;

static void put32(snap_ctx_t *s, uint32_t v)
{
    if (evbuffer_add(s->out, &v, 4) != 0)
        s->err = -ENOMEM;
}

static void put64(snap_ctx_t *s, uint64_t v)
{
    if (evbuffer_add(s->out, &v, 8) != 0)
        s->err = -ENOMEM;
}

static void putstr(snap_ctx_t *s, const void *p, size_t n)
{
    put32(s, (uint32_t)n);
    if (evbuffer_add(s->out, p, n) != 0)
        s->err = -ENOMEM;
}


static void snap_key(void *arg, ht_node_t *n)
{
    snap_ctx_t *s = arg;
    cache_entry_t *e = (cache_entry_t *)n;
    int64_t exp = ent_expire(e);
    uint8_t hdr[2] = {e->type, exp >= 0};

    if (exp >= 0 && (int64_t)s->now > exp)
        return;
    if (evbuffer_add(s->out, hdr, 2) != 0)
        s->err = -ENOMEM;
    put64(s, (uint64_t)(exp >= 0 ? exp : 0));
    putstr(s, e->key, e->klen);
    if (e->type == CACHE_T_STRING) {
        putstr(s, e->key + e->klen, e->vlen);
    } else if (e->type == CACHE_T_HASH) {
        chash_t *h = ent_ptr(e);

        put32(s, (uint32_t)ht_size(&h->ht));
        for (hfield_t *f = h->first; f != NULL; f = f->onext) {
            putstr(s, f->key, f->h.klen);
            putstr(s, f->key + f->h.klen, f->vlen);
        }
    } else if (e->type != CACHE_T_ZSET) {
        if (live_value_dump(e->type, ent_ptr(e), s->out) != 0)
            s->err = -ENOMEM;
    } else {
        zset_t *z = ent_ptr(e);

        put32(s, (uint32_t)z->length);
        for (zsl_node_t *x = z->head->level[0].fwd; x != NULL; x = x->level[0].fwd) {
            putstr(s, x->m->key, x->m->h.klen);
            if (evbuffer_add(s->out, &x->score, 8) != 0)
                s->err = -ENOMEM;
        }
    }
    s->count++;
}

int cache_ks_snapshot(cache_ks_t *k, struct evbuffer *out, uint64_t now_ms)
{
    snap_ctx_t s = {out, now_ms, 0, 0};
    uint8_t end = SNAP_END;

    if (evbuffer_add(out, SNAP_MAGIC, 4) != 0)
        return -ENOMEM;
    put32(&s, SNAP_VERSION);
    ht_foreach(&k->ht, snap_key, &s);
    if (evbuffer_add(out, &end, 1) != 0)
        s.err = -ENOMEM;
    put64(&s, s.count);
    return s.err;
}

typedef struct rd {
    const unsigned char *p;
    size_t left;
} rd_t;

static int get(rd_t *r, void *dst, size_t n)
{
    if (r->left < n)
        return -1;
    memcpy(dst, r->p, n);
    r->p += n;
    r->left -= n;
    return 0;
}

static int getstr(rd_t *r, const char **p, uint32_t *n)
{
    if (get(r, n, 4) != 0 || r->left < *n)
        return -1;
    *p = (const char *)r->p;
    r->p += *n;
    r->left -= *n;
    return 0;
}

int cache_ks_restore(cache_ks_t *k, const void *buf, size_t len)
{
    rd_t r = {buf, len};
    char magic[4];
    uint32_t ver;
    uint64_t count = 0, want;
    int rv = -EPROTO;

    cache_ks_clear(k);
    if (get(&r, magic, 4) != 0 || memcmp(magic, SNAP_MAGIC, 4) != 0 || get(&r, &ver, 4) != 0 ||
        ver != SNAP_VERSION)
        goto fail;
    while (1) {
        uint8_t hdr[2];
        uint64_t exp;
        const char *key;
        uint32_t klen;
        cache_entry_t *e = NULL;

        if (get(&r, hdr, 1) != 0)
            goto fail;
        if (hdr[0] == SNAP_END)
            break;
        if (get(&r, hdr + 1, 1) != 0 || get(&r, &exp, 8) != 0 || getstr(&r, &key, &klen) != 0)
            goto fail;
        if (ht_find(&k->ht, key, klen) != NULL)
            goto fail;
        if (hdr[0] == CACHE_T_STRING) {
            const char *v;
            uint32_t vlen;

            if (getstr(&r, &v, &vlen) != 0)
                goto fail;
            e = cache_ks_set_str(k, key, klen, v, vlen, -1, 0, 0);
        } else if (hdr[0] == CACHE_T_HASH) {
            chash_t *h = chash_new();
            uint32_t n;

            if (h == NULL || get(&r, &n, 4) != 0 || n == 0) {
                if (h != NULL)
                    chash_free(h);
                rv = h == NULL ? -ENOMEM : -EPROTO;
                goto fail;
            }
            e = cache_ks_add_ptr(k, key, klen, CACHE_T_HASH, h);
            if (e == NULL) {
                chash_free(h);
                rv = -ENOMEM;
                goto fail;
            }
            for (uint32_t i = 0; i < n; i++) {
                const char *f, *v;
                uint32_t fl, vl;
                int a;

                if (getstr(&r, &f, &fl) != 0 || getstr(&r, &v, &vl) != 0)
                    goto fail;
                a = chash_set(h, f, fl, v, vl);
                if (a < 0) {
                    rv = a;
                    goto fail;
                }
                if (a == 0)
                    goto fail;
            }
        } else if (hdr[0] == CACHE_T_ZSET) {
            zset_t *z = zset_new();
            uint32_t n;

            if (z == NULL || get(&r, &n, 4) != 0 || n == 0) {
                if (z != NULL)
                    zset_free(z);
                rv = z == NULL ? -ENOMEM : -EPROTO;
                goto fail;
            }
            e = cache_ks_add_ptr(k, key, klen, CACHE_T_ZSET, z);
            if (e == NULL) {
                zset_free(z);
                rv = -ENOMEM;
                goto fail;
            }
            for (uint32_t i = 0; i < n; i++) {
                const char *m;
                uint32_t ml;
                double sc;
                int a;

                if (getstr(&r, &m, &ml) != 0 || get(&r, &sc, 8) != 0 || sc != sc)
                    goto fail;
                a = zset_set(z, m, ml, sc);
                if (a < 0) {
                    rv = a;
                    goto fail;
                }
                if (a == 0)
                    goto fail;
            }
        } else if (live_type_name(hdr[0]) != NULL) {
            void *v;
            int a = live_value_load(k, hdr[0], key, klen, &r.p, &r.left, &v);

            if (a != 0) {
                rv = a;
                goto fail;
            }
            e = cache_ks_add_ptr(k, key, klen, hdr[0], v);
            if (e == NULL) {
                live_value_free(hdr[0], v);
                rv = -ENOMEM;
                goto fail;
            }
        } else {
            goto fail;
        }
        if (e == NULL) {
            rv = -ENOMEM;
            goto fail;
        }
        if (hdr[1] && cache_ks_set_expire(k, e, (int64_t)exp) == NULL) {
            rv = -ENOMEM;
            goto fail;
        }
        count++;
    }
    if (get(&r, &want, 8) != 0 || want != count || r.left != 0)
        goto fail;
    return 0;
fail:
    cache_ks_clear(k);
    return rv;
}
