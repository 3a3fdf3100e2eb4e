/* cache/server: RESP listener and clients.
 *
 * Bootstrap version: answers PING with +PONG, anything else with an error.
 * The full server (proto/resp, command table, keyspace) replaces it. */
#include "cache/cache.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/listener.h>
#include <string.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

typedef struct client {
    struct client *prev, *next;
    struct bufferevent *bev;
    struct cache_server *srv;
} client_t;

struct cache_server {
    struct evconnlistener *lst;
    const cache_conf_t *conf;
    client_t *clients;
};

static void client_free(client_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        c->srv->clients = c->next;
    if (c->next)
        c->next->prev = c->prev;
    bufferevent_free(c->bev);
    core_free(c);
}

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
    return core_conf_add(c, defs, sizeof(defs) / sizeof(defs[0]));
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct evbuffer *in = bufferevent_get_input(bev);
    char *line;
    size_t n;

    while ((line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)) != NULL) {
        if (strcasestr(line, "PING") != NULL)
            bufferevent_write(bev, "+PONG\r\n", 7);
        free(line);
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
        client_free(arg);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    cache_server_t *s = arg;
    client_t *c = core_calloc(CORE_TAG_RESP_CONN, 1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return;
    }
    c->bev = bufferevent_socket_new(evconnlistener_get_base(l), fd, BEV_OPT_CLOSE_ON_FREE);
    if (c->bev == NULL) {
        close(fd);
        core_free(c);
        return;
    }
    c->srv = s;
    c->next = s->clients;
    if (s->clients)
        s->clients->prev = c;
    s->clients = c;
    bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
    bufferevent_enable(c->bev, EV_READ);
}

int cache_server_new(cache_server_t **out, core_loop_t *loop, int fd,
                     const cache_conf_t *conf, core_conf_t *all)
{
    cache_server_t *s = core_calloc(CORE_TAG_RESP_CONN, 1, sizeof(*s));

    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->conf = conf;
    s->lst = evconnlistener_new(core_loop_base(loop), accept_cb, s,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, fd);
    if (s->lst == NULL) {
        close(fd);
        core_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void cache_server_free(cache_server_t **sp)
{
    cache_server_t *s = *sp;

    if (s == NULL)
        return;
    evconnlistener_free(s->lst);
    while (s->clients != NULL)
        client_free(s->clients);
    core_free(s);
    *sp = NULL;
}
