/* cache/keyspace: the key -> value dictionary (internal to cache/).
 *
 * An own chained hash table with incremental rehash (two tables while
 * growing or shrinking, a few buckets moved per operation), tagged
 * CORE_TAG_CACHE_KEYS. String values live inside the key's entry; hashes
 * and sorted sets hang off it (CORE_TAG_CACHE_VALUES). Expiry times (Unix
 * ms) are stored in the entry of volatile keys.
 *
 * Only the loop thread touches a keyspace. */
#ifndef CACHE_KEYSPACE_H
#define CACHE_KEYSPACE_H

#include <stddef.h>
#include <stdint.h>

struct evbuffer;

typedef struct cache_ks cache_ks_t;

enum {
    CACHE_T_STRING = 0,
    CACHE_T_HASH = 1,
    CACHE_T_ZSET = 2,
    CACHE_T_WCOUNT = 3,     /* live-stream types: cache/t_live.h */
    CACHE_T_WRANK = 4,
    CACHE_T_PRESENCE = 5,
};

/* One key. key[] holds klen bytes, then for strings the value (vlen
 * bytes), then the 8-byte expiry when CACHE_E_EXPIRE is set. */
typedef struct cache_entry {
    struct cache_entry *next;
    uint32_t hash;
    uint32_t klen;
    uint32_t vlen;      /* string length; for other types sizeof(void *) */
    uint8_t type;       /* CACHE_T_* */
    uint8_t flags;      /* CACHE_E_* */
    uint16_t spare;
    char key[];
} cache_entry_t;

enum { CACHE_E_EXPIRE = 1 };

/* New empty keyspace; NULL when out of memory. */
cache_ks_t *cache_ks_new(void);

/* Free every key and value; *kp = NULL. */
void cache_ks_free(cache_ks_t **kp);

/* Number of keys (expired-but-unreclaimed ones included) / with expiry. */
size_t cache_ks_size(const cache_ks_t *k);
size_t cache_ks_volatile(const cache_ks_t *k);

/* Remove every key. */
void cache_ks_clear(cache_ks_t *k);

/* Write every live key (expired at now_ms excluded) to out in a
 * self-describing, versioned format ('OBKS' u32 version, u64 count, then
 * per key: u8 type, u64 expire_ms (0 = none), key, and the value), so that
 * cache_ks_restore() rebuilds the same keyspace on any node.
 * Returns 0 or -ENOMEM. */
int cache_ks_snapshot(cache_ks_t *k, struct evbuffer *out, uint64_t now_ms);

/* Replace the content of k with a snapshot made by cache_ks_snapshot()
 * (buf borrowed). Returns 0, -EPROTO for malformed input (k is then empty),
 * or -ENOMEM. */
int cache_ks_restore(cache_ks_t *k, const void *buf, size_t len);

#endif
