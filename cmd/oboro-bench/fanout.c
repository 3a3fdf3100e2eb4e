/* oboro-bench fanout: N HTTP-FLV or LL-HLS viewers on one event loop.
 *
 * Each viewer reads the stream as a player would: it takes bytes as they
 * arrive, splits them into FLV tags and keeps a playback clock that starts
 * at its first video frame. A video frame that arrives after the clock has
 * passed its timestamp by more than --stall-ms is a stall (the player would
 * rebuffer; the clock restarts from that frame). A forward jump of video
 * timestamps larger than --drop-ms is a drop (the server skipped frames,
 * e.g. to the next keyframe for a slow viewer).
 *
 * A URL ending in .m3u8 makes LL-HLS viewers, which follow the playlist as
 * a low-latency player does: fetch the part the EXT-X-PRELOAD-HINT names
 * (the server holds the request until the part exists), then reload the
 * playlist blocking on that part (_HLS_msn/_HLS_part), and so on. A part
 * that completes later than PART-TARGET + --stall-ms after the previous
 * one is a stall; a hint that skips parts is a drop. With --pid, the
 * server's CPU use is read from /proc/PID/stat once a second. */
#include "cmd/oboro-bench/tools.h"

#include "core/arena.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct viewer viewer_t;

typedef struct fanout {
    struct event_base *base;
    struct event *tick, *stop_ev;
    viewer_t *viewers;
    int n;
    const char *url, *host, *path;
    int port;
    uint64_t duration_ns, stall_ns, drop_ms;
    uint64_t start_ns;
    int json, stopping;
    int hls;                    /* LL-HLS viewers (URL ends in .m3u8) */
    pid_t pid;
    uint64_t cpu_first, cpu_last, cpu_prev, cpu_prev_ns, cpu_first_ns, cpu_last_ns;
    double cpu_peak;
    int cpu_ok;
} fanout_t;

struct viewer {
    fanout_t *f;
    int id;
    struct evhttp_connection *conn;
    struct evbuffer *buf;
    int status, header_done, ended, failed;
    uint64_t bytes, tags, frames, keyframes;
    uint64_t first_ns, last_ns;
    int have_video;
    uint32_t last_ts;
    uint64_t play_wall_ns;      /* wall time the playback clock was (re)started */
    uint32_t play_ts;           /* stream time at that moment */
    uint64_t drops, drop_ms, stalls, stall_ns;
    /* LL-HLS */
    int64_t hint_msn;           /* position of the hinted part; -1: none yet */
    int64_t hint_part;
    uint64_t part_target_ms;
    uint64_t last_part_ns;
    char hint_uri[256];
    char err[96];
};

static _Atomic int interrupted;

static void on_signal(int sig)
{
    atomic_store(&interrupted, 1);
}

static int read_cpu(pid_t pid, uint64_t *ticks)
{
    char path[64], text[1024];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, text, sizeof(text));
    close(fd);
    if (n <= 0)
        return -EIO;
    return bench_stat_parse(text, (size_t)n, ticks);
}

static void viewer_fail(viewer_t *v, const char *why)
{
    if (!v->failed && !v->ended)
        snprintf(v->err, sizeof(v->err), "%s", why);
    v->failed = 1;
}

static void on_video(viewer_t *v, const bench_flv_tag_t *t, uint64_t now)
{
    v->frames++;
    v->keyframes += t->keyframe != 0;
    if (!v->have_video) {
        v->have_video = 1;
        v->play_wall_ns = now;
        v->play_ts = t->timestamp_ms;
    } else {
        int64_t jump = (int64_t)t->timestamp_ms - (int64_t)v->last_ts;
        /* where the player's clock is now, in stream milliseconds */
        int64_t clock_ms = (int64_t)v->play_ts + (int64_t)((now - v->play_wall_ns) / 1000000u);
        int64_t late_ns = (clock_ms - (int64_t)t->timestamp_ms) * 1000000;

        if (jump > (int64_t)v->f->drop_ms) {
            v->drops++;
            v->drop_ms += (uint64_t)jump;
        }
        if (late_ns > (int64_t)v->f->stall_ns) {
            v->stalls++;
            v->stall_ns += (uint64_t)late_ns;
            v->play_wall_ns = now;
            v->play_ts = t->timestamp_ms;
        }
    }
    v->last_ts = t->timestamp_ms;
}

static void chunk_cb(struct evhttp_request *req, void *arg)
{
    viewer_t *v = arg;
    uint64_t now = bench_now_ns();

    if (v->f->stopping || v->failed)
        return;
    v->bytes += evbuffer_get_length(evhttp_request_get_input_buffer(req));
    evbuffer_add_buffer(v->buf, evhttp_request_get_input_buffer(req));
    if (v->first_ns == 0)
        v->first_ns = now;
    v->last_ns = now;
    for (;;) {
        size_t len = evbuffer_get_length(v->buf);
        const uint8_t *p;
        bench_flv_tag_t t;
        ssize_t n;

        if (len == 0)
            return;
        if (!v->header_done) {
            p = evbuffer_pullup(v->buf, len < 13 ? (ssize_t)len : 13);
            n = bench_flv_header_parse(p, len < 13 ? len : 13);
            if (n == -EAGAIN)
                return;
            if (n < 0) {
                viewer_fail(v, "not an FLV stream");
                return;
            }
            v->header_done = 1;
            evbuffer_drain(v->buf, (size_t)n);
            continue;
        }
        /* look at the tag header first, then pull up the whole tag */
        p = evbuffer_pullup(v->buf, len < 11 ? (ssize_t)len : 11);
        n = bench_flv_tag_parse(p, len < 11 ? len : 11, &t);
        if (n == -EAGAIN && len >= 11) {
            size_t need = 11 + ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]) + 4;

            if (len < need)
                return;
            p = evbuffer_pullup(v->buf, (ssize_t)need);
            n = bench_flv_tag_parse(p, need, &t);
        }
        if (n == -EAGAIN)
            return;
        if (n < 0) {
            viewer_fail(v, "malformed FLV tag");
            return;
        }
        v->tags++;
        if (t.type == 9)
            on_video(v, &t, now);
        evbuffer_drain(v->buf, (size_t)n);
    }
}

static int header_cb(struct evhttp_request *req, void *arg)
{
    viewer_t *v = arg;

    v->status = evhttp_request_get_response_code(req);
    if (v->status != 200) {
        char why[64];

        snprintf(why, sizeof(why), "HTTP %d", v->status);
        viewer_fail(v, why);
        return -1;
    }
    return 0;
}

static void done_cb(struct evhttp_request *req, void *arg)
{
    viewer_t *v = arg;

    if (v->f->stopping)
        return;
    if (req == NULL || evhttp_request_get_response_code(req) == 0)
        viewer_fail(v, "connection failed");
    else if (!v->failed)
        v->ended = 1; /* the server ended the stream before the run did */
}

/* ---- LL-HLS viewers --------------------------------------------------- */

static int hls_request(viewer_t *v, const char *target, void (*cb)(struct evhttp_request *, void *));
static void hls_playlist_done(struct evhttp_request *req, void *arg);

/* The value of ATTR= in an attribute list (quoted or not) into out. */
static int attr_get(const char *line, size_t len, const char *attr, char *out, size_t cap)
{
    size_t al = strlen(attr);

    for (size_t i = 0; i + al < len; i++) {
        if ((i == 0 || line[i - 1] == ':' || line[i - 1] == ',') &&
            memcmp(line + i, attr, al) == 0 && line[i + al] == '=') {
            size_t j = i + al + 1, n = 0;
            int quoted = j < len && line[j] == '"';

            j += (size_t)quoted;
            while (j < len && n + 1 < cap && (quoted ? line[j] != '"' : line[j] != ','))
                out[n++] = line[j++];
            out[n] = '\0';
            return 0;
        }
    }
    return -ENOENT;
}

/* Find the preload hint and its position: parts after the last EXTINF
 * belong to the open segment media_sequence + (number of EXTINFs), and
 * the hinted part follows them. Returns 0, or -EPROTO. */
static int hls_parse(viewer_t *v, const char *p, size_t len, int64_t *msn, int64_t *part,
                     char *uri, size_t cap)
{
    int64_t seq = -1, nseg = 0, nparts = 0;
    int have_hint = 0;
    char val[64];

    while (len > 0) {
        const char *nl = memchr(p, '\n', len);
        size_t ll = nl ? (size_t)(nl - p) : len;

        if (ll > 0 && p[ll - 1] == '\r')
            ll--;
        if (ll > 22 && memcmp(p, "#EXT-X-MEDIA-SEQUENCE:", 22) == 0) {
            /* the body is not NUL-terminated: read digits within the line */
            seq = 0;
            for (size_t i = 22; i < ll && p[i] >= '0' && p[i] <= '9' && seq < INT64_MAX / 10 - 9; i++)
                seq = seq * 10 + (p[i] - '0');
        } else if (ll > 8 && memcmp(p, "#EXTINF:", 8) == 0) {
            nseg++;
            nparts = 0;
        } else if (ll > 12 && memcmp(p, "#EXT-X-PART:", 12) == 0) {
            nparts++;
        } else if (ll > 15 && memcmp(p, "#EXT-X-PART-INF:", 16) == 0) {
            if (attr_get(p, ll, "PART-TARGET", val, sizeof(val)) == 0)
                v->part_target_ms = (uint64_t)(strtod(val, NULL) * 1000.0);
        } else if (ll > 20 && memcmp(p, "#EXT-X-PRELOAD-HINT:", 20) == 0) {
            have_hint = attr_get(p, ll, "URI", uri, cap) == 0;
        }
        if (nl == NULL)
            break;
        len -= (size_t)(nl - p) + 1;
        p = nl + 1;
    }
    if (seq < 0 || !have_hint)
        return -EPROTO;
    *msn = seq + nseg;
    *part = nparts;
    return 0;
}

/* target = directory of the playlist path + uri (a relative URI). */
static void hls_resolve(const fanout_t *f, const char *uri, char *out, size_t cap)
{
    const char *slash = strrchr(f->path, '/');

    if (uri[0] == '/')
        snprintf(out, cap, "%s", uri);
    else
        snprintf(out, cap, "%.*s%s", slash ? (int)(slash - f->path + 1) : 0, f->path, uri);
}

static int hls_status_ok(viewer_t *v, struct evhttp_request *req)
{
    if (v->f->stopping || v->failed)
        return 0;
    if (req == NULL || evhttp_request_get_response_code(req) == 0) {
        viewer_fail(v, "connection failed");
        return 0;
    }
    v->status = evhttp_request_get_response_code(req);
    if (v->status != 200) {
        char why[64];

        snprintf(why, sizeof(why), "HTTP %d", v->status);
        viewer_fail(v, why);
        return 0;
    }
    return 1;
}

static void hls_part_done(struct evhttp_request *req, void *arg)
{
    viewer_t *v = arg;
    uint64_t now = bench_now_ns();
    size_t n;
    char target[512];

    if (!hls_status_ok(v, req))
        return;
    n = evbuffer_get_length(evhttp_request_get_input_buffer(req));
    v->bytes += n;
    v->frames++; /* parts */
    if (v->first_ns == 0)
        v->first_ns = now;
    if (v->last_part_ns != 0) {
        uint64_t gap = now - v->last_part_ns;
        uint64_t allowed = (v->part_target_ms ? v->part_target_ms : 1000) * 1000000u + v->f->stall_ns;

        if (gap > allowed) {
            v->stalls++;
            v->stall_ns += gap - (v->part_target_ms * 1000000u);
        }
    }
    v->last_part_ns = v->last_ns = now;
    /* blocking reload: returns once the part just received exists, with
     * the next hint */
    snprintf(target, sizeof(target), "%s?sid=fanout%d&_HLS_msn=%lld&_HLS_part=%lld", v->f->path,
             v->id, (long long)v->hint_msn, (long long)v->hint_part);
    if (hls_request(v, target, hls_playlist_done) != 0)
        viewer_fail(v, "cannot request playlist");
}

static void hls_playlist_done(struct evhttp_request *req, void *arg)
{
    viewer_t *v = arg;
    struct evbuffer *b;
    int64_t msn, part;
    size_t len;
    char uri[256], target[512];

    if (!hls_status_ok(v, req))
        return;
    b = evhttp_request_get_input_buffer(req);
    len = evbuffer_get_length(b);
    if (len > (1u << 20) ||
        hls_parse(v, (const char *)evbuffer_pullup(b, -1), len, &msn, &part, uri, sizeof(uri)) != 0) {
        viewer_fail(v, "playlist without a preload hint");
        return;
    }
    if (v->hint_msn >= 0) {
        int next = (msn == v->hint_msn && part == v->hint_part + 1) ||
                   (msn == v->hint_msn + 1 && part == 0);

        if (!next && !(msn == v->hint_msn && part == v->hint_part)) {
            v->drops++;
            v->drop_ms += v->part_target_ms;
        }
    }
    v->hint_msn = msn;
    v->hint_part = part;
    snprintf(v->hint_uri, sizeof(v->hint_uri), "%s", uri);
    hls_resolve(v->f, uri, target, sizeof(target));
    if (hls_request(v, target, hls_part_done) != 0)
        viewer_fail(v, "cannot request part");
}

static int hls_request(viewer_t *v, const char *target, void (*cb)(struct evhttp_request *, void *))
{
    struct evhttp_request *req = evhttp_request_new(cb, v);
    char hostport[300];

    if (req == NULL)
        return -ENOMEM;
    snprintf(hostport, sizeof(hostport), "%s:%d", v->f->host, v->f->port);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostport);
    evhttp_add_header(evhttp_request_get_output_headers(req), "User-Agent", "oboro-bench fanout");
    return evhttp_make_request(v->conn, req, EVHTTP_REQ_GET, target) == 0 ? 0 : -EIO;
}

static int hls_viewer_start(viewer_t *v)
{
    char target[512];

    v->hint_msn = -1;
    snprintf(target, sizeof(target), "%s?sid=fanout%d", v->f->path, v->id);
    return hls_request(v, target, hls_playlist_done);
}

static int viewer_start(viewer_t *v)
{
    fanout_t *f = v->f;
    struct evhttp_request *req;
    char hostport[300];

    v->buf = evbuffer_new();
    v->conn = evhttp_connection_base_new(f->base, NULL, f->host, (unsigned short)f->port);
    if (v->buf == NULL || v->conn == NULL)
        return -ENOMEM;
    if (f->hls)
        return hls_viewer_start(v);
    req = evhttp_request_new(done_cb, v);
    if (req == NULL)
        return -ENOMEM;
    evhttp_request_set_chunked_cb(req, chunk_cb);
    evhttp_request_set_header_cb(req, header_cb);
    snprintf(hostport, sizeof(hostport), "%s:%d", f->host, f->port);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Host", hostport);
    evhttp_add_header(evhttp_request_get_output_headers(req), "User-Agent", "oboro-bench fanout");
    if (evhttp_make_request(v->conn, req, EVHTTP_REQ_GET, f->path) != 0)
        return -EIO;
    return 0;
}

static void cpu_sample(fanout_t *f)
{
    uint64_t ticks, now = bench_now_ns();

    if (f->pid <= 0 || read_cpu(f->pid, &ticks) != 0)
        return;
    if (!f->cpu_ok) {
        f->cpu_ok = 1;
        f->cpu_first = ticks;
        f->cpu_first_ns = now;
    } else if (now > f->cpu_prev_ns) {
        double pct = (double)(ticks - f->cpu_prev) / (double)sysconf(_SC_CLK_TCK) /
                     ((double)(now - f->cpu_prev_ns) / 1e9) * 100.0;

        if (pct > f->cpu_peak)
            f->cpu_peak = pct;
    }
    f->cpu_prev = ticks;
    f->cpu_prev_ns = now;
    f->cpu_last = ticks;
    f->cpu_last_ns = now;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    fanout_t *f = arg;

    cpu_sample(f);
    if (atomic_load(&interrupted)) {
        f->stopping = 1;
        event_base_loopbreak(f->base);
    }
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
    fanout_t *f = arg;

    f->stopping = 1;
    event_base_loopbreak(f->base);
}

static double cpu_avg(const fanout_t *f)
{
    if (!f->cpu_ok || f->cpu_last_ns <= f->cpu_first_ns)
        return 0;
    return (double)(f->cpu_last - f->cpu_first) / (double)sysconf(_SC_CLK_TCK) /
           ((double)(f->cpu_last_ns - f->cpu_first_ns) / 1e9) * 100.0;
}

static void report(fanout_t *f, double elapsed_s)
{
    struct evbuffer *out = evbuffer_new();
    uint64_t bytes = 0, fmin = UINT64_MAX, fmax = 0, frames = 0, drops = 0, stalls = 0;
    uint64_t stall_ns = 0, drop_ms = 0;
    int i, connected = 0, failed = 0, ended = 0, with_drops = 0, with_stalls = 0;

    if (out == NULL)
        return;
    for (i = 0; i < f->n; i++) {
        viewer_t *v = &f->viewers[i];

        connected += v->status == 200;
        failed += v->failed;
        ended += v->ended;
        bytes += v->bytes;
        frames += v->frames;
        fmin = v->frames < fmin ? v->frames : fmin;
        fmax = v->frames > fmax ? v->frames : fmax;
        drops += v->drops;
        drop_ms += v->drop_ms;
        stalls += v->stalls;
        stall_ns += v->stall_ns;
        with_drops += v->drops > 0;
        with_stalls += v->stalls > 0;
    }
    if (f->json) {
        evbuffer_add_printf(out, "{\"tool\":\"oboro-bench fanout\",\"mode\":\"%s\",\"url\":\"%s\",\"viewers\":%d,"
                            "\"connected\":%d,\"failed\":%d,\"ended\":%d,\"elapsed_s\":%.3f,"
                            "\"bytes\":%llu,\"bytes_per_s\":%.1f,\"frames\":%llu,\"drops\":%llu,"
                            "\"dropped_ms\":%llu,\"stalls\":%llu,\"stalled_ms\":%.1f,",
                            f->hls ? "llhls" : "http-flv", f->url, f->n, connected, failed, ended, elapsed_s,
                            (unsigned long long)bytes, elapsed_s > 0 ? (double)bytes / elapsed_s : 0,
                            (unsigned long long)frames, (unsigned long long)drops,
                            (unsigned long long)drop_ms, (unsigned long long)stalls,
                            (double)stall_ns / 1e6);
        if (f->cpu_ok)
            evbuffer_add_printf(out, "\"server_cpu\":{\"pid\":%d,\"avg_pct\":%.2f,\"peak_pct\":%.2f},",
                                (int)f->pid, cpu_avg(f), f->cpu_peak);
        evbuffer_add(out, "\"per_viewer\":[", 14);
        for (i = 0; i < f->n; i++) {
            viewer_t *v = &f->viewers[i];

            evbuffer_add_printf(out, "%s{\"status\":%d,\"bytes\":%llu,\"frames\":%llu,\"keyframes\":%llu,"
                                "\"drops\":%llu,\"stalls\":%llu,\"stalled_ms\":%.1f,\"error\":",
                                i ? "," : "", v->status, (unsigned long long)v->bytes,
                                (unsigned long long)v->frames, (unsigned long long)v->keyframes,
                                (unsigned long long)v->drops, (unsigned long long)v->stalls,
                                (double)v->stall_ns / 1e6);
            if (v->err[0])
                evbuffer_add_printf(out, "\"%s\"}", v->err);
            else
                evbuffer_add(out, "null}", 5);
        }
        evbuffer_add(out, "]}\n", 3);
    } else {
        evbuffer_add_printf(out, "Viewers: %d connected=%d failed=%d ended-early=%d  (%s)\n",
                            f->n, connected, failed, ended, f->url);
        evbuffer_add_printf(out, "Elapsed: %.3fs\n", elapsed_s);
        evbuffer_add_printf(out, "Throughput: %.2f MB/s (%.1f Mbit/s) in all, %.1f kB/s per viewer\n",
                            elapsed_s > 0 ? (double)bytes / elapsed_s / 1e6 : 0,
                            elapsed_s > 0 ? (double)bytes * 8 / elapsed_s / 1e6 : 0,
                            elapsed_s > 0 && f->n ? (double)bytes / elapsed_s / 1e3 / f->n : 0);
        evbuffer_add_printf(out, "%s per viewer: min=%llu avg=%.1f max=%llu\n",
                            f->hls ? "LL-HLS parts" : "Video frames",
                            (unsigned long long)(f->n ? fmin : 0),
                            f->n ? (double)frames / f->n : 0, (unsigned long long)fmax);
        evbuffer_add_printf(out, "Drops: %llu in %d viewers (%llu ms of stream skipped)\n",
                            (unsigned long long)drops, with_drops, (unsigned long long)drop_ms);
        evbuffer_add_printf(out, "Stalls: %llu in %d viewers (%.1f ms stalled)\n",
                            (unsigned long long)stalls, with_stalls, (double)stall_ns / 1e6);
        if (f->cpu_ok)
            evbuffer_add_printf(out, "Server CPU (pid %d): avg %.1f%% peak %.1f%% of one core\n",
                                (int)f->pid, cpu_avg(f), f->cpu_peak);
        for (i = 0; i < f->n; i++)
            if (f->viewers[i].err[0]) {
                evbuffer_add_printf(out, "First failure: viewer %d: %s\n", i, f->viewers[i].err);
                break;
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
        "usage: oboro-bench fanout --url http://HOST:PORT/live/NAME.flv [options]\n"
        "       oboro-bench fanout --url http://HOST:PORT/live/NAME/index.m3u8 [options]\n"
        "  --viewers N        concurrent HTTP-FLV (or, for a .m3u8 URL, LL-HLS) viewers (10)\n"
        "  --duration D       run time (10s)\n"
        "  --stall-ms N       a frame later than the playback clock by more is a stall (250)\n"
        "  --drop-ms N        a jump of video timestamps larger than this is a drop (200)\n"
        "  --pid PID          report the server's CPU use from /proc/PID/stat\n"
        "  --json             one JSON object with per-viewer figures\n");
}

int bench_cmd_fanout(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, 'u'}, {"viewers", required_argument, NULL, 'n'},
        {"duration", required_argument, NULL, 'd'}, {"stall-ms", required_argument, NULL, 's'},
        {"drop-ms", required_argument, NULL, 'D'}, {"pid", required_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    fanout_t *f = core_calloc(CORE_TAG_BENCH, 1, sizeof(*f));
    struct evhttp_uri *uri = NULL;
    struct timeval one = {1, 0};
    int rc = 2, opt, i;
    uint64_t stall_ms = 250;

    if (f == NULL)
        return 1;
    f->n = 10;
    f->duration_ns = 10000000000ULL;
    f->drop_ms = 200;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *e = NULL;
        long v = 0;

        if (strchr("nsDp", opt) != NULL) {
            v = strtol(optarg, &e, 10);
            if (*e != '\0' || v < 1 || (opt == 'n' && v > 100000) || v > 1 << 30) {
                fprintf(stderr, "oboro-bench fanout: bad value '%s'\n", optarg);
                goto out;
            }
        }
        switch (opt) {
        case 'u': f->url = optarg; break;
        case 'n': f->n = (int)v; break;
        case 's': stall_ms = (uint64_t)v; break;
        case 'D': f->drop_ms = (uint64_t)v; break;
        case 'p': f->pid = (pid_t)v; break;
        case 'j': f->json = 1; break;
        case 'd':
            if (bench_duration_parse(optarg, &f->duration_ns) != 0) {
                fprintf(stderr, "oboro-bench fanout: bad duration '%s'\n", optarg);
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
    if (optind < argc || f->url == NULL) {
        usage(stderr);
        goto out;
    }
    f->stall_ns = stall_ms * 1000000u;
    uri = evhttp_uri_parse(f->url);
    if (uri == NULL || evhttp_uri_get_host(uri) == NULL || evhttp_uri_get_scheme(uri) == NULL ||
        strcmp(evhttp_uri_get_scheme(uri), "http") != 0) {
        fprintf(stderr, "oboro-bench fanout: --url must be http://HOST[:PORT]/PATH (HTTP-FLV or LL-HLS)\n");
        goto out;
    }
    f->host = evhttp_uri_get_host(uri);
    f->port = evhttp_uri_get_port(uri) > 0 ? evhttp_uri_get_port(uri) : 80;
    f->path = evhttp_uri_get_path(uri) && evhttp_uri_get_path(uri)[0] ? evhttp_uri_get_path(uri) : "/";
    f->hls = strlen(f->path) > 5 && strcmp(f->path + strlen(f->path) - 5, ".m3u8") == 0;
    rc = 1;
    f->base = event_base_new();
    f->viewers = core_calloc(CORE_TAG_BENCH, (size_t)f->n, sizeof(viewer_t));
    if (f->base == NULL || f->viewers == NULL)
        goto out;
    f->tick = event_new(f->base, -1, EV_PERSIST, tick_cb, f);
    if (f->tick == NULL)
        goto out;
    atomic_store(&interrupted, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    f->start_ns = bench_now_ns();
    cpu_sample(f);
    for (i = 0; i < f->n; i++) {
        f->viewers[i].f = f;
        f->viewers[i].id = i;
        if (viewer_start(&f->viewers[i]) != 0) {
            fprintf(stderr, "oboro-bench fanout: cannot start viewer %d\n", i);
            goto out;
        }
    }
    {
        struct timeval dur = {(time_t)(f->duration_ns / 1000000000u),
                              (suseconds_t)(f->duration_ns % 1000000000u / 1000u)};

        f->stop_ev = evtimer_new(f->base, stop_cb, f);
        if (f->stop_ev == NULL)
            goto out;
        evtimer_add(f->stop_ev, &dur);
    }
    event_add(f->tick, &one);
    event_base_dispatch(f->base);
    f->stopping = 1;
    cpu_sample(f);
    report(f, (double)(bench_now_ns() - f->start_ns) / 1e9);
    rc = 0;
out:
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (f->viewers != NULL) {
        f->stopping = 1;
        for (i = 0; i < f->n; i++) {
            if (f->viewers[i].conn != NULL)
                evhttp_connection_free(f->viewers[i].conn);
            if (f->viewers[i].buf != NULL)
                evbuffer_free(f->viewers[i].buf);
        }
    }
    if (f->tick != NULL)
        event_free(f->tick);
    if (f->stop_ev != NULL)
        event_free(f->stop_ev);
    if (f->base != NULL)
        event_base_free(f->base);
    if (uri != NULL)
        evhttp_uri_free(uri);
    core_free(f->viewers);
    core_free(f);
    return rc;
}
