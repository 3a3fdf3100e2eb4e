/* core/http: the HTTP listener (libevent's evhttp) with a small route table.
 *
 * Handlers run on the loop thread and receive the evhttp request; they own
 * the reply (evhttp_send_reply*, including chunked streaming). Limits: the
 * request line and headers are capped at 8 KiB, bodies at 1 MiB, idle
 * connections time out after 60 s. Anything over a limit is answered by
 * evhttp with an error status and the connection is closed. */
#ifndef CORE_HTTP_H
#define CORE_HTTP_H

#include <stddef.h>

struct event_base;
struct evhttp_request;

typedef struct core_http core_http_t;
typedef void (*core_http_cb)(struct evhttp_request *req, const char *path, void *arg);

/* Serve HTTP on the listening socket fd (ownership passes). Returns NULL on
 * failure (fd is closed then). */
core_http_t *core_http_new(struct event_base *base, int fd);
void core_http_free(core_http_t **hp);

/* Route requests whose path equals pattern, or, when pattern ends with '/',
 * starts with it. Longest match wins. pattern is copied. Returns 0 or
 * -ENOMEM. */
int core_http_route(core_http_t *h, const char *pattern, core_http_cb cb, void *arg);

/* Reply with a complete body (copied) and content type. */
void core_http_reply(struct evhttp_request *req, int code, const char *ctype,
                     const char *body, size_t len);

#endif
