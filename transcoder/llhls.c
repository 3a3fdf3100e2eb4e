/* transcoder/llhls: LL-HLS state per stream, blocking requests, viewer
 * sessions and the HTTP handlers. */
#include "transcoder/llhls.h"

#include "core/arena.h"
#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "proto/hls.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#define NAME_MAX_LEN 128
#define PLAYLIST_VERSION 9
/* Requests one stream may hold at once; more are answered 503 at once. */
#define MAX_WAITERS 100000
/* Sessions one stream counts; more are served but not counted. */
#define MAX_SESSIONS 200000
#define SESSION_BUCKETS 4096
/* A plain playlist request is answered at once while the newest part is
 * younger than a tenth of the part target, else when the next part exists. */
/* Bytes one write to a viewer's socket may carry. */
#define WRITE_MAX (256u << 10)
#define FRESH_US(s) ((uint64_t)(s)->h->conf->part_ms * 100)

static tc_llhls_conf_t conf_storage;

static const core_conf_def_t defs_tmpl[] = {
    {"llhls-part-ms", CORE_CONF_INT, "200", "LL-HLS part target duration in ms", NULL, 100, 1000, NULL, 0, NULL, NULL},
    {"llhls-segment-ms", CORE_CONF_INT, "2000", "LL-HLS segment target in ms (segments start on key frames, so a longer GOP makes longer segments)", NULL, 500, 30000, NULL, 0, NULL, NULL},
    {"llhls-window-segments", CORE_CONF_INT, "12", "LL-HLS segments kept per stream; older ones are freed", NULL, 3, 1000, NULL, 0, NULL, NULL},
    {"llhls-session-idle-ms", CORE_CONF_INT, "15000", "an LL-HLS viewer session without a playlist request for this long ends", NULL, 1000, 600000, NULL, 0, NULL, NULL},
};
static core_conf_def_t defs[sizeof(defs_tmpl) / sizeof(defs_tmpl[0])];

int tc_llhls_conf_register(core_conf_t *c)
{
    memcpy(defs, defs_tmpl, sizeof(defs));
    defs[0].ptr = &conf_storage.part_ms;
    defs[1].ptr = &conf_storage.segment_ms;
    defs[2].ptr = &conf_storage.window_segments;
    defs[3].ptr = &conf_storage.session_idle_ms;
    return core_conf_add(c, defs, sizeof(defs) / sizeof(defs[0]));
}

const tc_llhls_conf_t *tc_llhls_conf(void)
{
    return &conf_storage;
}

enum { W_PLAYLIST, W_PART };

typedef struct waiter {
    struct waiter *prev, *next;
    tc_llhls_stream_t *s;
    struct evhttp_request *req;
    struct evhttp_connection *conn;
    struct event *timer;
    int kind;
    uint64_t msn;
    uint32_t part;
    hls_query_t q;
    int first;          /* a plain playlist request waiting for the first part */
    int fresh;          /* a plain playlist request waiting for the next part */
    uint64_t since_us;
} waiter_t;

typedef struct session {
    struct session *next;
    uint64_t last_ms;
    uint64_t reported_ms;  /* last JOIN/TOUCH handed to the session callback */
    char sid[HLS_SID_MAX + 1];
} session_t;

struct tc_llhls_stream {
    tc_llhls_stream_t *prev, *next;
    tc_llhls_t *h;
    char name[NAME_MAX_LEN + 1];
    tc_cmaf_t *cmaf;
    int failed;
    uint64_t next_msn;     /* first msn of the next packager */
    uint64_t disc_msn;     /* segment that follows a restart (0: none) */
    waiter_t *waiters;
    size_t nwaiters;
    session_t **sessions;  /* SESSION_BUCKETS chains */
    size_t nsessions;
    uint64_t part_us;      /* when the newest part was produced */
    /* codec configuration seen in FLV bodies (tc_llhls_on_flv) */
    uint8_t *vcfg, *acfg;
    size_t vcfg_len, acfg_len;
    int vcodec, rate, channels;
    int cfg_dirty;
};

struct tc_llhls {
    struct event_base *base;
    const tc_llhls_conf_t *conf;
    tc_llhls_stream_t *streams;
    struct event *sweep;
    core_scope_t *scratch;  /* per request, reset after each */
    core_metric_t *m_sessions, *m_requests, *m_release, *m_timeouts;
    tc_llhls_session_cb session_cb;
    void *session_arg;
    uint64_t session_touch_ms;
};

/* ---- small helpers ---------------------------------------------------- */

static int name_ok(const char *p, size_t n)
{
    if (n == 0 || n > NAME_MAX_LEN || (n == 1 && p[0] == '.') ||
        (n == 2 && p[0] == '.' && p[1] == '.'))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-'))
            return 0;
    }
    return 1;
}

static tc_llhls_stream_t *find_stream(const tc_llhls_t *h, const char *name, size_t n)
{
    for (tc_llhls_stream_t *s = h->streams; s != NULL; s = s->next)
        if (strlen(s->name) == n && memcmp(s->name, name, n) == 0)
            return s;
    return NULL;
}

static unsigned target_duration(const tc_llhls_stream_t *s)
{
    uint32_t max = s->cmaf != NULL ? tc_cmaf_max_segment_ms(s->cmaf) : 0;
    unsigned td = (unsigned)((s->h->conf->segment_ms + 999) / 1000);
    /* every EXTINF rounded to the nearest second must fit */
    unsigned need = (max + 500) / 1000;

    return need > td ? need : td;
}

static void add_cors(struct evkeyvalq *hd)
{
    evhttp_add_header(hd, "Access-Control-Allow-Origin", "*");
    evhttp_add_header(hd, "Access-Control-Expose-Headers", "Content-Length, Date, Age");
}

static void reply_status(struct evhttp_request *req, int code)
{
    static const char *const text[] = {"bad request\n", "not found\n", "unavailable\n"};
    const char *t = code == 400 ? text[0] : code == 404 ? text[1] : text[2];
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

    add_cors(hd);
    evhttp_add_header(hd, "Cache-Control", "no-store");
    core_http_reply(req, code, "text/plain", t, strlen(t));
}

/* ---- sessions -------------------------------------------------------- */

static uint64_t fnv(const char *p, size_t n, uint64_t h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void session_touch(tc_llhls_stream_t *s, const char *sid)
{
    size_t b = (size_t)(fnv(sid, strlen(sid), 14695981039346656037ull) % SESSION_BUCKETS);
    session_t *x;

    if (s->sessions == NULL) {
        s->sessions = core_calloc(CORE_TAG_HLS, SESSION_BUCKETS, sizeof(*s->sessions));
        if (s->sessions == NULL)
            return;
    }
    for (x = s->sessions[b]; x != NULL; x = x->next) {
        if (strcmp(x->sid, sid) == 0) {
            x->last_ms = core_mono_ms();
            if (s->h->session_cb != NULL && x->last_ms - x->reported_ms >= s->h->session_touch_ms) {
                x->reported_ms = x->last_ms;
                s->h->session_cb(s->h->session_arg, s->name, x->sid, 1);
            }
            return;
        }
    }
    if (s->nsessions >= MAX_SESSIONS)
        return;
    x = core_malloc(CORE_TAG_HLS, sizeof(*x));
    if (x == NULL)
        return;
    snprintf(x->sid, sizeof(x->sid), "%s", sid);
    x->last_ms = x->reported_ms = core_mono_ms();
    x->next = s->sessions[b];
    s->sessions[b] = x;
    s->nsessions++;
    core_metric_inc(s->h->m_sessions, 1);
    if (s->h->session_cb != NULL)
        s->h->session_cb(s->h->session_arg, s->name, x->sid, 0);
}

static void sessions_sweep(tc_llhls_stream_t *s, uint64_t now, uint64_t idle)
{
    if (s->sessions == NULL)
        return;
    for (size_t b = 0; b < SESSION_BUCKETS; b++) {
        session_t **pp = &s->sessions[b];

        while (*pp != NULL) {
            session_t *x = *pp;

            if (now - x->last_ms >= idle) {
                *pp = x->next;
                if (s->h->session_cb != NULL)
                    s->h->session_cb(s->h->session_arg, s->name, x->sid, 2);
                core_free(x);
                s->nsessions--;
                core_metric_inc(s->h->m_sessions, -1);
            } else {
                /* a session lasts until it idles out, requests or not: its
                 * presence in the cache is kept alive meanwhile */
                if (s->h->session_cb != NULL && now - x->reported_ms >= s->h->session_touch_ms) {
                    x->reported_ms = now;
                    s->h->session_cb(s->h->session_arg, s->name, x->sid, 1);
                }
                pp = &x->next;
            }
        }
    }
}

static void sessions_free(tc_llhls_stream_t *s)
{
    sessions_sweep(s, UINT64_MAX, 0);
    core_free(s->sessions);
    s->sessions = NULL;
}

void tc_llhls_set_session_cb(tc_llhls_t *h, tc_llhls_session_cb cb, void *arg, uint64_t touch_ms)
{
    h->session_cb = cb;
    h->session_arg = arg;
    h->session_touch_ms = touch_ms;
    if (touch_ms > 0 && touch_ms < 2000) {
        /* the sweep also refreshes sessions: run it often enough that two
         * refreshes are never more than 1.5 x touch_ms apart */
        struct timeval tv = {0, (suseconds_t)(touch_ms / 2) * 1000};

        event_add(h->sweep, &tv);
    }
}

/* The session of a request without a sid: its address and User-Agent. */
static void anon_sid(struct evhttp_request *req, char *out, size_t cap)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    const char *ua = evhttp_find_header(evhttp_request_get_input_headers(req), "User-Agent");
    char *addr = NULL;
    uint16_t port = 0;
    uint64_t h = 14695981039346656037ull;

    if (conn != NULL)
        evhttp_connection_get_peer(conn, &addr, &port);
    if (addr != NULL)
        h = fnv(addr, strlen(addr), h);
    if (ua != NULL)
        h = fnv(ua, strlen(ua), h);
    snprintf(out, cap, "a%016" PRIx64, h);
}

static void sweep_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_llhls_t *h = arg;
    uint64_t now = core_mono_ms();

    for (tc_llhls_stream_t *s = h->streams; s != NULL; s = s->next)
        sessions_sweep(s, now, (uint64_t)h->conf->session_idle_ms);
}

/* ---- playlists ------------------------------------------------------- */

/* Newest part: its segment and index. 0 when there is none. */
static int newest_part(const tc_llhls_stream_t *s, uint64_t *msn, uint32_t *part)
{
    size_t n = s->cmaf != NULL ? tc_cmaf_nsegs(s->cmaf) : 0;

    for (size_t i = n; i > 0; i--) {
        const tc_cmaf_seg_t *g = tc_cmaf_seg_at(s->cmaf, i - 1);

        if (g->nparts > 0) {
            *msn = g->msn;
            *part = (uint32_t)(g->nparts - 1);
            return 1;
        }
    }
    return 0;
}

/* Nonzero once a complete segment exists: a playlist of parts alone is
 * empty to players that do not know LL-HLS (ffmpeg, older devices), so a
 * plain request waits for one. */
static int has_segment(const tc_llhls_stream_t *s)
{
    return s->cmaf != NULL && tc_cmaf_nsegs(s->cmaf) > 0 && tc_cmaf_seg_at(s->cmaf, 0)->complete;
}

static int playlist_ready(const tc_llhls_stream_t *s, uint64_t msn, uint32_t part)
{
    uint64_t nm;
    uint32_t np;

    if (!newest_part(s, &nm, &np))
        return 0;
    return msn < nm || (msn == nm && part <= np);
}

/* "sMSN.m4s", or "pMSN.PART.m4s" when part >= 0, in the scratch scope. */
static char *uri(core_scope_t *sc, uint64_t msn, int64_t part)
{
    char tmp[64];
    int n = part < 0 ? snprintf(tmp, sizeof(tmp), "s%" PRIu64 ".m4s", msn)
                     : snprintf(tmp, sizeof(tmp), "p%" PRIu64 ".%" PRId64 ".m4s", msn, part);

    return core_scope_strndup(sc, tmp, (size_t)n);
}

static hls_part_t *parts_of(core_scope_t *sc, const tc_cmaf_seg_t *g)
{
    hls_part_t *p = core_scope_alloc(sc, (g->nparts ? g->nparts : 1) * sizeof(*p));

    if (p == NULL)
        return NULL;
    for (size_t j = 0; j < g->nparts; j++) {
        p[j].duration_ms = g->parts[j].duration_ms;
        p[j].independent = g->parts[j].independent;
        p[j].uri = uri(sc, g->msn, (int64_t)j);
        if (p[j].uri == NULL)
            return NULL;
    }
    return p;
}

/* Render the media playlist of s into an evbuffer. Returns 0 or -ENOMEM. */
static int render_media(tc_llhls_stream_t *s, const hls_query_t *q, struct evbuffer *out)
{
    core_scope_t *sc = s->h->scratch;
    size_t n = tc_cmaf_nsegs(s->cmaf);
    const tc_cmaf_seg_t *tail = tc_cmaf_seg_at(s->cmaf, n - 1);
    size_t ncomplete = tail->complete ? n : n - 1;
    hls_segment_t *segs = core_scope_calloc(sc, (ncomplete ? ncomplete : 1) * sizeof(*segs));
    unsigned td = target_duration(s);
    uint64_t recent = 0;
    hls_media_t m;
    char *buf;
    long len;

    if (segs == NULL)
        return -ENOMEM;
    memset(&m, 0, sizeof(m));
    m.version = PLAYLIST_VERSION;
    m.target_duration_s = td;
    m.part_target_ms = (uint32_t)s->h->conf->part_ms;
    m.part_hold_back_ms = 3 * m.part_target_ms;
    m.can_skip_until_ms = 6 * td * 1000;
    m.can_block_reload = 1;
    m.map_uri = "init.mp4";
    m.tail_pdt_ms = tail->pdt_ms;
    m.tail_msn = tail->msn;
    /* parts are listed for the segments of the last 3 target durations */
    for (size_t i = ncomplete; i > 0; i--) {
        const tc_cmaf_seg_t *g = tc_cmaf_seg_at(s->cmaf, i - 1);

        if (recent >= 3000ull * td)
            break;
        recent += g->duration_ms;
        m.parts_segments++;
    }
    for (size_t i = 0; i < ncomplete; i++) {
        const tc_cmaf_seg_t *g = tc_cmaf_seg_at(s->cmaf, i);

        segs[i].msn = g->msn;
        segs[i].duration_ms = g->duration_ms;
        segs[i].pdt_ms = g->pdt_ms;
        segs[i].discontinuity = g->msn == s->disc_msn;
        segs[i].uri = uri(sc, g->msn, -1);
        if (segs[i].uri == NULL)
            return -ENOMEM;
        if (i + m.parts_segments >= ncomplete) {
            segs[i].parts = parts_of(sc, g);
            segs[i].nparts = g->nparts;
            if (segs[i].parts == NULL)
                return -ENOMEM;
        }
    }
    m.segs = segs;
    m.nsegs = ncomplete;
    if (!tail->complete) {
        m.tail = parts_of(sc, tail);
        m.ntail = tail->nparts;
        if (m.tail == NULL)
            return -ENOMEM;
        m.preload_uri = uri(sc, tail->msn, (int64_t)tail->nparts);
    } else {
        m.tail_msn = tail->msn + 1;
        m.preload_uri = uri(sc, tail->msn + 1, 0);
        m.endlist = 0;
    }
    if (m.preload_uri == NULL)
        return -ENOMEM;
    if (q->skip != HLS_SKIP_NO) {
        m.skip = hls_media_skippable(&m);
        m.skip_v2 = q->skip == HLS_SKIP_V2;
        m.can_skip_dateranges = 0;
    }
    len = hls_media_render(&m, NULL, 0);
    if (len < 0)
        return -EINVAL;
    buf = core_scope_alloc(sc, (size_t)len + 1);
    if (buf == NULL)
        return -ENOMEM;
    hls_media_render(&m, buf, (size_t)len + 1);
    return evbuffer_add(out, buf, (size_t)len) == 0 ? 0 : -ENOMEM;
}

static void send_media(tc_llhls_stream_t *s, struct evhttp_request *req, const hls_query_t *q)
{
    struct evbuffer *b = evbuffer_new();
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    int rv;

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    rv = render_media(s, q, b);
    core_scope_reset(s->h->scratch);
    if (rv != 0) {
        evbuffer_free(b);
        evhttp_send_error(req, 500, NULL);
        return;
    }
    add_cors(hd);
    evhttp_add_header(hd, "Content-Type", "application/vnd.apple.mpegurl");
    /* a blocking response is a snapshot a CDN may keep briefly; a plain
     * playlist changes with every part */
    evhttp_add_header(hd, "Cache-Control", q->has_msn ? "public, max-age=1" : "no-store");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void send_master(tc_llhls_stream_t *s, struct evhttp_request *req)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);
    tc_cmaf_info_t info;
    hls_variant_t v;
    uint8_t rnd[8];
    char sid[HLS_SID_MAX + 1], vuri[64], body[1024];
    long n;

    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = core_mono_us() ^ (uint64_t)(uintptr_t)req;

        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(sid + 2 * i, 3, "%02x", rnd[i]);
    session_touch(s, sid);
    snprintf(vuri, sizeof(vuri), "index.m3u8?sid=%s", sid);
    tc_cmaf_info(s->cmaf, &info);
    memset(&v, 0, sizeof(v));
    /* before the first segment is complete the peak is not known yet */
    v.bandwidth = info.peak_bps ? info.peak_bps : 2500000;
    v.average_bandwidth = info.avg_bps;
    v.codecs = info.codecs[0] ? info.codecs : NULL;
    v.width = (unsigned)info.width;
    v.height = (unsigned)info.height;
    v.frame_rate_milli = info.frame_rate_milli;
    v.uri = vuri;
    n = hls_multivariant_render(&v, 1, body, sizeof(body));
    if (n < 0 || (size_t)n >= sizeof(body)) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    add_cors(hd);
    evhttp_add_header(hd, "Cache-Control", "no-store");
    core_http_reply(req, 200, "application/vnd.apple.mpegurl", body, (size_t)n);
}

/* ---- media bytes ------------------------------------------------------ */

static void unref_cb(const void *data, size_t len, void *arg)
{
    tc_cmaf_buf_t *b = arg;

    tc_cmaf_buf_unref(&b);
}

static int add_buf(struct evbuffer *out, tc_cmaf_buf_t *b)
{
    tc_cmaf_buf_ref(b);
    if (evbuffer_add_reference(out, b->data, b->len, unref_cb, b) != 0) {
        tc_cmaf_buf_unref(&b);
        return -ENOMEM;
    }
    return 0;
}

static void media_headers(struct evhttp_request *req)
{
    struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

    add_cors(hd);
    evhttp_add_header(hd, "Content-Type", "video/mp4");
    evhttp_add_header(hd, "Cache-Control", "public, max-age=31536000, immutable");
}

static void send_bufs(struct evhttp_request *req, tc_cmaf_buf_t *const *bufs, size_t n,
                      int chunked)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (add_buf(b, bufs[i]) != 0) {
            evbuffer_free(b);
            evhttp_send_error(req, 500, NULL);
            return;
        }
    }
    media_headers(req);
    if (chunked) {
        evhttp_send_reply_start(req, 200, "OK");
        evhttp_send_reply_chunk(req, b);
        evhttp_send_reply_end(req);
    } else {
        evhttp_send_reply(req, 200, "OK", b);
    }
    evbuffer_free(b);
}

static void send_part(struct evhttp_request *req, const tc_cmaf_part_t *p, int chunked)
{
    tc_cmaf_buf_t *b = p->buf;

    send_bufs(req, &b, 1, chunked);
}

static void send_segment(tc_llhls_stream_t *s, struct evhttp_request *req, const tc_cmaf_seg_t *g)
{
    tc_cmaf_buf_t **v = core_scope_alloc(s->h->scratch, (g->nparts + 1) * sizeof(*v));

    if (v == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    for (size_t i = 0; i < g->nparts; i++)
        v[i] = g->parts[i].buf;
    send_bufs(req, v, g->nparts, 0);
    core_scope_reset(s->h->scratch);
}

/* ---- held requests ---------------------------------------------------- */

static void waiter_unlink(waiter_t *w)
{
    tc_llhls_stream_t *s = w->s;

    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        s->waiters = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    s->nwaiters--;
    if (w->conn != NULL)
        evhttp_connection_set_closecb(w->conn, NULL, NULL);
    event_free(w->timer);
    core_free(w);
}

/* The client went away while its request was held. */
static void waiter_closed(struct evhttp_connection *conn, void *arg)
{
    waiter_t *w = arg;
    struct evhttp_request *req = w->req;

    w->conn = NULL;
    waiter_unlink(w);
    /* libevent hands a request that was still with its user back to the
     * user when the connection fails; otherwise it frees it itself */
    if (evhttp_request_get_connection(req) == NULL)
        evhttp_request_free(req);
}

static void waiter_timeout(evutil_socket_t fd, short what, void *arg)
{
    waiter_t *w = arg;
    tc_llhls_stream_t *s = w->s;
    struct evhttp_request *req = w->req;
    hls_query_t q = w->q;

    if (w->fresh && s->cmaf != NULL && has_segment(s)) {
        /* no new part in time (the publisher paused): the playlist as it
         * is; a plain request is never refused for want of a new part */
        waiter_unlink(w);
        send_media(s, req, &q);
        return;
    }
    core_metric_inc(s->h->m_timeouts, 1);
    waiter_unlink(w);
    reply_status(req, 503);
}

/* Answer w if what it waits for exists (or never will). Returns 1 when
 * answered (w is freed then). */
static int waiter_try(waiter_t *w)
{
    tc_llhls_stream_t *s = w->s;
    struct evhttp_request *req = w->req;

    if (s->cmaf == NULL)
        return 0;
    if (w->kind == W_PLAYLIST) {
        hls_query_t q = w->q;

        if (w->first ? !has_segment(s) : !playlist_ready(s, w->msn, w->part))
            return 0;
        core_metric_observe_us(s->h->m_release, (int64_t)(core_mono_us() - s->part_us));
        waiter_unlink(w);
        send_media(s, req, &q);
        return 1;
    } else {
        const tc_cmaf_seg_t *g = tc_cmaf_seg(s->cmaf, w->msn);

        if (g != NULL && g->nparts > w->part) {
            tc_cmaf_part_t p = g->parts[w->part];

            core_metric_observe_us(s->h->m_release, (int64_t)(core_mono_us() - s->part_us));
            waiter_unlink(w);
            send_part(req, &p, 1);
            return 1;
        }
        /* its segment ended without it, or slid out of the window */
        if ((g != NULL && g->complete) ||
            (g == NULL && w->msn < tc_cmaf_tail_msn(s->cmaf))) {
            waiter_unlink(w);
            reply_status(req, 404);
            return 1;
        }
        return 0;
    }
}

static void wake(tc_llhls_stream_t *s)
{
    waiter_t *w = s->waiters;

    while (w != NULL) {
        waiter_t *next = w->next;

        waiter_try(w);
        w = next;
    }
}

static void on_part(void *arg)
{
    tc_llhls_stream_t *s = arg;

    s->part_us = core_mono_us();
    wake(s);
}

static void hold(tc_llhls_stream_t *s, struct evhttp_request *req, int kind, uint64_t msn,
                 uint32_t part, const hls_query_t *q, int first, int fresh)
{
    waiter_t *w;
    struct timeval tv;
    /* a plain request waits for one part at most (two part targets, for
     * jitter); a blocking one as long as the spec allows */
    uint64_t ms = fresh ? 2ull * (uint64_t)s->h->conf->part_ms : 3000ull * target_duration(s);

    if (s->nwaiters >= MAX_WAITERS)
        goto refuse;
    w = core_calloc(CORE_TAG_HLS, 1, sizeof(*w));
    if (w == NULL)
        goto refuse;
    w->timer = evtimer_new(s->h->base, waiter_timeout, w);
    if (w->timer == NULL) {
        core_free(w);
        goto refuse;
    }
    w->s = s;
    w->req = req;
    w->kind = kind;
    w->msn = msn;
    w->part = part;
    w->q = *q;
    w->first = first;
    w->fresh = fresh;
    w->since_us = core_mono_us();
    w->conn = evhttp_request_get_connection(req);
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
    evtimer_add(w->timer, &tv);
    if (w->conn != NULL)
        evhttp_connection_set_closecb(w->conn, waiter_closed, w);
    w->next = s->waiters;
    if (s->waiters != NULL)
        s->waiters->prev = w;
    s->waiters = w;
    s->nwaiters++;
    return;

refuse:
    /* a plain request gets the playlist as it is rather than an error */
    if (fresh)
        send_media(s, req, q);
    else if (s->nwaiters >= MAX_WAITERS)
        reply_status(req, 503);
    else
        evhttp_send_error(req, 500, NULL);
}

static void release_all(tc_llhls_stream_t *s, int code)
{
    while (s->waiters != NULL) {
        waiter_t *w = s->waiters;
        struct evhttp_request *req = w->req;

        waiter_unlink(w);
        reply_status(req, code);
    }
}

/* ---- HTTP ----------------------------------------------------------- */

typedef enum res {
    R_NONE,
    R_INDEX,
    R_MASTER,
    R_INIT,
    R_SEGMENT,
    R_PART,
} res_t;

/* 1..max decimal digits at *p (advanced past them). 0 or -EINVAL. */
static int digits(const char **p, int max, unsigned long long *out)
{
    unsigned long long v = 0;
    int n = 0;

    while (**p >= '0' && **p <= '9') {
        if (++n > max)
            return -EINVAL;
        v = v * 10 + (unsigned long long)(**p - '0');
        (*p)++;
    }
    *out = v;
    return n > 0 ? 0 : -EINVAL;
}

/* Split "/live/NAME/REST"; returns the resource or R_NONE. */
static res_t parse_path(const char *path, const char **name, size_t *nlen, uint64_t *msn,
                        uint32_t *part)
{
    const char *p, *slash, *rest;
    unsigned long long a, b;

    if (strncmp(path, "/live/", 6) != 0)
        return R_NONE;
    p = path + 6;
    slash = strchr(p, '/');
    if (slash == NULL || !name_ok(p, (size_t)(slash - p)))
        return R_NONE;
    *name = p;
    *nlen = (size_t)(slash - p);
    rest = slash + 1;
    if (strcmp(rest, "index.m3u8") == 0)
        return R_INDEX;
    if (strcmp(rest, "master.m3u8") == 0)
        return R_MASTER;
    if (strcmp(rest, "init.mp4") == 0)
        return R_INIT;
    /* sMSN.m4s and pMSN.PART.m4s: plain decimal digits only */
    if (rest[0] != 's' && rest[0] != 'p')
        return R_NONE;
    p = rest + 1;
    if (digits(&p, 15, &a) != 0)
        return R_NONE;
    if (rest[0] == 's' && strcmp(p, ".m4s") == 0) {
        *msn = a;
        return R_SEGMENT;
    }
    if (rest[0] == 'p' && *p == '.') {
        p++;
        if (digits(&p, 5, &b) == 0 && strcmp(p, ".m4s") == 0) {
            *msn = a;
            *part = (uint32_t)b;
            return R_PART;
        }
    }
    return R_NONE;
}

int tc_llhls_match(const char *path)
{
    const char *name;
    size_t n;
    uint64_t a;
    uint32_t b;

    return parse_path(path, &name, &n, &a, &b) != R_NONE;
}

static void handle_index(tc_llhls_stream_t *s, struct evhttp_request *req)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    hls_query_t q;
    char sid[HLS_SID_MAX + 1];
    uint64_t nm = 0;
    uint32_t np = 0;
    int have;

    if (hls_query_parse(query, query ? strlen(query) : 0, &q) != 0) {
        reply_status(req, 400);
        return;
    }
    if (q.sid[0] != '\0') {
        session_touch(s, q.sid);
    } else {
        anon_sid(req, sid, sizeof(sid));
        session_touch(s, sid);
    }
    if (s->cmaf == NULL) {
        /* published, codecs not known yet: wait like for the first part */
        hold(s, req, W_PLAYLIST, 0, 0, &q, 1, 0);
        return;
    }
    have = newest_part(s, &nm, &np);
    if (!q.has_msn) {
        if (!has_segment(s))
            hold(s, req, W_PLAYLIST, 0, 0, &q, 1, 0);
        else if (have && core_mono_us() - s->part_us >= FRESH_US(s))
            /* answered when the next part exists, so that the newest
             * part it lists is as old as the answer: players place their
             * start point by the time they received the playlist, and a
             * playlist one part old starts them one part further back */
            hold(s, req, W_PLAYLIST, nm, np + 1, &q, 0, 1);
        else
            send_media(s, req, &q);
        return;
    }
    /* _HLS_msn alone means part 0 of that segment */
    if (have && q.msn > tc_cmaf_tail_msn(s->cmaf) + 1) {
        reply_status(req, 400);
        return;
    }
    if (playlist_ready(s, q.msn, q.part))
        send_media(s, req, &q);
    else
        hold(s, req, W_PLAYLIST, q.msn, q.part, &q, 0, 0);
}

static void handle_part(tc_llhls_stream_t *s, struct evhttp_request *req, uint64_t msn,
                        uint32_t part)
{
    const tc_cmaf_seg_t *g = s->cmaf != NULL ? tc_cmaf_seg(s->cmaf, msn) : NULL;
    uint64_t tail = s->cmaf != NULL ? tc_cmaf_tail_msn(s->cmaf) : 0;
    hls_query_t none;

    if (g != NULL && g->nparts > part) {
        send_part(req, &g->parts[part], 0);
        return;
    }
    memset(&none, 0, sizeof(none));
    /* the hinted part (or the one after it) is held until it exists */
    if (s->cmaf != NULL && ((g != NULL && !g->complete && part <= g->nparts + 1) ||
                            (g == NULL && msn == tail + 1 && part <= 1))) {
        hold(s, req, W_PART, msn, part, &none, 0, 0);
        return;
    }
    reply_status(req, 404);
}

/* Nagle off on the connection: a part is written in several pieces (and
 * a held part in chunks), and with Nagle on, each piece after the first
 * waits for the client's delayed ACK (40 ms on Linux) on a keep-alive
 * connection. Writes of up to WRITE_MAX bytes at once (libevent's default
 * is 16 KiB) send a part in one system call. */
static void conn_tune(struct evhttp_request *req)
{
    struct evhttp_connection *conn = evhttp_request_get_connection(req);
    struct bufferevent *bev = conn != NULL ? evhttp_connection_get_bufferevent(conn) : NULL;
    evutil_socket_t fd = bev != NULL ? bufferevent_getfd(bev) : -1;
    int one = 1;

    if (fd < 0)
        return;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (bufferevent_get_max_single_write(bev) < WRITE_MAX)
        bufferevent_set_max_single_write(bev, WRITE_MAX);
}

void tc_llhls_http(struct evhttp_request *req, const char *path, void *arg)
{
    tc_llhls_t *h = arg;
    const char *name = NULL;
    size_t nlen = 0;
    uint64_t msn = 0;
    uint32_t part = 0;
    res_t r = parse_path(path, &name, &nlen, &msn, &part);
    tc_llhls_stream_t *s;
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    core_metric_inc(h->m_requests, 1);
    conn_tune(req);
    if (cmd == EVHTTP_REQ_OPTIONS) {
        struct evkeyvalq *hd = evhttp_request_get_output_headers(req);

        add_cors(hd);
        evhttp_add_header(hd, "Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
        evhttp_add_header(hd, "Access-Control-Allow-Headers", "*");
        evhttp_add_header(hd, "Access-Control-Max-Age", "86400");
        evhttp_send_reply(req, 204, "No Content", NULL);
        return;
    }
    if (cmd != EVHTTP_REQ_GET && cmd != EVHTTP_REQ_HEAD) {
        evhttp_send_error(req, 405, NULL);
        return;
    }
    if (r == R_NONE || (s = find_stream(h, name, nlen)) == NULL) {
        reply_status(req, 404);
        return;
    }
    switch (r) {
    case R_INDEX:
        handle_index(s, req);
        break;
    case R_MASTER:
        if (s->cmaf == NULL)
            reply_status(req, 404);
        else
            send_master(s, req);
        break;
    case R_INIT:
        if (s->cmaf == NULL) {
            reply_status(req, 404);
        } else {
            tc_cmaf_buf_t *b = tc_cmaf_init_seg(s->cmaf);

            send_bufs(req, &b, 1, 0);
        }
        break;
    case R_SEGMENT: {
        const tc_cmaf_seg_t *g = s->cmaf != NULL ? tc_cmaf_seg(s->cmaf, msn) : NULL;

        if (g == NULL || !g->complete)
            reply_status(req, 404);
        else
            send_segment(s, req, g);
        break;
    }
    case R_PART:
        handle_part(s, req, msn, part);
        break;
    default:
        reply_status(req, 404);
    }
}

/* ---- streams ---------------------------------------------------------- */

int tc_llhls_stream_open(tc_llhls_t *h, const char *name, tc_llhls_stream_t **out)
{
    size_t n = strlen(name);
    tc_llhls_stream_t *s;

    if (!name_ok(name, n))
        return -EINVAL;
    if (find_stream(h, name, n) != NULL)
        return -EEXIST;
    s = core_calloc(CORE_TAG_HLS, 1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->h = h;
    memcpy(s->name, name, n + 1);
    s->next_msn = 1; /* hls.js stalls when the newest segment has sequence 0 */
    s->next = h->streams;
    if (h->streams != NULL)
        h->streams->prev = s;
    h->streams = s;
    *out = s;
    return 0;
}

static void stop_packaging(tc_llhls_stream_t *s)
{
    if (s->cmaf == NULL)
        return;
    tc_cmaf_finish(s->cmaf);
    s->next_msn = tc_cmaf_tail_msn(s->cmaf);
    tc_cmaf_free(&s->cmaf);
}

void tc_llhls_stream_close(tc_llhls_stream_t **sp)
{
    tc_llhls_stream_t *s = *sp;

    if (s == NULL)
        return;
    release_all(s, 404);
    if (s->prev != NULL)
        s->prev->next = s->next;
    else
        s->h->streams = s->next;
    if (s->next != NULL)
        s->next->prev = s->prev;
    tc_cmaf_free(&s->cmaf);
    sessions_free(s);
    core_free(s->vcfg);
    core_free(s->acfg);
    core_free(s);
    *sp = NULL;
}

int tc_llhls_on_config(tc_llhls_stream_t *s, const tc_cmaf_track_t *video,
                       const tc_cmaf_track_t *audio)
{
    const tc_llhls_conf_t *c = s->h->conf;
    tc_cmaf_conf_t cc = {(uint32_t)c->part_ms, (uint32_t)c->segment_ms,
                         (uint32_t)c->window_segments};
    int restarted = s->cmaf != NULL && tc_cmaf_nsegs(s->cmaf) > 0 &&
                    tc_cmaf_seg_at(s->cmaf, 0)->nparts > 0;
    int rv;

    if (cc.segment_ms < cc.part_ms)
        cc.segment_ms = cc.part_ms;
    stop_packaging(s);
    s->failed = 0;
    if (video == NULL && audio == NULL)
        return 0;
    rv = tc_cmaf_new(&s->cmaf, &cc, video, audio, s->next_msn, on_part, s);
    if (rv != 0) {
        s->failed = 1;
        core_log_warn("llhls", "no LL-HLS output for this stream", "stream=%s err=%d", s->name,
                      rv);
        return rv;
    }
    s->disc_msn = restarted ? s->next_msn : 0;
    return 0;
}

int tc_llhls_on_packet(tc_llhls_stream_t *s, const tc_cmaf_packet_t *pkt)
{
    int rv;

    if (s->cmaf == NULL)
        return s->failed ? -EIO : -EINVAL;
    rv = tc_cmaf_write(s->cmaf, pkt, (int64_t)core_wall_ms());
    if (rv == -EIO) {
        core_log_warn("llhls", "packaging failed; LL-HLS output stops", "stream=%s", s->name);
        tc_cmaf_free(&s->cmaf);
        s->failed = 1;
        release_all(s, 503);
    }
    return rv;
}

/* ---- FLV / RTMP message bodies ------------------------------------------- */

static int keep_cfg(uint8_t **dst, size_t *dlen, const uint8_t *p, size_t n)
{
    uint8_t *c;

    if (*dst != NULL && *dlen == n && memcmp(*dst, p, n) == 0)
        return 0; /* a repeated header changes nothing */
    c = (uint8_t *)core_memdup(CORE_TAG_HLS, p, n);
    if (c == NULL)
        return -ENOMEM;
    core_free(*dst);
    *dst = c;
    *dlen = n;
    return 1;
}

/* Sample rate and channels of an AudioSpecificConfig. */
static int asc_parse(const uint8_t *p, size_t n, int *rate, int *channels)
{
    static const int rates[13] = {96000, 88200, 64000, 48000, 44100, 32000, 24000,
                                  22050, 16000, 12000, 11025, 8000, 7350};
    unsigned idx;

    if (n < 2 || (p[0] >> 3) == 0 || (p[0] >> 3) == 31)
        return -EINVAL;
    idx = ((p[0] & 7u) << 1) | (p[1] >> 7);
    if (idx == 15) {
        if (n < 5)
            return -EINVAL;
        *rate = (int)(((p[1] & 0x7fu) << 17) | ((unsigned)p[2] << 9) | ((unsigned)p[3] << 1) |
                      (p[4] >> 7));
        *channels = (p[4] >> 3) & 0xf;
    } else {
        if (idx > 12)
            return -EINVAL;
        *rate = rates[idx];
        *channels = (p[1] >> 3) & 0xf;
    }
    if (*channels == 0)
        *channels = 2; /* given by a program config element: assume stereo */
    return *rate > 0 ? 0 : -EINVAL;
}

static int32_t si24(const uint8_t *p)
{
    int32_t v = (int32_t)(((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2]);

    return (v & 0x800000) ? v - 0x1000000 : v;
}

int tc_llhls_on_flv(tc_llhls_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *p, size_t len)
{
    tc_cmaf_packet_t pkt = {0};
    int rv;

    if (type == 9) {
        int key, codec, ptype;
        size_t off;
        int32_t cts = 0;

        if (len < 5)
            return -EINVAL;
        key = ((p[0] >> 4) & 7) == 1;
        if (p[0] & 0x80) { /* Enhanced RTMP */
            uint32_t fourcc = ((uint32_t)p[1] << 24) | ((uint32_t)p[2] << 16) |
                              ((uint32_t)p[3] << 8) | p[4];

            if (fourcc == 0x61766331u) /* avc1 */
                codec = AV_CODEC_ID_H264;
            else if (fourcc == 0x68766331u) /* hvc1 */
                codec = AV_CODEC_ID_HEVC;
            else
                return -EINVAL;
            ptype = p[0] & 0x0f;
            if (ptype == 1) {
                if (len < 8)
                    return -EINVAL;
                cts = si24(p + 5);
                off = 8;
            } else if (ptype == 0 || ptype == 3) {
                off = 5;
                ptype = ptype == 0 ? 0 : 1;
            } else {
                return 0; /* sequence end, metadata: nothing to package */
            }
        } else {
            if ((p[0] & 0x0f) != 7)
                return -EINVAL; /* only H.264 among the legacy codecs */
            codec = AV_CODEC_ID_H264;
            ptype = p[1];
            cts = si24(p + 2);
            off = 5;
            if (ptype > 1)
                return 0;
        }
        if (ptype == 0) {
            if (len - off == 0)
                return -EINVAL;
            rv = keep_cfg(&s->vcfg, &s->vcfg_len, p + off, len - off);
            if (rv > 0) {
                s->vcodec = codec;
                s->cfg_dirty = 1;
            }
            return rv < 0 ? rv : 0;
        }
        if (len - off == 0)
            return 0;
        pkt = (tc_cmaf_packet_t){TC_CMAF_VIDEO, ts, (int64_t)ts + cts, key, p + off, len - off};
    } else if (type == 8) {
        if (len < 2 || (p[0] >> 4) != 10)
            return -EINVAL; /* AAC only */
        if (p[1] == 0) {
            int r, ch;

            if (asc_parse(p + 2, len - 2, &r, &ch) != 0)
                return -EINVAL;
            rv = keep_cfg(&s->acfg, &s->acfg_len, p + 2, len - 2);
            if (rv > 0) {
                s->rate = r;
                s->channels = ch;
                s->cfg_dirty = 1;
            }
            return rv < 0 ? rv : 0;
        }
        if (len == 2)
            return 0;
        pkt = (tc_cmaf_packet_t){TC_CMAF_AUDIO, ts, ts, 1, p + 2, len - 2};
    } else {
        return 0;
    }
    if (s->cfg_dirty) {
        tc_cmaf_track_t v = {s->vcodec, s->vcfg, s->vcfg_len, 0, 0, 0, 0};
        tc_cmaf_track_t a = {AV_CODEC_ID_AAC, s->acfg, s->acfg_len, 0, 0, s->rate, s->channels};

        s->cfg_dirty = 0;
        rv = tc_llhls_on_config(s, s->vcfg != NULL ? &v : NULL, s->acfg != NULL ? &a : NULL);
        if (rv != 0)
            return rv;
    }
    if (s->cmaf == NULL)
        return 0; /* no configuration for this track yet, or unusable */
    return tc_llhls_on_packet(s, &pkt);
}

size_t tc_llhls_viewers(const tc_llhls_t *h, const char *name)
{
    tc_llhls_stream_t *s = find_stream(h, name, strlen(name));

    return s != NULL ? s->nsessions : 0;
}

int tc_llhls_new(tc_llhls_t **out, struct event_base *base, const tc_llhls_conf_t *conf)
{
    static const double bounds[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1};
    core_metrics_t *m = core_metrics_global();
    tc_llhls_t *h = core_calloc(CORE_TAG_HLS, 1, sizeof(*h));
    struct timeval sec = {1, 0};

    if (h == NULL)
        return -ENOMEM;
    h->base = base;
    h->conf = conf;
    h->scratch = core_scope_new(CORE_TAG_HLS, 0);
    h->sweep = event_new(base, -1, EV_PERSIST, sweep_cb, h);
    if (h->scratch == NULL || h->sweep == NULL)
        goto err;
    h->m_sessions = core_metrics_gauge(m, "oboro_llhls_sessions", "LL-HLS viewer sessions");
    h->m_requests = core_metrics_counter(m, "oboro_llhls_requests_total", "LL-HLS HTTP requests");
    h->m_timeouts = core_metrics_counter(m, "oboro_llhls_block_timeouts_total",
                                         "blocking LL-HLS requests answered 503");
    h->m_release = core_metrics_histogram(
        m, "oboro_llhls_block_release_seconds",
        "time from a part's creation to the answer of a request held for it", bounds,
        sizeof(bounds) / sizeof(bounds[0]));
    if (h->m_sessions == NULL || h->m_requests == NULL || h->m_timeouts == NULL ||
        h->m_release == NULL)
        goto err;
    event_add(h->sweep, &sec);
    *out = h;
    return 0;

err:
    if (h->sweep != NULL)
        event_free(h->sweep);
    core_scope_free(&h->scratch);
    core_free(h);
    return -ENOMEM;
}

void tc_llhls_free(tc_llhls_t **hp)
{
    tc_llhls_t *h = *hp;

    if (h == NULL)
        return;
    while (h->streams != NULL) {
        tc_llhls_stream_t *s = h->streams;

        tc_llhls_stream_close(&s);
    }
    event_free(h->sweep);
    core_scope_free(&h->scratch);
    core_free(h);
    *hp = NULL;
}
