/* oboro-bench latency: glass-to-glass latency of a live stream.
 *
 * A publisher thread sends a synthetic H.264 stream over RTMP at its frame
 * rate: one second of frames is encoded once (libx264 through libavcodec)
 * and repeated with increasing timestamps. In front of every frame it puts
 * an SEI user-data NAL carrying the frame's intended capture time (wall
 * clock, ns, as 16 hex digits so no emulation prevention is needed). A
 * remuxing server passes SEI through untouched, whatever the container
 * (FLV, MPEG-TS, fragmented MP4), so each player thread finds the stamp in
 * the packets it reads and records now - stamp. Players open any URL
 * libavformat reads (HTTP-FLV, HLS, RTMP play) and run at the same time. */
#include "cmd/oboro-bench/tools.h"

#include "core/arena.h"

#include <errno.h>
#include <event2/buffer.h>
#include <getopt.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_PLAYERS 8
#define STAMP_HEX 16

/* 16 bytes without a zero byte: the SEI's UUID, searched for by players. */
static const uint8_t probe_uuid[16] = {'o', 'b', 'o', 'r', 'o', '-', 'b', 'e',
                                       'n', 'c', 'h', '-', 'l', 'a', 't', '!'};

typedef struct frame {
    uint8_t *data;
    int size;
    int key;
} frame_t;

typedef struct probe probe_t;

typedef struct player {
    probe_t *p;
    const char *url;
    pthread_t thread;
    bench_hist_t *hist;
    uint64_t frames, unstamped, bytes, first_ns;
    int opened;
    char err[160];
} player_t;

struct probe {
    const char *publish;
    player_t players[MAX_PLAYERS];
    int nplayers;
    int fps, width, height, bitrate;
    uint64_t duration_ns, grace_ns, start_wall, start_mono;
    int json;
    frame_t *frames;
    int nframes;
    AVCodecParameters *par;
    _Atomic int stop;
    _Atomic uint64_t sent;
    _Atomic int pub_failed;
    char pub_err[160];
    pthread_t pub_thread;
};

static _Atomic int interrupted;

static void on_signal(int sig)
{
    atomic_store(&interrupted, 1);
}

static int interrupt_cb(void *arg)
{
    probe_t *p = arg;

    return atomic_load(&p->stop) || atomic_load(&interrupted);
}

static void averr(char *buf, size_t size, const char *what, int rv)
{
    char e[AV_ERROR_MAX_STRING_SIZE];

    av_strerror(rv, e, sizeof(e));
    snprintf(buf, size, "%s: %s", what, e);
}

/* ---- stamps ------------------------------------------------------------ */

/* SEI NAL (Annex B) carrying stamp: start code, type 6, payload type 5
 * (user data unregistered), size 32, UUID, 16 hex digits, trailing bits. */
#define SEI_LEN (4 + 1 + 1 + 1 + 16 + STAMP_HEX + 1)

static void sei_write(uint8_t *out, uint64_t stamp)
{
    static const char hex[] = "0123456789abcdef";
    int i;

    out[0] = 0;
    out[1] = 0;
    out[2] = 0;
    out[3] = 1;
    out[4] = 0x06;
    out[5] = 0x05;
    out[6] = 16 + STAMP_HEX;
    memcpy(out + 7, probe_uuid, 16);
    for (i = 0; i < STAMP_HEX; i++)
        out[7 + 16 + i] = (uint8_t)hex[(stamp >> (4 * (STAMP_HEX - 1 - i))) & 15];
    out[SEI_LEN - 1] = 0x80;
}

/* Find a stamp in a packet. Returns 0 and *stamp, or -ENOENT. */
static int stamp_find(const uint8_t *data, size_t size, uint64_t *stamp)
{
    const uint8_t *u = memmem(data, size, probe_uuid, sizeof(probe_uuid));
    uint64_t v = 0;
    int i;

    if (u == NULL || (size_t)(data + size - u) < 16 + STAMP_HEX)
        return -ENOENT;
    u += 16;
    for (i = 0; i < STAMP_HEX; i++) {
        uint8_t c = u[i];

        if (c >= '0' && c <= '9')
            v = v << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint64_t)(c - 'a' + 10);
        else
            return -ENOENT;
    }
    *stamp = v;
    return 0;
}

/* ---- encoding ---------------------------------------------------------- */

static int keep_packet(probe_t *p, const AVPacket *pkt)
{
    frame_t *f;
    frame_t *grown = core_realloc(CORE_TAG_BENCH, p->frames, (size_t)(p->nframes + 1) * sizeof(*p->frames));

    if (grown == NULL)
        return -ENOMEM;
    p->frames = grown;
    f = &p->frames[p->nframes];
    f->data = core_malloc(CORE_TAG_BENCH, (size_t)pkt->size);
    if (f->data == NULL)
        return -ENOMEM;
    memcpy(f->data, pkt->data, (size_t)pkt->size);
    f->size = pkt->size;
    f->key = (pkt->flags & AV_PKT_FLAG_KEY) != 0;
    p->nframes++;
    return 0;
}

/* Encode one second of a moving test pattern. */
static int encode_frames(probe_t *p, char *err, size_t errsize)
{
    const AVCodec *codec = avcodec_find_encoder_by_name("libx264");
    AVCodecContext *cc = NULL;
    AVDictionary *o = NULL;
    AVFrame *fr = NULL;
    AVPacket *pkt = NULL;
    int rv, i, x, y;

    if (codec == NULL)
        codec = avcodec_find_encoder(AV_CODEC_ID_H264);
    if (codec == NULL) {
        snprintf(err, errsize, "no H.264 encoder in this libavcodec");
        return -ENOSYS;
    }
    cc = avcodec_alloc_context3(codec);
    fr = av_frame_alloc();
    pkt = av_packet_alloc();
    if (cc == NULL || fr == NULL || pkt == NULL) {
        rv = AVERROR(ENOMEM);
        goto out;
    }
    cc->width = p->width;
    cc->height = p->height;
    cc->pix_fmt = AV_PIX_FMT_YUV420P;
    cc->time_base = (AVRational){1, p->fps};
    cc->framerate = (AVRational){p->fps, 1};
    cc->gop_size = p->fps;
    cc->max_b_frames = 0;
    cc->bit_rate = p->bitrate;
    cc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    av_dict_set(&o, "preset", "ultrafast", 0);
    av_dict_set(&o, "tune", "zerolatency", 0);
    av_dict_set(&o, "x264-params", "scenecut=0:repeat-headers=0", 0);
    rv = avcodec_open2(cc, codec, &o);
    if (rv < 0)
        goto out;
    fr->format = cc->pix_fmt;
    fr->width = cc->width;
    fr->height = cc->height;
    rv = av_frame_get_buffer(fr, 0);
    if (rv < 0)
        goto out;
    for (i = 0; i <= p->fps; i++) {
        rv = i < p->fps ? av_frame_make_writable(fr) : 0;
        if (rv < 0)
            goto out;
        if (i < p->fps) {
            for (y = 0; y < cc->height; y++)
                for (x = 0; x < cc->width; x++)
                    fr->data[0][y * fr->linesize[0] + x] = (uint8_t)(x + y + i * 8);
            for (y = 0; y < cc->height / 2; y++)
                for (x = 0; x < cc->width / 2; x++) {
                    fr->data[1][y * fr->linesize[1] + x] = (uint8_t)(128 + y - i);
                    fr->data[2][y * fr->linesize[2] + x] = (uint8_t)(64 + x + i);
                }
            fr->pts = i;
        }
        rv = avcodec_send_frame(cc, i < p->fps ? fr : NULL);
        if (rv < 0)
            goto out;
        while ((rv = avcodec_receive_packet(cc, pkt)) == 0) {
            rv = keep_packet(p, pkt);
            av_packet_unref(pkt);
            if (rv < 0)
                goto out;
        }
        if (rv != AVERROR(EAGAIN) && rv != AVERROR_EOF)
            goto out;
    }
    rv = 0;
    if (p->nframes == 0 || !p->frames[0].key) {
        snprintf(err, errsize, "the encoder did not start with a keyframe");
        rv = -EPROTO;
        goto out;
    }
    p->par = avcodec_parameters_alloc();
    if (p->par == NULL || avcodec_parameters_from_context(p->par, cc) < 0)
        rv = AVERROR(ENOMEM);
out:
    if (rv < 0 && err[0] == '\0')
        averr(err, errsize, "encoder", rv);
    av_dict_free(&o);
    av_packet_free(&pkt);
    av_frame_free(&fr);
    avcodec_free_context(&cc);
    return rv < 0 ? -EIO : 0;
}

/* ---- publisher --------------------------------------------------------- */

static void sleep_until_wall(probe_t *p, uint64_t wall_ns)
{
    struct timespec ts = {(time_t)(wall_ns / 1000000000u), (long)(wall_ns % 1000000000u)};

    clock_nanosleep(CLOCK_REALTIME, TIMER_ABSTIME, &ts, NULL);
}

static void *publisher_main(void *arg)
{
    probe_t *p = arg;
    AVFormatContext *oc = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVStream *st;
    uint64_t k;
    int rv;

    rv = avformat_alloc_output_context2(&oc, NULL, "flv", p->publish);
    if (rv < 0 || pkt == NULL) {
        averr(p->pub_err, sizeof(p->pub_err), "publish: output", rv < 0 ? rv : AVERROR(ENOMEM));
        goto out;
    }
    oc->interrupt_callback.callback = interrupt_cb;
    oc->interrupt_callback.opaque = p;
    oc->flags |= AVFMT_FLAG_FLUSH_PACKETS;
    st = avformat_new_stream(oc, NULL);
    if (st == NULL || avcodec_parameters_copy(st->codecpar, p->par) < 0) {
        snprintf(p->pub_err, sizeof(p->pub_err), "publish: out of memory");
        goto out;
    }
    st->codecpar->codec_tag = 0;
    st->time_base = (AVRational){1, 1000};
    rv = avio_open2(&oc->pb, p->publish, AVIO_FLAG_WRITE, &oc->interrupt_callback, NULL);
    if (rv < 0) {
        averr(p->pub_err, sizeof(p->pub_err), "publish: connect", rv);
        goto out;
    }
    rv = avformat_write_header(oc, NULL);
    if (rv < 0) {
        averr(p->pub_err, sizeof(p->pub_err), "publish: header", rv);
        goto out;
    }
    for (k = 0; !interrupt_cb(p); k++) {
        const frame_t *f = &p->frames[k % (uint64_t)p->nframes];
        uint64_t at = p->start_wall + k * 1000000000u / (uint64_t)p->fps;

        if (at >= p->start_wall + p->duration_ns)
            break;
        sleep_until_wall(p, at);
        rv = av_new_packet(pkt, SEI_LEN + f->size);
        if (rv < 0)
            break;
        sei_write(pkt->data, at);
        memcpy(pkt->data + SEI_LEN, f->data, (size_t)f->size);
        pkt->pts = pkt->dts = (int64_t)(k * 1000u / (uint64_t)p->fps);
        pkt->stream_index = st->index;
        if (f->key)
            pkt->flags |= AV_PKT_FLAG_KEY;
        rv = av_write_frame(oc, pkt);
        av_packet_unref(pkt);
        if (rv < 0) {
            if (!interrupt_cb(p))
                averr(p->pub_err, sizeof(p->pub_err), "publish: write", rv);
            break;
        }
        atomic_fetch_add(&p->sent, 1);
    }
    if (p->pub_err[0] == '\0')
        av_write_trailer(oc);
out:
    if (p->pub_err[0])
        atomic_store(&p->pub_failed, 1);
    av_packet_free(&pkt);
    if (oc != NULL) {
        avio_closep(&oc->pb);
        avformat_free_context(oc);
    }
    return NULL;
}

/* ---- players ----------------------------------------------------------- */

static void *player_main(void *arg)
{
    player_t *pl = arg;
    probe_t *p = pl->p;
    AVPacket *pkt = av_packet_alloc();
    AVFormatContext *ic = NULL;
    int rv = 0;

    if (pkt == NULL)
        return NULL;
    /* the stream appears once the publisher is up and, for HLS, once the
     * first segment exists: retry until then */
    while (!interrupt_cb(p)) {
        AVDictionary *o = NULL;
        struct timespec ts = {0, 200 * 1000 * 1000};

        ic = avformat_alloc_context();
        if (ic == NULL)
            break;
        ic->interrupt_callback.callback = interrupt_cb;
        ic->interrupt_callback.opaque = p;
        av_dict_set(&o, "fflags", "nobuffer", 0);
        av_dict_set(&o, "live_start_index", "-1", 0);
        av_dict_set(&o, "rw_timeout", "5000000", 0);
        rv = avformat_open_input(&ic, pl->url, NULL, &o);
        av_dict_free(&o);
        if (rv == 0)
            break;
        ic = NULL;
        averr(pl->err, sizeof(pl->err), "open", rv);
        nanosleep(&ts, NULL);
    }
    if (ic == NULL)
        goto out;
    pl->opened = 1;
    pl->err[0] = '\0';
    while (!interrupt_cb(p)) {
        AVStream *st;
        uint64_t stamp, now;

        rv = av_read_frame(ic, pkt);
        if (rv < 0) {
            if (!interrupt_cb(p) && rv != AVERROR_EOF)
                averr(pl->err, sizeof(pl->err), "read", rv);
            break;
        }
        now = bench_wall_ns();
        st = ic->streams[pkt->stream_index];
        pl->bytes += (uint64_t)pkt->size;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
            if (pl->frames++ == 0)
                pl->first_ns = now;
            if (stamp_find(pkt->data, (size_t)pkt->size, &stamp) == 0)
                bench_hist_record(pl->hist, now > stamp ? now - stamp : 0);
            else
                pl->unstamped++;
        }
        av_packet_unref(pkt);
    }
    avformat_close_input(&ic);
out:
    av_packet_free(&pkt);
    return NULL;
}

/* ---- report ------------------------------------------------------------ */

static void report(probe_t *p)
{
    struct evbuffer *out = evbuffer_new();
    uint64_t sent = atomic_load(&p->sent);
    int i;

    if (out == NULL)
        return;
    if (p->json) {
        evbuffer_add_printf(out, "{\"tool\":\"oboro-bench latency\",\"publish\":\"%s\",\"fps\":%d,"
                            "\"duration_s\":%.3f,\"sent\":%llu,\"publish_error\":",
                            p->publish, p->fps, (double)p->duration_ns / 1e9,
                            (unsigned long long)sent);
        if (p->pub_err[0])
            evbuffer_add_printf(out, "\"%s\"", p->pub_err);
        else
            evbuffer_add(out, "null", 4);
        evbuffer_add(out, ",\"players\":[", 12);
        for (i = 0; i < p->nplayers; i++) {
            player_t *pl = &p->players[i];

            evbuffer_add_printf(out, "%s{\"url\":\"%s\",\"opened\":%s,\"frames\":%llu,"
                                "\"unstamped\":%llu,\"bytes\":%llu,\"first_frame_s\":%.3f,\"error\":",
                                i ? "," : "", pl->url, pl->opened ? "true" : "false",
                                (unsigned long long)pl->frames, (unsigned long long)pl->unstamped,
                                (unsigned long long)pl->bytes,
                                pl->frames ? (double)(pl->first_ns - p->start_wall) / 1e9 : -1.0);
            if (pl->err[0])
                evbuffer_add_printf(out, "\"%s\"", pl->err);
            else
                evbuffer_add(out, "null", 4);
            evbuffer_add(out, ",\"latency\":", 11);
            bench_report_json(out, pl->hist);
            evbuffer_add(out, "}", 1);
        }
        evbuffer_add(out, "]}\n", 3);
    } else {
        evbuffer_add_printf(out, "Published: %s  frames=%llu at %d fps over %.3fs%s%s\n",
                            p->publish, (unsigned long long)sent, p->fps,
                            (double)p->duration_ns / 1e9, p->pub_err[0] ? "  error: " : "", p->pub_err);
        for (i = 0; i < p->nplayers; i++) {
            player_t *pl = &p->players[i];
            uint64_t n = pl->hist->n;

            evbuffer_add_printf(out, "\n== %s\n", pl->url);
            evbuffer_add_printf(out, "Count: frames=%llu failed=%llu success%%=%.2f\n",
                                (unsigned long long)pl->frames, (unsigned long long)pl->unstamped,
                                pl->frames ? 100.0 * (double)n / (double)pl->frames : 0.0);
            if (pl->frames)
                evbuffer_add_printf(out, "First frame after: %.3fs\n",
                                    (double)(pl->first_ns - p->start_wall) / 1e9);
            if (pl->err[0])
                evbuffer_add_printf(out, "Error: %s\n", pl->err);
            evbuffer_add_printf(out, "Glass-to-glass latency per frame:\n\n");
            bench_report_table(out, pl->hist);
            evbuffer_add(out, "\n", 1);
            bench_report_decades(out, pl->hist);
        }
    }
    fflush(stdout);
    while (evbuffer_get_length(out) > 0 && evbuffer_write(out, 1) > 0)
        ;
    evbuffer_free(out);
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: oboro-bench latency [options]\n"
        "  --publish URL      RTMP URL to publish to (rtmp://HOST:RTMP-PORT/live/STREAM)\n"
        "  --play URL         URL to play back, repeatable (default: HTTP-FLV\n"
        "                     http://HOST:HTTP-PORT/live/STREAM.flv and LL-HLS\n"
        "                     http://HOST:HTTP-PORT/live/STREAM/index.m3u8)\n"
        "  --host H           (127.0.0.1)   --rtmp-port P (1935)   --http-port P (8080)\n"
        "  --stream NAME      stream name (probe)\n"
        "  --duration D       how long to publish (10s)\n"
        "  --grace D          how long players keep reading after the last frame (3s)\n"
        "  --fps N            frame rate (30)   --size WxH (320x240)   --bitrate BPS (300000)\n"
        "  --json             one JSON object instead of the tables\n"
        "Latency runs from a frame's intended capture time to its arrival at the player.\n");
}

int bench_cmd_latency(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"publish", required_argument, NULL, 'u'}, {"play", required_argument, NULL, 'y'},
        {"host", required_argument, NULL, 'H'}, {"rtmp-port", required_argument, NULL, 'r'},
        {"http-port", required_argument, NULL, 'w'}, {"stream", required_argument, NULL, 's'},
        {"duration", required_argument, NULL, 'd'}, {"fps", required_argument, NULL, 'f'},
        {"size", required_argument, NULL, 'z'}, {"bitrate", required_argument, NULL, 'b'},
        {"grace", required_argument, NULL, 'g'},
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    probe_t *p = core_calloc(CORE_TAG_BENCH, 1, sizeof(*p));
    const char *host = "127.0.0.1", *stream = "probe";
    const char *plays[MAX_PLAYERS];
    char urls[MAX_PLAYERS + 1][256];
    int nplays = 0, rtmp_port = 1935, http_port = 8080, rc = 2, opt, i, pub_started = 0;
    char err[160] = "";

    if (p == NULL)
        return 1;
    p->fps = 30;
    p->width = 320;
    p->height = 240;
    p->bitrate = 300000;
    p->duration_ns = 10000000000ULL;
    p->grace_ns = 3000000000ULL;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        long v = 0;
        char *e = NULL;

        if (strchr("rwfb", opt) != NULL) {
            v = strtol(optarg, &e, 10);
            if (*e != '\0' || v < 1 || (opt != 'b' && v > 65535) || (opt == 'f' && v > 240) ||
                v > 100000000) {
                fprintf(stderr, "oboro-bench latency: bad value '%s'\n", optarg);
                goto out;
            }
        }
        switch (opt) {
        case 'u': p->publish = optarg; break;
        case 'y':
            if (nplays == MAX_PLAYERS) {
                fprintf(stderr, "oboro-bench latency: at most %d --play\n", MAX_PLAYERS);
                goto out;
            }
            plays[nplays++] = optarg;
            break;
        case 'H': host = optarg; break;
        case 'r': rtmp_port = (int)v; break;
        case 'w': http_port = (int)v; break;
        case 's': stream = optarg; break;
        case 'f': p->fps = (int)v; break;
        case 'b': p->bitrate = (int)v; break;
        case 'j': p->json = 1; break;
        case 'd':
        case 'g':
            if (bench_duration_parse(optarg, opt == 'd' ? &p->duration_ns : &p->grace_ns) != 0) {
                fprintf(stderr, "oboro-bench latency: bad duration '%s'\n", optarg);
                goto out;
            }
            break;
        case 'z':
            if (sscanf(optarg, "%dx%d", &p->width, &p->height) != 2 || p->width < 16 ||
                p->height < 16 || p->width > 3840 || p->height > 2160 || p->width % 2 || p->height % 2) {
                fprintf(stderr, "oboro-bench latency: bad size '%s' (WxH, even)\n", optarg);
                goto out;
            }
            break;
        case 'h':
            usage(stdout);
            rc = 0;
            goto out;
        default:
            usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oboro-bench latency: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (p->publish == NULL) {
        snprintf(urls[MAX_PLAYERS], sizeof(urls[0]), "rtmp://%s:%d/live/%s", host, rtmp_port, stream);
        p->publish = urls[MAX_PLAYERS];
    }
    if (nplays == 0) {
        snprintf(urls[0], sizeof(urls[0]), "http://%s:%d/live/%s.flv", host, http_port, stream);
        snprintf(urls[1], sizeof(urls[1]), "http://%s:%d/live/%s/index.m3u8", host, http_port, stream);
        plays[nplays++] = urls[0];
        plays[nplays++] = urls[1];
    }
    rc = 1;
    av_log_set_level(AV_LOG_ERROR);
    if (encode_frames(p, err, sizeof(err)) != 0) {
        fprintf(stderr, "oboro-bench latency: %s\n", err);
        goto out;
    }
    for (i = 0; i < nplays; i++) {
        p->players[i].p = p;
        p->players[i].url = plays[i];
        p->players[i].hist = bench_hist_new();
        if (p->players[i].hist == NULL)
            goto out;
        p->nplayers++;
    }
    atomic_store(&interrupted, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    p->start_wall = bench_wall_ns() + 200000000u; /* leave the threads time to start */
    p->start_mono = bench_now_ns();
    if (pthread_create(&p->pub_thread, NULL, publisher_main, p) != 0)
        goto out;
    pub_started = 1;
    for (i = 0; i < p->nplayers; i++)
        if (pthread_create(&p->players[i].thread, NULL, player_main, &p->players[i]) != 0)
            break;
    {
        /* players keep reading for a grace period after the last frame so
         * the frames still in flight (HLS: the last segment) arrive; a
         * publisher that failed ends the run at once */
        uint64_t end = p->start_wall + p->duration_ns + p->grace_ns;

        while (bench_wall_ns() < end && !atomic_load(&interrupted) && !atomic_load(&p->pub_failed)) {
            struct timespec ts = {0, 50 * 1000 * 1000};

            nanosleep(&ts, NULL);
        }
    }
    atomic_store(&p->stop, 1);
    pthread_join(p->pub_thread, NULL);
    pub_started = 0;
    while (i-- > 0)
        pthread_join(p->players[i].thread, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    report(p);
    rc = p->pub_err[0] || atomic_load(&p->sent) == 0 ? 1 : 0;
out:
    if (pub_started) {
        atomic_store(&p->stop, 1);
        pthread_join(p->pub_thread, NULL);
    }
    for (i = 0; i < p->nplayers; i++)
        bench_hist_free(&p->players[i].hist);
    for (i = 0; i < p->nframes; i++)
        core_free(p->frames[i].data);
    core_free(p->frames);
    avcodec_parameters_free(&p->par);
    core_free(p);
    return rc;
}
