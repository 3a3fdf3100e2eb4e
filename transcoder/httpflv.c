/* transcoder/httpflv: GET /live/NAME.flv — the FLV header, metadata,
 * sequence headers, the GOP cache, then live tags, as one endless HTTP
 * response (chunked for HTTP/1.1, close-delimited for HTTP/1.0). Tags are
 * shared with every other viewer by reference. */
#include "transcoder/tc_int.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

typedef struct tc_flv_viewer {
    struct tc_flv_viewer *next, *prev;
    tc_server_t *srv;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct evbuffer *tmp;
    tc_sub_t sub;
    char peer[64];
    char stream[160];
    uint64_t bytes;
    int chunked;                /* HTTP/1.1: we frame the body chunks */
} tc_flv_viewer_t;

#define VIEWER_OF(subp) ((tc_flv_viewer_t *)((char *)(subp) - offsetof(tc_flv_viewer_t, sub)))

static void viewer_free(tc_flv_viewer_t *v)
{
    tc_server_t *srv = v->srv;

    if (v->sub.stream != NULL)
        tc_hub_detach(&v->sub);
    if (v->prev != NULL)
        v->prev->next = v->next;
    else
        srv->flv_viewers = v->next;
    if (v->next != NULL)
        v->next->prev = v->prev;
    if (v->tmp != NULL)
        evbuffer_free(v->tmp);
    core_free(v);
}

/* The viewer went away (or the connection failed). */
static void closed_cb(struct evhttp_connection *conn, void *arg)
{
    tc_flv_viewer_t *v = arg;
    struct evhttp_request *req = v->req;
    struct evbuffer *out = bufferevent_get_output(evhttp_connection_get_bufferevent(conn));

    core_log_info("flv", "viewer left", "peer=%s stream=%s bytes=%llu dropped=%llu", v->peer,
                  v->stream, (unsigned long long)v->bytes, (unsigned long long)v->sub.dropped);
    viewer_free(v);
    /* what is still queued will never be sent */
    tc_latency_mute(1);
    evbuffer_drain(out, evbuffer_get_length(out));
    tc_latency_mute(0);
    /* evhttp detaches an unfinished response from a connection that
     * failed and leaves it to us: ending it frees it */
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_send_reply_end(req);
}

static size_t queued(tc_sub_t *sub)
{
    return tc_sub_queued(sub);
}

/* Hard close: drop what is queued. */
static void kill_viewer(tc_flv_viewer_t *v)
{
    struct evhttp_connection *conn = v->conn;
    struct evbuffer *out = bufferevent_get_output(evhttp_connection_get_bufferevent(conn));

    evhttp_connection_set_closecb(conn, NULL, NULL);
    viewer_free(v);
    tc_latency_mute(1);
    evbuffer_drain(out, evbuffer_get_length(out));
    tc_latency_mute(0);
    evhttp_connection_free(conn);
}

/* Body bytes go straight into the connection's output buffer (evhttp only
 * wrote the headers), framed as HTTP/1.1 chunks when the reply is
 * chunked, so that flushing is ours: one write per batch of packets. */
static int packet(tc_sub_t *sub, tc_pkt_t *p)
{
    tc_flv_viewer_t *v = VIEWER_OF(sub);
    int sent;
    ssize_t n = tc_pkt_send(p, sub, &sent);

    if (n < 0)
        goto fail;
    v->bytes += (uint64_t)n;
    v->srv->hub.out_pending[TC_PROTO_FLV] += n;
    return sent;

fail:
    core_log_warn("flv", "viewer dropped", "peer=%s stream=%s reason=\"out of memory\"", v->peer,
                  v->stream);
    kill_viewer(v);
    return -1;
}

static void end(tc_sub_t *sub, const char *reason)
{
    tc_flv_viewer_t *v = VIEWER_OF(sub);
    struct evhttp_connection *conn = v->conn;

    if (strcmp(reason, "slow") == 0) {
        core_log_warn("flv", "viewer too slow, disconnected", "peer=%s stream=%s dropped=%llu",
                      v->peer, v->stream, (unsigned long long)sub->dropped);
        kill_viewer(v);
        return;
    }
    core_log_info("flv", "viewer ended", "peer=%s stream=%s reason=%s bytes=%llu", v->peer,
                  v->stream, reason, (unsigned long long)v->bytes);
    /* a clean end of stream: the response ends, what is queued is sent */
    bufferevent_enable(evhttp_connection_get_bufferevent(conn), EV_WRITE);
    evhttp_connection_set_closecb(conn, NULL, NULL);
    evhttp_connection_set_timeout(conn, 60);
    evhttp_send_reply_end(v->req);
    viewer_free(v);
}

static const tc_sub_ops_t ops = {packet, queued, end, tc_sub_flush};

static void cors(struct evhttp_request *req)
{
    struct evkeyvalq *h = evhttp_request_get_output_headers(req);

    evhttp_add_header(h, "Access-Control-Allow-Origin", "*");
    evhttp_add_header(h, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    evhttp_add_header(h, "Access-Control-Allow-Headers", "*");
    evhttp_add_header(h, "Access-Control-Expose-Headers", "*");
}

static const char nf[] = "{\"error\":\"no such stream\"}\n";

static void start_viewer(tc_server_t *srv, struct evhttp_request *req, tc_stream_t *st);

/* A request for a stream that a source (pull) is starting: it waits for
 * the first keyframe, the start timeout or the viewer leaving. */
typedef struct flv_pending {
    tc_waiter_t w;
    tc_server_t *srv;
    struct evhttp_request *req;
} flv_pending_t;

static void pending_ready(tc_waiter_t *w, tc_stream_t *st, int err)
{
    flv_pending_t *pd = (flv_pending_t *)w;
    struct evhttp_request *req = pd->req;
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    tc_server_t *srv = pd->srv;

    core_free(pd);
    if (conn != NULL)
        evhttp_connection_set_closecb(conn, NULL, NULL);
    if (conn == NULL) {
        /* the viewer left meanwhile: evhttp left the request to us */
        evhttp_send_reply(req, 499, "Client Closed Request", NULL);
    } else if (st != NULL) {
        start_viewer(srv, req, st);
    } else if (err == -ETIMEDOUT) {
        static const char to[] = "{\"error\":\"stream did not start in time\"}\n";

        cors(req);
        core_http_reply(req, 504, "application/json", to, sizeof(to) - 1);
    } else {
        cors(req);
        core_http_reply(req, err == -ENOENT ? 404 : 503, "application/json", nf, sizeof(nf) - 1);
    }
}

static void pending_closed(struct evhttp_connection *conn, void *arg)
{
    flv_pending_t *pd = arg;
    struct evhttp_request *req = pd->req;

    tc_waiter_cancel(&pd->w);
    core_free(pd);
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_send_reply(req, 499, "Client Closed Request", NULL);
}

void tc_httpflv_cb(struct evhttp_request *req, const char *path, void *arg)
{
    tc_server_t *srv = arg;
    const char *name = path + strlen("/live/");
    size_t nlen = strlen(name);
    char sname[128];
    tc_stream_t *st = NULL;
    flv_pending_t *pd = NULL;
    int err = -ENOENT;

    if (evhttp_request_get_command(req) == EVHTTP_REQ_OPTIONS) {
        cors(req);
        evhttp_send_reply(req, 204, "No Content", NULL);
        return;
    }
    if (nlen > 4 && nlen - 4 < sizeof(sname) && strcmp(name + nlen - 4, ".flv") == 0) {
        snprintf(sname, sizeof(sname), "%.*s", (int)(nlen - 4), name);
        pd = core_calloc(CORE_TAG_HUB, 1, sizeof(*pd));
        if (pd == NULL) {
            evhttp_send_error(req, 503, NULL);
            return;
        }
        pd->w.cb = pending_ready;
        st = tc_hub_lookup(&srv->hub, "live", sname, &pd->w, &err);
    }
    if (err == -EINPROGRESS) {
        pd->srv = srv;
        pd->req = req;
        evhttp_connection_set_closecb(evhttp_request_get_connection(req), pending_closed, pd);
        return;
    }
    core_free(pd);
    if (st == NULL) {
        cors(req);
        core_http_reply(req, 404, "application/json", nf, sizeof(nf) - 1);
        return;
    }
    start_viewer(srv, req, st);
}

static void start_viewer(tc_server_t *srv, struct evhttp_request *req, tc_stream_t *st)
{
    char *host = NULL;
    ev_uint16_t port = 0;
    tc_flv_viewer_t *v;
    uint8_t hdr[FLV_HEADER_LEN];
    const char *te, *ua;
    int audio, video, one = 1;

    v = core_calloc(CORE_TAG_HUB, 1, sizeof(*v));
    if (v == NULL || (v->tmp = evbuffer_new()) == NULL) {
        core_free(v);
        evhttp_send_error(req, 503, NULL);
        return;
    }
    v->srv = srv;
    v->req = req;
    v->conn = evhttp_request_get_connection(req);
    evhttp_connection_get_peer(v->conn, &host, &port);
    snprintf(v->peer, sizeof(v->peer), "%s:%u", host ? host : "?", (unsigned)port);
    snprintf(v->stream, sizeof(v->stream), "%s", st->name);
    ua = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
    v->sub.relay = ua != NULL && strstr(ua, TC_RELAY_MARK) != NULL;
    v->next = srv->flv_viewers;
    if (v->next != NULL)
        v->next->prev = v;
    srv->flv_viewers = v;

    cors(req);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "video/x-flv");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Cache-Control", "no-cache");
    if (evhttp_request_get_command(req) == EVHTTP_REQ_HEAD) {
        evhttp_send_reply(req, 200, "OK", NULL);
        viewer_free(v);
        return;
    }
    /* media is latency-sensitive: small audio tags must not wait for ACKs */
    setsockopt(bufferevent_getfd(evhttp_connection_get_bufferevent(v->conn)), IPPROTO_TCP,
               TCP_NODELAY, &one, sizeof(one));
    /* the stream is endless: only our slow-viewer logic times it out */
    evhttp_connection_set_timeout(v->conn, 24 * 3600);
    evhttp_connection_set_closecb(v->conn, closed_cb, v);
    evhttp_send_reply_start(req, 200, "OK");
    te = evhttp_find_header(evhttp_request_get_output_headers(req), "Transfer-Encoding");
    v->chunked = te != NULL && strcmp(te, "chunked") == 0;
    /* before the first packets the codecs are unknown: announce both */
    audio = st->info.acodec >= 0 || st->packets_in == 0;
    video = st->has_video || st->packets_in == 0;
    flv_header_encode(hdr, audio, video);
    evbuffer_add(v->tmp, hdr, sizeof(hdr));
    evhttp_send_reply_chunk(req, v->tmp);
    /* from here on the body is written by packet() and tc_sub_flush() */
    v->sub.conn.bev = evhttp_connection_get_bufferevent(v->conn);
    v->sub.conn.out = bufferevent_get_output(v->sub.conn.bev);
    v->sub.conn.fd = bufferevent_getfd(v->sub.conn.bev);
    v->sub.conn.form = v->chunked ? TC_FORM_FLV_CHUNKED : TC_FORM_FLV;
    core_log_info("flv", "viewer joined", "peer=%s stream=%s", v->peer, v->stream);
    tc_hub_attach(st, &v->sub, &ops, TC_PROTO_FLV);
}

void tc_httpflv_free_all(tc_server_t *srv)
{
    while (srv->flv_viewers != NULL)
        kill_viewer(srv->flv_viewers);
}
