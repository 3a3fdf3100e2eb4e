/* transcoder/cmaf: fragmented MP4 (CMAF) parts from libavformat's mp4
 * muxer writing into memory. */
#include "transcoder/cmaf.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <stdlib.h>
#include <string.h>

#define AVIO_BUF 65536
/* A single muxed part never exceeds this (a 200 ms part at 200 Mbit/s is
 * 5 MB); more means something is wrong upstream. */
#define PART_MAX_BYTES (64u << 20)

typedef struct pending {
    int have;
    int64_t dts, pts; /* ms, rebased */
    int key;
    uint8_t *data;
    size_t len;
} pending_t;

struct tc_cmaf {
    tc_cmaf_conf_t conf;
    tc_cmaf_cb cb;
    void *arg;
    AVFormatContext *fmt;
    AVIOContext *pb;
    int sidx[2];          /* stream index per track, -1: none */
    int main_track;       /* the track parts are cut on */
    int failed;

    uint8_t *out;         /* bytes written by the muxer since the last take */
    size_t out_len, out_cap;

    tc_cmaf_buf_t *init;
    tc_cmaf_seg_t *segs;  /* oldest first; segs[nsegs-1] in progress */
    size_t nsegs, segs_cap;
    uint64_t next_msn;

    int started;
    int64_t origin_ms;    /* first accepted dts: timestamps are rebased on it */
    int64_t wall_origin;  /* wall clock at origin */
    int64_t part_start;   /* rebased dts where the current part began */
    int part_key;
    size_t part_samples;
    int64_t seg_start;
    int64_t last_main_delta;
    int64_t last_audio_delta;
    pending_t pend[2];
    uint64_t video_frames;   /* since the start, for the frame rate */
    int64_t video_ms;        /* their total duration */
    int oom;                 /* write_cb ran out of memory */
    int audio_rate;          /* samples per second */
    int64_t a_next;          /* where the next audio frame starts, track time base */
    uint32_t max_seg_ms;

    uint8_t video_cfg[4];    /* avcC profile, compat, level */
    int video_codec, have_video_cfg;
    int aac_object;
    int width, height;
};

void tc_cmaf_buf_ref(tc_cmaf_buf_t *b)
{
    b->refs++;
}

void tc_cmaf_buf_unref(tc_cmaf_buf_t **bp)
{
    tc_cmaf_buf_t *b = *bp;

    if (b == NULL)
        return;
    *bp = NULL;
    if (--b->refs == 0)
        core_free(b);
}

static tc_cmaf_buf_t *buf_new(const uint8_t *p, size_t n)
{
    tc_cmaf_buf_t *b = core_malloc(CORE_TAG_HLS, sizeof(*b) + n);

    if (b == NULL)
        return NULL;
    b->refs = 1;
    b->len = n;
    memcpy(b->data, p, n);
    return b;
}

static int write_cb(void *opaque, uint8_t *buf, int len)
{
    tc_cmaf_t *c = opaque;

    if (len <= 0)
        return 0;
    if (c->out_len + (size_t)len > c->out_cap) {
        size_t cap = c->out_cap ? c->out_cap : 65536;
        uint8_t *n;

        while (cap < c->out_len + (size_t)len)
            cap *= 2;
        if (cap > PART_MAX_BYTES)
            return AVERROR(ENOSPC);
        n = core_realloc(CORE_TAG_HLS, c->out, cap);
        if (n == NULL) {
            c->oom = 1;
            return AVERROR(ENOMEM);
        }
        c->out = n;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, (size_t)len);
    c->out_len += (size_t)len;
    return len;
}

/* Take what the muxer wrote as a new buffer. */
static tc_cmaf_buf_t *take_out(tc_cmaf_t *c)
{
    tc_cmaf_buf_t *b;

    avio_flush(c->pb);
    if (c->pb->error < 0)
        return NULL;
    b = buf_new(c->out, c->out_len);
    c->out_len = 0;
    return b;
}

/* ---- H.264 SPS: the picture size when the caller does not know it ---- */

typedef struct bits {
    const uint8_t *p;
    size_t n, pos; /* in bits */
    int err;
} bits_t;

static unsigned bit1(bits_t *b)
{
    unsigned v;

    if (b->pos >= b->n) {
        b->err = 1;
        return 0;
    }
    v = (b->p[b->pos >> 3] >> (7 - (b->pos & 7))) & 1;
    b->pos++;
    return v;
}

static unsigned bitsn(bits_t *b, int n)
{
    unsigned v = 0;

    while (n-- > 0)
        v = (v << 1) | bit1(b);
    return v;
}

static uint32_t ue(bits_t *b)
{
    int zeros = 0;

    while (!b->err && bit1(b) == 0)
        if (++zeros > 31) {
            b->err = 1;
            return 0;
        }
    return (uint32_t)((1ull << zeros) - 1 + bitsn(b, zeros));
}

static int32_t se(bits_t *b)
{
    uint32_t v = ue(b);

    return (v & 1) ? (int32_t)((v + 1) / 2) : -(int32_t)(v / 2);
}

static void skip_scaling_list(bits_t *b, int size)
{
    int last = 8, next = 8;

    for (int j = 0; j < size && !b->err; j++) {
        if (next != 0)
            next = (last + se(b) + 256) % 256;
        last = next == 0 ? last : next;
    }
}

/* Width and height from the first SPS of an avcC record. Returns 0 or
 * -EINVAL for a record or SPS that does not parse. */
static int avcc_size(const uint8_t *x, size_t n, int *w, int *h)
{
    uint8_t rbsp[256];
    size_t len, m = 0;
    bits_t b;
    unsigned profile, chroma = 1, frame_mbs_only, crop;
    uint32_t wmbs, hmaps, cl = 0, cr = 0, ct = 0, cb = 0;

    if (n < 8 || x[0] != 1 || (x[5] & 0x1f) == 0)
        return -EINVAL;
    len = ((size_t)x[6] << 8) | x[7];
    if (len < 4 || 8 + len > n)
        return -EINVAL;
    /* drop emulation prevention bytes (00 00 03) */
    for (size_t i = 0; i < len && m < sizeof(rbsp); i++) {
        if (i >= 2 && x[8 + i] == 3 && x[8 + i - 1] == 0 && x[8 + i - 2] == 0)
            continue;
        rbsp[m++] = x[8 + i];
    }
    b = (bits_t){rbsp, m * 8, 8, 0}; /* after the NAL header */
    profile = bitsn(&b, 8);
    bitsn(&b, 16); /* constraint flags, level */
    ue(&b);        /* sps id */
    if (profile == 100 || profile == 110 || profile == 122 || profile == 244 || profile == 44 ||
        profile == 83 || profile == 86 || profile == 118 || profile == 128 || profile == 138 ||
        profile == 139 || profile == 134 || profile == 135) {
        chroma = ue(&b);
        if (chroma == 3)
            bit1(&b);
        ue(&b);
        ue(&b);
        bit1(&b);
        if (bit1(&b))
            for (int i = 0; i < (chroma == 3 ? 12 : 8) && !b.err; i++)
                if (bit1(&b))
                    skip_scaling_list(&b, i < 6 ? 16 : 64);
    }
    ue(&b); /* log2_max_frame_num */
    switch (ue(&b)) {
    case 0:
        ue(&b);
        break;
    case 1: {
        uint32_t k;

        bit1(&b);
        se(&b);
        se(&b);
        k = ue(&b);
        if (k > 255)
            return -EINVAL;
        for (uint32_t i = 0; i < k; i++)
            se(&b);
        break;
    }
    default:
        break;
    }
    ue(&b); /* max_num_ref_frames */
    bit1(&b);
    wmbs = ue(&b) + 1;
    hmaps = ue(&b) + 1;
    frame_mbs_only = bit1(&b);
    if (!frame_mbs_only)
        bit1(&b);
    bit1(&b);
    crop = bit1(&b);
    if (crop) {
        cl = ue(&b);
        cr = ue(&b);
        ct = ue(&b);
        cb = ue(&b);
    }
    if (b.err || chroma > 3 || wmbs > 1024 || hmaps > 1024)
        return -EINVAL;
    {
        int ux = chroma == 1 || chroma == 2 ? 2 : 1;
        int uy = (chroma == 1 ? 2 : 1) * (2 - (int)frame_mbs_only);
        int64_t ww = (int64_t)wmbs * 16 - (int64_t)ux * (cl + cr);
        int64_t hh = (int64_t)hmaps * 16 * (2 - frame_mbs_only) - (int64_t)uy * (ct + cb);

        if (ww <= 0 || hh <= 0)
            return -EINVAL;
        *w = (int)ww;
        *h = (int)hh;
    }
    return 0;
}

static int add_stream(tc_cmaf_t *c, int track, const tc_cmaf_track_t *t)
{
    AVStream *st = avformat_new_stream(c->fmt, NULL);
    AVCodecParameters *par;

    if (st == NULL)
        return -ENOMEM;
    par = st->codecpar;
    par->codec_id = t->codec_id;
    if (track == TC_CMAF_VIDEO) {
        if (t->codec_id != AV_CODEC_ID_H264 && t->codec_id != AV_CODEC_ID_HEVC)
            return -EINVAL;
        par->width = t->width;
        par->height = t->height;
        if ((par->width <= 0 || par->height <= 0) && t->codec_id == AV_CODEC_ID_H264 &&
            avcc_size(t->extradata, t->extradata_len, &par->width, &par->height) != 0)
            return -EINVAL;
        if (par->width <= 0 || par->height <= 0 || par->width > 16384 || par->height > 16384)
            return -EINVAL;
        par->codec_type = AVMEDIA_TYPE_VIDEO;
        st->time_base = (AVRational){1, 90000};
        c->video_codec = t->codec_id;
        c->width = par->width;
        c->height = par->height;
        if (t->codec_id == AV_CODEC_ID_H264 && t->extradata_len >= 4 && t->extradata[0] == 1) {
            memcpy(c->video_cfg, t->extradata, 4);
            c->have_video_cfg = 1;
        }
    } else {
        if (t->codec_id != AV_CODEC_ID_AAC || t->sample_rate <= 0 || t->sample_rate > 192000 ||
            t->channels <= 0 || t->channels > 8)
            return -EINVAL;
        par->codec_type = AVMEDIA_TYPE_AUDIO;
        par->sample_rate = t->sample_rate;
        av_channel_layout_default(&par->ch_layout, t->channels);
        par->frame_size = 1024;
        c->audio_rate = t->sample_rate;
        st->time_base = (AVRational){1, t->sample_rate};
        if (t->extradata_len >= 1)
            c->aac_object = t->extradata[0] >> 3;
    }
    if (t->extradata_len == 0 || t->extradata_len > (1u << 20))
        return -EINVAL;
    par->extradata = av_mallocz(t->extradata_len + AV_INPUT_BUFFER_PADDING_SIZE);
    if (par->extradata == NULL)
        return -ENOMEM;
    memcpy(par->extradata, t->extradata, t->extradata_len);
    par->extradata_size = (int)t->extradata_len;
    c->sidx[track] = st->index;
    return 0;
}

static int seg_begin(tc_cmaf_t *c, int64_t dts)
{
    tc_cmaf_seg_t *s;

    if (c->nsegs == c->segs_cap) {
        size_t cap = c->segs_cap ? c->segs_cap * 2 : 8;
        tc_cmaf_seg_t *n = core_realloc(CORE_TAG_HLS, c->segs, cap * sizeof(*n));

        if (n == NULL)
            return -ENOMEM;
        c->segs = n;
        c->segs_cap = cap;
    }
    s = &c->segs[c->nsegs++];
    memset(s, 0, sizeof(*s));
    s->msn = c->next_msn++;
    s->pdt_ms = c->wall_origin + dts;
    c->seg_start = dts;
    return 0;
}

static void seg_release(tc_cmaf_seg_t *s)
{
    for (size_t i = 0; i < s->nparts; i++)
        tc_cmaf_buf_unref(&s->parts[i].buf);
    core_free(s->parts);
    s->parts = NULL;
    s->nparts = s->cap = 0;
}

/* Drop the oldest complete segments beyond the window. */
static void trim_window(tc_cmaf_t *c)
{
    size_t complete = c->nsegs > 0 && !c->segs[c->nsegs - 1].complete ? c->nsegs - 1 : c->nsegs;
    size_t drop = complete > c->conf.window_segments ? complete - c->conf.window_segments : 0;

    if (drop == 0)
        return;
    for (size_t i = 0; i < drop; i++)
        seg_release(&c->segs[i]);
    memmove(c->segs, c->segs + drop, (c->nsegs - drop) * sizeof(*c->segs));
    c->nsegs -= drop;
}

static int mux(tc_cmaf_t *c, int track, const pending_t *p, int64_t duration)
{
    AVStream *st = c->fmt->streams[c->sidx[track]];
    AVRational ms = {1, 1000};
    AVPacket *pkt = av_packet_alloc();
    int rv;

    if (pkt == NULL)
        return -ENOMEM;
    pkt->data = p->data;
    pkt->size = (int)p->len;
    pkt->stream_index = c->sidx[track];
    pkt->dts = av_rescale_q(p->dts, ms, st->time_base);
    pkt->pts = av_rescale_q(p->pts, ms, st->time_base);
    /* durations from rescaled end points, so rounding never accumulates */
    pkt->duration = av_rescale_q(p->dts + duration, ms, st->time_base) - pkt->dts;
    if (track == TC_CMAF_AUDIO) {
        /* an AAC frame is 1024 samples: millisecond timestamps would make
         * frames of 1014 and 1058 and leave holes a browser must jump
         * over; follow the sample clock while it stays within a frame of
         * the source's. A source that steps back further (a looped file)
         * would hand the muxer a time it has passed, which stops the
         * stream's packaging: its frames are dropped until the source is
         * back at the sample clock, so audio stays in sync with video */
        int64_t frame = av_rescale_q(1024, (AVRational){1, c->audio_rate}, st->time_base);

        if (c->a_next != INT64_MIN && pkt->dts < c->a_next - frame) {
            av_packet_free(&pkt);
            return 0;
        }
        if (c->a_next != INT64_MIN && llabs(pkt->dts - c->a_next) <= frame)
            pkt->dts = c->a_next;
        pkt->pts = pkt->dts;
        pkt->duration = frame;
        c->a_next = pkt->dts + frame;
    }
    if (p->key)
        pkt->flags |= AV_PKT_FLAG_KEY;
    rv = av_write_frame(c->fmt, pkt);
    av_packet_free(&pkt);
    if (rv < 0) {
        c->failed = 1;
        return -EIO;
    }
    if (track == TC_CMAF_VIDEO) {
        c->video_frames++;
        c->video_ms += duration;
    }
    c->part_samples++;
    return 0;
}

static void pending_clear(pending_t *p)
{
    core_free(p->data);
    memset(p, 0, sizeof(*p));
}

static int mux_pending(tc_cmaf_t *c, int track, int64_t duration)
{
    pending_t *p = &c->pend[track];
    int rv;

    if (!p->have)
        return 0;
    rv = mux(c, track, p, duration < 0 ? 0 : duration);
    pending_clear(p);
    return rv;
}

/* Close the current part at rebased dts end; start a new segment too when
 * new_seg. */
static int cut(tc_cmaf_t *c, int64_t end, int new_seg, int next_key)
{
    tc_cmaf_seg_t *s = &c->segs[c->nsegs - 1];
    tc_cmaf_part_t *part;
    tc_cmaf_buf_t *b;
    int rv;

    /* a pending audio frame goes into the next part: its duration is
     * known only when the next one arrives, and a guessed one would make
     * the next fragment's timeline overlap this one's */
    if (c->part_samples > 0) {
        if (av_write_frame(c->fmt, NULL) < 0) {
            c->failed = 1;
            return -EIO;
        }
        b = take_out(c);
        if (b == NULL) {
            c->failed = 1;
            return -ENOMEM;
        }
        if (s->nparts == s->cap) {
            size_t cap = s->cap ? s->cap * 2 : 8;
            tc_cmaf_part_t *n = core_realloc(CORE_TAG_HLS, s->parts, cap * sizeof(*n));

            if (n == NULL) {
                tc_cmaf_buf_unref(&b);
                return -ENOMEM;
            }
            s->parts = n;
            s->cap = cap;
        }
        part = &s->parts[s->nparts++];
        part->buf = b;
        part->duration_ms = (uint32_t)(end - c->part_start);
        part->independent = c->part_key;
        s->duration_ms = (uint32_t)(end - c->seg_start);
        s->bytes += b->len;
        c->part_samples = 0;
    }
    c->part_start = end;
    c->part_key = next_key;
    if (new_seg && s->nparts > 0) {
        s->complete = 1;
        if (s->duration_ms > c->max_seg_ms)
            c->max_seg_ms = s->duration_ms;
        rv = seg_begin(c, end);
        if (rv != 0)
            return rv;
        trim_window(c);
    }
    if (c->cb != NULL)
        c->cb(c->arg);
    return 0;
}

int tc_cmaf_write(tc_cmaf_t *c, const tc_cmaf_packet_t *in, int64_t wall_ms)
{
    int t = in->track;
    pending_t *p;
    int64_t dts, pts;
    int rv;

    if (c->failed)
        return -EIO;
    if ((t != TC_CMAF_VIDEO && t != TC_CMAF_AUDIO) || c->sidx[t] < 0 || in->len == 0 ||
        in->len > PART_MAX_BYTES)
        return -EINVAL;
    if (!c->started) {
        /* the first segment starts with a key frame of the main track */
        if (t != c->main_track || (t == TC_CMAF_VIDEO && !in->keyframe))
            return 0;
        c->started = 1;
        c->origin_ms = in->dts_ms;
        c->wall_origin = wall_ms;
        c->part_start = 0;
        c->part_key = 1;
        rv = seg_begin(c, 0);
        if (rv != 0)
            return rv;
    }
    dts = in->dts_ms - c->origin_ms;
    if (dts < 0)
        return 0; /* from before the first key frame */
    p = &c->pend[t];
    if (p->have && dts <= p->dts)
        dts = p->dts + 1;
    pts = in->pts_ms - c->origin_ms;
    if (pts < dts)
        pts = dts;
    if (p->have) {
        int64_t delta = dts - p->dts;

        if (t == c->main_track)
            c->last_main_delta = delta;
        if (t == TC_CMAF_AUDIO)
            c->last_audio_delta = delta;
        rv = mux_pending(c, t, delta);
        if (rv != 0)
            return rv;
    }
    if (t == c->main_track) {
        int64_t in_part = dts - c->part_start;
        int64_t in_seg = dts - c->seg_start;
        tc_cmaf_seg_t *s = &c->segs[c->nsegs - 1];
        int key = t == TC_CMAF_AUDIO || in->keyframe;
        int new_seg = (key && in_seg * 10 >= (int64_t)c->conf.segment_ms * 9) ||
                      s->nparts + 1 >= TC_CMAF_MAX_PARTS;

        if (c->part_samples > 0 &&
            (new_seg || in_part + c->last_main_delta > (int64_t)c->conf.part_ms)) {
            rv = cut(c, dts, new_seg, key);
            if (rv != 0)
                return rv;
        }
    }
    p->data = core_malloc(CORE_TAG_HLS, in->len);
    if (p->data == NULL)
        return -ENOMEM;
    memcpy(p->data, in->data, in->len);
    p->len = in->len;
    p->dts = dts;
    p->pts = pts;
    p->key = in->keyframe || t == TC_CMAF_AUDIO;
    p->have = 1;
    return 0;
}

int tc_cmaf_finish(tc_cmaf_t *c)
{
    int64_t end;
    pending_t *m;
    int rv;

    if (c->failed || !c->started)
        return c->failed ? -EIO : 0;
    m = &c->pend[c->main_track];
    end = m->have ? m->dts + (c->last_main_delta > 0 ? c->last_main_delta : 33) : c->part_start;
    rv = mux_pending(c, c->main_track, end - (m->have ? m->dts : end));
    if (rv != 0)
        return rv;
    if (c->part_samples == 0 && !c->pend[TC_CMAF_AUDIO].have)
        return 0;
    return cut(c, end, 1, 1);
}

int tc_cmaf_new(tc_cmaf_t **out, const tc_cmaf_conf_t *conf, const tc_cmaf_track_t *video,
                const tc_cmaf_track_t *audio, uint64_t first_msn, tc_cmaf_cb cb, void *arg)
{
    const AVOutputFormat *ofmt = av_guess_format("mp4", NULL, NULL);
    AVDictionary *opts = NULL;
    uint8_t *iobuf;
    tc_cmaf_t *c;
    int rv;

    if ((video == NULL && audio == NULL) || conf->part_ms < 100 || conf->part_ms > 1000 ||
        conf->segment_ms < conf->part_ms || conf->window_segments < 1 || ofmt == NULL)
        return -EINVAL;
    c = core_calloc(CORE_TAG_HLS, 1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->conf = *conf;
    c->cb = cb;
    c->arg = arg;
    c->next_msn = first_msn;
    c->sidx[0] = c->sidx[1] = -1;
    c->a_next = INT64_MIN;
    c->main_track = video != NULL ? TC_CMAF_VIDEO : TC_CMAF_AUDIO;
    rv = avformat_alloc_output_context2(&c->fmt, ofmt, NULL, NULL);
    if (rv < 0 || c->fmt == NULL) {
        rv = -ENOMEM;
        goto err_after_alloc;
    }
    iobuf = av_malloc(AVIO_BUF);
    if (iobuf == NULL) {
        rv = -ENOMEM;
        goto err_after_fmt;
    }
    c->pb = avio_alloc_context(iobuf, AVIO_BUF, 1, c, NULL, write_cb, NULL);
    if (c->pb == NULL) {
        av_free(iobuf);
        rv = -ENOMEM;
        goto err_after_fmt;
    }
    c->fmt->pb = c->pb;
    c->fmt->flags |= AVFMT_FLAG_CUSTOM_IO | AVFMT_FLAG_BITEXACT;
    if (video != NULL && (rv = add_stream(c, TC_CMAF_VIDEO, video)) != 0)
        goto err_after_pb;
    if (audio != NULL && (rv = add_stream(c, TC_CMAF_AUDIO, audio)) != 0)
        goto err_after_pb;
    /* fragments only where we cut (frag_custom), an empty moov for the
     * init segment, tfdt from each track's real first dts (frag_discont) */
    av_dict_set(&opts, "movflags",
                "frag_custom+empty_moov+default_base_moof+frag_discont+skip_trailer+cmaf", 0);
    rv = avformat_write_header(c->fmt, &opts);
    av_dict_free(&opts);
    if (rv < 0) {
        rv = c->oom ? -ENOMEM : -EIO;
        goto err_after_pb;
    }
    c->init = take_out(c);
    if (c->init == NULL) {
        rv = -ENOMEM;
        goto err_after_pb;
    }
    *out = c;
    return 0;

err_after_pb:
    av_freep(&c->pb->buffer);
    avio_context_free(&c->pb);
err_after_fmt:
    avformat_free_context(c->fmt);
err_after_alloc:
    core_free(c->out);
    core_free(c);
    return rv;
}

void tc_cmaf_free(tc_cmaf_t **cp)
{
    tc_cmaf_t *c = *cp;

    if (c == NULL)
        return;
    c->cb = NULL;
    for (int t = 0; t < 2; t++)
        pending_clear(&c->pend[t]);
    for (size_t i = 0; i < c->nsegs; i++)
        seg_release(&c->segs[i]);
    core_free(c->segs);
    tc_cmaf_buf_unref(&c->init);
    av_freep(&c->pb->buffer);
    avio_context_free(&c->pb);
    avformat_free_context(c->fmt);
    core_free(c->out);
    core_free(c);
    *cp = NULL;
}

tc_cmaf_buf_t *tc_cmaf_init_seg(const tc_cmaf_t *c)
{
    return c->init;
}

size_t tc_cmaf_nsegs(const tc_cmaf_t *c)
{
    return c->nsegs;
}

const tc_cmaf_seg_t *tc_cmaf_seg_at(const tc_cmaf_t *c, size_t i)
{
    return i < c->nsegs ? &c->segs[i] : NULL;
}

const tc_cmaf_seg_t *tc_cmaf_seg(const tc_cmaf_t *c, uint64_t msn)
{
    if (c->nsegs == 0 || msn < c->segs[0].msn || msn - c->segs[0].msn >= c->nsegs)
        return NULL;
    return &c->segs[msn - c->segs[0].msn];
}

uint64_t tc_cmaf_tail_msn(const tc_cmaf_t *c)
{
    return c->nsegs > 0 ? c->segs[c->nsegs - 1].msn : c->next_msn;
}

uint32_t tc_cmaf_max_segment_ms(const tc_cmaf_t *c)
{
    return c->max_seg_ms;
}

void tc_cmaf_info(const tc_cmaf_t *c, tc_cmaf_info_t *out)
{
    uint64_t ms = 0, bytes = 0, peak = 0;
    size_t n = 0;

    memset(out, 0, sizeof(*out));
    if (c->sidx[TC_CMAF_VIDEO] >= 0 && c->have_video_cfg)
        n = (size_t)snprintf(out->codecs, sizeof(out->codecs), "avc1.%02x%02x%02x",
                             c->video_cfg[1], c->video_cfg[2], c->video_cfg[3]);
    else if (c->sidx[TC_CMAF_VIDEO] >= 0 && c->video_codec == AV_CODEC_ID_HEVC)
        n = (size_t)snprintf(out->codecs, sizeof(out->codecs), "hvc1");
    if (c->sidx[TC_CMAF_AUDIO] >= 0 && n < sizeof(out->codecs))
        snprintf(out->codecs + n, sizeof(out->codecs) - n, "%smp4a.40.%d", n ? "," : "",
                 c->aac_object > 0 ? c->aac_object : 2);
    out->width = c->width;
    out->height = c->height;
    for (size_t i = 0; i < c->nsegs; i++) {
        const tc_cmaf_seg_t *s = &c->segs[i];

        if (!s->complete || s->duration_ms == 0)
            continue;
        ms += s->duration_ms;
        bytes += s->bytes;
        if (s->bytes * 8000 / s->duration_ms > peak)
            peak = s->bytes * 8000 / s->duration_ms;
    }
    if (ms > 0) {
        out->avg_bps = bytes * 8000 / ms;
        out->peak_bps = peak;
    }
    if (c->video_ms > 0) {
        /* millisecond timestamps blur the rate: snap to the usual ones */
        static const uint32_t usual[] = {23976, 24000, 25000, 29970, 30000, 48000,
                                         50000, 59940, 60000, 120000};
        uint32_t r = (uint32_t)((c->video_frames * 1000000 + (uint64_t)c->video_ms / 2) /
                                (uint64_t)c->video_ms);

        for (size_t i = 0; i < sizeof(usual) / sizeof(usual[0]); i++)
            if ((uint64_t)r * 1000 >= (uint64_t)usual[i] * 999 &&
                (uint64_t)r * 1000 <= (uint64_t)usual[i] * 1001)
                r = usual[i];
        out->frame_rate_milli = r;
    }
}
