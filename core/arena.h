/* core/arena: every byte oboro allocates, tagged by subsystem.
 *
 * General allocations (core_malloc & co.) carry a tag; live bytes and
 * object counts per tag are readable at any time (core_mem_stats).
 * Scoped arenas (core_scope_t) give bump allocation with O(1) reset for
 * request-, command-, iteration- and batch-scoped memory.
 *
 * Build option allocator=system routes everything to libc malloc (with a
 * small header that keeps the tag and size), so AddressSanitizer and
 * valgrind see each object. allocator=arena uses the page heap described
 * in core/arena_int.h, which hands free pages back to the kernel with
 * madvise(MADV_DONTNEED) and never MADV_FREE.
 *
 * Threads: every function here may be called from any thread. A block may
 * be freed by a thread other than the one that allocated it. A scope is
 * owned by one thread at a time. */
#ifndef CORE_ARENA_H
#define CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef enum core_tag {
    CORE_TAG_MISC = 0,
    CORE_TAG_CORE,          /* logging, config, metrics, loop */
    CORE_TAG_SCRATCH,       /* scoped arenas reset per iteration */
    CORE_TAG_NET,           /* listeners, generic connection state */
    CORE_TAG_HTTP,          /* HTTP server and handlers */
    CORE_TAG_RESP_CONN,     /* RESP client state and buffers */
    CORE_TAG_CACHE_KEYS,    /* keyspace dictionary and key strings */
    CORE_TAG_CACHE_VALUES,  /* values: strings, hashes, zsets, ... */
    CORE_TAG_CACHE_EXPIRE,  /* expiry index */
    CORE_TAG_RAFT_LOG,      /* raft entries, batches */
    CORE_TAG_RAFT_SNAP,     /* snapshots */
    CORE_TAG_RTMP_CONN,     /* RTMP sessions and chunk buffers */
    CORE_TAG_HUB,           /* stream hub: streams, subscribers */
    CORE_TAG_HUB_PACKETS,   /* media packets and GOP cache */
    CORE_TAG_FLV,           /* FLV tags shared by viewers */
    CORE_TAG_HLS,           /* LL-HLS parts, segments, playlists */
    CORE_TAG_INGEST,        /* pull workers */
    CORE_TAG_BLUR,          /* blur pipelines */
    CORE_TAG_BENCH,         /* load tools */
    CORE_TAG_TEST,          /* unit tests */
    CORE_TAG__COUNT
} core_tag_t;

/* Name of a tag as shown in INFO memory, /debug/memory and /metrics
 * ("cache.keys", "hub.packets", ...). Never NULL for a valid tag. */
const char *core_tag_name(core_tag_t tag);

/* Allocate n bytes tagged with tag. Returns NULL when out of memory (or when
 * the fault injector says so). n == 0 returns a unique, freeable pointer.
 * Alignment is 16 bytes. */
void *core_malloc(core_tag_t tag, size_t n);

/* As core_malloc, zero-filled; NULL also when nmemb * n overflows. */
void *core_calloc(core_tag_t tag, size_t nmemb, size_t n);

/* Resize p (NULL: allocate). The tag of an existing block is kept.
 * On failure returns NULL and p is untouched. */
void *core_realloc(core_tag_t tag, void *p, size_t n);

/* Free a block from core_malloc/calloc/realloc/strdup. NULL is a no-op.
 * May be called from any thread. */
void core_free(void *p);

/* Copy a string or a byte range into a new block. Ownership passes to the
 * caller. core_memdup adds a NUL after the n bytes. */
char *core_strdup(core_tag_t tag, const char *s);
char *core_memdup(core_tag_t tag, const void *p, size_t n);

/* Usable size of a block (>= the size asked for). */
size_t core_alloc_size(const void *p);

/* ---- scoped arenas ---------------------------------------------------- */

typedef struct core_scope core_scope_t;
typedef void (*core_cleanup_cb)(void *arg);

/* New scoped arena whose memory is accounted to tag. chunk is the size of
 * each block it takes from the heap (0: a default of 16 KiB). */
core_scope_t *core_scope_new(core_tag_t tag, size_t chunk);

/* Bump-allocate n bytes (16-byte aligned) from the scope. Valid until the
 * next reset or free. NULL when out of memory. */
void *core_scope_alloc(core_scope_t *s, size_t n);
void *core_scope_calloc(core_scope_t *s, size_t n);
char *core_scope_strndup(core_scope_t *s, const char *p, size_t n);

/* Register cb(arg) to run (in reverse order of registration) at the next
 * reset or free. Returns 0 or -ENOMEM. */
int core_scope_cleanup_add(core_scope_t *s, core_cleanup_cb cb, void *arg);

/* Run cleanups and drop every allocation; keeps at most one block and hands
 * the rest back to the heap. O(number of blocks). */
void core_scope_reset(core_scope_t *s);

/* Run cleanups, free everything and the scope itself; *sp becomes NULL. */
void core_scope_free(core_scope_t **sp);

/* Bytes handed out since the last reset. */
size_t core_scope_used(const core_scope_t *s);

/* ---- accounting ------------------------------------------------------ */

typedef struct core_tag_stats {
    int64_t live_bytes;
    int64_t live_objects;
} core_tag_stats_t;

typedef struct core_mem_stats {
    core_tag_stats_t tags[CORE_TAG__COUNT];
    int64_t live_bytes;        /* sum over tags */
    int64_t heap_mapped;       /* bytes reserved from the kernel by the heap */
    int64_t heap_free_retained;/* free bytes not yet returned to the kernel */
    int64_t heap_purged_total; /* bytes returned with MADV_DONTNEED so far */
    int64_t rss_private;       /* Private_Clean + Private_Dirty (smaps_rollup) */
    int64_t rss_lazyfree;      /* LazyFree (smaps_rollup) */
    const char *allocator;     /* "arena" or "system" */
} core_mem_stats_t;

/* Fill *out with per-tag live bytes/objects (summed over threads) and heap
 * figures. Reading RSS opens /proc/self/smaps_rollup; with_rss == 0 skips
 * that. */
void core_mem_stats(core_mem_stats_t *out, int with_rss);

/* Live bytes of one tag (summed over threads). Cheap enough for tests and
 * INFO; not for hot paths. */
int64_t core_mem_tag_live(core_tag_t tag);

/* Return every free span held longer than delay_ms to the kernel
 * (delay_ms 0: all of them). Returns bytes returned. Called from a timer on
 * the event loop. */
size_t core_mem_purge(uint64_t delay_ms);

/* Set the delay after which free spans are returned (mem-purge-delay-ms). */
void core_mem_set_purge_delay(uint64_t delay_ms);

/* Fault injection for tests: the nth allocation from now (1 = next) and
 * every one after it fails until core_mem_fail_reset(). */
void core_mem_fail_after(long nth);
void core_mem_fail_reset(void);

#endif
