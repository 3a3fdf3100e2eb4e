/* core/arena: tagged allocation and scoped arenas.
 *
 * This version keeps a 16-byte header (tag, size) in front of every block
 * and takes memory from libc; the page heap replaces the backing store
 * under allocator=arena. Accounting is per tag with relaxed atomics. */
#include "core/arena.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct hdr {
    uint32_t tag;
    uint32_t magic;
    uint64_t size;
} hdr_t;

#define HDR_MAGIC 0x0b0a0b0au

static _Atomic int64_t tag_bytes[CORE_TAG__COUNT];
static _Atomic int64_t tag_objs[CORE_TAG__COUNT];
static _Atomic long fail_countdown;

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

    if (c <= 0)
        return 0;
    if (c == 1)
        return 1;
    atomic_fetch_sub_explicit(&fail_countdown, 1, memory_order_relaxed);
    return 0;
}

static void account(core_tag_t tag, int64_t bytes, int64_t objs)
{
    atomic_fetch_add_explicit(&tag_bytes[tag], bytes, memory_order_relaxed);
    atomic_fetch_add_explicit(&tag_objs[tag], objs, memory_order_relaxed);
}

void *core_malloc(core_tag_t tag, size_t n)
{
    hdr_t *h;

    if ((unsigned)tag >= CORE_TAG__COUNT)
        tag = CORE_TAG_MISC;
    if (should_fail() || n > SIZE_MAX - sizeof(hdr_t))
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

void *core_realloc(core_tag_t tag, void *p, size_t n)
{
    hdr_t *h, *nh;

    if (p == NULL)
        return core_malloc(tag, n);
    if (should_fail() || n > SIZE_MAX - sizeof(hdr_t))
        return NULL;
    h = (hdr_t *)p - 1;
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
    h->magic = 0;
    free(h);
}

size_t core_alloc_size(const void *p)
{
    return p == NULL ? 0 : (size_t)((const hdr_t *)p - 1)->size;
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
    _Alignas(16) unsigned char data[];
} scope_block_t;

typedef struct scope_cleanup {
    struct scope_cleanup *next;
    core_cleanup_cb cb;
    void *arg;
} scope_cleanup_t;

struct core_scope {
    core_tag_t tag;
    size_t chunk;
    size_t used;
    scope_block_t *head;
    scope_cleanup_t *cleanups;
};

core_scope_t *core_scope_new(core_tag_t tag, size_t chunk)
{
    core_scope_t *s = core_calloc(tag, 1, sizeof(*s));

    if (s == NULL)
        return NULL;
    s->tag = tag;
    s->chunk = chunk ? chunk : 16384;
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

        b = core_malloc(s->tag, sizeof(*b) + cap);
        if (b == NULL)
            return NULL;
        b->cap = cap;
        b->used = 0;
        /* an oversized block goes second so the current block stays usable */
        if (need > s->chunk && s->head != NULL) {
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
        if (keep == NULL && b->cap == s->chunk) {
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

/* ---- accounting ------------------------------------------------------ */

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
    }
    fclose(f);
}

void core_mem_stats(core_mem_stats_t *out, int with_rss)
{
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < CORE_TAG__COUNT; i++) {
        out->tags[i].live_bytes = atomic_load_explicit(&tag_bytes[i], memory_order_relaxed);
        out->tags[i].live_objects = atomic_load_explicit(&tag_objs[i], memory_order_relaxed);
        out->live_bytes += out->tags[i].live_bytes;
    }
    out->allocator = "system";
    if (with_rss)
        read_rss(out);
}

int64_t core_mem_tag_live(core_tag_t tag)
{
    if ((unsigned)tag >= CORE_TAG__COUNT)
        return 0;
    return atomic_load_explicit(&tag_bytes[tag], memory_order_relaxed);
}

size_t core_mem_purge(uint64_t delay_ms)
{
    (void)delay_ms;
    return 0;
}

void core_mem_set_purge_delay(uint64_t delay_ms)
{
    (void)delay_ms;
}

void core_mem_fail_after(long nth)
{
    atomic_store(&fail_countdown, nth < 1 ? 1 : nth);
}

void core_mem_fail_reset(void)
{
    atomic_store(&fail_countdown, 0);
}
