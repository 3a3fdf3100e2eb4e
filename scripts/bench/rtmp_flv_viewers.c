/* Load generator for the fan-out benchmark (scripts/bench/rtmp_fanout.py
 * compiles it with cc -O2): N viewers of one stream over HTTP-FLV or RTMP
 * play, all in one epoll loop, reading and discarding what they get.
 *
 *   rtmp_flv_viewers flv|rtmp HOST PORT NAME N WARMUP_S MEASURE_S
 *
 * Prints one JSON line: bytes per viewer in the measurement window (min,
 * median, max, total) and how many connections failed or were closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct viewer {
    int fd;
    int state;          /* 0 connecting/handshake, 1 streaming, 2 dead */
    size_t hs;          /* handshake bytes received (RTMP) */
    uint64_t bytes, mark;
} viewer_t;

static uint8_t req[4096];
static size_t req_len;
static uint8_t after_hs[4096];
static size_t after_hs_len;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t amf_str(uint8_t *p, const char *s)
{
    size_t n = strlen(s);

    p[0] = 2;
    p[1] = (uint8_t)(n >> 8);
    p[2] = (uint8_t)n;
    memcpy(p + 3, s, n);
    return 3 + n;
}

static size_t amf_num(uint8_t *p, double d)
{
    uint64_t u;

    memcpy(&u, &d, 8);
    p[0] = 0;
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(u >> (56 - 8 * i));
    return 9;
}

static size_t amf_key(uint8_t *p, const char *k)
{
    size_t n = strlen(k);

    p[0] = (uint8_t)(n >> 8);
    p[1] = (uint8_t)n;
    memcpy(p + 2, k, n);
    return 2 + n;
}

/* One message as 128-byte chunks. */
static size_t chunk(uint8_t *out, int csid, int type, int msid, const uint8_t *pl, size_t n)
{
    size_t o = 0;

    out[o++] = (uint8_t)csid;
    out[o++] = 0; out[o++] = 0; out[o++] = 0;
    out[o++] = (uint8_t)(n >> 16); out[o++] = (uint8_t)(n >> 8); out[o++] = (uint8_t)n;
    out[o++] = (uint8_t)type;
    out[o++] = (uint8_t)msid; out[o++] = 0; out[o++] = 0; out[o++] = 0;
    for (size_t i = 0; i < n; i += 128) {
        if (i > 0)
            out[o++] = (uint8_t)(0xc0 | csid);
        memcpy(out + o, pl + i, n - i < 128 ? n - i : 128);
        o += n - i < 128 ? n - i : 128;
    }
    return o;
}

static void build_rtmp(const char *host, int port, const char *name)
{
    uint8_t pl[1024];
    size_t n = 0;
    char tc[256];

    req[0] = 3;
    memset(req + 1, 0, 1536);
    req_len = 1537;
    snprintf(tc, sizeof(tc), "rtmp://%s:%d/live", host, port);
    n += amf_str(pl + n, "connect");
    n += amf_num(pl + n, 1);
    pl[n++] = 3;
    n += amf_key(pl + n, "app");
    n += amf_str(pl + n, "live");
    n += amf_key(pl + n, "tcUrl");
    n += amf_str(pl + n, tc);
    pl[n++] = 0; pl[n++] = 0; pl[n++] = 9;
    after_hs_len = 1536;   /* C2 placeholder, filled per connection (zeros work) */
    memset(after_hs, 0, 1536);
    after_hs_len += chunk(after_hs + after_hs_len, 3, 20, 0, pl, n);
    n = 0;
    n += amf_str(pl + n, "createStream");
    n += amf_num(pl + n, 2);
    pl[n++] = 5;
    after_hs_len += chunk(after_hs + after_hs_len, 3, 20, 0, pl, n);
    n = 0;
    n += amf_str(pl + n, "play");
    n += amf_num(pl + n, 3);
    pl[n++] = 5;
    n += amf_str(pl + n, name);
    n += amf_num(pl + n, -1000);
    after_hs_len += chunk(after_hs + after_hs_len, 8, 20, 1, pl, n);
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static uint8_t buf[1 << 18];
    struct sockaddr_in sa = {0};
    int rtmp, n, ep, port;
    double warm, measure, t0, tmark = 0;
    viewer_t *v;
    uint64_t *w;
    int failed = 0, marked = 0;

    if (argc != 8) {
        fprintf(stderr, "usage: %s flv|rtmp HOST PORT NAME N WARMUP_S MEASURE_S\n", argv[0]);
        return 2;
    }
    rtmp = strcmp(argv[1], "rtmp") == 0;
    port = atoi(argv[3]);
    n = atoi(argv[5]);
    warm = atof(argv[6]);
    measure = atof(argv[7]);
    if (rtmp)
        build_rtmp(argv[2], port, argv[4]);
    else
        req_len = (size_t)snprintf((char *)req, sizeof(req),
                                   "GET /live/%s.flv HTTP/1.1\r\nHost: %s\r\n\r\n", argv[4], argv[2]);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    inet_pton(AF_INET, argv[2], &sa.sin_addr);
    ep = epoll_create1(0);
    v = calloc((size_t)n, sizeof(*v));
    w = calloc((size_t)n, sizeof(*w));
    for (int i = 0; i < n; i++) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};

        v[i].fd = socket(AF_INET, SOCK_STREAM, 0);
        if (v[i].fd < 0 || connect(v[i].fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            write(v[i].fd, req, req_len) != (ssize_t)req_len) {
            v[i].state = 2;
            failed++;
            continue;
        }
        fcntl(v[i].fd, F_SETFL, O_NONBLOCK);
        v[i].state = rtmp ? 0 : 1;
        epoll_ctl(ep, EPOLL_CTL_ADD, v[i].fd, &ev);
    }
    t0 = now();
    for (;;) {
        struct epoll_event evs[256];
        double t = now();
        int k;

        if (!marked && t - t0 >= warm) {
            for (int i = 0; i < n; i++)
                v[i].mark = v[i].bytes;
            tmark = t;
            marked = 1;
            printf("{\"event\":\"measuring\"}\n");
            fflush(stdout);
        }
        if (marked && t - tmark >= measure)
            break;
        k = epoll_wait(ep, evs, 256, 50);
        for (int j = 0; j < k; j++) {
            viewer_t *x = &v[evs[j].data.u32];

            for (;;) {
                ssize_t r = read(x->fd, buf, sizeof(buf));

                if (r > 0) {
                    x->bytes += (uint64_t)r;
                    if (x->state == 0) {
                        x->hs += (size_t)r;
                        if (x->hs >= 3073) {
                            x->state = 1;
                            if (write(x->fd, after_hs, after_hs_len) != (ssize_t)after_hs_len)
                                x->state = 2;
                        }
                    }
                    if ((size_t)r < sizeof(buf))
                        break;
                    continue;
                }
                if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                    x->state = 2;
                    failed++;
                    epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                    close(x->fd);
                }
                break;
            }
        }
    }
    {
        uint64_t total = 0;

        for (int i = 0; i < n; i++) {
            w[i] = v[i].bytes - v[i].mark;
            total += w[i];
        }
        qsort(w, (size_t)n, sizeof(*w), cmp);
        printf("{\"viewers\":%d,\"failed\":%d,\"seconds\":%.3f,\"min\":%llu,\"median\":%llu,"
               "\"max\":%llu,\"total\":%llu}\n",
               n, failed, now() - tmark, (unsigned long long)w[0], (unsigned long long)w[n / 2],
               (unsigned long long)w[n - 1], (unsigned long long)total);
    }
    return 0;
}
