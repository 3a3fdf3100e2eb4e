/* cache/raft: one member of the shard's Raft group (see cache/raft.h).
 *
 * libuv runs inside the libevent loop: an EV_READ|EV_PERSIST event on
 * uv_backend_fd() and a timer armed from uv_backend_timeout() both call
 * pump(), which runs uv_run(UV_RUN_NOWAIT) and re-arms the timer. Anything
 * that hands libuv new work from outside uv_run (a batch, a barrier, a
 * membership change) pumps too, so timers and writes libraft starts are
 * never left waiting for an unrelated wakeup. */
#include "cache/raft_int.h"

#include "core/arena.h"
#include "core/log.h"
#include "core/loop.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <raft/uv.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BATCH_MAX_BYTES (4u << 20)     /* flush a batch early past this */
#define PROPOSAL_MAX_BYTES (64u << 20) /* one proposal */
#define ROUND_POOL_MAX 32

typedef struct waiter {
    struct waiter *next;
    cache_raft_done_cb done;
    void *arg;
} waiter_t;

/* One group-commit round: a batch (raft_apply) or a read barrier
 * (raft_barrier), with the waiters to call back. The waiters live in the
 * round's scoped arena, reset when the round completes. */
typedef struct round {
    union {
        struct raft_apply apply;
        struct raft_barrier barrier;
    } req;
    struct cache_raft *r;
    core_scope_t *scope;
    waiter_t *head, **tail;
    unsigned n;
    struct round *next; /* pool */
} round_t;

/* An admin request (membership change, transfer, node announcement). */
typedef struct admin {
    union {
        struct raft_change change;
        struct raft_transfer transfer;
        struct raft_apply apply;
        struct raft_barrier barrier;
    } req;
    struct cache_raft *r;
    cache_raft_done_cb done;
    void *arg;
    uint64_t id; /* add: the id to promote to voter */
    int promote;
    struct admin *prev, *next; /* in flight */
} admin_t;

struct cache_raft {
    const cache_raft_conf_t *conf;
    struct event_base *base;
    uv_loop_t uv;
    struct raft_uv_transport transport;  /* raft_uv's: tcp with TCP_NODELAY */
    struct raft_uv_transport tcp;        /* raft_uv_tcp underneath */
    raft_uv_accept_cb accept_cb;
    raft_uv_transport_close_cb transport_close_cb;
    struct raft_io io;
    struct raft raft;
    cache_raft_sm_t sm;
    struct event *uv_io, *uv_timer, *flush_ev;
    char address[CACHE_RAFT_ADDR_MAX];   /* our Raft address */
    char resp_addr[CACHE_RAFT_ADDR_MAX]; /* our RESP address */
    int uv_ready, io_ready, transport_ready, raft_ready, closing, closed;
    int lock_fd;                         /* flock on dir/oboro.lock */
    int last_state;
    uint64_t announced_term;
    /* the open batch: filled in this loop iteration, and held across
     * iterations while an append is in flight */
    round_t *cur;
    unsigned char *cur_buf;
    size_t cur_len, cur_cap;
    uint64_t cur_since;                  /* core_mono_ms() when it opened */
    uint64_t timer_at;                   /* uv_now() deadline the timer is armed for */
    /* the reads waiting for this iteration's barrier */
    round_t *reads;
    round_t *pool;
    unsigned pool_n;
    admin_t *admins;
    uint64_t batches, commands;
};

/* ---- configuration ---------------------------------------------------- */

static const char *const read_modes[] = {"linearizable", "leader", NULL};

static const core_conf_def_t defs_tmpl[] = {
    {"node-id", CORE_CONF_INT, "1", "this node's Raft id (listed in raft-peers for a multi-node shard)", NULL, 1, 1LL << 40, NULL, 0, NULL, NULL},
    {"raft-peers", CORE_CONF_STR, "", "the shard's voters as 'id=host:raftport,...', the same on every node (empty: a single-node shard)", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"raft-snapshot-threshold", CORE_CONF_INT, "16384", "log entries (batches) between two snapshots", NULL, 2, 1LL << 30, NULL, 0, NULL, NULL},
    {"raft-snapshot-trailing", CORE_CONF_INT, "1024", "log entries kept after a snapshot (for lagging followers)", NULL, 1, 1LL << 30, NULL, 0, NULL, NULL},
    {"raft-election-timeout", CORE_CONF_INT, "500", "election timeout in ms (randomised between 1x and 2x)", NULL, 50, 60000, NULL, 0, NULL, NULL},
    {"raft-heartbeat-timeout", CORE_CONF_INT, "50", "leader heartbeat interval in ms", NULL, 10, 10000, NULL, 0, NULL, NULL},
    {"raft-read-mode", CORE_CONF_ENUM, "linearizable", "linearizable (reads wait for a quorum barrier) or leader (the leader answers alone)", NULL, 0, 0, read_modes, CORE_CONF_RUNTIME, NULL, NULL},
    {"raft-snapshot-fork", CORE_CONF_BOOL, "yes", "serialise snapshots in a forked child so the loop never stalls", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"raft-snapshot-log-bytes", CORE_CONF_SIZE, "4mb", "also snapshot once the log in memory holds this much and more than the keyspace itself (0: off)", NULL, 0, 1LL << 40, NULL, 0, NULL, NULL},
};
#define N_DEFS (sizeof(defs_tmpl) / sizeof(defs_tmpl[0]))
static core_conf_def_t defs[N_DEFS];

cache_raft_conf_t *cache_raft_conf_daemon(void)
{
    static cache_raft_conf_t conf;

    return &conf;
}

int cache_raft_conf_register(core_conf_t *c, cache_raft_conf_t *rc)
{
    memcpy(defs, defs_tmpl, sizeof(defs));
    defs[0].ptr = &rc->node_id;
    defs[1].ptr = &rc->peers;
    defs[2].ptr = &rc->snapshot_threshold;
    defs[3].ptr = &rc->snapshot_trailing;
    defs[4].ptr = &rc->election_timeout;
    defs[5].ptr = &rc->heartbeat_timeout;
    defs[6].ptr = &rc->read_mode;
    defs[7].ptr = &rc->snapshot_fork;
    defs[8].ptr = &rc->snapshot_log_bytes;
    return core_conf_add(c, defs, N_DEFS);
}

int cache_raft_peers_parse(const char *peers,
                           void (*cb)(void *arg, uint64_t id, const char *addr), void *arg)
{
    uint64_t seen[CACHE_RAFT_MAX_NODES];
    const char *p = peers;
    int n = 0;

    if (peers == NULL)
        return 0;
    while (*p == ' ')
        p++;
    if (*p == '\0')
        return 0;
    for (;;) {
        char addr[CACHE_RAFT_ADDR_MAX];
        const char *end, *colon = NULL;
        uint64_t id = 0;
        size_t len;

        while (*p == ' ')
            p++;
        if (*p < '0' || *p > '9')
            return -EINVAL;
        while (*p >= '0' && *p <= '9') {
            if (id > (UINT64_MAX - 9) / 10)
                return -EINVAL;
            id = id * 10 + (uint64_t)(*p++ - '0');
        }
        if (id == 0 || *p++ != '=')
            return -EINVAL;
        end = p;
        while (*end != '\0' && *end != ',' && *end != ' ') {
            if (*end == ':')
                colon = end;
            end++;
        }
        len = (size_t)(end - p);
        if (colon == NULL || colon == p || colon + 1 == end || len >= sizeof(addr))
            return -EINVAL;
        for (const char *d = colon + 1; d < end; d++)
            if (*d < '0' || *d > '9')
                return -EINVAL;
        if (n == CACHE_RAFT_MAX_NODES)
            return -EINVAL;
        for (int i = 0; i < n; i++)
            if (seen[i] == id)
                return -EINVAL;
        seen[n++] = id;
        memcpy(addr, p, len);
        addr[len] = '\0';
        if (cb != NULL)
            cb(arg, id, addr);
        p = end;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            return n;
        if (*p++ != ',')
            return -EINVAL;
    }
}

/* ---- errors ----------------------------------------------------------- */

static int errno_of(int raft_rv)
{
    switch (raft_rv) {
    case 0:
        return 0;
    case RAFT_NOTLEADER:
    case RAFT_LEADERSHIPLOST:
        return -ENOTCONN;
    case RAFT_SHUTDOWN:
    case RAFT_CANCELED:
        return -ESHUTDOWN;
    case RAFT_NOMEM:
        return -ENOMEM;
    case RAFT_BADID:
    case RAFT_NOTFOUND:
        return -ENOENT;
    case RAFT_DUPLICATEID:
    case RAFT_DUPLICATEADDRESS:
        return -EEXIST;
    case RAFT_CANTCHANGE:
    case RAFT_BUSY:
        return -EBUSY;
    case RAFT_INVALID:
    case RAFT_BADROLE:
        return -EINVAL;
    default:
        return -EIO;
    }
}

/* ---- libuv inside libevent -------------------------------------------- */

static void check_role(cache_raft_t *r);

static void flush_batch(cache_raft_t *r);

/* Nonzero while the disk write of an entry appended on this node has not
 * completed (libraft's last_stored trails its last index). */
static int append_inflight(cache_raft_t *r)
{
    return r->raft.last_stored < raft_last_index(&r->raft);
}

int cache_raft_batch_hold(int leader, int appending, size_t bytes, unsigned proposals,
                          uint64_t held_ms)
{
    if (!leader || !appending)
        return 0;
    if (bytes >= CACHE_RAFT_HOLD_MAX_BYTES || proposals >= CACHE_RAFT_HOLD_MAX_PROPOSALS)
        return 0;
    return held_ms < CACHE_RAFT_HOLD_MAX_MS;
}

static int hold_batch(cache_raft_t *r, uint64_t now_ms)
{
    if (r->cur == NULL || r->closing)
        return 0;
    return cache_raft_batch_hold(raft_state(&r->raft) == RAFT_LEADER, append_inflight(r),
                                 r->cur_len, r->cur->n, now_ms - r->cur_since);
}

/* Follow uv_backend_timeout() with the libevent timer; the timer is only
 * touched when the deadline moved (most pumps leave it where it was). A
 * held batch caps the timeout at the end of its hold. */
static void rearm(cache_raft_t *r)
{
    int t = uv_backend_timeout(&r->uv);
    uint64_t at;
    struct timeval tv;

    if (r->cur != NULL) {
        uint64_t held = core_mono_ms() - r->cur_since;
        int left = held >= CACHE_RAFT_HOLD_MAX_MS ? 0 : (int)(CACHE_RAFT_HOLD_MAX_MS - held);

        if (t < 0 || left < t)
            t = left;
    }
    if (t < 0) {
        if (r->timer_at != UINT64_MAX)
            evtimer_del(r->uv_timer);
        r->timer_at = UINT64_MAX;
        return;
    }
    at = uv_now(&r->uv) + (uint64_t)t;
    if (at == r->timer_at && t > 0 && evtimer_pending(r->uv_timer, NULL))
        return;
    r->timer_at = at;
    tv.tv_sec = t / 1000;
    tv.tv_usec = (t % 1000) * 1000;
    evtimer_add(r->uv_timer, &tv);
}

static void pump(cache_raft_t *r)
{
    uv_run(&r->uv, UV_RUN_NOWAIT);
    if (r->closing)
        return;
    /* the write the open batch waited for is done: propose it now */
    if (r->cur != NULL && !hold_batch(r, core_mono_ms()))
        flush_batch(r);
    check_role(r);
    rearm(r);
}

static void uv_io_cb(evutil_socket_t fd, short what, void *arg)
{
    pump(arg);
}

/* ---- rounds (batches and barriers) ------------------------------------ */

static round_t *round_get(cache_raft_t *r)
{
    round_t *b = r->pool;

    if (b != NULL) {
        r->pool = b->next;
        r->pool_n--;
    } else {
        b = core_calloc(CORE_TAG_RAFT_LOG, 1, sizeof(*b));
        if (b == NULL)
            return NULL;
        b->scope = core_scope_new(CORE_TAG_RAFT_LOG, 4096);
        if (b->scope == NULL) {
            core_free(b);
            return NULL;
        }
    }
    b->r = r;
    b->head = NULL;
    b->tail = &b->head;
    b->n = 0;
    b->next = NULL;
    return b;
}

static void round_put(cache_raft_t *r, round_t *b)
{
    core_scope_reset(b->scope);
    if (r->pool_n >= ROUND_POOL_MAX || r->closing) {
        core_scope_free(&b->scope);
        core_free(b);
        return;
    }
    b->next = r->pool;
    r->pool = b;
    r->pool_n++;
}

static int round_add(round_t *b, cache_raft_done_cb done, void *arg)
{
    waiter_t *w = core_scope_alloc(b->scope, sizeof(*w));

    if (w == NULL)
        return -ENOMEM;
    w->next = NULL;
    w->done = done;
    w->arg = arg;
    *b->tail = w;
    b->tail = &w->next;
    b->n++;
    return 0;
}

/* Call every waiter back in order, then recycle the round. */
static void round_complete(cache_raft_t *r, round_t *b, int status)
{
    for (waiter_t *w = b->head; w != NULL; w = w->next)
        if (w->done != NULL)
            w->done(w->arg, status);
    round_put(r, b);
}

static void apply_cb(struct raft_apply *req, int status, void *result)
{
    round_t *b = req->data;

    round_complete(b->r, b, errno_of(status));
}

static void barrier_cb(struct raft_barrier *req, int status)
{
    round_t *b = req->data;

    round_complete(b->r, b, errno_of(status));
}

/* Turn the batch of this iteration into one log entry. */
static void flush_batch(cache_raft_t *r)
{
    round_t *b = r->cur;
    struct raft_buffer buf;
    size_t pad;
    int rv;

    if (b == NULL)
        return;
    /* libraft wants entry lengths that are multiples of 8; the entry
     * stays in memory until a snapshot, so it gets no spare capacity */
    pad = (8 - r->cur_len % 8) % 8;
    if (r->cur_len + pad != r->cur_cap) {
        unsigned char *p = raft_realloc(r->cur_buf, r->cur_len + pad);

        if (p == NULL) {
            raft_free(r->cur_buf);
            r->cur = NULL;
            r->cur_buf = NULL;
            r->cur_len = r->cur_cap = 0;
            round_complete(r, b, -ENOMEM);
            return;
        }
        r->cur_buf = p;
    }
    memset(r->cur_buf + r->cur_len, 0, pad);
    r->cur_buf[1] = (unsigned char)pad;
    buf.base = r->cur_buf;
    buf.len = r->cur_len + pad;
    r->cur = NULL;
    r->cur_buf = NULL;
    r->cur_len = r->cur_cap = 0;
    b->req.apply.data = b;
    rv = raft_apply(&r->raft, &b->req.apply, &buf, 1, apply_cb);
    if (rv != 0) {
        raft_free(buf.base);
        round_complete(r, b, errno_of(rv));
        return;
    }
    r->batches++;
}

static void flush_reads(cache_raft_t *r)
{
    round_t *b = r->reads;
    int rv;

    if (b == NULL)
        return;
    r->reads = NULL;
    if (r->conf->read_mode == CACHE_RAFT_READ_LEADER) {
        round_complete(r, b, raft_state(&r->raft) == RAFT_LEADER ? 0 : -ENOTCONN);
        return;
    }
    b->req.barrier.data = b;
    rv = raft_barrier(&r->raft, &b->req.barrier, barrier_cb);
    if (rv != 0)
        round_complete(r, b, errno_of(rv));
}

/* End of a loop iteration with proposals or reads: the batch becomes an
 * entry unless it waits for the append in flight (pump() proposes it when
 * that write completes). */
static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    cache_raft_t *r = arg;
    int fed = 0;

    if (r->cur != NULL && !hold_batch(r, core_mono_ms())) {
        flush_batch(r);
        fed = 1;
    }
    if (r->reads != NULL) {
        flush_reads(r);
        fed = 1;
    }
    /* a held batch gave libuv nothing to do: no uv_run, and the timer
     * already ends its hold */
    if (fed)
        pump(r);
    else
        rearm(r);
}

static void schedule_flush(cache_raft_t *r)
{
    if (!event_pending(r->flush_ev, EV_TIMEOUT, NULL))
        event_active(r->flush_ev, EV_TIMEOUT, 0);
}

int cache_raft_propose(void *impl, const void *buf, size_t len, cache_raft_done_cb done, void *arg)
{
    cache_raft_t *r = impl;
    int rv;

    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return -ENOTCONN;
    if (len > PROPOSAL_MAX_BYTES)
        return -E2BIG;
    if (r->cur != NULL && r->cur_len + len > BATCH_MAX_BYTES)
        flush_batch(r);
    if (r->cur == NULL) {
        r->cur = round_get(r);
        if (r->cur == NULL)
            return -ENOMEM;
        r->cur_cap = len + 16 > 1024 ? len + 16 : 1024;
        r->cur_buf = raft_malloc(r->cur_cap);
        if (r->cur_buf == NULL) {
            round_put(r, r->cur);
            r->cur = NULL;
            r->cur_cap = 0;
            return -ENOMEM;
        }
        memset(r->cur_buf, 0, CACHE_RAFT_ENTRY_HDR);
        r->cur_buf[0] = CACHE_RAFT_ENTRY_BATCH;
        r->cur_len = CACHE_RAFT_ENTRY_HDR;
        r->cur_since = core_mono_ms();
    }
    if (r->cur_len + 4 + len > r->cur_cap) {
        size_t cap = r->cur_cap * 2;
        unsigned char *p;

        while (cap < r->cur_len + 4 + len)
            cap *= 2;
        p = raft_realloc(r->cur_buf, cap);
        if (p == NULL)
            return -ENOMEM;
        r->cur_buf = p;
        r->cur_cap = cap;
    }
    rv = round_add(r->cur, done, arg);
    if (rv != 0)
        return rv;
    r->cur_buf[r->cur_len] = (unsigned char)len;
    r->cur_buf[r->cur_len + 1] = (unsigned char)(len >> 8);
    r->cur_buf[r->cur_len + 2] = (unsigned char)(len >> 16);
    r->cur_buf[r->cur_len + 3] = (unsigned char)(len >> 24);
    memcpy(r->cur_buf + r->cur_len + 4, buf, len);
    r->cur_len += 4 + len;
    r->commands++;
    /* every iteration with a proposal ends in flush_cb, which proposes the
     * batch or holds it (bounds checked there) */
    schedule_flush(r);
    return 0;
}

/* This node leads and is the configuration's only voter. Nobody else can
 * be elected until a configuration entry adds a voter, and libraft uses a
 * configuration as soon as it is appended: until then every committed
 * write is applied before it is acknowledged, so the keyspace is the
 * committed state and a read needs no barrier (which would append an entry
 * and wait for the disk). */
static int sole_voter(cache_raft_t *r)
{
    const struct raft_configuration *cfg = &r->raft.configuration;
    unsigned voters = 0;
    int self = 0;

    if (raft_state(&r->raft) != RAFT_LEADER)
        return 0;
    for (unsigned i = 0; i < cfg->n; i++)
        if (cfg->servers[i].role == RAFT_VOTER) {
            voters++;
            self |= cfg->servers[i].id == r->raft.id;
        }
    return voters == 1 && self;
}

int cache_raft_linearizable(cache_raft_t *r)
{
    return r->conf->read_mode == CACHE_RAFT_READ_LINEARIZABLE && !sole_voter(r);
}

int cache_raft_barrier(cache_raft_t *r, cache_raft_done_cb done, void *arg)
{
    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return -ENOTCONN;
    if (r->reads == NULL) {
        r->reads = round_get(r);
        if (r->reads == NULL)
            return -ENOMEM;
        schedule_flush(r);
    }
    return round_add(r->reads, done, arg);
}

int cache_raft_is_leader(void *impl)
{
    cache_raft_t *r = impl;

    return !r->closing && raft_state(&r->raft) == RAFT_LEADER;
}

const char *cache_raft_leader(void *impl)
{
    cache_raft_t *r = impl;
    const char *addr;
    raft_id id;

    if (r->closing)
        return NULL;
    raft_leader(&r->raft, &id, &addr);
    if (id == 0)
        return NULL;
    if (id == r->raft.id)
        return r->resp_addr;
    return cache_raft_sm_node_addr(&r->sm, id);
}

size_t cache_raft_redirect(cache_raft_t *r, char *buf, size_t len)
{
    const char *leader = cache_raft_leader(r);
    int n;

    if (leader != NULL && !cache_raft_is_leader(r))
        n = snprintf(buf, len, "MOVED 0 %s", leader);
    else
        n = snprintf(buf, len, "CLUSTERDOWN No raft leader");
    if (n < 0)
        return 0;
    return (size_t)n < len ? (size_t)n : len - 1;
}

/* ---- admin ------------------------------------------------------------ */

static admin_t *admin_new(cache_raft_t *r, cache_raft_done_cb done, void *arg)
{
    admin_t *a = core_calloc(CORE_TAG_RAFT_LOG, 1, sizeof(*a));

    if (a == NULL)
        return NULL;
    a->r = r;
    a->done = done;
    a->arg = arg;
    a->next = r->admins;
    if (r->admins != NULL)
        r->admins->prev = a;
    r->admins = a;
    return a;
}

static void admin_finish(admin_t *a, int status)
{
    cache_raft_t *r = a->r;

    if (a->prev != NULL)
        a->prev->next = a->next;
    else
        r->admins = a->next;
    if (a->next != NULL)
        a->next->prev = a->prev;
    if (a->done != NULL)
        a->done(a->arg, status);
    core_free(a);
}

/* The end of every admin request: rv is what the libraft call returned.
 * On failure the request is dropped without calling its callback and the
 * error is returned; otherwise the loop is woken so libraft sends it. */
static int admin_submitted(admin_t *a, int rv)
{
    if (rv != 0) {
        a->done = NULL;
        admin_finish(a, 0);
        return errno_of(rv);
    }
    pump(a->r);
    return 0;
}

static void change_cb(struct raft_change *req, int status)
{
    admin_t *a = req->data;
    cache_raft_t *r = a->r;
    int rv;

    if (status == 0 && a->promote) {
        /* added as a spare: now make it a voter (libraft catches it up
         * first) */
        a->promote = 0;
        memset(&a->req.change, 0, sizeof(a->req.change));
        a->req.change.data = a;
        rv = raft_assign(&r->raft, &a->req.change, a->id, RAFT_VOTER, change_cb);
        if (rv == 0) {
            if (!r->closing)
                rearm(r);
            return;
        }
        status = rv;
    }
    admin_finish(a, errno_of(status));
}

int cache_raft_node_add(cache_raft_t *r, uint64_t id, const char *addr,
                        cache_raft_done_cb done, void *arg)
{
    admin_t *a;
    int rv;

    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return -ENOTCONN;
    if (id == 0 || addr == NULL || strchr(addr, ':') == NULL || strlen(addr) >= CACHE_RAFT_ADDR_MAX)
        return -EINVAL;
    a = admin_new(r, done, arg);
    if (a == NULL)
        return -ENOMEM;
    a->id = id;
    a->promote = 1;
    a->req.change.data = a;
    rv = raft_add(&r->raft, &a->req.change, id, addr, change_cb);
    return admin_submitted(a, rv);
}

int cache_raft_node_remove(cache_raft_t *r, uint64_t id, cache_raft_done_cb done, void *arg)
{
    admin_t *a;
    int rv;

    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return -ENOTCONN;
    a = admin_new(r, done, arg);
    if (a == NULL)
        return -ENOMEM;
    a->req.change.data = a;
    rv = raft_remove(&r->raft, &a->req.change, id, change_cb);
    return admin_submitted(a, rv);
}

static void transfer_cb(struct raft_transfer *req)
{
    admin_t *a = req->data;
    cache_raft_t *r = a->r;
    raft_id id;
    const char *addr;

    raft_leader(&r->raft, &id, &addr);
    admin_finish(a, r->closing ? -ESHUTDOWN : (id != 0 && id != r->raft.id) ? 0 : -ETIMEDOUT);
}

int cache_raft_transfer(cache_raft_t *r, uint64_t id, cache_raft_done_cb done, void *arg)
{
    admin_t *a;
    int rv;

    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return -ENOTCONN;
    a = admin_new(r, done, arg);
    if (a == NULL)
        return -ENOMEM;
    a->req.transfer.data = a;
    rv = raft_transfer(&r->raft, &a->req.transfer, id, transfer_cb);
    return admin_submitted(a, rv);
}

static void announce_cb(struct raft_apply *req, int status, void *result)
{
    admin_t *a = req->data;

    if (status != 0 && status != RAFT_SHUTDOWN)
        core_log_info("raft", "leader address not published", "error=\"%s\"",
                      raft_strerror(status));
    admin_finish(a, errno_of(status));
}

/* A new leader publishes the RESP address followers redirect clients to. */
static void announce(cache_raft_t *r)
{
    unsigned char body[8 + CACHE_RAFT_ADDR_MAX];
    struct raft_buffer buf;
    int n = cache_raft_node_encode(r->raft.id, r->resp_addr, body, sizeof(body));
    admin_t *a;

    if (n < 0 || cache_raft_entry_new(CACHE_RAFT_ENTRY_NODE, body, (size_t)n, &buf) != 0)
        return;
    a = admin_new(r, NULL, NULL);
    if (a == NULL) {
        raft_free(buf.base);
        return;
    }
    a->req.apply.data = a;
    if (raft_apply(&r->raft, &a->req.apply, &buf, 1, announce_cb) != 0) {
        raft_free(buf.base);
        admin_finish(a, 0);
    }
}

static const char *role_name(int state)
{
    switch (state) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "unavailable";
    }
}

static void check_role(cache_raft_t *r)
{
    int st = raft_state(&r->raft);

    if (st == r->last_state)
        return;
    if (st == RAFT_LEADER || r->last_state == RAFT_LEADER)
        core_log_notice("raft", st == RAFT_LEADER ? "became leader" : "lost leadership",
                        "id=%llu term=%llu role=%s", (unsigned long long)r->raft.id,
                        (unsigned long long)r->raft.current_term, role_name(st));
    r->last_state = st;
    if (st == RAFT_LEADER && r->announced_term != r->raft.current_term) {
        /* always: the entry is also this term's first, and committing it
         * commits whatever earlier terms left uncommitted */
        r->announced_term = r->raft.current_term;
        announce(r);
    }
}

int cache_raft_snapshot_now(cache_raft_t *r)
{
    cache_raft_sm_force(&r->sm);
    return 0;
}

static void kick_cb(struct raft_barrier *req, int status)
{
    admin_t *a = req->data;

    admin_finish(a, 0);
}

/* A forked snapshot is ready: an applied entry lets libraft take it. */
static void kick(void *arg)
{
    cache_raft_t *r = arg;
    admin_t *a;

    if (r->closing || raft_state(&r->raft) != RAFT_LEADER)
        return;
    a = admin_new(r, NULL, NULL);
    if (a == NULL)
        return;
    a->req.barrier.data = a;
    if (raft_barrier(&r->raft, &a->req.barrier, kick_cb) != 0)
        admin_finish(a, 0);
}

/* ---- INFO ------------------------------------------------------------- */

void cache_raft_stats(cache_raft_t *r, cache_raft_stats_t *out)
{
    raft_id id;
    const char *addr;

    memset(out, 0, sizeof(*out));
    raft_leader(&r->raft, &id, &addr);
    out->id = r->raft.id;
    out->term = r->raft.current_term;
    out->commit_index = r->raft.commit_index;
    out->applied_index = raft_last_applied(&r->raft);
    out->last_index = raft_last_index(&r->raft);
    out->leader_id = id;
    out->batches_proposed = r->batches;
    out->commands_proposed = r->commands;
    out->snapshots_taken = r->sm.snapshots_taken;
    out->snapshots_restored = r->sm.snapshots_restored;
    out->role = raft_state(&r->raft);
    out->snapshot_pending = r->sm.forced || r->sm.prep != PREP_IDLE;
}

static const char *server_role(int role)
{
    return role == RAFT_VOTER ? "voter" : role == RAFT_STANDBY ? "standby" : "spare";
}

int cache_raft_info(cache_raft_t *r, struct evbuffer *out)
{
    cache_raft_stats_t st;
    const char *leader = cache_raft_leader(r);
    int rv = 0;

    cache_raft_stats(r, &st);
    rv |= evbuffer_add_printf(out,
                              "raft_node_id:%llu\r\n"
                              "raft_role:%s\r\n"
                              "raft_address:%s\r\n"
                              "raft_term:%llu\r\n"
                              "raft_leader_id:%llu\r\n"
                              "raft_leader:%s\r\n"
                              "raft_commit_index:%llu\r\n"
                              "raft_applied_index:%llu\r\n"
                              "raft_last_log_index:%llu\r\n"
                              "raft_snapshot_index:%llu\r\n"
                              "raft_snapshots_taken:%llu\r\n"
                              "raft_snapshots_restored:%llu\r\n"
                              "raft_batches:%llu\r\n"
                              "raft_proposals:%llu\r\n"
                              "raft_read_mode:%s\r\n"
                              "raft_num_nodes:%u\r\n",
                              (unsigned long long)st.id, role_name(st.role), r->address,
                              (unsigned long long)st.term, (unsigned long long)st.leader_id,
                              leader ? leader : "", (unsigned long long)st.commit_index,
                              (unsigned long long)st.applied_index,
                              (unsigned long long)st.last_index,
                              (unsigned long long)r->raft.log.snapshot.last_index,
                              (unsigned long long)st.snapshots_taken,
                              (unsigned long long)st.snapshots_restored,
                              (unsigned long long)st.batches_proposed,
                              (unsigned long long)st.commands_proposed,
                              read_modes[r->conf->read_mode], r->raft.configuration.n) < 0;
    for (unsigned i = 0; i < r->raft.configuration.n; i++) {
        const struct raft_server *s = &r->raft.configuration.servers[i];
        const char *resp = s->id == r->raft.id ? r->resp_addr : cache_raft_sm_node_addr(&r->sm, s->id);

        rv |= evbuffer_add_printf(out, "raft_node%u:id=%llu,address=%s,role=%s,resp=%s", i,
                                  (unsigned long long)s->id, s->address, server_role(s->role),
                                  resp ? resp : "") < 0;
        if (st.role == RAFT_LEADER && r->raft.leader_state.progress != NULL)
            rv |= evbuffer_add_printf(out, ",match_index=%llu",
                                      (unsigned long long)(s->id == r->raft.id
                                                               ? st.last_index
                                                               : r->raft.leader_state.progress[i].match_index)) < 0;
        rv |= evbuffer_add(out, "\r\n", 2) != 0;
    }
    return rv ? -ENOMEM : 0;
}

/* ---- peer transport: raft_uv_tcp with TCP_NODELAY ---------------------- */

/* raft_uv_tcp leaves Nagle's algorithm on: an AppendEntries written while
 * the previous one is unacknowledged waits for the peer's delayed ACK
 * (40 ms on Linux), which showed as a p99 of 40-45 ms on a busy 3-node
 * shard. This transport wraps raft_uv_tcp and turns TCP_NODELAY on for
 * every peer stream, accepted or connected. */
typedef struct nd_connect {
    struct raft_uv_connect req;  /* handed to raft_uv_tcp */
    struct raft_uv_connect *orig; /* raft_uv's request */
} nd_connect_t;

static void nd_nodelay(struct uv_stream_s *stream)
{
    if (stream != NULL && stream->type == UV_TCP)
        uv_tcp_nodelay((uv_tcp_t *)stream, 1);
}

static int nd_init(struct raft_uv_transport *t, raft_id id, const char *address)
{
    cache_raft_t *r = t->impl;
    int rv = r->tcp.init(&r->tcp, id, address);

    if (rv != 0)
        memcpy(t->errmsg, r->tcp.errmsg, sizeof(t->errmsg));
    return rv;
}

static void nd_accept_cb(struct raft_uv_transport *inner, raft_id id, const char *address,
                         struct uv_stream_s *stream)
{
    cache_raft_t *r = inner->data;

    nd_nodelay(stream);
    r->accept_cb(&r->transport, id, address, stream);
}

static int nd_listen(struct raft_uv_transport *t, raft_uv_accept_cb cb)
{
    cache_raft_t *r = t->impl;
    int rv;

    r->accept_cb = cb;
    rv = r->tcp.listen(&r->tcp, nd_accept_cb);
    if (rv != 0)
        memcpy(t->errmsg, r->tcp.errmsg, sizeof(t->errmsg));
    return rv;
}

static void nd_connect_cb(struct raft_uv_connect *req, struct uv_stream_s *stream, int status)
{
    nd_connect_t *c = req->data;
    struct raft_uv_connect *orig = c->orig;

    core_free(c);
    if (status == 0)
        nd_nodelay(stream);
    orig->cb(orig, stream, status);
}

static int nd_connect(struct raft_uv_transport *t, struct raft_uv_connect *req, raft_id id,
                      const char *address, raft_uv_connect_cb cb)
{
    cache_raft_t *r = t->impl;
    nd_connect_t *c = core_calloc(CORE_TAG_RAFT_LOG, 1, sizeof(*c));
    int rv;

    if (c == NULL)
        return RAFT_NOMEM;
    req->cb = cb;
    c->orig = req;
    c->req.data = c;
    rv = r->tcp.connect(&r->tcp, &c->req, id, address, nd_connect_cb);
    if (rv != 0) {
        memcpy(t->errmsg, r->tcp.errmsg, sizeof(t->errmsg));
        core_free(c);
    }
    return rv;
}

static void nd_close_cb(struct raft_uv_transport *inner)
{
    cache_raft_t *r = inner->data;

    if (r->transport_close_cb != NULL)
        r->transport_close_cb(&r->transport);
}

static void nd_close(struct raft_uv_transport *t, raft_uv_transport_close_cb cb)
{
    cache_raft_t *r = t->impl;

    r->transport_close_cb = cb;
    r->tcp.close(&r->tcp, nd_close_cb);
}

static void nd_setup(cache_raft_t *r)
{
    r->tcp.data = r;
    memset(&r->transport, 0, sizeof(r->transport));
    r->transport.impl = r;
    r->transport.init = nd_init;
    r->transport.listen = nd_listen;
    r->transport.connect = nd_connect;
    r->transport.close = nd_close;
}

/* ---- lifecycle -------------------------------------------------------- */

typedef struct boot {
    struct raft_configuration *cfg;
    uint64_t self;
    const char *self_addr;
    char *out_addr;
    int found, err;
} boot_t;

static void boot_peer(void *arg, uint64_t id, const char *addr)
{
    boot_t *b = arg;

    if (id == b->self) {
        b->found = 1;
        snprintf(b->out_addr, CACHE_RAFT_ADDR_MAX, "%s", addr);
    }
    if (b->cfg != NULL && raft_configuration_add(b->cfg, id, addr, RAFT_VOTER) != 0)
        b->err = 1;
}

/* One process per data directory: two nodes writing one log corrupt it. */
static int lock_dir(cache_raft_t *r, const char *dir)
{
    char path[4096];
    int n = snprintf(path, sizeof(path), "%s/oboro.lock", dir);

    if (n < 0 || (size_t)n >= sizeof(path))
        return -ENAMETOOLONG;
    r->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (r->lock_fd < 0) {
        core_log_error("raft", "cannot open the data directory lock", "path=%s error=\"%s\"", path,
                       strerror(errno));
        return -EIO;
    }
    if (flock(r->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        core_log_error("raft", "the data directory is in use by another oborod", "dir=%s", dir);
        return -EBUSY;
    }
    return 0;
}

/* raft_uv_tcp reports a busy port only as a failed start: check first. */
static int check_port(const char *bind, int port)
{
    int fd = core_listen_tcp(bind, port, 1, NULL);

    if (fd == -EADDRINUSE) {
        core_log_error("raft", "raft-port is already in use", "bind=%s port=%d", bind, port);
        return -EADDRINUSE;
    }
    if (fd >= 0)
        close(fd);
    return 0;
}

/* Number of segments raft_uv has set aside as corrupt ("corrupt-*"). */
static int count_corrupt(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL)
        if (strncmp(e->d_name, "corrupt-", 8) == 0)
            n++;
    closedir(d);
    return n;
}

/* libraft 0.15 can run its I/O close callback twice when the open log
 * segment finishes closing after the I/O layer reported itself closed
 * (upstream issue canonical/raft#341): the second run frees the address,
 * the log and the configuration again. What the first run freed is cleared
 * here, so a second run frees nothing (raft_free(NULL), an empty log and
 * an empty configuration). Seen as a crash at shutdown after a write load. */
static void close_cb(struct raft *raft)
{
    cache_raft_t *r = raft->data;

    raft->address = NULL;
    memset(&raft->log, 0, sizeof(raft->log));
    raft->configuration.servers = NULL;
    raft->configuration.n = 0;
    r->closed = 1;
}

int cache_raft_new(cache_raft_t **out, struct event_base *base, const cache_raft_conf_t *conf,
                   const cache_raft_addr_t *addr, const cache_raft_fsm_t *fsm)
{
    cache_raft_t *r;
    struct raft_configuration cfg;
    boot_t boot = {0};
    int npeers, rv, corrupt = 0;

    cache_raft_heap_install();
    npeers = cache_raft_peers_parse(conf->peers, NULL, NULL);
    if (npeers < 0) {
        core_log_error("raft", "bad raft-peers", "value=\"%s\"", conf->peers);
        return -EINVAL;
    }
    r = core_calloc(CORE_TAG_RAFT_LOG, 1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->conf = conf;
    r->base = base;
    r->lock_fd = -1;
    r->last_state = RAFT_UNAVAILABLE;
    snprintf(r->resp_addr, sizeof(r->resp_addr), "%s", addr->resp_addr);
    snprintf(r->address, sizeof(r->address), "%s:%d", addr->bind, addr->raft_port);
    boot.self = (uint64_t)conf->node_id;
    boot.out_addr = r->address;
    cache_raft_peers_parse(conf->peers, boot_peer, &boot);

    rv = cache_raft_sm_init(&r->sm, fsm, addr->dir, conf->snapshot_fork);
    if (rv != 0)
        goto err;
    rv = lock_dir(r, addr->dir);
    if (rv != 0)
        goto err;
    rv = check_port(addr->bind, addr->raft_port);
    if (rv != 0)
        goto err;
    rv = -ENOMEM;
    if (uv_loop_init(&r->uv) != 0)
        goto err;
    r->uv_ready = 1;
    r->sm.uv = &r->uv;
    if (raft_uv_tcp_init(&r->tcp, &r->uv) != 0)
        goto err;
    r->transport_ready = 1;
    nd_setup(r);
    if (boot.found) {
        char bind[CACHE_RAFT_ADDR_MAX];

        /* listen on bind:raft-port, advertise the raft-peers address */
        snprintf(bind, sizeof(bind), "%s:%d", addr->bind, addr->raft_port);
        if (raft_uv_tcp_set_bind_address(&r->tcp, bind) != 0) {
            core_log_error("raft", "bad bind address", "bind=%s", bind);
            rv = -EINVAL;
            goto err;
        }
    }
    rv = raft_uv_init(&r->io, &r->uv, addr->dir, &r->transport);
    if (rv != 0) {
        core_log_error("raft", "cannot open the Raft data directory", "dir=%s error=\"%s\"",
                       addr->dir, r->io.errmsg);
        rv = -EIO;
        goto err;
    }
    r->io_ready = 1;
    raft_uv_set_connect_retry_delay(&r->io, 100);
    rv = raft_init(&r->raft, &r->io, &r->sm.fsm, (raft_id)conf->node_id, r->address);
    if (rv != 0) {
        core_log_error("raft", "raft_init failed", "error=\"%s\"", raft_errmsg(&r->raft));
        rv = errno_of(rv);
        goto err;
    }
    r->raft_ready = 1;
    r->raft.data = r;
    r->sm.raft = &r->raft;
    r->sm.threshold = (unsigned)conf->snapshot_threshold;
    r->sm.trailing = (unsigned)conf->snapshot_trailing;
    r->sm.log_budget = (uint64_t)conf->snapshot_log_bytes;
    r->sm.kick = kick;
    r->sm.kick_arg = r;
    raft_set_election_timeout(&r->raft, (unsigned)conf->election_timeout);
    raft_set_heartbeat_timeout(&r->raft, (unsigned)conf->heartbeat_timeout);
    raft_set_snapshot_threshold(&r->raft, (unsigned)conf->snapshot_threshold);
    raft_set_snapshot_trailing(&r->raft, (unsigned)conf->snapshot_trailing);
    raft_set_pre_vote(&r->raft, true);

    if (npeers == 0 || boot.found) {
        raft_configuration_init(&cfg);
        if (npeers == 0)
            rv = raft_configuration_add(&cfg, r->raft.id, r->address, RAFT_VOTER);
        else {
            boot.cfg = &cfg;
            cache_raft_peers_parse(conf->peers, boot_peer, &boot);
            rv = boot.err ? RAFT_NOMEM : 0;
        }
        if (rv == 0)
            rv = raft_bootstrap(&r->raft, &cfg);
        raft_configuration_close(&cfg);
        if (rv == 0)
            core_log_notice("raft", "bootstrapped a new log", "id=%llu voters=%d dir=%s",
                            (unsigned long long)r->raft.id, npeers ? npeers : 1, addr->dir);
        else if (rv != RAFT_CANTBOOTSTRAP) {
            core_log_error("raft", "bootstrap failed", "dir=%s error=\"%s\"", addr->dir,
                           raft_errmsg(&r->raft));
            rv = -EIO;
            goto err;
        }
    } else {
        core_log_notice("raft", "not in raft-peers: waiting to be added with RAFT.NODE ADD",
                        "id=%llu address=%s", (unsigned long long)r->raft.id, r->address);
    }
    corrupt = count_corrupt(addr->dir);
    rv = raft_start(&r->raft);
    corrupt = count_corrupt(addr->dir) - corrupt;
    if (corrupt > 0)
        core_log_warn("raft", "unreadable log segments (a torn tail after a crash, or damage) were set aside as corrupt-* files; entries in them come back from the leader, on a single node they are lost",
                      "dir=%s segments=%d", addr->dir, corrupt);
    if (rv != 0) {
        core_log_error("raft", "cannot load the Raft log", "dir=%s error=\"%s\"", addr->dir,
                       raft_errmsg(&r->raft));
        rv = rv == RAFT_NOMEM ? -ENOMEM : strstr(raft_errmsg(&r->raft), "in use") ? -EADDRINUSE : -EIO;
        goto err;
    }
    rv = -ENOMEM;
    r->uv_io = event_new(base, uv_backend_fd(&r->uv), EV_READ | EV_PERSIST, uv_io_cb, r);
    r->uv_timer = evtimer_new(base, uv_io_cb, r);
    r->flush_ev = event_new(base, -1, 0, flush_cb, r);
    if (r->uv_io == NULL || r->uv_timer == NULL || r->flush_ev == NULL ||
        event_add(r->uv_io, NULL) != 0)
        goto err;
    pump(r);
    core_log_notice("raft", "started", "id=%llu address=%s term=%llu last_index=%llu applied=%llu",
                    (unsigned long long)r->raft.id, r->address,
                    (unsigned long long)r->raft.current_term,
                    (unsigned long long)raft_last_index(&r->raft),
                    (unsigned long long)raft_last_applied(&r->raft));
    *out = r;
    return 0;

err:
    cache_raft_free(&r);
    return rv;
}

void cache_raft_free(cache_raft_t **rp)
{
    cache_raft_t *r = *rp;

    if (r == NULL)
        return;
    /* first: the callbacks below may propose again (a client's next
     * pipelined write), which must fail instead of opening a batch */
    r->closing = 1;
    if (r->uv_io != NULL)
        event_free(r->uv_io);
    if (r->uv_timer != NULL)
        event_free(r->uv_timer);
    if (r->flush_ev != NULL)
        event_free(r->flush_ev);
    if (r->raft_ready) {
        /* fails in-flight requests with RAFT_SHUTDOWN, closes the I/O */
        raft_close(&r->raft, close_cb);
        while (!r->closed)
            uv_run(&r->uv, UV_RUN_ONCE);
    } else if (r->io_ready) {
        r->io.close(&r->io, NULL);
    }
    /* after the batches libraft had (their clients' earlier writes), so a
     * client with pipelined writes in both gets its errors in order */
    if (r->cur != NULL) {
        round_t *b = r->cur;

        r->cur = NULL;
        raft_free(r->cur_buf);
        r->cur_buf = NULL;
        round_complete(r, b, -ESHUTDOWN);
    }
    if (r->reads != NULL) {
        round_t *b = r->reads;

        r->reads = NULL;
        round_complete(r, b, -ESHUTDOWN);
    }
    while (r->admins != NULL)
        admin_finish(r->admins, -ESHUTDOWN);
    if (r->io_ready)
        raft_uv_close(&r->io);
    if (r->transport_ready)
        raft_uv_tcp_close(&r->tcp);
    if (r->uv_ready) {
        uv_run(&r->uv, UV_RUN_DEFAULT);
        if (uv_loop_close(&r->uv) != 0)
            core_log_warn("raft", "libuv loop still had handles at close", NULL);
    }
    cache_raft_sm_close(&r->sm);
    if (r->lock_fd >= 0)
        close(r->lock_fd);
    while (r->pool != NULL) {
        round_t *b = r->pool;

        r->pool = b->next;
        core_scope_free(&b->scope);
        core_free(b);
    }
    core_free(r);
    *rp = NULL;
}
