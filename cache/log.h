/* cache/log: the replicated write path (internal to cache/).
 *
 * Every write command takes one road:
 *
 *   1. The receiving node validates it and translates it into a
 *      deterministic form (relative TTLs become absolute Unix ms; nothing in
 *      the apply step reads a clock or a random source: the batch carries
 *      the proposer's wall-clock time, used for expiry decisions).
 *   2. It is appended to the current batch. All writes that arrive in one
 *      loop iteration form ONE batch (group commit); the batch bytes come
 *      from a core_scope that is reset once the batch has been proposed.
 *   3. At the end of the iteration the batch is handed to a log
 *      implementation through cache_log_ops_t.propose (local: applied at
 *      once; Raft: replicated, applied on commit).
 *   4. The log calls cache_apply_batch() for every committed batch, in log
 *      order, on every node. It runs the commands in order; on the node that
 *      proposed the batch each reply goes to the client that is waiting for
 *      it. A client's later pipelined commands (reads included) wait until
 *      its earlier writes have replied, so replies keep request order.
 *
 * Expiry decided by the proposer (active cycle) becomes replicated
 * "__expdel KEY" entries, which delete KEY only if it is expired at the
 * batch's timestamp; writes applied later than a key's expiry delete it
 * lazily, deterministically, using the batch timestamp.
 *
 * Batch encoding (little endian), documented so that a log can inspect it
 * but treated as opaque bytes by log implementations:
 *
 *   u32 magic 'OBB1' | u32 count | u64 origin (random per process) |
 *   u64 seq (per origin) | u64 now_ms (Unix ms at the proposer)
 *   count x { u32 argc | argc x { u32 len | len bytes } }
 */
#ifndef CACHE_LOG_H
#define CACHE_LOG_H

#include <stddef.h>
#include <stdint.h>

#include "cache/cache.h"

struct evbuffer;

/* Completion of one proposal: status 0 after the batch was committed and
 * applied (cache_apply_batch has run for it), or a negative errno when it
 * will not be (-ENOTCONN: not the leader, -ECANCELED: shut down, ...). */
typedef void (*cache_log_done_cb)(void *arg, int status);

typedef struct cache_log_ops {
    /* Propose one batch; buf is borrowed until the call returns (copy it).
     * When the batch is committed, the log calls cache_apply_batch() with
     * the same bytes, on the loop thread, then done(arg, 0). On failure
     * done(arg, -errno) (never both). done may run before propose returns.
     * Returns 0, or a negative errno when the batch was not taken (then
     * done is never called). */
    int (*propose)(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg);
    /* Nonzero when this node may serve reads and accept writes. */
    int (*is_leader)(void *impl);
    /* "host:port" of the leader's RESP port, or NULL when unknown.
     * Borrowed; valid until the next call into impl. */
    const char *(*leader)(void *impl);
    /* Optional (NULL: none): append "name:value\r\n" lines for INFO's
     * "# Raft" section (shown by INFO, INFO raft, INFO all). */
    void (*info)(void *impl, struct evbuffer *out);
} cache_log_ops_t;

/* Called by a log implementation for every committed batch, in log order,
 * on every node, on the loop thread. buf is borrowed. index is the log
 * index (informational: INFO shows the last applied one). Malformed
 * batches are logged and skipped (they cannot come from a cache node). */
void cache_apply_batch(cache_server_t *s, const void *buf, size_t len, uint64_t index);

/* Replace the log the server proposes to (ops and impl borrowed, must
 * outlive the server or be replaced). NULL ops restores the local log.
 * Call before clients connect or between loop iterations.
 * cache_server_free() forgets proposals still outstanding: stop the log
 * first, so that it calls neither done() nor cache_apply_batch() for a
 * freed server. */
void cache_server_set_log(cache_server_t *s, const cache_log_ops_t *ops, void *impl);

/* The keyspace of a server (borrowed), for snapshot and restore. */
struct cache_ks;
struct cache_ks *cache_server_ks(cache_server_t *s);

/* The local, single-node log: propose applies the batch at once (it is
 * called at the end of a loop iteration) and reports done(arg, 0). impl is
 * the server. */
extern const cache_log_ops_t cache_log_local_ops;

#endif
