/* cache/t_live_fwd: viewer events of a node that is not the leader go to
 * the leader over RESP.
 *
 * A follower cannot propose; its hub still sees viewers join and leave. The
 * events are sent, as the public commands a client would send
 * (PRESENCE.TOUCH with a relative TTL, so the leader's clock sets the
 * deadline; WCOUNT.INCR; WRANK.INCRBY; PRESENCE.LEAVE), on one connection
 * to the leader's RESP address (cache_log_ops_t.leader), authenticating
 * with this node's requirepass (a shard shares its configuration). Replies
 * are read and counted, errors logged (one line per connection). The
 * output queued towards the leader is bounded: past LIVE_FWD_MAX_QUEUE
 * events are dropped and counted, and the TTL ends those sessions. A new
 * leader address, or a broken connection, makes the next event reconnect. */
#include "cache/t_live.h"

#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/util.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#define LIVE_FWD_MAX_QUEUE (4u << 20)   /* bytes waiting for the leader */

struct live_fwd {
    struct bufferevent *bev;
    char addr[128];            /* leader address this connection goes to */
    char bad[128];             /* last address that did not parse (logged once) */
    int logged;                /* an error was logged for this connection */
    uint64_t sent, replies, errors, dropped;
};

static void fwd_close(live_fwd_t *f)
{
    if (f->bev != NULL) {
        bufferevent_free(f->bev);
        f->bev = NULL;
    }
    f->addr[0] = '\0';
    f->logged = 0;
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    live_fwd_t *f = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    struct evbuffer_ptr eol;
    size_t eol_len;

    /* every reply to these commands is one line (+OK, :n, -ERR); read
     * without evbuffer_readln so that no buffer changes allocator hands */
    while ((eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF_STRICT)).pos >= 0) {
        char line[128];
        size_t n = (size_t)eol.pos < sizeof(line) - 1 ? (size_t)eol.pos : sizeof(line) - 1;

        evbuffer_copyout(in, line, n);
        line[n] = '\0';
        evbuffer_drain(in, (size_t)eol.pos + eol_len);
        f->replies++;
        if (line[0] == '-') {
            f->errors++;
            if (!f->logged) {
                core_log_warn("resp", "leader refused a forwarded viewer event", "leader=%s reply=\"%.80s\"",
                              f->addr, line + 1);
                f->logged = 1;
            }
        }
    }
    if (evbuffer_get_length(in) > 64 * 1024) {
        core_log_warn("resp", "leader sent an unexpected reply; forwarding connection closed", "leader=%s",
                      f->addr);
        fwd_close(f);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    live_fwd_t *f = arg;

    if (what & (BEV_EVENT_ERROR | BEV_EVENT_EOF)) {
        core_log_info("resp", "forwarding connection to the leader closed", "leader=%s error=\"%s\"", f->addr,
                      (what & BEV_EVENT_ERROR) ? evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()) : "eof");
        fwd_close(f);
    }
}

static void put_cmd(struct evbuffer *out, int argc, const resp_arg_t *argv)
{
    evbuffer_add_printf(out, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        evbuffer_add_printf(out, "$%zu\r\n", argv[i].len);
        evbuffer_add(out, argv[i].p, argv[i].len);
        evbuffer_add(out, "\r\n", 2);
    }
}

static int fwd_open(live_fwd_t *f, struct event_base *base, const char *addr, const char *pass)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);

    if (evutil_parse_sockaddr_port(addr, (struct sockaddr *)&ss, &sl) != 0) {
        /* numeric addresses only: resolving a name here would block the loop */
        if (strcmp(f->bad, addr) != 0) {
            core_log_warn("resp", "leader address is not numeric; viewer events not forwarded",
                          "leader=\"%.100s\"", addr);
            snprintf(f->bad, sizeof(f->bad), "%s", addr);
        }
        return -ENOTCONN;
    }
    f->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (f->bev == NULL)
        return -ENOMEM;
    bufferevent_setcb(f->bev, read_cb, NULL, event_cb, f);
    if (bufferevent_enable(f->bev, EV_READ | EV_WRITE) != 0 ||
        bufferevent_socket_connect(f->bev, (struct sockaddr *)&ss, sl) != 0) {
        bufferevent_free(f->bev);
        f->bev = NULL;
        return -ECONNREFUSED;
    }
    snprintf(f->addr, sizeof(f->addr), "%s", addr);
    f->logged = 0;
    if (pass != NULL && pass[0] != '\0') {
        resp_arg_t av[2] = {{.p = "AUTH", .len = 4}, {.p = pass, .len = strlen(pass)}};

        put_cmd(bufferevent_get_output(f->bev), 2, av);
    }
    return 0;
}

int live_fwd_send(live_fwd_t **fp, struct event_base *base, const char *leader, const char *pass,
                  int argc, const resp_arg_t *argv)
{
    live_fwd_t *f = *fp;
    int rv;

    if (leader == NULL || leader[0] == '\0')
        return -ENOTCONN;
    if (f == NULL) {
        f = core_calloc(CORE_TAG_RESP_CONN, 1, sizeof(*f));
        if (f == NULL)
            return -ENOMEM;
        *fp = f;
    }
    if (f->bev != NULL && strcmp(f->addr, leader) != 0)
        fwd_close(f);
    if (f->bev == NULL) {
        rv = fwd_open(f, base, leader, pass);
        if (rv != 0)
            return rv;
    }
    if (evbuffer_get_length(bufferevent_get_output(f->bev)) > LIVE_FWD_MAX_QUEUE) {
        f->dropped++;
        return -ENOBUFS;
    }
    put_cmd(bufferevent_get_output(f->bev), argc, argv);
    f->sent++;
    return 0;
}

void live_fwd_free(live_fwd_t **fp)
{
    if (*fp == NULL)
        return;
    fwd_close(*fp);
    core_free(*fp);
    *fp = NULL;
}
