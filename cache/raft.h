/* cache/raft: every cache write replicated through Raft (libraft on libuv).
 *
 * Internal to cache/. One cache_raft_t is one member of a Raft group: it
 * owns a libuv loop embedded in the caller's libevent loop (the libuv
 * backend fd is watched for readability, a libevent timer follows
 * uv_backend_timeout(), and uv_run(UV_RUN_NOWAIT) runs on the loop thread),
 * so the state machine's callbacks run on the thread that owns the keyspace.
 * raft_uv keeps the log and snapshots under dir; raft_uv_tcp carries peer
 * traffic on the Raft port.
 *
 * Write path (group commit): every cache_raft_propose() of one loop
 * iteration is appended to the current batch; at the end of the iteration
 * the batch becomes ONE log entry (one buffer per raft_apply). When the
 * entry commits, fsm->apply() runs once per proposed buffer, in proposal
 * order, on every node; on the node that proposed it each proposal's done
 * callback then fires, in order. Per-batch
 * bookkeeping comes from a scoped arena reset when the batch completes.
 *
 * Nothing in the apply path reads a clock or a random source: callers turn
 * relative TTLs into absolute leader time before proposing, and expiry is
 * proposed by the leader as deletes. */
#ifndef CACHE_RAFT_H
#define CACHE_RAFT_H

#include "cache/cache.h"
#include "cache/raft_conf.h"
#include "core/conf.h"
#include "core/loop.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;

typedef struct cache_raft cache_raft_t;

/* Result of a proposal, a barrier or an admin change: status 0 once the
 * batch was committed and applied (or the barrier passed); otherwise
 * -ENOTCONN (leadership lost before commit: the write may or may not be
 * applied later), -ESHUTDOWN (the node is stopping), -EIO, -ENOMEM or
 * -EINVAL. */
typedef void (*cache_raft_done_cb)(void *arg, int status);

/* Snapshot output. cache_raft_write() appends n bytes; returns 0 or -EIO.
 * The writer never allocates, so a save callback may run in a forked
 * child. */
typedef struct cache_raft_writer cache_raft_writer_t;
int cache_raft_write(cache_raft_writer_t *w, const void *p, size_t n);

/* The replicated state machine (the keyspace). All callbacks run on the
 * loop thread, except save, which runs in a forked child when
 * snapshot_fork is on (it must then only read state and call
 * cache_raft_write). */
typedef struct cache_raft_fsm {
    void *arg;
    /* Apply one committed proposal: buf[0..len) holds the bytes given to
     * cache_raft_propose (borrowed for the call). index is the Raft index
     * of the entry; the proposals of one entry share it. Must be
     * deterministic. */
    void (*apply)(void *arg, const void *buf, size_t len, uint64_t index);
    /* Serialise the whole state through w. Returns 0 or a negative errno. */
    int (*save)(void *arg, cache_raft_writer_t *w);
    /* Replace the whole state with a serialised one (buf borrowed).
     * Returns 0 or a negative errno (-EPROTO for bytes it cannot read). */
    int (*load)(void *arg, const void *buf, size_t len);
    /* Live bytes of the state (may be NULL): the log in memory is kept
     * below max(raft-snapshot-log-bytes, this). */
    size_t (*state_bytes)(void *arg);
} cache_raft_fsm_t;

/* Where this node lives. All strings are copied. */
typedef struct cache_raft_addr {
    const char *bind;      /* address the Raft port binds to */
    int raft_port;         /* Raft peer traffic */
    const char *dir;       /* data directory (must exist) */
    const char *resp_addr; /* "host:port" clients are redirected to */
} cache_raft_addr_t;

/* The daemon's Raft directives: cache_conf_register() registers them here
 * and cache_server_new() reads them (one daemon per process, like the
 * directive tables themselves). Never NULL. */
cache_raft_conf_t *cache_raft_conf_daemon(void);

/* Register node-id, raft-peers, raft-snapshot-threshold, ... with c
 * (storage in *rc, which must outlive c). Returns 0 or a negative errno
 * from core_conf_add. */
int cache_raft_conf_register(core_conf_t *c, cache_raft_conf_t *rc);

/* Parse raft-peers ("1=host:port,2=host:port"). Calls cb for each entry
 * with the id and a NUL-terminated copy of the address (borrowed for the
 * call); an empty string has no entries. Returns the number of entries, or
 * -EINVAL for a malformed list (bad id, duplicate id, missing port, more
 * than 64 entries). Pure: no I/O. */
int cache_raft_peers_parse(const char *peers,
                           void (*cb)(void *arg, uint64_t id, const char *addr), void *arg);

/* Start a node: open (or create) the log under addr->dir, bootstrap it if
 * it is pristine (with raft-peers when this node is listed in it, alone
 * when raft-peers is empty; a node whose id is not in raft-peers waits to
 * be added with RAFT.NODE ADD), restore the latest snapshot, replay the log
 * and join the group. conf, fsm and base are borrowed and must outlive the
 * node. Returns 0 and *out, or -EINVAL (bad configuration), -EIO (log or
 * snapshot unreadable; one line logged), -EADDRINUSE, -ENOMEM. */
int cache_raft_new(cache_raft_t **out, struct event_base *base, const cache_raft_conf_t *conf,
                   const cache_raft_addr_t *addr, const cache_raft_fsm_t *fsm);

/* Leave the group and close the log. Pending done callbacks fire with
 * -ESHUTDOWN before this returns, so free the node before what they point
 * to. *rp = NULL; NULL is a no-op. */
void cache_raft_free(cache_raft_t **rp);

/* Append buf[0..len) (borrowed until return) to the batch of this loop
 * iteration; done(arg, status) fires once the batch is applied or failed.
 * Returns 0, -ENOTCONN when this node is not the leader (done not called),
 * -E2BIG for a proposal over 64 MiB, -ENOMEM. impl is the cache_raft_t. */
int cache_raft_propose(void *impl, const void *buf, size_t len, cache_raft_done_cb done, void *arg);

/* Nonzero when this node is the leader. impl is the cache_raft_t. */
int cache_raft_is_leader(void *impl);

/* "host:port" of the leader's RESP port, or NULL when no leader is known
 * (or it has not published its address yet). Borrowed until the next loop
 * iteration. impl is the cache_raft_t. */
const char *cache_raft_leader(void *impl);

/* The error a follower answers a client with, in RedisRaft's form, without
 * the leading '-' and CRLF: "MOVED 0 host:port" (slot, then the leader's
 * RESP address: redis-cli -c follows it) or "CLUSTERDOWN No raft leader".
 * Returns the length written (truncated to len - 1, NUL-terminated). */
size_t cache_raft_redirect(cache_raft_t *r, char *buf, size_t len);

/* Linearizable reads: done fires once every entry committed before the
 * call is applied and this node was still leader. All barriers asked for
 * in one loop iteration share one raft_barrier. With raft-read-mode
 * leader, done fires right away (on the next loop turn). Returns 0,
 * -ENOTCONN when not leader, -ENOMEM. */
int cache_raft_barrier(cache_raft_t *r, cache_raft_done_cb done, void *arg);

/* Nonzero when a read must wait for a barrier: raft-read-mode is
 * linearizable and this node is not the leader of a single-voter shard
 * (whose keyspace is always the committed state). */
int cache_raft_linearizable(cache_raft_t *r);

/* Membership (leader only): add a voter id at host:port (Raft address),
 * remove one, transfer leadership (id 0: the most up-to-date follower).
 * done fires once the change is committed (transfer: once it finished;
 * status -ETIMEDOUT when another node did not take over). Returns 0,
 * -ENOTCONN (not leader), -EINVAL (bad id or address), -EEXIST (id or
 * address in use), -ENOENT (no such id), -EBUSY (a change is in
 * progress), -ENOMEM. */
int cache_raft_node_add(cache_raft_t *r, uint64_t id, const char *addr,
                        cache_raft_done_cb done, void *arg);
int cache_raft_node_remove(cache_raft_t *r, uint64_t id, cache_raft_done_cb done, void *arg);
int cache_raft_transfer(cache_raft_t *r, uint64_t id, cache_raft_done_cb done, void *arg);

/* Append the lines of INFO's "# Raft" section (raft_* key:value lines,
 * CRLF; no header) to out. RAFT.INFO replies with the header and the same
 * lines. Returns 0 or -ENOMEM. */
int cache_raft_info(cache_raft_t *r, struct evbuffer *out);

/* Numbers for tests and INFO. */
typedef struct cache_raft_stats {
    uint64_t id, term, commit_index, applied_index, last_index, leader_id;
    uint64_t batches_proposed, commands_proposed, snapshots_taken, snapshots_restored;
    int role; /* 0 unavailable, 1 follower, 2 candidate, 3 leader */
    int snapshot_pending; /* asked for (threshold, budget) and not yet taken */
} cache_raft_stats_t;
void cache_raft_stats(cache_raft_t *r, cache_raft_stats_t *out);

/* Ask for a snapshot at the next applied entry (RAFT.SNAPSHOT; tests).
 * Returns 0. */
int cache_raft_snapshot_now(cache_raft_t *r);

/* ---- the node behind a cache server (cache/raft_cmd.c) ---------------- */

/* Start the Raft node of server s from its directives (rc, and bind, port,
 * raft-port and dir read from all) and make it the server's log. When all
 * lacks those directives (the cache embedded without the daemon), *out is
 * NULL and the server keeps its local log. Returns 0 or an error of
 * cache_raft_new. */
int cache_raft_attach(cache_server_t *s, core_loop_t *loop, const cache_raft_conf_t *rc,
                      core_conf_t *all, cache_raft_t **out);

/* The state machine of server s: apply runs cache_apply_batch, save and
 * load are the keyspace's snapshot and restore. */
void cache_raft_server_fsm(cache_server_t *s, cache_raft_fsm_t *out);

/* Give s its local log back and free the node (*rp = NULL; NULL is a
 * no-op). Pending writes fail with -ESHUTDOWN. */
void cache_raft_detach(cache_server_t *s, cache_raft_t **rp);

/* The node of server s, or NULL (cache/server.c). */
cache_raft_t *cache_server_raft(cache_server_t *s);

#endif
