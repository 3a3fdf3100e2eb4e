/* cache/server: the RESP listener, clients, pipelining, the per-iteration
 * write batch (group commit) and its apply step, and the connection and
 * server commands (PING, HELLO, AUTH, CLIENT, INFO, CONFIG, ...).
 *
 * Sockets are read and written with plain read(2)/write(2) from events
 * embedded in the client (no bufferevents): every complete command in the
 * input is executed, replies accumulate in one buffer per client, and all
 * pending replies are written at the end of the loop iteration, one
 * write(2) per client. */
#include "cache/cache_int.h"
#include "cache/raft.h"

#include "core/log.h"
#include "core/memreport.h"
#include "oboro_version.h"

#include "cache/t_live.h" /* live types: cron tick, forwarding */

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/event_struct.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>
#include <unistd.h>

#define REDIS_COMPAT_VERSION "7.0.15"
#define READ_CHUNK (16 * 1024)
#define QUERYBUF_MAX (1024LL * 1024 * 1024)
#define ARGV_SMALL 16
#define MAX_ACCEPTS 1000
#define ACTIVE_EXPIRE_KEYS 2000      /* at most this many __expdel per tick */
#define ACTIVE_EXPIRE_US 1000        /* and at most this long scanning */

enum {
    CF_CLOSE_AFTER_REPLY = 1 << 0,
    CF_DEAD = 1 << 1,            /* socket gone; struct kept until replies drain */
    CF_AUTHED = 1 << 2,
    CF_FREELIST = 1 << 3,
    CF_WRITE_EV = 1 << 4,
};

struct cache_client {
    cache_client_t *prev, *next;     /* all clients */
    cache_client_t *wprev, *wnext;   /* clients with output to write */
    cache_client_t *fnext;           /* free list */
    int in_wlist;
    cache_server_t *srv;
    int fd;
    struct event rev, wev;
    uint64_t id;
    char *ibuf;
    size_t ilen, icap, ipos;
    resp_req_t req;
    resp_arg_t argv_small[ARGV_SMALL];
    resp_arg_t *argv;
    size_t argv_cap;
    cache_out_t out;
    int inflight;       /* writes whose replies are still due */
    int refs;           /* entries of batches (queued or proposed) naming it */
    unsigned flags;
    int resp;
    char *name;
    char addr[64], laddr[64];
    uint64_t ctime_ms, last_ms;
    const char *last_cmd;
    int read_ok;                     /* passed a read barrier (cache/raft.h) */
};

typedef struct batch {
    core_scope_t *scope;
    char *buf;
    size_t len, cap;
    uint32_t count;
    cache_client_t **cl;
    size_t ncl, clcap;
    uint64_t now;
} batch_t;

typedef struct inflight {
    struct inflight *next, *prev;
    cache_server_t *srv;
    uint64_t seq;
    int applied;
    size_t n;
    cache_client_t *cl[];
} inflight_t;

#define BATCH_HDR 32
#define BATCH_MAGIC 0x3142424fu /* "OBB1" */

struct cache_server {
    core_loop_t *loop;
    struct event_base *base;
    int lfd;
    struct event lev, flush_ev, cron_ev;
    int flush_pending;
    const cache_conf_t *conf;
    core_conf_t *all;
    cache_ks_t *ks;
    cache_client_t *clients, *wlist, *freelist;
    size_t nclients;
    batch_t batch[2];
    int cur;
    uint64_t origin, seq;
    inflight_t *infl_head, *infl_tail;
    const cache_log_ops_t *log;
    void *log_impl;
    struct live_fwd *live_fwd;  /* viewer events to the leader (t_live_fwd.c) */
    cache_out_t discard, scratch;
    resp_arg_t *aargv;
    size_t aargv_cap;
    uint64_t next_id, rng, started_ms, last_index;
    uint64_t stat_conns, stat_cmds, stat_rejected, stat_in, stat_out, stat_batches;
    uint64_t cron_ticks;
    uint64_t mono_ms;   /* refreshed by the cron: idle times need no finer clock */
    cache_raft_t *raft;              /* NULL: local log (cache/raft_cmd.c) */
};

static void client_close(cache_client_t *c, const char *why);
static void process_input(cache_client_t *c);
static void schedule_flush(cache_server_t *s);
static void resume_client(cache_client_t *c);

/* ---- small helpers ---------------------------------------------------------- */

long long cache_server_max_bulk(cache_server_t *s)
{
    return s->conf->proto_max_bulk_len;
}

uint64_t cache_server_random(cache_server_t *s)
{
    uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct cache_ks *cache_server_ks(cache_server_t *s)
{
    return s->ks;
}

cache_raft_t *cache_server_raft(cache_server_t *s)
{
    return s->raft;
}

/* A linearizable read waited for its barrier (cache/raft.h). */
static void read_barrier_done(void *arg, int status)
{
    cache_client_t *c = arg;

    c->inflight--;
    c->refs--;
    c->read_ok = status == 0;
    resume_client(c);
    c->read_ok = 0;
}

static int is_leader(cache_server_t *s)
{
    return s->log->is_leader(s->log_impl);
}

static void wlist_add(cache_client_t *c)
{
    cache_server_t *s = c->srv;

    if (c->in_wlist || (c->flags & CF_DEAD))
        return;
    c->in_wlist = 1;
    c->wprev = NULL;
    c->wnext = s->wlist;
    if (s->wlist)
        s->wlist->wprev = c;
    s->wlist = c;
    schedule_flush(s);
}

static void wlist_del(cache_client_t *c)
{
    cache_server_t *s = c->srv;

    if (!c->in_wlist)
        return;
    if (c->wprev)
        c->wprev->wnext = c->wnext;
    else
        s->wlist = c->wnext;
    if (c->wnext)
        c->wnext->wprev = c->wprev;
    c->in_wlist = 0;
}

/* ---- client lifecycle ------------------------------------------------------- */

static void client_destroy(cache_client_t *c)
{
    cache_server_t *s = c->srv;

    wlist_del(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->nclients--;
    if (c->argv != c->argv_small)
        core_free(c->argv);
    core_free(c->ibuf);
    out_free(&c->out);
    core_free(c->name);
    core_free(c);
}

static void client_close(cache_client_t *c, const char *why)
{
    if (c->flags & CF_DEAD)
        return;
    if (why != NULL)
        core_log_info("resp", "client closed", "id=%llu addr=%s reason=\"%s\"",
                      (unsigned long long)c->id, c->addr, why);
    event_del(&c->rev);
    event_del(&c->wev);
    close(c->fd);
    c->fd = -1;
    c->flags |= CF_DEAD;
    wlist_del(c);
    if (c->refs == 0) {
        if (!(c->flags & CF_FREELIST)) {
            c->flags |= CF_FREELIST;
            c->fnext = c->srv->freelist;
            c->srv->freelist = c;
        }
        schedule_flush(c->srv);
    }
}

static void reap(cache_server_t *s)
{
    while (s->freelist != NULL) {
        cache_client_t *c = s->freelist;

        s->freelist = c->fnext;
        client_destroy(c);
    }
}

/* ---- output --------------------------------------------------------------------- */

static void write_cb(evutil_socket_t fd, short what, void *arg);

static void client_write(cache_client_t *c)
{
    cache_out_t *o = &c->out;

    while (o->pos < o->len) {
        ssize_t n = write(c->fd, o->p + o->pos, o->len - o->pos);

        if (n > 0) {
            o->pos += (size_t)n;
            c->srv->stat_out += (uint64_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!(c->flags & CF_WRITE_EV)) {
                event_add(&c->wev, NULL);
                c->flags |= CF_WRITE_EV;
            }
            return;
        }
        client_close(c, NULL);
        return;
    }
    o->pos = o->len = 0;
    if (o->cap > 1024 * 1024) {
        /* hand back memory after a large reply */
        out_free(o);
    }
    if (c->flags & CF_WRITE_EV) {
        event_del(&c->wev);
        c->flags &= ~(unsigned)CF_WRITE_EV;
    }
    if (c->flags & CF_CLOSE_AFTER_REPLY)
        client_close(c, NULL);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    cache_client_t *c = arg;

    client_write(c);
    if (!(c->flags & CF_DEAD) && c->out.len == 0 && c->ipos < c->ilen)
        process_input(c);
    reap(c->srv);
}

/* Enforce client-output-buffer-limit; returns nonzero if closed. */
static int check_output(cache_client_t *c)
{
    if (c->out.oom) {
        client_close(c, "out of memory for replies");
        return 1;
    }
    if ((long long)(c->out.len - c->out.pos) > c->srv->conf->client_output_limit) {
        client_close(c, "client-output-buffer-limit reached");
        return 1;
    }
    return 0;
}

/* ---- the write batch --------------------------------------------------------- */

static int batch_reserve(batch_t *b, size_t n)
{
    char *p;
    size_t cap;

    if (b->cap - b->len >= n)
        return 0;
    cap = b->cap ? b->cap * 2 : 16384;
    while (cap - b->len < n)
        cap *= 2;
    p = core_scope_alloc(b->scope, cap);
    if (p == NULL)
        return -ENOMEM;
    if (b->len)
        memcpy(p, b->buf, b->len);
    b->buf = p;
    b->cap = cap;
    return 0;
}

static void put_u32(char *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put_u64(char *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static batch_t *batch_cur(cache_server_t *s)
{
    batch_t *b = &s->batch[s->cur];

    if (b->count == 0 && b->len == 0) {
        b->now = core_wall_ms();
        if (batch_reserve(b, BATCH_HDR) != 0)
            return NULL;
        b->len = BATCH_HDR;
    }
    return b;
}

/* Append one command for client c (NULL: nobody waits) to the batch. */
static int batch_add(cache_server_t *s, cache_client_t *c, int argc, const resp_arg_t *argv)
{
    batch_t *b = batch_cur(s);
    size_t need = 4;
    char *p;

    if (b == NULL)
        return -ENOMEM;
    for (int i = 0; i < argc; i++)
        need += 4 + argv[i].len;
    if (batch_reserve(b, need) != 0)
        return -ENOMEM;
    if (b->ncl == b->clcap) {
        size_t cap = b->clcap ? b->clcap * 2 : 64;
        cache_client_t **cl = core_scope_alloc(b->scope, cap * sizeof(*cl));

        if (cl == NULL)
            return -ENOMEM;
        if (b->ncl)
            memcpy(cl, b->cl, b->ncl * sizeof(*cl));
        b->cl = cl;
        b->clcap = cap;
    }
    p = b->buf + b->len;
    put_u32(p, (uint32_t)argc);
    p += 4;
    for (int i = 0; i < argc; i++) {
        put_u32(p, (uint32_t)argv[i].len);
        memcpy(p + 4, argv[i].p, argv[i].len);
        p += 4 + argv[i].len;
    }
    b->len = (size_t)(p - b->buf);
    b->cl[b->ncl++] = c;
    b->count++;
    if (c != NULL)
        c->refs++;
    schedule_flush(s);
    return 0;
}

int cache_server_writable(cache_server_t *s)
{
    return is_leader(s);
}

uint64_t cache_server_batch_now(cache_server_t *s)
{
    batch_t *b = batch_cur(s);

    return b != NULL ? b->now : core_wall_ms();
}

int cache_server_enqueue(cache_server_t *s, int argc, const resp_arg_t *argv)
{
    return batch_add(s, NULL, argc, argv);
}

struct live_fwd **cache_server_live_fwd(cache_server_t *s, struct event_base **base, const char **leader,
                                        const char **pass)
{
    *base = s->base;
    *leader = s->log->leader(s->log_impl);
    *pass = s->conf->requirepass;
    return &s->live_fwd;
}

static void resume_client(cache_client_t *c)
{
    if (c->flags & CF_DEAD) {
        if (c->refs == 0 && !(c->flags & CF_FREELIST)) {
            c->flags |= CF_FREELIST;
            c->fnext = c->srv->freelist;
            c->srv->freelist = c;
        }
        return;
    }
    if (c->inflight == 0 && c->ipos < c->ilen)
        process_input(c);
}

static void batch_done(void *arg, int status)
{
    inflight_t *r = arg;
    cache_server_t *s = r->srv;

    if (status != 0 && !r->applied) {
        const char *leader = s->log->leader(s->log_impl);

        for (size_t i = 0; i < r->n; i++) {
            cache_client_t *c = r->cl[i];
            cache_ctx_t x = {0};

            if (c == NULL)
                continue;
            x.out = &c->out;
            x.resp = c->resp;
            if (!is_leader(s) && leader != NULL)
                add_errf(&x, "MOVED 0 %s", leader);
            else
                add_errf(&x, "CLUSTERDOWN write not committed: %s", strerror(-status));
            c->inflight--;
            wlist_add(c);
        }
    }
    if (r->prev)
        r->prev->next = r->next;
    else
        s->infl_head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        s->infl_tail = r->prev;
    for (size_t i = 0; i < r->n; i++)
        if (r->cl[i] != NULL)
            r->cl[i]->refs--;
    for (size_t i = 0; i < r->n; i++)
        if (r->cl[i] != NULL && r->cl[i]->inflight == 0)
            resume_client(r->cl[i]);
    core_free(r);
}

static void propose_current(cache_server_t *s)
{
    batch_t *b = &s->batch[s->cur];
    inflight_t *r;
    int rv;

    s->cur ^= 1;
    r = core_malloc(CORE_TAG_RAFT_LOG, sizeof(*r) + b->ncl * sizeof(r->cl[0]));
    if (r == NULL) {
        /* cannot track the clients: fail them all */
        for (size_t i = 0; i < b->ncl; i++) {
            cache_client_t *c = b->cl[i];

            if (c != NULL) {
                c->inflight--;
                c->refs--;
                client_close(c, "out of memory for a write batch");
                resume_client(c);
            }
        }
        goto reset;
    }
    r->srv = s;
    r->seq = ++s->seq;
    r->applied = 0;
    r->n = b->ncl;
    memcpy(r->cl, b->cl, b->ncl * sizeof(r->cl[0]));
    r->next = NULL;
    r->prev = s->infl_tail;
    if (s->infl_tail)
        s->infl_tail->next = r;
    else
        s->infl_head = r;
    s->infl_tail = r;
    put_u32(b->buf, BATCH_MAGIC);
    put_u32(b->buf + 4, b->count);
    put_u64(b->buf + 8, s->origin);
    put_u64(b->buf + 16, r->seq);
    put_u64(b->buf + 24, b->now);
    s->stat_batches++;
    rv = s->log->propose(s->log_impl, b->buf, b->len, batch_done, r);
    if (rv != 0)
        batch_done(r, rv);
reset:
    core_scope_reset(b->scope);
    b->buf = NULL;
    b->len = b->cap = 0;
    b->cl = NULL;
    b->ncl = b->clcap = 0;
    b->count = 0;
}

static uint32_t get_u32(const unsigned char *p)
{
    uint32_t v;

    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const unsigned char *p)
{
    uint64_t v;

    memcpy(&v, p, 8);
    return v;
}

void cache_apply_batch(cache_server_t *s, const void *buf, size_t len, uint64_t index)
{
    const unsigned char *p = buf, *end = p + len;
    uint32_t count;
    uint64_t origin, seq, now;
    inflight_t *r = NULL;
    cache_ctx_t x;
    uint32_t i = 0;

    if (len < BATCH_HDR || get_u32(p) != BATCH_MAGIC) {
        core_log_warn("resp", "malformed batch skipped", "index=%llu len=%zu", (unsigned long long)index, len);
        return;
    }
    count = get_u32(p + 4);
    origin = get_u64(p + 8);
    seq = get_u64(p + 16);
    now = get_u64(p + 24);
    if (origin == s->origin)
        for (inflight_t *f = s->infl_head; f != NULL; f = f->next)
            if (f->seq == seq && !f->applied) {
                r = f;
                break;
            }
    if (r != NULL && r->n != count)
        r = NULL;
    p += BATCH_HDR;
    memset(&x, 0, sizeof(x));
    x.srv = s;
    x.ks = s->ks;
    x.now_ms = now;
    x.in_apply = 1;
    for (i = 0; i < count; i++) {
        uint32_t argc;
        const cache_cmd_t *cmd;
        cache_client_t *c = r ? r->cl[i] : NULL;

        if (end - p < 4)
            goto bad;
        argc = get_u32(p);
        p += 4;
        if (argc == 0 || argc > (uint32_t)INT_MAX / 2 || (size_t)(end - p) < (size_t)argc * 4)
            goto bad;
        if (argc > s->aargv_cap) {
            resp_arg_t *na = core_realloc(CORE_TAG_RESP_CONN, s->aargv, argc * sizeof(*na));

            if (na == NULL)
                goto bad;
            s->aargv = na;
            s->aargv_cap = argc;
        }
        for (uint32_t a = 0; a < argc; a++) {
            uint32_t l;

            if (end - p < 4)
                goto bad;
            l = get_u32(p);
            p += 4;
            if ((size_t)(end - p) < l)
                goto bad;
            s->aargv[a].p = (const char *)p;
            s->aargv[a].len = l;
            s->aargv[a].off = 0;
            s->aargv[a].esc = 0;
            p += l;
        }
        x.argc = (int)argc;
        x.argv = s->aargv;
        if (c != NULL && !(c->flags & CF_DEAD)) {
            x.c = c;
            x.out = &c->out;
            x.resp = c->resp;
        } else {
            x.c = NULL;
            s->discard.len = 0;
            x.out = &s->discard;
            x.resp = 2;
        }
        cmd = cache_cmd_lookup(s->aargv[0].p, s->aargv[0].len);
        if (cmd == NULL || !(cmd->flags & CMD_WRITE))
            add_err(&x, "ERR unknown command in batch");
        else
            cmd->proc(&x);
        s->stat_cmds++;
        if (c != NULL) {
            c->inflight--;
            if (!(c->flags & CF_DEAD) && !check_output(c))
                wlist_add(c);
        }
    }
    if (r != NULL)
        r->applied = 1;
    s->last_index = index;
    if (s->discard.cap > 64 * 1024)
        out_free(&s->discard);
    return;
bad:
    core_log_warn("resp", "malformed batch entry; rest of the batch skipped", "index=%llu",
                  (unsigned long long)index);
    if (r != NULL) {
        /* the clients of the entries not applied still wait: answer them */
        for (size_t k = i; k < r->n; k++) {
            cache_client_t *c = r->cl[k];

            if (c != NULL) {
                cache_ctx_t y = {0};

                y.out = &c->out;
                y.resp = c->resp;
                add_err(&y, "ERR malformed write batch");
                c->inflight--;
                wlist_add(c);
            }
        }
        r->applied = 1;
    }
}

uint64_t cache_server_last_index(cache_server_t *s)
{
    return s->last_index;
}

void cache_server_set_log(cache_server_t *s, const cache_log_ops_t *ops, void *impl)
{
    if (ops == NULL) {
        s->log = &cache_log_local_ops;
        s->log_impl = s;
    } else {
        s->log = ops;
        s->log_impl = impl;
    }
}

/* ---- end of iteration: propose, then write --------------------------------------- */

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    cache_server_t *s = arg;

    s->flush_pending = 0;
    /* the local log applies at once and may let waiting clients add more */
    for (int round = 0; round < 4 && s->batch[s->cur].count > 0; round++)
        propose_current(s);
    while (s->wlist != NULL) {
        cache_client_t *c = s->wlist;

        wlist_del(c);
        client_write(c);
    }
    reap(s);
    if (s->batch[s->cur].count > 0)
        schedule_flush(s);
}

static void schedule_flush(cache_server_t *s)
{
    if (s->flush_pending)
        return;
    s->flush_pending = 1;
    event_active(&s->flush_ev, EV_TIMEOUT, 1);
}

/* ---- command dispatch ------------------------------------------------------------- */

static resp_limits_t limits_of(cache_client_t *c)
{
    resp_limits_t l;

    l.max_bulk = c->srv->conf->proto_max_bulk_len;
    l.max_multibulk = INT_MAX;
    l.max_inline = RESP_INLINE_MAX;
    l.unauthenticated = !(c->flags & CF_AUTHED);
    return l;
}

static int auth_required(cache_client_t *c)
{
    const char *pw = c->srv->conf->requirepass;

    return !(c->flags & CF_AUTHED) && pw != NULL && pw[0] != '\0';
}

static void lower_name(char *dst, const resp_arg_t *a, size_t cap)
{
    size_t n = a->len < cap - 1 ? a->len : cap - 1;

    for (size_t i = 0; i < n; i++) {
        char ch = a->p[i];

        dst[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
    }
    dst[n] = '\0';
}

/* Reply the "before execution" errors Redis gives. Returns 1 if replied. */
static int precheck(cache_ctx_t *x, const cache_cmd_t *cmd)
{
    cache_client_t *c = x->c;

    if (cmd == NULL || (cmd->flags & CMD_INTERNAL)) {
        char args[160];
        size_t al = 0;

        args[0] = '\0';
        for (int i = 1; i < x->argc && al < 128; i++) {
            int room = 128 - (int)al;
            int n = snprintf(args + al, sizeof(args) - al, "'%.*s' ",
                             (int)(x->argv[i].len < (size_t)room ? x->argv[i].len : (size_t)room),
                             x->argv[i].p);

            if (n < 0)
                break;
            al += (size_t)n;
            if (al >= sizeof(args))
                al = sizeof(args) - 1;
        }
        add_errf(x, "ERR unknown command '%.*s', with args beginning with: %s",
                 (int)(x->argv[0].len > 128 ? 128 : x->argv[0].len), x->argv[0].p, args);
        return 1;
    }
    if (auth_required(c) && !(cmd->flags & CMD_NOAUTH)) {
        add_err(x, "NOAUTH Authentication required.");
        return 1;
    }
    if ((cmd->arity > 0 && x->argc != cmd->arity) || (cmd->arity < 0 && x->argc < -cmd->arity)) {
        add_errf(x, "ERR wrong number of arguments for '%s' command", cmd->name);
        return 1;
    }
    if ((cmd->flags & CMD_KEYSPACE) && !is_leader(c->srv)) {
        const char *leader = c->srv->log->leader(c->srv->log_impl);

        if (leader != NULL)
            add_errf(x, "MOVED 0 %s", leader);
        else
            add_err(x, "CLUSTERDOWN No raft leader");
        return 1;
    }
    return 0;
}

static int has_esc(const resp_arg_t *argv, size_t argc)
{
    for (size_t i = 0; i < argc; i++)
        if (argv[i].esc)
            return 1;
    return 0;
}

static void unescape_args(resp_arg_t *argv, size_t argc)
{
    for (size_t i = 0; i < argc; i++)
        if (argv[i].esc) {
            /* the value is never longer than its quoted form: in place */
            argv[i].len = resp_arg_unescape(&argv[i], (char *)argv[i].p);
            argv[i].esc = 0;
        }
}

static int grow_argv(cache_client_t *c, long long want)
{
    resp_arg_t *na;
    size_t cap = c->argv_cap;

    while ((long long)cap < want)
        cap *= 2;
    na = core_malloc(CORE_TAG_RESP_CONN, cap * sizeof(*na));
    if (na == NULL)
        return -ENOMEM;
    memcpy(na, c->argv, c->argv_cap * sizeof(*na));
    if (c->argv != c->argv_small)
        core_free(c->argv);
    c->argv = na;
    c->argv_cap = cap;
    return 0;
}

static void process_input(cache_client_t *c)
{
    cache_server_t *s = c->srv;
    uint64_t now = 0; /* wall clock, read once per call: clock reads showed in profiles */

    while (!(c->flags & (CF_DEAD | CF_CLOSE_AFTER_REPLY)) && c->ipos < c->ilen) {
        resp_limits_t lim = limits_of(c);
        const char *err = NULL;
        size_t argc = 0;
        ssize_t n = resp_req_parse(&c->req, &lim, c->ibuf + c->ipos, c->ilen - c->ipos, c->argv,
                                   c->argv_cap, &argc, &err);
        const cache_cmd_t *cmd;
        cache_ctx_t x;

        if (n == -EAGAIN)
            break;
        if (n == -ENOSPC) {
            if (grow_argv(c, c->req.nargs) != 0) {
                client_close(c, "out of memory for arguments");
                return;
            }
            continue;
        }
        if (n == -EPROTO) {
            cache_ctx_t y = {0};

            if (c->inflight > 0)
                break; /* the error must follow the replies still due */
            y.out = &c->out;
            y.resp = c->resp;
            add_errf(&y, "ERR %s", err);
            core_log_info("resp", "protocol error", "id=%llu addr=%s error=\"%s\"",
                          (unsigned long long)c->id, c->addr, err);
            c->flags |= CF_CLOSE_AFTER_REPLY;
            c->ilen = c->ipos = 0;
            wlist_add(c);
            break;
        }
        if (argc == 0) {
            c->ipos += (size_t)n;
            continue;
        }
        cmd = cache_cmd_lookup(c->argv[0].p, c->argv[0].len);
        memset(&x, 0, sizeof(x));
        x.srv = s;
        x.ks = s->ks;
        x.c = c;
        x.out = &c->out;
        x.resp = c->resp;
        x.argc = (int)argc;
        x.argv = c->argv;
        if (cmd != NULL && (cmd->flags & CMD_WRITE) && !(cmd->flags & CMD_INTERNAL)) {
            /* the write path: check, translate, batch; errors wait their turn */
            batch_t *b;
            int rv;

            x.out = &s->scratch;
            s->scratch.len = 0;
            if (precheck(&x, cmd)) {
                if (c->inflight > 0)
                    break;
                c->ipos += (size_t)n;
                add_raw(&(cache_ctx_t){.out = &c->out}, s->scratch.p, s->scratch.len);
                goto next;
            }
            if (c->inflight > 0 && has_esc(c->argv, argc))
                break; /* unescaping in place must happen once, when it runs */
            b = batch_cur(s);
            if (b == NULL) {
                client_close(c, "out of memory for a write batch");
                return;
            }
            unescape_args(c->argv, argc);
            x.now_ms = b->now;
            if (cmd->prep != NULL && cmd->prep(&x, b->scope) != 0) {
                if (c->inflight > 0)
                    break; /* answered in order once earlier writes replied */
                c->ipos += (size_t)n;
                add_raw(&(cache_ctx_t){.out = &c->out}, s->scratch.p, s->scratch.len);
                goto next;
            }
            rv = batch_add(s, c, x.argc, x.argv);
            c->ipos += (size_t)n;
            if (rv != 0) {
                client_close(c, "out of memory for a write batch");
                return;
            }
            c->inflight++;
            c->last_cmd = cmd->name;
            continue;
        }
        if (c->inflight > 0)
            break; /* reads and errors wait for this client's writes */
        if (cmd != NULL && (cmd->flags & CMD_READONLY) && (cmd->flags & CMD_KEYSPACE) &&
            s->raft != NULL && !c->read_ok && cache_raft_linearizable(s->raft) &&
            cache_raft_barrier(s->raft, read_barrier_done, c) == 0) {
            /* linearizable read: answered once this iteration's barrier
             * shows we still lead (shared by every read of the iteration);
             * the ref keeps c alive until the barrier calls back */
            c->inflight++;
            c->refs++;
            break;
        }
        c->ipos += (size_t)n;
        unescape_args(c->argv, argc);
        if (!precheck(&x, cmd)) {
            if (now == 0)
                now = core_wall_ms();
            x.now_ms = now;
            cmd->proc(&x);
            s->stat_cmds++;
            c->last_cmd = cmd->name;
        }
next:
        if (check_output(c))
            return;
        wlist_add(c);
    }
    if (c->ipos == c->ilen) {
        c->ipos = c->ilen = 0;
        if (c->icap > 64 * 1024) {
            core_free(c->ibuf);
            c->ibuf = NULL;
            c->icap = 0;
        }
    }
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    cache_client_t *c = arg;
    cache_server_t *s = c->srv;
    ssize_t n;

    if (c->ipos > 0 && c->ipos == c->ilen)
        c->ipos = c->ilen = 0;
    if (c->icap - c->ilen < READ_CHUNK) {
        if (c->ipos > 0) {
            memmove(c->ibuf, c->ibuf + c->ipos, c->ilen - c->ipos);
            c->ilen -= c->ipos;
            c->ipos = 0;
        }
        if (c->icap - c->ilen < READ_CHUNK) {
            size_t cap = c->icap ? c->icap * 2 : READ_CHUNK;
            char *nb;

            while (cap - c->ilen < READ_CHUNK)
                cap *= 2;
            if ((long long)cap > QUERYBUF_MAX + READ_CHUNK * 2) {
                client_close(c, "max query buffer length reached");
                reap(s);
                return;
            }
            nb = core_realloc(CORE_TAG_RESP_CONN, c->ibuf, cap);
            if (nb == NULL) {
                client_close(c, "out of memory for the query buffer");
                reap(s);
                return;
            }
            c->ibuf = nb;
            c->icap = cap;
        }
    }
    n = read(fd, c->ibuf + c->ilen, c->icap - c->ilen);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        client_close(c, NULL);
        reap(s);
        return;
    }
    c->ilen += (size_t)n;
    s->stat_in += (uint64_t)n;
    c->last_ms = s->mono_ms;
    process_input(c);
    if (!(c->flags & CF_DEAD) && (long long)(c->ilen - c->ipos) > QUERYBUF_MAX)
        client_close(c, "max query buffer length reached");
    reap(s);
}

static void fmt_addr(int fd, int local, char *out, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char host[INET6_ADDRSTRLEN] = "?";
    int port = 0;

    if ((local ? getsockname(fd, (struct sockaddr *)&ss, &sl) : getpeername(fd, (struct sockaddr *)&ss, &sl)) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;

            inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, len, "%s:%d", host, port);
}

static void accept_cb(evutil_socket_t lfd, short what, void *arg)
{
    cache_server_t *s = arg;

    for (int i = 0; i < MAX_ACCEPTS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
        cache_client_t *c;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                core_log_warn("resp", "accept failed", "error=\"%s\"", strerror(errno));
            return;
        }
        s->stat_conns++;
        if ((long long)s->nclients >= s->conf->maxclients) {
            static const char msg[] = "-ERR max number of clients reached\r\n";

            if (write(fd, msg, sizeof(msg) - 1) < 0) {
                /* nothing more to tell this peer */
            }
            close(fd);
            s->stat_rejected++;
            continue;
        }
        c = core_calloc(CORE_TAG_RESP_CONN, 1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->srv = s;
        c->fd = fd;
        c->id = ++s->next_id;
        c->resp = 2;
        c->argv = c->argv_small;
        c->argv_cap = ARGV_SMALL;
        c->ctime_ms = c->last_ms = s->mono_ms = core_mono_ms();
        resp_req_reset(&c->req);
        fmt_addr(fd, 0, c->addr, sizeof(c->addr));
        fmt_addr(fd, 1, c->laddr, sizeof(c->laddr));
        if (s->conf->requirepass == NULL || s->conf->requirepass[0] == '\0')
            c->flags |= CF_AUTHED;
        event_assign(&c->rev, s->base, fd, EV_READ | EV_PERSIST, read_cb, c);
        event_assign(&c->wev, s->base, fd, EV_WRITE | EV_PERSIST, write_cb, c);
        event_add(&c->rev, NULL);
        c->next = s->clients;
        if (s->clients)
            s->clients->prev = c;
        s->clients = c;
        s->nclients++;
    }
}

/* ---- cron: idle timeouts, active expiry, rehashing ------------------------------- */

typedef struct expire_scan {
    cache_server_t *s;
    uint64_t now;
    size_t n;
    size_t visited;
} expire_scan_t;

static void expire_cb(void *arg, ht_node_t *n)
{
    expire_scan_t *e = arg;
    cache_entry_t *en = (cache_entry_t *)n;
    resp_arg_t av[2];

    e->visited++;
    if (!(en->flags & CACHE_E_EXPIRE) || (int64_t)e->now <= ent_expire(en) || e->n >= ACTIVE_EXPIRE_KEYS)
        return;
    arg_set_lit(&av[0], "__expdel");
    av[1].p = en->key;
    av[1].len = en->klen;
    av[1].off = 0;
    av[1].esc = 0;
    if (batch_add(e->s, NULL, 2, av) == 0)
        e->n++;
}

static void active_expire(cache_server_t *s)
{
    cache_ks_t *k = s->ks;
    expire_scan_t e = {s, core_wall_ms(), 0, 0};
    uint64_t start = core_mono_us(), cur = k->expire_cursor;

    if (k->nvolatile == 0 || !is_leader(s))
        return;
    do {
        for (int i = 0; i < 64 && e.n < ACTIVE_EXPIRE_KEYS; i++) {
            cur = ht_scan(&k->ht, cur, expire_cb, &e);
            if (cur == 0)
                break;
        }
    } while (cur != 0 && e.n < ACTIVE_EXPIRE_KEYS && core_mono_us() - start < ACTIVE_EXPIRE_US);
    k->expire_cursor = cur;
}

static void cron(evutil_socket_t fd, short what, void *arg)
{
    cache_server_t *s = arg;
    uint64_t now = core_mono_ms(), t0 = core_mono_us();

    s->cron_ticks++;
    s->mono_ms = now;
    active_expire(s);
    if (is_leader(s) && cache_live_due(s->ks, core_wall_ms())) {
        resp_arg_t av[1];

        /* presence deadlines, ranking windows: replicated (cache/t_live.h) */
        arg_set_lit(&av[0], "__live.tick");
        batch_add(s, NULL, 1, av);
    }
    while (ht_rehash(&s->ks->ht, 100) && core_mono_us() - t0 < 1000) {
    }
    if (s->conf->timeout > 0 && s->cron_ticks % 10 == 0) {
        for (cache_client_t *c = s->clients; c != NULL; c = c->next) {
            if (c->flags & CF_DEAD || c->inflight > 0)
                continue;
            if ((long long)(now - c->last_ms) > s->conf->timeout * 1000)
                client_close(c, "idle timeout");
        }
        reap(s);
    }
}

/* ---- configuration ----------------------------------------------------------------- */

static const core_conf_def_t defs_tmpl[] = {
    {"maxclients", CORE_CONF_INT, "10000", "maximum number of RESP clients", NULL, 1, 1000000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"timeout", CORE_CONF_INT, "0", "close RESP clients idle for this many seconds (0 = never)", NULL, 0, 1 << 30, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"requirepass", CORE_CONF_STR, "", "password RESP clients must AUTH with (empty = none)", NULL, 0, 0, NULL, CORE_CONF_RUNTIME | CORE_CONF_SECRET, NULL, NULL},
    {"proto-max-bulk-len", CORE_CONF_SIZE, "512mb", "largest bulk string a client may send", NULL, 1, 1LL << 40, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"client-output-buffer-limit", CORE_CONF_SIZE, "64mb", "close a client whose pending replies exceed this", NULL, 1024, 1LL << 40, NULL, CORE_CONF_RUNTIME, NULL, NULL},
};
static core_conf_def_t defs[sizeof(defs_tmpl) / sizeof(defs_tmpl[0])];

int cache_conf_register(core_conf_t *c, cache_conf_t *cc)
{
    memcpy(defs, defs_tmpl, sizeof(defs));
    defs[0].ptr = &cc->maxclients;
    defs[1].ptr = &cc->timeout;
    defs[2].ptr = &cc->requirepass;
    defs[3].ptr = &cc->proto_max_bulk_len;
    defs[4].ptr = &cc->client_output_limit;
    if (core_conf_add(c, defs, sizeof(defs) / sizeof(defs[0])) != 0)
        return -EINVAL;
    return cache_raft_conf_register(c, cache_raft_conf_daemon());
}

/* ---- lifecycle ------------------------------------------------------------------------ */

int cache_server_new(cache_server_t **out, core_loop_t *loop, int fd,
                     const cache_conf_t *conf, core_conf_t *all)
{
    cache_server_t *s = core_calloc(CORE_TAG_RESP_CONN, 1, sizeof(*s));
    int rv = -ENOMEM;

    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    cache_cmd_init();
    s->loop = loop;
    s->base = core_loop_base(loop);
    s->lfd = fd;
    s->conf = conf;
    s->all = all;
    s->log = &cache_log_local_ops;
    s->log_impl = s;
    s->started_ms = s->mono_ms = core_mono_ms();
    {
        int ufd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);

        if (ufd < 0 || read(ufd, &s->origin, sizeof(s->origin)) != sizeof(s->origin))
            s->origin = core_wall_ms() ^ ((uint64_t)getpid() << 32);
        if (ufd >= 0)
            close(ufd);
    }
    s->rng = s->origin;
    s->ks = cache_ks_new();
    if (s->ks == NULL)
        goto err_after_alloc;
    for (int i = 0; i < 2; i++) {
        s->batch[i].scope = core_scope_new(CORE_TAG_RAFT_LOG, 64 * 1024);
        if (s->batch[i].scope == NULL)
            goto err_after_ks;
    }
    rv = cache_raft_attach(s, loop, cache_raft_conf_daemon(), all, &s->raft);
    if (rv != 0)
        goto err_after_ks;
    event_assign(&s->flush_ev, s->base, -1, 0, flush_cb, s);
    event_assign(&s->lev, s->base, fd, EV_READ | EV_PERSIST, accept_cb, s);
    if (event_add(&s->lev, NULL) != 0) {
        rv = -EIO;
        goto err_after_ks;
    }
    {
        /* an own timer (not core_loop_every) so that it stops with the server */
        struct timeval tv = {0, 100 * 1000};

        event_assign(&s->cron_ev, s->base, -1, EV_PERSIST, cron, s);
        event_add(&s->cron_ev, &tv);
    }
    *out = s;
    return 0;

err_after_ks:
    cache_raft_detach(s, &s->raft);
    for (int i = 0; i < 2; i++)
        if (s->batch[i].scope)
            core_scope_free(&s->batch[i].scope);
    cache_ks_free(&s->ks);
err_after_alloc:
    close(fd);
    core_free(s);
    return rv;
}

void cache_server_free(cache_server_t **sp)
{
    cache_server_t *s = *sp;

    if (s == NULL)
        return;
    /* first: pending writes fail and their clients get an error */
    cache_raft_detach(s, &s->raft);
    event_del(&s->lev);
    event_del(&s->flush_ev);
    event_del(&s->cron_ev);
    close(s->lfd);
    while (s->infl_head != NULL) {
        inflight_t *r = s->infl_head;

        s->infl_head = r->next;
        core_free(r);
    }
    while (s->clients != NULL) {
        cache_client_t *c = s->clients;

        if (!(c->flags & CF_DEAD)) {
            event_del(&c->rev);
            event_del(&c->wev);
            close(c->fd);
        }
        client_destroy(c);
    }
    s->freelist = NULL;
    for (int i = 0; i < 2; i++)
        core_scope_free(&s->batch[i].scope);
    live_fwd_free(&s->live_fwd);
    cache_ks_free(&s->ks);
    out_free(&s->discard);
    out_free(&s->scratch);
    core_free(s->aargv);
    core_free(s);
    *sp = NULL;
}

/* ---- connection and server commands ------------------------------------------------ */

#define A(i) (&x->argv[(i)])

CMD(cmd_ping)
{
    if (x->argc > 2) {
        add_err(x, "ERR wrong number of arguments for 'ping' command");
        return;
    }
    if (x->argc == 2)
        add_bulk(x, A(1)->p, A(1)->len);
    else
        add_raw(x, "+PONG\r\n", 7);
}

CMD(cmd_echo)
{
    add_bulk(x, A(1)->p, A(1)->len);
}

CMD(cmd_quit)
{
    add_ok(x);
    x->c->flags |= CF_CLOSE_AFTER_REPLY;
}

static int check_pass(cache_ctx_t *x, const resp_arg_t *user, const resp_arg_t *pass)
{
    const char *pw = x->srv->conf->requirepass;

    if (user != NULL && !arg_eq(user, "default"))
        return 0;
    if (pw == NULL || pw[0] == '\0')
        return user != NULL; /* "default" with nopass accepts anything */
    return pass->len == strlen(pw) && memcmp(pass->p, pw, pass->len) == 0;
}

CMD(cmd_auth)
{
    const char *pw = x->srv->conf->requirepass;

    if (x->argc > 3) {
        add_err(x, err_syntax);
        return;
    }
    if (x->argc == 2 && (pw == NULL || pw[0] == '\0')) {
        add_err(x, "ERR AUTH <password> called without any password configured for the default user. "
                   "Are you sure your configuration is correct?");
        return;
    }
    if (check_pass(x, x->argc == 3 ? A(1) : NULL, x->argc == 3 ? A(2) : A(1))) {
        x->c->flags |= CF_AUTHED;
        add_ok(x);
    } else {
        add_err(x, "WRONGPASS invalid username-password pair or user is disabled.");
    }
}

CMD(cmd_hello)
{
    long long ver = x->c->resp;
    cache_client_t *c = x->c;
    const resp_arg_t *setname = NULL;

    if (x->argc >= 2) {
        if (arg_ll(A(1), &ver) != 0) {
            add_err(x, "ERR Protocol version is not an integer or out of range");
            return;
        }
        if (ver < 2 || ver > 3) {
            add_err(x, "NOPROTO unsupported protocol version");
            return;
        }
    }
    for (int j = 2; j < x->argc; j++) {
        int left = x->argc - j - 1;

        if (arg_eq(A(j), "auth") && left >= 2) {
            if (!check_pass(x, A(j + 1), A(j + 2))) {
                add_err(x, "WRONGPASS invalid username-password pair or user is disabled.");
                return;
            }
            c->flags |= CF_AUTHED;
            j += 2;
        } else if (arg_eq(A(j), "setname") && left >= 1) {
            setname = A(j + 1);
            j++;
        } else {
            add_errf(x, "ERR Syntax error in HELLO option '%.*s'", (int)(A(j)->len > 128 ? 128 : A(j)->len), A(j)->p);
            return;
        }
    }
    if (auth_required(c)) {
        add_err(x, "NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                   "HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and "
                   "select the RESP protocol version at the same time");
        return;
    }
    if (setname != NULL) {
        char *n;

        for (size_t i = 0; i < setname->len; i++)
            if (setname->p[i] < '!' || setname->p[i] > '~') {
                add_err(x, "ERR Client names cannot contain spaces, newlines or special characters.");
                return;
            }
        n = core_memdup(CORE_TAG_RESP_CONN, setname->p, setname->len);
        if (n != NULL) {
            core_free(c->name);
            c->name = setname->len ? n : NULL;
            if (!setname->len)
                core_free(n);
        }
    }
    c->resp = (int)ver;
    x->resp = (int)ver;
    add_map(x, 7);
    add_bulk(x, "server", 6);
    add_bulk(x, "redis", 5);
    add_bulk(x, "version", 7);
    add_bulk(x, REDIS_COMPAT_VERSION, strlen(REDIS_COMPAT_VERSION));
    add_bulk(x, "proto", 5);
    add_int(x, ver);
    add_bulk(x, "id", 2);
    add_int(x, (long long)c->id);
    add_bulk(x, "mode", 4);
    add_bulk(x, "standalone", 10);
    add_bulk(x, "role", 4);
    add_bulk(x, "master", 6);
    add_bulk(x, "modules", 7);
    add_array(x, 0);
}

CMD(cmd_select)
{
    long long db;

    if (get_ll_or_reply(x, A(1), &db, NULL) != 0)
        return;
    if (db != 0) {
        add_err(x, "ERR DB index is out of range");
        return;
    }
    add_ok(x);
}

CMD(cmd_time)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    add_array(x, 2);
    add_bulk_ll(x, (long long)tv.tv_sec);
    add_bulk_ll(x, (long long)tv.tv_usec);
}

static void client_line(cache_ctx_t *x, cache_client_t *c, char *buf, size_t len, const char *self)
{
    uint64_t now = core_mono_ms();

    snprintf(buf, len,
             "id=%llu addr=%s laddr=%s fd=%d name=%s age=%llu idle=%llu flags=N db=0 sub=0 psub=0 "
             "ssub=0 multi=-1 qbuf=%zu qbuf-free=%zu argv-mem=0 multi-mem=0 rbs=%zu rbp=0 obl=%zu "
             "oll=0 omem=%zu tot-mem=%zu events=r cmd=%s user=default redir=-1 resp=%d\n",
             (unsigned long long)c->id, c->addr, c->laddr, c->fd, c->name ? c->name : "",
             (unsigned long long)((now - c->ctime_ms) / 1000), (unsigned long long)((now - c->last_ms) / 1000),
             c->ilen - c->ipos, c->icap - c->ilen, c->icap, c->out.len - c->out.pos, c->out.cap,
             sizeof(*c) + c->icap + c->out.cap, c == x->c ? self : (c->last_cmd ? c->last_cmd : "NULL"),
             c->resp);
}

static void client_kill(cache_ctx_t *x)
{
    cache_server_t *s = x->srv;
    long long killed = 0;
    int skipme = 1;
    const resp_arg_t *addr = NULL, *laddr = NULL;
    long long id = -1;

    if (x->argc == 3) {
        for (cache_client_t *c = s->clients; c != NULL; c = c->next)
            if (!(c->flags & CF_DEAD) && A(2)->len == strlen(c->addr) &&
                memcmp(A(2)->p, c->addr, A(2)->len) == 0) {
                if (c == x->c)
                    c->flags |= CF_CLOSE_AFTER_REPLY;
                else
                    client_close(c, "killed by CLIENT KILL");
                add_ok(x);
                return;
            }
        add_err(x, "ERR No such client");
        return;
    }
    for (int j = 2; j < x->argc; j += 2) {
        if (j + 1 >= x->argc) {
            add_err(x, err_syntax);
            return;
        }
        if (arg_eq(A(j), "id")) {
            if (arg_ll(A(j + 1), &id) != 0 || id <= 0) {
                add_err(x, "ERR client-id should be greater than 0");
                return;
            }
        } else if (arg_eq(A(j), "addr")) {
            addr = A(j + 1);
        } else if (arg_eq(A(j), "laddr")) {
            laddr = A(j + 1);
        } else if (arg_eq(A(j), "skipme")) {
            if (arg_eq(A(j + 1), "yes"))
                skipme = 1;
            else if (arg_eq(A(j + 1), "no"))
                skipme = 0;
            else {
                add_err(x, err_syntax);
                return;
            }
        } else if (arg_eq(A(j), "user") || arg_eq(A(j), "type")) {
            /* one user ("default") and one type ("normal") exist here */
        } else {
            add_err(x, err_syntax);
            return;
        }
    }
    for (cache_client_t *c = s->clients; c != NULL; c = c->next) {
        if (c->flags & CF_DEAD)
            continue;
        if (id > 0 && c->id != (uint64_t)id)
            continue;
        if (addr && !(addr->len == strlen(c->addr) && memcmp(addr->p, c->addr, addr->len) == 0))
            continue;
        if (laddr && !(laddr->len == strlen(c->laddr) && memcmp(laddr->p, c->laddr, laddr->len) == 0))
            continue;
        if (c == x->c && skipme)
            continue;
        if (c == x->c)
            c->flags |= CF_CLOSE_AFTER_REPLY;
        else
            client_close(c, "killed by CLIENT KILL");
        killed++;
    }
    add_int(x, killed);
}

CMD(cmd_client)
{
    cache_client_t *c = x->c;
    char line[1024];

    if (arg_eq(A(1), "id") && x->argc == 2) {
        add_int(x, (long long)c->id);
    } else if (arg_eq(A(1), "getname") && x->argc == 2) {
        if (c->name)
            add_bulk(x, c->name, strlen(c->name));
        else
            add_null(x);
    } else if (arg_eq(A(1), "setname") && x->argc == 3) {
        char *n = NULL;

        for (size_t i = 0; i < A(2)->len; i++)
            if (A(2)->p[i] < '!' || A(2)->p[i] > '~') {
                add_err(x, "ERR Client names cannot contain spaces, newlines or special characters.");
                return;
            }
        if (A(2)->len > 0) {
            n = core_memdup(CORE_TAG_RESP_CONN, A(2)->p, A(2)->len);
            if (n == NULL) {
                add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
                return;
            }
        }
        core_free(c->name);
        c->name = n;
        add_ok(x);
    } else if (arg_eq(A(1), "info") && x->argc == 2) {
        client_line(x, c, line, sizeof(line), "client|info");
        add_bulk(x, line, strlen(line));
    } else if (arg_eq(A(1), "list")) {
        struct evbuffer *b = evbuffer_new();
        size_t n;

        if (b == NULL) {
            add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
            return;
        }
        for (cache_client_t *o = x->srv->clients; o != NULL; o = o->next) {
            if (o->flags & CF_DEAD)
                continue;
            client_line(x, o, line, sizeof(line), "client|list");
            evbuffer_add(b, line, strlen(line));
        }
        n = evbuffer_get_length(b);
        add_bulk(x, (const char *)evbuffer_pullup(b, -1), n);
        evbuffer_free(b);
    } else if (arg_eq(A(1), "kill") && x->argc >= 3) {
        client_kill(x);
    } else if (arg_eq(A(1), "setinfo") && x->argc == 4) {
        add_ok(x);
    } else if (arg_eq(A(1), "help")) {
        add_array(x, 1);
        add_status(x, "CLIENT <subcommand> [<arg> ...]: ID GETNAME SETNAME INFO LIST KILL");
    } else {
        add_errf(x, "ERR unknown subcommand or wrong number of arguments for '%.*s'. Try CLIENT HELP.",
                 (int)(A(1)->len > 128 ? 128 : A(1)->len), A(1)->p);
    }
}

/* ---- COMMAND ---------------------------------------------------------------------- */

static void command_flags(cache_ctx_t *x, const cache_cmd_t *c)
{
    const char *fl[6];
    size_t n = 0;

    if (c->flags & CMD_WRITE)
        fl[n++] = "write";
    if (c->flags & CMD_READONLY)
        fl[n++] = "readonly";
    if (c->flags & CMD_DENYOOM)
        fl[n++] = "denyoom";
    if (c->flags & CMD_ADMIN)
        fl[n++] = "admin";
    if (c->flags & CMD_NOAUTH)
        fl[n++] = "no_auth";
    if (c->flags & CMD_FAST)
        fl[n++] = "fast";
    add_set(x, n);
    for (size_t i = 0; i < n; i++)
        add_status(x, fl[i]);
}

static void command_info(cache_ctx_t *x, const cache_cmd_t *c)
{
    add_array(x, 10);
    add_bulk(x, c->name, strlen(c->name));
    add_int(x, c->arity);
    command_flags(x, c);
    add_int(x, c->first_key);
    add_int(x, c->last_key);
    add_int(x, c->step);
    add_set(x, 0);
    add_set(x, 0);
    add_array(x, 0);
    add_array(x, 0);
}

static size_t public_count(void)
{
    size_t n = 0;

    for (size_t i = 0; i < cache_cmd_count(); i++)
        if (!(cache_cmd_at(i)->flags & CMD_INTERNAL))
            n++;
    return n;
}

/* Whether COMMAND DOCS [name ...] lists c: every public command without
 * names, else the named ones. */
static int docs_wanted(cache_ctx_t *x, const cache_cmd_t *c)
{
    int want = x->argc == 2;

    for (int j = 2; j < x->argc && !want; j++)
        want = arg_eq(&x->argv[j], c->name);
    return want && !(c->flags & CMD_INTERNAL);
}

CMD(cmd_command)
{
    if (x->argc == 1) {
        add_array(x, public_count());
        for (size_t i = 0; i < cache_cmd_count(); i++)
            if (!(cache_cmd_at(i)->flags & CMD_INTERNAL))
                command_info(x, cache_cmd_at(i));
        return;
    }
    if (arg_eq(A(1), "count") && x->argc == 2) {
        add_int(x, (long long)public_count());
    } else if (arg_eq(A(1), "info")) {
        if (x->argc == 2) {
            add_array(x, public_count());
            for (size_t i = 0; i < cache_cmd_count(); i++)
                if (!(cache_cmd_at(i)->flags & CMD_INTERNAL))
                    command_info(x, cache_cmd_at(i));
            return;
        }
        add_array(x, (size_t)x->argc - 2);
        for (int i = 2; i < x->argc; i++) {
            const cache_cmd_t *c = cache_cmd_lookup(A(i)->p, A(i)->len);

            if (c == NULL || (c->flags & CMD_INTERNAL))
                add_null_array(x);
            else
                command_info(x, c);
        }
    } else if (arg_eq(A(1), "docs")) {
        size_t n = 0;

        /* a map name -> {summary, since, group}; in RESP2 a flat array of
         * name, [summary, ..., group, ...] pairs. Count first, then reply. */
        for (size_t i = 0; i < cache_cmd_count(); i++)
            n += docs_wanted(x, cache_cmd_at(i));
        if (x->resp == 3)
            add_map(x, n);
        else
            add_array(x, 2 * n);
        for (size_t i = 0; i < cache_cmd_count(); i++) {
            const cache_cmd_t *c = cache_cmd_at(i);

            if (!docs_wanted(x, c))
                continue;
            add_bulk(x, c->name, strlen(c->name));
            if (x->resp == 3)
                add_map(x, 3);
            else
                add_array(x, 6);
            add_bulk(x, "summary", 7);
            add_bulk(x, c->summary, strlen(c->summary));
            add_bulk(x, "since", 5);
            add_bulk(x, c->since, strlen(c->since));
            add_bulk(x, "group", 5);
            add_bulk(x, c->group, strlen(c->group));
        }
    } else if (arg_eq(A(1), "list") && x->argc == 2) {
        add_array(x, public_count());
        for (size_t i = 0; i < cache_cmd_count(); i++)
            if (!(cache_cmd_at(i)->flags & CMD_INTERNAL))
                add_bulk(x, cache_cmd_at(i)->name, strlen(cache_cmd_at(i)->name));
    } else {
        add_errf(x, "ERR unknown subcommand '%.*s'. Try COMMAND HELP.",
                 (int)(A(1)->len > 128 ? 128 : A(1)->len), A(1)->p);
    }
}

/* ---- INFO ------------------------------------------------------------------------- */

static int want_section(cache_ctx_t *x, const char *name, int dflt)
{
    if (x->argc == 1)
        return dflt;
    for (int i = 1; i < x->argc; i++)
        if (arg_eq(A(i), name) || arg_eq(A(i), "all") || arg_eq(A(i), "everything") ||
            (dflt && arg_eq(A(i), "default")))
            return 1;
    return 0;
}

CMD(cmd_info)
{
    cache_server_t *s = x->srv;
    struct evbuffer *b = evbuffer_new();
    uint64_t up = (core_mono_ms() - s->started_ms) / 1000;
    int first = 1;

    if (b == NULL) {
        add_err(x, "OOM command not allowed when used memory > 'maxmemory'.");
        return;
    }
#define SECTION(title)                  \
    do {                                \
        if (!first)                     \
            evbuffer_add(b, "\r\n", 2); \
        first = 0;                      \
        evbuffer_add_printf(b, "# %s\r\n", title); \
    } while (0)
    if (want_section(x, "server", 1)) {
        struct utsname u;

        uname(&u);
        SECTION("Server");
        evbuffer_add_printf(b,
                            "redis_version:%s\r\noboro_version:%s\r\nredis_mode:standalone\r\n"
                            "os:%s %s %s\r\narch_bits:%d\r\nprocess_id:%d\r\nrun_id:%016llx\r\n"
                            "uptime_in_seconds:%llu\r\nuptime_in_days:%llu\r\n",
                            REDIS_COMPAT_VERSION, OBORO_VERSION, u.sysname, u.release, u.machine,
                            (int)(sizeof(void *) * 8), (int)getpid(), (unsigned long long)s->origin,
                            (unsigned long long)up, (unsigned long long)(up / 86400));
    }
    if (want_section(x, "clients", 1)) {
        SECTION("Clients");
        evbuffer_add_printf(b, "connected_clients:%zu\r\nmaxclients:%lld\r\nblocked_clients:0\r\n",
                            s->nclients, s->conf->maxclients);
    }
    if (want_section(x, "memory", 1)) {
        SECTION("Memory");
        core_memreport_info(b);
    }
    if (want_section(x, "stats", 1)) {
        SECTION("Stats");
        evbuffer_add_printf(b,
                            "total_connections_received:%llu\r\ntotal_commands_processed:%llu\r\n"
                            "total_net_input_bytes:%llu\r\ntotal_net_output_bytes:%llu\r\n"
                            "rejected_connections:%llu\r\nexpired_keys:%llu\r\nkeyspace_hits:%llu\r\n"
                            "keyspace_misses:%llu\r\nwrite_batches:%llu\r\nlast_applied_index:%llu\r\n",
                            (unsigned long long)s->stat_conns, (unsigned long long)s->stat_cmds,
                            (unsigned long long)s->stat_in, (unsigned long long)s->stat_out,
                            (unsigned long long)s->stat_rejected, (unsigned long long)s->ks->expired_total,
                            (unsigned long long)s->ks->hits, (unsigned long long)s->ks->misses,
                            (unsigned long long)s->stat_batches, (unsigned long long)s->last_index);
    }
    if (want_section(x, "keyspace", 1)) {
        SECTION("Keyspace");
        if (cache_ks_size(s->ks) > 0)
            evbuffer_add_printf(b, "db0:keys=%zu,expires=%zu,avg_ttl=0\r\n", cache_ks_size(s->ks),
                                cache_ks_volatile(s->ks));
    }
    if (s->log->info != NULL && want_section(x, "raft", 1)) {
        SECTION("Raft");
        s->log->info(s->log_impl, b);
    }
#undef SECTION
    add_bulk(x, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
}

/* ---- CONFIG ------------------------------------------------------------------------ */

CMD(cmd_config)
{
    core_conf_t *all = x->srv->all;

    if (all == NULL) {
        add_err(x, "ERR CONFIG is not available on this server");
        return;
    }
    if (arg_eq(A(1), "get") && x->argc >= 3) {
        size_t at = add_deferred_array(x), n = 0;
        const core_conf_def_t *d;
        char val[1024];

        /* what clients such as redis-benchmark ask about persistence: the
         * cache itself persists nothing (Raft keeps its own log) */
        static const char *const compat[][2] = {{"save", ""}, {"appendonly", "no"}, {"databases", "1"}};

        for (size_t i = 0; i < sizeof(compat) / sizeof(compat[0]); i++) {
            int hit = 0;

            for (int j = 2; j < x->argc && !hit; j++)
                hit = cache_glob(A(j)->p, A(j)->len, compat[i][0], strlen(compat[i][0]), 1);
            if (hit) {
                add_bulk(x, compat[i][0], strlen(compat[i][0]));
                add_bulk(x, compat[i][1], strlen(compat[i][1]));
                n++;
            }
        }
        for (size_t i = 0; (d = core_conf_at(all, i)) != NULL; i++) {
            int hit = 0;

            for (int j = 2; j < x->argc && !hit; j++)
                hit = cache_glob(A(j)->p, A(j)->len, d->name, strlen(d->name), 1);
            if (!hit || core_conf_get(all, d->name, val, sizeof(val)) != 0)
                continue;
            add_bulk(x, d->name, strlen(d->name));
            add_bulk(x, val, strlen(val));
            n++;
        }
        if (x->resp == 3) {
            /* rewrite the header as a map of n pairs */
            cache_out_t *o = x->out;
            char hdr[RESP_HDR_MAX];
            size_t hl = (size_t)(resp_encode_hdr(hdr, '%', (long long)n) - hdr);

            if (at != (size_t)-1 && !o->oom) {
                memmove(o->p + at + hl, o->p + at + RESP_HDR_MAX, o->len - at - RESP_HDR_MAX);
                memcpy(o->p + at, hdr, hl);
                o->len -= RESP_HDR_MAX - hl;
            }
            return;
        }
        set_deferred_len(x, at, n * 2);
        return;
    }
    if (arg_eq(A(1), "set") && x->argc >= 4) {
        if (x->argc % 2 != 0) {
            add_err(x, "ERR wrong number of arguments for 'config|set' command");
            return;
        }
        for (int j = 2; j < x->argc; j += 2) {
            char name[128], val[4096], err[256];
            const core_conf_def_t *d;

            if (A(j)->len >= sizeof(name) || A(j + 1)->len >= sizeof(val)) {
                add_errf(x, "ERR Unknown option or number of arguments for CONFIG SET - '%.*s'",
                         (int)(A(j)->len > 128 ? 128 : A(j)->len), A(j)->p);
                return;
            }
            lower_name(name, A(j), sizeof(name));
            memcpy(val, A(j + 1)->p, A(j + 1)->len);
            val[A(j + 1)->len] = '\0';
            d = core_conf_find(all, name);
            if (d == NULL || !(d->flags & CORE_CONF_RUNTIME)) {
                add_errf(x, "ERR Unknown option or number of arguments for CONFIG SET - '%s'", name);
                return;
            }
            err[0] = '\0';
            if (core_conf_set(all, name, val, err, sizeof(err)) != 0) {
                add_errf(x, "ERR CONFIG SET failed (possibly related to argument '%s') - %s", name,
                         err[0] ? err : "invalid value");
                return;
            }
            if (d->on_change != NULL)
                d->on_change(d, d->arg);
        }
        add_ok(x);
        return;
    }
    if (arg_eq(A(1), "resetstat") && x->argc == 2) {
        x->srv->stat_cmds = x->srv->stat_conns = x->srv->stat_rejected = 0;
        x->srv->stat_in = x->srv->stat_out = 0;
        x->ks->hits = x->ks->misses = x->ks->expired_total = 0;
        add_ok(x);
        return;
    }
    if (arg_eq(A(1), "get") || arg_eq(A(1), "set") || arg_eq(A(1), "resetstat")) {
        char nm[32];

        lower_name(nm, A(1), sizeof(nm));
        add_errf(x, "ERR wrong number of arguments for 'config|%s' command", nm);
        return;
    }
    add_errf(x, "ERR unknown subcommand '%.*s'. Try CONFIG HELP.", (int)(A(1)->len > 128 ? 128 : A(1)->len),
             A(1)->p);
}
