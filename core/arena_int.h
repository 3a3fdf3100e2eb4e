/* core/arena_int.h: internals of the page heap behind core/arena.h.
 *
 * Only core/arena.c and its unit test include this file.
 *
 * Layout
 *   The heap reserves regions of ARENA_REGION bytes (64 MiB), aligned to
 *   their size, with mmap(MAP_NORESERVE) and madvise(MADV_NOHUGEPAGE):
 *   pages cost nothing until touched, and a returned page is never
 *   refilled by the kernel in 2 MiB units. A region is cut into pages of
 *   ARENA_PAGE bytes (64 KiB); runs of pages are spans. Every span is
 *   described by the descriptor of its first page in region->spans[], and
 *   region->map[] points from a page to its span's descriptor (kept exact
 *   for the first and the last page of every span, which is all that
 *   lookup by object address and coalescing need). The global region table
 *   maps address >> ARENA_REGION_SHIFT to the region, so core_free() finds
 *   the span of a pointer without a header in front of the object.
 *
 *   A span is free (in the dirty or the clean bins of the page heap), a
 *   slab (objects of one size class, with a tag byte per object), or large
 *   (one object of ARENA_SMALL_MAX < n < ARENA_HUGE_MIN bytes, sized and
 *   counted in 4 KiB units; the rest of its last page is not resident). Huge objects
 *   (>= ARENA_HUGE_MIN) are mmapped on their own with a 64-byte header and
 *   munmapped on free; they are never in a region.
 *
 *   Free spans are dirty (their pages may be resident) or clean (returned
 *   with MADV_DONTNEED). Only neighbours of the same state coalesce. Dirty
 *   spans sit on an LRU list ordered by the time they became free; purging
 *   returns the oldest ones first. */
#ifndef CORE_ARENA_INT_H
#define CORE_ARENA_INT_H

#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>

#define ARENA_PAGE_SHIFT 16
#define ARENA_PAGE ((size_t)1 << ARENA_PAGE_SHIFT)
#define ARENA_REGION_SHIFT 26
#define ARENA_REGION ((size_t)1 << ARENA_REGION_SHIFT)
#define ARENA_REGION_PAGES (ARENA_REGION / ARENA_PAGE)
/* 47-bit user address space (mmap never goes above without a hint): one
 * table slot per possible region, 16 MiB of zero pages only touched where
 * regions are */
#define ARENA_USER_BITS 47
#define ARENA_REGION_SLOTS ((size_t)1 << (ARENA_USER_BITS - ARENA_REGION_SHIFT))

#define ARENA_SMALL_MAX ((size_t)16384)
#define ARENA_HUGE_MIN ((size_t)1 << 20)
#define ARENA_HUGE_HDR ((size_t)64)
/* large objects are sized in these units; a reused span's unused tail
 * of at least LARGE_TRIM_MIN bytes is returned to the kernel */
#define LARGE_GRAIN ((size_t)4096)
#define LARGE_TRIM_MIN ((size_t)16384)
#define ARENA_NCLASSES 36
/* a slab of a class with at most this many objects keeps its tag bytes in
 * the descriptor; others at the end of the slab */
#define ARENA_INLINE_TAGS 64

/* retained dirty bytes allowed before an immediate purge: 10% of the bytes
 * in use, but never less than this floor (avoids madvise churn when the
 * heap is nearly empty) */
#define ARENA_RETAIN_FLOOR ((size_t)2 << 20)

enum arena_span_kind {
    ARENA_SPAN_NONE = 0, /* descriptor not heading any span */
    ARENA_SPAN_FREE,
    ARENA_SPAN_SLAB,
    ARENA_SPAN_LARGE,
};

typedef struct arena_region arena_region_t;

typedef struct arena_span {
    struct arena_span *next, *prev;         /* free bin, or class partial list */
    struct arena_span *lru_next, *lru_prev; /* dirty free spans, oldest first */
    arena_region_t *region;
    uintptr_t base;
    uint32_t npages;
    uint8_t kind;
    uint8_t dirty;    /* free span: pages may be resident */
    uint8_t cls;      /* slab: size class */
    uint8_t tag;      /* large: tag of the object */
    uint8_t listed;   /* slab: on its class's partial list */
    uint32_t nobj;    /* slab: objects it holds */
    uint32_t nused;   /* slab: objects out (with users or thread caches) */
    uint32_t bump;    /* slab: objects carved so far (the rest untouched) */
    uint32_t recip;   /* slab: ceil(2^32 / size), offset -> index */
    void *freelist;   /* slab: returned objects, linked through their first word */
    uint8_t *tags;    /* slab: one tag byte per object */
    uint64_t freed_ms;/* dirty free span: when it became free */
    size_t size;      /* large: usable bytes */
    uint8_t inline_tags[ARENA_INLINE_TAGS];
} arena_span_t;

struct arena_region {
    uintptr_t base;
    struct arena_region *next;
    arena_span_t *map[ARENA_REGION_PAGES];
    arena_span_t spans[ARENA_REGION_PAGES];
};

typedef struct arena_huge_hdr {
    uint64_t magic;
    uint64_t maplen; /* bytes mapped, header included */
    uint64_t size;   /* usable bytes */
    uint32_t tag;
    uint32_t pad;
    uint64_t offset; /* from the start of the mapping to the block */
    uint64_t pad2[3];
} arena_huge_hdr_t;

#define ARENA_HUGE_MAGIC 0x6f626f726f687567ull

/* Size of class c (0 <= c < ARENA_NCLASSES). */
size_t arena_class_size(unsigned c);

/* Class of a request of n bytes, n <= ARENA_SMALL_MAX. */
unsigned arena_class_of(size_t n);

/* Heap figures for tests: bytes of spans in use (slabs and large),
 * slab bytes and bytes used in slabs for small classes. */
typedef struct arena_heap_info {
    size_t inuse_bytes;
    size_t slab_bytes;
    size_t slab_used_bytes;
    size_t dirty_bytes;
    size_t mapped_bytes;
    size_t huge_bytes;
    size_t dirty_spans;
    size_t clean_spans;
} arena_heap_info_t;

void arena_heap_info(arena_heap_info_t *out);

/* Return the calling thread's cached free objects to the central lists. */
void arena_thread_flush(void);

#endif
