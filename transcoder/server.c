/* transcoder/server: the transcoder's directives, the RTMP listener and
 * the playback and API routes. */
#include "transcoder/tc_int.h"
#include "transcoder/llhls.h"

#include "core/arena.h"
#include "core/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *const onoff[] = {"no", "yes", NULL};
static const char *const blur_presets[] = {"ultrafast", "superfast", "veryfast", NULL};
static const core_conf_def_t defs_tmpl[] = {
    {"rtmp-chunk-size", CORE_CONF_INT, "4096", "RTMP chunk size oborod sends", NULL, 128, 65536, NULL, 0, NULL, NULL},
    {"rtmp-max-message-size", CORE_CONF_SIZE, "8mb", "largest RTMP message a peer may send; a larger one closes the session", NULL, 1024, 0xffffff, NULL, 0, NULL, NULL},
    {"viewer-queue-bytes", CORE_CONF_SIZE, "4mb", "per-viewer output queue; past it frames are dropped up to the next keyframe", NULL, 65536, 1LL << 30, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"viewer-queue-ms", CORE_CONF_INT, "5000", "a viewer whose queue stays over viewer-queue-bytes this long is disconnected", NULL, 100, 600000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"rtmp-handshake-timeout-ms", CORE_CONF_INT, "5000", "an RTMP client must finish the handshake and connect within this time", NULL, 100, 600000, NULL, 0, NULL, NULL},
    {"publish-grace-ms", CORE_CONF_INT, "5000", "viewers stay attached this long after the publisher leaves (0: end at once)", NULL, 0, 600000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"gop-cache", CORE_CONF_ENUM, "yes", "send new viewers the frames since the last keyframe (instant start)", NULL, 0, 0, onoff, CORE_CONF_RUNTIME, NULL, NULL},
    {"gop-cache-max-bytes", CORE_CONF_SIZE, "16mb", "a GOP larger than this is not cached", NULL, 65536, 1LL << 30, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"publish-secret", CORE_CONF_STR, "", "HMAC-SHA256 key for signed stream keys NAME?exp=UNIX&sig=HEX; empty: publishing is open (only safe on loopback)", NULL, 0, 0, NULL, CORE_CONF_SECRET, NULL, NULL},
    {"max-streams", CORE_CONF_INT, "1000", "published streams at once", NULL, 1, 1000000, NULL, 0, NULL, NULL},
    {"rtmp-max-sessions", CORE_CONF_INT, "10000", "RTMP connections at once", NULL, 1, 1000000, NULL, 0, NULL, NULL},
    {"viewer-flush-ms", CORE_CONF_INT, "40", "when a stream merges writes to its viewers (see viewer-merge-load), it writes at most every this many ms; 0: never merge, write as packets arrive", NULL, 0, 1000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"viewer-merge-load", CORE_CONF_INT, "10", "merge a stream's writes to viewers while writing to viewers takes more than this % of the loop thread (back below a quarter of it); 0: always merge, 100: never", NULL, 0, 100, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"blur-default", CORE_CONF_ENUM, "no", "blur notification banners in streams whose key has no blur= option (docs/blur.md)", NULL, 0, 0, onoff, CORE_CONF_RUNTIME, NULL, NULL},
    {"blur-preset", CORE_CONF_ENUM, "superfast", "libx264 preset of the blur pipeline's encoder (ultrafast: more streams per core, more bits)", NULL, 0, 0, blur_presets, CORE_CONF_RUNTIME, NULL, NULL},
    {"viewer-presence-ttl-ms", CORE_CONF_INT, "15000", "a viewer session not refreshed for this long leaves viewers:APP/NAME in the cache (its node died)", NULL, 500, 3600000, NULL, 0, NULL, NULL},
    {"viewer-presence-refresh-ms", CORE_CONF_INT, "5000", "each viewer session's presence is refreshed this often; at most half of viewer-presence-ttl-ms", NULL, 100, 1800000, NULL, 0, NULL, NULL},
};
#define NDEFS (sizeof(defs_tmpl) / sizeof(defs_tmpl[0]))
static core_conf_def_t defs[NDEFS];

int tc_conf_register(core_conf_t *c, tc_conf_t *tc)
{
    void *ptrs[NDEFS] = {&tc->rtmp_chunk_size, &tc->rtmp_max_message, &tc->viewer_queue_bytes,
                         &tc->viewer_queue_ms, &tc->handshake_timeout_ms, &tc->publish_grace_ms,
                         &tc->gop_cache, &tc->gop_cache_max_bytes, &tc->publish_secret,
                         &tc->max_streams, &tc->max_sessions, &tc->viewer_flush_ms,
                         &tc->viewer_merge_load, &tc->blur_default, &tc->blur_preset,
                         &tc->viewer_ttl_ms, &tc->viewer_refresh_ms};
    int rv;

    memcpy(defs, defs_tmpl, sizeof(defs));
    for (size_t i = 0; i < NDEFS; i++)
        defs[i].ptr = ptrs[i];
    rv = core_conf_add(c, defs, NDEFS);
    return rv != 0 ? rv : tc_llhls_conf_register(c);
}

int tc_conf_check(const tc_conf_t *tc, char *err, size_t errlen)
{
    /* one refresh may be lost or late without the viewer blinking out */
    if (tc->viewer_refresh_ms * 2 > tc->viewer_ttl_ms) {
        snprintf(err, errlen,
                 "viewer-presence-refresh-ms (%lld) must be at most half of viewer-presence-ttl-ms (%lld)",
                 tc->viewer_refresh_ms, tc->viewer_ttl_ms);
        return -EINVAL;
    }
    return 0;
}

/* A playlist request for a stream that a source (pull) is starting waits
 * for its first keyframe, like an HTTP-FLV viewer, then LL-HLS answers it
 * (and itself waits for the first segment where it has to). */
typedef struct hls_pending {
    tc_waiter_t w;
    tc_server_t *srv;
    struct evhttp_request *req;
    char path[];
} hls_pending_t;

static void hls_ready(tc_waiter_t *w, tc_stream_t *st, int err)
{
    hls_pending_t *pd = (hls_pending_t *)w;
    struct evhttp_request *req = pd->req;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);

    if (conn != NULL)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    if (conn == NULL)
        evhttp_send_reply(req, 499, "Client Closed Request", NULL);
    else if (st != NULL)
        tc_llhls_http(req, pd->path, pd->srv->llhls);
    else
        evhttp_send_error(req, err == -ETIMEDOUT ? 504 : 404, NULL);
    core_free(pd);
}

static void hls_closed(struct evhttp_connection *conn, void *arg)
{
    hls_pending_t *pd = arg;
    struct evhttp_request *req = pd->req;

    tc_waiter_cancel(&pd->w);
    core_free(pd);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_send_reply(req, 499, "Client Closed Request", NULL);
}

/* Returns 1 when the request now waits for a source to start the stream. */
static int hls_wait(tc_server_t *srv, struct evhttp_request *req, const char *path)
{
    const char *name = path + strlen("/live/"), *slash = strchr(name, '/');
    char sname[128];
    hls_pending_t *pd;
    int err = -ENOENT;

    if (evhttp_request_get_command(req) != EVHTTP_REQ_GET &&
        evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
        return 0;
    if (slash == NULL || (size_t)(slash - name) >= sizeof(sname) ||
        (strcmp(slash, "/index.m3u8") != 0 && strcmp(slash, "/master.m3u8") != 0))
        return 0;
    snprintf(sname, sizeof(sname), "%.*s", (int)(slash - name), name);
    if (tc_hub_find(&srv->hub, "live", sname) != NULL || srv->hub.source.want == NULL)
        return 0;
    pd = core_calloc(CORE_TAG_HLS, 1, sizeof(*pd) + strlen(path) + 1);
    if (pd == NULL)
        return 0;
    pd->w.cb = hls_ready;
    pd->srv = srv;
    pd->req = req;
    strcpy(pd->path, path);
    if (tc_hub_lookup(&srv->hub, "live", sname, &pd->w, &err) != NULL || err != -EINPROGRESS) {
        core_free(pd);
        return 0;
    }
    evhttp_connection_set_closecb(evhttp_request_get_connection(req), hls_closed, pd);
    return 1;
}

/* /live/NAME.flv is HTTP-FLV, /live/NAME/... is LL-HLS. */
static void live_cb(struct evhttp_request *req, const char *path, void *arg)
{
    tc_server_t *srv = arg;

    if (tc_llhls_match(path)) {
        if (!hls_wait(srv, req, path))
            tc_llhls_http(req, path, srv->llhls);
    } else {
        tc_httpflv_cb(req, path, srv);
    }
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    tc_server_t *srv = arg;
    char host[INET6_ADDRSTRLEN] = "?", peer[64];
    int port = 0, one = 1;

    if (sa->sa_family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)sa;

        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
    } else if (sa->sa_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)sa;

        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
    }
    snprintf(peer, sizeof(peer), "%s:%d", host, port);
    /* media is latency-sensitive: do not wait to coalesce small writes */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    tc_rtmp_session_new(srv, fd, peer);
}

/* LL-HLS viewer sessions count as viewers of live/NAME in the cache, like
 * HTTP-FLV and RTMP play subscribers. */
static void llhls_session_cb(void *arg, const char *stream, const char *sid, int event)
{
    tc_server_t *s = arg;
    char name[160];
    static const tc_viewer_event_t ev[] = {TC_VIEWER_JOIN, TC_VIEWER_TOUCH, TC_VIEWER_LEAVE};

    if (event < 0 || event > 2)
        return;
    snprintf(name, sizeof(name), "live/%s", stream);
    tc_viewers_session(&s->hub, name, sid, ev[event]);
}

int tc_server_new(tc_server_t **out, core_loop_t *loop, int rtmp_fd, core_http_t *http,
                  const tc_conf_t *conf)
{
    tc_server_t *s = core_calloc(CORE_TAG_HUB, 1, sizeof(*s));
    int rv;

    if (s == NULL) {
        close(rtmp_fd);
        return -ENOMEM;
    }
    s->loop = loop;
    s->base = core_loop_base(loop);
    s->conf = conf;
    rv = tc_hub_init(&s->hub, s->base, conf);
    if (rv != 0)
        goto err_after_alloc;
    s->rtmp_bytes_in = core_metrics_counter(core_metrics_global(), "oboro_rtmp_bytes_total{dir=\"in\"}",
                                            "Bytes read from RTMP connections.");
    rv = -ENOMEM;
    if (s->rtmp_bytes_in == NULL)
        goto err_after_alloc;
    rv = tc_llhls_new(&s->llhls, s->base, tc_llhls_conf());
    if (rv != 0)
        goto err_after_alloc;
    tc_llhls_set_session_cb(s->llhls, llhls_session_cb, s, (uint64_t)conf->viewer_refresh_ms);
    s->hub.llhls = s->llhls;
    rv = -ENOMEM;
    if (core_http_route(http, "/live/", live_cb, s) != 0 ||
        core_http_route(http, "/api/streams", tc_api_cb, s) != 0 ||
        core_http_route(http, "/api/streams/", tc_api_cb, s) != 0 ||
        core_http_route(http, "/api/ranking", tc_api_ranking_cb, s) != 0)
        goto err_after_alloc;
    s->lst = evconnlistener_new(s->base, accept_cb, s, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
                                -1, rtmp_fd);
    if (s->lst == NULL)
        goto err_after_alloc;
    *out = s;
    return 0;

err_after_alloc:
    tc_llhls_free(&s->llhls);
    close(rtmp_fd);
    core_free(s);
    return rv;
}

void tc_server_free(tc_server_t **sp)
{
    tc_server_t *s = *sp;

    if (s == NULL)
        return;
    evconnlistener_free(s->lst);
    /* publishers and RTMP viewers, then the streams (which end the
     * HTTP-FLV viewers), then anything left */
    tc_rtmp_session_free_all(s);
    tc_hub_close(&s->hub);
    tc_httpflv_free_all(s);
    tc_viewers_stop(&s->hub);
    tc_llhls_free(&s->llhls);
    core_free(s);
    *sp = NULL;
}

int tc_server_set_cache(tc_server_t *s, struct cache_server *cache)
{
    return tc_viewers_start(&s->hub, cache);
}
