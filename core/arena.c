/* core/arena: tagged allocation, the page heap, scoped arenas, compaction.
 *
 * allocator=arena (default): the page heap of core/arena_int.h with
 * per-thread caches of small objects. allocator=system (OBORO_ALLOC_SYSTEM):
 * libc malloc with a 16-byte header holding tag and size, so that
 * AddressSanitizer and valgrind see every object. Everything below the
 * "backing store" markers is specific to one of the two; tags, fault
 * injection, scopes, compaction walkers and RSS reading are shared. */
#include "core/arena.h"
#include "core/arena_int.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static _Atomic long fail_countdown;
static _Atomic int64_t compact_moved_total;

static const char *const tag_names[CORE_TAG__COUNT] = {
    [CORE_TAG_MISC] = "misc",
    [CORE_TAG_CORE] = "core",
    [CORE_TAG_SCRATCH] = "scratch",
    [CORE_TAG_NET] = "net",
    [CORE_TAG_HTTP] = "http",
    [CORE_TAG_RESP_CONN] = "resp.conn",
    [CORE_TAG_CACHE_KEYS] = "cache.keys",
    [CORE_TAG_CACHE_VALUES] = "cache.values",
    [CORE_TAG_CACHE_EXPIRE] = "cache.expire",
    [CORE_TAG_RAFT_LOG] = "raft.log",
    [CORE_TAG_RAFT_SNAP] = "raft.snapshot",
    [CORE_TAG_RTMP_CONN] = "rtmp.conn",
    [CORE_TAG_HUB] = "hub.streams",
    [CORE_TAG_HUB_PACKETS] = "hub.packets",
    [CORE_TAG_FLV] = "flv.tags",
    [CORE_TAG_HLS] = "hls.parts",
    [CORE_TAG_INGEST] = "ingest",
    [CORE_TAG_BLUR] = "blur",
    [CORE_TAG_BENCH] = "bench",
    [CORE_TAG_TEST] = "test",
};

const char *core_tag_name(core_tag_t tag)
{
    if ((unsigned)tag >= CORE_TAG__COUNT)
        return "invalid";
    return tag_names[tag];
}

static int should_fail(void)
{
    long c = atomic_load_explicit(&fail_countdown, memory_order_relaxed);

    if (__builtin_expect(c <= 0, 1))
        return 0;
    if (c == 1)
        return 1;
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

static uint64_t now_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

#define CLASS_LIST(X)                                                                       \
    X(16) X(32) X(48) X(64) X(80) X(96) X(112) X(128) X(160) X(192) X(224) X(256) X(320)   \
    X(384) X(448) X(512) X(640) X(768) X(896) X(1024) X(1280) X(1536) X(1792) X(2048)       \
    X(2560) X(3072) X(3584) X(4096) X(5120) X(6144) X(7168) X(8192) X(10240) X(12288)       \
    X(14336) X(16384)

#define CLASS_SIZE(sz) sz,
static const uint16_t class_sizes[ARENA_NCLASSES] = {CLASS_LIST(CLASS_SIZE)};

/* Slab layout per class (a slab is one page, aligned to its size): a class
 * with at most ARENA_INLINE_TAGS objects keeps its tag bytes in the span
 * descriptor (tag offset 0); the others give up one object's worth of room
 * for a tag array at class_tagoff from the slab start. */
#define INLINE_TAGS(sz) (ARENA_PAGE / (sz) <= ARENA_INLINE_TAGS)
#define CLASS_NOBJ(sz) (uint16_t)(INLINE_TAGS(sz) ? ARENA_PAGE / (sz) : ARENA_PAGE / ((sz) + 1)),
#define CLASS_TAGOFF(sz) (uint32_t)(INLINE_TAGS(sz) ? 0 : ARENA_PAGE / ((sz) + 1) * (sz)),
#define CLASS_RECIP(sz) (uint32_t)(((uint64_t)1 << 32) / (sz) + 1),
#ifndef OBORO_ALLOC_SYSTEM
static const uint16_t class_nobj[ARENA_NCLASSES] = {CLASS_LIST(CLASS_NOBJ)};
static const uint32_t class_tagoff[ARENA_NCLASSES] = {CLASS_LIST(CLASS_TAGOFF)};
static const uint32_t class_recip[ARENA_NCLASSES] = {CLASS_LIST(CLASS_RECIP)};
#endif

size_t arena_class_size(unsigned c)
{
    return c < ARENA_NCLASSES ? class_sizes[c] : 0;
}

static inline unsigned class_of(size_t n)
{
    unsigned lg;

    if (n <= 128)
        return n == 0 ? 0 : (unsigned)((n - 1) >> 4);
    /* four classes per power of two above 128 */
    lg = 63u - (unsigned)__builtin_clzl((unsigned long)(n - 1));
    return 8u + (lg - 7u) * 4u + (unsigned)(((n - 1) >> (lg - 2)) & 3u);
}

unsigned arena_class_of(size_t n)
{
    return class_of(n);
}

/* ======================================================================
 * backing store: allocator=system
 * ====================================================================== */
#ifdef OBORO_ALLOC_SYSTEM

typedef struct hdr {
    uint32_t tag;
    uint32_t magic;
    uint64_t size;
} hdr_t;

#define HDR_MAGIC 0x0b0a0b0au
#define HDR_MAGIC_ALIGNED 0x0b0a0b0bu

static _Atomic int64_t tag_bytes[CORE_TAG__COUNT];
static _Atomic int64_t tag_objs[CORE_TAG__COUNT];

static void account(core_tag_t tag, int64_t bytes, int64_t objs)
{
    atomic_fetch_add_explicit(&tag_bytes[tag], bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&tag_objs[tag], objs, memory_order_relaxed);
}

static void *alloc_raw(core_tag_t tag, size_t n)
{
    hdr_t *h;

    if (n > SIZE_MAX - sizeof(hdr_t))
        return NULL;
    h = malloc(sizeof(*h) + n);
    if (h == NULL)
        return NULL;
    h->tag = tag;
    h->magic = HDR_MAGIC;
    h->size = n;
    account(tag, (int64_t)n, 1);
    return h + 1;
}

void *core_malloc(core_tag_t tag, size_t n)
{
    if ((unsigned)tag >= CORE_TAG__COUNT)
        tag = CORE_TAG_MISC;
    if (should_fail())
        return NULL;
    return alloc_raw(tag, n);
}

/* core_realloc without fault injection; p != NULL */
static void *realloc_raw(void *p, size_t n)
{
    hdr_t *h, *nh;

    if (n > SIZE_MAX - sizeof(hdr_t))
        return NULL;
    h = (hdr_t *)p - 1;
    if (h->magic == HDR_MAGIC_ALIGNED) {
        void *q = alloc_raw(h->tag, n);

        if (q == NULL)
            return NULL;
        memcpy(q, p, h->size < n ? h->size : n);
        core_free(p);
        return q;
    }
    nh = realloc(h, sizeof(*nh) + n);
    if (nh == NULL)
        return NULL;
    account(nh->tag, (int64_t)n - (int64_t)nh->size, 0);
    nh->size = n;
    return nh + 1;
}

void core_free(void *p)
{
    hdr_t *h;

    if (p == NULL)
        return;
    h = (hdr_t *)p - 1;
    account(h->tag, -(int64_t)h->size, -1);
    if (h->magic == HDR_MAGIC_ALIGNED) {
        /* the start of the libc block sits just before the header */
        void *raw;

        memcpy(&raw, (char *)h - sizeof(raw), sizeof(raw));
        h->magic = 0;
        free(raw);
        return;
    }
    h->magic = 0;
    free(h);
}

void *core_aligned_alloc(core_tag_t tag, size_t align, size_t n)
{
    unsigned char *raw, *p;
    hdr_t *h;

    if (align & (align - 1))
        return NULL;
    if (align <= 16)
        return core_malloc(tag, n);
    if ((unsigned)tag >= CORE_TAG__COUNT)
        tag = CORE_TAG_MISC;
    if (should_fail() || n > SIZE_MAX - 2 * align)
        return NULL;
    /* [raw ... | raw pointer | hdr | block aligned to align] */
    if (posix_memalign((void **)&raw, align, n + align) != 0)
        return NULL;
    p = raw + align;
    h = (hdr_t *)p - 1;
    memcpy((char *)h - sizeof(raw), &raw, sizeof(raw));
    h->tag = tag;
    h->magic = HDR_MAGIC_ALIGNED;
    h->size = n;
    account(tag, (int64_t)n, 1);
    return p;
}

size_t core_alloc_size(const void *p)
{
    return p == NULL ? 0 : (size_t)((const hdr_t *)p - 1)->size;
}

int core_mem_relocate(void **pp)
{
    hdr_t *h;
    void *q;

    if (*pp == NULL)
        return 0;
    h = (hdr_t *)*pp - 1;
    if (h->magic == HDR_MAGIC_ALIGNED)
        return 0; /* its alignment is not ours to give up */
    q = alloc_raw(h->tag, h->size);
    if (q == NULL)
        return 0;
    memcpy(q, *pp, h->size);
    core_free(*pp);
    *pp = q;
    atomic_fetch_add_explicit(&compact_moved_total, 1, memory_order_relaxed);
    return 1;
}

static void heap_stats(core_mem_stats_t *out)
{
    for (int i = 0; i < CORE_TAG__COUNT; i++) {
        out->tags[i].live_bytes = atomic_load_explicit(&tag_bytes[i], memory_order_relaxed);
        out->tags[i].live_objects = atomic_load_explicit(&tag_objs[i], memory_order_relaxed);
    }
    out->allocator = "system";
}

int64_t core_mem_tag_live(core_tag_t tag)
{
    if ((unsigned)tag >= CORE_TAG__COUNT)
        return 0;
    return atomic_load_explicit(&tag_bytes[tag], memory_order_relaxed);
}

static size_t heap_purge(uint64_t delay_ms)
{
    (void)delay_ms;
    return 0;
}

static int compact_worthwhile(void)
{
    return 0;
}

void arena_heap_info(arena_heap_info_t *out)
{
    memset(out, 0, sizeof(*out));
}

void arena_thread_flush(void)
{
}

#else /* !OBORO_ALLOC_SYSTEM */

/* ======================================================================
 * backing store: allocator=arena
 * ====================================================================== */

/* ---- page heap (heap_lock) ------------------------------------------- */

static pthread_mutex_t heap_lock = PTHREAD_MUTEX_INITIALIZER;

static struct heap {
    arena_span_t *bins[2][65]; /* [dirty][npages, 0 = more than 64] */
    arena_span_t *lru_head, *lru_tail;
    arena_region_t *regions;
    size_t mapped;
    size_t dirty_bytes;
    size_t inuse_bytes;
    size_t purged_total;
    size_t dirty_spans, clean_spans, active_spans;
} H;

static _Atomic(arena_region_t *) region_map[ARENA_REGION_SLOTS];
static _Atomic int64_t huge_bytes, huge_mapped, huge_count;

static inline arena_region_t *region_of(uintptr_t a)
{
    if (a >> ARENA_USER_BITS)
        return NULL;
    return atomic_load_explicit(&region_map[a >> ARENA_REGION_SHIFT], memory_order_acquire);
}

static inline arena_span_t *span_in(arena_region_t *r, uintptr_t a)
{
    return r->map[(a - r->base) >> ARENA_PAGE_SHIFT];
}

static inline size_t page_index(const arena_span_t *s)
{
    return (s->base - s->region->base) >> ARENA_PAGE_SHIFT;
}

static void set_map(arena_span_t *s)
{
    size_t i = page_index(s);

    s->region->map[i] = s;
    s->region->map[i + s->npages - 1] = s;
}

static void bin_insert(arena_span_t *s)
{
    arena_span_t **head = &H.bins[s->dirty][s->npages <= 64 ? s->npages : 0];

    s->prev = NULL;
    s->next = *head;
    if (*head != NULL)
        (*head)->prev = s;
    *head = s;
    if (s->dirty) {
        H.dirty_spans++;
        H.dirty_bytes += (size_t)s->npages * ARENA_PAGE;
    } else {
        H.clean_spans++;
    }
}

static void bin_remove(arena_span_t *s)
{
    arena_span_t **head = &H.bins[s->dirty][s->npages <= 64 ? s->npages : 0];

    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        *head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    s->next = s->prev = NULL;
    if (s->dirty) {
        H.dirty_spans--;
        H.dirty_bytes -= (size_t)s->npages * ARENA_PAGE;
    } else {
        H.clean_spans--;
    }
}

static void lru_append(arena_span_t *s)
{
    s->lru_next = NULL;
    s->lru_prev = H.lru_tail;
    if (H.lru_tail != NULL)
        H.lru_tail->lru_next = s;
    else
        H.lru_head = s;
    H.lru_tail = s;
}

static void lru_remove(arena_span_t *s)
{
    if (s->lru_prev != NULL)
        s->lru_prev->lru_next = s->lru_next;
    else
        H.lru_head = s->lru_next;
    if (s->lru_next != NULL)
        s->lru_next->lru_prev = s->lru_prev;
    else
        H.lru_tail = s->lru_prev;
    s->lru_next = s->lru_prev = NULL;
}

/* rest takes old's place in the LRU list (old is leaving it) */
static void lru_replace(arena_span_t *old, arena_span_t *rest)
{
    rest->lru_prev = old->lru_prev;
    rest->lru_next = old->lru_next;
    if (rest->lru_prev != NULL)
        rest->lru_prev->lru_next = rest;
    else
        H.lru_head = rest;
    if (rest->lru_next != NULL)
        rest->lru_next->lru_prev = rest;
    else
        H.lru_tail = rest;
    old->lru_next = old->lru_prev = NULL;
}

static int region_new(void)
{
    arena_region_t *r;
    arena_span_t *s;
    uintptr_t raw, base;
    void *p;

    /* map twice the size and trim to an aligned region */
    p = mmap(NULL, 2 * ARENA_REGION, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return -ENOMEM;
    raw = (uintptr_t)p;
    base = (raw + ARENA_REGION - 1) & ~(uintptr_t)(ARENA_REGION - 1);
    if (base > raw)
        munmap(p, base - raw);
    if (raw + 2 * ARENA_REGION > base + ARENA_REGION)
        munmap((void *)(base + ARENA_REGION), raw + 2 * ARENA_REGION - (base + ARENA_REGION));
    if ((base >> ARENA_REGION_SHIFT) >= ARENA_REGION_SLOTS) {
        munmap((void *)base, ARENA_REGION);
        return -ENOMEM;
    }
    /* with THP in "always" mode the kernel would otherwise refill returned
     * pages in 2 MiB units */
    madvise((void *)base, ARENA_REGION, MADV_NOHUGEPAGE);
    p = mmap(NULL, sizeof(*r), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        munmap((void *)base, ARENA_REGION);
        return -ENOMEM;
    }
    r = p;
    r->base = base;
    r->next = H.regions;
    H.regions = r;
    H.mapped += ARENA_REGION;
    s = &r->spans[0];
    s->region = r;
    s->base = base;
    s->npages = ARENA_REGION_PAGES;
    s->kind = ARENA_SPAN_FREE;
    s->dirty = 0;
    set_map(s);
    bin_insert(s);
    atomic_store_explicit(&region_map[base >> ARENA_REGION_SHIFT], r, memory_order_release);
    return 0;
}

static arena_span_t *bin_find(int dirty, size_t np)
{
    arena_span_t *best = NULL;

    for (size_t k = np; k <= 64; k++)
        if (H.bins[dirty][k] != NULL)
            return H.bins[dirty][k];
    for (arena_span_t *s = H.bins[dirty][0]; s != NULL; s = s->next)
        if (s->npages >= np && (best == NULL || s->npages < best->npages))
            best = s;
    return best;
}

/* Merge s (free, in no list) with free neighbours in the same state. */
static arena_span_t *coalesce(arena_span_t *s)
{
    arena_region_t *r = s->region;
    size_t i = page_index(s);

    if (i > 0) {
        arena_span_t *p = r->map[i - 1];

        if (p->kind == ARENA_SPAN_FREE && p->dirty == s->dirty) {
            bin_remove(p);
            if (p->dirty) {
                lru_remove(p);
                if (p->freed_ms < s->freed_ms)
                    s->freed_ms = p->freed_ms;
            }
            p->npages += s->npages;
            p->freed_ms = s->freed_ms;
            s->kind = ARENA_SPAN_NONE;
            s = p;
        }
    }
    i = page_index(s) + s->npages;
    if (i < ARENA_REGION_PAGES) {
        arena_span_t *q = r->map[i];

        if (q->kind == ARENA_SPAN_FREE && q->dirty == s->dirty) {
            bin_remove(q);
            if (q->dirty) {
                lru_remove(q);
                if (q->freed_ms < s->freed_ms)
                    s->freed_ms = q->freed_ms;
            }
            s->npages += q->npages;
            q->kind = ARENA_SPAN_NONE;
        }
    }
    set_map(s);
    return s;
}

static void purge_span(arena_span_t *s)
{
    size_t len = (size_t)s->npages * ARENA_PAGE;

    bin_remove(s);
    lru_remove(s);
    /* MADV_DONTNEED drops the pages now; RSS falls at once and the next
     * touch gets a zero page. Never MADV_FREE (pages stay in RSS until the
     * kernel feels memory pressure, indistinguishable from a leak). */
    madvise((void *)s->base, len, MADV_DONTNEED);
    H.purged_total += len;
    s->dirty = 0;
    s = coalesce(s);
    bin_insert(s);
}

static size_t retain_limit(void)
{
    size_t live = H.inuse_bytes + (size_t)atomic_load_explicit(&huge_bytes, memory_order_relaxed);

    return live / 10 > ARENA_RETAIN_FLOOR ? live / 10 : ARENA_RETAIN_FLOOR;
}

/* Take a span of np pages (heap_lock held). NULL when out of memory.
 * *was_dirty (may be NULL) tells whether its pages may be resident. */
static arena_span_t *heap_alloc_span(size_t np, int *was_dirty)
{
    arena_span_t *s = bin_find(1, np);

    if (s == NULL)
        s = bin_find(0, np);
    if (s == NULL) {
        if (np > ARENA_REGION_PAGES || region_new() != 0)
            return NULL;
        s = bin_find(0, np);
        if (s == NULL)
            return NULL;
    }
    bin_remove(s);
    if (s->npages > np) {
        arena_span_t *rest = &s->region->spans[page_index(s) + np];

        rest->region = s->region;
        rest->base = s->base + np * ARENA_PAGE;
        rest->npages = s->npages - (uint32_t)np;
        rest->kind = ARENA_SPAN_FREE;
        rest->dirty = s->dirty;
        rest->freed_ms = s->freed_ms;
        set_map(rest);
        bin_insert(rest);
        if (s->dirty)
            lru_replace(s, rest);
        s->npages = (uint32_t)np;
    } else if (s->dirty) {
        lru_remove(s);
    }
    if (was_dirty != NULL)
        *was_dirty = s->dirty;
    s->dirty = 0;
    set_map(s);
    H.inuse_bytes += np * ARENA_PAGE;
    H.active_spans++;
    return s;
}

/* Give span s back to the heap (heap_lock held). */
static void heap_free_span(arena_span_t *s)
{
    H.inuse_bytes -= (size_t)s->npages * ARENA_PAGE;
    H.active_spans--;
    s->kind = ARENA_SPAN_FREE;
    s->dirty = 1;
    s->freed_ms = now_ms();
    s = coalesce(s);
    bin_insert(s);
    lru_append(s);
    while (H.dirty_bytes > retain_limit() && H.lru_head != NULL)
        purge_span(H.lru_head);
}

/* ---- size classes: central lists (one mutex per class) --------------- */

typedef struct central {
    pthread_mutex_t lock;
    arena_span_t *head, *tail; /* slabs with free objects */
    arena_span_t *fill;        /* compaction destination */
    size_t nspans;
    size_t nused;
} __attribute__((aligned(64))) central_t;

static central_t C[ARENA_NCLASSES] = {
    [0 ... ARENA_NCLASSES - 1] = {.lock = PTHREAD_MUTEX_INITIALIZER},
};

static unsigned batch_of(unsigned c)
{
    size_t b = 32768 / class_sizes[c];

    return b < 4 ? 4 : b > 128 ? 128 : (unsigned)b;
}

static inline uint32_t obj_index(const arena_span_t *s, uintptr_t a)
{
    return (uint32_t)(((uint64_t)(a - s->base) * s->recip) >> 32);
}

static inline int slab_has_room(const arena_span_t *s)
{
    return s->freelist != NULL || s->bump < s->nobj;
}

static void partial_unlink(central_t *c, arena_span_t *s)
{
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        c->head = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    else
        c->tail = s->prev;
    s->next = s->prev = NULL;
    s->listed = 0;
}

static void partial_push_head(central_t *c, arena_span_t *s)
{
    s->prev = NULL;
    s->next = c->head;
    if (c->head != NULL)
        c->head->prev = s;
    else
        c->tail = s;
    c->head = s;
    s->listed = 1;
}

static void partial_push_tail(central_t *c, arena_span_t *s)
{
    s->next = NULL;
    s->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = s;
    else
        c->head = s;
    c->tail = s;
    s->listed = 1;
}

/* New slab for class cls (central lock held). */
static arena_span_t *slab_new(unsigned cls)
{
    arena_span_t *s;

    pthread_mutex_lock(&heap_lock);
    s = heap_alloc_span(1, NULL);
    pthread_mutex_unlock(&heap_lock);
    if (s == NULL)
        return NULL;
    s->kind = ARENA_SPAN_SLAB;
    s->cls = (uint8_t)cls;
    s->tags = class_tagoff[cls] ? (uint8_t *)(s->base + class_tagoff[cls]) : s->inline_tags;
    s->nobj = class_nobj[cls];
    s->nused = 0;
    s->bump = 0;
    s->freelist = NULL;
    s->recip = class_recip[cls];
    C[cls].nspans++;
    partial_push_head(&C[cls], s);
    return s;
}

static inline void *slab_take(central_t *c, arena_span_t *s)
{
    void *o;

    if (s->freelist != NULL) {
        o = s->freelist;
        s->freelist = *(void **)o;
    } else {
        o = (void *)(s->base + (size_t)s->bump * class_sizes[s->cls]);
        s->bump++;
    }
    s->nused++;
    c->nused++;
    if (!slab_has_room(s)) {
        partial_unlink(c, s);
        if (c->fill == s)
            c->fill = NULL;
    }
    return o;
}

/* Take up to max objects of class cls as a chain (central lock held). */
static unsigned central_take(unsigned cls, unsigned max, void **chain)
{
    central_t *c = &C[cls];
    void *head = NULL;
    unsigned got = 0;

    while (got < max) {
        arena_span_t *s = c->head;

        if (s == NULL && (s = slab_new(cls)) == NULL)
            break;
        while (got < max && s->listed) {
            void *o = slab_take(c, s);

            *(void **)o = head;
            head = o;
            got++;
        }
    }
    *chain = head;
    return got;
}

/* Return object o of class cls to its slab (central lock held). */
static void central_put(unsigned cls, void *o)
{
    central_t *c = &C[cls];
    arena_span_t *s = span_in(region_of((uintptr_t)o), (uintptr_t)o);

    *(void **)o = s->freelist;
    s->freelist = o;
    s->nused--;
    c->nused--;
    if (s->nused == 0) {
        if (s->listed)
            partial_unlink(c, s);
        if (c->fill == s)
            c->fill = NULL;
        c->nspans--;
        pthread_mutex_lock(&heap_lock);
        heap_free_span(s);
        pthread_mutex_unlock(&heap_lock);
    } else if (!s->listed) {
        partial_push_tail(c, s);
    }
}

/* ---- threads: caches and counters ------------------------------------ */

typedef struct tbin {
    void *head;
    uint32_t count;
    uint32_t max;
} tbin_t;

enum { TS_NEW = 0, TS_LIVE, TS_DEAD };

typedef struct tstate {
    tbin_t bins[ARENA_NCLASSES];
    _Atomic int64_t bytes[CORE_TAG__COUNT];
    _Atomic int64_t objs[CORE_TAG__COUNT];
    struct tstate *next, *prev;
    int state;
} tstate_t;

/* initial-exec: one %fs-relative load (the library is linked statically) */
static __thread tstate_t tls __attribute__((tls_model("initial-exec")));
static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static tstate_t *reg_head;
static _Atomic int64_t dead_bytes[CORE_TAG__COUNT];
static _Atomic int64_t dead_objs[CORE_TAG__COUNT];
static pthread_key_t ts_key;
static pthread_once_t ts_once = PTHREAD_ONCE_INIT;

static void bin_flush(tbin_t *b, unsigned cls, unsigned n)
{
    pthread_mutex_lock(&C[cls].lock);
    while (n-- > 0 && b->head != NULL) {
        void *o = b->head;

        b->head = *(void **)o;
        b->count--;
        central_put(cls, o);
    }
    pthread_mutex_unlock(&C[cls].lock);
}

static void ts_exit(void *arg)
{
    tstate_t *ts = arg;

    for (unsigned c = 0; c < ARENA_NCLASSES; c++)
        bin_flush(&ts->bins[c], c, UINT32_MAX);
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < CORE_TAG__COUNT; i++) {
        atomic_fetch_add_explicit(&dead_bytes[i], atomic_load(&ts->bytes[i]), memory_order_relaxed);
        atomic_fetch_add_explicit(&dead_objs[i], atomic_load(&ts->objs[i]), memory_order_relaxed);
        atomic_store(&ts->bytes[i], 0);
        atomic_store(&ts->objs[i], 0);
    }
    if (ts->prev != NULL)
        ts->prev->next = ts->next;
    else
        reg_head = ts->next;
    if (ts->next != NULL)
        ts->next->prev = ts->prev;
    pthread_mutex_unlock(&reg_lock);
    /* later calls from this thread (other TLS destructors) take the locked
     * path and count into the global counters */
    ts->state = TS_DEAD;
}

static void ts_key_make(void)
{
    pthread_key_create(&ts_key, ts_exit);
}

static tstate_t *ts_slow(tstate_t *ts)
{
    if (ts->state == TS_DEAD)
        return NULL;
    pthread_once(&ts_once, ts_key_make);
    for (unsigned c = 0; c < ARENA_NCLASSES; c++)
        ts->bins[c].max = 2 * batch_of(c);
    pthread_mutex_lock(&reg_lock);
    ts->prev = NULL;
    ts->next = reg_head;
    if (reg_head != NULL)
        reg_head->prev = ts;
    reg_head = ts;
    pthread_mutex_unlock(&reg_lock);
    ts->state = TS_LIVE;
    pthread_setspecific(ts_key, ts);
    return ts;
}

static inline tstate_t *ts_get(void)
{
    tstate_t *ts = &tls;

    if (__builtin_expect(ts->state == TS_LIVE, 1))
        return ts;
    return ts_slow(ts);
}

static inline void account(tstate_t *ts, unsigned tag, int64_t bytes, int64_t objs)
{
    if (__builtin_expect(ts != NULL, 1)) {
        /* only this thread writes these; readers sum them */
        atomic_store_explicit(&ts->bytes[tag],
                              atomic_load_explicit(&ts->bytes[tag], memory_order_relaxed) + bytes,
                              memory_order_relaxed);
        atomic_store_explicit(&ts->objs[tag],
                              atomic_load_explicit(&ts->objs[tag], memory_order_relaxed) + objs,
                              memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&dead_bytes[tag], bytes, memory_order_relaxed);
        atomic_fetch_add_explicit(&dead_objs[tag], objs, memory_order_relaxed);
    }
}

void arena_thread_flush(void)
{
    tstate_t *ts = &tls;

    if (ts->state != TS_LIVE)
        return;
    for (unsigned c = 0; c < ARENA_NCLASSES; c++)
        if (ts->bins[c].head != NULL)
            bin_flush(&ts->bins[c], c, UINT32_MAX);
}

/* ---- allocation ------------------------------------------------------ */

static void *small_alloc(unsigned tag, unsigned cls)
{
    tstate_t *ts = ts_get();
    void *p;

    if (__builtin_expect(ts != NULL, 1)) {
        tbin_t *b = &ts->bins[cls];

        if (b->head == NULL) {
            pthread_mutex_lock(&C[cls].lock);
            b->count = central_take(cls, batch_of(cls), &b->head);
            pthread_mutex_unlock(&C[cls].lock);
            if (b->count == 0)
                return NULL;
        }
        p = b->head;
        b->head = *(void **)p;
        b->count--;
    } else {
        pthread_mutex_lock(&C[cls].lock);
        if (central_take(cls, 1, &p) == 0)
            p = NULL;
        pthread_mutex_unlock(&C[cls].lock);
        if (p == NULL)
            return NULL;
    }
    if (class_tagoff[cls] != 0) {
        /* the slab's tag array without a look-up: slabs are page-aligned */
        uintptr_t a = (uintptr_t)p, base = a & ~(uintptr_t)(ARENA_PAGE - 1);

        ((uint8_t *)base)[class_tagoff[cls] +
                          (uint32_t)(((uint64_t)(a - base) * class_recip[cls]) >> 32)] = (uint8_t)tag;
    } else {
        arena_span_t *s = span_in(region_of((uintptr_t)p), (uintptr_t)p);

        s->tags[obj_index(s, (uintptr_t)p)] = (uint8_t)tag;
    }
    account(ts, tag, class_sizes[cls], 1);
    return p;
}

/* A mapping of its own; align (a power of two >= ARENA_HUGE_HDR) is where
 * the block starts from a page boundary, the header just before it. */
static void *huge_alloc(unsigned tag, size_t n, size_t align)
{
    size_t len, off = align > ARENA_HUGE_HDR ? align : ARENA_HUGE_HDR;
    arena_huge_hdr_t *h;
    uintptr_t p, b;

    if (n > SIZE_MAX - off - 4096 || n > SIZE_MAX - align - 4096)
        return NULL;
    len = (n + off + 4095) & ~(size_t)4095;
    p = (uintptr_t)mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if ((void *)p == MAP_FAILED)
        return NULL;
    madvise((void *)p, len, MADV_NOHUGEPAGE);
    b = (p + ARENA_HUGE_HDR + align - 1) & ~(uintptr_t)(align - 1);
    h = (arena_huge_hdr_t *)(b - ARENA_HUGE_HDR);
    h->magic = ARENA_HUGE_MAGIC;
    h->maplen = len;
    h->offset = b - p;
    h->size = len - h->offset;
    h->tag = tag;
    atomic_fetch_add_explicit(&huge_bytes, (int64_t)h->size, memory_order_relaxed);
    atomic_fetch_add_explicit(&huge_mapped, (int64_t)len, memory_order_relaxed);
    atomic_fetch_add_explicit(&huge_count, 1, memory_order_relaxed);
    account(ts_get(), tag, (int64_t)h->size, 1);
    return (void *)b;
}

/* A large object's usable size: whole 4 KiB pages, not whole heap pages,
 * so that a 20 KiB object counts (and keeps resident) 20 KiB, not 64. */
static size_t large_size(size_t n)
{
    return n == 0 ? LARGE_GRAIN : (n + LARGE_GRAIN - 1) & ~(LARGE_GRAIN - 1);
}

/* Drop the pages of s past its object when they may hold old data: the
 * span's tail is not live and must not stay in RSS unaccounted. */
static void large_trim(arena_span_t *s, int dirty)
{
    size_t end = (size_t)s->npages * ARENA_PAGE;

    if (dirty && end - s->size >= LARGE_TRIM_MIN)
        madvise((void *)(s->base + s->size), end - s->size, MADV_DONTNEED);
}

static void *large_alloc(unsigned tag, size_t n)
{
    size_t np = n == 0 ? 1 : (n + ARENA_PAGE - 1) >> ARENA_PAGE_SHIFT;
    arena_span_t *s;
    int dirty = 0;

    pthread_mutex_lock(&heap_lock);
    s = heap_alloc_span(np, &dirty);
    if (s != NULL) {
        s->kind = ARENA_SPAN_LARGE;
        s->tag = (uint8_t)tag;
        s->size = large_size(n);
    }
    pthread_mutex_unlock(&heap_lock);
    if (s == NULL)
        return NULL;
    large_trim(s, dirty);
    account(ts_get(), tag, (int64_t)s->size, 1);
    return (void *)s->base;
}

static void *alloc_raw(unsigned tag, size_t n)
{
    if (n <= ARENA_SMALL_MAX)
        return small_alloc(tag, class_of(n));
    if (n >= ARENA_HUGE_MIN)
        return huge_alloc(tag, n, ARENA_HUGE_HDR);
    return large_alloc(tag, n);
}

void *core_malloc(core_tag_t tag, size_t n)
{
    if ((unsigned)tag >= CORE_TAG__COUNT)
        tag = CORE_TAG_MISC;
    if (should_fail())
        return NULL;
    return alloc_raw(tag, n);
}

void *core_aligned_alloc(core_tag_t tag, size_t align, size_t n)
{
    if (align & (align - 1))
        return NULL;
    if ((unsigned)tag >= CORE_TAG__COUNT)
        tag = CORE_TAG_MISC;
    if (should_fail())
        return NULL;
    if (align <= 16)
        return alloc_raw(tag, n);
    /* slabs start on a page and objects lie at multiples of their size:
     * a class whose size is a multiple of align gives aligned objects */
    if (align <= 4096 && n <= ARENA_SMALL_MAX) {
        for (unsigned c = class_of(n > align ? n : align); c < ARENA_NCLASSES; c++)
            if (class_sizes[c] % align == 0)
                return small_alloc(tag, c);
    }
    if (align <= ARENA_PAGE && n < ARENA_HUGE_MIN)
        return large_alloc(tag, n);
    return huge_alloc(tag, n, align < ARENA_HUGE_HDR ? ARENA_HUGE_HDR : align);
}

static void huge_free(void *p)
{
    arena_huge_hdr_t *h = (arena_huge_hdr_t *)((char *)p - ARENA_HUGE_HDR);

    /* not ours at all (a libc pointer handed to core_free?): stop here
     * rather than unmap someone else's memory */
    if (h->magic != ARENA_HUGE_MAGIC)
        abort();
    h->magic = 0;

    account(ts_get(), h->tag, -(int64_t)h->size, -1);
    atomic_fetch_sub_explicit(&huge_bytes, (int64_t)h->size, memory_order_relaxed);
    atomic_fetch_sub_explicit(&huge_mapped, (int64_t)h->maplen, memory_order_relaxed);
    atomic_fetch_sub_explicit(&huge_count, 1, memory_order_relaxed);
    munmap((char *)p - h->offset, h->maplen);
}

void core_free(void *p)
{
    arena_region_t *r;
    arena_span_t *s;
    tstate_t *ts;

    if (p == NULL)
        return;
    r = region_of((uintptr_t)p);
    if (r == NULL) {
        huge_free(p);
        return;
    }
    s = span_in(r, (uintptr_t)p);
    ts = ts_get();
    if (__builtin_expect(s->kind == ARENA_SPAN_SLAB, 1)) {
        unsigned cls = s->cls;
        unsigned tag = s->tags[obj_index(s, (uintptr_t)p)];

        account(ts, tag, -(int64_t)class_sizes[cls], -1);
        if (__builtin_expect(ts != NULL, 1)) {
            tbin_t *b = &ts->bins[cls];

            *(void **)p = b->head;
            b->head = p;
            if (++b->count > b->max)
                bin_flush(b, cls, b->max / 2);
        } else {
            pthread_mutex_lock(&C[cls].lock);
            central_put(cls, p);
            pthread_mutex_unlock(&C[cls].lock);
        }
        return;
    }
    account(ts, s->tag, -(int64_t)s->size, -1);
    pthread_mutex_lock(&heap_lock);
    heap_free_span(s);
    pthread_mutex_unlock(&heap_lock);
}

/* usable size and tag of a live block */
static size_t block_info(const void *p, unsigned *tag)
{
    arena_region_t *r = region_of((uintptr_t)p);
    arena_span_t *s;

    if (r == NULL) {
        const arena_huge_hdr_t *h =
            (const arena_huge_hdr_t *)((const char *)p - ARENA_HUGE_HDR);

        *tag = h->tag;
        return h->size;
    }
    s = span_in(r, (uintptr_t)p);
    if (s->kind == ARENA_SPAN_SLAB) {
        *tag = s->tags[obj_index(s, (uintptr_t)p)];
        return class_sizes[s->cls];
    }
    *tag = s->tag;
    return s->size;
}

size_t core_alloc_size(const void *p)
{
    unsigned tag;

    return p == NULL ? 0 : block_info(p, &tag);
}

/* core_realloc without fault injection; p != NULL */
static void *realloc_raw(void *p, size_t n)
{
    unsigned otag;
    size_t old;
    void *q;

    old = block_info(p, &otag);
    if (region_of((uintptr_t)p) == NULL) {
        arena_huge_hdr_t *h = (arena_huge_hdr_t *)((char *)p - ARENA_HUGE_HDR);

        if (n >= ARENA_HUGE_MIN && n <= SIZE_MAX - ARENA_HUGE_HDR - 4096 &&
            h->offset == ARENA_HUGE_HDR) {
            size_t len = (n + ARENA_HUGE_HDR + 4095) & ~(size_t)4095;
            size_t oldlen = h->maplen;

            if (len == oldlen)
                return p;
            h = mremap(h, oldlen, len, MREMAP_MAYMOVE);
            if (h == MAP_FAILED)
                return NULL;
            h->maplen = len;
            h->size = len - ARENA_HUGE_HDR;
            account(ts_get(), otag, (int64_t)h->size - (int64_t)old, 0);
            atomic_fetch_add_explicit(&huge_bytes, (int64_t)h->size - (int64_t)old,
                                      memory_order_relaxed);
            atomic_fetch_add_explicit(&huge_mapped, (int64_t)len - (int64_t)oldlen,
                                      memory_order_relaxed);
            return (char *)h + ARENA_HUGE_HDR;
        }
    } else if (old <= ARENA_SMALL_MAX) {
        if (n <= old && n >= old / 2)
            return p;
    } else if (n > ARENA_SMALL_MAX && n < ARENA_HUGE_MIN) {
        arena_span_t *s = span_in(region_of((uintptr_t)p), (uintptr_t)p);

        /* grow or shrink within the span's pages, at the span's own
         * granularity: accounting follows, a dropped tail leaves RSS */
        if (n <= (size_t)s->npages * ARENA_PAGE &&
            (s->npages == 1 || n >= (size_t)s->npages * ARENA_PAGE / 2)) {
            size_t sz = large_size(n);

            if (sz != old) {
                s->size = sz;
                account(ts_get(), otag, (int64_t)sz - (int64_t)old, 0);
                if (sz < old)
                    large_trim(s, 1);
            }
            return p;
        }
    }
    q = alloc_raw(otag, n);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old < n ? old : n);
    core_free(p);
    return q;
}

/* ---- compaction ------------------------------------------------------ */

/* Fullest slab of c other than src with room and more objects than src. */
static arena_span_t *pick_fill(central_t *c, const arena_span_t *src)
{
    arena_span_t *best = NULL;
    int scanned = 0;

    for (arena_span_t *s = c->head; s != NULL && scanned < 64; s = s->next, scanned++)
        if (s != src && s->nused > src->nused && (best == NULL || s->nused > best->nused))
            best = s;
    return best;
}

int core_mem_relocate(void **pp)
{
    void *p = *pp, *o;
    arena_region_t *r;
    arena_span_t *s, *d;
    central_t *c;
    unsigned cls;

    if (p == NULL || (r = region_of((uintptr_t)p)) == NULL)
        return 0;
    s = span_in(r, (uintptr_t)p);
    if (s->kind != ARENA_SPAN_SLAB)
        return 0;
    cls = s->cls;
    c = &C[cls];
    pthread_mutex_lock(&c->lock);
    /* a slab at least 3/4 full is left alone */
    if (s == c->fill || (uint64_t)s->nused * 4 >= (uint64_t)s->nobj * 3) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    d = c->fill;
    if (d == NULL || d->nused <= s->nused) {
        d = pick_fill(c, s);
        c->fill = d;
    }
    if (d == NULL) {
        pthread_mutex_unlock(&c->lock);
        return 0;
    }
    o = slab_take(c, d);
    memcpy(o, p, class_sizes[cls]);
    d->tags[obj_index(d, (uintptr_t)o)] = s->tags[obj_index(s, (uintptr_t)p)];
    central_put(cls, p);
    pthread_mutex_unlock(&c->lock);
    atomic_fetch_add_explicit(&compact_moved_total, 1, memory_order_relaxed);
    *pp = o;
    return 1;
}

static void slab_figures(size_t *slab, size_t *used)
{
    *slab = *used = 0;
    for (unsigned i = 0; i < ARENA_NCLASSES; i++) {
        pthread_mutex_lock(&C[i].lock);
        *slab += C[i].nspans * ARENA_PAGE;
        *used += C[i].nused * class_sizes[i];
        pthread_mutex_unlock(&C[i].lock);
    }
}

/* slabs hold at least 4 MiB and 1/8 more than their objects */
static int compact_worthwhile(void)
{
    size_t slab, used;

    slab_figures(&slab, &used);
    return slab - used >= ((size_t)4 << 20) && slab - used >= slab / 8;
}

/* ---- figures ---------------------------------------------------------- */

static void heap_stats(core_mem_stats_t *out)
{
    size_t slab, used;

    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < CORE_TAG__COUNT; i++) {
        int64_t b = atomic_load_explicit(&dead_bytes[i], memory_order_relaxed);
        int64_t o = atomic_load_explicit(&dead_objs[i], memory_order_relaxed);

        for (tstate_t *ts = reg_head; ts != NULL; ts = ts->next) {
            b += atomic_load_explicit(&ts->bytes[i], memory_order_relaxed);
            o += atomic_load_explicit(&ts->objs[i], memory_order_relaxed);
        }
        out->tags[i].live_bytes = b;
        out->tags[i].live_objects = o;
    }
    pthread_mutex_unlock(&reg_lock);
    slab_figures(&slab, &used);
    pthread_mutex_lock(&heap_lock);
    out->heap_mapped = (int64_t)H.mapped + atomic_load(&huge_mapped);
    out->heap_free_retained = (int64_t)H.dirty_bytes;
    out->heap_purged_total = (int64_t)H.purged_total;
    out->heap_active = (int64_t)H.inuse_bytes + atomic_load(&huge_bytes);
    out->spans_active = (int64_t)H.active_spans + atomic_load(&huge_count);
    out->spans_retained = (int64_t)H.dirty_spans;
    out->spans_purged = (int64_t)H.clean_spans;
    pthread_mutex_unlock(&heap_lock);
    out->heap_slab_bytes = (int64_t)slab;
    out->heap_slab_used = (int64_t)used;
    out->allocator = "arena";
}

int64_t core_mem_tag_live(core_tag_t tag)
{
    int64_t b;

    if ((unsigned)tag >= CORE_TAG__COUNT)
        return 0;
    pthread_mutex_lock(&reg_lock);
    b = atomic_load_explicit(&dead_bytes[tag], memory_order_relaxed);
    for (tstate_t *ts = reg_head; ts != NULL; ts = ts->next)
        b += atomic_load_explicit(&ts->bytes[tag], memory_order_relaxed);
    pthread_mutex_unlock(&reg_lock);
    return b;
}

void arena_heap_info(arena_heap_info_t *out)
{
    memset(out, 0, sizeof(*out));
    slab_figures(&out->slab_bytes, &out->slab_used_bytes);
    pthread_mutex_lock(&heap_lock);
    out->inuse_bytes = H.inuse_bytes;
    out->dirty_bytes = H.dirty_bytes;
    out->mapped_bytes = H.mapped;
    out->dirty_spans = H.dirty_spans;
    out->clean_spans = H.clean_spans;
    pthread_mutex_unlock(&heap_lock);
    out->huge_bytes = (size_t)atomic_load(&huge_bytes);
}

static size_t heap_purge(uint64_t delay_ms)
{
    uint64_t now = now_ms();
    size_t before;

    arena_thread_flush();
    pthread_mutex_lock(&heap_lock);
    before = H.purged_total;
    for (arena_span_t *s = H.lru_head, *next; s != NULL; s = next) {
        /* purging only coalesces with clean spans, which are not listed
         * here, so next stays valid */
        next = s->lru_next;
        if (delay_ms == 0 || now - s->freed_ms >= delay_ms)
            purge_span(s);
    }
    before = H.purged_total - before;
    pthread_mutex_unlock(&heap_lock);
    return before;
}

/* ---- fork ------------------------------------------------------------ */

/* A child of fork() (the Raft snapshot writer) allocates while worker
 * threads of the parent may have held a heap lock at the moment of the
 * fork. Taking every lock around fork(), in the one order the code nests
 * them (registry, classes, page heap), leaves the child a consistent heap. */
static void fork_prepare(void)
{
    pthread_mutex_lock(&reg_lock);
    for (unsigned c = 0; c < ARENA_NCLASSES; c++)
        pthread_mutex_lock(&C[c].lock);
    pthread_mutex_lock(&heap_lock);
}

static void fork_release(void)
{
    pthread_mutex_unlock(&heap_lock);
    for (unsigned c = ARENA_NCLASSES; c-- > 0;)
        pthread_mutex_unlock(&C[c].lock);
    pthread_mutex_unlock(&reg_lock);
}

__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_release, fork_release);
}

#endif /* backing stores */

/* ======================================================================
 * shared: calloc, dup, scopes, compaction driver, figures
 * ====================================================================== */

void *core_realloc(core_tag_t tag, void *p, size_t n)
{
    if (p == NULL)
        return core_malloc(tag, n);
    if (should_fail())
        return NULL;
    return realloc_raw(p, n);
}

/* ---- libevent ---------------------------------------------------------
 * libevent's own allocations (bufferevents, evbuffer chains, evhttp
 * requests) are connection memory: route them here, tagged "net", so that
 * they are counted and their pages go back to the kernel like the rest.
 * Without fault injection: a test's countdown stays deterministic. Set
 * before main() runs, so before any libevent call. */
static void *ev_malloc(size_t n)
{
    return alloc_raw(CORE_TAG_NET, n);
}

static void *ev_realloc(void *p, size_t n)
{
    return p == NULL ? alloc_raw(CORE_TAG_NET, n) : realloc_raw(p, n);
}

static void ev_free(void *p)
{
    core_free(p);
}

__attribute__((constructor)) static void route_libevent(void)
{
    event_set_mem_functions(ev_malloc, ev_realloc, ev_free);
}

void *core_calloc(core_tag_t tag, size_t nmemb, size_t n)
{
    void *p;

    if (n != 0 && nmemb > SIZE_MAX / n)
        return NULL;
    p = core_malloc(tag, nmemb * n);
    if (p != NULL)
        memset(p, 0, nmemb * n);
    return p;
}

char *core_memdup(core_tag_t tag, const void *p, size_t n)
{
    char *d;

    if (n == SIZE_MAX)
        return NULL;
    d = core_malloc(tag, n + 1);
    if (d == NULL)
        return NULL;
    if (n > 0)
        memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

char *core_strdup(core_tag_t tag, const char *s)
{
    return core_memdup(tag, s, strlen(s));
}

/* ---- scoped arenas ---------------------------------------------------- */

typedef struct scope_block {
    struct scope_block *next;
    size_t cap;
    size_t used;
    size_t standard; /* taken at the scope's chunk size (kept on reset) */
    _Alignas(16) unsigned char data[];
} scope_block_t;

typedef struct scope_cleanup {
    struct scope_cleanup *next;
    core_cleanup_cb cb;
    void *arg;
} scope_cleanup_t;

struct core_scope {
    core_tag_t tag;
    size_t chunk; /* payload of a standard block */
    size_t used;
    scope_block_t *head;
    scope_cleanup_t *cleanups;
};

core_scope_t *core_scope_new(core_tag_t tag, size_t chunk)
{
    core_scope_t *s = core_calloc(tag, 1, sizeof(*s));

    if (s == NULL)
        return NULL;
    if (chunk == 0)
        chunk = 16384;
    s->tag = tag;
    /* a standard block of chunk bytes, header included, fills its size
     * class exactly */
    s->chunk = chunk > 2 * sizeof(scope_block_t) ? chunk - sizeof(scope_block_t) : chunk;
    return s;
}

void *core_scope_alloc(core_scope_t *s, size_t n)
{
    scope_block_t *b = s->head;
    size_t need = (n + 15) & ~(size_t)15;

    if (need < n)
        return NULL;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > s->chunk ? need : s->chunk;

        if (cap > SIZE_MAX - sizeof(*b))
            return NULL;
        b = core_malloc(s->tag, sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        /* use what the allocator rounded up to */
        b->cap = core_alloc_size(b) - sizeof(*b);
        b->used = 0;
        b->standard = need <= s->chunk;
        /* an oversized block goes second so the current block stays usable */
        if (!b->standard && s->head != NULL) {
            b->next = s->head->next;
            s->head->next = b;
        } else {
            b->next = s->head;
            s->head = b;
        }
    }
    b->used += need;
    s->used += n;
    return b->data + b->used - need;
}

void *core_scope_calloc(core_scope_t *s, size_t n)
{
    void *p = core_scope_alloc(s, n);

    if (p != NULL)
        memset(p, 0, n);
    return p;
}

char *core_scope_strndup(core_scope_t *s, const char *p, size_t n)
{
    char *d;

    if (n == SIZE_MAX)
        return NULL;
    d = core_scope_alloc(s, n + 1);
    if (d == NULL)
        return NULL;
    memcpy(d, p, n);
    d[n] = '\0';
    return d;
}

int core_scope_cleanup_add(core_scope_t *s, core_cleanup_cb cb, void *arg)
{
    scope_cleanup_t *c = core_scope_alloc(s, sizeof(*c));

    if (c == NULL)
        return -ENOMEM;
    c->cb = cb;
    c->arg = arg;
    c->next = s->cleanups;
    s->cleanups = c;
    return 0;
}

static void run_cleanups(core_scope_t *s)
{
    while (s->cleanups != NULL) {
        scope_cleanup_t *c = s->cleanups;

        s->cleanups = c->next;
        c->cb(c->arg);
    }
}

void core_scope_reset(core_scope_t *s)
{
    scope_block_t *keep = NULL;

    run_cleanups(s);
    while (s->head != NULL) {
        scope_block_t *b = s->head;

        s->head = b->next;
        if (keep == NULL && b->standard) {
            keep = b;
            continue;
        }
        core_free(b);
    }
    if (keep != NULL) {
        keep->next = NULL;
        keep->used = 0;
    }
    s->head = keep;
    s->used = 0;
}

void core_scope_free(core_scope_t **sp)
{
    core_scope_t *s = *sp;

    if (s == NULL)
        return;
    core_scope_reset(s);
    core_free(s->head);
    core_free(s);
    *sp = NULL;
}

size_t core_scope_used(const core_scope_t *s)
{
    return s->used;
}

/* ---- compaction driver (loop thread) --------------------------------- */

#define MAX_WALKERS 16

static struct {
    core_compact_cb cb;
    void *arg;
} walkers[MAX_WALKERS];
static int n_walkers;
static int next_walker;
static int compaction_on = 1;
static int64_t round_moved_mark;
static uint64_t backoff_until_ms;

int core_mem_compact_register(core_compact_cb cb, void *arg)
{
    if (n_walkers == MAX_WALKERS)
        return -ENOMEM;
    walkers[n_walkers].cb = cb;
    walkers[n_walkers].arg = arg;
    n_walkers++;
    return 0;
}

void core_mem_compact_unregister(core_compact_cb cb, void *arg)
{
    for (int i = 0; i < n_walkers; i++) {
        if (walkers[i].cb == cb && walkers[i].arg == arg) {
            memmove(&walkers[i], &walkers[i + 1], sizeof(walkers[0]) * (size_t)(n_walkers - i - 1));
            n_walkers--;
            if (next_walker >= n_walkers)
                next_walker = 0;
            return;
        }
    }
}

void core_mem_set_compaction(int on)
{
    compaction_on = on != 0;
}

size_t core_mem_compact_step(uint64_t budget_us, int force)
{
    int64_t start = atomic_load(&compact_moved_total);
    uint64_t deadline;

    if (n_walkers == 0)
        return 0;
    if (!force) {
        if (!compaction_on || now_ms() < backoff_until_ms || !compact_worthwhile())
            return 0;
    }
    deadline = now_us() + budget_us;
    for (int visited = 0; visited < n_walkers; visited++) {
        int i = next_walker;
        int done = walkers[i].cb(walkers[i].arg, deadline);

        if (done) {
            next_walker = (i + 1) % n_walkers;
            if (next_walker == 0) {
                /* a whole round moved nothing: fragmentation is in blocks
                 * nobody can move; look again later */
                int64_t now_moved = atomic_load(&compact_moved_total);

                if (now_moved == round_moved_mark && !force)
                    backoff_until_ms = now_ms() + 5000;
                round_moved_mark = now_moved;
            }
        }
        if (now_us() >= deadline)
            break;
    }
    return (size_t)(atomic_load(&compact_moved_total) - start);
}

/* ---- figures ---------------------------------------------------------- */

static _Atomic uint64_t purge_delay_ms = 500;

size_t core_mem_purge(uint64_t delay_ms)
{
    size_t n = heap_purge(delay_ms);

    core_mem_compact_step(1000, 0);
    return n;
}

void core_mem_set_purge_delay(uint64_t delay_ms)
{
    atomic_store(&purge_delay_ms, delay_ms);
}

void core_mem_thread_flush(void)
{
    arena_thread_flush();
}

static void read_rss(core_mem_stats_t *out)
{
    FILE *f = fopen("/proc/self/smaps_rollup", "r");
    char line[256];
    long long kb;

    if (f == NULL)
        return;
    while (fgets(line, sizeof(line), f) != NULL) {
        if (sscanf(line, "Private_Clean: %lld kB", &kb) == 1 ||
            sscanf(line, "Private_Dirty: %lld kB", &kb) == 1)
            out->rss_private += kb * 1024;
        else if (sscanf(line, "LazyFree: %lld kB", &kb) == 1)
            out->rss_lazyfree += kb * 1024;
        else if (sscanf(line, "Rss: %lld kB", &kb) == 1)
            out->rss += kb * 1024;
        else if (sscanf(line, "AnonHugePages: %lld kB", &kb) == 1)
            out->rss_anon_huge += kb * 1024;
    }
    fclose(f);
}

void core_mem_stats(core_mem_stats_t *out, int with_rss)
{
    memset(out, 0, sizeof(*out));
    heap_stats(out);
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        out->live_bytes += out->tags[i].live_bytes;
    out->compact_moved = atomic_load(&compact_moved_total);
    out->compact_walkers = n_walkers;
    out->purge_delay_ms = (int64_t)atomic_load(&purge_delay_ms);
    if (with_rss)
        read_rss(out);
}

void core_mem_fail_after(long nth)
{
    atomic_store(&fail_countdown, nth < 1 ? 1 : nth);
}

void core_mem_fail_reset(void)
{
    atomic_store(&fail_countdown, 0);
}
