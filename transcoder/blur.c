/* transcoder/blur: see blur.h. */
#include "transcoder/blur.h"

#include "core/arena.h"
#include "core/log.h"
#include "core/loop.h"
#include "proto/amf0.h"
#include "transcoder/blur_detect.h"
#include "transcoder/tc_int.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <libavcodec/avcodec.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_QUEUED 300        /* input frames (10 s at 30 fps): past it, fail */
#define MAX_NOTES 8
#define MAX_REGIONS (BLUR_DETECT_MAX * 2 + TC_BLUR_MAX_STATIC + MAX_NOTES)

typedef struct item {
    struct item *next;
    uint32_t ts;
    uint64_t arrival_us;
    uint32_t len;
    uint8_t key, config;
    uint8_t data[];
} item_t;

typedef struct note {
    blur_rect_t r;
    uint64_t until_ms;
} note_t;

typedef struct held {
    AVFrame *f;
    uint64_t arrival_us;
    int n;
    blur_rect_t r[BLUR_DETECT_MAX * 2 + BLUR_DETECT_MAX * BLUR_DETECT_DELAY];
} held_t;

struct tc_blur {
    tc_stream_t *stream;
    struct event *ev;
    int efd;
    pthread_t th;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    item_t *in_head, *in_tail;
    int in_n;
    item_t *out_head, *out_tail;
    int stop;
    /* regions from the app and the API (under mu) */
    blur_rect_t statics[TC_BLUR_MAX_STATIC];
    int nstatic;
    note_t notes[MAX_NOTES];
    /* worker → loop */
    atomic_int failed;
    char reason[128];
    atomic_ullong frames_in, frames_out, frames_blurred, detections;
    /* loop only */
    int logged, passthrough, off;
    uint8_t *src_config;
    uint32_t src_config_len;
    uint32_t src_config_ts;
    /* worker only */
    AVCodecContext *dec, *enc;
    AVPacket *pkt, *opkt;
    AVFrame *frm;
    int width, height, seen_key;
    double fps, kbps;          /* copied from the stream at start */
    int preset;
    blur_detect_t *det;
    void *scratch;
    uint8_t *save;
    size_t save_cap;
    held_t held[BLUR_DETECT_DELAY + 1];
    int nheld;
    uint8_t *extradata;
    int extradata_len;
    int sent_config;
};

int tc_blur_wanted(const char *options, int dflt)
{
    const char *p = options;
    while (p != NULL && *p != '\0') {
        if (strncmp(p, "blur=", 5) == 0) {
            const char *v = p + 5;
            size_t n = strcspn(v, "&");
            if ((n == 1 && *v == '1') || (n == 3 && strncmp(v, "yes", 3) == 0) ||
                (n == 2 && strncmp(v, "on", 2) == 0))
                return 1;
            if ((n == 1 && *v == '0') || (n == 2 && strncmp(v, "no", 2) == 0) ||
                (n == 3 && strncmp(v, "off", 3) == 0))
                return 0;
        }
        p = strchr(p, '&');
        if (p != NULL)
            p++;
    }
    return dflt;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* ---- worker ------------------------------------------------------------- */

static void fail(tc_blur_t *b, const char *why)
{
    if (atomic_load(&b->failed))
        return;
    pthread_mutex_lock(&b->mu);
    snprintf(b->reason, sizeof(b->reason), "%s", why);
    pthread_mutex_unlock(&b->mu);
    atomic_store(&b->failed, 1);
    uint64_t one = 1;
    if (write(b->efd, &one, sizeof(one)) < 0) {
        /* the counter is only a wake-up; a full one wakes the loop too */
    }
}

static void emit(tc_blur_t *b, item_t *it)
{
    pthread_mutex_lock(&b->mu);
    if (b->out_tail)
        b->out_tail->next = it;
    else
        b->out_head = it;
    b->out_tail = it;
    pthread_mutex_unlock(&b->mu);
    uint64_t one = 1;
    if (write(b->efd, &one, sizeof(one)) < 0) {
        /* see fail() */
    }
}

static item_t *item_new(uint32_t len)
{
    item_t *it = core_malloc(CORE_TAG_BLUR, sizeof(item_t) + len);
    if (it) {
        memset(it, 0, sizeof(*it));
        it->len = len;
    }
    return it;
}

/* Annex B (start codes) → NAL units. Calls cb for each. */
typedef void (*nal_cb)(void *arg, const uint8_t *nal, size_t n);
static void annexb_split(const uint8_t *p, size_t n, nal_cb cb, void *arg)
{
    size_t i = 0, start = SIZE_MAX;
    while (i + 3 <= n) {
        if (p[i] == 0 && p[i + 1] == 0 && p[i + 2] == 1) {
            if (start != SIZE_MAX) {
                size_t end = i;
                while (end > start && p[end - 1] == 0)
                    end--;
                cb(arg, p + start, end - start);
            }
            i += 3;
            start = i;
        } else {
            i++;
        }
    }
    if (start != SIZE_MAX && start < n)
        cb(arg, p + start, n - start);
}

typedef struct avcc_w {
    uint8_t *p;
    size_t len, cap;
    const uint8_t *sps, *pps;
    size_t sps_n, pps_n;
} avcc_w_t;

static void put_len_nal(void *arg, const uint8_t *nal, size_t n)
{
    avcc_w_t *w = arg;
    if (w->len + 4 + n > w->cap)
        return;
    w->p[w->len++] = (uint8_t)(n >> 24);
    w->p[w->len++] = (uint8_t)(n >> 16);
    w->p[w->len++] = (uint8_t)(n >> 8);
    w->p[w->len++] = (uint8_t)n;
    memcpy(w->p + w->len, nal, n);
    w->len += n;
}

static void find_ps(void *arg, const uint8_t *nal, size_t n)
{
    avcc_w_t *w = arg;
    if (n < 4)
        return;
    if ((nal[0] & 0x1f) == 7 && !w->sps) {
        w->sps = nal;
        w->sps_n = n;
    } else if ((nal[0] & 0x1f) == 8 && !w->pps) {
        w->pps = nal;
        w->pps_n = n;
    }
}

/* The encoder's sequence header as an FLV AVC sequence header message. */
static int send_config(tc_blur_t *b, uint32_t ts, uint64_t arrival_us)
{
    avcc_w_t w = {0};
    annexb_split(b->enc->extradata, (size_t)b->enc->extradata_size, find_ps, &w);
    if (!w.sps || !w.pps || w.sps_n > 0xffff || w.pps_n > 0xffff)
        return -EPROTO;
    item_t *it = item_new((uint32_t)(5 + 11 + w.sps_n + w.pps_n));
    if (!it)
        return -ENOMEM;
    uint8_t *q = it->data;
    q[0] = 0x17;
    q[1] = 0;
    q[2] = q[3] = q[4] = 0;
    q += 5;
    *q++ = 1;
    *q++ = w.sps[1];
    *q++ = w.sps[2];
    *q++ = w.sps[3];
    *q++ = 0xff;
    *q++ = 0xe1;
    *q++ = (uint8_t)(w.sps_n >> 8);
    *q++ = (uint8_t)w.sps_n;
    memcpy(q, w.sps, w.sps_n);
    q += w.sps_n;
    *q++ = 1;
    *q++ = (uint8_t)(w.pps_n >> 8);
    *q++ = (uint8_t)w.pps_n;
    memcpy(q, w.pps, w.pps_n);
    it->ts = ts;
    it->config = 1;
    it->key = 1;
    it->arrival_us = arrival_us;
    emit(b, it);
    return 0;
}

static int drain_encoder(tc_blur_t *b, uint64_t arrival_us)
{
    for (;;) {
        int rc = avcodec_receive_packet(b->enc, b->opkt);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0)
            return rc;
        if (!b->sent_config) {
            if (send_config(b, (uint32_t)b->opkt->dts, arrival_us) != 0) {
                av_packet_unref(b->opkt);
                return -EPROTO;
            }
            b->sent_config = 1;
        }
        size_t cap = (size_t)b->opkt->size + 64;
        item_t *it = item_new((uint32_t)(5 + cap));
        if (!it) {
            av_packet_unref(b->opkt);
            return -ENOMEM;
        }
        avcc_w_t w = {.p = it->data + 5, .cap = cap};
        annexb_split(b->opkt->data, (size_t)b->opkt->size, put_len_nal, &w);
        int key = (b->opkt->flags & AV_PKT_FLAG_KEY) != 0;
        int64_t cts = b->opkt->pts - b->opkt->dts;
        if (cts < 0 || cts > 0x7fffff)
            cts = 0;
        it->data[0] = key ? 0x17 : 0x27;
        it->data[1] = 1;
        it->data[2] = (uint8_t)(cts >> 16);
        it->data[3] = (uint8_t)(cts >> 8);
        it->data[4] = (uint8_t)cts;
        it->len = (uint32_t)(5 + w.len);
        it->ts = (uint32_t)b->opkt->dts;
        it->key = (uint8_t)key;
        it->arrival_us = arrival_us;
        av_packet_unref(b->opkt);
        emit(b, it);
        atomic_fetch_add(&b->frames_out, 1);
    }
}

static int open_encoder(tc_blur_t *b, const AVFrame *f)
{
    const AVCodec *c = avcodec_find_encoder_by_name("libx264");
    if (!c)
        return -ENOENT;
    b->enc = avcodec_alloc_context3(c);
    if (!b->enc)
        return -ENOMEM;
    b->enc->width = f->width;
    b->enc->height = f->height;
    b->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    b->enc->time_base = (AVRational){1, 1000};
    b->enc->framerate = av_d2q(b->fps, 100000);
    b->enc->gop_size = 100000;   /* keyframes only where the source has them */
    b->enc->max_b_frames = 0;
    b->enc->thread_count = 1;
    b->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    b->enc->color_range = f->color_range;
    b->enc->colorspace = f->colorspace;
    b->enc->color_primaries = f->color_primaries;
    b->enc->color_trc = f->color_trc;
    static const char *const presets[] = {"ultrafast", "superfast", "veryfast"};
    av_opt_set(b->enc->priv_data, "preset", presets[b->preset >= 0 && b->preset < 3 ? b->preset : 1], 0);
    av_opt_set(b->enc->priv_data, "tune", "zerolatency", 0);
    av_opt_set(b->enc->priv_data, "crf", "18", 0);
    av_opt_set(b->enc->priv_data, "forced-idr", "1", 0);
    av_opt_set(b->enc->priv_data, "x264-params", "scenecut=0", 0);
    double kbps = b->kbps;
    if (kbps > 0) {
        /* near the source's rate: a cap of twice the measured average */
        b->enc->rc_max_rate = (int64_t)(kbps * 2000);
        b->enc->rc_buffer_size = (int)(kbps * 2000);
    }
    int rc = avcodec_open2(b->enc, c, NULL);
    return rc < 0 ? rc : 0;
}

static void held_regions_add(held_t *h, const blur_rect_t *r, int n)
{
    int cap = (int)(sizeof(h->r) / sizeof(h->r[0]));
    for (int i = 0; i < n && h->n < cap; i++)
        h->r[h->n++] = r[i];
}

/* Exactly what rect_copy moves for r. */
static size_t rect_bytes_exact(blur_rect_t r)
{
    size_t n = 0;
    for (int pl = 0; pl < 3; pl++) {
        int sh = pl ? 1 : 0;
        size_t w = (size_t)(((r.x + r.w + sh) >> sh) - (r.x >> sh));
        size_t h = (size_t)(((r.y + r.h + sh) >> sh) - (r.y >> sh));
        n += w * h;
    }
    return n;
}

/* Copy the rectangle's pixels of the three planes to (dir 0) or back from
 * (dir 1) p. Returns bytes. */
static size_t rect_copy(AVFrame *f, blur_rect_t r, uint8_t *p, int dir)
{
    size_t off = 0;
    for (int pl = 0; pl < 3; pl++) {
        int sh = pl ? 1 : 0;
        int x0 = r.x >> sh, y0 = r.y >> sh;
        int x1 = (r.x + r.w + sh) >> sh, y1 = (r.y + r.h + sh) >> sh;
        for (int y = y0; y < y1; y++) {
            uint8_t *row = f->data[pl] + (size_t)y * f->linesize[pl] + x0;
            if (dir == 0)
                memcpy(p + off, row, (size_t)(x1 - x0));
            else
                memcpy(row, p + off, (size_t)(x1 - x0));
            off += (size_t)(x1 - x0);
        }
    }
    return off;
}

/* Blur the oldest held frame with its regions plus the app's and the
 * API's, encode it, put the pixels back. */
static int output_frame(tc_blur_t *b, held_t *h)
{
    blur_rect_t r[MAX_REGIONS];
    int n = 0;
    for (int i = 0; i < h->n && n < MAX_REGIONS; i++)
        r[n++] = h->r[i];
    if (h->n > 0)
        atomic_fetch_add(&b->detections, 1);
    pthread_mutex_lock(&b->mu);
    for (int i = 0; i < b->nstatic && n < MAX_REGIONS; i++)
        r[n++] = b->statics[i];
    uint64_t now = now_ms();
    for (int i = 0; i < MAX_NOTES && n < MAX_REGIONS; i++)
        if (b->notes[i].until_ms > now)
            r[n++] = b->notes[i].r;
    pthread_mutex_unlock(&b->mu);

    AVFrame *f = h->f;
    size_t need = 0;
    int m = 0;
    for (int i = 0; i < n; i++) {
        /* even coordinates keep luma and chroma rectangles aligned */
        r[i].w += r[i].x & 1;
        r[i].x &= ~1;
        r[i].h += r[i].y & 1;
        r[i].y &= ~1;
        if (blur_rect_clip(&r[i], b->width, b->height)) {
            r[m++] = r[i];
            need += rect_bytes_exact(r[i]);
        }
    }
    n = m;
    if (need > b->save_cap) {
        uint8_t *p = core_realloc(CORE_TAG_BLUR, b->save, need);
        if (!p)
            return -ENOMEM;
        b->save = p;
        b->save_cap = need;
    }
    size_t off = 0;
    uint8_t *const planes[3] = {f->data[0], f->data[1], f->data[2]};
    const int strides[3] = {f->linesize[0], f->linesize[1], f->linesize[2]};
    int radius = blur_box_radius(b->height);
    for (int i = 0; i < n; i++) {
        off += rect_copy(f, r[i], b->save + off, 0);
        blur_box_frame(planes, strides, b->width, b->height, 1, 1, r[i], radius, b->scratch);
    }
    if (n > 0)
        atomic_fetch_add(&b->frames_blurred, 1);
    f->pict_type = f->key_frame ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
    f->pts = f->best_effort_timestamp;
    int rc = avcodec_send_frame(b->enc, f);
    if (rc == 0)
        rc = drain_encoder(b, h->arrival_us);
    /* the encoder has its copy: restore the decoder's picture */
    /* overlapping rectangles: put back in reverse order of saving */
    for (int i = n - 1; i >= 0; i--) {
        off -= rect_bytes_exact(r[i]);
        rect_copy(f, r[i], b->save + off, 1);
    }
    return rc;
}

static void release_held(tc_blur_t *b)
{
    for (int i = 0; i < b->nheld; i++)
        av_frame_free(&b->held[i].f);
    b->nheld = 0;
}

static int on_frame(tc_blur_t *b, AVFrame *f, uint64_t arrival_us)
{
    if (f->format != AV_PIX_FMT_YUV420P && f->format != AV_PIX_FMT_YUVJ420P) {
        fail(b, "pixel format not 4:2:0");
        return -ENOTSUP;
    }
    if (b->width == 0) {
        if (f->width < 64 || f->height < 64 || (f->width & 1) || (f->height & 1) || f->width > 8192 ||
            f->height > 8192) {
            fail(b, "frame size not supported");
            return -ENOTSUP;
        }
        b->width = f->width;
        b->height = f->height;
        if (blur_detect_new(&b->det, b->width, b->height, b->fps) != 0) {
            fail(b, "out of memory");
            return -ENOMEM;
        }
        b->scratch = core_aligned_alloc(CORE_TAG_BLUR, 16,
                                        blur_box_scratch_size(b->width, blur_box_radius(b->height)));
        int rc = b->scratch ? open_encoder(b, f) : -ENOMEM;
        if (rc != 0) {
            fail(b, "encoder (libx264) could not be opened");
            return rc;
        }
    } else if (f->width != b->width || f->height != b->height) {
        fail(b, "resolution changed mid-stream");
        return -ENOTSUP;
    }
    blur_detect_result_t res;
    blur_detect_frame(b->det, f->data[0], f->linesize[0], f->data[1], f->linesize[1], f->data[2],
                      f->linesize[2], &res);
    for (int i = 0; i < b->nheld; i++)
        held_regions_add(&b->held[i], res.back, res.nback);
    held_t *h = &b->held[b->nheld++];
    h->f = av_frame_clone(f);
    h->n = 0;
    h->arrival_us = arrival_us;
    if (!h->f) {
        b->nheld--;
        fail(b, "out of memory");
        return -ENOMEM;
    }
    held_regions_add(h, res.rects, res.n);
    if (b->nheld > BLUR_DETECT_DELAY) {
        int rc = output_frame(b, &b->held[0]);
        av_frame_free(&b->held[0].f);
        memmove(&b->held[0], &b->held[1], sizeof(held_t) * (size_t)(b->nheld - 1));
        b->nheld--;
        if (rc != 0) {
            fail(b, "encode failed");
            return rc;
        }
    }
    return 0;
}

static int open_decoder(tc_blur_t *b, const item_t *it)
{
    int codec = it->data[0] & 0x0f;
    if (codec != 7) {
        fail(b, "codec not supported by the blur encoder (H.264 only)");
        return -ENOTSUP;
    }
    if (b->dec) {
        if (it->len - 5 == (uint32_t)b->extradata_len && memcmp(it->data + 5, b->extradata, it->len - 5) == 0)
            return 0;
        fail(b, "new sequence header mid-stream");
        return -ENOTSUP;
    }
    const AVCodec *c = avcodec_find_decoder(AV_CODEC_ID_H264);
    if (!c)
        goto nodec;
    b->dec = avcodec_alloc_context3(c);
    if (!b->dec)
        goto nodec;
    b->dec->extradata = av_mallocz(it->len - 5 + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!b->dec->extradata)
        goto nodec;
    memcpy(b->dec->extradata, it->data + 5, it->len - 5);
    b->dec->extradata_size = (int)(it->len - 5);
    b->dec->thread_count = 1;   /* the blur writes into its pictures: no frame threads */
    b->dec->pkt_timebase = (AVRational){1, 1000};
    b->extradata = (uint8_t *)core_memdup(CORE_TAG_BLUR, it->data + 5, it->len - 5);
    b->extradata_len = (int)(it->len - 5);
    if (!b->extradata || avcodec_open2(b->dec, c, NULL) < 0)
        goto nodec;
    return 0;
nodec:
    fail(b, "decoder could not be opened");
    return -ENOTSUP;
}

static int process(tc_blur_t *b, const item_t *it)
{
    if (it->len < 5)
        return 0;
    if (it->config)
        return open_decoder(b, it);
    if (!b->dec)
        return 0;   /* frames before the sequence header */
    if (it->data[1] != 1)
        return 0;   /* end of sequence */
    if (!b->seen_key && !it->key)
        return 0;   /* start at a keyframe */
    b->seen_key = 1;
    atomic_fetch_add(&b->frames_in, 1);
    int32_t cts = (int32_t)((uint32_t)it->data[2] << 16 | (uint32_t)it->data[3] << 8 | it->data[4]);
    if (cts & 0x800000)
        cts -= 0x1000000;
    b->pkt->data = (uint8_t *)it->data + 5;
    b->pkt->size = (int)(it->len - 5);
    b->pkt->dts = it->ts;
    b->pkt->pts = (int64_t)it->ts + cts;
    b->pkt->flags = it->key ? AV_PKT_FLAG_KEY : 0;
    int rc = avcodec_send_packet(b->dec, b->pkt);
    b->pkt->data = NULL;
    b->pkt->size = 0;
    if (rc < 0) {
        fail(b, "decode error");
        return rc;
    }
    for (;;) {
        rc = avcodec_receive_frame(b->dec, b->frm);
        if (rc == AVERROR(EAGAIN) || rc == AVERROR_EOF)
            return 0;
        if (rc < 0) {
            fail(b, "decode error");
            return rc;
        }
        if (b->frm->decode_error_flags || (b->frm->flags & AV_FRAME_FLAG_CORRUPT)) {
            av_frame_unref(b->frm);
            fail(b, "decode error");
            return -EPROTO;
        }
        rc = on_frame(b, b->frm, it->arrival_us);
        av_frame_unref(b->frm);
        if (rc != 0)
            return rc;
    }
}

static void *worker(void *arg)
{
    tc_blur_t *b = arg;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        while (!b->stop && b->in_head == NULL)
            pthread_cond_wait(&b->cv, &b->mu);
        item_t *list = b->in_head;
        b->in_head = b->in_tail = NULL;
        b->in_n = 0;
        int stop = b->stop;
        pthread_mutex_unlock(&b->mu);
        while (list) {
            item_t *next = list->next;
            if (!stop && !atomic_load(&b->failed))
                process(b, list);
            core_free(list);
            list = next;
        }
        if (stop)
            break;
        if (atomic_load(&b->failed))
            release_held(b);
        core_mem_thread_flush();
    }
    release_held(b);
    core_mem_thread_flush();
    return NULL;
}

/* ---- loop side ---------------------------------------------------------- */

static void push_to_hub(tc_stream_t *s, const item_t *it)
{
    s->blur_emitting = 1;
    int rc = tc_hub_push(s, FLV_TAG_VIDEO, it->ts, it->data, it->len, it->arrival_us);
    s->blur_emitting = 0;
    if (rc != 0)
        core_log_warn("blur", "output message refused", "stream=%s err=%d", s->name, rc);
}

static void check_failed(tc_blur_t *b)
{
    if (!atomic_load(&b->failed) || b->logged)
        return;
    b->logged = 1;
    char why[128];
    pthread_mutex_lock(&b->mu);
    snprintf(why, sizeof(why), "%s", b->reason);
    pthread_mutex_unlock(&b->mu);
    core_log_warn("blur", "blur pipeline failed, stream falls back to passthrough", "stream=%s reason=\"%s\"",
                  b->stream->name, why);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_blur_t *b = arg;
    uint64_t v;
    (void)what;
    if (read(fd, &v, sizeof(v)) < 0) {
        /* EAGAIN: nothing pending */
    }
    pthread_mutex_lock(&b->mu);
    item_t *list = b->out_head;
    b->out_head = b->out_tail = NULL;
    pthread_mutex_unlock(&b->mu);
    int any = 0;
    while (list) {
        item_t *next = list->next;
        if (!b->passthrough && !b->off) {
            push_to_hub(b->stream, list);
            any = 1;
        }
        core_free(list);
        list = next;
    }
    if (any)
        tc_hub_flush(b->stream);
    check_failed(b);
}

int tc_blur_start(tc_stream_t *s, struct event_base *base)
{
    tc_blur_t *b = core_calloc(CORE_TAG_BLUR, 1, sizeof(*b));
    int rc = -ENOMEM;
    if (!b)
        return -ENOMEM;
    /* libx264 prints its settings at FFmpeg's default level (info) to
     * stderr, outside our log format: keep FFmpeg to warnings and up */
    if (av_log_get_level() > AV_LOG_WARNING)
        av_log_set_level(AV_LOG_WARNING);
    b->stream = s;
    /* the worker reads only its own copies of the stream's figures */
    b->fps = s->info.fps_meta > 0 ? s->info.fps_meta : 30;
    b->kbps = s->info.kbps;
    b->preset = s->hub->conf->blur_preset;
    b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (b->efd < 0) {
        rc = -errno;
        goto fail_fd;
    }
    b->ev = event_new(base, b->efd, EV_READ | EV_PERSIST, wake_cb, b);
    if (!b->ev || event_add(b->ev, NULL) != 0)
        goto fail_ev;
    b->pkt = av_packet_alloc();
    b->opkt = av_packet_alloc();
    b->frm = av_frame_alloc();
    if (!b->pkt || !b->opkt || !b->frm)
        goto fail_av;
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    rc = -pthread_create(&b->th, NULL, worker, b);
    if (rc != 0)
        goto fail_thread;
    b->started = 1;
    s->blur = b;
    return 0;
fail_thread:
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
fail_av:
    av_packet_free(&b->pkt);
    av_packet_free(&b->opkt);
    av_frame_free(&b->frm);
fail_ev:
    if (b->ev)
        event_free(b->ev);
    close(b->efd);
fail_fd:
    core_free(b);
    return rc;
}

static void free_list(item_t *l)
{
    while (l) {
        item_t *n = l->next;
        core_free(l);
        l = n;
    }
}

void tc_blur_stop(tc_stream_t *s)
{
    tc_blur_t *b = s->blur;
    if (!b)
        return;
    pthread_mutex_lock(&b->mu);
    b->stop = 1;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    pthread_join(b->th, NULL);
    free_list(b->in_head);
    free_list(b->out_head);
    event_free(b->ev);
    close(b->efd);
    avcodec_free_context(&b->dec);
    avcodec_free_context(&b->enc);
    av_packet_free(&b->pkt);
    av_packet_free(&b->opkt);
    av_frame_free(&b->frm);
    blur_detect_free(&b->det);
    core_free(b->scratch);
    core_free(b->save);
    core_free(b->extradata);
    core_free(b->src_config);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    core_free(b);
    s->blur = NULL;
}

/* Passthrough from here: the source's sequence header, then its video from
 * the next keyframe (this one if it is one). */
static int start_passthrough(tc_blur_t *b, int key)
{
    if (!key)
        return 0;
    b->passthrough = 1;
    if (b->src_config) {
        tc_stream_t *s = b->stream;
        s->blur_emitting = 1;
        tc_hub_push(s, FLV_TAG_VIDEO, b->src_config_ts, b->src_config, b->src_config_len, 0);
        s->blur_emitting = 0;
    }
    return 1;
}

int tc_blur_take(tc_blur_t *b, uint32_t ts, const uint8_t *payload, uint32_t len,
                 uint64_t arrival_us)
{
    if (len < 2)
        return 1;
    /* legacy FLV video tags: codec id in the low nibble, AVC packet type
     * next; enhanced RTMP (bit 7): packet type in the low nibble */
    int ex = (payload[0] & 0x80) != 0;
    int codec = ex ? -1 : payload[0] & 0x0f;
    int config = ex ? (payload[0] & 0x0f) == 0 : payload[1] == 0 && (codec == 7 || codec == 12);
    int key = ((payload[0] >> 4) & 0x07) == 1 && !config;
    if (config) {
        uint8_t *c = (uint8_t *)core_memdup(CORE_TAG_BLUR, payload, len);
        if (!c)
            return -ENOMEM;
        core_free(b->src_config);
        b->src_config = c;
        b->src_config_len = len;
        b->src_config_ts = ts;
    }
    if (b->passthrough)
        return 1;
    if (atomic_load(&b->failed) || b->off) {
        check_failed(b);
        return config ? 0 : start_passthrough(b, key);
    }
    if (codec != 7) {
        fail(b, "codec not supported by the blur encoder (H.264 only)");
        check_failed(b);
        return start_passthrough(b, key);
    }
    item_t *it = item_new(len);
    if (!it)
        return -ENOMEM;
    memcpy(it->data, payload, len);
    it->ts = ts;
    it->arrival_us = arrival_us;
    it->key = (uint8_t)key;
    it->config = (uint8_t)config;
    pthread_mutex_lock(&b->mu);
    int over = b->in_n >= MAX_QUEUED;
    if (!over) {
        if (b->in_tail)
            b->in_tail->next = it;
        else
            b->in_head = it;
        b->in_tail = it;
        b->in_n++;
        pthread_cond_signal(&b->cv);
    }
    pthread_mutex_unlock(&b->mu);
    if (over) {
        core_free(it);
        fail(b, "worker more than 10 s behind");
        check_failed(b);
        return start_passthrough(b, key);
    }
    return 0;
}

int tc_blur_set_static(tc_blur_t *b, const blur_rect_t *r, int n)
{
    if (n < 0 || n > TC_BLUR_MAX_STATIC)
        return -EINVAL;
    for (int i = 0; i < n; i++)
        if (r[i].w <= 0 || r[i].h <= 0 || r[i].w > 8192 || r[i].h > 8192 || r[i].x < 0 ||
            r[i].y < 0 || r[i].x > 8192 || r[i].y > 8192)
            return -EINVAL;
    pthread_mutex_lock(&b->mu);
    memcpy(b->statics, r, sizeof(*r) * (size_t)n);
    b->nstatic = n;
    pthread_mutex_unlock(&b->mu);
    return 0;
}

int tc_blur_notification(tc_stream_t *s, core_scope_t *scope, const uint8_t *p, size_t len)
{
    amf0_value_t *v;
    ssize_t k = amf0_parse(scope, p, len, &v);
    if (k < 0 || (v->type != AMF0_OBJECT && v->type != AMF0_ECMA_ARRAY))
        return -EPROTO;
    double x = amf0_get_num(v, "x", -1), y = amf0_get_num(v, "y", -1);
    double w = amf0_get_num(v, "width", -1), h = amf0_get_num(v, "height", -1);
    double d = amf0_get_num(v, "duration", 5);
    if (!(x >= 0 && x <= 8192 && y >= 0 && y <= 8192 && w > 0 && w <= 8192 && h > 0 && h <= 8192 &&
          d > 0 && d <= 60))
        return -EPROTO;
    tc_blur_t *b = s->blur;
    if (!b)
        return -ENOENT;
    blur_rect_t r = {(int)x, (int)y, (int)w, (int)h};
    uint64_t now = now_ms();
    pthread_mutex_lock(&b->mu);
    int slot = 0;
    for (int i = 0; i < MAX_NOTES; i++)
        if (b->notes[i].until_ms < b->notes[slot].until_ms)
            slot = i;
    b->notes[slot].r = r;
    b->notes[slot].until_ms = now + (uint64_t)(d * 1000);
    pthread_mutex_unlock(&b->mu);
    core_log_info("blur", "notification region", "stream=%s x=%d y=%d w=%d h=%d ms=%d", s->name, r.x, r.y,
                  r.w, r.h, (int)(d * 1000));
    return 0;
}

void tc_blur_json(const tc_stream_t *s, struct evbuffer *out)
{
    tc_blur_t *b = s->blur;
    if (!b) {
        evbuffer_add_printf(out, "{\"on\":false}");
        return;
    }
    const char *status = b->off ? "off" : atomic_load(&b->failed) ? "passthrough" : "on";
    char why[128] = "";
    pthread_mutex_lock(&b->mu);
    if (atomic_load(&b->failed))
        snprintf(why, sizeof(why), "%s", b->reason);
    int nstatic = b->nstatic;
    pthread_mutex_unlock(&b->mu);
    evbuffer_add_printf(out,
                        "{\"on\":%s,\"status\":\"%s\",\"failed\":%s,\"reason\":\"%s\","
                        "\"frames_in\":%llu,\"frames_out\":%llu,\"frames_blurred\":%llu,"
                        "\"static_regions\":%d}",
                        b->off ? "false" : "true", status, atomic_load(&b->failed) ? "true" : "false", why,
                        (unsigned long long)atomic_load(&b->frames_in),
                        (unsigned long long)atomic_load(&b->frames_out),
                        (unsigned long long)atomic_load(&b->frames_blurred), nstatic);
}

static int parse_regions(const char *v, size_t n, blur_rect_t *r, int *count)
{
    char buf[512];
    if (n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, v, n);
    buf[n] = '\0';
    *count = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
        int x, y, w, h, used = 0;
        if (*count >= TC_BLUR_MAX_STATIC)
            return -EINVAL;
        if (sscanf(tok, "%d,%d,%d,%d%n", &x, &y, &w, &h, &used) != 4 || tok[used] != '\0')
            return -EINVAL;
        r[(*count)++] = (blur_rect_t){x, y, w, h};
    }
    return 0;
}

int tc_blur_api(tc_stream_t *s, struct event_base *base, const char *query, const char **why)
{
    int on = -1, have_regions = 0, n = 0;
    blur_rect_t r[TC_BLUR_MAX_STATIC];
    const char *p = query ? query : "";
    while (*p) {
        size_t l = strcspn(p, "&");
        if (l >= 3 && strncmp(p, "on=", 3) == 0) {
            if (l == 4 && (p[3] == '0' || p[3] == '1'))
                on = p[3] - '0';
            else {
                *why = "on must be 0 or 1";
                return 400;
            }
        } else if (l >= 8 && strncmp(p, "regions=", 8) == 0) {
            char dec[512];
            size_t dl = 0;
            for (size_t i = 8; i < l && dl + 1 < sizeof(dec); i++) {
                if (p[i] == '%' && i + 2 < l && strncmp(p + i, "%3B", 3) == 0) {
                    dec[dl++] = ';';
                    i += 2;
                } else if (p[i] == '%' && i + 2 < l && strncmp(p + i, "%2C", 3) == 0) {
                    dec[dl++] = ',';
                    i += 2;
                } else {
                    dec[dl++] = p[i];
                }
            }
            if (parse_regions(dec, dl, r, &n) != 0) {
                *why = "regions: up to 8 of x,y,w,h separated by ;";
                return 400;
            }
            have_regions = 1;
        } else {
            *why = "unknown parameter (on, regions)";
            return 400;
        }
        p += l;
        if (*p == '&')
            p++;
    }
    if (on == 0 && s->blur) {
        s->blur->off = 1;
    } else if (on == 1 && (!s->blur || s->blur->off || atomic_load(&s->blur->failed))) {
        /* the source's sequence header: kept by a pipeline in
         * passthrough, else the hub's (the source's while blur is off) */
        uint8_t *cfg = NULL;
        uint32_t cfg_len = 0, cfg_ts = 0;
        if (s->blur && s->blur->src_config) {
            cfg = s->blur->src_config;
            cfg_len = s->blur->src_config_len;
            cfg_ts = s->blur->src_config_ts;
            s->blur->src_config = NULL;
        } else if (!s->blur && s->vconfig) {
            cfg = (uint8_t *)core_memdup(CORE_TAG_BLUR, tc_pkt_payload(s->vconfig), s->vconfig->len);
            cfg_len = s->vconfig->len;
            cfg_ts = s->vconfig->ts;
        }
        tc_blur_stop(s);
        int rc = tc_blur_start(s, base);
        if (rc == 0 && cfg)
            rc = tc_blur_take(s->blur, cfg_ts, cfg, cfg_len, 0) < 0 ? -ENOMEM : 0;
        core_free(cfg);
        if (rc != 0) {
            *why = "could not start the pipeline";
            return 503;
        }
    }
    if (have_regions) {
        if (!s->blur) {
            *why = "blur is off for this stream";
            return 409;
        }
        if (tc_blur_set_static(s->blur, r, n) != 0) {
            *why = "invalid region";
            return 400;
        }
    }
    *why = "OK";
    return 200;
}
