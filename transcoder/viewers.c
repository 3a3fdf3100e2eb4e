/* transcoder/viewers: viewer sessions in the cache's live state, and
 * GET /api/ranking.
 *
 * Every subscriber of the hub (HTTP-FLV, RTMP play) is a viewer session
 * with an id unique across the shard (a random per-process prefix and a
 * counter), except another server's pull (TC_RELAY_MARK): its viewers are
 * counted where they watch. Attaching reports a join, a timer refreshes every session's
 * presence well within its TTL, detaching reports a leave; the cache turns
 * them into replicated writes (cache.h, keys in docs/keys.md). Without a
 * cache (unit tests) all of this is a no-op. */
#include "transcoder/tc_int.h"

#include "cache/cache.h"
#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define RANK_MAX 100

static void sid_of(const tc_hub_t *h, const tc_sub_t *sub, char *buf, size_t len)
{
    snprintf(buf, len, "%016llx-%llx", (unsigned long long)h->sid_prefix, (unsigned long long)sub->sid);
}

static void report(int rv, const char *what, const char *stream)
{
    /* -ENOTCONN: no leader known right now; -ENOBUFS: the queue towards
     * the leader is full. Both end by themselves (and the presence TTL
     * corrects the counts); not worth a line per viewer. */
    if (rv != 0 && rv != -ENOTCONN && rv != -ENOBUFS)
        core_log_warn("hub", "viewer event not recorded", "event=%s stream=%s error=%d", what, stream, rv);
}

void tc_viewers_join(tc_hub_t *h, tc_stream_t *s, tc_sub_t *sub)
{
    char sid[48];

    if (sub->relay) {
        sub->sid = 0;   /* never reported, so never left or refreshed */
        return;
    }
    sub->sid = ++h->sid_next;
    if (h->cache == NULL)
        return;
    sid_of(h, sub, sid, sizeof(sid));
    report(cache_event_viewer_touch(h->cache, s->name, sid, (uint64_t)h->conf->viewer_ttl_ms, 1), "join", s->name);
}

void tc_viewers_leave(tc_hub_t *h, tc_stream_t *s, tc_sub_t *sub)
{
    char sid[48];

    if (h->cache == NULL || sub->sid == 0)
        return;
    sid_of(h, sub, sid, sizeof(sid));
    report(cache_event_viewer_leave(h->cache, s->name, sid), "leave", s->name);
}

void tc_viewers_session(tc_hub_t *h, const char *stream, const char *local_id, tc_viewer_event_t ev)
{
    char sid[64];
    int rv;

    if (h->cache == NULL)
        return;
    snprintf(sid, sizeof(sid), "%016llx-%s", (unsigned long long)h->sid_prefix, local_id);
    if (ev == TC_VIEWER_LEAVE)
        rv = cache_event_viewer_leave(h->cache, stream, sid);
    else
        rv = cache_event_viewer_touch(h->cache, stream, sid, (uint64_t)h->conf->viewer_ttl_ms, ev == TC_VIEWER_JOIN);
    report(rv, ev == TC_VIEWER_JOIN ? "join" : ev == TC_VIEWER_TOUCH ? "touch" : "leave", stream);
}

static void touch_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_hub_t *h = arg;
    char sid[48];

    for (tc_stream_t *s = h->streams; s != NULL; s = s->next)
        for (tc_sub_t *sub = s->subs; sub != NULL; sub = sub->next) {
            if (sub->sid == 0)
                continue;
            sid_of(h, sub, sid, sizeof(sid));
            report(cache_event_viewer_touch(h->cache, s->name, sid, (uint64_t)h->conf->viewer_ttl_ms, 0), "touch", s->name);
        }
}

int tc_viewers_start(tc_hub_t *h, struct cache_server *cache)
{
    long long every = h->conf->viewer_refresh_ms;
    struct timeval tv = {every / 1000, (every % 1000) * 1000};
    int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, &h->sid_prefix, sizeof(h->sid_prefix)) != sizeof(h->sid_prefix))
        h->sid_prefix = (uint64_t)getpid() << 32 ^ core_wall_ms();
    if (fd >= 0)
        close(fd);
    h->viewers_ev = event_new(h->base, -1, EV_PERSIST, touch_cb, h);
    if (h->viewers_ev == NULL || event_add(h->viewers_ev, &tv) != 0) {
        if (h->viewers_ev != NULL)
            event_free(h->viewers_ev);
        h->viewers_ev = NULL;
        return -ENOMEM;
    }
    h->cache = cache;
    return 0;
}

void tc_viewers_stop(tc_hub_t *h)
{
    if (h->viewers_ev != NULL) {
        event_free(h->viewers_ev);
        h->viewers_ev = NULL;
    }
    h->cache = NULL;
}

long long tc_viewers_count(const tc_hub_t *h, const tc_stream_t *s)
{
    return h->cache != NULL ? cache_live_viewers(h->cache, s->name) : -1;
}

static void json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            evbuffer_add_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            evbuffer_add_printf(b, "\\u%04x", (unsigned char)*s);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

/* GET /api/ranking?window=SECONDS&n=N: the top streams by joins within the
 * window (rank:views), with their concurrent viewers. */
void tc_api_ranking_cb(struct evhttp_request *req, const char *path, void *arg)
{
    tc_server_t *srv = arg;
    struct evkeyvalq q;
    const char *ws, *ns;
    long long window = 3600, n = 20;
    cache_live_rank_t *items = NULL;
    size_t count = 0;
    struct evbuffer *b = evbuffer_new();
    int code = 200;
    char *end;

    if (b == NULL) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    if (evhttp_parse_query_str(evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) ?
                                   evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)) : "",
                               &q) != 0) {
        code = 400;
        goto reply;
    }
    ws = evhttp_find_header(&q, "window");
    ns = evhttp_find_header(&q, "n");
    if (ws != NULL) {
        window = strtoll(ws, &end, 10);
        if (*ws == '\0' || *end != '\0')
            code = 400;
    }
    if (ns != NULL) {
        n = strtoll(ns, &end, 10);
        if (*ns == '\0' || *end != '\0' || n < 0 || n > RANK_MAX)
            code = 400;
    }
    if (code != 200)
        goto reply;
    if (srv->hub.cache == NULL) {
        code = 503;
        goto reply;
    }
    items = core_calloc(CORE_TAG_HTTP, (size_t)(n > 0 ? n : 1), sizeof(*items));
    if (items == NULL) {
        code = 503;
        goto reply;
    }
    if (cache_live_ranking(srv->hub.cache, window, items, (size_t)n, &count) != 0) {
        code = 400;
        goto reply;
    }
    evbuffer_add_printf(b, "{\"window\":%lld,\"ranking\":[", window);
    for (size_t i = 0; i < count; i++) {
        /* members come from the cache, where any client may write: escape */
        evbuffer_add_printf(b, "%s{\"stream\":", i ? "," : "");
        json_str(b, items[i].stream);
        evbuffer_add_printf(b, ",\"views\":%lld,\"viewers\":%lld}", items[i].views, items[i].viewers);
    }
    evbuffer_add_printf(b, "]}\n");
reply:
    if (code != 200)
        evbuffer_add_printf(b, "{\"error\":\"%s\"}\n",
                            code == 400 ? "window must be 3600 or 86400, n 0..100" : "no cache");
    evhttp_clear_headers(&q);
    core_free(items);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Access-Control-Allow-Origin", "*");
    evhttp_send_reply(req, code, code == 200 ? "OK" : code == 400 ? "Bad Request" : "Service Unavailable", b);
    evbuffer_free(b);
}
