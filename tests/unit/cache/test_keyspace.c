/* Unit tests for cache/keyspace and the value types under it: the hash
 * table (growth, shrink, incremental rehash, SCAN coverage), string
 * entries with expiry, hashes, sorted sets (ranks), glob matching, and
 * snapshot/restore round trips. Every test checks that nothing is left
 * allocated under the cache tags at teardown. */
#include "cache/cache_int.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cache_ks_t *ks;

static void setup(void)
{
    ks = cache_ks_new();
    ck_assert_ptr_nonnull(ks);
}

static void teardown(void)
{
    cache_ks_free(&ks);
    ck_assert_ptr_null(ks);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_KEYS), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), 0);
}

static cache_entry_t *set(const char *k, const char *v, int64_t exp)
{
    return cache_ks_set_str(ks, k, strlen(k), v, strlen(v), exp, 0, 1000);
}

static cache_entry_t *find(const char *k, uint64_t now)
{
    return cache_ks_find(ks, k, strlen(k), now, 0);
}

START_TEST(test_strings)
{
    cache_entry_t *e;

    ck_assert_ptr_nonnull(set("a", "1", -1));
    e = find("a", 1000);
    ck_assert_ptr_nonnull(e);
    ck_assert(e->vlen == 1 && memcmp(ent_val(e), "1", 1) == 0);
    /* replace with a longer value, then a shorter one */
    set("a", "hello world", -1);
    e = find("a", 1000);
    ck_assert(e->vlen == 11 && memcmp(ent_val(e), "hello world", 11) == 0);
    set("a", "x", -1);
    ck_assert_uint_eq(find("a", 1000)->vlen, 1);
    ck_assert_uint_eq(cache_ks_size(ks), 1);
    ck_assert_int_eq(cache_ks_del(ks, "a", 1), 1);
    ck_assert_int_eq(cache_ks_del(ks, "a", 1), 0);
    ck_assert_ptr_null(find("a", 1000));
}
END_TEST

START_TEST(test_expiry)
{
    cache_entry_t *e;

    set("k", "v", 2000);
    ck_assert_uint_eq(cache_ks_volatile(ks), 1);
    e = find("k", 2000);
    ck_assert_ptr_nonnull(e);            /* expired only after the instant */
    ck_assert_int_eq(ent_expire(e), 2000);
    ck_assert_ptr_null(find("k", 2001)); /* absent, but not deleted ... */
    ck_assert_uint_eq(cache_ks_size(ks), 1);
    ck_assert_ptr_null(cache_ks_find(ks, "k", 1, 2001, 1)); /* ... until a write looks */
    ck_assert_uint_eq(cache_ks_size(ks), 0);
    ck_assert_uint_eq(cache_ks_volatile(ks), 0);
    /* KEEPTTL keeps, plain SET drops, set_expire moves the entry */
    set("k", "v", 5000);
    e = cache_ks_set_str(ks, "k", 1, "longer value", 12, -1, 1, 1000);
    ck_assert_int_eq(ent_expire(e), 5000);
    e = set("k", "v", -1);
    ck_assert_int_eq(ent_expire(e), -1);
    e = cache_ks_set_expire(ks, e, 9000);
    ck_assert_int_eq(ent_expire(find("k", 1000)), 9000);
    e = cache_ks_resize_str(ks, e, 100);
    ck_assert_int_eq(ent_expire(e), 9000);
    ck_assert_uint_eq(cache_ks_volatile(ks), 1);
    e = cache_ks_set_expire(ks, e, -1);
    ck_assert_int_eq(ent_expire(e), -1);
    ck_assert_uint_eq(cache_ks_volatile(ks), 0);
}
END_TEST

static void count_cb(void *arg, ht_node_t *n)
{
    unsigned char *seen = arg;
    cache_entry_t *e = (cache_entry_t *)n;
    int i = atoi(e->key + 1);

    if (seen[i] < 255)
        seen[i]++;
}

START_TEST(test_grow_shrink_scan)
{
    enum { N = 20000 };
    static unsigned char seen[N];
    char k[32];
    uint64_t cur = 0;
    int steps = 0;

    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_ptr_nonnull(set(k, "v", -1));
    }
    ck_assert_uint_eq(cache_ks_size(ks), N);
    for (int i = 0; i < N; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_ptr_nonnull(find(k, 0));
    }
    /* a SCAN started now sees every key present for the whole scan, even
     * while deletions shrink the table under it */
    memset(seen, 0, sizeof(seen));
    do {
        cur = ht_scan(&ks->ht, cur, count_cb, seen);
        if (++steps == 50)
            for (int i = N / 2; i < N; i++) {
                snprintf(k, sizeof(k), "k%d", i);
                cache_ks_del(ks, k, strlen(k));
            }
    } while (cur != 0);
    for (int i = 0; i < N / 2; i++)
        ck_assert_msg(seen[i] >= 1, "key k%d missed by SCAN", i);
    ck_assert_uint_eq(cache_ks_size(ks), N / 2);
    ck_assert_uint_le(ks->ht.mask[0] + 1, 2 * (size_t)N); /* grows by doubling */
    for (int i = N / 20; i < N / 2; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        cache_ks_del(ks, k, strlen(k));
    }
    while (ht_rehash(&ks->ht, 1000)) {
    }
    ck_assert_uint_lt(ks->ht.mask[0] + 1, (size_t)N / 2); /* and shrinks */
    for (int i = 0; i < N / 20; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        ck_assert_ptr_nonnull(find(k, 0));
    }
}
END_TEST

START_TEST(test_glob)
{
    ck_assert(cache_glob("*", 1, "abc", 3, 0));
    ck_assert(cache_glob("a?c", 3, "abc", 3, 0));
    ck_assert(!cache_glob("a?c", 3, "ac", 2, 0));
    ck_assert(cache_glob("h[ae]llo", 8, "hello", 5, 0));
    ck_assert(!cache_glob("h[^e]llo", 8, "hello", 5, 0));
    ck_assert(cache_glob("h[a-c]llo", 9, "hbllo", 5, 0));
    ck_assert(cache_glob("k\\*", 3, "k*", 2, 0));
    ck_assert(!cache_glob("k\\*", 3, "kx", 2, 0));
    ck_assert(cache_glob("MAX*", 4, "maxclients", 10, 1));
    ck_assert(!cache_glob("MAX*", 4, "maxclients", 10, 0));
    ck_assert(cache_glob("*a*b*", 5, "xxaxxbxx", 8, 0));
    ck_assert(!cache_glob("*a*b", 4, "xxaxxbxx", 8, 0));
    ck_assert(cache_glob("a*", 2, "a", 1, 0));
    ck_assert(!cache_glob("a*b", 3, "a", 1, 0));
    {
        /* pathological: must answer at once, not in exponential time */
        char pat[64], subj[128];

        for (int i = 0; i < 30; i++) {
            pat[2 * i] = '*';
            pat[2 * i + 1] = 'a';
        }
        pat[60] = 'b';
        memset(subj, 'a', sizeof(subj));
        ck_assert(!cache_glob(pat, 61, subj, sizeof(subj), 0));
    }
}
END_TEST

START_TEST(test_zset)
{
    zset_t *z = zset_new();
    char m[16];

    for (int i = 0; i < 1000; i++) {
        snprintf(m, sizeof(m), "m%04d", i);
        ck_assert_int_eq(zset_set(z, m, 5, (double)(i % 10)), 1);
    }
    ck_assert_uint_eq(z->length, 1000);
    ck_assert_int_eq(zset_set(z, "m0000", 5, 0), 0); /* unchanged */
    /* order: score, then member bytes; ranks agree with positions */
    for (size_t r = 0; r < z->length; r++) {
        zsl_node_t *n = zset_at(z, r);

        ck_assert_ptr_nonnull(n);
        ck_assert_uint_eq(zset_rank(z, n->score, n->m->key, n->m->h.klen), r);
        if (r > 0) {
            zsl_node_t *p = zset_at(z, r - 1);

            ck_assert_int_lt(zsl_cmp(p->score, p->m->key, p->m->h.klen, n->score, n->m->key, n->m->h.klen), 0);
        }
    }
    ck_assert_int_eq(zset_set(z, "m0005", 5, 100), 0);
    ck_assert(zset_at(z, 999)->m == zset_find(z, "m0005", 5));
    ck_assert_int_eq(zset_del(z, "m0005", 5), 1);
    ck_assert_int_eq(zset_del(z, "m0005", 5), 0);
    ck_assert_ptr_null(zset_find(z, "m0005", 5));
    ck_assert_uint_eq(z->length, 999);
    ck_assert_ptr_null(zset_at(z, 999));
    cache_ks_add_ptr(ks, "z", 1, CACHE_T_ZSET, z); /* freed with the keyspace */
}
END_TEST

/* Members added while the member dictionary rehashes, then removed: the
 * dictionary's counts must keep matching the set (a removal used to be
 * counted against the wrong table, and the rehash then ran off its end). */
START_TEST(test_zset_churn_during_rehash)
{
    zset_t *z = zset_new();
    char m[16];
    uint32_t r = 1;

    for (int op = 0; op < 200000; op++) {
        r = r * 1103515245u + 12345u;
        snprintf(m, sizeof(m), "live/cyc%u", (r >> 8) % 40);
        if ((r >> 20) & 1)
            zset_set(z, m, strlen(m), (double)(op % 3));
        else
            zset_del(z, m, strlen(m));
        ck_assert_uint_eq(ht_size(&z->dict), z->length);
    }
    zset_free(z);
}
END_TEST

START_TEST(test_hash)
{
    chash_t *h = chash_new();
    hfield_t *f;

    ck_assert_int_eq(chash_set(h, "b", 1, "1", 1), 1);
    ck_assert_int_eq(chash_set(h, "a", 1, "2", 1), 1);
    ck_assert_int_eq(chash_set(h, "b", 1, "longer", 6), 0);
    /* insertion order survives an update that moves the field */
    ck_assert(h->first->h.klen == 1 && h->first->key[0] == 'b');
    ck_assert(h->last->key[0] == 'a');
    f = (hfield_t *)ht_find(&h->ht, "b", 1);
    ck_assert(f->vlen == 6 && memcmp(f->key + 1, "longer", 6) == 0);
    cache_ks_add_ptr(ks, "h", 1, CACHE_T_HASH, h);
}
END_TEST

START_TEST(test_snapshot_roundtrip)
{
    struct evbuffer *b = evbuffer_new(), *b2 = evbuffer_new();
    cache_ks_t *k2 = cache_ks_new();
    chash_t *h = chash_new();
    zset_t *z = zset_new();
    size_t len;
    unsigned char *p;

    set("s", "value", -1);
    set("e", "soon", 3000);
    set("gone", "x", 500); /* expired at snapshot time: left out */
    chash_set(h, "f", 1, "v", 1);
    chash_set(h, "g", 1, "w", 1);
    cache_ks_add_ptr(ks, "h", 1, CACHE_T_HASH, h);
    zset_set(z, "a", 1, 1.5);
    zset_set(z, "b", 1, -2);
    cache_ks_add_ptr(ks, "z", 1, CACHE_T_ZSET, z);
    ck_assert_int_eq(cache_ks_snapshot(ks, b, 1000), 0);
    len = evbuffer_get_length(b);
    p = evbuffer_pullup(b, -1);
    ck_assert_int_eq(cache_ks_restore(k2, p, len), 0);
    ck_assert_uint_eq(cache_ks_size(k2), 4);
    ck_assert_int_eq(ent_expire(cache_ks_find(k2, "e", 1, 1000, 0)), 3000);
    ck_assert_ptr_null(cache_ks_find(k2, "gone", 4, 0, 0));
    {
        cache_entry_t *ze = cache_ks_find(k2, "z", 1, 1000, 0);
        zset_t *z2 = ent_ptr(ze);

        ck_assert_int_eq(ze->type, CACHE_T_ZSET);
        ck_assert(zset_at(z2, 0)->score == -2 && zset_at(z2, 1)->score == 1.5);
    }
    /* the copy snapshots to the same bytes */
    ck_assert_int_eq(cache_ks_snapshot(k2, b2, 1000), 0);
    ck_assert_uint_eq(evbuffer_get_length(b2), len);
    /* every truncation and a corrupted byte are rejected, leaving k2 empty */
    for (size_t cut = 0; cut < len; cut++) {
        ck_assert_int_eq(cache_ks_restore(k2, p, cut), -EPROTO);
        ck_assert_uint_eq(cache_ks_size(k2), 0);
    }
    p[4] ^= 0xff;
    ck_assert_int_eq(cache_ks_restore(k2, p, len), -EPROTO);
    evbuffer_free(b);
    evbuffer_free(b2);
    cache_ks_free(&k2);
}
END_TEST

static Suite *keyspace_suite(void)
{
    Suite *s = suite_create("keyspace");
    TCase *tc = tcase_create("keys");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_strings);
    tcase_add_test(tc, test_expiry);
    tcase_add_test(tc, test_grow_shrink_scan);
    tcase_add_test(tc, test_zset_churn_during_rehash);
    tcase_add_test(tc, test_glob);
    suite_add_tcase(s, tc);
    tc = tcase_create("types");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_zset);
    tcase_add_test(tc, test_hash);
    suite_add_tcase(s, tc);
    tc = tcase_create("snapshot");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_snapshot_roundtrip);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(keyspace_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
