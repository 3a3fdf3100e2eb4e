/* cache/raft_int: the libraft state machine behind cache/raft, exposed so
 * that unit tests can drive it with libraft's fixture (raft/fixture.h)
 * without sockets or disks.
 *
 * Log entry format: an 8-byte header (u8 kind, u8 pad, 6 zero bytes), the
 * body, then pad zero bytes: libraft requires every entry's length to be a
 * multiple of 8 (its encoder pads silently otherwise, and the copies on
 * disk and on the wire stop matching their checksums).
 *   CACHE_RAFT_ENTRY_BATCH: the proposals of one loop iteration, each as
 *                           u32 length (LE) and its bytes.
 *   CACHE_RAFT_ENTRY_NODE:  u64 id (LE), then the RESP "host:port" a new
 *                           leader publishes so followers can redirect.
 *
 * Snapshot format, version 1 (all integers little endian): an image, then
 * a tail.
 *   image: "OBSN" | u32 version | u32 n_nodes | n_nodes x (u64 id, u16 len,
 *          addr) | state bytes written by fsm->save | u64 state_len |
 *          u32 crc32 of the image's preceding bytes
 *   tail:  "OBTL" | u32 n | n x (u64 index, u32 len, log entry) |
 *          u64 image length | u32 crc32 of the tail's preceding bytes
 * The tail holds the entries applied after the image's index: with
 * raft-snapshot-fork, a forked child writes the image of the state at index
 * X while the loop goes on applying; when libraft asks again at index Y
 * (it retries on every applied entry while we answer RAFT_BUSY), the
 * snapshot at Y is the image at X plus entries X+1..Y. raft_uv offers no
 * async_work, so this is how a 1M-key snapshot stays off the loop. */
#ifndef CACHE_RAFT_INT_H
#define CACHE_RAFT_INT_H

#include "cache/raft.h"

#include <raft.h>
#include <sys/types.h>
#include <uv.h>

enum {
    CACHE_RAFT_ENTRY_BATCH = 1,
    CACHE_RAFT_ENTRY_NODE = 2,
};

#define CACHE_RAFT_MAX_NODES 64
#define CACHE_RAFT_ADDR_MAX 256
#define CACHE_RAFT_ENTRY_HDR 8

typedef struct cache_raft_node_addr {
    uint64_t id;
    char addr[CACHE_RAFT_ADDR_MAX];
} cache_raft_node_addr_t;

typedef struct cache_raft_sm {
    struct raft_fsm fsm;            /* fsm.data points back here */
    struct raft *raft;              /* set once raft_init ran (applied index) */
    cache_raft_fsm_t user;
    char tmp_path[4096];            /* fork mode: where the child writes */
    int fork_mode;
    uv_loop_t *uv;                  /* fork mode: for the worker that waits */
    pid_t child;
    enum { PREP_IDLE, PREP_RUNNING, PREP_READY, PREP_FAILED } prep;
    uint64_t gen, prep_gen;         /* gen moves on at every restore */
    int work_busy;
    uv_work_t work;
    unsigned char *prep_img;        /* the child's image, read by the worker */
    size_t prep_len;
    int recording;                  /* applied entries go to the tail */
    unsigned char *tail;
    size_t tail_len, tail_cap;
    uint32_t tail_n;
    int tail_err;
    uint64_t fork_us;               /* how long the loop stood in fork() */
    cache_raft_node_addr_t nodes[CACHE_RAFT_MAX_NODES];
    unsigned n_nodes;
    unsigned threshold;             /* configured snapshot threshold */
    int forced;                     /* cache_raft_snapshot_now lowered it */
    unsigned trailing;              /* configured snapshot trailing */
    int trailing_lowered;
    uint64_t log_bytes;             /* entry bytes applied since the last snapshot */
    uint64_t log_entries;
    uint64_t log_budget;            /* raft-snapshot-log-bytes */
    void (*kick)(void *arg);        /* have an entry applied soon (leader) */
    void *kick_arg;
    uint64_t snapshots_taken, snapshots_restored, entries_applied;
} cache_raft_sm_t;

/* Group commit across loop iterations. The open batch (the proposals of
 * this iteration) becomes one log entry at the end of the iteration,
 * unless an entry this node appended is still on its way to the disk: then
 * it is held, grows with the proposals of later iterations, and is
 * proposed as soon as that write completes, so that each disk write
 * carries one entry. It is proposed at once when nothing is in flight (an
 * idle disk adds no latency), when this node is not the leader (the
 * proposals fail at once), past these bounds, and once it has waited
 * CACHE_RAFT_HOLD_MAX_MS whatever the disk does. */
#define CACHE_RAFT_HOLD_MAX_BYTES (1u << 20)
#define CACHE_RAFT_HOLD_MAX_PROPOSALS 1024u
#define CACHE_RAFT_HOLD_MAX_MS 50u

/* Nonzero when an open batch of bytes and proposals, open for held_ms,
 * waits for the append in flight (appending nonzero) instead of becoming a
 * log entry now. leader: this node leads. Pure. */
int cache_raft_batch_hold(int leader, int appending, size_t bytes, unsigned proposals,
                          uint64_t held_ms);

/* Set up sm around user (copied). dir: where fork-mode snapshots are
 * staged (may be NULL when fork_mode is 0). Returns 0 or -ENAMETOOLONG. */
int cache_raft_sm_init(cache_raft_sm_t *sm, const cache_raft_fsm_t *user, const char *dir,
                       int fork_mode);

/* Ask for a snapshot at the next applied entry (lowers libraft's
 * threshold to 1 until it is taken). */
void cache_raft_sm_force(cache_raft_sm_t *sm);

/* Reap a snapshot child if one is still running. */
void cache_raft_sm_close(cache_raft_sm_t *sm);

/* Build a log entry of kind from body[0..len) in a raft_malloc'd buffer
 * (ownership passes to the caller, or to raft_apply). Returns 0 or
 * -ENOMEM. */
int cache_raft_entry_new(int kind, const void *body, size_t len, struct raft_buffer *out);

/* Decode an entry: its kind, and body/body_len inside buf. Returns 0 or
 * -EPROTO (too short, bad padding). Pure. */
int cache_raft_entry_parse(const void *buf, size_t len, int *kind, const unsigned char **body,
                           size_t *body_len);

/* Encode a NODE entry body for id and addr into buf (at least
 * 8 + CACHE_RAFT_ADDR_MAX bytes). Returns its length or -EINVAL. */
int cache_raft_node_encode(uint64_t id, const char *addr, unsigned char *buf, size_t len);

/* RESP address a node published, or NULL. */
const char *cache_raft_sm_node_addr(const cache_raft_sm_t *sm, uint64_t id);

/* Check a snapshot image: magic, version, bounds and checksum. On success
 * state and state_len locate the fsm->save bytes inside buf. Returns 0,
 * -EPROTO (malformed or checksum mismatch) or -ENOTSUP (newer version).
 * Pure. */
int cache_raft_snapshot_check(const void *buf, size_t len, const unsigned char **state,
                              size_t *state_len);

/* CRC-32 (IEEE) of p[0..n) continuing from crc (start with 0). */
uint32_t cache_raft_crc32(uint32_t crc, const void *p, size_t n);

/* libraft and libuv allocate through core/arena (tag raft.log) once this
 * ran; idempotent. */
void cache_raft_heap_install(void);

#endif
