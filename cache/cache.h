/* cache/: the embedded, Redis-protocol cache.
 *
 * This is the only header other folders include. The cache owns its
 * listening socket, clients and keyspace; everything runs on the loop
 * thread. */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include "core/conf.h"
#include "core/loop.h"

#include <stddef.h>
#include <stdint.h>

typedef struct cache_conf {
    long long maxclients;
    long long timeout;          /* idle seconds, 0 = never */
    char *requirepass;
    long long proto_max_bulk_len;
    long long client_output_limit;
} cache_conf_t;

/* Register the cache's directives (storage in *cc) with c. Returns 0 or a
 * negative errno from core_conf_add. */
int cache_conf_register(core_conf_t *c, cache_conf_t *cc);

typedef struct cache_server cache_server_t;

/* Serve RESP on the listening socket fd (ownership passes). conf and all
 * are borrowed and must outlive the server (all: for CONFIG GET/SET; may be
 * NULL, then CONFIG answers an error). Writes go to the local log until
 * cache_server_set_log() (cache/log.h) installs another.
 * Returns 0 and *out, or a negative errno (fd closed then). */
int cache_server_new(cache_server_t **out, core_loop_t *loop, int fd,
                     const cache_conf_t *conf, core_conf_t *all);

/* Stop accepting, close every client, free the keyspace; *sp = NULL. */
void cache_server_free(cache_server_t **sp);

/* ---- live state of the stream hub (cache/t_live.c; keys: docs/keys.md) --
 *
 * Viewer events are appended to the current write batch, exactly as a
 * client's write would be, so they are replicated and cost one batch per
 * loop iteration however many arrive. On a node that is not the leader
 * they are sent to the leader over RESP instead (one connection, bounded
 * queue; cache/t_live_fwd.c). stream is "APP/NAME" (at most
 * CACHE_LIVE_NAME_MAX bytes), session a viewer session id unique across the
 * shard (at most 64 bytes); both are borrowed for the call only. */

#define CACHE_LIVE_NAME_MAX 159

/* A viewer of stream joined (join = 1) or keeps watching (join = 0):
 * PRESENCE.TOUCH viewers:STREAM SESSION ttl_ms (mirrored into the sorted
 * set rank:viewers as STREAM's viewer count), and on join also
 * WCOUNT.INCR joins:STREAM and WRANK.INCRBY rank:views STREAM 1.
 * Returns 0, -EINVAL (bad name or ttl), -ENOTCONN (not the leader, and
 * no leader known), -ENOBUFS (too much already queued for the leader),
 * -ENOMEM. */
int cache_event_viewer_touch(cache_server_t *s, const char *stream, const char *session,
                             uint64_t ttl_ms, int join);

/* The viewer session left: PRESENCE.LEAVE viewers:STREAM SESSION.
 * Returns as cache_event_viewer_touch. */
int cache_event_viewer_leave(cache_server_t *s, const char *stream, const char *session);

/* Concurrent viewers of stream now (PRESENCE.COUNT viewers:STREAM), 0 when
 * none, -1 when s is NULL or the name is invalid. */
long long cache_live_viewers(cache_server_t *s, const char *stream);

typedef struct cache_live_rank {
    char stream[CACHE_LIVE_NAME_MAX + 1];
    long long views;        /* joins within the window (rank:views) */
    long long viewers;      /* concurrent viewers now */
} cache_live_rank_t;

/* The top n streams by joins within the last window_s seconds (one of the
 * windows rank:views keeps: 3600 or 86400), best first, into out[0..n).
 * Returns 0 and *count, or -EINVAL for another window. */
int cache_live_ranking(cache_server_t *s, long long window_s, cache_live_rank_t *out, size_t n,
                       size_t *count);

#endif
