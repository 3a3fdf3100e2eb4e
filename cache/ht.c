/* cache/ht: chained hash table with incremental rehash, shared by the
 * keyspace, hashes and sorted sets; plus the hash function and glob
 * matching. Nodes are owned by the caller; the table owns its buckets. */
#include "cache/cache_int.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

static uint64_t hash_seed = 0x2d358dccaa6c78a5ull;

static inline uint64_t rd64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

static inline uint64_t mix(uint64_t a, uint64_t b)
{
    __uint128_t r = (__uint128_t)a * b;

    return (uint64_t)r ^ (uint64_t)(r >> 64);
}

uint32_t cache_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = hash_seed ^ (n * 0x9e3779b97f4a7c15ull);

    while (n >= 16) {
        h = mix(rd64(p) ^ 0xa0761d6478bd642full, rd64(p + 8) ^ h);
        p += 16;
        n -= 16;
    }
    if (n >= 8) {
        h = mix(rd64(p) ^ 0xe7037ed1a0b428dbull, h ^ 0x8ebc6af09c88c6e3ull);
        p += 8;
        n -= 8;
    }
    if (n > 0) {
        uint64_t w = 0;

        memcpy(&w, p, n);
        h = mix(w ^ 0x589965cc75374cc3ull, h ^ 0x1d8e4e27c47d124full);
    }
    h = mix(h, 0x9e3779b97f4a7c15ull);
    return (uint32_t)(h ^ (h >> 32));
}

void ht_init(ht_t *h, size_t key_off, core_tag_t tag)
{
    memset(h, 0, sizeof(*h));
    h->key_off = (uint16_t)key_off;
    h->tag = tag;
}

void ht_close(ht_t *h)
{
    core_free(h->t[0]);
    core_free(h->t[1]);
    h->t[0] = h->t[1] = NULL;
    h->used[0] = h->used[1] = 0;
}

size_t ht_size(const ht_t *h)
{
    return h->used[0] + h->used[1];
}

static int rehashing(const ht_t *h)
{
    return h->t[1] != NULL;
}

int ht_rehash(ht_t *h, int n)
{
    int empty_visits = n * 10;

    if (!rehashing(h))
        return 0;
    while (n-- > 0 && h->used[0] != 0) {
        ht_node_t *e;

        while (h->t[0][h->rehashidx] == NULL) {
            h->rehashidx++;
            if (--empty_visits == 0)
                return 1;
        }
        e = h->t[0][h->rehashidx];
        while (e != NULL) {
            ht_node_t *next = e->next;
            size_t b = e->hash & h->mask[1];

            e->next = h->t[1][b];
            h->t[1][b] = e;
            h->used[0]--;
            h->used[1]++;
            e = next;
        }
        h->t[0][h->rehashidx] = NULL;
        h->rehashidx++;
    }
    if (h->used[0] == 0) {
        core_free(h->t[0]);
        h->t[0] = h->t[1];
        h->mask[0] = h->mask[1];
        h->used[0] = h->used[1];
        h->t[1] = NULL;
        h->mask[1] = 0;
        h->used[1] = 0;
        h->rehashidx = 0;
        return 0;
    }
    return 1;
}

static void resize(ht_t *h, size_t want)
{
    size_t sz = 4;
    ht_node_t **t;

    if (rehashing(h))
        return;
    while (sz < want)
        sz <<= 1;
    if (h->t[0] != NULL && sz == h->mask[0] + 1)
        return;
    t = core_calloc(h->tag, sz, sizeof(*t));
    if (t == NULL)
        return; /* keep working with longer chains */
    if (h->t[0] == NULL) {
        h->t[0] = t;
        h->mask[0] = sz - 1;
        return;
    }
    h->t[1] = t;
    h->mask[1] = sz - 1;
    h->rehashidx = 0;
    if (h->used[0] == 0)
        ht_rehash(h, 1);
}

void ht_maybe_shrink(ht_t *h)
{
    size_t n = ht_size(h);

    if (h->t[0] == NULL || rehashing(h))
        return;
    if (n == 0 && h->mask[0] + 1 > 4) {
        resize(h, 4);
        return;
    }
    if (h->mask[0] + 1 > 4 && n * 8 < h->mask[0] + 1)
        resize(h, n * 2);
}

ht_node_t **ht_findp(ht_t *h, const char *key, size_t klen, uint32_t hash)
{
    if (h->t[0] == NULL)
        return NULL;
    if (rehashing(h))
        ht_rehash(h, 1);
    for (int i = 0; i < 2; i++) {
        ht_node_t **pp;

        if (h->t[i] == NULL)
            break;
        pp = &h->t[i][hash & h->mask[i]];
        while (*pp != NULL) {
            ht_node_t *n = *pp;

            if (n->hash == hash && n->klen == klen &&
                memcmp((char *)n + h->key_off, key, klen) == 0)
                return pp;
            pp = &n->next;
        }
        if (!rehashing(h))
            break;
    }
    return NULL;
}

ht_node_t *ht_find(ht_t *h, const char *key, size_t klen)
{
    ht_node_t **pp = ht_findp(h, key, klen, cache_hash(key, klen));

    return pp ? *pp : NULL;
}

int ht_insert(ht_t *h, ht_node_t *n)
{
    int i;
    size_t b;

    if (h->t[0] == NULL)
        resize(h, 4);
    else if (!rehashing(h) && h->used[0] >= h->mask[0] + 1)
        resize(h, h->used[0] + 1); /* the next power of two: double */
    if (rehashing(h))
        ht_rehash(h, 1);
    i = rehashing(h) ? 1 : 0;
    if (h->t[i] == NULL)
        return -ENOMEM;
    b = n->hash & h->mask[i];
    n->next = h->t[i][b];
    h->t[i][b] = n;
    h->used[i]++;
    return 0;
}

void ht_unlink(ht_t *h, ht_node_t **slot)
{
    ht_node_t *n = *slot;
    int i = 0;

    /* which table did it live in? Not only the buckets of t[0] below
     * rehashidx have moved to t[1]: every insert during a rehash goes to
     * t[1] too, whatever its t[0] bucket, so look for it there */
    if (rehashing(h))
        for (ht_node_t *x = h->t[1][n->hash & h->mask[1]]; x != NULL; x = x->next)
            if (x == n) {
                i = 1;
                break;
            }
    *slot = n->next;
    h->used[i]--;
}

void ht_foreach(ht_t *h, ht_scan_cb cb, void *arg)
{
    for (int i = 0; i < 2; i++) {
        if (h->t[i] == NULL)
            continue;
        for (size_t b = 0; b <= h->mask[i]; b++) {
            ht_node_t *n = h->t[i][b];

            while (n != NULL) {
                ht_node_t *next = n->next;

                cb(arg, n);
                n = next;
            }
        }
    }
}

static uint64_t rev64(uint64_t v)
{
    uint64_t r = 0;

    for (int i = 0; i < 64; i++) {
        r = (r << 1) | (v & 1);
        v >>= 1;
    }
    return r;
}

static void visit_bucket(ht_node_t *n, ht_scan_cb cb, void *arg)
{
    while (n != NULL) {
        ht_node_t *next = n->next;

        cb(arg, n);
        n = next;
    }
}

uint64_t ht_scan(ht_t *h, uint64_t v, ht_scan_cb cb, void *arg)
{
    if (h->t[0] == NULL || ht_size(h) == 0)
        return 0;
    if (!rehashing(h)) {
        uint64_t m0 = h->mask[0];

        visit_bucket(h->t[0][v & m0], cb, arg);
        v |= ~m0;
        v = rev64(v);
        v++;
        v = rev64(v);
    } else {
        int small = h->mask[0] <= h->mask[1] ? 0 : 1, big = 1 - small;
        uint64_t m0 = h->mask[small], m1 = h->mask[big];

        visit_bucket(h->t[small][v & m0], cb, arg);
        do {
            visit_bucket(h->t[big][v & m1], cb, arg);
            v |= ~m1;
            v = rev64(v);
            v++;
            v = rev64(v);
        } while (v & (m0 ^ m1));
    }
    return v;
}

ht_node_t *ht_random(ht_t *h, uint64_t r)
{
    size_t len = 0, pick;
    ht_node_t *n = NULL;

    if (ht_size(h) == 0)
        return NULL;
    for (int tries = 0; n == NULL && tries < 1000000; tries++) {
        uint64_t x = r + (uint64_t)tries * 0x9e3779b97f4a7c15ull;

        x ^= x >> 31;
        x *= 0xbf58476d1ce4e5b9ull;
        x ^= x >> 29;
        if (rehashing(h)) {
            size_t s0 = h->mask[0] + 1, s1 = h->mask[1] + 1;
            size_t b = (size_t)(x % (s0 + s1));

            if (b < s0)
                n = b < h->rehashidx ? NULL : h->t[0][b];
            else
                n = h->t[1][b - s0];
        } else {
            n = h->t[0][x & h->mask[0]];
        }
    }
    if (n == NULL)
        return NULL;
    for (ht_node_t *m = n; m != NULL; m = m->next)
        len++;
    pick = (size_t)((r >> 17) % len);
    while (pick-- > 0)
        n = n->next;
    return n;
}

/* ---- glob ----------------------------------------------------------------- */

static int lower(int c)
{
    return tolower((unsigned char)c);
}

/* skip: set once the subject ran out with pattern left; then no longer
 * match for an earlier '*' can succeed, which keeps patterns such as
 * "*a*a*a*a*b" from taking exponential time (Redis does the same). */
static int glob(const char *p, size_t plen, const char *s, size_t slen, int nocase, int *skip,
                int nesting)
{
    if (nesting > 1000)
        return 0;
    while (plen > 0 && slen > 0) {
        switch (p[0]) {
        case '*':
            while (plen > 1 && p[1] == '*') {
                p++;
                plen--;
            }
            if (plen == 1)
                return 1;
            while (slen > 0) {
                if (glob(p + 1, plen - 1, s, slen, nocase, skip, nesting + 1))
                    return 1;
                if (*skip)
                    return 0;
                s++;
                slen--;
            }
            *skip = 1;
            return 0;
        case '?':
            s++;
            slen--;
            break;
        case '[': {
            int neg, match = 0;

            p++;
            plen--;
            neg = plen > 0 && p[0] == '^';
            if (neg) {
                p++;
                plen--;
            }
            while (plen > 0 && p[0] != ']') {
                if (p[0] == '\\' && plen >= 2) {
                    p++;
                    plen--;
                    if (p[0] == s[0])
                        match = 1;
                } else if (plen >= 3 && p[1] == '-') {
                    int a = (unsigned char)p[0], b = (unsigned char)p[2], c = (unsigned char)s[0];

                    if (a > b) {
                        int t = a;

                        a = b;
                        b = t;
                    }
                    if (nocase) {
                        a = lower(a);
                        b = lower(b);
                        c = lower(c);
                    }
                    p += 2;
                    plen -= 2;
                    if (c >= a && c <= b)
                        match = 1;
                } else if (nocase ? lower(p[0]) == lower(s[0]) : p[0] == s[0]) {
                    match = 1;
                }
                p++;
                plen--;
            }
            if (plen == 0) {
                /* no closing bracket: Redis treats the end as the close */
                p--;
                plen++;
            }
            if (neg)
                match = !match;
            if (!match)
                return 0;
            s++;
            slen--;
            break;
        }
        case '\\':
            if (plen >= 2) {
                p++;
                plen--;
            }
            /* fall through */
        default:
            if (nocase ? lower(p[0]) != lower(s[0]) : p[0] != s[0])
                return 0;
            s++;
            slen--;
            break;
        }
        p++;
        plen--;
        if (slen == 0) {
            while (plen > 0 && p[0] == '*') {
                p++;
                plen--;
            }
            break;
        }
    }
    if (slen == 0 && plen > 0)
        *skip = 1;
    return plen == 0 && slen == 0;
}

int cache_glob(const char *p, size_t plen, const char *s, size_t slen, int nocase)
{
    int skip = 0;

    return glob(p, plen, s, slen, nocase, &skip, 0);
}
