/* transcoder internals shared by hub.c, rtmp_session.c, httpflv.c, api.c
 * and server.c. Nothing outside transcoder/ includes this. */
#ifndef TC_TC_INT_H
#define TC_TC_INT_H

#include "core/metrics.h"
#include "proto/flv.h"
#include "transcoder/tc.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct event;
struct evbuffer;
struct bufferevent;

/* ---- packets ------------------------------------------------------------ */

/* One immutable media packet, reference counted, shared by every viewer.
 * flv points at the complete FLV tag (header, payload, PreviousTagSize);
 * the RTMP payload is the same bytes at flv + FLV_TAG_HEADER_LEN. Around
 * the tag sit an HTTP/1.1 chunk header and CRLF, so chunked viewers share
 * one buffer too. The chunked RTMP form is built on first use and then
 * shared. */
typedef struct tc_pkt {
    int refs;
    uint8_t type;              /* FLV_TAG_AUDIO / VIDEO / SCRIPT */
    unsigned key : 1;          /* video keyframe (or audio in audio-only streams) */
    unsigned config : 1;       /* sequence header or metadata */
    uint32_t ts;               /* ms on the stream's output timeline */
    uint32_t len;              /* payload bytes */
    uint64_t arrival_us;       /* when its last byte arrived */
    uint8_t *rtmp;             /* chunked for RTMP play, or NULL */
    size_t rtmp_len;
    uint8_t *flv;              /* the FLV tag, inside buf */
    uint8_t chunk_hdr;         /* length of the "%x\r\n" before flv */
    uint8_t buf[];
} tc_pkt_t;

typedef enum tc_form {
    TC_FORM_FLV,               /* the FLV tag */
    TC_FORM_FLV_CHUNKED,       /* the FLV tag as one HTTP/1.1 chunk */
    TC_FORM_RTMP,              /* RTMP chunks */
} tc_form_t;

/* New packet holding a copy of payload. NULL on -ENOMEM. */
tc_pkt_t *tc_pkt_new(uint8_t type, uint32_t ts, const uint8_t *payload, uint32_t len);
tc_pkt_t *tc_pkt_ref(tc_pkt_t *p);
void tc_pkt_unref(tc_pkt_t *p);
static inline const uint8_t *tc_pkt_payload(const tc_pkt_t *p)
{
    return p->flv + FLV_TAG_HEADER_LEN;
}
static inline size_t tc_pkt_flv_len(const tc_pkt_t *p)
{
    return FLV_TAG_HEADER_LEN + p->len + FLV_TAG_TRAILER_LEN;
}

/* The chunked RTMP bytes (message stream 1, chunk size of the server),
 * built once. Returns 0 or -ENOMEM. */
int tc_pkt_rtmp(tc_pkt_t *p, uint32_t chunk_size);

struct tc_sub;

/* Send the packet to a viewer (sub->conn says where and in which form).
 * When the stream writes per read and nothing is queued, it is written to
 * the socket at once (send(2), no allocation); what does not fit is
 * appended to the output by reference (no copy), and the reference is
 * dropped once those bytes have left. When the stream merges, the packet
 * is held by reference until the next flush (tc_sub_flush), which writes
 * everything held with one sendmsg(2). The server-added latency is
 * recorded when the bytes are written. *sent is set to 1 when the whole
 * packet was written to the socket, else 0. Returns the packet's length
 * in that form, or -ENOMEM. */
ssize_t tc_pkt_send(tc_pkt_t *p, struct tc_sub *sub, int *sent);

/* ---- hub ---------------------------------------------------------------- */

typedef enum tc_proto {
    TC_PROTO_FLV = 0,
    TC_PROTO_RTMP = 1,
    TC_PROTO__COUNT
} tc_proto_t;

typedef struct tc_stream tc_stream_t;
typedef struct tc_sub tc_sub_t;
typedef struct tc_hub tc_hub_t;

/* ---- fan-out load and merged writes ------------------------------------ */

/* How much of the loop thread the fan-out (writing packets to viewers)
 * took over a sliding window of TC_LOAD_BUCKETS x TC_LOAD_BUCKET_US (1 s):
 * busy time is added to the bucket of its end time; buckets older than the
 * window are forgotten. Pure accounting on the caller's clock. */
#define TC_LOAD_BUCKETS 4
#define TC_LOAD_BUCKET_US 250000u
#define TC_LOAD_WINDOW_US ((uint64_t)TC_LOAD_BUCKETS * TC_LOAD_BUCKET_US)

typedef struct tc_load {
    uint64_t since_us;         /* accounting started */
    uint64_t start_us;         /* start of bucket busy[cur] */
    uint64_t busy[TC_LOAD_BUCKETS];
    unsigned cur;
} tc_load_t;

void tc_load_init(tc_load_t *l, uint64_t now_us);
/* Account busy_us of fan-out that ended at now_us (now_us never goes
 * back; an earlier value is taken as now). */
void tc_load_add(tc_load_t *l, uint64_t now_us, uint64_t busy_us);
/* The share of the window ending at now_us that was busy, in per mille
 * (0..1000), or -1 while less than a whole window has been seen since
 * tc_load_init (too little history to decide on). */
int tc_load_permille(tc_load_t *l, uint64_t now_us);

/* Should a stream's writes to its viewers be merged? threshold_pct is
 * viewer-merge-load: 0 always merges, 100 (or more) never does. In
 * between, a stream that writes per read starts merging when the loop
 * thread's fan-out share (hub_pm, all streams) exceeds the threshold and
 * the stream itself takes at least a tenth of it (stream_pm); a merged
 * stream goes back to per-read writes when, measured while merged, the
 * hub's share fell below a quarter of the threshold or its own below a
 * fortieth. A share of -1 (too little history) keeps the current mode.
 * Pure; returns 1 to merge, 0 to write per read. */
int tc_merge_decide(int merged, int threshold_pct, int hub_pm, int stream_pm);

typedef struct tc_sub_ops {
    /* Queue one packet (the subscriber takes its own reference). Returns 0
     * when bytes wait for the next flush, 1 when the packet went to the
     * socket whole (nothing to flush), or -1 when the subscriber has
     * failed and was detached and freed. */
    int (*packet)(tc_sub_t *sub, tc_pkt_t *p);
    /* Bytes queued towards the viewer and not yet written. */
    size_t (*queued)(tc_sub_t *sub);
    /* The stream ended (reason "eos") or the viewer is too slow ("slow"):
     * the subscriber is already detached; it ends its output and frees
     * itself. */
    void (*end)(tc_sub_t *sub, const char *reason);
    /* Write what was queued since the last flush to the socket now (one
     * writev, no event registration when it all fits). Never frees. */
    void (*flush)(tc_sub_t *sub);
} tc_sub_ops_t;

/* Where a viewer's bytes go; set by the output before tc_hub_attach. */
typedef struct tc_sub_conn {
    struct bufferevent *bev;
    struct evbuffer *out;      /* bev's output */
    int fd;
    tc_form_t form;
    uint32_t chunk_size;       /* TC_FORM_RTMP */
} tc_sub_conn_t;

#define TC_SUB_HELD 16         /* packets held for a merged write, then queued */

struct tc_sub {
    tc_sub_t *next, *prev;
    tc_sub_conn_t conn;
    tc_pkt_t *held[TC_SUB_HELD]; /* merged: waiting for the flush, before anything in out */
    int nheld;
    size_t held_bytes;
    tc_stream_t *stream;
    const tc_sub_ops_t *ops;
    tc_proto_t proto;
    int waiting_key;           /* dropping until the next keyframe */
    int dirty;                 /* queued bytes since the last flush */
    uint64_t over_since_ms;    /* queue over its bound since, 0 if not */
    uint64_t dropped;
    uint64_t sid;              /* viewer session id within the hub (viewers.c) */
    int relay;                 /* another server pulling the stream: not a viewer session */
};

typedef struct tc_stream_info {
    flv_vcodec_t vcodec;
    int acodec;                /* SoundFormat, -1 none */
    double width, height, fps_meta;
    double fps;                /* measured */
    double kbps;               /* measured */
} tc_stream_info_t;

struct tc_stream {
    tc_stream_t *next;
    tc_hub_t *hub;
    char name[160];            /* "app/name" */
    char options[256];         /* stream key query other than exp/sig */
    void *publisher;           /* the publishing session, NULL in grace */
    struct event *grace_ev;
    struct event *flush_ev;    /* viewer-flush-ms: merged writes pending */
    int merged;                /* writes to viewers are merged now */
    uint64_t last_flush_us;    /* last write to the viewers (merged: at most one per viewer-flush-ms) */
    uint64_t merged_since_us;  /* mode kept since (one window at least) */
    uint64_t fan_busy_us;      /* fan-out time not yet in the windows */
    uint64_t merge_switches;
    tc_load_t load;            /* this stream's fan-out share */
    uint64_t started_ms;
    tc_pkt_t *meta, *vconfig, *aconfig;
    tc_pkt_t **gop;            /* packets since the last keyframe */
    size_t ngop, gop_cap, gop_bytes;
    int gop_valid;             /* the cache starts at a keyframe */
    tc_sub_t *subs;
    int nsubs[TC_PROTO__COUNT];
    int has_video;
    uint32_t last_ts;          /* last output timestamp */
    int64_t ts_offset;         /* input to output timeline */
    int rebase;                /* next packet starts a new input timeline */
    uint64_t bytes_in, packets_in, dropped;
    uint64_t win_start_ms, win_bytes, win_frames;
    tc_stream_info_t info;
    /* blur (transcoder/blur.h): the pipeline when on, and set while its
     * output goes through tc_hub_push */
    struct tc_blur *blur;
    int blur_emitting;
    struct tc_llhls_stream *llhls; /* LL-HLS output (app "live" only), or NULL */
};

typedef struct tc_hub_metrics {
    core_metric_t *streams, *viewers[TC_PROTO__COUNT], *bytes_in, *bytes_out[TC_PROTO__COUNT];
    core_metric_t *dropped, *slow_kicked, *sessions, *latency;
    core_metric_t *merged_streams, *merge_switches;
} tc_hub_metrics_t;

/* ---- sources other than RTMP publishers (used by transcoder/pull) ------ */

/* A viewer waiting for a stream that a source is starting. Embedded in the
 * viewer's own record; linked on the source's list while waiting. */
typedef struct tc_waiter tc_waiter_t;

/* The wait is over, exactly once: s is the stream (its first keyframe is
 * in the GOP cache) and err 0, or s is NULL and err -ENOENT (the origin
 * has no such stream or cannot be reached), -ETIMEDOUT (no keyframe within
 * the start timeout), -EBUSY or -ESHUTDOWN. w is unlinked before the call;
 * the callback may free it. */
typedef void (*tc_waiter_cb)(tc_waiter_t *w, tc_stream_t *s, int err);

struct tc_waiter {
    tc_waiter_t *next, *prev;
    tc_waiter_t **head;        /* the list it waits on; NULL: not waiting */
    tc_waiter_cb cb;
    uint64_t deadline_ms;      /* set by the source */
};

typedef struct tc_hub_source {
    /* A viewer asks for app/name that nobody publishes: start it and link
     * w (return 0), or return -ENOENT when this source does not serve
     * app/name. */
    int (*want)(void *arg, const char *app, const char *name, tc_waiter_t *w);
    /* Append the "source" member(s) of s's JSON object followed by a comma
     * (e.g. "\"source\":\"pull\",") and return 1; return 0 when s is not
     * this source's stream. */
    int (*describe)(void *arg, const tc_stream_t *s, struct evbuffer *b);
    /* Append, each preceded by a comma unless *first, the JSON objects of
     * streams this source is starting that are not in the hub yet. */
    void (*list)(void *arg, struct evbuffer *b, int *first);
    void *arg;
} tc_hub_source_t;

struct tc_hub {
    struct event_base *base;
    const tc_conf_t *conf;
    tc_stream_t *streams;
    int nstreams;
    tc_hub_metrics_t m;
    tc_hub_source_t source;    /* all NULL: only RTMP publishers */
    struct cache_server *cache;     /* live state (viewers.c), or NULL */
    struct event *viewers_ev;       /* presence keep-alive timer */
    uint64_t sid_prefix, sid_next;  /* viewer session ids */
    int64_t out_pending[TC_PROTO__COUNT]; /* bytes_out not yet in the metric */
    struct tc_llhls *llhls;    /* LL-HLS packaging, set by the server; may be NULL */
    tc_load_t load;            /* the loop thread's fan-out share, all streams */
    int nmerged;               /* streams merging their writes now */
};

int tc_hub_init(tc_hub_t *h, struct event_base *base, const tc_conf_t *conf);
/* Ends every stream (viewers get "eos"). */
void tc_hub_close(tc_hub_t *h);

/* The stream "app/name", or NULL. */
tc_stream_t *tc_hub_find(tc_hub_t *h, const char *app, const char *name);

/* Start publishing app/name for publisher (borrowed). Returns the stream,
 * or NULL with *err = -EBUSY (someone publishes it), -ENOMEM. A stream in
 * its grace period is taken over and keeps its viewers. */
tc_stream_t *tc_hub_publish(tc_hub_t *h, const char *app, const char *name, const char *options,
                            void *publisher, int *err);

/* The publisher left: viewers stay for publish-grace-ms, then get "eos". */
void tc_hub_unpublish(tc_stream_t *s);

/* A message from the publisher (FLV tag type, input timestamp, payload;
 * borrowed). Metadata (SCRIPT) is the AMF0 "onMetaData" + value form.
 * Returns 0 or -ENOMEM / -EPROTO for a body too short for its codec. */
int tc_hub_push(tc_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *payload, uint32_t len,
                uint64_t arrival_us);

/* Write out what tc_hub_push queued to viewers. A producer calls it once
 * after each batch of pushes (one read from the publisher's socket), so a
 * viewer gets one write per batch instead of one per packet. It also
 * accounts the fan-out time and chooses the stream's mode
 * (tc_merge_decide): while the stream merges, viewers get one write per
 * viewer-flush-ms at most: at once when the last one is that old, else
 * when it will be, merging the batches in between (SRS calls this merged
 * write). */
void tc_hub_flush(tc_stream_t *s);

/* Whether a subscriber's packets go straight to its socket (the stream
 * writes per read) rather than waiting for the merged flush. */
static inline int tc_sub_direct(const tc_sub_t *sub)
{
    return sub->stream == NULL || !sub->stream->merged;
}

/* Bytes waiting for a viewer: held for the merged write and queued. */
size_t tc_sub_queued(const tc_sub_t *sub);

/* Write what is held and queued for a viewer now: the held packets with
 * one sendmsg(2), straight from the shared packets, the rest through the
 * bufferevent (whose write event is on only while something is left).
 * Never frees. */
void tc_sub_flush(tc_sub_t *sub);

/* Move the held packets into the bufferevent's output (by reference,
 * after what is there), e.g. before the output writes bytes of its own.
 * Called by tc_hub_detach. */
void tc_sub_spill(tc_sub_t *sub);

/* Write a viewer's queued output directly to fd: one writev now, and the
 * bufferevent's write event only while something is left (the changes
 * cancel out in libevent's change list when everything was written). */
void tc_flush_direct(struct bufferevent *bev);

/* Attach a subscriber: it receives metadata, sequence headers and the GOP
 * cache at once (through ops->packet) and they are flushed, then live
 * packets. Returns 0 or -1 when the subscriber failed meanwhile (and was
 * freed). */
int tc_hub_attach(tc_stream_t *s, tc_sub_t *sub, const tc_sub_ops_t *ops, tc_proto_t proto);
void tc_hub_detach(tc_sub_t *sub);

/* The stream app/name for a viewer. Returns it when it is published (or
 * in its grace period). Otherwise, when a source (pull) starts it, returns
 * NULL with *err = -EINPROGRESS: w->cb (set by the caller) runs later,
 * unless tc_waiter_cancel(w) comes first. Otherwise NULL with -ENOENT.
 * w is borrowed and must stay valid while it waits. */
tc_stream_t *tc_hub_lookup(tc_hub_t *h, const char *app, const char *name, tc_waiter_t *w,
                           int *err);

/* Stop waiting (the viewer left); w->cb will not run. No-op if w is not
 * waiting. */
void tc_waiter_cancel(tc_waiter_t *w);

/* Server-added latency samples (µs), most recent last; for the API. */
void tc_latency_record(uint64_t us);
void tc_latency_stats(uint64_t *p50, uint64_t *p99, uint64_t *max, uint64_t *n);
/* While muted, packet bytes released without being written (a viewer's
 * queue freed on disconnect) are not counted as latency samples. */
void tc_latency_mute(int on);

/* ---- viewer sessions in the cache (viewers.c) ------------------------- */

/* A pull (pull.c, pull_rtmp.c) says it is a relay, not a person watching,
 * with this mark in its RTMP connect's flashVer or its HTTP User-Agent;
 * the origin then leaves that subscriber out of the viewer counts, which
 * count the relay's own viewers where they watch. */
#define TC_RELAY_MARK "oborod-relay"
#define TC_RELAY_FLASHVER "LNX 9,0,124,2 " TC_RELAY_MARK

struct cache_server;

/* Report a subscriber's join / leave (called by tc_hub_attach/detach). */
void tc_viewers_join(tc_hub_t *h, tc_stream_t *s, tc_sub_t *sub);
void tc_viewers_leave(tc_hub_t *h, tc_stream_t *s, tc_sub_t *sub);
/* Viewer sessions that are not hub subscribers (LL-HLS): stream is
 * "APP/NAME", local_id unique on this node (both borrowed). Report JOIN
 * once, TOUCH at least every conf->viewer_refresh_ms while the session lasts,
 * LEAVE when it ends; a session not touched for conf->viewer_ttl_ms ends by
 * itself in the cache. */
typedef enum tc_viewer_event { TC_VIEWER_JOIN, TC_VIEWER_TOUCH, TC_VIEWER_LEAVE } tc_viewer_event_t;
void tc_viewers_session(tc_hub_t *h, const char *stream, const char *local_id, tc_viewer_event_t ev);
/* Start reporting to cache (borrowed; must outlive the hub or a stop);
 * starts the keep-alive timer. Returns 0 or -ENOMEM. */
int tc_viewers_start(tc_hub_t *h, struct cache_server *cache);
void tc_viewers_stop(tc_hub_t *h);
/* Viewers of s on every node of the shard (from the cache), -1 without one. */
long long tc_viewers_count(const tc_hub_t *h, const tc_stream_t *s);
/* GET /api/ranking?window=S&n=N */
void tc_api_ranking_cb(struct evhttp_request *req, const char *path, void *arg);

/* ---- outputs and the server ------------------------------------------- */

typedef struct tc_rtmp_session tc_rtmp_session_t;

struct tc_server {
    core_loop_t *loop;
    struct event_base *base;
    const tc_conf_t *conf;
    struct evconnlistener *lst;
    tc_hub_t hub;
    tc_rtmp_session_t *sessions;       /* every RTMP connection */
    struct tc_flv_viewer *flv_viewers; /* every HTTP-FLV viewer */
    core_metric_t *rtmp_bytes_in;
    struct tc_llhls *llhls;            /* LL-HLS streams and routes */
};

/* RTMP: take over an accepted socket. Returns 0 or -ENOMEM (fd closed). */
int tc_rtmp_session_new(tc_server_t *srv, int fd, const char *peer);
void tc_rtmp_session_free_all(tc_server_t *srv);

/* HTTP-FLV: the /live/ route and teardown of every viewer. */
void tc_httpflv_cb(struct evhttp_request *req, const char *path, void *arg);
void tc_httpflv_free_all(tc_server_t *srv);

/* /api/streams and /api/streams/NAME. */
void tc_api_cb(struct evhttp_request *req, const char *path, void *arg);

/* Publish authentication: key is "NAME?exp=UNIX&sig=HEX..." (borrowed).
 * Fills name (the part before '?') and options (query parameters other
 * than exp and sig). With secret "" every key passes. Returns 0, or
 * -EACCES with *why set to a short reason. */
int tc_auth_check(const char *secret, const char *key, uint64_t now_s, char *name, size_t namelen,
                  char *options, size_t optlen, const char **why);

#endif
