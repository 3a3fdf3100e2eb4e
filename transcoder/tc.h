/* transcoder/: the stream hub, RTMP sessions and HTTP playback.
 *
 * This is the only header other folders include. Everything here runs on
 * the loop thread except the workers it starts itself. */
#ifndef TC_TC_H
#define TC_TC_H

#include "core/conf.h"
#include "core/http.h"
#include "core/loop.h"

typedef struct tc_conf {
    long long rtmp_chunk_size;     /* chunk size we send */
    long long rtmp_max_message;    /* largest RTMP message a peer may send */
    long long viewer_queue_bytes;  /* per-viewer output queue before dropping */
    long long viewer_queue_ms;     /* over the byte bound this long: disconnect */
    long long handshake_timeout_ms;/* RTMP handshake + connect deadline */
    long long publish_grace_ms;    /* viewers wait this long for a republish */
    int gop_cache;                 /* send the GOP cache to new viewers */
    long long gop_cache_max_bytes; /* a longer GOP is not cached */
    char *publish_secret;          /* HMAC key for stream keys, "" = open */
    long long max_streams;         /* published streams at once */
    long long max_sessions;        /* RTMP connections at once */
    long long viewer_flush_ms;     /* merge viewer writes over this window (0: none) */
    long long viewer_merge_load;   /* merge when fan-out takes this % of the loop (0 always, 100 never) */
    int blur_default;              /* blur streams without a blur= key option */
    int blur_preset;               /* x264 preset: 0 ultrafast, 1 superfast, 2 veryfast */
    long long viewer_ttl_ms;       /* presence TTL of a viewer session in the cache */
    long long viewer_refresh_ms;   /* presence keep-alive period, at most half the TTL */
} tc_conf_t;

/* Register the transcoder's directives (storage in *tc). */
int tc_conf_register(core_conf_t *c, tc_conf_t *tc);

/* Check what one directive's range cannot: viewer-presence-refresh-ms at
 * most half of viewer-presence-ttl-ms. Returns 0, or -EINVAL with a
 * one-line reason in err. */
int tc_conf_check(const tc_conf_t *tc, char *err, size_t errlen);

typedef struct tc_server tc_server_t;

/* Serve RTMP on the listening socket rtmp_fd (ownership passes) and add
 * the playback routes (/live/...) to http (borrowed). conf is borrowed.
 * Returns 0 and *out, or a negative errno (rtmp_fd closed then). */
int tc_server_new(tc_server_t **out, core_loop_t *loop, int rtmp_fd, core_http_t *http,
                  const tc_conf_t *conf);

/* Report viewer sessions to the cache (borrowed; it must outlive the
 * server): presence, joins and rankings (docs/keys.md), and viewer counts
 * from it in /api/streams and /api/ranking. Returns 0 or -ENOMEM. */
struct cache_server;
int tc_server_set_cache(tc_server_t *s, struct cache_server *cache);

/* Close every session and free the hub; *sp = NULL. */
void tc_server_free(tc_server_t **sp);

#endif
