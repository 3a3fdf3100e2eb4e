/* transcoder/pull_rtmp: a native RTMP play client on the loop thread, for
 * rtmp:// origins given by an IP address. It needs no worker thread: the
 * socket is a bufferevent, bytes go through proto/rtmp (client handshake,
 * chunk reader) and proto/amf0 (connect, createStream, play), and the
 * audio and video messages it receives are FLV tag bodies already, handed
 * to the pull as they are (timestamps normalised). Other origins go
 * through libavformat on the workers. */
#include "transcoder/pull_int.h"
#include "transcoder/tc_int.h"

#include "core/arena.h"
#include "core/loop.h"
#include "proto/amf0.h"
#include "proto/flv.h"
#include "proto/rtmp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int tc_pull_rtmp_url_parse(const char *url, tc_pull_rtmp_url_t *out)
{
    const char *p, *host, *slash, *colon, *stream;
    size_t hl;

    memset(out, 0, sizeof(*out));
    if (strncmp(url, "rtmp://", 7) != 0)
        return -EINVAL;
    host = url + 7;
    slash = strchr(host, '/');
    if (slash == NULL)
        return -EINVAL;
    colon = memchr(host, ':', (size_t)(slash - host));
    hl = (size_t)((colon ? colon : slash) - host);
    if (hl == 0 || hl >= sizeof(out->host))
        return -EINVAL;
    memcpy(out->host, host, hl);
    out->port = 1935;
    if (colon != NULL) {
        char *end;
        long port = strtol(colon + 1, &end, 10);

        if (end != slash || port <= 0 || port > 65535)
            return -EINVAL;
        out->port = (int)port;
    }
    /* app is the first path element; the stream is the rest */
    p = slash + 1;
    stream = strchr(p, '/');
    if (stream == NULL || stream == p || stream[1] == '\0')
        return -EINVAL;
    if ((size_t)(stream - p) >= sizeof(out->app) || strlen(stream + 1) >= sizeof(out->stream))
        return -EINVAL;
    memcpy(out->app, p, (size_t)(stream - p));
    snprintf(out->stream, sizeof(out->stream), "%s", stream + 1);
    {
        struct in_addr a4;
        struct in6_addr a6;

        out->numeric = inet_pton(AF_INET, out->host, &a4) == 1 ||
                       inet_pton(AF_INET6, out->host, &a6) == 1;
    }
    return 0;
}

typedef enum rc_state { RC_CONNECTING, RC_HANDSHAKE, RC_CONNECT, RC_CREATE, RC_PLAY, RC_PLAYING } rc_state_t;

struct tc_pull_rtmp {
    const tc_pull_rtmp_ops_t *ops;
    void *arg;
    tc_pull_rtmp_url_t u;
    struct bufferevent *bev;
    struct event *timer;
    int64_t timeout_ms;
    rc_state_t state;
    rtmp_reader_t reader;
    core_scope_t *scratch;
    uint8_t c0c1[1 + RTMP_HS_SIZE];
    uint32_t msid;
    uint32_t window;           /* the server's ack window */
    uint64_t bytes_in, acked;
    tc_pull_ts_t ts;
    int opened;
    int in_cb, dead;
};

static void rc_free(tc_pull_rtmp_t *c)
{
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    if (c->timer != NULL)
        event_free(c->timer);
    rtmp_reader_close(&c->reader);
    core_scope_free(&c->scratch);
    core_free(c);
}

/* The connection is over: tell the pull once, then free (now, or when the
 * callback we are in returns). */
static void rc_end(tc_pull_rtmp_t *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = 1;
    c->in_cb++;
    c->ops->done(c->arg, c->opened, why);
    c->in_cb--;
}

static void arm(tc_pull_rtmp_t *c)
{
    struct timeval tv = {c->timeout_ms / 1000, (c->timeout_ms % 1000) * 1000};

    evtimer_add(c->timer, &tv);
}

static int send_cmd(tc_pull_rtmp_t *c, uint32_t csid, uint32_t msid, const amf0_buf_t *b)
{
    uint8_t out[2048];
    size_t n;

    if (b->err != 0 || rtmp_chunk_encoded_size(csid, 0, b->len, 4096) > sizeof(out))
        return -ENOSPC;
    n = rtmp_chunk_encode(out, csid, RTMP_MSG_COMMAND_AMF0, msid, 0, b->p, b->len, 4096);
    return bufferevent_write(c->bev, out, n) == 0 ? 0 : -ENOMEM;
}

static int send_connect(tc_pull_rtmp_t *c)
{
    uint8_t buf[1024], ctl[RTMP_CONTROL_MAX];
    char tcurl[sizeof(c->u.host) + sizeof(c->u.app) + 32];
    amf0_buf_t b;

    snprintf(tcurl, sizeof(tcurl), "rtmp://%s:%d/%s", c->u.host, c->u.port, c->u.app);
    if (bufferevent_write(c->bev, ctl, rtmp_encode_set_chunk_size(ctl, 4096)) != 0)
        return -ENOMEM;
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "connect");
    amf0_put_number(&b, 1);
    amf0_put_object_begin(&b);
    amf0_put_key(&b, "app");
    amf0_put_string(&b, c->u.app);
    amf0_put_key(&b, "flashVer");
    amf0_put_string(&b, TC_RELAY_FLASHVER); /* not a viewer (viewers.c) */
    amf0_put_key(&b, "tcUrl");
    amf0_put_string(&b, tcurl);
    amf0_put_key(&b, "fpad");
    amf0_put_bool(&b, 0);
    amf0_put_key(&b, "capabilities");
    amf0_put_number(&b, 15);
    amf0_put_key(&b, "audioCodecs");
    amf0_put_number(&b, 4071);
    amf0_put_key(&b, "videoCodecs");
    amf0_put_number(&b, 252);
    amf0_put_key(&b, "videoFunction");
    amf0_put_number(&b, 1);
    amf0_put_object_end(&b);
    return send_cmd(c, 3, 0, &b);
}

static int send_create_stream(tc_pull_rtmp_t *c)
{
    uint8_t buf[64];
    amf0_buf_t b;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "createStream");
    amf0_put_number(&b, 2);
    amf0_put_null(&b);
    return send_cmd(c, 3, 0, &b);
}

static int send_play(tc_pull_rtmp_t *c)
{
    uint8_t buf[1024];
    amf0_buf_t b;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "play");
    amf0_put_number(&b, 0);
    amf0_put_null(&b);
    amf0_put_string(&b, c->u.stream);
    amf0_put_number(&b, -1000);   /* live only */
    return send_cmd(c, 8, c->msid, &b);
}

static void on_command(tc_pull_rtmp_t *c, const uint8_t *p, size_t len)
{
    amf0_value_t *v[4] = {0};
    size_t off = 0;
    int n = 0;

    while (off < len && n < 4) {
        ssize_t k = amf0_parse(c->scratch, p + off, len - off, &v[n]);

        if (k < 0) {
            rc_end(c, "origin sent invalid AMF0");
            return;
        }
        off += (size_t)k;
        n++;
    }
    if (n < 2 || v[0]->type != AMF0_STRING || v[1]->type != AMF0_NUMBER)
        return;
    if (strcmp(v[0]->str, "_result") == 0 && c->state == RC_CONNECT && v[1]->num == 1) {
        c->state = RC_CREATE;
        if (send_create_stream(c) != 0)
            rc_end(c, "out of memory");
    } else if (strcmp(v[0]->str, "_result") == 0 && c->state == RC_CREATE && v[1]->num == 2) {
        c->msid = n >= 4 && v[3]->type == AMF0_NUMBER ? (uint32_t)v[3]->num : 1;
        c->state = RC_PLAY;
        if (send_play(c) != 0)
            rc_end(c, "out of memory");
    } else if (strcmp(v[0]->str, "_error") == 0) {
        rc_end(c, c->state == RC_CONNECT ? "origin refused connect" : "origin refused the request");
    } else if (strcmp(v[0]->str, "onStatus") == 0 && n >= 4) {
        const char *code = amf0_get_str(v[3], "code");

        if (code == NULL)
            return;
        if (strcmp(code, "NetStream.Play.Start") == 0 && !c->opened) {
            c->state = RC_PLAYING;
            c->opened = 1;
            c->in_cb++;
            c->ops->opened(c->arg);
            c->in_cb--;
        } else if (strcmp(code, "NetStream.Play.StreamNotFound") == 0) {
            rc_end(c, "origin has no such stream");
        } else if (strstr(code, ".Failed") != NULL || strstr(code, "Rejected") != NULL) {
            rc_end(c, "origin refused play");
        } else if (strcmp(code, "NetStream.Play.UnpublishNotify") == 0 ||
                   strcmp(code, "NetStream.Play.Stop") == 0) {
            rc_end(c, "origin ended the stream");
        }
    }
}

static void on_data(tc_pull_rtmp_t *c, const uint8_t *p, size_t len, uint64_t now_us)
{
    amf0_value_t *name, *v;
    uint8_t buf[8192];
    amf0_buf_t b;
    ssize_t k = amf0_parse(c->scratch, p, len, &name);
    size_t off;

    if (k < 0 || name->type != AMF0_STRING)
        return;
    off = (size_t)k;
    if (strcmp(name->str, "@setDataFrame") == 0) {
        k = amf0_parse(c->scratch, p + off, len - off, &name);
        if (k < 0 || name->type != AMF0_STRING)
            return;
        off += (size_t)k;
    }
    if (strcmp(name->str, "onMetaData") != 0)
        return;
    k = amf0_parse(c->scratch, p + off, len - off, &v);
    if (k < 0)
        return;
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "onMetaData");
    amf0_put_value(&b, v);
    if (b.err != 0)
        return;
    c->in_cb++;
    c->ops->tag(c->arg, FLV_TAG_SCRIPT, 0, buf, (uint32_t)b.len, now_us);
    c->in_cb--;
}

static void on_message(tc_pull_rtmp_t *c, rtmp_msg_t *m, uint64_t now_us)
{
    core_scope_reset(c->scratch);
    switch (m->type) {
    case RTMP_MSG_WINDOW_ACK:
        if (m->len >= 4)
            c->window = rtmp_get_be32(m->payload);
        break;
    case RTMP_MSG_USER_CONTROL:
        if (m->len >= 6 && m->payload[0] == 0 && m->payload[1] == RTMP_UC_PING_REQUEST) {
            uint8_t uc[RTMP_CONTROL_MAX];

            bufferevent_write(c->bev, uc, rtmp_encode_user_control(uc, RTMP_UC_PING_RESPONSE,
                                                                   rtmp_get_be32(m->payload + 2)));
        } else if (m->len >= 2 && m->payload[1] == RTMP_UC_STREAM_EOF && c->opened) {
            rc_end(c, "origin ended the stream");
        }
        break;
    case RTMP_MSG_COMMAND_AMF0:
        on_command(c, m->payload, m->len);
        break;
    case RTMP_MSG_DATA_AMF0:
        if (c->opened)
            on_data(c, m->payload, m->len, now_us);
        break;
    case RTMP_MSG_AUDIO:
    case RTMP_MSG_VIDEO:
        if (!c->opened || m->len == 0)
            break;
        c->in_cb++;
        c->ops->tag(c->arg, m->type,
                    (uint32_t)tc_pull_ts_map(&c->ts, m->type == RTMP_MSG_AUDIO, m->timestamp),
                    m->payload, m->len, now_us);
        c->in_cb--;
        break;
    default:
        break;
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    tc_pull_rtmp_t *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    uint64_t now_us = core_mono_us();

    c->bytes_in += evbuffer_get_length(in);
    if (c->state == RC_HANDSHAKE) {
        uint8_t *s;

        if (evbuffer_get_length(in) < 1 + 2 * RTMP_HS_SIZE)
            return;
        s = evbuffer_pullup(in, 1 + 2 * RTMP_HS_SIZE);
        if (s == NULL || s[0] != RTMP_VERSION) {
            rc_end(c, "origin is not an RTMP server");
            goto out;
        }
        /* C2 echoes S1 */
        if (bufferevent_write(c->bev, s + 1, RTMP_HS_SIZE) != 0 || send_connect(c) != 0) {
            rc_end(c, "out of memory");
            goto out;
        }
        evbuffer_drain(in, 1 + 2 * RTMP_HS_SIZE);
        c->state = RC_CONNECT;
    }
    while (!c->dead && evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec vec;
        rtmp_msg_t m;
        int done = 0;
        ssize_t n;

        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
            break;
        n = rtmp_reader_parse(&c->reader, vec.iov_base, vec.iov_len, &m, &done);
        if (n == -EAGAIN && vec.iov_len < evbuffer_get_length(in)) {
            size_t want = evbuffer_get_length(in) < 32 ? evbuffer_get_length(in) : 32;
            uint8_t *p = evbuffer_pullup(in, (ssize_t)want);

            if (p == NULL) {
                rc_end(c, "out of memory");
                break;
            }
            n = rtmp_reader_parse(&c->reader, p, want, &m, &done);
        }
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            rc_end(c, n == -EMSGSIZE ? "origin sent an oversized message"
                                     : "origin sent a malformed chunk stream");
            break;
        }
        evbuffer_drain(in, (size_t)n);
        if (done) {
            on_message(c, &m, now_us);
            core_free(m.payload);
        }
    }
    c->bytes_in -= evbuffer_get_length(in);
    if (!c->dead) {
        c->in_cb++;
        c->ops->batch_end(c->arg);
        c->in_cb--;
        if (c->window > 0 && c->bytes_in - c->acked >= c->window / 2) {
            uint8_t ack[RTMP_CONTROL_MAX];

            c->acked = c->bytes_in;
            bufferevent_write(c->bev, ack, rtmp_encode_ack(ack, (uint32_t)c->bytes_in));
        }
        arm(c);
    }
out:
    if (c->dead && c->in_cb == 0)
        rc_free(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    tc_pull_rtmp_t *c = arg;

    if (what & BEV_EVENT_CONNECTED) {
        uint8_t rnd[RTMP_HS_SIZE];

        for (size_t i = 0; i < sizeof(rnd); i++)
            rnd[i] = (uint8_t)rand();
        rtmp_handshake_client(c->c0c1, rnd, 0);
        c->state = RC_HANDSHAKE;
        if (bufferevent_write(c->bev, c->c0c1, sizeof(c->c0c1)) != 0)
            rc_end(c, "out of memory");
        else
            bufferevent_enable(c->bev, EV_READ);
    } else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        rc_end(c, c->state == RC_CONNECTING ? "cannot connect to origin"
                  : c->opened ? "origin closed the connection" : "origin closed the connection before play");
    }
    if (c->dead && c->in_cb == 0)
        rc_free(c);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_pull_rtmp_t *c = arg;

    rc_end(c, c->opened ? "origin sent nothing (timeout)" : "origin did not answer (timeout)");
    if (c->in_cb == 0)
        rc_free(c);
}

tc_pull_rtmp_t *tc_pull_rtmp_start(struct event_base *base, const tc_pull_rtmp_url_t *u,
                                   int64_t timeout_ms, const tc_pull_rtmp_ops_t *ops, void *arg)
{
    tc_pull_rtmp_t *c = core_calloc(CORE_TAG_INGEST, 1, sizeof(*c));
    struct sockaddr_storage ss;
    int sslen = sizeof(ss), one = 1;
    char hostport[sizeof(u->host) + 16];

    if (c == NULL)
        return NULL;
    c->ops = ops;
    c->arg = arg;
    c->u = *u;
    c->timeout_ms = timeout_ms;
    rtmp_reader_init(&c->reader, 16u << 20, CORE_TAG_INGEST);
    c->scratch = core_scope_new(CORE_TAG_INGEST, 0);
    c->timer = evtimer_new(base, timeout_cb, c);
    c->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    snprintf(hostport, sizeof(hostport), strchr(u->host, ':') ? "[%s]:%d" : "%s:%d", u->host, u->port);
    if (c->scratch == NULL || c->timer == NULL || c->bev == NULL ||
        evutil_parse_sockaddr_port(hostport, (struct sockaddr *)&ss, &sslen) != 0) {
        rc_free(c);
        return NULL;
    }
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&ss, sslen) != 0) {
        rc_free(c);
        return NULL;
    }
    setsockopt(bufferevent_getfd(c->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    arm(c);
    return c;
}

void tc_pull_rtmp_stop(tc_pull_rtmp_t **cp)
{
    tc_pull_rtmp_t *c = *cp;

    if (c == NULL)
        return;
    *cp = NULL;
    c->dead = 1;   /* no callback any more */
    if (c->in_cb == 0)
        rc_free(c);
}
