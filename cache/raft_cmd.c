/* cache/raft_cmd: the Raft node behind a cache server (cache/raft.h) —
 * wiring it to the server's write path (cache/log.h) and keyspace, and the
 * RAFT.* admin commands. */
#include "cache/cache_int.h"
#include "cache/raft.h"

#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void log_info(void *impl, struct evbuffer *out)
{
    cache_raft_info(impl, out);
}

static const cache_log_ops_t raft_log_ops = {
    cache_raft_propose,
    cache_raft_is_leader,
    cache_raft_leader,
    log_info,
};

static void fsm_apply(void *arg, const void *buf, size_t len, uint64_t index)
{
    cache_apply_batch(arg, buf, len, index);
}

/* May run in a forked child: libc malloc (behind evbuffer) is fork-safe. */
static int fsm_save(void *arg, cache_raft_writer_t *w)
{
    struct evbuffer *b = evbuffer_new();
    struct evbuffer_iovec v[16];
    int n, rv;

    if (b == NULL)
        return -ENOMEM;
    /* now 0: every key, expired or not, so the image is the exact state
     * at this index (expiry is replicated as deletes) */
    rv = cache_ks_snapshot(cache_server_ks(arg), b, 0);
    while (rv == 0 && (n = evbuffer_peek(b, -1, NULL, v, 16)) > 0) {
        size_t done = 0;

        for (int i = 0; i < n && i < 16 && rv == 0; i++) {
            rv = cache_raft_write(w, v[i].iov_base, v[i].iov_len);
            done += v[i].iov_len;
        }
        evbuffer_drain(b, done);
    }
    evbuffer_free(b);
    return rv;
}

static int fsm_load(void *arg, const void *buf, size_t len)
{
    return cache_ks_restore(cache_server_ks(arg), buf, len);
}

static int conf_str(core_conf_t *all, const char *name, char *buf, size_t len)
{
    return core_conf_get(all, name, buf, len);
}

/* RESP address followers send clients to: bind:port, or the host of our
 * raft-peers entry when bind is a wildcard. */
static void resp_address(const cache_raft_conf_t *rc, const char *bind, const char *port,
                         char *out, size_t len)
{
    const char *host = bind;
    char peer[256] = "";
    const char *p = rc->peers;
    char idbuf[32];
    size_t idlen = (size_t)snprintf(idbuf, sizeof(idbuf), "%lld=", rc->node_id);

    if (strcmp(bind, "0.0.0.0") == 0 || strcmp(bind, "::") == 0) {
        while (p != NULL && *p != '\0') {
            while (*p == ' ' || *p == ',')
                p++;
            if (strncmp(p, idbuf, idlen) == 0) {
                const char *s = p + idlen, *e = s;

                while (*e != '\0' && *e != ',' && *e != ' ')
                    e++;
                snprintf(peer, sizeof(peer), "%.*s", (int)(e - s), s);
                if (strrchr(peer, ':') != NULL)
                    *strrchr(peer, ':') = '\0';
                host = peer;
                break;
            }
            p = strchr(p, ',');
        }
    }
    snprintf(out, len, "%s:%s", host, port);
}

static size_t fsm_state_bytes(void *arg)
{
    int64_t n = core_mem_tag_live(CORE_TAG_CACHE_KEYS) + core_mem_tag_live(CORE_TAG_CACHE_VALUES) +
                core_mem_tag_live(CORE_TAG_CACHE_EXPIRE);

    return n > 0 ? (size_t)n : 0;
}

void cache_raft_server_fsm(cache_server_t *s, cache_raft_fsm_t *out)
{
    out->arg = s;
    out->apply = fsm_apply;
    out->save = fsm_save;
    out->load = fsm_load;
    out->state_bytes = fsm_state_bytes;
}

int cache_raft_attach(cache_server_t *s, core_loop_t *loop, const cache_raft_conf_t *rc,
                      core_conf_t *all, cache_raft_t **out)
{
    char bind[256], port[32], rport[32], dir[4096], resp[300];
    cache_raft_fsm_t fsm;
    cache_raft_addr_t addr;
    int rv;

    *out = NULL;
    if (all == NULL || conf_str(all, "bind", bind, sizeof(bind)) != 0 ||
        conf_str(all, "port", port, sizeof(port)) != 0 ||
        conf_str(all, "raft-port", rport, sizeof(rport)) != 0 ||
        conf_str(all, "dir", dir, sizeof(dir)) != 0 || rc->node_id <= 0)
        return 0; /* embedded without the daemon's directives: local log */
    cache_raft_server_fsm(s, &fsm);
    resp_address(rc, bind, port, resp, sizeof(resp));
    addr.bind = bind;
    addr.raft_port = atoi(rport);
    addr.dir = dir;
    addr.resp_addr = resp;
    rv = cache_raft_new(out, core_loop_base(loop), rc, &addr, &fsm);
    if (rv != 0)
        return rv;
    cache_server_set_log(s, &raft_log_ops, *out);
    return 0;
}

void cache_raft_detach(cache_server_t *s, cache_raft_t **rp)
{
    if (*rp == NULL)
        return;
    cache_server_set_log(s, NULL, NULL);
    cache_raft_free(rp);
}

/* ---- RAFT.* ------------------------------------------------------------ */

#define A(i) (&x->argv[(i)])

static cache_raft_t *raft_or_reply(cache_ctx_t *x)
{
    cache_raft_t *r = cache_server_raft(x->srv);

    if (r == NULL)
        add_err(x, "ERR Raft is not enabled on this node");
    return r;
}

static void reply_rv(cache_ctx_t *x, cache_raft_t *r, int rv)
{
    char buf[256 + 32];

    switch (rv) {
    case 0:
        add_ok(x);
        break;
    case -ENOTCONN:
        cache_raft_redirect(r, buf, sizeof(buf));
        add_err(x, buf);
        break;
    case -EEXIST:
        add_err(x, "ERR node id or address already in the configuration");
        break;
    case -ENOENT:
        add_err(x, "ERR no such node");
        break;
    case -EBUSY:
        add_err(x, "ERR a configuration change is already in progress");
        break;
    case -EINVAL:
        add_err(x, "ERR invalid node id or address");
        break;
    default:
        add_errf(x, "ERR %s", strerror(-rv));
        break;
    }
}

/* Admin changes complete in the background; RAFT.INFO shows the result
 * and the outcome is logged. */
static void change_done(void *arg, int status)
{
    const char *what = arg;

    if (status == 0)
        core_log_notice("raft", "membership change done", "op=%s", what);
    else
        core_log_warn("raft", "membership change failed", "op=%s error=\"%s\"", what,
                      strerror(-status));
}

static int arg_id(const resp_arg_t *a, uint64_t *id)
{
    long long v;

    if (arg_ll(a, &v) != 0 || v <= 0)
        return -1;
    *id = (uint64_t)v;
    return 0;
}

CMD(cmd_raft_info)
{
    cache_raft_t *r = raft_or_reply(x);
    struct evbuffer *b;

    if (r == NULL)
        return;
    b = evbuffer_new();
    if (b == NULL || evbuffer_add(b, "# Raft\r\n", 8) != 0 || cache_raft_info(r, b) != 0) {
        if (b != NULL)
            evbuffer_free(b);
        add_err(x, "ERR out of memory");
        return;
    }
    add_bulk(x, (const char *)evbuffer_pullup(b, -1), evbuffer_get_length(b));
    evbuffer_free(b);
}

CMD(cmd_raft_node)
{
    cache_raft_t *r = raft_or_reply(x);
    char addr[256];
    uint64_t id;

    if (r == NULL)
        return;
    if (arg_eq(A(1), "add") && x->argc == 4) {
        if (arg_id(A(2), &id) != 0 || A(3)->len == 0 || A(3)->len >= sizeof(addr)) {
            add_err(x, "ERR invalid node id or address");
            return;
        }
        memcpy(addr, A(3)->p, A(3)->len);
        addr[A(3)->len] = '\0';
        reply_rv(x, r, cache_raft_node_add(r, id, addr, change_done, "add"));
    } else if (arg_eq(A(1), "remove") && x->argc == 3) {
        if (arg_id(A(2), &id) != 0) {
            add_err(x, "ERR invalid node id");
            return;
        }
        reply_rv(x, r, cache_raft_node_remove(r, id, change_done, "remove"));
    } else {
        add_err(x, "ERR syntax: RAFT.NODE ADD id host:port | RAFT.NODE REMOVE id");
    }
}

CMD(cmd_raft_transfer)
{
    cache_raft_t *r = raft_or_reply(x);
    uint64_t id = 0;

    if (r == NULL)
        return;
    if (x->argc > 2) {
        add_err(x, "ERR syntax: RAFT.TRANSFER [id]");
        return;
    }
    if (x->argc == 2 && arg_id(A(1), &id) != 0) {
        add_err(x, "ERR invalid node id");
        return;
    }
    reply_rv(x, r, cache_raft_transfer(r, id, change_done, "transfer"));
}

CMD(cmd_raft_snapshot)
{
    cache_raft_t *r = raft_or_reply(x);

    if (r == NULL)
        return;
    reply_rv(x, r, cache_raft_snapshot_now(r));
}
