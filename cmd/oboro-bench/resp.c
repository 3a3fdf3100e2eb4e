/* oboro-bench resp: RESP load generator.
 *
 * Each worker thread runs its own libevent loop with its share of the
 * connections. In fixed-rate mode a worker sends request k at
 * start + k * period (bench_sched_t) on whichever connection has room in
 * its pipeline; the latency of a request runs from that intended time to
 * its reply, so a stall anywhere is charged to every request it delayed.
 * In max mode every connection keeps --pipeline requests in flight and the
 * latency runs from the actual send. */
#include "cmd/oboro-bench/tools.h"

#include "core/arena.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#define MAX_CMDS 32
#define MAX_ARGS 32

typedef struct tmpl {
    char *text;                 /* owned copy the argv tokens point into */
    char *name;                 /* first word, lower case: the Count label */
    int argc;
    char *argv[MAX_ARGS];       /* raw tokens with placeholders */
    char *enc[MAX_ARGS];        /* "$len\r\ntoken\r\n" for tokens without placeholders */
    size_t enc_len[MAX_ARGS];
    unsigned weight;
} tmpl_t;

typedef struct opts {
    const char *host;
    int port;
    int clients, threads, pipeline;
    uint64_t duration_ns, timeout_ns;
    double rate;                /* per second; 0 = max */
    uint64_t keyspace, value_size;
    tmpl_t cmds[MAX_CMDS];
    int ncmds;
    unsigned weight_total;
    int json;
    const char *json_out;
    pid_t pid;
    const char *rss_out;
    char *value;                /* value_size bytes */
    struct sockaddr_storage addr;
    socklen_t addrlen;
} opts_t;

typedef struct worker worker_t;

typedef struct conn {
    struct bufferevent *bev;
    worker_t *w;
    uint64_t *sent_at;          /* ring of intended send times */
    uint8_t *cmd_of;            /* ring of template indexes */
    unsigned head, count;
    int alive, connected;
} conn_t;

struct worker {
    int id;
    pthread_t thread;
    const opts_t *o;
    struct event_base *base;
    struct event *tick, *deadline;
    conn_t *conns;
    int nconns, connected, alive;
    unsigned cursor;
    bench_sched_t sched;
    uint64_t total;             /* fixed-rate: requests this worker sends */
    uint64_t sent, inflight;
    uint64_t start_ns, end_ns, last_reply_ns;
    uint64_t ok[MAX_CMDS], err[MAX_CMDS];
    uint64_t lost;
    bench_hist_t *hist;
    uint64_t rng;
    char *scratch;
    size_t scratch_size;
    int started, done, reported;
    int rv;
};

static _Atomic int workers_done;
static _Atomic int interrupted;

static uint64_t rng_next(uint64_t *s)
{
    /* xorshift64*: fast, good enough to pick keys and commands */
    uint64_t x = *s;

    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* ---- templates --------------------------------------------------------- */

static int tmpl_add(opts_t *o, const char *text, unsigned weight)
{
    tmpl_t *t;
    char *copy, *save = NULL, *tok;
    int i;

    if (o->ncmds == MAX_CMDS) {
        fprintf(stderr, "oboro-bench: at most %d commands\n", MAX_CMDS);
        return -EINVAL;
    }
    t = &o->cmds[o->ncmds];
    memset(t, 0, sizeof(*t));
    copy = core_strdup(CORE_TAG_BENCH, text);
    if (copy == NULL)
        return -ENOMEM;
    t->text = copy;
    for (tok = strtok_r(copy, " \t", &save); tok != NULL; tok = strtok_r(NULL, " \t", &save)) {
        if (t->argc == MAX_ARGS) {
            fprintf(stderr, "oboro-bench: command '%s' has more than %d words\n", text, MAX_ARGS);
            core_free(copy);
            return -EINVAL;
        }
        t->argv[t->argc++] = tok;
    }
    if (t->argc == 0) {
        fprintf(stderr, "oboro-bench: empty command\n");
        core_free(copy);
        return -EINVAL;
    }
    t->name = core_strdup(CORE_TAG_BENCH, t->argv[0]);
    for (i = 0; t->name != NULL && t->name[i]; i++)
        t->name[i] = (char)(t->name[i] >= 'A' && t->name[i] <= 'Z' ? t->name[i] + 32 : t->name[i]);
    for (i = 0; i < t->argc; i++) {
        size_t n = strlen(t->argv[i]);

        if (strstr(t->argv[i], "__") != NULL)
            continue;
        t->enc[i] = core_malloc(CORE_TAG_BENCH, n + 32);
        if (t->enc[i] == NULL)
            break;
        t->enc_len[i] = (size_t)snprintf(t->enc[i], n + 32, "$%zu\r\n%s\r\n", n, t->argv[i]);
    }
    t->weight = weight;
    o->weight_total += weight;
    o->ncmds++;
    return t->name == NULL ? -ENOMEM : 0;
}

static void tmpl_close(tmpl_t *t)
{
    int i;

    for (i = 0; i < t->argc; i++)
        core_free(t->enc[i]);
    core_free(t->name);
    core_free(t->text);
}

static const struct { const char *name; const char *text; } builtin[] = {
    {"set", "SET key:__key__ __value__"},
    {"get", "GET key:__key__"},
    {"incr", "INCR counter:__key__"},
    {"zincrby", "ZINCRBY rank:bench 1 member:__key__"},
    {"ping", "PING"},
};

/* Parse "set=3,get=1" into templates. */
static int mix_parse(opts_t *o, const char *mix)
{
    char buf[256], *save = NULL, *item;

    if (strlen(mix) >= sizeof(buf))
        return -EINVAL;
    strcpy(buf, mix);
    for (item = strtok_r(buf, ",", &save); item != NULL; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        unsigned long w = 1;
        size_t i;
        int rv;

        if (eq != NULL) {
            char *e;

            *eq = '\0';
            w = strtoul(eq + 1, &e, 10);
            if (*e != '\0' || w == 0 || w > 1000000)
                return -EINVAL;
        }
        for (i = 0; i < sizeof(builtin) / sizeof(builtin[0]); i++)
            if (strcasecmp(item, builtin[i].name) == 0)
                break;
        if (i == sizeof(builtin) / sizeof(builtin[0])) {
            fprintf(stderr, "oboro-bench: unknown command '%s' in --mix (set, get, incr, zincrby, ping)\n", item);
            return -EINVAL;
        }
        rv = tmpl_add(o, builtin[i].text, (unsigned)w);
        if (rv != 0)
            return rv;
    }
    return 0;
}

/* Expand placeholders of one token into w->scratch. Returns its length. */
static size_t expand(worker_t *w, const char *tok, uint64_t key)
{
    const opts_t *o = w->o;
    size_t n = 0;

    while (*tok) {
        if (strncmp(tok, "__key__", 7) == 0) {
            n += (size_t)snprintf(w->scratch + n, 24, "%llu", (unsigned long long)key);
            tok += 7;
        } else if (strncmp(tok, "__rand__", 8) == 0) {
            n += (size_t)snprintf(w->scratch + n, 24, "%llu",
                                  (unsigned long long)(rng_next(&w->rng) >> 32));
            tok += 8;
        } else if (strncmp(tok, "__value__", 9) == 0 && n + o->value_size + 64 < w->scratch_size) {
            memcpy(w->scratch + n, o->value, o->value_size);
            n += o->value_size;
            tok += 9;
        } else if (n + 64 < w->scratch_size) {
            w->scratch[n++] = *tok++;
        } else {
            tok++;
        }
    }
    return n;
}

/* ---- connections -------------------------------------------------------- */

static void conn_lost(conn_t *c, const char *why)
{
    worker_t *w = c->w;

    if (!c->alive)
        return;
    if (!w->reported) {
        fprintf(stderr, "oboro-bench: connection to %s:%d %s\n", w->o->host, w->o->port, why);
        w->reported = 1;
    }
    w->lost += c->count;
    w->inflight -= c->count;
    c->count = 0;
    c->alive = 0;
    w->alive--;
    bufferevent_free(c->bev);
    c->bev = NULL;
}

static void send_one(worker_t *w, conn_t *c, uint64_t intended)
{
    const opts_t *o = w->o;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    uint64_t pick = o->ncmds > 1 ? rng_next(&w->rng) % o->weight_total : 0;
    uint64_t key = rng_next(&w->rng) % o->keyspace;
    unsigned slot;
    int ti, i;

    for (ti = 0; ti < o->ncmds - 1 && pick >= o->cmds[ti].weight; ti++)
        pick -= o->cmds[ti].weight;
    evbuffer_add_printf(out, "*%d\r\n", o->cmds[ti].argc);
    for (i = 0; i < o->cmds[ti].argc; i++) {
        if (o->cmds[ti].enc[i] != NULL) {
            evbuffer_add(out, o->cmds[ti].enc[i], o->cmds[ti].enc_len[i]);
        } else {
            size_t n = expand(w, o->cmds[ti].argv[i], key);

            evbuffer_add_printf(out, "$%zu\r\n", n);
            evbuffer_add(out, w->scratch, n);
            evbuffer_add(out, "\r\n", 2);
        }
    }
    slot = (c->head + c->count) % (unsigned)o->pipeline;
    c->sent_at[slot] = intended;
    c->cmd_of[slot] = (uint8_t)ti;
    c->count++;
    w->inflight++;
}

/* A connection with room in its pipeline, round robin; NULL if none. */
static conn_t *free_conn(worker_t *w)
{
    int i;

    for (i = 0; i < w->nconns; i++) {
        conn_t *c = &w->conns[w->cursor];

        w->cursor = (w->cursor + 1) % (unsigned)w->nconns;
        if (c->alive && c->connected && c->count < (unsigned)w->o->pipeline)
            return c;
    }
    return NULL;
}

static void finish(worker_t *w)
{
    if (w->done)
        return;
    w->done = 1;
    event_base_loopbreak(w->base);
}

/* Send whatever is due and arm the timer for the next intended time. */
static void pump(worker_t *w)
{
    uint64_t now = bench_now_ns();
    conn_t *c;

    if (!w->started || w->done)
        return;
    if (w->alive == 0 || atomic_load(&interrupted)) {
        if (w->o->rate > 0 && w->total > w->sent)
            w->lost += w->total - w->sent;
        w->sent = w->total;
        if (w->inflight == 0 || w->alive == 0)
            finish(w);
        return;
    }
    if (w->o->rate > 0) {
        uint64_t due = bench_sched_due(&w->sched, now);

        while (w->sent < due && (c = free_conn(w)) != NULL) {
            send_one(w, c, bench_sched_at(&w->sched, w->sent));
            w->sent++;
        }
        if (w->sent == w->total) {
            if (w->inflight == 0)
                finish(w);
        } else if (w->sent == due) {
            uint64_t at = bench_sched_at(&w->sched, w->sent);
            uint64_t wait = at > now ? at - now : 0;
            struct timeval tv = {(time_t)(wait / 1000000000u), (suseconds_t)(wait % 1000000000u / 1000u)};

            evtimer_add(w->tick, &tv);
        }
        /* else: every pipeline is full; the next reply calls pump() */
        return;
    }
    if (now >= w->end_ns) {
        if (w->inflight == 0)
            finish(w);
        return;
    }
    while ((c = free_conn(w)) != NULL) {
        send_one(w, c, now);
        w->sent++;
    }
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    worker_t *w = arg;
    int i;

    if (w->inflight > 0 || w->sent < w->total)
        fprintf(stderr, "oboro-bench: %llu requests without a reply after the drain timeout\n",
                (unsigned long long)(w->inflight + (w->total - w->sent)));
    for (i = 0; i < w->nconns; i++)
        conn_lost(&w->conns[i], "timed out");
    if (w->o->rate > 0 && w->total > w->sent)
        w->lost += w->total - w->sent;
    w->sent = w->total;
    finish(w);
}

static void start(worker_t *w)
{
    const opts_t *o = w->o;
    uint64_t now = bench_now_ns();
    struct timeval tv;
    uint64_t dl;

    w->started = 1;
    w->start_ns = now;
    w->end_ns = now + o->duration_ns;
    if (o->rate > 0)
        bench_sched_init(&w->sched, now, o->duration_ns, w->total);
    dl = o->duration_ns + o->timeout_ns;
    tv.tv_sec = (time_t)(dl / 1000000000u);
    tv.tv_usec = (suseconds_t)(dl % 1000000000u / 1000u);
    evtimer_add(w->deadline, &tv);
    if (o->rate == 0) {
        /* max mode stops sending at end_ns, checked on every reply */
        uint64_t d = o->duration_ns;
        struct timeval tv2 = {(time_t)(d / 1000000000u), (suseconds_t)(d % 1000000000u / 1000u)};

        evtimer_add(w->tick, &tv2);
    }
    pump(w);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    conn_t *c = arg;
    worker_t *w = c->w;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in), pos = 0;
    const char *buf = (const char *)evbuffer_pullup(in, -1);
    uint64_t now = bench_now_ns();

    while (pos < len) {
        int is_err;
        ssize_t n = bench_reply_skip(buf + pos, len - pos, &is_err);
        unsigned ti;

        if (n == -EAGAIN)
            break;
        if (n < 0 || c->count == 0) {
            evbuffer_drain(in, pos);
            conn_lost(c, n < 0 ? "sent a malformed reply" : "sent a reply nobody asked for");
            pump(w);
            return;
        }
        pos += (size_t)n;
        ti = c->cmd_of[c->head];
        bench_hist_record(w->hist, now > c->sent_at[c->head] ? now - c->sent_at[c->head] : 0);
        if (is_err)
            w->err[ti]++;
        else
            w->ok[ti]++;
        c->head = (c->head + 1) % (unsigned)w->o->pipeline;
        c->count--;
        w->inflight--;
        w->last_reply_ns = now;
    }
    evbuffer_drain(in, pos);
    pump(w);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    conn_t *c = arg;
    worker_t *w = c->w;

    if (what & BEV_EVENT_CONNECTED) {
        int one = 1;

        setsockopt(bufferevent_getfd(bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->connected = 1;
        if (++w->connected == w->alive && !w->started)
            start(w);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        char why[128];

        snprintf(why, sizeof(why), "%s", (what & BEV_EVENT_EOF) ? "closed by the server"
                 : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        conn_lost(c, why);
        if (!w->started && w->connected == w->alive && w->alive > 0)
            start(w);
        else if (!w->started && w->alive == 0)
            finish(w);
        else
            pump(w);
    }
}

static void *worker_main(void *arg)
{
    worker_t *w = arg;

    event_base_dispatch(w->base);
    atomic_fetch_add(&workers_done, 1);
    return NULL;
}

static int worker_init(worker_t *w, const opts_t *o, int id, int nconns, uint64_t total)
{
    struct event_config *cfg;
    int i;

    memset(w, 0, sizeof(*w));
    w->id = id;
    w->o = o;
    w->total = total;
    w->rng = 0x9E3779B97F4A7C15ULL ^ ((uint64_t)(id + 1) * 0xBF58476D1CE4E5B9ULL) ^ bench_wall_ns();
    w->hist = bench_hist_new();
    w->scratch_size = o->value_size + 4096;
    w->scratch = core_malloc(CORE_TAG_BENCH, w->scratch_size);
    w->conns = core_calloc(CORE_TAG_BENCH, (size_t)nconns, sizeof(conn_t));
    cfg = event_config_new();
    if (w->hist == NULL || w->scratch == NULL || w->conns == NULL || cfg == NULL)
        goto err;
    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER);
    event_config_set_flag(cfg, EVENT_BASE_FLAG_NOLOCK);
    w->base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    if (w->base == NULL)
        goto err;
    w->tick = evtimer_new(w->base, tick_cb, w);
    w->deadline = evtimer_new(w->base, deadline_cb, w);
    if (w->tick == NULL || w->deadline == NULL)
        goto err;
    w->nconns = nconns;
    for (i = 0; i < nconns; i++) {
        conn_t *c = &w->conns[i];

        c->w = w;
        c->sent_at = core_calloc(CORE_TAG_BENCH, (size_t)o->pipeline, sizeof(uint64_t));
        c->cmd_of = core_calloc(CORE_TAG_BENCH, (size_t)o->pipeline, 1);
        c->bev = bufferevent_socket_new(w->base, -1, BEV_OPT_CLOSE_ON_FREE);
        if (c->sent_at == NULL || c->cmd_of == NULL || c->bev == NULL)
            goto err;
        c->alive = 1;
        w->alive++;
        bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
        bufferevent_enable(c->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(c->bev, (const struct sockaddr *)&o->addr, (int)o->addrlen) != 0) {
            fprintf(stderr, "oboro-bench: cannot connect to %s:%d\n", o->host, o->port);
            goto err;
        }
    }
    return 0;

err:
    return -ENOMEM;
}

static void worker_close(worker_t *w)
{
    int i;

    for (i = 0; w->conns != NULL && i < w->nconns; i++) {
        if (w->conns[i].bev != NULL)
            bufferevent_free(w->conns[i].bev);
        core_free(w->conns[i].sent_at);
        core_free(w->conns[i].cmd_of);
    }
    if (w->tick)
        event_free(w->tick);
    if (w->deadline)
        event_free(w->deadline);
    if (w->base)
        event_base_free(w->base);
    core_free(w->conns);
    core_free(w->scratch);
    bench_hist_free(&w->hist);
}

static void on_signal(int sig)
{
    atomic_store(&interrupted, 1);
}

/* ---- report ------------------------------------------------------------ */

typedef struct totals {
    uint64_t count[MAX_CMDS];   /* per distinct name, indexed like names */
    const char *names[MAX_CMDS];
    int nnames;
    uint64_t ok, err, lost;
    double elapsed_s;
} totals_t;

static void render(struct evbuffer *out, int json, const opts_t *o, const totals_t *t,
                   const bench_hist_t *h, const bench_sampler_t *smp)
{
    uint64_t failed = t->err + t->lost, all = t->ok + failed;
    double per_s = t->elapsed_s > 0 ? (double)(t->ok + t->err) / t->elapsed_s : 0;
    double success = all ? 100.0 * (double)t->ok / (double)all : 0;
    int i;

    if (json) {
        evbuffer_add_printf(out, "{\"tool\":\"oboro-bench resp\",\"host\":\"%s\",\"port\":%d,"
                            "\"mode\":\"%s\",\"requested_per_s\":%.3f,\"clients\":%d,\"threads\":%d,"
                            "\"pipeline\":%d,\"duration_s\":%.3f,\"counts\":{",
                            o->host, o->port, o->rate > 0 ? "rate" : "max", o->rate, o->clients,
                            o->threads, o->pipeline, (double)o->duration_ns / 1e9);
        for (i = 0; i < t->nnames; i++)
            evbuffer_add_printf(out, "%s\"%s\":%llu", i ? "," : "", t->names[i],
                                (unsigned long long)t->count[i]);
        evbuffer_add_printf(out, "},\"ok\":%llu,\"errors\":%llu,\"lost\":%llu,\"failed\":%llu,"
                            "\"success_pct\":%.4f,\"elapsed_s\":%.6f,\"ops_per_s\":%.3f,"
                            "\"ops_per_min\":%.1f,\"latency\":",
                            (unsigned long long)t->ok, (unsigned long long)t->err,
                            (unsigned long long)t->lost, (unsigned long long)failed, success,
                            t->elapsed_s, per_s, per_s * 60);
        bench_report_json(out, h);
        if (smp != NULL)
            evbuffer_add_printf(out, ",\"memory\":{\"pid\":%d,\"csv\":\"%s\",\"samples\":%d,"
                                "\"first_private_kb\":%lld,\"last_private_kb\":%lld,"
                                "\"peak_private_kb\":%lld,\"last_lazyfree_kb\":%lld}",
                                (int)o->pid, o->rss_out, smp->samples,
                                (long long)bench_mem_private_kb(&smp->first),
                                (long long)bench_mem_private_kb(&smp->last),
                                (long long)smp->peak_private_kb, (long long)smp->last.lazyfree_kb);
        evbuffer_add(out, "}\n", 2);
    } else {
        char label[64];

        evbuffer_add(out, "Count:", 6);
        for (i = 0; i < t->nnames; i++)
            evbuffer_add_printf(out, " %s=%llu", t->names[i], (unsigned long long)t->count[i]);
        evbuffer_add_printf(out, " failed=%llu success%%=%.2f\n", (unsigned long long)failed, success);
        evbuffer_add_printf(out, "Elapsed: %.3fs\n", t->elapsed_s);
        if (t->nnames == 1)
            snprintf(label, sizeof(label), "%c%s", t->names[0][0] >= 'a' && t->names[0][0] <= 'z'
                     ? t->names[0][0] - 32 : t->names[0][0], t->names[0] + 1);
        else
            snprintf(label, sizeof(label), "Ops");
        evbuffer_add_printf(out, "%s per min: %.0f\n", label, per_s * 60);
        if (o->rate > 0)
            evbuffer_add_printf(out, "Requested per min: %.0f (latency from the intended send time)\n",
                                o->rate * 60);
        evbuffer_add(out, "\n", 1);
        bench_report_table(out, h);
        evbuffer_add(out, "\n", 1);
        bench_report_decades(out, h);
    }
}

static int write_all(struct evbuffer *out, int fd)
{
    while (evbuffer_get_length(out) > 0)
        if (evbuffer_write(out, fd) <= 0)
            return -EIO;
    return 0;
}

/* Print the report (text or JSON) on stdout, and JSON into --json-out. */
static int report(const opts_t *o, const totals_t *t, const bench_hist_t *h,
                  const bench_sampler_t *smp)
{
    struct evbuffer *out = evbuffer_new();
    int rv = 0;

    if (out == NULL)
        return -ENOMEM;
    render(out, o->json, o, t, h, smp);
    fflush(stdout);
    rv = write_all(out, 1);
    if (smp != NULL && !o->json) {
        printf("\n");
        bench_sampler_print(smp, stdout);
        printf("Memory CSV: %s\n", o->rss_out);
    }
    if (o->json_out != NULL) {
        FILE *f = fopen(o->json_out, "w");

        evbuffer_drain(out, evbuffer_get_length(out));
        render(out, 1, o, t, h, smp);
        if (f == NULL || write_all(out, fileno(f)) != 0) {
            fprintf(stderr, "oboro-bench: cannot write %s\n", o->json_out);
            rv = -EIO;
        }
        if (f != NULL)
            fclose(f);
    }
    evbuffer_free(out);
    return rv;
}

static void resp_usage(FILE *f)
{
    fprintf(f,
        "usage: oboro-bench resp [options]\n"
        "  --host H           server address (127.0.0.1)\n"
        "  --port P           server port (6379)\n"
        "  --clients N        connections in all (50)\n"
        "  --threads N        worker threads, each with its own event loop (1)\n"
        "  --pipeline N       requests in flight per connection (1)\n"
        "  --duration D       run time: 30s, 10m, 1h (10s)\n"
        "  --rate R           fixed rate: 150000/min, 2500/s; 'max' (default) = as fast as possible\n"
        "  --keyspace N       keys are chosen uniformly from N (100000)\n"
        "  --value-size S     bytes of __value__ (64; 1k, 1m)\n"
        "  --mix LIST         built-in commands with weights: set=1,get=3,incr=1,zincrby=1,ping=1\n"
        "  --command TEXT     custom command (repeatable; each has weight 1), words split on\n"
        "                     spaces; __key__, __rand__ and __value__ are replaced per request,\n"
        "                     e.g. --command 'VIEWERS.JOIN stream:__key__ viewer:__rand__'\n"
        "  --timeout D        after the run, how long to wait for replies (5s)\n"
        "  --pid PID          sample PID's memory once a second into --rss-out\n"
        "  --rss-out FILE     memory CSV (rss-PID.csv)\n"
        "  --json             one JSON object instead of the table\n"
        "  --json-out FILE    also write the JSON object into FILE\n"
        "Without --mix or --command the load is SET (the 150,000 SET/min experiment).\n");
}

int bench_cmd_resp(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"host", required_argument, NULL, 'H'}, {"port", required_argument, NULL, 'p'},
        {"clients", required_argument, NULL, 'c'}, {"threads", required_argument, NULL, 't'},
        {"pipeline", required_argument, NULL, 'P'}, {"duration", required_argument, NULL, 'd'},
        {"rate", required_argument, NULL, 'r'}, {"keyspace", required_argument, NULL, 'k'},
        {"value-size", required_argument, NULL, 'v'}, {"mix", required_argument, NULL, 'm'},
        {"command", required_argument, NULL, 'C'}, {"timeout", required_argument, NULL, 'T'},
        {"pid", required_argument, NULL, 'i'}, {"rss-out", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'}, {"json-out", required_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    opts_t *o = core_calloc(CORE_TAG_BENCH, 1, sizeof(*o));
    worker_t *ws = NULL;
    bench_sampler_t smp;
    int use_smp = 0, rc = 2, opt, i, nthreads_started = 0;
    char rss_default[64];
    bench_hist_t *all = NULL;
    totals_t t;
    uint64_t first_start = UINT64_MAX, last_end = 0;

    if (o == NULL)
        return 1;
    o->host = "127.0.0.1";
    o->port = 6379;
    o->clients = 50;
    o->threads = 1;
    o->pipeline = 1;
    o->duration_ns = 10000000000ULL;
    o->timeout_ns = 5000000000ULL;
    o->keyspace = 100000;
    o->value_size = 64;
    optind = 1;
    while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        char *e = NULL;
        long v = 0;
        uint64_t u;

        if (strchr("pctPi", opt) != NULL) {
            v = strtol(optarg, &e, 10);
            if (*optarg == '\0' || *e != '\0' || v < 1 || v > 1000000 ||
                (opt == 'p' && v > 65535) || (opt == 'P' && v > 65536) || (opt == 't' && v > 256)) {
                fprintf(stderr, "oboro-bench: bad value '%s' for --%s\n", optarg,
                        opt == 'p' ? "port" : opt == 'c' ? "clients" : opt == 't' ? "threads"
                        : opt == 'P' ? "pipeline" : "pid");
                goto out;
            }
        }
        switch (opt) {
        case 'H': o->host = optarg; break;
        case 'p': o->port = (int)v; break;
        case 'c': o->clients = (int)v; break;
        case 't': o->threads = (int)v; break;
        case 'P': o->pipeline = (int)v; break;
        case 'i': o->pid = (pid_t)v; break;
        case 'o': o->rss_out = optarg; break;
        case 'j': o->json = 1; break;
        case 'J': o->json_out = optarg; break;
        case 'd':
            if (bench_duration_parse(optarg, &o->duration_ns) != 0) {
                fprintf(stderr, "oboro-bench: bad duration '%s' (30s, 10m, 1h)\n", optarg);
                goto out;
            }
            break;
        case 'T':
            if (bench_duration_parse(optarg, &o->timeout_ns) != 0) {
                fprintf(stderr, "oboro-bench: bad timeout '%s'\n", optarg);
                goto out;
            }
            break;
        case 'r':
            if (bench_rate_parse(optarg, &o->rate) != 0) {
                fprintf(stderr, "oboro-bench: bad rate '%s' (150000/min, 2500/s, max)\n", optarg);
                goto out;
            }
            break;
        case 'k':
            if (bench_size_parse(optarg, 1ULL << 40, &u) != 0 || u == 0) {
                fprintf(stderr, "oboro-bench: bad keyspace '%s'\n", optarg);
                goto out;
            }
            o->keyspace = u;
            break;
        case 'v':
            if (bench_size_parse(optarg, 64ULL << 20, &o->value_size) != 0) {
                fprintf(stderr, "oboro-bench: bad value size '%s' (at most 64m)\n", optarg);
                goto out;
            }
            break;
        case 'm':
            if (mix_parse(o, optarg) != 0) {
                fprintf(stderr, "oboro-bench: bad --mix '%s'\n", optarg);
                goto out;
            }
            break;
        case 'C':
            if (tmpl_add(o, optarg, 1) != 0)
                goto out;
            break;
        case 'h':
            resp_usage(stdout);
            rc = 0;
            goto out;
        default:
            resp_usage(stderr);
            goto out;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "oboro-bench: unexpected argument '%s'\n", argv[optind]);
        goto out;
    }
    if (o->ncmds == 0 && tmpl_add(o, builtin[0].text, 1) != 0)
        goto out;
    if (o->threads > o->clients)
        o->threads = o->clients;
    if (o->rate > 0 && o->rate * ((double)o->duration_ns / 1e9) < 1) {
        fprintf(stderr, "oboro-bench: --rate times --duration is less than one request\n");
        goto out;
    }
    {
        struct addrinfo hints = {0}, *res = NULL;
        char port[16];

        hints.ai_socktype = SOCK_STREAM;
        snprintf(port, sizeof(port), "%d", o->port);
        if (getaddrinfo(o->host, port, &hints, &res) != 0 || res == NULL) {
            fprintf(stderr, "oboro-bench: cannot resolve '%s'\n", o->host);
            rc = 1;
            goto out;
        }
        memcpy(&o->addr, res->ai_addr, res->ai_addrlen);
        o->addrlen = res->ai_addrlen;
        freeaddrinfo(res);
    }
    rc = 1;
    o->value = core_malloc(CORE_TAG_BENCH, o->value_size + 1);
    ws = core_calloc(CORE_TAG_BENCH, (size_t)o->threads, sizeof(*ws));
    all = bench_hist_new();
    if (o->value == NULL || ws == NULL || all == NULL)
        goto out;
    for (uint64_t j = 0; j < o->value_size; j++)
        o->value[j] = (char)('a' + j % 26);
    o->value[o->value_size] = '\0';
    if (o->pid > 0) {
        int r;

        if (o->rss_out == NULL) {
            snprintf(rss_default, sizeof(rss_default), "rss-%d.csv", (int)o->pid);
            o->rss_out = rss_default;
        }
        r = bench_sampler_open(&smp, o->pid, o->rss_out);
        if (r != 0) {
            fprintf(stderr, "oboro-bench: cannot sample pid %d into %s: %s\n", (int)o->pid,
                    o->rss_out, strerror(-r));
            goto out;
        }
        use_smp = 1;
    }
    atomic_store(&workers_done, 0);
    atomic_store(&interrupted, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    {
        uint64_t total = o->rate > 0 ? (uint64_t)(o->rate * ((double)o->duration_ns / 1e9) + 0.5) : 0;

        for (i = 0; i < o->threads; i++) {
            int n = o->clients / o->threads + (i < o->clients % o->threads);
            uint64_t share = total / (uint64_t)o->threads + ((uint64_t)i < total % (uint64_t)o->threads);

            if (worker_init(&ws[i], o, i, n, share) != 0)
                goto join;
        }
    }
    for (i = 0; i < o->threads; i++) {
        if (pthread_create(&ws[i].thread, NULL, worker_main, &ws[i]) != 0)
            goto join;
        nthreads_started++;
    }
    rc = 0;
join:
    if (use_smp) {
        while (atomic_load(&workers_done) < nthreads_started) {
            struct timespec ts = {0, 50 * 1000 * 1000};

            bench_sampler_poll(&smp);
            nanosleep(&ts, NULL);
        }
        bench_sampler_close(&smp);
    }
    for (i = 0; i < nthreads_started; i++)
        pthread_join(ws[i].thread, NULL);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    if (rc == 0) {
        uint64_t started = 0;
        int j;

        memset(&t, 0, sizeof(t));
        for (i = 0; i < o->ncmds; i++) {
            for (j = 0; j < t.nnames; j++)
                if (strcmp(t.names[j], o->cmds[i].name) == 0)
                    break;
            if (j == t.nnames)
                t.names[t.nnames++] = o->cmds[i].name;
        }
        for (i = 0; i < o->threads; i++) {
            worker_t *w = &ws[i];

            for (j = 0; j < o->ncmds; j++) {
                int k;

                for (k = 0; strcmp(t.names[k], o->cmds[j].name) != 0; k++)
                    ;
                t.count[k] += w->ok[j] + w->err[j];
                t.ok += w->ok[j];
                t.err += w->err[j];
            }
            t.lost += w->lost;
            if (w->started) {
                started++;
                if (w->start_ns < first_start)
                    first_start = w->start_ns;
                if (w->last_reply_ns > last_end)
                    last_end = w->last_reply_ns;
            }
            bench_hist_merge(all, w->hist);
        }
        if (started == 0) {
            fprintf(stderr, "oboro-bench: could not connect to %s:%d\n", o->host, o->port);
            rc = 1;
        } else {
            /* the run spans its whole schedule even though request k
             * is sent at k * period: a run of 100 at 100/s takes 1 s */
            t.elapsed_s = (double)o->duration_ns / 1e9;
            if (last_end > first_start + o->duration_ns)
                t.elapsed_s = (double)(last_end - first_start) / 1e9;
            if (report(o, &t, all, use_smp ? &smp : NULL) != 0)
                rc = 1;
        }
    }
out:
    for (i = 0; ws != NULL && i < o->threads; i++)
        worker_close(&ws[i]);
    core_free(ws);
    bench_hist_free(&all);
    for (i = 0; i < o->ncmds; i++)
        tmpl_close(&o->cmds[i]);
    core_free(o->value);
    core_free(o);
    return rc;
}
