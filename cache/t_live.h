/* cache/t_live: the live-stream data types (internal to cache/).
 *
 *   WCOUNT    windowed counter: a ring of cumulative totals, one per bucket
 *             (t_wcount.c);
 *   WRANK     windowed ranking: per-bucket member deltas plus one ordered
 *             aggregate per configured window, updated incrementally as
 *             buckets leave the window (t_wrank.c);
 *   PRESENCE  members with a deadline each, optionally mirrored as a count
 *             into a sorted set (t_presence.c).
 *
 * Determinism: every write takes its time from the batch (cache_ctx_t
 * now_ms: the proposer's clock, carried in the log entry); relative TTLs
 * become absolute deadlines before logging (PRESENCE.TOUCH is logged as
 * __presence.touchat). Nothing in the apply step reads a clock.
 *
 * Time-driven work (presence members past their deadline, ranking buckets
 * leaving a window, counters whose whole span is empty) is done by the
 * replicated "__live.tick" entry: the leader's cron checks
 * cache_live_due() and appends one __live.tick to the batch; applying it
 * does the same work at the same log index on every node, deleting keys
 * that became empty.
 *
 * Every live value is linked into its keyspace's registry (struct
 * cache_ks.live) and keeps a copy of its key name, so that the tick can
 * visit exactly the live values and delete the key of an emptied one. */
#ifndef CACHE_T_LIVE_H
#define CACHE_T_LIVE_H

#include "cache/cache_int.h"

struct evbuffer;
struct event_base;

/* Common head of every live value (first member of each type). */
typedef struct live_val {
    cache_live_link_t link;
    uint8_t type;              /* CACHE_T_WCOUNT, _WRANK or _PRESENCE */
    uint32_t klen;
    char *key;                 /* copy of the key name (CORE_TAG_CACHE_VALUES) */
} live_val_t;

/* ---- shared (t_live.c) ------------------------------------------------ */

/* Initialise v's head and link it into k's registry; the key copy is made
 * here. Returns 0 or -ENOMEM (v untouched then). */
int live_val_init(cache_ks_t *k, live_val_t *v, int type, const char *key, size_t klen);
/* Unlink v from its registry and free the key copy. */
void live_val_close(live_val_t *v);
/* Delete the key whose value is v (found by its key copy, or by a scan of
 * the keyspace when the key was renamed). v is freed. */
void live_val_delete_key(cache_ks_t *k, live_val_t *v);
/* The name "wcount", "wrank", "presence" of a type, or NULL. */
const char *live_type_name(int type);

/* Hooks for keyspace.c (type is one of the live types). */
void live_value_free(int type, void *p);
size_t live_value_mem(int type, void *p);
/* Append the value (without key and header) to out; returns 0 or -ENOMEM. */
int live_value_dump(int type, void *p, struct evbuffer *out);
/* Read a value written by live_value_dump from *pp and *left (advanced past it)
 * for key; on success *out is a new value linked into k. Returns 0,
 * -EPROTO for malformed bytes, -ENOMEM. */
int live_value_load(cache_ks_t *k, int type, const char *key, size_t klen,
                    const unsigned char **pp, size_t *left, void **out);

/* Leader side: nonzero when applying a __live.tick at now_ms would change
 * something. */
int cache_live_due(cache_ks_t *k, uint64_t now_ms);

/* Snapshot readers share these bounded little-endian helpers. */
int live_get(const unsigned char **pp, size_t *left, void *dst, size_t n);

/* ---- forwarding to the leader (t_live_fwd.c) ---------------------------- */

typedef struct live_fwd live_fwd_t;

/* Send one command (argv borrowed) to the leader at "host:port" over the
 * connection *fp (created or reconnected as needed; pass: AUTH password,
 * "" or NULL for none). Returns 0 once queued, -ENOTCONN without a usable
 * leader address (none, or not numeric: logged once), -ENOBUFS when too
 * much is already waiting, -ENOMEM. */
int live_fwd_send(live_fwd_t **fp, struct event_base *base, const char *leader, const char *pass,
                  int argc, const resp_arg_t *argv);
/* Close the connection and free *fp; *fp = NULL. */
void live_fwd_free(live_fwd_t **fp);

/* ---- per type --------------------------------------------------------- */

typedef struct wcount wcount_t;
typedef struct wrank wrank_t;
typedef struct presence presence_t;

void wcount_free(wcount_t *w);
size_t wcount_mem(const wcount_t *w);
int wcount_dump(const wcount_t *w, struct evbuffer *out);
int wcount_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp, size_t *left,
                wcount_t **out);
/* Nonzero when the counter's whole span is empty at now_ms. */
int wcount_expired(const wcount_t *w, uint64_t now_ms);
/* Counter sum over the last `buckets` buckets at now_ms. */
int64_t wcount_sum(const wcount_t *w, uint64_t now_ms, uint32_t buckets);

void wrank_free(wrank_t *r);
size_t wrank_mem(const wrank_t *r);
int wrank_dump(const wrank_t *r, struct evbuffer *out);
int wrank_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp, size_t *left,
               wrank_t **out);
/* Nonzero when advancing to now_ms would subtract something. */
int wrank_due(const wrank_t *r, uint64_t now_ms);
/* Advance to now_ms (buckets leave windows). Returns 1 when the ranking is
 * empty afterwards, 0 otherwise, -ENOMEM. */
int wrank_advance(wrank_t *r, uint64_t now_ms);
/* The aggregate for a window of window_s seconds (0: the largest), or NULL
 * when the key keeps no such window. */
zset_t *wrank_window(wrank_t *r, long long window_s);

void presence_free(presence_t *p);
size_t presence_mem(const presence_t *p);
int presence_dump(const presence_t *p, struct evbuffer *out);
int presence_load(cache_ks_t *k, const char *key, size_t klen, const unsigned char **pp,
                  size_t *left, presence_t **out);
/* Nonzero when some member's deadline is before now_ms. */
int presence_due(const presence_t *p, uint64_t now_ms);
/* Drop the members past their deadline at now_ms and update the mirror.
 * Returns 1 when the set is empty afterwards (the caller deletes the key). */
int presence_sweep(cache_ks_t *k, presence_t *p, uint64_t now_ms);
/* Members whose deadline is not before now_ms. */
size_t presence_live_count(const presence_t *p, uint64_t now_ms);

/* ---- commands --------------------------------------------------------- */

CMD(cmd_wcount_incr); CMD(cmd_wcount_get);
CMD(cmd_wrank_incrby); CMD(cmd_wrank_top); CMD(cmd_wrank_score); CMD(cmd_wrank_rank);
CMD(cmd_presence_touch); CMD(cmd_presence_touchat); CMD(cmd_presence_leave);
CMD(cmd_presence_count); CMD(cmd_presence_members);
CMD(cmd_live_tick);
PREP(prep_presence_touch);

#endif
