/* cache/cache_int.h: declarations shared by the files of cache/ only. */
#ifndef CACHE_CACHE_INT_H
#define CACHE_CACHE_INT_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"
#include "cache/keyspace.h"
#include "cache/log.h"
#include "core/arena.h"
#include "proto/resp.h"

/* ---- generic chained hash table with incremental rehash (ht.c) ------ */

/* Every node starts with this header; its key bytes sit key_off bytes
 * from the start of the node. */
typedef struct ht_node {
    struct ht_node *next;
    uint32_t hash;
    uint32_t klen;
} ht_node_t;

typedef struct ht {
    ht_node_t **t[2];
    size_t mask[2];     /* buckets - 1; t[i] == NULL: no table */
    size_t used[2];
    size_t rehashidx;   /* next bucket of t[0] to move while t[1] exists */
    uint16_t key_off;
    core_tag_t tag;     /* of the bucket arrays */
} ht_t;

typedef void (*ht_scan_cb)(void *arg, ht_node_t *n);

uint32_t cache_hash(const void *p, size_t n);
void ht_init(ht_t *h, size_t key_off, core_tag_t tag);
/* Free the bucket arrays only (nodes are the caller's). */
void ht_close(ht_t *h);
size_t ht_size(const ht_t *h);
/* Slot that points at the node with this key, or NULL. */
ht_node_t **ht_findp(ht_t *h, const char *key, size_t klen, uint32_t hash);
ht_node_t *ht_find(ht_t *h, const char *key, size_t klen);
/* Insert n (n->hash, n->klen and key set; key not present). Returns 0, or
 * -ENOMEM when the table has no bucket array at all (n not inserted). */
int ht_insert(ht_t *h, ht_node_t *n);
/* Unlink the node at slot (from ht_findp). */
void ht_unlink(ht_t *h, ht_node_t **slot);
/* Move up to n buckets; returns nonzero while rehashing remains. */
int ht_rehash(ht_t *h, int n);
/* Visit every node (no changes to h during the walk). */
void ht_foreach(ht_t *h, ht_scan_cb cb, void *arg);
/* Redis-style reverse-binary cursor scan: visits every node present for
 * the whole scan at least once, across resizes. Returns next cursor. */
uint64_t ht_scan(ht_t *h, uint64_t cursor, ht_scan_cb cb, void *arg);
/* A random node (r: caller's random numbers), or NULL when empty. */
ht_node_t *ht_random(ht_t *h, uint64_t r);
/* Resize after deletes when the table is mostly empty. */
void ht_maybe_shrink(ht_t *h);

static inline char *ht_key(const ht_t *h, ht_node_t *n)
{
    return (char *)n + h->key_off;
}

/* Glob-style match as in KEYS/SCAN MATCH (*, ?, [a-z], [^a], \x). */
int cache_glob(const char *pat, size_t plen, const char *s, size_t slen, int nocase);

/* ---- value types --------------------------------------------------- */

typedef struct hfield {
    ht_node_t h;
    struct hfield *onext, *oprev; /* insertion order, as Redis's small hashes */
    uint32_t vlen;
    char key[];         /* field, then value */
} hfield_t;

typedef struct chash {
    ht_t ht;
    hfield_t *first, *last;
} chash_t;

/* Set field to value; returns 1 if new, 0 if updated, -ENOMEM. */
int chash_set(chash_t *h, const char *f, size_t fl, const char *v, size_t vl);

typedef struct zsl_node zsl_node_t;

typedef struct zmember {
    ht_node_t h;
    double score;
    char key[];
} zmember_t;

#define ZSL_MAXLEVEL 32

struct zsl_node {
    double score;
    zmember_t *m;
    zsl_node_t *back;
    struct zsl_level {
        zsl_node_t *fwd;
        size_t span;
    } level[];
};

typedef struct zset {
    ht_t dict;
    zsl_node_t *head, *tail;
    size_t length;
    int level;
    uint64_t rng;       /* deterministic level generator */
} zset_t;

chash_t *chash_new(void);
void chash_free(chash_t *h);
zset_t *zset_new(void);
void zset_free(zset_t *z);
/* Set member's score (insert or update). Returns 1 if added, 0 if
 * updated, -ENOMEM. */
int zset_set(zset_t *z, const char *m, size_t mlen, double score);
/* Change the score of a member found with zset_find (0 or -ENOMEM, then
 * the member is gone). */
int zset_update(zset_t *z, zmember_t *zm, double score);
int zset_del(zset_t *z, const char *m, size_t mlen);
zmember_t *zset_find(zset_t *z, const char *m, size_t mlen);
/* 0-based rank of (score, m) */
size_t zset_rank(zset_t *z, double score, const char *m, size_t mlen);
/* Node at 0-based rank, or NULL. */
zsl_node_t *zset_at(zset_t *z, size_t rank);
int zsl_cmp(double s1, const char *m1, size_t l1, double s2, const char *m2, size_t l2);

/* ---- keyspace internals (keyspace.c) ------------------------------- */

/* Intrusive circular list of the live values of a keyspace (t_live.h). */
typedef struct cache_live_link {
    struct cache_live_link *next, *prev;
} cache_live_link_t;

struct cache_ks {
    cache_live_link_t live;     /* registry of live values; next == NULL: empty */
    ht_t ht;
    size_t nvolatile;
    uint64_t expire_cursor;
    uint64_t expired_total, evicted_total;
    uint64_t hits, misses;
};

static inline char *ent_val(cache_entry_t *e)
{
    return e->key + e->klen;
}
static inline void *ent_ptr(cache_entry_t *e)
{
    void *p;

    __builtin_memcpy(&p, e->key + e->klen, sizeof(p));
    return p;
}
int64_t ent_expire(const cache_entry_t *e); /* -1 if none */

/* Look up key. Expired at now_ms: treated as absent; deleted when del_expired. */
cache_entry_t *cache_ks_find(cache_ks_t *k, const char *key, size_t klen, uint64_t now_ms, int del_expired);
/* Create or replace key as a string value (expiry dropped unless keep). Returns the entry or NULL (ENOMEM). */
cache_entry_t *cache_ks_set_str(cache_ks_t *k, const char *key, size_t klen, const char *v, size_t vlen,
                                int64_t expire_ms, int keep_ttl, uint64_t now_ms);
/* Resize a string value in place (content of the first min(old,new) bytes kept). */
cache_entry_t *cache_ks_resize_str(cache_ks_t *k, cache_entry_t *e, size_t vlen);
/* Create key holding a pointer value (hash or zset); key must not exist. */
cache_entry_t *cache_ks_add_ptr(cache_ks_t *k, const char *key, size_t klen, int type, void *ptr);
int cache_ks_del(cache_ks_t *k, const char *key, size_t klen);
void cache_ks_del_entry(cache_ks_t *k, cache_entry_t *e);
/* Set (expire_ms >= 0) or remove (-1) the expiry of e; may move e. */
cache_entry_t *cache_ks_set_expire(cache_ks_t *k, cache_entry_t *e, int64_t expire_ms);
/* Move entry e to a new key name (dst must not exist). */
cache_entry_t *cache_ks_rename(cache_ks_t *k, cache_entry_t *e, const char *dst, size_t dlen);
void cache_value_free(int type, void *p);
size_t cache_entry_mem(cache_entry_t *e);

/* ---- replies (reply.c) --------------------------------------------- */

typedef struct cache_out {
    char *p;
    size_t len, cap, pos;   /* pos: bytes already written to the socket */
    int oom;
} cache_out_t;

int out_reserve(cache_out_t *o, size_t n);
void out_free(cache_out_t *o);

typedef struct cache_client cache_client_t;

/* Execution context of one command. */
typedef struct cache_ctx {
    cache_server_t *srv;
    cache_ks_t *ks;
    cache_client_t *c;      /* NULL when applying a batch from another node */
    cache_out_t *out;
    uint64_t now_ms;        /* batch time (writes) or wall time (reads) */
    int resp;               /* 2 or 3 */
    int in_apply;           /* running a write from a batch */
    int argc;
    resp_arg_t *argv;       /* pointers valid during the call */
} cache_ctx_t;

void add_raw(cache_ctx_t *x, const char *s, size_t n);
void add_ok(cache_ctx_t *x);
void add_status(cache_ctx_t *x, const char *s);
void add_err(cache_ctx_t *x, const char *s);     /* s without '-', e.g. "ERR syntax error" */
void add_errf(cache_ctx_t *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void add_int(cache_ctx_t *x, long long v);
void add_bulk(cache_ctx_t *x, const char *p, size_t n);
void add_bulk_ll(cache_ctx_t *x, long long v);
void add_bulk_double(cache_ctx_t *x, double d);  /* score: RESP3 double */
void add_null(cache_ctx_t *x);
void add_null_array(cache_ctx_t *x);
void add_array(cache_ctx_t *x, size_t n);
void add_map(cache_ctx_t *x, size_t n);
void add_set(cache_ctx_t *x, size_t n);
void add_bool(cache_ctx_t *x, int b);
/* Placeholder array header filled in later by set_deferred_len. */
size_t add_deferred_array(cache_ctx_t *x);
void set_deferred_len(cache_ctx_t *x, size_t at, size_t n);
/* Redis's d2string */
int cache_d2string(char *buf, size_t len, double v);

extern const char *const err_wrongtype;
extern const char *const err_notint;
extern const char *const err_notfloat;
extern const char *const err_syntax;
extern const char *const err_overflow;

/* ---- parsing helpers ------------------------------------------------ */

int arg_ll(const resp_arg_t *a, long long *v);           /* strict Redis string2ll; 0/-1 */
int arg_double(const resp_arg_t *a, double *v);          /* Redis string2d; -1 bad */
int arg_eq(const resp_arg_t *a, const char *lit);        /* case-insensitive */
int get_ll_or_reply(cache_ctx_t *x, const resp_arg_t *a, long long *v, const char *msg);

/* ---- key lookup (t_keys.c) ------------------------------------------ */

/* The live entry of key (expired keys are absent; inside a batch they are
 * deleted on the way), or NULL. */
cache_entry_t *lookup(cache_ctx_t *x, const resp_arg_t *key);
/* As lookup; when the key holds another type, replies WRONGTYPE, sets
 * *wrong and returns NULL. */
cache_entry_t *lookup_typed(cache_ctx_t *x, const resp_arg_t *key, int type, int *wrong);
/* Prepare-time helper: allocate a copy of argv with n slots from scope. */
resp_arg_t *argv_dup(cache_ctx_t *x, core_scope_t *scope, int n);
/* Set a to the decimal text of v (memory from scope). */
int arg_set_ll(core_scope_t *scope, resp_arg_t *a, long long v);
void arg_set_lit(resp_arg_t *a, const char *lit);

/* ---- command table (cmd.c) ----------------------------------------- */

enum {
    CMD_WRITE = 1u << 0,
    CMD_READONLY = 1u << 1,
    CMD_ADMIN = 1u << 2,
    CMD_NOAUTH = 1u << 3,    /* allowed before AUTH */
    CMD_FAST = 1u << 4,
    CMD_INTERNAL = 1u << 5,  /* only from batches */
    CMD_KEYSPACE = 1u << 6,  /* touches keys: redirected on a follower */
    CMD_CONN = 1u << 7,      /* needs a client */
    CMD_DENYOOM = 1u << 8,
};

typedef void (*cache_cmd_cb)(cache_ctx_t *x);
/* Translate a write into its deterministic form (argv may be rewritten
 * into memory from scope). Returns 0, or -1 after replying an error. */
typedef int (*cache_prep_cb)(cache_ctx_t *x, core_scope_t *scope);

typedef struct cache_cmd {
    const char *name;
    int arity;          /* Redis convention: -N = at least N */
    unsigned flags;
    cache_cmd_cb proc;
    cache_prep_cb prep;
    int first_key, last_key, step;
    const char *group;
    const char *summary;
    const char *since;
} cache_cmd_t;

const cache_cmd_t *cache_cmd_lookup(const char *name, size_t len);
size_t cache_cmd_count(void);
const cache_cmd_t *cache_cmd_at(size_t i);
void cache_cmd_init(void);

/* command implementations, by file */
#define CMD(n) void n(cache_ctx_t *x)
#define PREP(n) int n(cache_ctx_t *x, core_scope_t *scope)
/* t_string.c */
CMD(cmd_get); CMD(cmd_set); CMD(cmd_setex); CMD(cmd_psetex); CMD(cmd_setnx); CMD(cmd_getset);
CMD(cmd_getdel); CMD(cmd_getex); CMD(cmd_mget); CMD(cmd_mset); CMD(cmd_msetnx); CMD(cmd_append);
CMD(cmd_strlen); CMD(cmd_getrange); CMD(cmd_setrange); CMD(cmd_incr); CMD(cmd_decr);
CMD(cmd_incrby); CMD(cmd_decrby); CMD(cmd_incrbyfloat);
PREP(prep_set); PREP(prep_setex); PREP(prep_psetex); PREP(prep_getex);
/* t_keys.c */
CMD(cmd_del); CMD(cmd_exists); CMD(cmd_type); CMD(cmd_rename); CMD(cmd_renamenx); CMD(cmd_keys);
CMD(cmd_scan); CMD(cmd_randomkey); CMD(cmd_expire); CMD(cmd_pexpire); CMD(cmd_expireat);
CMD(cmd_pexpireat); CMD(cmd_ttl); CMD(cmd_pttl); CMD(cmd_expiretime); CMD(cmd_pexpiretime);
CMD(cmd_persist); CMD(cmd_dbsize); CMD(cmd_flushall); CMD(cmd_expdel); CMD(cmd_memory);
PREP(prep_expire); PREP(prep_pexpire);
/* t_hash.c */
CMD(cmd_hset); CMD(cmd_hget); CMD(cmd_hmget); CMD(cmd_hdel); CMD(cmd_hgetall); CMD(cmd_hincrby);
CMD(cmd_hexists); CMD(cmd_hlen); CMD(cmd_hkeys); CMD(cmd_hvals); CMD(cmd_hsetnx);
/* t_zset.c */
CMD(cmd_zadd); CMD(cmd_zincrby); CMD(cmd_zscore); CMD(cmd_zmscore); CMD(cmd_zrank); CMD(cmd_zrevrank);
CMD(cmd_zrange); CMD(cmd_zrevrange); CMD(cmd_zrangebyscore); CMD(cmd_zrevrangebyscore);
CMD(cmd_zcount); CMD(cmd_zcard); CMD(cmd_zrem); CMD(cmd_zremrangebyrank); CMD(cmd_zremrangebyscore);
CMD(cmd_zpopmin); CMD(cmd_zpopmax); CMD(cmd_zunionstore); CMD(cmd_zinterstore);
/* t_hll.c */
CMD(cmd_pfadd); CMD(cmd_pfcount); CMD(cmd_pfmerge);
/* server.c (connection and server commands) */
CMD(cmd_ping); CMD(cmd_echo); CMD(cmd_quit); CMD(cmd_hello); CMD(cmd_auth); CMD(cmd_select);
CMD(cmd_client); CMD(cmd_command); CMD(cmd_info); CMD(cmd_config); CMD(cmd_time);
/* raft_cmd.c */
CMD(cmd_raft_info); CMD(cmd_raft_node); CMD(cmd_raft_transfer); CMD(cmd_raft_snapshot);

/* server internals needed by commands */
long long cache_server_max_bulk(cache_server_t *s);
uint64_t cache_server_last_index(cache_server_t *s);
uint64_t cache_server_random(cache_server_t *s);
/* Live events (t_live.c): nonzero when this node accepts writes; the time
 * of the current batch (opened if needed); append one write nobody waits
 * for (argv copied). Returns 0 or -ENOMEM. */
int cache_server_writable(cache_server_t *s);
uint64_t cache_server_batch_now(cache_server_t *s);
int cache_server_enqueue(cache_server_t *s, int argc, const resp_arg_t *argv);
/* What forwarding live events to the leader needs (t_live_fwd.c): the
 * connection slot, the loop, the leader's address (NULL: unknown) and
 * requirepass. */
struct live_fwd;
struct event_base;
struct live_fwd **cache_server_live_fwd(cache_server_t *s, struct event_base **base, const char **leader,
                                        const char **pass);

#endif
