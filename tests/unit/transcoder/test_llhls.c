/* Unit tests for transcoder/llhls: a real HTTP listener on the loop (in a
 * thread) serves a stream fed, four times faster than real time, with the
 * packets of an FLV made by ffmpeg at test time; the test thread is the
 * HTTP client. */
#include "transcoder/llhls.h"

#include "core/arena.h"
#include "core/http.h"
#include "core/loop.h"
#include "proto/hls.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SPEED 4

typedef struct pkt {
    tc_cmaf_packet_t p;
    uint8_t *data;
} pkt_t;

static char dir[] = "/tmp/oboro-llhls-XXXXXX";
static pkt_t *pkts;
static size_t npkts, fed;
static tc_cmaf_track_t vtrack, atrack;
static AVFormatContext *in;

static core_loop_t *loop;
static core_http_t *http;
static tc_llhls_t *ll;
static tc_llhls_stream_t *st;
static int port;
static uint64_t t0;
static _Atomic int feeding, finished, close_stream, stop, as_flv;
static pthread_t loop_th;
static tc_llhls_conf_t conf = {200, 1000, 20, 2000};

static void load_flv(void)
{
    char cmd[1024], flv[256];
    AVPacket *pkt = av_packet_alloc();
    AVRational ms = {1, 1000};
    int vidx, aidx;

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(flv, sizeof(flv), "%s/in.flv", dir);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=320x240:rate=25 "
             "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 12 -c:v libx264 "
             "-preset ultrafast -g 25 -pix_fmt yuv420p -c:a aac -b:a 64k -f flv %s",
             flv);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(avformat_open_input(&in, flv, NULL, NULL), 0);
    ck_assert_int_ge(avformat_find_stream_info(in, NULL), 0);
    vidx = av_find_best_stream(in, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    aidx = av_find_best_stream(in, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    vtrack = (tc_cmaf_track_t){in->streams[vidx]->codecpar->codec_id,
                               in->streams[vidx]->codecpar->extradata,
                               (size_t)in->streams[vidx]->codecpar->extradata_size,
                               in->streams[vidx]->codecpar->width,
                               in->streams[vidx]->codecpar->height, 0, 0};
    atrack = (tc_cmaf_track_t){in->streams[aidx]->codecpar->codec_id,
                               in->streams[aidx]->codecpar->extradata,
                               (size_t)in->streams[aidx]->codecpar->extradata_size, 0, 0,
                               in->streams[aidx]->codecpar->sample_rate,
                               in->streams[aidx]->codecpar->ch_layout.nb_channels};
    pkts = calloc(4096, sizeof(*pkts));
    npkts = 0;
    while (av_read_frame(in, pkt) >= 0 && npkts < 4096) {
        AVStream *s = in->streams[pkt->stream_index];
        pkt_t *p = &pkts[npkts++];

        p->data = malloc((size_t)pkt->size);
        memcpy(p->data, pkt->data, (size_t)pkt->size);
        p->p = (tc_cmaf_packet_t){pkt->stream_index == vidx ? TC_CMAF_VIDEO : TC_CMAF_AUDIO,
                                  av_rescale_q(pkt->dts, s->time_base, ms),
                                  av_rescale_q(pkt->pts, s->time_base, ms),
                                  (pkt->flags & AV_PKT_FLAG_KEY) != 0, p->data,
                                  (size_t)pkt->size};
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
}

/* The packet as an RTMP message body (legacy AVC / AAC), preceded by the
 * sequence headers the first time. */
static void feed_flv(const tc_cmaf_packet_t *p)
{
    static uint8_t body[1 << 20];
    int32_t cts = (int32_t)(p->pts_ms - p->dts_ms);

    if (fed == 0) {
        body[0] = 0x17;
        body[1] = 0;
        body[2] = body[3] = body[4] = 0;
        memcpy(body + 5, vtrack.extradata, vtrack.extradata_len);
        ck_assert_int_eq(tc_llhls_on_flv(st, 9, 0, body, 5 + vtrack.extradata_len), 0);
        body[0] = 0xaf;
        body[1] = 0;
        memcpy(body + 2, atrack.extradata, atrack.extradata_len);
        ck_assert_int_eq(tc_llhls_on_flv(st, 8, 0, body, 2 + atrack.extradata_len), 0);
        /* metadata and an unsupported audio codec are ignored or refused */
        ck_assert_int_eq(tc_llhls_on_flv(st, 18, 0, body, 3), 0);
        body[0] = 0x2f;
        ck_assert_int_eq(tc_llhls_on_flv(st, 8, 0, body, 3), -EINVAL);
        ck_assert_int_eq(tc_llhls_on_flv(st, 9, 0, body, 4), -EINVAL);
    }
    ck_assert_uint_lt(p->len + 5, sizeof(body));
    if (p->track == TC_CMAF_VIDEO) {
        body[0] = p->keyframe ? 0x17 : 0x27;
        body[1] = 1;
        body[2] = (uint8_t)(cts >> 16);
        body[3] = (uint8_t)(cts >> 8);
        body[4] = (uint8_t)cts;
        memcpy(body + 5, p->data, p->len);
        ck_assert_int_eq(tc_llhls_on_flv(st, 9, (uint32_t)p->dts_ms, body, p->len + 5), 0);
    } else {
        body[0] = 0xaf;
        body[1] = 1;
        memcpy(body + 2, p->data, p->len);
        ck_assert_int_eq(tc_llhls_on_flv(st, 8, (uint32_t)p->dts_ms, body, p->len + 2), 0);
    }
}

/* Loop thread: feed what is due, act on the test's requests. */
static void tick(void *arg)
{
    if (atomic_load(&stop)) {
        core_loop_shutdown(loop);
        return;
    }
    if (atomic_load(&close_stream) == 1) {
        tc_llhls_stream_close(&st);
        atomic_store(&close_stream, 2);
    }
    if (!atomic_load(&feeding) || st == NULL)
        return;
    if (t0 == 0)
        t0 = core_mono_ms();
    while (fed < npkts && pkts[fed].p.dts_ms <= (int64_t)((core_mono_ms() - t0) * SPEED)) {
        if (atomic_load(&as_flv))
            feed_flv(&pkts[fed].p);
        else
            ck_assert_int_eq(tc_llhls_on_packet(st, &pkts[fed].p), 0);
        fed++;
    }
    if (fed == npkts)
        atomic_store(&finished, 1);
}

static void *loop_main(void *arg)
{
    core_loop_run(loop);
    return NULL;
}

static void setup(void)
{
    int fd;

    load_flv();
    loop = core_loop_new();
    fd = core_listen_tcp("127.0.0.1", 0, 64, &port);
    http = core_http_new(core_loop_base(loop), fd);
    ck_assert_ptr_nonnull(http);
    ck_assert_int_eq(tc_llhls_new(&ll, core_loop_base(loop), &conf), 0);
    ck_assert_int_eq(core_http_route(http, "/live/", tc_llhls_http, ll), 0);
    ck_assert_int_eq(core_loop_every(loop, 5, tick, NULL), 0);
    fed = 0;
    t0 = 0;
    atomic_store(&feeding, 0);
    atomic_store(&finished, 0);
    atomic_store(&close_stream, 0);
    atomic_store(&stop, 0);
    atomic_store(&as_flv, 0);
    ck_assert_int_eq(tc_llhls_stream_open(ll, "cam", &st), 0);
    ck_assert_int_eq(tc_llhls_stream_open(ll, "cam", &(tc_llhls_stream_t *){NULL}), -EEXIST);
    ck_assert_int_eq(tc_llhls_stream_open(ll, "a/b", &(tc_llhls_stream_t *){NULL}), -EINVAL);
    ck_assert_int_eq(tc_llhls_stream_open(ll, "..", &(tc_llhls_stream_t *){NULL}), -EINVAL);
    pthread_create(&loop_th, NULL, loop_main, NULL);
}

static void teardown(void)
{
    char cmd[300];

    atomic_store(&stop, 1);
    pthread_join(loop_th, NULL);
    tc_llhls_free(&ll);
    core_http_free(&http);
    core_loop_free(&loop);
    for (size_t i = 0; i < npkts; i++)
        free(pkts[i].data);
    free(pkts);
    avformat_close_input(&in);
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HLS), 0);
}

typedef struct reply {
    int status;
    char head[4096];
    char *body;      /* malloc'd, NUL-terminated, chunked encoding removed */
    size_t len;
    int chunked;
    double ms;       /* time to the complete reply */
} reply_t;

static int connect_local(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static double now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* Send GET path over HTTP/1.1 with Connection: close on a new
 * connection; returns the socket. */
static int get_send(const char *path)
{
    char req[1024];
    int fd = connect_local();

    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\nUser-Agent: t\r\nConnection: close\r\n\r\n",
             path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    return fd;
}

/* Read the reply to get_send() until the server closes; decode chunking. */
static void get_recv(int fd, double t, reply_t *r)
{
    char *raw = NULL, *sep;
    size_t len = 0, cap = 0;
    ssize_t n;

    for (;;) {
        if (len + 65536 > cap) {
            cap = cap ? cap * 2 : 131072;
            raw = realloc(raw, cap + 1);
        }
        n = read(fd, raw + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    close(fd);
    r->ms = now_ms() - t;
    raw[len] = '\0';
    sep = strstr(raw, "\r\n\r\n");
    ck_assert_ptr_nonnull(sep);
    ck_assert_int_lt(sep - raw, (long)sizeof(r->head));
    memcpy(r->head, raw, (size_t)(sep - raw + 2));
    r->head[sep - raw + 2] = '\0';
    ck_assert_int_eq(sscanf(raw, "HTTP/1.1 %d", &r->status), 1);
    r->chunked = strstr(r->head, "Transfer-Encoding: chunked") != NULL;
    r->body = malloc(len + 1);
    r->len = 0;
    if (r->chunked) {
        char *p = sep + 4;

        for (;;) {
            unsigned long sz = strtoul(p, &p, 16);

            ck_assert_ptr_nonnull(strstr(p, "\r\n"));
            p = strstr(p, "\r\n") + 2;
            if (sz == 0)
                break;
            memcpy(r->body + r->len, p, sz);
            r->len += sz;
            p += sz + 2;
        }
    } else {
        r->len = len - (size_t)(sep + 4 - raw);
        memcpy(r->body, sep + 4, r->len);
    }
    r->body[r->len] = '\0';
    free(raw);
}

/* GET path over HTTP/1.1 with Connection: close; decode chunking. */
static void get(const char *path, reply_t *r)
{
    double t = now_ms();

    get_recv(get_send(path), t, r);
}

static void reply_free(reply_t *r)
{
    free(r->body);
    r->body = NULL;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;

    for (const char *p = hay; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

/* The hinted part of a playlist. */
static void hint(const char *pl, uint64_t *msn, uint32_t *part)
{
    const char *h = strstr(pl, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p");

    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(sscanf(h + strlen("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p"), "%lu.%u",
                            msn, part), 2);
}

static void wait_finished(void)
{
    while (!atomic_load(&finished))
        usleep(10000);
}

START_TEST(before_config)
{
    reply_t r;

    get("/live/nope/index.m3u8", &r);
    ck_assert_int_eq(r.status, 404);
    ck_assert_ptr_nonnull(strstr(r.head, "Access-Control-Allow-Origin: *"));
    reply_free(&r);
    get("/live/cam/init.mp4", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
    get("/live/cam/master.m3u8", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
}
END_TEST

static void start(void)
{
    /* on_config runs on the loop thread: the loop is idle until feeding */
    ck_assert_int_eq(tc_llhls_on_config(st, &vtrack, &atrack), 0);
    atomic_store(&feeding, 1);
}

START_TEST(playlist_blocking_and_parts)
{
    reply_t r, b, p;
    uint64_t msn;
    uint32_t part;
    char path[256];

    /* the first plain request waits for the first part */
    ck_assert_int_eq(tc_llhls_on_config(st, &vtrack, &atrack), 0);
    atomic_store(&feeding, 1);
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.head, "Content-Type: application/vnd.apple.mpegurl"));
    ck_assert_ptr_nonnull(strstr(r.head, "Cache-Control: no-store"));
    ck_assert_ptr_nonnull(strstr(r.head, "Access-Control-Allow-Origin: *"));
    ck_assert_int_eq(strncmp(r.body, "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-TARGETDURATION:1\n", 48), 0);
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                                         "CAN-SKIP-UNTIL=6.000,PART-HOLD-BACK=0.600\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-PART-INF:PART-TARGET=0.200\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-MEDIA-SEQUENCE:1\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-MAP:URI=\"init.mp4\"\n"));
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-PROGRAM-DATE-TIME:"));
    ck_assert_ptr_nonnull(strstr(r.body, "#EXT-X-PART:DURATION=0.200,URI=\"p1.0.m4s\",INDEPENDENT=YES\n"));
    /* held until a complete segment exists, for players without LL-HLS */
    ck_assert_ptr_nonnull(strstr(r.body, "#EXTINF:1.000,\ns1.m4s\n"));
    hint(r.body, &msn, &part);
    reply_free(&r);

    /* a blocking reload for the hinted part returns once it exists and
     * lists it; so does a request for the hinted part itself (chunked) */
    snprintf(path, sizeof(path), "/live/cam/index.m3u8?_HLS_msn=%lu&_HLS_part=%u", msn, part);
    get(path, &b);
    ck_assert_int_eq(b.status, 200);
    ck_assert_ptr_nonnull(strstr(b.head, "Cache-Control: public, max-age=1"));
    snprintf(path, sizeof(path), "URI=\"p%lu.%u.m4s\"", msn, part);
    ck_assert_ptr_nonnull(strstr(b.body, path));
    hint(b.body, &msn, &part);
    snprintf(path, sizeof(path), "/live/cam/p%lu.%u.m4s", msn, part);
    get(path, &p);
    ck_assert_int_eq(p.status, 200);
    ck_assert(p.chunked);
    ck_assert_int_gt(p.len, 8);
    ck_assert_int_eq(memcmp(p.body + 4, "moof", 4), 0);
    ck_assert_ptr_nonnull(strstr(p.head, "Content-Type: video/mp4"));
    ck_assert_ptr_nonnull(strstr(p.head, "Cache-Control: public, max-age=31536000, immutable"));
    reply_free(&p);
    /* asked again, the same part is there at once, in one piece */
    get(path, &p);
    ck_assert_int_eq(p.status, 200);
    ck_assert(!p.chunked);
    ck_assert_int_eq(memcmp(p.body + 4, "moof", 4), 0);
    reply_free(&p);
    reply_free(&b);

    /* _HLS_msn alone waits for part 0 of that segment */
    snprintf(path, sizeof(path), "/live/cam/index.m3u8?_HLS_msn=%lu", msn + 1);
    get(path, &b);
    ck_assert_int_eq(b.status, 200);
    snprintf(path, sizeof(path), "URI=\"p%lu.0.m4s\",INDEPENDENT=YES", msn + 1);
    ck_assert_ptr_nonnull(strstr(b.body, path));
    reply_free(&b);

    /* too far ahead, part without msn, junk */
    snprintf(path, sizeof(path), "/live/cam/index.m3u8?_HLS_msn=%lu", msn + 10);
    get(path, &b);
    ck_assert_int_eq(b.status, 400);
    reply_free(&b);
    get("/live/cam/index.m3u8?_HLS_part=1", &b);
    ck_assert_int_eq(b.status, 400);
    reply_free(&b);
    get("/live/cam/index.m3u8?_HLS_msn=x", &b);
    ck_assert_int_eq(b.status, 400);
    reply_free(&b);
    get("/live/cam/p1.99.m4s", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/p1.-1.m4s", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/p1.+1.m4s", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/p+1.1.m4s", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/p1.1234567.m4s", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/s1.m4s.x", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);
    get("/live/cam/other.txt", &b);
    ck_assert_int_eq(b.status, 404);
    reply_free(&b);

    /* init segment and a complete segment */
    get("/live/cam/init.mp4", &b);
    ck_assert_int_eq(b.status, 200);
    ck_assert_int_eq(memcmp(b.body + 4, "ftyp", 4), 0);
    reply_free(&b);
    get("/live/cam/s1.m4s", &b);
    ck_assert_int_eq(b.status, 200);
    ck_assert_int_eq(memcmp(b.body + 4, "moof", 4), 0);
    /* five parts, five moofs */
    {
        int moofs = 0;

        for (size_t i = 0; i + 4 <= b.len; i++)
            if (memcmp(b.body + i, "moof", 4) == 0)
                moofs++;
        ck_assert_int_ge(moofs, 5);
    }
    reply_free(&b);
}
END_TEST

/* Every LL-HLS connection has Nagle off: a part leaves in several writes,
 * and with Nagle each write after the first would wait for the client's
 * delayed ACK (40 ms on Linux) on a keep-alive connection. */
START_TEST(connections_no_delay)
{
    const char req[] = "GET /live/cam/init.mp4 HTTP/1.1\r\nHost: x\r\n\r\n";
    struct sockaddr_in mine, peer;
    socklen_t ml = sizeof(mine), pl;
    reply_t r;
    char buf[4096];
    int fd, found = -1, nodelay = 0;
    socklen_t ol = sizeof(nodelay);

    start();
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    fd = connect_local();
    ck_assert_int_eq(write(fd, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    /* the answer means the request was handled; the connection stays open */
    ck_assert_int_gt(read(fd, buf, sizeof(buf)), 12);
    ck_assert_int_eq(strncmp(buf, "HTTP/1.1 200", 12), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&mine, &ml), 0);
    /* the server's end of this connection lives in this process */
    for (int i = 3; i < 4096 && found < 0; i++) {
        pl = sizeof(peer);
        if (i != fd && getpeername(i, (struct sockaddr *)&peer, &pl) == 0 &&
            peer.sin_family == AF_INET && peer.sin_port == mine.sin_port &&
            peer.sin_addr.s_addr == mine.sin_addr.s_addr)
            found = i;
    }
    ck_assert_int_ge(found, 0);
    ck_assert_int_eq(getsockopt(found, IPPROTO_TCP, TCP_NODELAY, &nodelay, &ol), 0);
    ck_assert_int_eq(nodelay, 1);
    close(fd);
}
END_TEST

/* A plain playlist request is answered when the next part exists, so the
 * newest part it lists is new when it arrives (players place their start
 * point by the time they received the playlist); with no new part it is
 * answered after two part targets with the playlist as it is. */
START_TEST(plain_playlist_fresh)
{
    reply_t r, f;
    uint64_t msn, m2;
    uint32_t part, p2;
    char uri[64];
    double t;
    int fd;

    start();
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    /* no more media: held for two part targets (200 ms at SPEED 4: the
     * timer is wall clock), then answered 200, not 503 */
    atomic_store(&feeding, 0);
    usleep(100000);
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert(r.ms >= 390);
    hint(r.body, &msn, &part);
    /* held again; media resumes: the answer lists exactly the part that
     * was hinted, as its newest */
    t = now_ms();
    fd = get_send("/live/cam/index.m3u8");
    usleep(50000);
    atomic_store(&feeding, 1);
    get_recv(fd, t, &f);
    ck_assert_int_eq(f.status, 200);
    ck_assert_ptr_nonnull(strstr(f.head, "Cache-Control: no-store"));
    snprintf(uri, sizeof(uri), "URI=\"p%lu.%u.m4s\"", msn, part);
    /* before: only hinted; after: listed, and the next one hinted */
    ck_assert_int_eq(count(r.body, uri), 1);
    ck_assert_int_eq(count(f.body, uri), 1);
    hint(f.body, &m2, &p2);
    ck_assert((m2 == msn && p2 == part + 1) || (m2 == msn + 1 && p2 == 0));
    reply_free(&r);
    reply_free(&f);
}
END_TEST

START_TEST(delta_update)
{
    reply_t full, delta;
    int skipped = 0;
    const char *sk;

    start();
    wait_finished();
    get("/live/cam/index.m3u8", &full);
    get("/live/cam/index.m3u8?_HLS_skip=YES", &delta);
    ck_assert_int_eq(full.status, 200);
    ck_assert_int_eq(delta.status, 200);
    /* 12 s of 1 s segments; CAN-SKIP-UNTIL is 6 s */
    sk = strstr(delta.body, "#EXT-X-SKIP:SKIPPED-SEGMENTS=");
    ck_assert_ptr_nonnull(sk);
    ck_assert_int_eq(sscanf(sk, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%d", &skipped), 1);
    ck_assert_int_ge(skipped, 4);
    ck_assert_ptr_null(strstr(full.body, "#EXT-X-SKIP"));
    /* the same media sequence; the skipped segments are exactly the first
     * ones of the full playlist and the rest is the same text */
    ck_assert_ptr_nonnull(strstr(delta.body, "#EXT-X-MEDIA-SEQUENCE:1\n"));
    ck_assert_int_eq(count(full.body, "#EXTINF:"), count(delta.body, "#EXTINF:") + skipped);
    {
        char want[64];
        const char *tail_full, *tail_delta;

        snprintf(want, sizeof(want), "s%d.m4s\n", skipped);
        ck_assert_ptr_nonnull(strstr(full.body, want));
        ck_assert_ptr_null(strstr(delta.body, want));
        snprintf(want, sizeof(want), "s%d.m4s\n", skipped + 1);
        tail_full = strstr(full.body, want);
        tail_delta = strstr(delta.body, want);
        ck_assert_ptr_nonnull(tail_delta);
        ck_assert_str_eq(tail_full, tail_delta);
    }
    reply_free(&full);
    reply_free(&delta);
    get("/live/cam/index.m3u8?_HLS_skip=v2", &delta);
    ck_assert_ptr_nonnull(strstr(delta.body, ",RECENTLY-REMOVED-DATERANGES=\"\"\n"));
    reply_free(&delta);
}
END_TEST

START_TEST(timeout_503_and_close_404)
{
    reply_t r;
    uint64_t msn;
    uint32_t part;
    char path[256], req[300], buf[512];
    int fd;
    ssize_t n;

    start();
    wait_finished();
    get("/live/cam/index.m3u8", &r);
    hint(r.body, &msn, &part);
    reply_free(&r);
    /* nothing more comes: held for 3 target durations, then 503 */
    snprintf(path, sizeof(path), "/live/cam/index.m3u8?_HLS_msn=%lu&_HLS_part=%u", msn, part);
    get(path, &r);
    ck_assert_int_eq(r.status, 503);
    ck_assert(r.ms >= 2900);
    reply_free(&r);

    /* a client that leaves while held costs nothing */
    fd = connect_local();
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    usleep(100000);
    close(fd);

    /* the stream ends while a request is held: 404 */
    fd = connect_local();
    ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
    usleep(100000);
    atomic_store(&close_stream, 1);
    n = read(fd, buf, sizeof(buf) - 1);
    ck_assert_int_gt(n, 12);
    buf[n] = '\0';
    ck_assert_int_eq(strncmp(buf, "HTTP/1.1 404", 12), 0);
    close(fd);
    while (atomic_load(&close_stream) != 2)
        usleep(1000);
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 404);
    reply_free(&r);
}
END_TEST

START_TEST(master_and_sessions)
{
    reply_t r;
    char path[256];
    const char *sid;

    start();
    wait_finished();
    get("/live/cam/master.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_int_eq(strncmp(r.body, "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-STREAM-INF:BANDWIDTH=", 63), 0);
    ck_assert_ptr_nonnull(strstr(r.body, ",CODECS=\"avc1.42c0"));
    ck_assert_ptr_nonnull(strstr(r.body, ",mp4a.40.2\",RESOLUTION=320x240,FRAME-RATE=25.000\n"));
    sid = strstr(r.body, "index.m3u8?sid=");
    ck_assert_ptr_nonnull(sid);
    ck_assert_int_eq(strlen(sid), strlen("index.m3u8?sid=") + 16 + 1);
    snprintf(path, sizeof(path), "/live/cam/%.*s&_HLS_skip=YES", (int)strlen(sid) - 1, sid);
    reply_free(&r);
    /* master counted one session; its reload refreshes it, a client
     * without sid is another */
    ck_assert_uint_eq(tc_llhls_viewers(ll, "cam"), 1);
    get(path, &r);
    ck_assert_int_eq(r.status, 200);
    reply_free(&r);
    ck_assert_uint_eq(tc_llhls_viewers(ll, "cam"), 1);
    get("/live/cam/index.m3u8", &r);
    reply_free(&r);
    get("/live/cam/index.m3u8", &r);
    reply_free(&r);
    ck_assert_uint_eq(tc_llhls_viewers(ll, "cam"), 2);
    ck_assert_uint_eq(tc_llhls_viewers(ll, "other"), 0);
    /* idle sessions end (llhls-session-idle-ms 2000 here) */
    usleep(3200000);
    ck_assert_uint_eq(tc_llhls_viewers(ll, "cam"), 0);
    /* CORS preflight */
    {
        int fd = connect_local();
        const char *req = "OPTIONS /live/cam/index.m3u8 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        char buf[1024];
        ssize_t n;

        ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
        n = read(fd, buf, sizeof(buf) - 1);
        ck_assert_int_gt(n, 0);
        buf[n] = '\0';
        ck_assert_int_eq(strncmp(buf, "HTTP/1.1 204", 12), 0);
        ck_assert_ptr_nonnull(strstr(buf, "Access-Control-Allow-Methods: GET, HEAD, OPTIONS"));
        close(fd);
    }
}
END_TEST

START_TEST(from_flv_bodies)
{
    reply_t r, m;

    /* sizes from the SPS, rates from the AudioSpecificConfig */
    atomic_store(&as_flv, 1);
    atomic_store(&feeding, 1);
    get("/live/cam/index.m3u8", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(strstr(r.body, "URI=\"p1.0.m4s\",INDEPENDENT=YES"));
    get("/live/cam/master.m3u8", &m);
    ck_assert_ptr_nonnull(strstr(m.body, ",mp4a.40.2\",RESOLUTION=320x240"));
    reply_free(&r);
    reply_free(&m);
    get("/live/cam/init.mp4", &r);
    ck_assert_int_eq(r.status, 200);
    ck_assert_ptr_nonnull(memmem(r.body, r.len, "avcC", 4));
    ck_assert_ptr_nonnull(memmem(r.body, r.len, "mp4a", 4));
    reply_free(&r);
}
END_TEST

START_TEST(directives)
{
    core_conf_t *c = core_conf_new();
    char err[128];

    ck_assert_int_eq(tc_llhls_conf_register(c), 0);
    ck_assert_int_eq(tc_llhls_conf()->part_ms, 200);
    ck_assert_int_eq(tc_llhls_conf()->segment_ms, 2000);
    ck_assert_int_eq(tc_llhls_conf()->window_segments, 12);
    ck_assert_int_eq(core_conf_set(c, "llhls-part-ms", "99", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(core_conf_set(c, "llhls-part-ms", "1001", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(core_conf_set(c, "llhls-part-ms", "500", err, sizeof(err)), 0);
    ck_assert_int_eq(tc_llhls_conf()->part_ms, 500);
    core_conf_free(&c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("transcoder/llhls");
    TCase *tc = tcase_create("http");
    SRunner *sr;
    int failed;

    av_log_set_level(AV_LOG_ERROR);
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, before_config);
    tcase_add_test(tc, playlist_blocking_and_parts);
    tcase_add_test(tc, connections_no_delay);
    tcase_add_test(tc, plain_playlist_fresh);
    tcase_add_test(tc, delta_update);
    tcase_add_test(tc, timeout_503_and_close_404);
    tcase_add_test(tc, master_and_sessions);
    tcase_add_test(tc, from_flv_bodies);
    suite_add_tcase(s, tc);
    tc = tcase_create("conf");
    tcase_add_test(tc, directives);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
