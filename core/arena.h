/* core/arena: every byte oboro allocates, tagged by subsystem.
 *
 * General allocations (core_malloc & co.) carry a tag; live bytes and
 * object counts per tag are readable at any time (core_mem_stats).
 * Scoped arenas (core_scope_t) give bump allocation, dropped all at once, for
 * request-, command-, iteration- and batch-scoped memory.
 *
 * Build option allocator=system routes everything to libc malloc (with a
 * small header that keeps the tag and size), so AddressSanitizer and
 * valgrind see each object. allocator=arena (the default) uses the page
 * heap described in core/arena_int.h: 64 KiB pages carved from 64 MiB
 * reserved regions marked MADV_NOHUGEPAGE; 36 size classes up to 16 KiB in
 * slabs, whole spans of pages up to 1 MiB, direct mmap above. Free spans
 * go back to the kernel with madvise(MADV_DONTNEED), never MADV_FREE:
 * after the purge delay (core_mem_purge from a loop timer), and at once
 * when free retained bytes exceed 10% of the bytes in use (2 MiB floor).
 * libevent's allocations are routed here too (tag CORE_TAG_NET, set from a
 * constructor): release what libevent returns with core_free, never free.
 * See docs/memory.md.
 *
 * Threads: every function here may be called from any thread, except that
 * a scope is owned by one thread at a time and core_mem_relocate is called
 * by the owner of the block. The model:
 *   - each thread has a small cache of free objects per size class
 *     (batches of at most 128 objects or 32 KiB, at most two batches held),
 *     filled from and flushed to a central list per class under that
 *     class's mutex;
 *   - spans come from one page heap under one mutex (lock order: class,
 *     then heap); large and huge blocks go straight to the heap / kernel;
 *   - a block may be freed by any thread: it enters the freeing thread's
 *     cache and eventually the central list of its span, wherever the
 *     span was allocated;
 *   - per-tag live bytes and objects are per-thread counters (plain
 *     relaxed stores by their thread), summed over a registry of threads
 *     on read; a thread's counters and cached objects are folded into the
 *     global ones when it exits.
 *   - core_mem_purge also returns the calling thread's cached objects, so
 *     the loop thread's cache never pins a span; a worker thread that goes
 *     idle may call core_mem_thread_flush for its own. */
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

/* As core_malloc, aligned to align bytes (a power of two; values below 16
 * mean 16). Freed with core_free; core_realloc of such a block keeps only
 * 16-byte alignment. NULL when out of memory or align is not a power of
 * two. For libraft's raft_heap (aligned_alloc) and media buffers. */
void *core_aligned_alloc(core_tag_t tag, size_t align, size_t n);

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
    /* additions */
    int64_t heap_active;       /* bytes in spans in use (slabs, large) + huge */
    int64_t heap_slab_bytes;   /* bytes of slabs (small objects) */
    int64_t heap_slab_used;    /* bytes of slab objects out (users, thread caches) */
    int64_t spans_active;      /* spans in use (huge mappings included) */
    int64_t spans_retained;    /* free spans not yet returned (dirty) */
    int64_t spans_purged;      /* free spans returned to the kernel (clean) */
    int64_t compact_moved;     /* objects moved by compaction so far */
    int64_t compact_walkers;   /* walkers registered (core_mem_compact_register) */
    int64_t purge_delay_ms;    /* as set by core_mem_set_purge_delay */
    int64_t rss;               /* Rss (smaps_rollup) */
    int64_t rss_anon_huge;     /* AnonHugePages (smaps_rollup) */
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
 * the event loop: it first returns the calling thread's cached free objects,
 * and then runs one compaction slice (core_mem_compact_step, 1 ms) when
 * compaction is on and the slabs are fragmented. */
size_t core_mem_purge(uint64_t delay_ms);

/* Set the delay after which free spans are returned (mem-purge-delay-ms). */
void core_mem_set_purge_delay(uint64_t delay_ms);

/* Return the calling thread's cached free objects to the shared lists (so
 * that their slabs can be returned). For worker threads about to idle. */
void core_mem_thread_flush(void);

/* Fault injection for tests: the nth allocation from now (1 = next) and
 * every one after it fails until core_mem_fail_reset(). */
void core_mem_fail_after(long nth);
void core_mem_fail_reset(void);

/* ---- compaction -------------------------------------------------------
 * Owners of relocatable blocks (the cache's keys and values) register a
 * walker. When slabs hold much more than their live objects, each
 * compaction slice calls the walkers in turn until its time is up; a walker
 * visits its blocks from its own cursor and calls core_mem_relocate() on
 * every pointer it owns (updating every reference to the block), checking
 * the deadline every few dozen blocks. Moving objects out of sparse slabs
 * lets those slabs become free and go back to the kernel. */

/* A walker: relocate blocks from the walker's cursor until core_mono_us()
 * (CLOCK_MONOTONIC, microseconds) reaches deadline_us. Returns 1 when its
 * cursor wrapped (a full pass is complete), 0 when it stopped for time. */
typedef int (*core_compact_cb)(void *arg, uint64_t deadline_us);

/* If the block at *pp sits in a sparse slab and a fuller slab of the same
 * class has room, copy it there, free the old copy and store the new
 * address in *pp; returns 1. Otherwise returns 0 and *pp is unchanged.
 * The tag, size and contents are kept. Under allocator=system every call
 * moves the block (so that AddressSanitizer catches stale references).
 * Called by the block's owner only; no other thread may use the block. */
int core_mem_relocate(void **pp);

/* Register / remove a walker (arg is borrowed). Returns 0 or -ENOMEM;
 * unregistering an unknown walker is a no-op. Loop thread only. */
int core_mem_compact_register(core_compact_cb cb, void *arg);
void core_mem_compact_unregister(core_compact_cb cb, void *arg);

/* Run one compaction slice of at most budget_us: only when compaction is
 * on and fragmented slabs make it worthwhile, or always when force != 0.
 * Returns the number of blocks moved. Loop thread only. */
size_t core_mem_compact_step(uint64_t budget_us, int force);

/* Turn the compaction slices of core_mem_purge on (default) or off. */
void core_mem_set_compaction(int on);

#endif
