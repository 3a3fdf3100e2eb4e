/* transcoder/rtmp_session: one RTMP connection, publishing or playing.
 *
 * The socket is a bufferevent; bytes go through proto/rtmp (handshake,
 * chunk reader) and proto/amf0 (commands). A session that sends bad input
 * logs one line and is closed; nothing else is affected. */
#include "transcoder/tc_int.h"

#include "core/arena.h"
#include "core/log.h"
#include "proto/amf0.h"
#include "transcoder/blur.h"
#include "proto/rtmp.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef enum state {
    ST_C0C1,            /* waiting for C0 + C1 */
    ST_C2,              /* waiting for C2 */
    ST_READY,           /* handshake done; commands */
} state_t;

struct tc_rtmp_session {
    tc_rtmp_session_t *next, *prev;
    tc_server_t *srv;
    struct bufferevent *bev;
    struct event *timer;        /* handshake / connect deadline */
    char peer[64];
    state_t state;
    int connected;              /* connect answered */
    int streams;                /* createStream calls answered */
    int closing;                /* flushing a final reply, then close */
    rtmp_reader_t reader;
    core_scope_t *scratch;      /* per-message AMF values, reset each time */
    char app[64];
    char name[128];
    tc_stream_t *pub;           /* publishing this stream */
    tc_sub_t sub;               /* playing: our subscriber record */
    int playing;
    tc_waiter_t play_wait;      /* play of a stream a source is starting */
    uint32_t chunk_size;        /* ours */
    uint32_t peer_window;       /* the peer's ack window, 0: none */
    uint64_t bytes_in, acked;
    size_t held;                /* input bytes left unconsumed last time */
};

#define SESSION_OF(subp) ((tc_rtmp_session_t *)((char *)(subp) - offsetof(tc_rtmp_session_t, sub)))

static void session_free(tc_rtmp_session_t *s);

/* Log one line and close. Always returns -1 so callers can return it. */
static int session_fail(tc_rtmp_session_t *s, const char *why, int err)
{
    core_log_warn("rtmp", "session closed", "peer=%s reason=\"%s\" err=%d app=%s stream=%s", s->peer,
                  why, err, s->app, s->name);
    session_free(s);
    return -1;
}

static void session_free(tc_rtmp_session_t *s)
{
    tc_server_t *srv = s->srv;

    if (s->pub != NULL) {
        core_log_info("rtmp", "unpublish", "peer=%s stream=%s", s->peer, s->pub->name);
        tc_hub_unpublish(s->pub);
        s->pub = NULL;
    }
    if (s->playing && s->sub.stream != NULL)
        tc_hub_detach(&s->sub);
    tc_waiter_cancel(&s->play_wait);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        srv->sessions = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    core_metric_inc(srv->hub.m.sessions, -1);
    if (s->timer != NULL)
        event_free(s->timer);
    if (s->bev != NULL) {
        struct evbuffer *o = bufferevent_get_output(s->bev);

        /* what is still queued will never be sent */
        tc_latency_mute(1);
        evbuffer_drain(o, evbuffer_get_length(o));
        tc_latency_mute(0);
        bufferevent_free(s->bev);
    }
    rtmp_reader_close(&s->reader);
    core_scope_free(&s->scratch);
    core_free(s);
}

/* ---- output ------------------------------------------------------------- */

/* Replies and control messages: libevent writes them when it can. Media
 * for a viewer is flushed by the hub instead (tc_sub_flush). */
static int out(tc_rtmp_session_t *s, const void *p, size_t n)
{
    if (bufferevent_write(s->bev, p, n) != 0)
        return -ENOMEM;
    bufferevent_enable(s->bev, EV_WRITE);
    return 0;
}

/* Send an AMF0 command/data message built in b. */
static int send_msg(tc_rtmp_session_t *s, uint8_t type, uint32_t csid, uint32_t msid,
                    const amf0_buf_t *b)
{
    uint8_t chunked[8192];
    size_t n;

    if (b->err != 0 || rtmp_chunk_encoded_size(csid, 0, b->len, s->chunk_size) > sizeof(chunked))
        return -ENOSPC;
    n = rtmp_chunk_encode(chunked, csid, type, msid, 0, b->p, b->len, s->chunk_size);
    return out(s, chunked, n);
}

static int send_result(tc_rtmp_session_t *s, double txn, int have_num, double num)
{
    uint8_t buf[128];
    amf0_buf_t b;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "_result");
    amf0_put_number(&b, txn);
    amf0_put_null(&b);
    if (have_num)
        amf0_put_number(&b, num);
    else
        amf0_put_undefined(&b);
    return send_msg(s, RTMP_MSG_COMMAND_AMF0, 3, 0, &b);
}

static int send_status(tc_rtmp_session_t *s, const char *level, const char *code,
                       const char *desc)
{
    uint8_t buf[1024];
    amf0_buf_t b;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "onStatus");
    amf0_put_number(&b, 0);
    amf0_put_null(&b);
    amf0_put_object_begin(&b);
    amf0_put_key(&b, "level");
    amf0_put_string(&b, level);
    amf0_put_key(&b, "code");
    amf0_put_string(&b, code);
    amf0_put_key(&b, "description");
    amf0_put_string(&b, desc);
    amf0_put_object_end(&b);
    return send_msg(s, RTMP_MSG_COMMAND_AMF0, 5, 1, &b);
}

/* Reply, then close once the reply is written. */
static void write_drained(struct bufferevent *bev, void *arg)
{
    tc_rtmp_session_t *s = arg;

    if (s->closing && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
        session_free(s);
}

static int close_after_flush(tc_rtmp_session_t *s)
{
    s->closing = 1;
    bufferevent_disable(s->bev, EV_READ);
    bufferevent_enable(s->bev, EV_WRITE);
    if (evbuffer_get_length(bufferevent_get_output(s->bev)) == 0) {
        session_free(s);
        return -1;
    }
    return -1;   /* nothing more is read from this session */
}

static int refuse(tc_rtmp_session_t *s, const char *code, const char *desc)
{
    core_log_warn("rtmp", "refused", "peer=%s app=%s stream=%s code=%s reason=\"%s\"", s->peer,
                  s->app, s->name, code, desc);
    send_status(s, "error", code, desc);
    return close_after_flush(s);
}

/* ---- playing ------------------------------------------------------------ */

static int sub_packet(tc_sub_t *sub, tc_pkt_t *p)
{
    tc_rtmp_session_t *s = SESSION_OF(sub);
    int sent;
    ssize_t n = tc_pkt_send(p, sub, &sent);

    if (n < 0) {
        tc_hub_detach(sub);
        return session_fail(s, "out of memory", (int)n);
    }
    s->srv->hub.out_pending[TC_PROTO_RTMP] += n;
    return sent;
}

static size_t sub_queued(tc_sub_t *sub)
{
    return tc_sub_queued(sub);
}

static void sub_end(tc_sub_t *sub, const char *reason)
{
    tc_rtmp_session_t *s = SESSION_OF(sub);
    uint8_t uc[RTMP_CONTROL_MAX];

    s->playing = 0;
    if (strcmp(reason, "slow") == 0) {
        core_log_warn("rtmp", "viewer too slow, disconnected", "peer=%s stream=%s dropped=%llu",
                      s->peer, s->name, (unsigned long long)sub->dropped);
        session_free(s);
        return;
    }
    core_log_info("rtmp", "play ended", "peer=%s stream=%s", s->peer, s->name);
    out(s, uc, rtmp_encode_user_control(uc, RTMP_UC_STREAM_EOF, 1));
    send_status(s, "status", "NetStream.Play.UnpublishNotify", "stream ended");
    close_after_flush(s);
}

static const tc_sub_ops_t sub_ops = {sub_packet, sub_queued, sub_end, tc_sub_flush};

/* ---- commands ----------------------------------------------------------- */

static int valid_name(const char *n)
{
    size_t len = strlen(n);

    if (len == 0 || len >= 100)
        return 0;
    for (const char *p = n; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

static int cmd_connect(tc_rtmp_session_t *s, double txn, const amf0_value_t *obj)
{
    const char *app = amf0_get_str(obj, "app");
    const char *flashver = amf0_get_str(obj, "flashVer");
    uint8_t ctl[3 * RTMP_CONTROL_MAX], buf[512];
    size_t n = 0;
    amf0_buf_t b;
    char *q;

    if (s->connected)
        return session_fail(s, "connect twice", -EPROTO);
    if (app == NULL)
        return session_fail(s, "connect without app", -EPROTO);
    snprintf(s->app, sizeof(s->app), "%s", app);
    s->sub.relay = flashver != NULL && strstr(flashver, TC_RELAY_MARK) != NULL;
    if ((q = strchr(s->app, '?')) != NULL)
        *q = '\0';
    if ((q = strchr(s->app, '/')) != NULL && q[1] == '\0')
        *q = '\0';
    if (!valid_name(s->app))
        return session_fail(s, "bad app name", -EPROTO);
    n += rtmp_encode_window_ack(ctl + n, 5000000);
    n += rtmp_encode_peer_bw(ctl + n, 5000000, 2);
    n += rtmp_encode_set_chunk_size(ctl + n, s->chunk_size);
    if (out(s, ctl, n) != 0)
        return session_fail(s, "out of memory", -ENOMEM);
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "_result");
    amf0_put_number(&b, txn);
    amf0_put_object_begin(&b);
    amf0_put_key(&b, "fmsVer");
    amf0_put_string(&b, "FMS/3,0,1,123");
    amf0_put_key(&b, "capabilities");
    amf0_put_number(&b, 31);
    amf0_put_object_end(&b);
    amf0_put_object_begin(&b);
    amf0_put_key(&b, "level");
    amf0_put_string(&b, "status");
    amf0_put_key(&b, "code");
    amf0_put_string(&b, "NetConnection.Connect.Success");
    amf0_put_key(&b, "description");
    amf0_put_string(&b, "Connection succeeded.");
    amf0_put_key(&b, "objectEncoding");
    amf0_put_number(&b, 0);
    amf0_put_object_end(&b);
    if (send_msg(s, RTMP_MSG_COMMAND_AMF0, 3, 0, &b) != 0)
        return session_fail(s, "out of memory", -ENOMEM);
    s->connected = 1;
    evtimer_del(s->timer);
    return 0;
}

static int cmd_publish(tc_rtmp_session_t *s, const char *key)
{
    const char *why = NULL;
    char options[256];
    uint8_t uc[RTMP_CONTROL_MAX];
    int err = 0;

    if (s->pub != NULL || s->playing)
        return session_fail(s, "publish on a busy session", -EPROTO);
    if (tc_auth_check(s->srv->conf->publish_secret, key, core_wall_ms() / 1000, s->name,
                      sizeof(s->name), options, sizeof(options), &why) != 0)
        return refuse(s, "NetStream.Publish.Unauthorized", why);
    if (!valid_name(s->name))
        return refuse(s, "NetStream.Publish.BadName", "invalid stream name");
    s->pub = tc_hub_publish(&s->srv->hub, s->app, s->name, options, s, &err);
    if (s->pub == NULL) {
        if (err == -EBUSY)
            return refuse(s, "NetStream.Publish.BadName", "stream already publishing");
        return refuse(s, "NetStream.Publish.Failed", err == -ENOSPC ? "too many streams" : "out of memory");
    }
    core_log_info("rtmp", "publish", "peer=%s stream=%s options=\"%s\"", s->peer, s->pub->name,
                  options);
    out(s, uc, rtmp_encode_user_control(uc, RTMP_UC_STREAM_BEGIN, 1));
    send_status(s, "status", "NetStream.Publish.Start", "publishing");
    return 0;
}

static int play_start(tc_rtmp_session_t *s, tc_stream_t *st);

/* The stream a source (pull) was starting is there, or will not come. */
static void play_ready(tc_waiter_t *w, tc_stream_t *st, int err)
{
    tc_rtmp_session_t *s = (tc_rtmp_session_t *)((char *)w - offsetof(tc_rtmp_session_t, play_wait));

    s->playing = 0;
    if (st == NULL)
        refuse(s, "NetStream.Play.StreamNotFound",
               err == -ETIMEDOUT ? "stream did not start in time" : "no such stream");
    else
        play_start(s, st);
}

static int cmd_play(tc_rtmp_session_t *s, const char *key)
{
    tc_stream_t *st = NULL;
    const char *q = strchr(key, '?');
    int err = -ENOENT;

    if (s->pub != NULL || s->playing)
        return session_fail(s, "play on a busy session", -EPROTO);
    snprintf(s->name, sizeof(s->name), "%.*s", (int)(q ? (size_t)(q - key) : strlen(key)), key);
    s->play_wait.cb = play_ready;
    if (valid_name(s->name))
        st = tc_hub_lookup(&s->srv->hub, s->app, s->name, &s->play_wait, &err);
    if (err == -EINPROGRESS) {
        s->playing = 1;   /* busy: a second play is refused meanwhile */
        return 0;
    }
    if (st == NULL)
        return refuse(s, "NetStream.Play.StreamNotFound", "no such stream");
    return play_start(s, st);
}

static int play_start(tc_rtmp_session_t *s, tc_stream_t *st)
{
    uint8_t uc[RTMP_CONTROL_MAX], buf[128];
    amf0_buf_t b;

    out(s, uc, rtmp_encode_user_control(uc, RTMP_UC_STREAM_BEGIN, 1));
    send_status(s, "status", "NetStream.Play.Reset", "playing and resetting");
    send_status(s, "status", "NetStream.Play.Start", "started playing");
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "|RtmpSampleAccess");
    amf0_put_bool(&b, 1);
    amf0_put_bool(&b, 1);
    send_msg(s, RTMP_MSG_DATA_AMF0, 5, 1, &b);
    core_log_info("rtmp", "play", "peer=%s stream=%s", s->peer, st->name);
    s->playing = 1;
    s->sub.conn.bev = s->bev;
    s->sub.conn.out = bufferevent_get_output(s->bev);
    s->sub.conn.fd = bufferevent_getfd(s->bev);
    s->sub.conn.form = TC_FORM_RTMP;
    s->sub.conn.chunk_size = s->chunk_size;
    return tc_hub_attach(st, &s->sub, &sub_ops, TC_PROTO_RTMP);
}

static int on_command(tc_rtmp_session_t *s, const uint8_t *p, size_t len)
{
    amf0_value_t *v[6] = {0};
    size_t off = 0;
    int n = 0;
    const char *cmd;
    double txn;

    while (off < len && n < 6) {
        ssize_t k = amf0_parse(s->scratch, p + off, len - off, &v[n]);

        if (k < 0)
            return session_fail(s, "invalid AMF0 in command", (int)k);
        off += (size_t)k;
        n++;
    }
    if (n < 2 || v[0]->type != AMF0_STRING || v[1]->type != AMF0_NUMBER)
        return session_fail(s, "malformed command", -EPROTO);
    cmd = v[0]->str;
    txn = v[1]->num;
    core_log_debug("rtmp", "command", "peer=%s cmd=%s", s->peer, cmd);
    if (strcmp(cmd, "connect") == 0)
        return cmd_connect(s, txn, n > 2 ? v[2] : NULL);
    if (!s->connected)
        return session_fail(s, "command before connect", -EPROTO);
    if (strcmp(cmd, "createStream") == 0) {
        if (++s->streams > 8)
            return session_fail(s, "too many createStream", -EPROTO);
        return send_result(s, txn, 1, 1) == 0 ? 0 : session_fail(s, "out of memory", -ENOMEM);
    }
    if (strcmp(cmd, "publish") == 0 || strcmp(cmd, "play") == 0) {
        if (s->streams == 0)
            return session_fail(s, "publish/play before createStream", -EPROTO);
        if (n < 4 || (v[3]->type != AMF0_STRING && v[3]->type != AMF0_LONG_STRING))
            return session_fail(s, "publish/play without a name", -EPROTO);
        return cmd[1] == 'u' ? cmd_publish(s, v[3]->str) : cmd_play(s, v[3]->str);
    }
    if (strcmp(cmd, "releaseStream") == 0 || strcmp(cmd, "FCPublish") == 0 ||
        strcmp(cmd, "FCUnpublish") == 0)
        return send_result(s, txn, 0, 0) == 0 ? 0 : session_fail(s, "out of memory", -ENOMEM);
    if (strcmp(cmd, "getStreamLength") == 0)
        return send_result(s, txn, 1, 0) == 0 ? 0 : session_fail(s, "out of memory", -ENOMEM);
    if (strcmp(cmd, "deleteStream") == 0 || strcmp(cmd, "closeStream") == 0) {
        if (s->pub != NULL) {
            core_log_info("rtmp", "unpublish", "peer=%s stream=%s", s->peer, s->pub->name);
            tc_hub_unpublish(s->pub);
            s->pub = NULL;
        }
        if (s->playing) {
            tc_hub_detach(&s->sub);   /* held packets move to the output */
            bufferevent_enable(s->bev, EV_WRITE);
            tc_waiter_cancel(&s->play_wait);
            s->playing = 0;
        }
        return 0;
    }
    /* FCSubscribe, _checkbw, receiveAudio, ...: nothing to do */
    return 0;
}

static int on_data(tc_rtmp_session_t *s, const uint8_t *p, size_t len, uint64_t now_us)
{
    amf0_value_t *name, *v;
    ssize_t k;
    uint8_t buf[8192];
    amf0_buf_t b;
    size_t off;

    if (s->pub == NULL)
        return 0;
    k = amf0_parse(s->scratch, p, len, &name);
    if (k < 0 || name->type != AMF0_STRING)
        return session_fail(s, "invalid AMF0 in data message", k < 0 ? (int)k : -EPROTO);
    off = (size_t)k;
    if (strcmp(name->str, "@setDataFrame") == 0) {
        k = amf0_parse(s->scratch, p + off, len - off, &name);
        if (k < 0 || name->type != AMF0_STRING)
            return session_fail(s, "invalid @setDataFrame", k < 0 ? (int)k : -EPROTO);
        off += (size_t)k;
    }
    if (strcmp(name->str, "onNotification") == 0) {
        /* blur: a region the app reports; a bad one is logged, not fatal */
        if (tc_blur_notification(s->pub, s->scratch, p + off, len - off) == -EPROTO)
            core_log_info("rtmp", "invalid onNotification ignored", "stream=%s", s->pub->name);
        return 0;
    }
    if (strcmp(name->str, "onMetaData") != 0)
        return 0;
    k = amf0_parse(s->scratch, p + off, len - off, &v);
    if (k < 0)
        return session_fail(s, "invalid onMetaData", (int)k);
    /* viewers get "onMetaData" + the value, without @setDataFrame */
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "onMetaData");
    amf0_put_value(&b, v);
    if (b.err != 0)
        return 0;   /* absurd metadata is dropped, not fatal */
    if (tc_hub_push(s->pub, FLV_TAG_SCRIPT, 0, buf, (uint32_t)b.len, now_us) == -ENOMEM)
        return session_fail(s, "out of memory", -ENOMEM);
    return 0;
}

/* An aggregate message is a run of FLV tags (relays send them); their
 * timestamps are relative to the first one. */
static int on_aggregate(tc_rtmp_session_t *s, const rtmp_msg_t *m, uint64_t now_us)
{
    uint32_t first = 0;
    size_t off = 0;
    int rv;

    while (off < m->len) {
        flv_tag_t t;
        ssize_t k = flv_tag_parse(m->payload + off, m->len - off, m->len, &t);

        if (k < 0)
            return session_fail(s, "malformed aggregate message", -EPROTO);
        if (off == 0)
            first = t.timestamp;
        off += (size_t)k;
        if (t.type == FLV_TAG_SCRIPT) {
            if (on_data(s, t.data, t.len, now_us) != 0)
                return -1;
            continue;
        }
        if (t.len == 0)
            continue;
        rv = tc_hub_push(s->pub, t.type, m->timestamp + (t.timestamp - first), t.data, t.len, now_us);
        if (rv != 0)
            return session_fail(s, rv == -ENOMEM ? "out of memory" : "malformed media message", rv);
    }
    return 0;
}

static int on_message(tc_rtmp_session_t *s, rtmp_msg_t *m, uint64_t now_us)
{
    int rv = 0;

    core_scope_reset(s->scratch);
    switch (m->type) {
    case RTMP_MSG_SET_CHUNK_SIZE:
    case RTMP_MSG_ABORT:
    case RTMP_MSG_ACK:
    case RTMP_MSG_PEER_BW:
        break;
    case RTMP_MSG_WINDOW_ACK:
        if (m->len >= 4)
            s->peer_window = rtmp_get_be32(m->payload);
        break;
    case RTMP_MSG_USER_CONTROL:
        if (m->len >= 6 && m->payload[0] == 0 && m->payload[1] == RTMP_UC_PING_REQUEST) {
            uint8_t uc[RTMP_CONTROL_MAX];

            out(s, uc, rtmp_encode_user_control(uc, RTMP_UC_PING_RESPONSE,
                                                rtmp_get_be32(m->payload + 2)));
        }
        break;
    case RTMP_MSG_COMMAND_AMF3:
        if (m->len < 1)
            return session_fail(s, "empty AMF3 command", -EPROTO);
        rv = on_command(s, m->payload + 1, m->len - 1);
        break;
    case RTMP_MSG_COMMAND_AMF0:
        rv = on_command(s, m->payload, m->len);
        break;
    case RTMP_MSG_DATA_AMF0:
        rv = on_data(s, m->payload, m->len, now_us);
        break;
    case RTMP_MSG_AUDIO:
    case RTMP_MSG_VIDEO:
        if (s->pub == NULL)
            break;   /* media before publish (or after unpublish): ignored */
        if (m->len == 0)
            break;
        rv = tc_hub_push(s->pub, m->type, m->timestamp, m->payload, m->len, now_us);
        if (rv == -ENOMEM)
            return session_fail(s, "out of memory", rv);
        if (rv != 0)
            return session_fail(s, "malformed media message", rv);
        break;
    case RTMP_MSG_AGGREGATE:
        if (s->pub != NULL)
            rv = on_aggregate(s, m, now_us);
        break;
    default:
        break;
    }
    return rv;
}

/* ---- input -------------------------------------------------------------- */

static int do_handshake(tc_rtmp_session_t *s, struct evbuffer *in)
{
    if (s->state == ST_C0C1) {
        uint8_t rnd[RTMP_HS_SIZE], reply[1 + 2 * RTMP_HS_SIZE];
        uint8_t *c0c1;
        int rv;

        /* C0 alone is enough to refuse a wrong version early */
        c0c1 = evbuffer_pullup(in, 1);
        if (c0c1 != NULL && c0c1[0] != RTMP_VERSION)
            return session_fail(s, "bad handshake version", -EPROTO);
        if (evbuffer_get_length(in) < 1 + RTMP_HS_SIZE)
            return 1;
        c0c1 = evbuffer_pullup(in, 1 + RTMP_HS_SIZE);
        if (c0c1 == NULL)
            return session_fail(s, "out of memory", -ENOMEM);
        if (RAND_bytes(rnd, sizeof(rnd)) != 1)
            memset(rnd, 0x5a, sizeof(rnd));
        rv = rtmp_handshake_respond(c0c1, reply, rnd, (uint32_t)core_mono_ms());
        if (rv < 0)
            return session_fail(s, "bad handshake version", rv);
        evbuffer_drain(in, 1 + RTMP_HS_SIZE);
        if (out(s, reply, sizeof(reply)) != 0)
            return session_fail(s, "out of memory", -ENOMEM);
        s->state = ST_C2;
    }
    if (s->state == ST_C2) {
        if (evbuffer_get_length(in) < RTMP_HS_SIZE)
            return 1;
        evbuffer_drain(in, RTMP_HS_SIZE);   /* C2 is never validated */
        s->state = ST_READY;
    }
    return 0;
}

static void ack_if_due(tc_rtmp_session_t *s)
{
    if (s->peer_window > 0 && s->bytes_in - s->acked >= s->peer_window) {
        uint8_t a[RTMP_CONTROL_MAX];

        s->acked = s->bytes_in;
        out(s, a, rtmp_encode_ack(a, (uint32_t)s->bytes_in));
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    tc_rtmp_session_t *s = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t total = evbuffer_get_length(in);
    uint64_t now_us = core_mono_us();

    /* everything read is consumed below, except a partial header */
    s->bytes_in += total - s->held;
    core_metric_inc(s->srv->rtmp_bytes_in, (int64_t)(total - s->held));
    if (s->state != ST_READY) {
        int rv = do_handshake(s, in);

        if (rv != 0) {
            if (rv > 0)
                s->held = evbuffer_get_length(in);
            return;   /* need more, or the session is gone */
        }
    }
    while (evbuffer_get_length(in) > 0) {
        struct evbuffer_iovec vec;
        rtmp_msg_t m;
        int done = 0;
        ssize_t n;

        if (evbuffer_peek(in, -1, NULL, &vec, 1) < 1)
            break;
        n = rtmp_reader_parse(&s->reader, vec.iov_base, vec.iov_len, &m, &done);
        if (n == -EAGAIN && vec.iov_len < evbuffer_get_length(in)) {
            /* a header split across buffer segments: make it contiguous */
            size_t want = evbuffer_get_length(in) < 32 ? evbuffer_get_length(in) : 32;
            uint8_t *p = evbuffer_pullup(in, (ssize_t)want);

            if (p == NULL) {
                session_fail(s, "out of memory", -ENOMEM);
                return;
            }
            n = rtmp_reader_parse(&s->reader, p, want, &m, &done);
        }
        if (n == -EAGAIN)
            break;
        if (n < 0) {
            session_fail(s, n == -EMSGSIZE ? "message over rtmp-max-message-size"
                                           : "malformed chunk stream", (int)n);
            return;
        }
        evbuffer_drain(in, (size_t)n);
        if (done) {
            int rv = on_message(s, &m, now_us);

            core_free(m.payload);
            if (rv != 0)
                return;   /* the session is gone or closing */
        }
    }
    s->held = evbuffer_get_length(in);
    if (s->pub != NULL)
        tc_hub_flush(s->pub);   /* one write per viewer for this whole read */
    ack_if_due(s);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    tc_rtmp_session_t *s = arg;

    if (what & BEV_EVENT_EOF) {
        core_log_info("rtmp", "session closed", "peer=%s reason=eof app=%s stream=%s", s->peer,
                      s->app, s->name);
        session_free(s);
    } else if (what & BEV_EVENT_ERROR) {
        core_log_info("rtmp", "session closed", "peer=%s reason=\"socket error\" app=%s stream=%s",
                      s->peer, s->app, s->name);
        session_free(s);
    }
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_rtmp_session_t *s = arg;

    session_fail(s, "handshake or connect timed out", -ETIMEDOUT);
}

int tc_rtmp_session_new(tc_server_t *srv, int fd, const char *peer)
{
    const tc_conf_t *conf = srv->conf;
    tc_rtmp_session_t *s;
    struct timeval tv;
    int n = 0;

    for (tc_rtmp_session_t *x = srv->sessions; x != NULL; x = x->next)
        n++;
    if (n >= conf->max_sessions) {
        core_log_warn("rtmp", "session refused", "peer=%s reason=\"max-sessions reached\"", peer);
        close(fd);
        return -ENOSPC;
    }
    s = core_calloc(CORE_TAG_RTMP_CONN, 1, sizeof(*s));
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->srv = srv;
    snprintf(s->peer, sizeof(s->peer), "%s", peer);
    s->chunk_size = (uint32_t)conf->rtmp_chunk_size;
    rtmp_reader_init(&s->reader, (uint32_t)conf->rtmp_max_message, CORE_TAG_RTMP_CONN);
    s->scratch = core_scope_new(CORE_TAG_RTMP_CONN, 4096);
    s->bev = bufferevent_socket_new(srv->base, fd, BEV_OPT_CLOSE_ON_FREE);
    s->timer = evtimer_new(srv->base, timeout_cb, s);
    s->next = srv->sessions;
    if (srv->sessions != NULL)
        srv->sessions->prev = s;
    srv->sessions = s;
    core_metric_inc(srv->hub.m.sessions, 1);
    if (s->scratch == NULL || s->bev == NULL || s->timer == NULL) {
        if (s->bev == NULL)
            close(fd);
        session_free(s);
        return -ENOMEM;
    }
    bufferevent_setcb(s->bev, read_cb, write_drained, event_cb, s);
    bufferevent_enable(s->bev, EV_READ | EV_WRITE);
    tv.tv_sec = conf->handshake_timeout_ms / 1000;
    tv.tv_usec = (conf->handshake_timeout_ms % 1000) * 1000;
    evtimer_add(s->timer, &tv);
    return 0;
}

void tc_rtmp_session_free_all(tc_server_t *srv)
{
    while (srv->sessions != NULL)
        session_free(srv->sessions);
}
