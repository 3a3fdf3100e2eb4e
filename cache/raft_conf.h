/* cache/raft_conf: the directives of the Raft write path (node-id,
 * raft-peers, snapshot thresholds, timeouts, read mode).
 *
 * Plain storage only, so that cache_conf_t can embed it; the directive table
 * lives in cache/raft.c (cache_raft_conf_register). */
#ifndef CACHE_RAFT_CONF_H
#define CACHE_RAFT_CONF_H

enum {
    CACHE_RAFT_READ_LINEARIZABLE = 0, /* reads wait for a barrier: no stale read */
    CACHE_RAFT_READ_LEADER = 1,       /* the leader answers from its own state */
};

typedef struct cache_raft_conf {
    long long node_id;            /* this node's Raft id (> 0) */
    char *peers;                  /* "1=host:port,2=host:port,..." or "" (single node) */
    long long snapshot_threshold; /* log entries (batches) between snapshots */
    long long snapshot_trailing;  /* entries kept in the log after a snapshot */
    long long election_timeout;   /* ms; randomised between 1x and 2x */
    long long heartbeat_timeout;  /* ms */
    int read_mode;                /* CACHE_RAFT_READ_* */
    int snapshot_fork;            /* serialise snapshots in a forked child */
    long long snapshot_log_bytes; /* snapshot once the log holds this much and more than the state */
} cache_raft_conf_t;

#endif
