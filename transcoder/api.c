/* transcoder/api: GET /api/streams and /api/streams/NAME as JSON, and the
 * publish authentication of stream keys. */
#include "transcoder/tc_int.h"
#include "transcoder/blur.h"

#include "core/arena.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Names are restricted to [A-Za-z0-9_.-] at publish time, so they need no
 * JSON escaping; options are escaped here. */
static void json_str(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            evbuffer_add_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            evbuffer_add_printf(b, "\\u%04x", (unsigned char)*s);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

/* A fan-out share in percent over the last window (0 before a whole one). */
static double load_pct(const tc_load_t *l)
{
    tc_load_t copy = *l;
    int pm = tc_load_permille(&copy, core_mono_us());

    return pm < 0 ? 0.0 : pm / 10.0;
}

static void stream_json(struct evbuffer *b, const tc_stream_t *s)
{
    const char *slash = strchr(s->name, '/');

    const tc_hub_source_t *src = &s->hub->source;

    evbuffer_add_printf(b, "{\"name\":\"%s\",\"app\":\"%.*s\",", slash + 1,
                        (int)(slash - s->name), s->name);
    if (src->describe == NULL || !src->describe(src->arg, s, b))
        evbuffer_add_printf(b, "\"source\":\"push\",");
    evbuffer_add_printf(b, "\"publishing\":%s,", s->publisher != NULL ? "true" : "false");
    evbuffer_add_printf(b, "\"video\":{\"codec\":\"%s\",\"width\":%.0f,\"height\":%.0f,\"fps\":%.2f},",
                        s->has_video ? flv_vcodec_name(s->info.vcodec) : "none", s->info.width,
                        s->info.height, s->info.fps > 0 ? s->info.fps : s->info.fps_meta);
    evbuffer_add_printf(b, "\"audio\":{\"codec\":\"%s\"},", flv_acodec_name(s->info.acodec));
    evbuffer_add_printf(b, "\"bitrate_kbps\":%.1f,\"uptime_seconds\":%llu,\"bytes_in\":%llu,"
                           "\"packets_in\":%llu,\"dropped\":%llu,",
                        s->info.kbps, (unsigned long long)((core_mono_ms() - s->started_ms) / 1000),
                        (unsigned long long)s->bytes_in, (unsigned long long)s->packets_in,
                        (unsigned long long)s->dropped);
    /* writes to viewers: merged or per read, and the share of the loop
     * thread this stream's fan-out took over the last second */
    evbuffer_add_printf(b, "\"merged\":%s,\"merge_switches\":%llu,\"fanout_load_pct\":%.1f,",
                        s->merged ? "true" : "false", (unsigned long long)s->merge_switches,
                        load_pct(&s->load));
    evbuffer_add_printf(b, "\"viewers\":{\"flv\":%d,\"rtmp\":%d,\"total\":%d",
                        s->nsubs[TC_PROTO_FLV], s->nsubs[TC_PROTO_RTMP],
                        s->nsubs[TC_PROTO_FLV] + s->nsubs[TC_PROTO_RTMP]);
    /* every node's viewers of the stream, from the cache (viewers.c) */
    if (tc_viewers_count(s->hub, s) >= 0)
        evbuffer_add_printf(b, ",\"shard\":%lld", tc_viewers_count(s->hub, s));
    evbuffer_add_printf(b, "},\"options\":");
    json_str(b, s->options);
    evbuffer_add_printf(b, ",\"blur\":");
    tc_blur_json(s, b);
    evbuffer_add(b, "}", 1);
}

/* blur: POST /api/streams/NAME/blur[?on=0|1&regions=x,y,w,h;...] (NAME
 * of app "live" or APP/NAME). Returns 0 when path is not such a route. */
static int blur_route(struct evhttp_request *req, tc_server_t *srv, const char *path,
                      struct evbuffer *b, int *code)
{
    size_t n = strlen(path), pre = strlen("/api/streams/");
    char app[64] = "live", name[160];
    const char *why = "";

    if (n <= pre + 5 || strcmp(path + n - 5, "/blur") != 0)
        return 0;
    snprintf(name, sizeof(name), "%.*s", (int)(n - 5 - pre), path + pre);
    char *slash = strchr(name, '/');
    if (slash != NULL) {
        snprintf(app, sizeof(app), "%.*s", (int)(slash - name), name);
        memmove(name, slash + 1, strlen(slash + 1) + 1);
    }
    tc_stream_t *s = tc_hub_find(&srv->hub, app, name);
    if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
        *code = 405;
        evbuffer_add_printf(b, "{\"error\":\"POST only\"}\n");
    } else if (s == NULL) {
        *code = 404;
        evbuffer_add_printf(b, "{\"error\":\"no such stream\"}\n");
    } else {
        const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
        *code = tc_blur_api(s, srv->base, q, &why);
        if (*code != 200) {
            evbuffer_add_printf(b, "{\"error\":");
            json_str(b, why);
            evbuffer_add_printf(b, "}\n");
        } else {
            tc_blur_json(s, b);
            evbuffer_add(b, "\n", 1);
        }
    }
    return 1;
}

void tc_api_cb(struct evhttp_request *req, const char *path, void *arg)
{
    tc_server_t *srv = arg;
    struct evbuffer *b = evbuffer_new();
    int code = 200;

    if (b == NULL) {
        evhttp_send_error(req, 503, NULL);
        return;
    }
    if (strcmp(path, "/api/streams") == 0 || strcmp(path, "/api/streams/") == 0) {
        uint64_t p50, p99, max, n;
        int first = 1;

        evbuffer_add_printf(b, "{\"streams\":[");
        for (tc_stream_t *s = srv->hub.streams; s != NULL; s = s->next) {
            if (!first)
                evbuffer_add(b, ",", 1);
            first = 0;
            stream_json(b, s);
        }
        if (srv->hub.source.list != NULL)
            srv->hub.source.list(srv->hub.source.arg, b, &first);
        tc_latency_stats(&p50, &p99, &max, &n);
        evbuffer_add_printf(b, "],\"latency_us\":{\"p50\":%llu,\"p99\":%llu,\"max\":%llu,"
                               "\"samples\":%llu},\"fanout_load_pct\":%.1f}\n",
                            (unsigned long long)p50, (unsigned long long)p99,
                            (unsigned long long)max, (unsigned long long)n,
                            load_pct(&srv->hub.load));
    } else if (blur_route(req, srv, path, b, &code)) {
        /* blur: POST /api/streams/NAME/blur */
    } else {
        const char *name = path + strlen("/api/streams/");
        const char *slash = strchr(name, '/');
        tc_stream_t *s;

        /* NAME is a stream of app "live", or APP/NAME */
        if (slash != NULL) {
            char app[64];

            snprintf(app, sizeof(app), "%.*s", (int)(slash - name), name);
            s = tc_hub_find(&srv->hub, app, slash + 1);
        } else {
            s = tc_hub_find(&srv->hub, "live", name);
        }
        if (s == NULL) {
            code = 404;
            evbuffer_add_printf(b, "{\"error\":\"no such stream\"}\n");
        } else {
            stream_json(b, s);
            evbuffer_add(b, "\n", 1);
        }
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_add_header(evhttp_request_get_output_headers(req), "Access-Control-Allow-Origin", "*");
    evhttp_send_reply(req, code, code == 200 ? "OK" : code == 404 ? "Not Found" : "Error", b);
    evbuffer_free(b);
}

/* ---- publish authentication -------------------------------------------- */

int tc_auth_check(const char *secret, const char *key, uint64_t now_s, char *name, size_t namelen,
                  char *options, size_t optlen, const char **why)
{
    const char *q = strchr(key, '?');
    size_t nl = q ? (size_t)(q - key) : strlen(key);
    char exp[32] = "", sig[80] = "";
    size_t ol = 0;

    options[0] = '\0';
    if (nl >= namelen) {
        *why = "stream name too long";
        return -EACCES;
    }
    memcpy(name, key, nl);
    name[nl] = '\0';
    /* query parameters: exp and sig are ours, the rest are stream options */
    for (const char *p = q ? q + 1 : NULL; p != NULL && *p;) {
        const char *amp = strchr(p, '&');
        size_t l = amp ? (size_t)(amp - p) : strlen(p);

        if (l > 4 && strncmp(p, "exp=", 4) == 0 && l - 4 < sizeof(exp))
            snprintf(exp, sizeof(exp), "%.*s", (int)(l - 4), p + 4);
        else if (l > 4 && strncmp(p, "sig=", 4) == 0 && l - 4 < sizeof(sig))
            snprintf(sig, sizeof(sig), "%.*s", (int)(l - 4), p + 4);
        else if (l > 0 && ol + l + 2 < optlen) {
            ol += (size_t)snprintf(options + ol, optlen - ol, "%s%.*s", ol ? "&" : "", (int)l, p);
        }
        p = amp ? amp + 1 : NULL;
    }
    if (secret == NULL || secret[0] == '\0')
        return 0;
    if (exp[0] == '\0' || sig[0] == '\0') {
        *why = "missing exp or sig";
        return -EACCES;
    }
    {
        char *endp;
        unsigned long long e = strtoull(exp, &endp, 10);
        uint8_t mac[32];
        unsigned mlen = sizeof(mac);
        char msg[200], hex[65];

        if (*endp != '\0') {
            *why = "bad exp";
            return -EACCES;
        }
        if (e < now_s) {
            *why = "stream key expired";
            return -EACCES;
        }
        snprintf(msg, sizeof(msg), "%s:%s", name, exp);
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const uint8_t *)msg, strlen(msg), mac, &mlen);
        for (int i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", mac[i]);
        for (char *c = sig; *c; c++)
            if (*c >= 'A' && *c <= 'F')
                *c = (char)(*c - 'A' + 'a');
        if (strlen(sig) != 64 || CRYPTO_memcmp(hex, sig, 64) != 0) {
            *why = "bad signature";
            return -EACCES;
        }
    }
    return 0;
}
