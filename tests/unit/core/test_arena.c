/* Unit tests for core/arena: tagged allocation, accounting, scopes, fault
 * injection, size classes, large and huge blocks, threads, purging (RSS
 * measured in /proc/self/smaps_rollup), compaction, and a random stress
 * run checked against a shadow model. The RSS cases apply to
 * allocator=arena only; under allocator=system they check what libc can
 * promise (contents and accounting). */
#include "core/arena.h"
#include "core/arena_int.h"

#include <check.h>
#include <event2/buffer.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef OBORO_ALLOC_SYSTEM
#define ARENA_MODE 0
#else
#define ARENA_MODE 1
#endif

static int called;
static void bump(void *arg)
{
    called += *(int *)arg;
}

START_TEST(tagged_accounting)
{
    int64_t before = core_mem_tag_live(CORE_TAG_TEST);
    char *p = core_malloc(CORE_TAG_TEST, 100);
    char *q;

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    ck_assert_int_ge(core_alloc_size(p), 100);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(p));
    memset(p, 'x', 100);
    q = core_realloc(CORE_TAG_MISC, p, 5000);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(q[99], 'x');
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(q));
    core_free(q);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
    core_free(NULL);
}
END_TEST

START_TEST(calloc_overflow)
{
    ck_assert_ptr_null(core_calloc(CORE_TAG_TEST, SIZE_MAX / 2, 4));
    char *z = core_calloc(CORE_TAG_TEST, 10, 10);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(z[i], 0);
    core_free(z);
}
END_TEST

START_TEST(dup_copies)
{
    char *s = core_strdup(CORE_TAG_TEST, "hello");
    char *m = core_memdup(CORE_TAG_TEST, "ab\0cd", 5);

    ck_assert_str_eq(s, "hello");
    ck_assert_int_eq(memcmp(m, "ab\0cd", 6), 0);
    core_free(s);
    core_free(m);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}
END_TEST

START_TEST(stats_sum)
{
    core_mem_stats_t st;
    void *p = core_malloc(CORE_TAG_HLS, 1000);

    core_mem_stats(&st, 1);
    ck_assert_int_ge(st.tags[CORE_TAG_HLS].live_bytes, 1000);
    ck_assert_int_ge(st.tags[CORE_TAG_HLS].live_objects, 1);
    ck_assert_int_ge(st.live_bytes, st.tags[CORE_TAG_HLS].live_bytes);
    ck_assert_int_gt(st.rss_private, 0);
    ck_assert_str_eq(core_tag_name(CORE_TAG_HUB_PACKETS), "hub.packets");
    ck_assert_str_eq(core_tag_name(CORE_TAG_CACHE_KEYS), "cache.keys");
    core_free(p);
}
END_TEST

START_TEST(scope_basic)
{
    core_scope_t *s = core_scope_new(CORE_TAG_TEST, 1024);
    int one = 1, ten = 10;

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 1000; i++) {
        char *p = core_scope_alloc(s, 100);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, i, 100);
    }
    ck_assert_int_eq(core_scope_used(s), 100000);
    ck_assert_ptr_nonnull(core_scope_alloc(s, 100000)); /* larger than a chunk */
    ck_assert_int_eq(core_scope_cleanup_add(s, bump, &one), 0);
    ck_assert_int_eq(core_scope_cleanup_add(s, bump, &ten), 0);
    called = 0;
    core_scope_reset(s);
    ck_assert_int_eq(called, 11);
    ck_assert_int_eq(core_scope_used(s), 0);
    /* a reset scope keeps at most one chunk */
    ck_assert_int_le(core_mem_tag_live(CORE_TAG_TEST), 2048 + 256);
    ck_assert_str_eq(core_scope_strndup(s, "abcdef", 3), "abc");
    core_scope_cleanup_add(s, bump, &one);
    called = 0;
    core_scope_free(&s);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(called, 1);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}
END_TEST

START_TEST(scope_loop_does_not_grow)
{
    core_scope_t *s = core_scope_new(CORE_TAG_TEST, 0);
    int64_t high = 0;

    /* the habit that prevents the incident: a loop resets its scratch */
    for (int it = 0; it < 10000; it++) {
        for (int k = 0; k < 20; k++)
            ck_assert_ptr_nonnull(core_scope_alloc(s, 64 + (size_t)k * 8));
        if (core_mem_tag_live(CORE_TAG_TEST) > high)
            high = core_mem_tag_live(CORE_TAG_TEST);
        core_scope_reset(s);
    }
    ck_assert_int_le(high, 64 * 1024);
    core_scope_free(&s);
}
END_TEST

START_TEST(fault_injection)
{
    void *a, *b;

    core_mem_fail_after(2);
    a = core_malloc(CORE_TAG_TEST, 10);
    b = core_malloc(CORE_TAG_TEST, 10);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_null(core_malloc(CORE_TAG_TEST, 10));
    core_mem_fail_reset();
    b = core_malloc(CORE_TAG_TEST, 10);
    ck_assert_ptr_nonnull(b);
    core_free(a);
    core_free(b);
}
END_TEST


/* ---- helpers ----------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    /* xorshift64*: deterministic across runs */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Byte i of a block filled with seed is (seed + 7 i) mod 256: period 256,
 * so whole blocks are written and compared 4 KiB at a time (fast under
 * the sanitizers too). */
static void pattern(unsigned char *buf, unsigned seed)
{
    for (size_t i = 0; i < 4096; i++)
        buf[i] = (unsigned char)(seed + i * 7);
}

static void fill(void *p, size_t n, unsigned seed)
{
    unsigned char buf[4096], *c = p;

    pattern(buf, seed);
    for (size_t off = 0; off < n; off += sizeof(buf))
        memcpy(c + off, buf, n - off < sizeof(buf) ? n - off : sizeof(buf));
}

static int check_fill(const void *p, size_t n, unsigned seed)
{
    unsigned char buf[4096];
    const unsigned char *c = p;

    pattern(buf, seed);
    for (size_t off = 0; off < n; off += sizeof(buf))
        if (memcmp(c + off, buf, n - off < sizeof(buf) ? n - off : sizeof(buf)) != 0)
            return 0;
    return 1;
}

static int64_t rss_private(int64_t *lazyfree)
{
    core_mem_stats_t st;

    core_mem_stats(&st, 1);
    if (lazyfree != NULL)
        *lazyfree = st.rss_lazyfree;
    return st.rss_private;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

/* ---- size classes, large, huge ----------------------------------------- */

START_TEST(class_table)
{
    size_t prev = 0;

    for (unsigned c = 0; c < ARENA_NCLASSES; c++) {
        size_t sz = arena_class_size(c);

        ck_assert_uint_gt(sz, prev);
        ck_assert_uint_eq(sz % 16, 0);
        ck_assert_uint_eq(arena_class_of(sz), c);
        ck_assert_uint_eq(arena_class_of(prev + 1), c);
        /* above 128 B a class wastes at most 25% of the request */
        if (prev >= 128)
            ck_assert_uint_le((sz - (prev + 1)) * 4, prev + 1);
        prev = sz;
    }
    ck_assert_uint_eq(prev, ARENA_SMALL_MAX);
    ck_assert_uint_eq(arena_class_of(0), 0);
}
END_TEST

START_TEST(every_small_size)
{
    int64_t before = core_mem_tag_live(CORE_TAG_TEST);
    static void *blocks[ARENA_SMALL_MAX + 1];
    int64_t sum = 0;

    for (size_t n = 0; n <= ARENA_SMALL_MAX; n++) {
        void *p = core_malloc(CORE_TAG_TEST, n);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        ck_assert_uint_ge(core_alloc_size(p), n);
        if (ARENA_MODE)
            ck_assert_uint_eq(core_alloc_size(p), arena_class_size(arena_class_of(n)));
        fill(p, n, (unsigned)n);
        blocks[n] = p;
        sum += (int64_t)core_alloc_size(p);
    }
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, sum);
    for (size_t n = 0; n <= ARENA_SMALL_MAX; n++) {
        ck_assert(check_fill(blocks[n], n, (unsigned)n));
        core_free(blocks[n]);
    }
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
}
END_TEST

static size_t resident_bytes(const void *p, size_t len)
{
    unsigned char vec[64];
    size_t n = 0, pages = len / 4096;

    ck_assert_uint_le(pages, sizeof(vec));
    ck_assert_int_eq(mincore((void *)p, len, vec), 0);
    for (size_t i = 0; i < pages; i++)
        n += vec[i] & 1;
    return n * 4096;
}

/* A large object counts what it holds, to the 4 KiB page, and a span that
 * held a bigger object before does not keep the old tail resident: live
 * bytes and RSS agree. */
START_TEST(large_counts_its_pages)
{
    int64_t before = core_mem_tag_live(CORE_TAG_TEST);
    char *big, *small;

    big = core_malloc(CORE_TAG_TEST, 60000);
    ck_assert_ptr_nonnull(big);
    ck_assert_uint_eq(core_alloc_size(big), ARENA_MODE ? 61440 : 60000);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(big));
    memset(big, 1, 60000);
    core_free(big);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
    /* most likely the same (dirty) page comes back; whichever it is, the
     * part past the object must not be resident */
    small = core_malloc(CORE_TAG_TEST, 20000);
    ck_assert_ptr_nonnull(small);
    ck_assert_uint_eq(core_alloc_size(small), ARENA_MODE ? 20480 : 20000);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(small));
    if (ARENA_MODE) {
        ck_assert_uint_eq(resident_bytes(small + 20480, ARENA_PAGE - 20480), 0);
    }
    /* grows and shrinks in place within its page, accounting following */
    memset(small, 2, 20000);
    if (ARENA_MODE) {
        char *same = core_realloc(CORE_TAG_TEST, small, 24000);

        ck_assert_ptr_eq(same, small);
        ck_assert_uint_eq(core_alloc_size(same), 24576);
        ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, 24576);
    }
    small = core_realloc(CORE_TAG_TEST, small, 50000);
    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(small));
    ck_assert_uint_ge(core_alloc_size(small), 50000);
    ck_assert_int_eq(small[19999], 2);
    memset(small, 3, 50000);
    small = core_realloc(CORE_TAG_TEST, small, 36000);
    ck_assert_ptr_nonnull(small);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(small));
    ck_assert_int_eq(small[35999], 3);
    if (ARENA_MODE) {
        ck_assert_uint_eq(core_alloc_size(small), 36864);
        ck_assert_uint_eq(resident_bytes(small + 36864, ARENA_PAGE - 36864), 0);
    }
    core_free(small);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
}
END_TEST

START_TEST(large_and_huge)
{
    static const size_t sizes[] = {
        ARENA_SMALL_MAX + 1, 65535, 65536, 65537, 200000, 500000,
        ARENA_HUGE_MIN - 1, ARENA_HUGE_MIN, ARENA_HUGE_MIN + 1, 5u << 20, 33333333,
    };
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    void *p[N];
    core_mem_stats_t st0, st1;

    core_mem_stats(&st0, 0);
    for (int i = 0; i < N; i++) {
        p[i] = core_malloc(CORE_TAG_BLUR, sizes[i]);
        ck_assert_ptr_nonnull(p[i]);
        ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
        ck_assert_uint_ge(core_alloc_size(p[i]), sizes[i]);
        /* usable size is not wildly larger than asked: large objects are
         * counted in 4 KiB units, huge ones in pages plus a header */
        ck_assert_uint_le(core_alloc_size(p[i]), sizes[i] + 4096 + ARENA_HUGE_HDR);
        fill(p[i], sizes[i], (unsigned)i);
    }
    core_mem_stats(&st1, 0);
    ck_assert_int_eq(st1.tags[CORE_TAG_BLUR].live_objects - st0.tags[CORE_TAG_BLUR].live_objects, N);
    if (ARENA_MODE) {
        ck_assert_int_ge(st1.heap_active - st0.heap_active, 33333333 + (5 << 20));
        ck_assert_int_ge(st1.spans_active - st0.spans_active, N);
    }
    for (int i = 0; i < N; i++) {
        ck_assert(check_fill(p[i], sizes[i], (unsigned)i));
        core_free(p[i]);
    }
    core_mem_stats(&st1, 0);
    ck_assert_int_eq(st1.tags[CORE_TAG_BLUR].live_bytes, st0.tags[CORE_TAG_BLUR].live_bytes);
    ck_assert_int_eq(st1.tags[CORE_TAG_BLUR].live_objects, st0.tags[CORE_TAG_BLUR].live_objects);
    if (ARENA_MODE)
        ck_assert_int_eq(st1.heap_active, st0.heap_active);
}
END_TEST

START_TEST(realloc_across_classes)
{
    int64_t before = core_mem_tag_live(CORE_TAG_TEST);
    size_t n = 1;
    char *p = core_malloc(CORE_TAG_TEST, n);

    ck_assert_ptr_nonnull(p);
    fill(p, n, 3);
    /* grow through small classes, large spans and huge mappings */
    while (n < (3u << 20)) {
        size_t m = n * 3 / 2 + 1;

        p = core_realloc(CORE_TAG_MISC, p, m);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        ck_assert(check_fill(p, n, 3));
        ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(p));
        fill(p, m, 3);
        n = m;
    }
    /* and shrink back down */
    while (n > 8) {
        n = n / 3;
        p = core_realloc(CORE_TAG_MISC, p, n);
        ck_assert_ptr_nonnull(p);
        ck_assert(check_fill(p, n, 3));
        ck_assert_uint_ge(core_alloc_size(p), n);
        ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(p));
    }
    p = core_realloc(CORE_TAG_TEST, p, 0);
    ck_assert_ptr_nonnull(p);
    core_free(p);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
    /* realloc(NULL) allocates with the given tag */
    p = core_realloc(CORE_TAG_TEST, NULL, 40);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(p));
    core_free(p);
}
END_TEST

START_TEST(realloc_fault_keeps_block)
{
    char *p = core_malloc(CORE_TAG_TEST, 100);

    fill(p, 100, 9);
    core_mem_fail_after(1);
    ck_assert_ptr_null(core_realloc(CORE_TAG_TEST, p, 100000));
    ck_assert_ptr_null(core_calloc(CORE_TAG_TEST, 1, 10));
    ck_assert_ptr_null(core_strdup(CORE_TAG_TEST, "x"));
    ck_assert_ptr_null(core_malloc(CORE_TAG_TEST, 5u << 20));
    core_mem_fail_reset();
    ck_assert(check_fill(p, 100, 9));
    core_free(p);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}
END_TEST

START_TEST(aligned_blocks)
{
    static const size_t aligns[] = {1, 16, 32, 64, 256, 4096, 8192, 65536, 1u << 20};
    static const size_t sizes[] = {0, 1, 100, 4096, 5000, 16384, 70000, 2u << 20};
    int64_t before = core_mem_tag_live(CORE_TAG_RAFT_LOG);

    for (size_t a = 0; a < sizeof(aligns) / sizeof(aligns[0]); a++) {
        for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
            size_t al = aligns[a] < 16 ? 16 : aligns[a];
            void *p = core_aligned_alloc(CORE_TAG_RAFT_LOG, aligns[a], sizes[k]);

            ck_assert_ptr_nonnull(p);
            ck_assert_msg((uintptr_t)p % al == 0, "align %zu size %zu", aligns[a], sizes[k]);
            ck_assert_uint_ge(core_alloc_size(p), sizes[k]);
            fill(p, sizes[k], 5);
            ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_LOG) - before,
                             (int64_t)core_alloc_size(p));
            ck_assert(check_fill(p, sizes[k], 5));
            if (k % 2 == 0) {
                p = core_realloc(CORE_TAG_RAFT_LOG, p, sizes[k] + 3000);
                ck_assert_ptr_nonnull(p);
                ck_assert(check_fill(p, sizes[k], 5));
            }
            core_free(p);
            ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_LOG), before);
        }
    }
    ck_assert_ptr_null(core_aligned_alloc(CORE_TAG_TEST, 48, 10));
    core_mem_fail_after(1);
    ck_assert_ptr_null(core_aligned_alloc(CORE_TAG_TEST, 4096, 10));
    core_mem_fail_reset();
}
END_TEST

START_TEST(libevent_is_tagged_net)
{
    int64_t before = core_mem_tag_live(CORE_TAG_NET);
    struct evbuffer *b = evbuffer_new();
    char chunk[1000];

    ck_assert_ptr_nonnull(b);
    memset(chunk, 'x', sizeof(chunk));
    for (int i = 0; i < 300; i++)
        ck_assert_int_eq(evbuffer_add(b, chunk, sizeof(chunk)), 0);
    ck_assert_int_ge(core_mem_tag_live(CORE_TAG_NET) - before, 300 * 1000);
    /* fault injection is for our callers' tests, not libevent's */
    core_mem_fail_after(1);
    ck_assert_int_eq(evbuffer_add(b, chunk, sizeof(chunk)), 0);
    core_mem_fail_reset();
    evbuffer_free(b);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_NET), before);
}
END_TEST

/* ---- threads ----------------------------------------------------------- */

enum { XT_N = 20000 };

typedef struct xt {
    void **blocks;
    int n;
    pthread_barrier_t *bar;
} xt_t;

static void *xt_alloc(void *arg)
{
    xt_t *x = arg;

    for (int i = 0; i < x->n; i++) {
        size_t n = 8 + (size_t)(i % 40) * 100;

        x->blocks[i] = core_malloc(CORE_TAG_INGEST, n);
        fill(x->blocks[i], n, (unsigned)i);
    }
    return NULL;
}

static void *xt_free(void *arg)
{
    xt_t *x = arg;

    for (int i = 0; i < x->n; i++) {
        size_t n = 8 + (size_t)(i % 40) * 100;

        if (!check_fill(x->blocks[i], n, (unsigned)i))
            return (void *)1;
        core_free(x->blocks[i]);
    }
    return NULL;
}

START_TEST(cross_thread_free)
{
    static void *blocks[XT_N];
    xt_t x = {blocks, XT_N, NULL};
    pthread_t a, b;
    void *res;

    ck_assert_int_eq(pthread_create(&a, NULL, xt_alloc, &x), 0);
    pthread_join(a, NULL);
    /* the allocating thread is gone; its counters were folded */
    ck_assert_int_gt(core_mem_tag_live(CORE_TAG_INGEST), XT_N * 8);
    ck_assert_int_eq(pthread_create(&b, NULL, xt_free, &x), 0);
    pthread_join(b, &res);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_INGEST), 0);
    /* and the other way round: a worker frees what this thread allocated */
    xt_alloc(&x);
    ck_assert_int_eq(pthread_create(&b, NULL, xt_free, &x), 0);
    pthread_join(b, &res);
    ck_assert_ptr_null(res);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_INGEST), 0);
    if (ARENA_MODE) {
        arena_heap_info_t hi;

        /* every slab emptied by the foreign frees went back to the heap,
         * apart from what this thread's cache may pin */
        arena_thread_flush();
        arena_heap_info(&hi);
        ck_assert_uint_eq(hi.slab_used_bytes, 0);
    }
}
END_TEST

typedef struct fl {
    pthread_barrier_t bar;
} fl_t;

static void *fl_main(void *arg)
{
    fl_t *f = arg;
    void *v[2000];

    for (int i = 0; i < 2000; i++)
        v[i] = core_malloc(CORE_TAG_BLUR, 48);
    for (int i = 0; i < 2000; i++)
        core_free(v[i]);
    core_mem_thread_flush();
    pthread_barrier_wait(&f->bar); /* main looks while we are alive */
    pthread_barrier_wait(&f->bar);
    return NULL;
}

START_TEST(worker_flush)
{
    fl_t f;
    pthread_t th;

    arena_thread_flush();
    pthread_barrier_init(&f.bar, NULL, 2);
    ck_assert_int_eq(pthread_create(&th, NULL, fl_main, &f), 0);
    pthread_barrier_wait(&f.bar);
    if (ARENA_MODE) {
        arena_heap_info_t hi;

        arena_heap_info(&hi);
        ck_assert_uint_eq(hi.slab_used_bytes, 0);
    }
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_BLUR), 0);
    pthread_barrier_wait(&f.bar);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&f.bar);
}
END_TEST

enum { PT_THREADS = 4, PT_N = 3000 };

typedef struct pt {
    int id;
    pthread_barrier_t *bar;
    void *blocks[PT_N];
} pt_t;

static void *pt_main(void *arg)
{
    pt_t *t = arg;

    for (int i = 0; i < PT_N; i++)
        t->blocks[i] = core_malloc(CORE_TAG_HUB_PACKETS, 100);
    /* main reads the sum while we are alive, then we exit without freeing */
    pthread_barrier_wait(t->bar);
    pthread_barrier_wait(t->bar);
    /* churn: the cache hands blocks back and forth */
    for (int k = 0; k < 50; k++)
        for (int i = 0; i < PT_N; i += 7) {
            core_free(t->blocks[i]);
            t->blocks[i] = core_malloc(CORE_TAG_HUB_PACKETS, 100);
        }
    return NULL;
}

START_TEST(per_thread_counters)
{
    static pt_t t[PT_THREADS];
    pthread_barrier_t bar;
    pthread_t th[PT_THREADS];
    core_mem_stats_t st;

    pthread_barrier_init(&bar, NULL, PT_THREADS + 1);
    for (int i = 0; i < PT_THREADS; i++) {
        t[i].id = i;
        t[i].bar = &bar;
        ck_assert_int_eq(pthread_create(&th[i], NULL, pt_main, &t[i]), 0);
    }
    pthread_barrier_wait(&bar);
    core_mem_stats(&st, 0);
    ck_assert_int_eq(st.tags[CORE_TAG_HUB_PACKETS].live_objects, PT_THREADS * PT_N);
    ck_assert_int_eq(st.tags[CORE_TAG_HUB_PACKETS].live_bytes,
                     (int64_t)PT_THREADS * PT_N * (int64_t)core_alloc_size(t[0].blocks[0]));
    pthread_barrier_wait(&bar);
    for (int i = 0; i < PT_THREADS; i++)
        pthread_join(th[i], NULL);
    core_mem_stats(&st, 0);
    ck_assert_int_eq(st.tags[CORE_TAG_HUB_PACKETS].live_objects, PT_THREADS * PT_N);
    for (int i = 0; i < PT_THREADS; i++)
        for (int k = 0; k < PT_N; k++)
            core_free(t[i].blocks[k]);
    core_mem_stats(&st, 0);
    ck_assert_int_eq(st.tags[CORE_TAG_HUB_PACKETS].live_objects, 0);
    ck_assert_int_eq(st.tags[CORE_TAG_HUB_PACKETS].live_bytes, 0);
    pthread_barrier_destroy(&bar);
}
END_TEST

/* ---- scopes return their pages ----------------------------------------- */

START_TEST(scope_reset_returns_pages)
{
    core_scope_t *s = core_scope_new(CORE_TAG_SCRATCH, 65536);
    core_mem_stats_t st0, st1;

    core_mem_stats(&st0, 0);
    for (int i = 0; i < 4000; i++)
        ck_assert_ptr_nonnull(core_scope_alloc(s, 3000));
    ck_assert_ptr_nonnull(core_scope_alloc(s, 3u << 20)); /* oversized: huge */
    core_mem_stats(&st1, 0);
    ck_assert_int_ge(st1.tags[CORE_TAG_SCRATCH].live_bytes - st0.tags[CORE_TAG_SCRATCH].live_bytes,
                     4000 * 3000 + (3 << 20));
    if (ARENA_MODE)
        ck_assert_int_ge(st1.heap_active - st0.heap_active, 4000 * 3000);
    core_scope_reset(s);
    core_mem_stats(&st1, 0);
    /* one chunk stays */
    ck_assert_int_le(st1.tags[CORE_TAG_SCRATCH].live_bytes - st0.tags[CORE_TAG_SCRATCH].live_bytes,
                     65536 + 128);
    if (ARENA_MODE) {
        ck_assert_int_le(st1.heap_active - st0.heap_active, 65536 * 2);
        /* and the pages went back to the kernel at once or are retained
         * for at most the purge delay */
        ck_assert_uint_gt(core_mem_purge(0) + (size_t)st1.heap_purged_total, 0);
    }
    core_scope_free(&s);
}
END_TEST

/* ---- purging: RSS follows live memory ------------------------------------ */

START_TEST(purge_returns_rss)
{
    enum { N = 200 * 1024 * 1024 / 256 };
    void **v;
    int64_t start, peak, now = 0, lazy = 0;
    uint64_t t0;
    int ok = 0;

    if (!ARENA_MODE)
        return; /* libc keeps what it likes; nothing to assert */
    core_mem_purge(0);
    start = rss_private(NULL);
    v = core_malloc(CORE_TAG_TEST, N * sizeof(*v));
    for (size_t i = 0; i < N; i++) {
        size_t n = 16 + (rnd() % 480); /* average ~256 B */

        v[i] = core_malloc(CORE_TAG_TEST, n);
        memset(v[i], 1, n);
    }
    peak = rss_private(NULL);
    ck_assert_int_ge(peak - start, 150 << 20);
    for (size_t i = 0; i < N; i++)
        core_free(v[i]);
    core_free(v);
    /* the daemon's timer: every 100 ms with the default delay of 500 ms */
    t0 = (uint64_t)time(NULL);
    for (int tick = 0; tick < 20; tick++) {
        core_mem_purge(500);
        now = rss_private(&lazy);
        ck_assert_int_eq(lazy, 0);
        if (now <= start + (5 << 20)) {
            ok = 1;
            break;
        }
        sleep_ms(100);
    }
    (void)t0;
    if (!ok)
        ck_abort_msg("private RSS %lld, start %lld, peak %lld after 2 s", (long long)now,
                     (long long)start, (long long)peak);
}
END_TEST

START_TEST(retained_is_bounded_without_timer)
{
    enum { N = 1000 };
    void *v[N];
    core_mem_stats_t st;

    if (!ARENA_MODE)
        return;
    for (int i = 0; i < N; i++)
        v[i] = core_malloc(CORE_TAG_TEST, 100000); /* large spans */
    for (int i = 0; i < N; i++) {
        memset(v[i], 1, 100000);
        core_free(v[i]);
    }
    core_mem_stats(&st, 1);
    /* no purge call: the 10% rule (with its floor) returned the rest */
    ck_assert_int_le(st.heap_free_retained,
                     st.heap_active / 10 > (int64_t)ARENA_RETAIN_FLOOR ? st.heap_active / 10
                                                                : (int64_t)ARENA_RETAIN_FLOOR);
    ck_assert_int_ge(st.heap_purged_total, 90 * 1000 * 1000);
    ck_assert_int_eq(st.rss_lazyfree, 0);
}
END_TEST

/* ---- compaction ---------------------------------------------------------- */

typedef struct walk {
    void **slots;
    size_t n, cursor;
    size_t moved_pass, moved_last_pass;
    int passes;
} walk_t;

static int walker(void *arg, uint64_t deadline_us)
{
    walk_t *w = arg;
    struct timespec ts;

    for (;;) {
        for (int k = 0; k < 64 && w->cursor < w->n; k++, w->cursor++)
            if (w->slots[w->cursor] != NULL)
                w->moved_pass += (size_t)core_mem_relocate(&w->slots[w->cursor]);
        if (w->cursor == w->n) {
            w->cursor = 0;
            w->passes++;
            w->moved_last_pass = w->moved_pass;
            w->moved_pass = 0;
            return 1;
        }
        clock_gettime(CLOCK_MONOTONIC, &ts);
        if ((uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u >= deadline_us)
            return 0;
    }
}

START_TEST(compaction_after_random_free)
{
    /* the workload; a sixth of it under allocator=system, where
     * only contents and accounting are checked */
    enum { N = ARENA_MODE ? 600000 : 100000, SZ = 300 };
    walk_t w = {0};
    int64_t start, live, rss;
    core_mem_stats_t st;
    size_t kept = 0;

    core_mem_purge(0);
    start = rss_private(NULL);
    w.slots = core_malloc(CORE_TAG_TEST, N * sizeof(void *));
    w.n = N;
    for (size_t i = 0; i < N; i++) {
        w.slots[i] = core_malloc(CORE_TAG_CACHE_VALUES, SZ);
        fill(w.slots[i], SZ, (unsigned)i);
    }
    for (size_t i = 0; i < N; i++) {
        if (rnd() % 10 != 0) {
            core_free(w.slots[i]);
            w.slots[i] = NULL;
        } else {
            kept++;
        }
    }
    ck_assert_int_eq(core_mem_compact_register(walker, &w), 0);
    /* under allocator=system every relocation moves: two passes do */
    for (int k = 0; k < 100000 && (w.passes < 2 || (ARENA_MODE && w.moved_last_pass > 0)); k++)
        core_mem_compact_step(1000, 1);
    core_mem_compact_unregister(walker, &w);
    ck_assert_int_ge(w.passes, 2);
    core_mem_purge(0);
    core_mem_stats(&st, 1);
    live = st.tags[CORE_TAG_CACHE_VALUES].live_bytes;
    ck_assert_int_eq(st.tags[CORE_TAG_CACHE_VALUES].live_objects, (int64_t)kept);
    rss = st.rss_private;
    ck_assert_int_gt(st.compact_moved, 0);
    if (ARENA_MODE) {
        ck_assert_int_le(rss, start + live * 3 / 2);
        ck_assert_int_le(st.heap_slab_bytes, st.heap_slab_used * 6 / 5 + (1 << 20));
    }
    ck_assert_int_eq(st.rss_lazyfree, 0);
    for (size_t i = 0; i < N; i++) {
        if (w.slots[i] != NULL) {
            ck_assert(check_fill(w.slots[i], SZ, (unsigned)i));
            core_free(w.slots[i]);
        }
    }
    core_free(w.slots);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), 0);
}
END_TEST

START_TEST(compaction_runs_from_purge_timer)
{
    enum { N = 200000, SZ = 200 };
    walk_t w = {0};
    core_mem_stats_t st;
    int64_t moved0;

    if (!ARENA_MODE)
        return; /* the trigger reads slab figures */
    w.slots = core_malloc(CORE_TAG_TEST, N * sizeof(void *));
    w.n = N;
    for (size_t i = 0; i < N; i++)
        w.slots[i] = core_malloc(CORE_TAG_CACHE_KEYS, SZ);
    for (size_t i = 0; i < N; i++) {
        if (i % 10 != 3) {
            core_free(w.slots[i]);
            w.slots[i] = NULL;
        }
    }
    ck_assert_int_eq(core_mem_compact_register(walker, &w), 0);
    /* switched off: the timer only purges */
    core_mem_set_compaction(0);
    core_mem_stats(&st, 0);
    moved0 = st.compact_moved;
    for (int k = 0; k < 20; k++)
        core_mem_purge(0);
    core_mem_stats(&st, 0);
    ck_assert_int_eq(st.compact_moved, moved0);
    ck_assert_int_gt(st.heap_slab_bytes, 5 * st.heap_slab_used);
    /* on (the default): 1 ms slices from each purge call until the slabs
     * are no longer worth compacting */
    core_mem_set_compaction(1);
    for (int k = 0; k < 5000 && st.heap_slab_bytes - st.heap_slab_used >= (4 << 20); k++) {
        core_mem_purge(0);
        core_mem_stats(&st, 0);
    }
    ck_assert_int_gt(st.compact_moved, moved0);
    ck_assert_int_lt(st.heap_slab_bytes - st.heap_slab_used, 4 << 20);
    core_mem_compact_unregister(walker, &w);
    for (size_t i = 0; i < N; i++)
        core_free(w.slots[i]);
    core_free(w.slots);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_KEYS), 0);
}
END_TEST

START_TEST(relocate_leaves_dense_alone)
{
    void *p = core_malloc(CORE_TAG_TEST, 100);
    void *q = p;
    void *big = core_malloc(CORE_TAG_TEST, 100000);
    void *bq = big;

    if (!ARENA_MODE) {
        ck_assert_int_eq(core_mem_relocate(&bq), 1);
        big = bq;
        ck_assert_int_eq(core_mem_relocate(&q), 1); /* always moves */
        p = q;
    } else {
        ck_assert_int_eq(core_mem_relocate(&bq), 0); /* large blocks never move */
        ck_assert_ptr_eq(bq, big);
        /* the only object of a fresh slab has nowhere fuller to go */
        ck_assert_int_eq(core_mem_relocate(&q), 0);
        ck_assert_ptr_eq(q, p);
    }
    core_free(p);
    core_free(big);
    ck_assert_int_eq(core_mem_compact_step(1000, 0), 0); /* no walkers */
}
END_TEST

/* ---- stress against a shadow model ---------------------------------------- */

START_TEST(stress_shadow_model)
{
    /* fewer operations under allocator=system: that build runs under the
     * sanitizers, and libc's allocator is not what is being tested */
    enum { SLOTS = 4000, OPS = ARENA_MODE ? 200000 : 60000 };
    static void *p[SLOTS];
    static size_t len[SLOTS];
    static unsigned seed[SLOTS];
    static unsigned char tagof[SLOTS];
    int64_t want[CORE_TAG__COUNT] = {0}, base[CORE_TAG__COUNT];
    core_mem_stats_t st;

    core_mem_stats(&st, 0);
    for (int t = 0; t < CORE_TAG__COUNT; t++)
        base[t] = st.tags[t].live_bytes;
    for (int op = 0; op < OPS; op++) {
        int i = (int)(rnd() % SLOTS);
        uint64_t r = rnd();
        size_t n = (r % 1000) < 900 ? r % 2048 : (r % 1000) < 998 ? r % 300000 : r % (3u << 20);

        if (p[i] == NULL) {
            tagof[i] = (unsigned char)(rnd() % CORE_TAG__COUNT);
            p[i] = core_malloc((core_tag_t)tagof[i], n);
            ck_assert_ptr_nonnull(p[i]);
            want[tagof[i]] += (int64_t)core_alloc_size(p[i]);
        } else {
            ck_assert(check_fill(p[i], len[i], seed[i]));
            want[tagof[i]] -= (int64_t)core_alloc_size(p[i]);
            if (r & 1) {
                core_free(p[i]);
                p[i] = NULL;
                continue;
            }
            p[i] = core_realloc(CORE_TAG_MISC, p[i], n);
            ck_assert_ptr_nonnull(p[i]);
            ck_assert(check_fill(p[i], len[i] < n ? len[i] : n, seed[i]));
            want[tagof[i]] += (int64_t)core_alloc_size(p[i]);
        }
        ck_assert_uint_eq((uintptr_t)p[i] % 16, 0);
        len[i] = n;
        seed[i] = (unsigned)rnd();
        fill(p[i], n, seed[i]);
        if (op % 10000 == 0) {
            core_mem_stats(&st, 0);
            for (int t = 0; t < CORE_TAG__COUNT; t++)
                ck_assert_int_eq(st.tags[t].live_bytes - base[t], want[t]);
            core_mem_purge((uint64_t)(op % 3) * 100);
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (p[i] != NULL) {
            ck_assert(check_fill(p[i], len[i], seed[i]));
            want[tagof[i]] -= (int64_t)core_alloc_size(p[i]);
            core_free(p[i]);
            p[i] = NULL;
        }
    }
    core_mem_stats(&st, 0);
    for (int t = 0; t < CORE_TAG__COUNT; t++) {
        ck_assert_int_eq(want[t], 0);
        ck_assert_int_eq(st.tags[t].live_bytes, base[t]);
    }
}
END_TEST

static _Atomic int churn_stop;

static void *churn(void *arg)
{
    unsigned seed = 7;

    while (!atomic_load(&churn_stop)) {
        size_t n = (size_t)(rand_r(&seed) % 70000) + 1;
        void *p = core_malloc(CORE_TAG_TEST, n);

        core_free(p);
    }
    return NULL;
}

/* The Raft snapshot writer is a fork() child that allocates: a fork taken
 * while another thread is inside the heap must still leave the child a
 * heap it can use. A deadlocked child shows as a test timeout. */
START_TEST(fork_while_other_thread_allocates)
{
    pthread_t th[2];
    core_mem_stats_t st;
    int forks;

    /* The heap's own locks are what this tests. Under allocator=system the
     * sanitizer build's malloc is the sanitizer's, whose allocator does not
     * guard fork() against a thread inside it (the child can deadlock), so
     * there is nothing of ours to test there. */
    core_mem_stats(&st, 0);
    if (strcmp(st.allocator, "arena") != 0)
        return;
    forks = 40;
    atomic_store(&churn_stop, 0);
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, churn, NULL);
    for (int i = 0; i < forks; i++) {
        int status = -1;
        pid_t pid = fork();

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
            for (size_t n = 1; n < (2u << 20); n *= 3) {
                char *p = core_malloc(CORE_TAG_TEST, n);

                if (p == NULL)
                    _exit(2);
                memset(p, 1, n);
                core_free(p);
            }
            _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
    }
    atomic_store(&churn_stop, 1);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/arena");
    TCase *t1 = tcase_create("tagged");
    TCase *t2 = tcase_create("scope");
    TCase *t3 = tcase_create("classes");
    TCase *t4 = tcase_create("threads");
    TCase *t5 = tcase_create("purge");
    TCase *t6 = tcase_create("compaction");
    TCase *t7 = tcase_create("stress");
    SRunner *sr;
    int failed;

    tcase_add_test(t1, tagged_accounting);
    tcase_add_test(t1, calloc_overflow);
    tcase_add_test(t1, dup_copies);
    tcase_add_test(t1, stats_sum);
    tcase_add_test(t1, fault_injection);
    tcase_add_test(t2, scope_basic);
    tcase_add_test(t2, scope_loop_does_not_grow);
    tcase_add_test(t2, scope_reset_returns_pages);
    tcase_add_test(t3, class_table);
    tcase_add_test(t3, every_small_size);
    tcase_add_test(t3, large_and_huge);
    tcase_add_test(t3, large_counts_its_pages);
    tcase_add_test(t3, realloc_across_classes);
    tcase_add_test(t3, realloc_fault_keeps_block);
    tcase_add_test(t3, aligned_blocks);
    tcase_add_test(t3, libevent_is_tagged_net);
    tcase_add_test(t4, cross_thread_free);
    tcase_add_test(t4, per_thread_counters);
    tcase_add_test(t4, worker_flush);
    tcase_add_test(t4, fork_while_other_thread_allocates);
    tcase_add_test(t5, purge_returns_rss);
    tcase_add_test(t5, retained_is_bounded_without_timer);
    tcase_add_test(t6, compaction_after_random_free);
    tcase_add_test(t6, compaction_runs_from_purge_timer);
    tcase_add_test(t6, relocate_leaves_dense_alone);
    tcase_add_test(t7, stress_shadow_model);
    tcase_set_timeout(t4, 60);
    tcase_set_timeout(t5, 60);
    tcase_set_timeout(t6, 120);
    tcase_set_timeout(t7, 120);
    suite_add_tcase(s, t1);
    suite_add_tcase(s, t2);
    suite_add_tcase(s, t3);
    suite_add_tcase(s, t4);
    suite_add_tcase(s, t5);
    suite_add_tcase(s, t6);
    suite_add_tcase(s, t7);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
