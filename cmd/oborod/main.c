/* oborod: flags, configuration, wiring of the subsystems, signals. */
#include "cache/cache.h"
#include "core/arena.h"
#include "core/conf.h"
#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/memreport.h"
#include "core/metrics.h"
#include "oboro_version.h"
#include "transcoder/pull.h"
#include "transcoder/tc.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct oborod_conf {
    char *bind;
    long long port;
    long long rtmp_port;
    long long http_port;
    long long raft_port;
    char *dir;
    int loglevel;
    char *logfile;
    char *config;
    long long purge_delay_ms;
} oborod_conf_t;

typedef struct oborod {
    oborod_conf_t conf;
    cache_conf_t cache_conf;
    tc_conf_t tc_conf;
    tc_pull_conf_t pull_conf;
    core_conf_t *all;
    core_loop_t *loop;
    core_http_t *http;
    cache_server_t *cache;
    tc_server_t *tc;
    tc_pull_t *pull;
    uint64_t started_ms;
} oborod_t;

static const char *const loglevels[] = {"debug", "info", "notice", "warning", "error", NULL};

static int loglevel_changed(const core_conf_def_t *d, void *arg)
{
    core_log_set_level((core_log_level_t) * (int *)d->ptr);
    return 0;
}

static int purge_changed(const core_conf_def_t *d, void *arg)
{
    core_mem_set_purge_delay((uint64_t) * (long long *)d->ptr);
    return 0;
}

static core_conf_def_t main_defs[] = {
    {"config", CORE_CONF_STR, "", "configuration file of 'directive value' lines (also the first non-flag argument)", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"bind", CORE_CONF_STR, "127.0.0.1", "address every listener binds to", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"port", CORE_CONF_INT, "6379", "RESP cache port", NULL, 0, 65535, NULL, 0, NULL, NULL},
    {"rtmp-port", CORE_CONF_INT, "1935", "RTMP ingest and play port", NULL, 0, 65535, NULL, 0, NULL, NULL},
    {"http-port", CORE_CONF_INT, "8080", "HTTP playback, API, /metrics and /healthz port", NULL, 0, 65535, NULL, 0, NULL, NULL},
    {"raft-port", CORE_CONF_INT, "7379", "Raft peer traffic port", NULL, 0, 65535, NULL, 0, NULL, NULL},
    {"dir", CORE_CONF_STR, "./oboro-data", "data directory (Raft log, snapshots); created if missing", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"loglevel", CORE_CONF_ENUM, "info", "debug, info, notice, warning or error", NULL, 0, 0, loglevels, CORE_CONF_RUNTIME, loglevel_changed, NULL},
    {"logfile", CORE_CONF_STR, "", "log file (empty = stderr); reopened on SIGHUP", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"mem-purge-delay-ms", CORE_CONF_INT, "500", "free memory is returned to the kernel after this delay", NULL, 0, 1000, NULL, CORE_CONF_RUNTIME, purge_changed, NULL},
};
#define N_MAIN_DEFS (sizeof(main_defs) / sizeof(main_defs[0]))

static void usage(core_conf_t *c, FILE *out)
{
    fprintf(out,
            "oborod %s: live-stream relay and transcoder with an embedded Raft-replicated RESP cache\n\n"
            "Usage: oborod [CONFIG-FILE] [--directive value ...]\n"
            "       oborod --help | --version\n\n"
            "Every directive may appear in the configuration file as 'directive value'\n"
            "or on the command line as '--directive value'; flags override the file.\n\n"
            "Directives (default, meaning):\n",
            OBORO_VERSION);
    core_conf_print_help(c, out);
}

static void healthz_cb(struct evhttp_request *req, const char *path, void *arg)
{
    oborod_t *d = arg;
    char body[256];
    int n = snprintf(body, sizeof(body),
                     "{\"status\":\"ok\",\"version\":\"%s\",\"uptime_seconds\":%llu}\n",
                     OBORO_VERSION, (unsigned long long)((core_mono_ms() - d->started_ms) / 1000));

    core_http_reply(req, 200, "application/json", body, (size_t)n);
}

static void metrics_cb(struct evhttp_request *req, const char *path, void *arg)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    core_metrics_render(core_metrics_global(), b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void memory_cb(struct evhttp_request *req, const char *path, void *arg)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    core_memreport_json(b);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", b);
    evbuffer_free(b);
}

static void uptime_collect(struct evbuffer *out, void *arg)
{
    oborod_t *d = arg;

    evbuffer_add_printf(out,
                        "# HELP oboro_uptime_seconds Seconds since oborod started.\n"
                        "# TYPE oboro_uptime_seconds gauge\n"
                        "oboro_uptime_seconds %llu\n"
                        "# HELP oboro_build_info Build information.\n"
                        "# TYPE oboro_build_info gauge\n"
                        "oboro_build_info{version=\"%s\"} 1\n",
                        (unsigned long long)((core_mono_ms() - d->started_ms) / 1000),
                        OBORO_VERSION);
}

static void purge_tick(void *arg)
{
    oborod_t *d = arg;

    core_mem_purge((uint64_t)d->conf.purge_delay_ms);
}

static void on_shutdown(void *arg)
{
    oborod_t *d = arg;

    /* stop accepting and close sessions first; the loop then drains */
    tc_pull_free(&d->pull);
    tc_server_free(&d->tc);
    cache_server_free(&d->cache);
}

/* Listen or exit(1) with one line that names the port. */
static int listen_or_die(const oborod_t *d, const char *what, long long port)
{
    int fd = core_listen_tcp(d->conf.bind, (int)port, 511, NULL);

    if (fd < 0) {
        if (fd == -EADDRINUSE)
            fprintf(stderr, "oborod: %s %lld on %s is already in use\n", what, port, d->conf.bind);
        else
            fprintf(stderr, "oborod: cannot listen on %s:%lld (%s): %s\n", d->conf.bind, port,
                    what, strerror(-fd));
        exit(1);
    }
    return fd;
}

/* The config file: --config FILE, --config=FILE or the first non-flag. */
static const char *find_config(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            return argv[i + 1];
        if (strncmp(argv[i], "--config=", 9) == 0)
            return argv[i] + 9;
        if (strncmp(argv[i], "--", 2) == 0) {
            if (strchr(argv[i], '=') == NULL && strcmp(argv[i], "--help") != 0 &&
                strcmp(argv[i], "--version") != 0)
                i++;
            continue;
        }
        return argv[i];
    }
    return NULL;
}

static int load_config(oborod_t *d, int argc, char **argv)
{
    static const char *const skip[] = {"help", "version", NULL};
    const char *file = find_config(argc, argv);
    char err[512];
    int rv;

    if (file != NULL && file[0] != '\0') {
        rv = core_conf_load_file(d->all, file, err, sizeof(err));
        if (rv != 0) {
            fprintf(stderr, "oborod: %s\n", err);
            return rv;
        }
    }
    rv = core_conf_load_args(d->all, argc, argv, skip, err, sizeof(err));
    if (rv == 0)
        rv = tc_conf_check(&d->tc_conf, err, sizeof(err));
    if (rv != 0) {
        fprintf(stderr, "oborod: %s (see oborod --help)\n", err);
        return rv;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static oborod_t d;
    int rv, resp_fd, rtmp_fd, http_fd;

    main_defs[0].ptr = &d.conf.config;
    main_defs[1].ptr = &d.conf.bind;
    main_defs[2].ptr = &d.conf.port;
    main_defs[3].ptr = &d.conf.rtmp_port;
    main_defs[4].ptr = &d.conf.http_port;
    main_defs[5].ptr = &d.conf.raft_port;
    main_defs[6].ptr = &d.conf.dir;
    main_defs[7].ptr = &d.conf.loglevel;
    main_defs[8].ptr = &d.conf.logfile;
    main_defs[9].ptr = &d.conf.purge_delay_ms;
    d.all = core_conf_new();
    if (d.all == NULL || core_conf_add(d.all, main_defs, N_MAIN_DEFS) != 0 ||
        cache_conf_register(d.all, &d.cache_conf) != 0 ||
        tc_conf_register(d.all, &d.tc_conf) != 0 ||
        tc_pull_conf_register(d.all, &d.pull_conf) != 0) {
        fprintf(stderr, "oborod: internal error registering directives\n");
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(d.all, stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-v") == 0) {
            printf("oborod %s\n", OBORO_VERSION);
            return 0;
        }
    }
    if (load_config(&d, argc, argv) != 0)
        return 2;

    core_log_set_level((core_log_level_t)d.conf.loglevel);
    if (d.conf.logfile[0] != '\0' && (rv = core_log_open(d.conf.logfile)) != 0) {
        fprintf(stderr, "oborod: cannot open logfile %s: %s\n", d.conf.logfile, strerror(-rv));
        return 2;
    }
    core_mem_set_purge_delay((uint64_t)d.conf.purge_delay_ms);
    if (mkdir(d.conf.dir, 0750) != 0 && errno != EEXIST) {
        fprintf(stderr, "oborod: cannot create dir %s: %s\n", d.conf.dir, strerror(errno));
        return 1;
    }

    resp_fd = listen_or_die(&d, "port", d.conf.port);
    rtmp_fd = listen_or_die(&d, "rtmp-port", d.conf.rtmp_port);
    http_fd = listen_or_die(&d, "http-port", d.conf.http_port);

    d.started_ms = core_mono_ms();
    d.loop = core_loop_new();
    if (d.loop == NULL) {
        fprintf(stderr, "oborod: cannot create event loop\n");
        return 1;
    }
    d.http = core_http_new(core_loop_base(d.loop), http_fd);
    if (d.http == NULL) {
        fprintf(stderr, "oborod: cannot start HTTP server\n");
        return 1;
    }
    core_http_route(d.http, "/healthz", healthz_cb, &d);
    core_http_route(d.http, "/metrics", metrics_cb, &d);
    core_http_route(d.http, "/debug/memory", memory_cb, &d);
    core_metrics_collector(core_metrics_global(), uptime_collect, &d);
    core_metrics_collector(core_metrics_global(), core_memreport_prometheus, NULL);

    rv = cache_server_new(&d.cache, d.loop, resp_fd, &d.cache_conf, d.all);
    if (rv != 0) {
        fprintf(stderr, "oborod: cannot start the cache: %s\n", strerror(-rv));
        return 1;
    }
    rv = tc_server_new(&d.tc, d.loop, rtmp_fd, d.http, &d.tc_conf);
    if (rv != 0) {
        fprintf(stderr, "oborod: cannot start RTMP: %s\n", strerror(-rv));
        return 1;
    }
    rv = tc_server_set_cache(d.tc, d.cache); /* viewers in the live state */
    if (rv != 0) {
        fprintf(stderr, "oborod: cannot report viewers to the cache: %s\n", strerror(-rv));
        return 1;
    }
    {
        char err[512];

        rv = tc_pull_new(&d.pull, d.tc, &d.pull_conf, err, sizeof(err));
        if (rv != 0) {
            fprintf(stderr, "oborod: %s\n", err);
            return rv == -EINVAL ? 2 : 1;
        }
    }
    core_loop_on_shutdown(d.loop, on_shutdown, &d);
    core_loop_every(d.loop, 100, purge_tick, &d);

    core_log_notice("oborod", "ready", "version=%s bind=%s port=%lld rtmp_port=%lld http_port=%lld dir=%s",
                    OBORO_VERSION, d.conf.bind, d.conf.port, d.conf.rtmp_port, d.conf.http_port,
                    d.conf.dir);
    rv = core_loop_run(d.loop);

    tc_pull_free(&d.pull);
    tc_server_free(&d.tc);
    cache_server_free(&d.cache);
    core_http_free(&d.http);
    core_loop_free(&d.loop);
    core_metrics_global_free();
    core_conf_free(&d.all);
    core_log_notice("oborod", "stopped", NULL);
    return rv == 0 ? 0 : 1;
}
