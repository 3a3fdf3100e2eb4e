/* transcoder/hub: streams, packets, GOP cache and subscribers.
 *
 * Every packet is normalised once into a reference-counted FLV tag; every
 * viewer queues the same bytes by reference. A packet whose payload the
 * producer gave away (tc_hub_push_take) is framed on first use, so a
 * stream nobody watches costs no copy and no framing. A viewer whose output queue
 * grows past viewer-queue-bytes loses frames up to the next keyframe; one
 * that stays over the bound for viewer-queue-ms is disconnected.
 *
 * Writes to viewers: a stream writes each packet to each viewer as it
 * arrives (lowest latency) until writing to viewers takes a real share of
 * the loop thread; then it merges them, one write per viewer every
 * viewer-flush-ms (fewer system calls per viewer, more latency). The share
 * is measured, not guessed: the time spent in the fan-out, two clock
 * reads per packet and per publisher read, whatever the number of
 * viewers. */
#include "transcoder/tc_int.h"
#include "transcoder/llhls.h"

#include "core/arena.h"
#include "core/log.h"
#include "proto/rtmp.h"
#include "transcoder/blur.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

/* ---- packets ------------------------------------------------------------ */

#define CHUNK_HDR_ROOM 10      /* "ffffff" + CRLF fits: tags are under 16 MiB */

/* Write the chunk header, FLV tag header, trailer and CRLF around a tag
 * whose payload is (or will be) at flv + FLV_TAG_HEADER_LEN; returns the
 * chunk header's length. */
static uint8_t frame(uint8_t *flv, uint8_t type, uint32_t ts, uint32_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t flv_len = FLV_TAG_HEADER_LEN + (size_t)len + FLV_TAG_TRAILER_LEN;
    uint8_t digits[8], n = 0;

    do {
        digits[n++] = (uint8_t)hex[flv_len & 15];
        flv_len >>= 4;
    } while (flv_len != 0);
    for (uint8_t i = 0; i < n; i++)
        flv[-(int)n - 2 + i] = digits[n - 1 - i];
    flv[-2] = '\r';
    flv[-1] = '\n';
    flv_tag_header_encode(flv, type, ts, len);
    flv_tag_trailer_encode(flv + FLV_TAG_HEADER_LEN + len, len);
    memcpy(flv + FLV_TAG_HEADER_LEN + len + FLV_TAG_TRAILER_LEN, "\r\n", 2);
    return (uint8_t)(n + 2);
}

static size_t framed_size(uint32_t len)
{
    return CHUNK_HDR_ROOM + FLV_TAG_HEADER_LEN + (size_t)len + FLV_TAG_TRAILER_LEN + 2;
}

tc_pkt_t *tc_pkt_new(uint8_t type, uint32_t ts, const uint8_t *payload, uint32_t len)
{
    tc_pkt_t *p = core_malloc(CORE_TAG_HUB_PACKETS, sizeof(*p) + framed_size(len));

    if (p == NULL)
        return NULL;
    memset(p, 0, sizeof(*p));
    p->refs = 1;
    p->type = type;
    p->ts = ts;
    p->len = len;
    p->flv = p->buf + CHUNK_HDR_ROOM;
    p->data = p->flv + FLV_TAG_HEADER_LEN;
    if (len > 0)
        memcpy(p->data, payload, len);
    p->chunk_hdr = frame(p->flv, type, ts, len);
    return p;
}

tc_pkt_t *tc_pkt_adopt(uint8_t type, uint32_t ts, uint8_t *payload, uint32_t len)
{
    tc_pkt_t *p = core_malloc(CORE_TAG_HUB_PACKETS, sizeof(*p));

    if (p == NULL) {
        core_free(payload);
        return NULL;
    }
    memset(p, 0, sizeof(*p));
    p->refs = 1;
    p->type = type;
    p->ts = ts;
    p->len = len;
    p->data = p->owned = payload;
    return p;
}

int tc_pkt_flv(tc_pkt_t *p)
{
    uint8_t *f;

    if (p->flv != NULL)
        return 0;
    f = core_malloc(CORE_TAG_HUB_PACKETS, framed_size(p->len));
    if (f == NULL)
        return -ENOMEM;
    p->framed = f;
    p->flv = f + CHUNK_HDR_ROOM;
    if (p->len > 0)
        memcpy(p->flv + FLV_TAG_HEADER_LEN, p->owned, p->len);
    p->chunk_hdr = frame(p->flv, p->type, p->ts, p->len);
    p->data = p->flv + FLV_TAG_HEADER_LEN;
    core_free(p->owned);
    p->owned = NULL;
    return 0;
}

tc_pkt_t *tc_pkt_ref(tc_pkt_t *p)
{
    p->refs++;
    return p;
}

void tc_pkt_unref(tc_pkt_t *p)
{
    if (p == NULL || --p->refs > 0)
        return;
    core_free(p->rtmp);
    core_free(p->owned);
    core_free(p->framed);
    core_free(p);
}

int tc_pkt_rtmp(tc_pkt_t *p, uint32_t chunk_size)
{
    /* audio, video and data on chunk streams of their own, as FMS does */
    uint32_t csid = p->type == FLV_TAG_AUDIO ? 4 : p->type == FLV_TAG_VIDEO ? 6 : 5;
    size_t n;

    if (p->rtmp != NULL)
        return 0;
    n = rtmp_chunk_encoded_size(csid, p->ts, p->len, chunk_size);
    p->rtmp = core_malloc(CORE_TAG_FLV, n);
    if (p->rtmp == NULL)
        return -ENOMEM;
    p->rtmp_len = rtmp_chunk_encode(p->rtmp, csid, p->type, 1, p->ts, tc_pkt_payload(p), p->len,
                                    chunk_size);
    return 0;
}

static void ref_done(const void *data, size_t len, void *arg)
{
    tc_pkt_t *p = arg;

    tc_latency_record(core_mono_us() - p->arrival_us);
    tc_pkt_unref(p);
}

/* The bytes of p in a viewer's form. */
static const uint8_t *pkt_form(tc_pkt_t *p, const tc_sub_conn_t *c, size_t *len)
{
    if (c->form == TC_FORM_RTMP) {
        if (tc_pkt_rtmp(p, c->chunk_size) != 0)
            return NULL;
        *len = p->rtmp_len;
        return p->rtmp;
    }
    if (tc_pkt_flv(p) != 0)
        return NULL;
    if (c->form == TC_FORM_FLV_CHUNKED) {
        *len = p->chunk_hdr + tc_pkt_flv_len(p) + 2;
        return p->flv - p->chunk_hdr;
    }
    *len = tc_pkt_flv_len(p);
    return p->flv;
}

/* Queue bytes of p (from off on) by reference. Returns 0 or -ENOMEM. */
static int queue_ref(tc_pkt_t *p, struct evbuffer *out, const uint8_t *data, size_t len, size_t off)
{
    tc_pkt_ref(p);
    if (evbuffer_add_reference(out, data + off, len - off, ref_done, p) != 0) {
        tc_pkt_unref(p);
        return -ENOMEM;
    }
    return 0;
}

ssize_t tc_pkt_send(tc_pkt_t *p, tc_sub_t *sub, int *sent)
{
    tc_sub_conn_t *c = &sub->conn;
    const uint8_t *data;
    size_t len;
    ssize_t w = 0;
    int empty;

    *sent = 0;
    data = pkt_form(p, c, &len);
    if (data == NULL)
        return -ENOMEM;
    if (!tc_sub_direct(sub)) {
        /* merged: hold it for the flush while nothing else waits (once
         * packets are held, the flush puts them after anything the output
         * queued meanwhile) */
        if (sub->nheld > 0 ? sub->nheld < TC_SUB_HELD : evbuffer_get_length(c->out) == 0) {
            sub->held[sub->nheld++] = tc_pkt_ref(p);
            sub->held_bytes += len;
            return (ssize_t)len;
        }
        tc_sub_spill(sub);
        if (queue_ref(p, c->out, data, len, 0) != 0)
            return -ENOMEM;
        return (ssize_t)len;
    }
    empty = sub->nheld == 0 && evbuffer_get_length(c->out) == 0;
    if (empty) {
        /* the viewer keeps up: straight to the socket, nothing queued */
        w = send(c->fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w == (ssize_t)len) {
            tc_latency_record(core_mono_us() - p->arrival_us);
            *sent = 1;
            return w;
        }
        if (w < 0)
            w = 0;   /* EAGAIN, or an error the write event will report */
    }
    tc_sub_spill(sub);
    if (queue_ref(p, c->out, data, len, (size_t)w) != 0)
        return -ENOMEM;
    bufferevent_enable(c->bev, EV_WRITE);
    return (ssize_t)len;
}

size_t tc_sub_queued(const tc_sub_t *sub)
{
    return sub->held_bytes + evbuffer_get_length(sub->conn.out);
}

void tc_sub_spill(tc_sub_t *sub)
{
    int n = sub->nheld;

    sub->nheld = 0;
    sub->held_bytes = 0;
    for (int i = 0; i < n; i++) {
        tc_pkt_t *p = sub->held[i];
        size_t len;
        const uint8_t *data = pkt_form(p, &sub->conn, &len);

        /* without memory for the reference the viewer misses the packet;
         * its form was built when it was held, so data is set */
        if (data != NULL)
            queue_ref(p, sub->conn.out, data, len, 0);
        tc_pkt_unref(p);
    }
}

void tc_sub_flush(tc_sub_t *sub)
{
    struct iovec iov[TC_SUB_HELD];
    struct msghdr mh;
    int n = sub->nheld, i, left = 0;
    ssize_t w;
    uint64_t now;

    if (n == 0 || evbuffer_get_length(sub->conn.out) > 0) {
        tc_sub_spill(sub);
        tc_flush_direct(sub->conn.bev);
        return;
    }
    for (i = 0; i < n; i++)
        iov[i].iov_base = (void *)pkt_form(sub->held[i], &sub->conn, &iov[i].iov_len);
    memset(&mh, 0, sizeof(mh));
    mh.msg_iov = iov;
    mh.msg_iovlen = (size_t)n;
    w = sendmsg(sub->conn.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0)
        w = 0;       /* EAGAIN, or an error the write event will report */
    now = core_mono_us();
    sub->nheld = 0;
    sub->held_bytes = 0;
    for (i = 0; i < n; i++) {
        tc_pkt_t *p = sub->held[i];
        size_t len = iov[i].iov_len;

        if ((size_t)w >= len) {
            w -= (ssize_t)len;
            tc_latency_record(now - p->arrival_us);
        } else {
            /* without memory for the rest, the viewer would get a torn
             * tag followed by whole ones: end its connection instead (the
             * output's event reports it and the viewer is closed) */
            if (queue_ref(p, sub->conn.out, iov[i].iov_base, len, (size_t)w) != 0)
                shutdown(sub->conn.fd, SHUT_RDWR);
            w = 0;
            left = 1;
        }
        tc_pkt_unref(p);
    }
    if (left)
        bufferevent_enable(sub->conn.bev, EV_WRITE);
}

/* ---- latency samples ---------------------------------------------------- */

#define LAT_SAMPLES 8192
static uint32_t lat[LAT_SAMPLES];
static uint64_t lat_n;
static core_metric_t *lat_hist;
static int lat_muted;

void tc_latency_mute(int on)
{
    lat_muted = on;
}

void tc_latency_record(uint64_t us)
{
    if (lat_muted)
        return;
    if (lat_hist != NULL)
        core_metric_observe_us(lat_hist, (int64_t)us);
    lat[lat_n++ % LAT_SAMPLES] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

void tc_latency_stats(uint64_t *p50, uint64_t *p99, uint64_t *max, uint64_t *n)
{
    static uint32_t tmp[LAT_SAMPLES];
    size_t k = lat_n < LAT_SAMPLES ? (size_t)lat_n : LAT_SAMPLES;

    *n = lat_n;
    *p50 = *p99 = *max = 0;
    if (k == 0)
        return;
    memcpy(tmp, lat, k * sizeof(tmp[0]));
    qsort(tmp, k, sizeof(tmp[0]), cmp_u32);
    *p50 = tmp[k / 2];
    *p99 = tmp[(k * 99) / 100 < k ? (k * 99) / 100 : k - 1];
    *max = tmp[k - 1];
}

/* ---- fan-out load and the merge decision --------------------------------- */

void tc_load_init(tc_load_t *l, uint64_t now_us)
{
    memset(l, 0, sizeof(*l));
    l->since_us = now_us;
    l->start_us = now_us;
}

/* Move the window so that its last bucket holds now_us. */
static void load_advance(tc_load_t *l, uint64_t now_us)
{
    uint64_t k;

    if (now_us < l->start_us + TC_LOAD_BUCKET_US)
        return;
    k = (now_us - l->start_us) / TC_LOAD_BUCKET_US;
    if (k >= TC_LOAD_BUCKETS) {
        memset(l->busy, 0, sizeof(l->busy));
    } else {
        for (uint64_t i = 0; i < k; i++) {
            l->cur = (l->cur + 1) % TC_LOAD_BUCKETS;
            l->busy[l->cur] = 0;
        }
    }
    l->start_us += k * TC_LOAD_BUCKET_US;
}

void tc_load_add(tc_load_t *l, uint64_t now_us, uint64_t busy_us)
{
    load_advance(l, now_us);
    l->busy[l->cur] += busy_us;
}

int tc_load_permille(tc_load_t *l, uint64_t now_us)
{
    uint64_t back = (uint64_t)(TC_LOAD_BUCKETS - 1) * TC_LOAD_BUCKET_US, sum = 0, span;

    load_advance(l, now_us);
    if (l->start_us < l->since_us + back)
        return -1;
    if (now_us < l->start_us)
        now_us = l->start_us;
    span = now_us - (l->start_us - back);
    for (int i = 0; i < TC_LOAD_BUCKETS; i++)
        sum += l->busy[i];
    return sum >= span ? 1000 : (int)(sum * 1000 / span);
}

int tc_merge_decide(int merged, int threshold_pct, int hub_pm, int stream_pm)
{
    int t = threshold_pct * 10;   /* per mille */

    if (threshold_pct <= 0)
        return 1;
    if (threshold_pct >= 100)
        return 0;
    if (hub_pm < 0 || stream_pm < 0)
        return merged;
    if (!merged)
        return hub_pm > t && stream_pm * 10 >= t;
    /* measured while merged, so merging's own saving is in these figures */
    return !(hub_pm * 4 < t || stream_pm * 40 < t);
}

/* ---- hub ---------------------------------------------------------------- */

int tc_hub_init(tc_hub_t *h, struct event_base *base, const tc_conf_t *conf)
{
    lat_muted = 0;
    core_metrics_t *m = core_metrics_global();
    static const double lb[] = {0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1, 1};

    memset(h, 0, sizeof(*h));
    h->base = base;
    h->conf = conf;
    h->m.streams = core_metrics_gauge(m, "oboro_hub_streams", "Streams being published or in their grace period.");
    h->m.viewers[TC_PROTO_FLV] = core_metrics_gauge(m, "oboro_hub_viewers{proto=\"flv\"}", "Viewers attached to streams.");
    h->m.viewers[TC_PROTO_RTMP] = core_metrics_gauge(m, "oboro_hub_viewers{proto=\"rtmp\"}", "Viewers attached to streams.");
    h->m.bytes_in = core_metrics_counter(m, "oboro_hub_bytes_in_total", "Media payload bytes received from publishers.");
    h->m.bytes_out[TC_PROTO_FLV] = core_metrics_counter(m, "oboro_hub_bytes_out_total{proto=\"flv\"}", "Bytes queued to viewers.");
    h->m.bytes_out[TC_PROTO_RTMP] = core_metrics_counter(m, "oboro_hub_bytes_out_total{proto=\"rtmp\"}", "Bytes queued to viewers.");
    h->m.dropped = core_metrics_counter(m, "oboro_hub_dropped_packets_total", "Packets not sent to slow viewers.");
    h->m.slow_kicked = core_metrics_counter(m, "oboro_hub_slow_viewers_disconnected_total", "Viewers disconnected for staying too slow.");
    h->m.sessions = core_metrics_gauge(m, "oboro_rtmp_sessions", "Open RTMP connections.");
    h->m.latency = core_metrics_histogram(m, "oboro_hub_latency_seconds", "From the last byte of a packet in to its bytes leaving a viewer's queue.", lb, sizeof(lb) / sizeof(lb[0]));
    for (int i = 0; i < TC_PROTO__COUNT; i++)
        if (h->m.viewers[i] == NULL || h->m.bytes_out[i] == NULL)
            return -ENOMEM;
    h->m.merged_streams = core_metrics_gauge(m, "oboro_hub_merged_streams", "Streams merging their writes to viewers now (viewer-merge-load).");
    h->m.merge_switches = core_metrics_counter(m, "oboro_hub_merge_switches_total", "Times a stream started or stopped merging its writes to viewers.");
    if (h->m.streams == NULL || h->m.bytes_in == NULL || h->m.dropped == NULL ||
        h->m.slow_kicked == NULL || h->m.sessions == NULL || h->m.latency == NULL ||
        h->m.merged_streams == NULL || h->m.merge_switches == NULL)
        return -ENOMEM;
    tc_load_init(&h->load, core_mono_us());
    lat_hist = h->m.latency;
    return 0;
}

static void flush_now(tc_stream_t *s);
static void flush_timer(evutil_socket_t fd, short what, void *arg);

static void gop_clear(tc_stream_t *s)
{
    for (size_t i = 0; i < s->ngop; i++)
        tc_pkt_unref(s->gop[i]);
    s->ngop = 0;
    s->gop_bytes = 0;
    s->gop_valid = 0;
}

static void stream_free(tc_stream_t *s)
{
    tc_hub_t *h = s->hub;
    tc_stream_t **pp;

    /* viewers first: each ends its output and frees itself */
    while (s->subs != NULL) {
        tc_sub_t *sub = s->subs;

        tc_hub_detach(sub);
        sub->ops->end(sub, "eos");
    }
    for (pp = &h->streams; *pp != NULL; pp = &(*pp)->next)
        if (*pp == s) {
            *pp = s->next;
            break;
        }
    h->nstreams--;
    core_metric_set(h->m.streams, h->nstreams);
    if (s->merged) {
        h->nmerged--;
        core_metric_set(h->m.merged_streams, h->nmerged);
    }
    if (s->grace_ev != NULL)
        event_free(s->grace_ev);
    tc_llhls_stream_close(&s->llhls);
    if (s->flush_ev != NULL)
        event_free(s->flush_ev);
    tc_blur_stop(s); /* blur */
    gop_clear(s);
    core_free(s->gop);
    tc_pkt_unref(s->meta);
    tc_pkt_unref(s->vconfig);
    tc_pkt_unref(s->aconfig);
    core_log_info("hub", "stream ended", "stream=%s packets=%llu bytes=%llu dropped=%llu", s->name,
                  (unsigned long long)s->packets_in, (unsigned long long)s->bytes_in,
                  (unsigned long long)s->dropped);
    core_free(s);
}

void tc_hub_close(tc_hub_t *h)
{
    while (h->streams != NULL)
        stream_free(h->streams);
    /* packets still queued in sockets are released after this, unsent */
    lat_hist = NULL;
    lat_muted = 1;
}

tc_stream_t *tc_hub_find(tc_hub_t *h, const char *app, const char *name)
{
    char full[sizeof(((tc_stream_t *)0)->name)];

    if ((size_t)snprintf(full, sizeof(full), "%s/%s", app, name) >= sizeof(full))
        return NULL;
    for (tc_stream_t *s = h->streams; s != NULL; s = s->next)
        if (strcmp(s->name, full) == 0)
            return s;
    return NULL;
}

static void grace_over(evutil_socket_t fd, short what, void *arg)
{
    tc_stream_t *s = arg;

    core_log_info("hub", "publisher did not come back", "stream=%s viewers=%d", s->name,
                  s->nsubs[0] + s->nsubs[1]);
    stream_free(s);
}

/* blur: (re)start the stream's blur pipeline when its key or blur-default
 * asks for it; a failure to start leaves the stream in passthrough. */
static void blur_on_publish(tc_stream_t *s)
{
    tc_blur_stop(s);
    if (!tc_blur_wanted(s->options, s->hub->conf->blur_default))
        return;
    int rc = tc_blur_start(s, s->hub->base);
    if (rc != 0)
        core_log_warn("blur", "blur pipeline not started, passthrough", "stream=%s err=%d", s->name, rc);
}

tc_stream_t *tc_hub_publish(tc_hub_t *h, const char *app, const char *name, const char *options,
                            void *publisher, int *err)
{
    tc_stream_t *s = tc_hub_find(h, app, name);

    if (s != NULL) {
        if (s->publisher != NULL) {
            *err = -EBUSY;
            return NULL;
        }
        /* a republish within the grace period keeps the viewers; the new
         * timeline continues the old one */
        evtimer_del(s->grace_ev);
        s->publisher = publisher;
        s->rebase = 1;
        gop_clear(s);
        snprintf(s->options, sizeof(s->options), "%s", options);
        blur_on_publish(s); /* blur */
        return s;
    }
    if (h->nstreams >= h->conf->max_streams) {
        *err = -ENOSPC;
        return NULL;
    }
    s = core_calloc(CORE_TAG_HUB, 1, sizeof(*s));
    if (s == NULL) {
        *err = -ENOMEM;
        return NULL;
    }
    s->hub = h;
    snprintf(s->name, sizeof(s->name), "%s/%s", app, name);
    snprintf(s->options, sizeof(s->options), "%s", options);
    s->grace_ev = evtimer_new(h->base, grace_over, s);
    s->flush_ev = evtimer_new(h->base, flush_timer, s);
    if (s->grace_ev == NULL || s->flush_ev == NULL) {
        if (s->grace_ev != NULL)
            event_free(s->grace_ev);
        if (s->flush_ev != NULL)
            event_free(s->flush_ev);
        core_free(s);
        *err = -ENOMEM;
        return NULL;
    }
    s->publisher = publisher;
    s->started_ms = core_mono_ms();
    s->win_start_ms = s->started_ms;
    s->merged_since_us = core_mono_us();
    tc_load_init(&s->load, s->merged_since_us);
    s->info.acodec = -1;
    s->rebase = 1;
    /* LL-HLS serves /live/NAME/..., so streams of the app "live" */
    if (h->llhls != NULL && strcmp(app, "live") == 0 &&
        tc_llhls_stream_open(h->llhls, name, &s->llhls) != 0)
        core_log_warn("hub", "no LL-HLS output for this stream", "stream=%s", s->name);
    s->next = h->streams;
    h->streams = s;
    h->nstreams++;
    core_metric_set(h->m.streams, h->nstreams);
    blur_on_publish(s); /* blur */
    return s;
}

void tc_hub_unpublish(tc_stream_t *s)
{
    struct timeval tv;
    long long ms = s->hub->conf->publish_grace_ms;

    flush_now(s);
    s->publisher = NULL;
    if (ms <= 0 || s->subs == NULL) {
        stream_free(s);
        return;
    }
    tv.tv_sec = ms / 1000;
    tv.tv_usec = (ms % 1000) * 1000;
    evtimer_add(s->grace_ev, &tv);
}

void tc_hub_detach(tc_sub_t *sub)
{
    tc_stream_t *s = sub->stream;

    if (s == NULL)
        return;
    tc_sub_spill(sub);   /* what is held goes after what the output writes next */
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        s->subs = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    s->nsubs[sub->proto]--;
    core_metric_inc(s->hub->m.viewers[sub->proto], -1);
    tc_viewers_leave(s->hub, s, sub);
    sub->stream = NULL;
    sub->next = sub->prev = NULL;
}

/* Hand one packet to one subscriber, applying its queue bound. Returns -1
 * when the subscriber is gone. */
static int deliver(tc_stream_t *s, tc_sub_t *sub, tc_pkt_t *p, uint64_t now_ms)
{
    const tc_conf_t *conf = s->hub->conf;
    size_t q;
    int rc;

    if (p->config)
        goto send;                  /* never dropped: tiny and needed */
    q = sub->ops->queued(sub);
    if (q > (size_t)conf->viewer_queue_bytes) {
        if (sub->over_since_ms == 0)
            sub->over_since_ms = now_ms;
        else if (now_ms - sub->over_since_ms > (uint64_t)conf->viewer_queue_ms) {
            core_metric_inc(s->hub->m.slow_kicked, 1);
            tc_hub_detach(sub);
            sub->ops->end(sub, "slow");
            return -1;
        }
        sub->waiting_key = 1;
    } else {
        sub->over_since_ms = 0;
        if (sub->waiting_key && p->key)
            sub->waiting_key = 0;
    }
    if (sub->waiting_key) {
        sub->dropped++;
        s->dropped++;
        core_metric_inc(s->hub->m.dropped, 1);
        return 0;
    }
send:
    rc = sub->ops->packet(sub, p);
    if (rc < 0)
        return -1;
    if (rc == 0)
        sub->dirty = 1;   /* 1: it went to the socket whole, nothing to flush */
    return 0;
}

/* Counters are shared atomics: add once per batch, not once per viewer. */
static void count_out(tc_hub_t *h)
{
    for (int i = 0; i < TC_PROTO__COUNT; i++)
        if (h->out_pending[i] != 0) {
            core_metric_inc(h->m.bytes_out[i], h->out_pending[i]);
            h->out_pending[i] = 0;
        }
}

static void flush_now(tc_stream_t *s)
{
    for (tc_sub_t *sub = s->subs; sub != NULL; sub = sub->next)
        if (sub->dirty) {
            sub->dirty = 0;
            sub->ops->flush(sub);
        }
}

static void flush_timer(evutil_socket_t fd, short what, void *arg)
{
    tc_stream_t *s = arg;
    uint64_t t0 = core_mono_us();

    s->last_flush_us = t0;
    flush_now(s);
    s->fan_busy_us += core_mono_us() - t0;
}

static void set_merged(tc_stream_t *s, int on, uint64_t now_us, int hub_pm, int stream_pm)
{
    tc_hub_t *h = s->hub;

    s->merged = on;
    s->merged_since_us = now_us;
    s->merge_switches++;
    h->nmerged += on ? 1 : -1;
    core_metric_set(h->m.merged_streams, h->nmerged);
    core_metric_inc(h->m.merge_switches, 1);
    core_log_info("hub", on ? "merging writes to viewers" : "writing to viewers per read",
                  "stream=%s viewers=%d fanout_load_pm=%d stream_load_pm=%d", s->name,
                  s->nsubs[0] + s->nsubs[1], hub_pm, stream_pm);
    if (!on) {
        /* what the timer would have written goes now */
        evtimer_del(s->flush_ev);
        flush_now(s);
    }
}

/* Account the fan-out time since the last read and choose the mode. A
 * mode is kept one window at least, so that the next decision is made on
 * figures measured in that mode. */
static void account(tc_stream_t *s, uint64_t now_us)
{
    tc_hub_t *h = s->hub;
    long long thr = h->conf->viewer_merge_load;
    int want, hub_pm = -1, stream_pm = -1;

    tc_load_add(&h->load, now_us, s->fan_busy_us);
    tc_load_add(&s->load, now_us, s->fan_busy_us);
    s->fan_busy_us = 0;
    if (h->conf->viewer_flush_ms <= 0) {
        want = 0;
    } else if (thr > 0 && thr < 100 && now_us - s->merged_since_us < TC_LOAD_WINDOW_US) {
        want = s->merged;
    } else {
        hub_pm = tc_load_permille(&h->load, now_us);
        stream_pm = tc_load_permille(&s->load, now_us);
        want = tc_merge_decide(s->merged, (int)thr, hub_pm, stream_pm);
    }
    if (want != s->merged)
        set_merged(s, want, now_us, hub_pm, stream_pm);
}

void tc_hub_flush(tc_stream_t *s)
{
    uint64_t t0 = core_mono_us(), due;
    struct timeval tv;

    account(s, t0);
    if (s->merged && evtimer_pending(s->flush_ev, NULL))
        return;
    /* merged: a rate, not a delay; the first packet after a quiet spell
     * goes at once */
    due = s->last_flush_us + (uint64_t)s->hub->conf->viewer_flush_ms * 1000;
    if (!s->merged || t0 >= due) {
        s->last_flush_us = t0;
        flush_now(s);
        s->fan_busy_us += core_mono_us() - t0;
        return;
    }
    tv.tv_sec = (time_t)((due - t0) / 1000000);
    tv.tv_usec = (suseconds_t)((due - t0) % 1000000);
    evtimer_add(s->flush_ev, &tv);
}

void tc_flush_direct(struct bufferevent *bev)
{
    struct evbuffer *out = bufferevent_get_output(bev);

    if (evbuffer_get_length(out) > 0)
        evbuffer_write(out, bufferevent_getfd(bev));
    /* an error is left for the write event to report */
    if (evbuffer_get_length(out) == 0)
        bufferevent_disable(bev, EV_WRITE);
    else
        bufferevent_enable(bev, EV_WRITE);
}

int tc_hub_attach(tc_stream_t *s, tc_sub_t *sub, const tc_sub_ops_t *ops, tc_proto_t proto)
{
    tc_pkt_t *init[3] = {s->meta, s->vconfig, s->aconfig};
    int was_muted = lat_muted, rv = -1;

    sub->ops = ops;
    sub->proto = proto;
    sub->stream = s;
    sub->prev = NULL;
    sub->next = s->subs;
    if (s->subs != NULL)
        s->subs->prev = sub;
    s->subs = sub;
    s->nsubs[proto]++;
    core_metric_inc(s->hub->m.viewers[proto], 1);
    tc_viewers_join(s->hub, s, sub);
    /* the start is old on purpose (headers, GOP cache): what it writes
     * now is not server-added latency */
    lat_muted = 1;
    for (int i = 0; i < 3; i++)
        if (init[i] != NULL && ops->packet(sub, init[i]) < 0)
            goto out;
    if (s->hub->conf->gop_cache && s->gop_valid) {
        for (size_t i = 0; i < s->ngop; i++)
            if (ops->packet(sub, s->gop[i]) < 0)
                goto out;
        sub->waiting_key = 0;
    } else {
        sub->waiting_key = 1;   /* start at the next keyframe */
    }
    sub->dirty = 0;
    ops->flush(sub);
    count_out(s->hub);
    rv = 0;
out:
    lat_muted = was_muted;
    return rv;
}

static int gop_add(tc_stream_t *s, tc_pkt_t *p)
{
    if (p->key && p->type == FLV_TAG_VIDEO) {
        gop_clear(s);
        s->gop_valid = 1;
    } else if (p->key && !s->has_video && s->ngop >= 64) {
        gop_clear(s);            /* audio-only: keep about a second */
        s->gop_valid = 1;
    } else if (p->key && !s->has_video) {
        s->gop_valid = 1;
    }
    if (!s->gop_valid)
        return 0;
    if (s->gop_bytes + p->len > (size_t)s->hub->conf->gop_cache_max_bytes) {
        gop_clear(s);            /* too long a GOP: new viewers wait for a keyframe */
        return 0;
    }
    if (s->ngop == s->gop_cap) {
        size_t ncap = s->gop_cap ? s->gop_cap * 2 : 64;
        tc_pkt_t **g = core_realloc(CORE_TAG_HUB_PACKETS, s->gop, ncap * sizeof(*g));

        if (g == NULL)
            return -ENOMEM;
        s->gop = g;
        s->gop_cap = ncap;
    }
    s->gop[s->ngop++] = tc_pkt_ref(p);
    s->gop_bytes += p->len;
    return 0;
}

/* Remember width, height and frame rate announced in onMetaData. */
static void read_metadata(tc_stream_t *s, const uint8_t *payload, uint32_t len)
{
    /* look for numeric properties by name; a full decode is not needed */
    static const char *const keys[] = {"width", "height", "framerate"};
    double *dst[] = {&s->info.width, &s->info.height, &s->info.fps_meta};

    for (int k = 0; k < 3; k++) {
        size_t kl = strlen(keys[k]);

        for (uint32_t i = 2; i + kl + 9 <= len; i++) {
            if (payload[i - 2] == 0 && payload[i - 1] == kl && memcmp(payload + i, keys[k], kl) == 0 &&
                payload[i + kl] == 0x00) {
                uint64_t u = 0;

                for (int b = 0; b < 8; b++)
                    u = (u << 8) | payload[i + kl + 1 + b];
                memcpy(dst[k], &u, sizeof(double));
                break;
            }
        }
    }
}

/* tc_hub_push and tc_hub_push_take: owned, when not NULL, is payload and
 * is given away (adopted by the packet, or freed). */
static int push(tc_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *payload, uint32_t len,
                uint64_t arrival_us, uint8_t *owned)
{
    tc_hub_t *h = s->hub;
    int key = 0, config = 0;
    uint64_t now_ms = core_mono_ms();
    uint32_t out_ts;
    tc_pkt_t *p, **slot = NULL;

    if (type == FLV_TAG_VIDEO) {
        flv_video_info_t v;

        if (flv_video_parse(payload, len, &v) != 0) {
            core_free(owned);
            return -EPROTO;
        }
        /* blur: the pipeline takes the publisher's video and pushes its
         * own output back through here */
        if (s->blur != NULL && !s->blur_emitting) {
            int rc = tc_blur_take(s->blur, ts, payload, len, arrival_us);

            if (rc <= 0) {
                core_free(owned);
                return rc;
            }
        }
        s->has_video = 1;
        s->info.vcodec = v.codec;
        config = v.pkt == FLV_VPKT_SEQUENCE_HEADER;
        key = v.keyframe && v.pkt == FLV_VPKT_FRAME;
        if (config)
            slot = &s->vconfig;
        else if (v.pkt == FLV_VPKT_FRAME)
            s->win_frames++;
    } else if (type == FLV_TAG_AUDIO) {
        flv_audio_info_t a;

        if (flv_audio_parse(payload, len, &a) != 0) {
            core_free(owned);
            return -EPROTO;
        }
        s->info.acodec = a.codec;
        config = a.seq_header;
        key = !s->has_video;
        if (config)
            slot = &s->aconfig;
    } else {
        config = 1;
        slot = &s->meta;
        read_metadata(s, payload, len);
    }
    if (s->rebase) {
        /* first packet of a publisher: continue the output timeline */
        s->ts_offset = s->packets_in == 0 ? -(int64_t)ts : (int64_t)s->last_ts + 1 - (int64_t)ts;
        s->rebase = 0;
    }
    out_ts = (uint32_t)((int64_t)ts + s->ts_offset);
    if (!config || type != FLV_TAG_SCRIPT)
        s->last_ts = out_ts;
    /* LL-HLS packages each packet once, for all its viewers, and must run
     * ahead of them: a viewer that arrives gets the parts and segments
     * already made */
    if (s->llhls != NULL && type != FLV_TAG_SCRIPT)
        tc_llhls_on_flv(s->llhls, type, out_ts, payload, len);
    if (owned != NULL)
        p = tc_pkt_adopt(type, type == FLV_TAG_SCRIPT ? 0 : out_ts, owned, len);
    else
        p = tc_pkt_new(type, type == FLV_TAG_SCRIPT ? 0 : out_ts, payload, len);
    payload = NULL;   /* the packet's now; framing may move it */
    if (p == NULL)
        return -ENOMEM;
    p->key = key;
    p->config = config;
    p->arrival_us = arrival_us;
    s->packets_in++;
    s->bytes_in += len;
    s->win_bytes += len;
    core_metric_inc(h->m.bytes_in, len);
    if (now_ms - s->win_start_ms >= 2000) {
        double sec = (double)(now_ms - s->win_start_ms) / 1000.0;

        s->info.kbps = (double)s->win_bytes * 8 / 1000.0 / sec;
        s->info.fps = (double)s->win_frames / sec;
        s->win_bytes = s->win_frames = 0;
        s->win_start_ms = now_ms;
    }
    if (slot != NULL) {
        tc_pkt_unref(*slot);
        *slot = tc_pkt_ref(p);
    } else if (gop_add(s, p) != 0) {
        tc_pkt_unref(p);
        return -ENOMEM;
    }
    if (s->subs != NULL) {
        uint64_t t0 = core_mono_us();

        for (tc_sub_t *sub = s->subs, *next; sub != NULL; sub = next) {
            next = sub->next;
            deliver(s, sub, p, now_ms);
        }
        s->fan_busy_us += core_mono_us() - t0;
    }
    count_out(h);
    tc_pkt_unref(p);
    return 0;
}

int tc_hub_push(tc_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *payload, uint32_t len,
                uint64_t arrival_us)
{
    return push(s, type, ts, payload, len, arrival_us, NULL);
}

int tc_hub_push_take(tc_stream_t *s, uint8_t type, uint32_t ts, uint8_t *payload, uint32_t len,
                     uint64_t arrival_us)
{
    return push(s, type, ts, payload, len, arrival_us, payload);
}

/* ---- lookup for viewers, with sources that start streams on demand ------ */

tc_stream_t *tc_hub_lookup(tc_hub_t *h, const char *app, const char *name, tc_waiter_t *w,
                           int *err)
{
    tc_stream_t *s = tc_hub_find(h, app, name);

    if (s != NULL) {
        *err = 0;
        return s;
    }
    *err = -ENOENT;
    if (h->source.want != NULL && h->source.want(h->source.arg, app, name, w) == 0)
        *err = -EINPROGRESS;
    return NULL;
}

void tc_waiter_cancel(tc_waiter_t *w)
{
    if (w->head == NULL)
        return;
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        *w->head = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    w->head = NULL;
}
