/* core/http: evhttp wrapper with prefix routes. */
#include "core/http.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <string.h>
#include <unistd.h>

typedef struct route {
    char *pattern;
    size_t len;
    int prefix;
    core_http_cb cb;
    void *arg;
} route_t;

struct core_http {
    struct evhttp *http;
    route_t *routes;
    size_t nroutes;
};

static const char *reason(int code)
{
    switch (code) {
    case 200: return "OK";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return code >= 500 ? "Server Error" : "";
    }
}

void core_http_reply(struct evhttp_request *req, int code, const char *ctype,
                     const char *body, size_t len)
{
    struct evbuffer *b = evbuffer_new();

    if (b == NULL) {
        evhttp_send_error(req, 500, NULL);
        return;
    }
    if (ctype != NULL)
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
    evbuffer_add(b, body, len);
    evhttp_send_reply(req, code, reason(code), b);
    evbuffer_free(b);
}

static void dispatch(struct evhttp_request *req, void *arg)
{
    core_http_t *h = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    route_t *best = NULL;

    if (path == NULL || path[0] == '\0')
        path = "/";
    for (size_t i = 0; i < h->nroutes; i++) {
        route_t *r = &h->routes[i];
        int hit = r->prefix ? strncmp(path, r->pattern, r->len) == 0 : strcmp(path, r->pattern) == 0;

        if (hit && (best == NULL || r->len > best->len))
            best = r;
    }
    if (best == NULL) {
        static const char nf[] = "{\"error\":\"not found\"}\n";

        core_http_reply(req, 404, "application/json", nf, sizeof(nf) - 1);
        return;
    }
    best->cb(req, path, best->arg);
}

core_http_t *core_http_new(struct event_base *base, int fd)
{
    core_http_t *h = core_calloc(CORE_TAG_HTTP, 1, sizeof(*h));

    if (h == NULL) {
        close(fd);
        return NULL;
    }
    h->http = evhttp_new(base);
    if (h->http == NULL || evhttp_accept_socket(h->http, fd) != 0) {
        close(fd);
        core_http_free(&h);
        return NULL;
    }
    evhttp_set_max_headers_size(h->http, 8192);
    evhttp_set_max_body_size(h->http, 1 << 20);
    evhttp_set_timeout(h->http, 60);
    evhttp_set_allowed_methods(h->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                                            EVHTTP_REQ_OPTIONS | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(h->http, dispatch, h);
    return h;
}

void core_http_free(core_http_t **hp)
{
    core_http_t *h = *hp;

    if (h == NULL)
        return;
    if (h->http != NULL)
        evhttp_free(h->http);
    for (size_t i = 0; i < h->nroutes; i++)
        core_free(h->routes[i].pattern);
    core_free(h->routes);
    core_free(h);
    *hp = NULL;
}

int core_http_route(core_http_t *h, const char *pattern, core_http_cb cb, void *arg)
{
    route_t *r = core_realloc(CORE_TAG_HTTP, h->routes, (h->nroutes + 1) * sizeof(*r));

    if (r == NULL)
        return -ENOMEM;
    h->routes = r;
    r = &h->routes[h->nroutes];
    r->pattern = core_strdup(CORE_TAG_HTTP, pattern);
    if (r->pattern == NULL)
        return -ENOMEM;
    r->len = strlen(pattern);
    r->prefix = r->len > 0 && pattern[r->len - 1] == '/';
    r->cb = cb;
    r->arg = arg;
    h->nroutes++;
    return 0;
}
