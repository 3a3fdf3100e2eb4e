/* core/loop: libevent base, signals, periodic timers, listeners, clocks. */
#include "core/loop.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

typedef struct hook {
    struct hook *next;
    core_loop_cb cb;
    void *arg;
} hook_t;

typedef struct timer {
    struct timer *next;
    struct event *ev;
    core_loop_cb cb;
    void *arg;
    struct core_loop *loop;
} timer_t_;

struct core_loop {
    struct event_base *base;
    struct event *sigterm, *sigint, *sighup;
    struct event *deadline;
    hook_t *hooks;
    timer_t_ *timers;
    int stopping;
};

static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    core_loop_t *l = arg;

    core_log_warn("loop", "shutdown deadline reached, stopping now", NULL);
    event_base_loopbreak(l->base);
}

void core_loop_shutdown(core_loop_t *l)
{
    struct timeval two = {2, 0}, soon = {0, 20000};

    if (l->stopping)
        return;
    l->stopping = 1;
    core_log_info("loop", "shutting down", NULL);
    l->deadline = evtimer_new(l->base, deadline_cb, l);
    if (l->deadline != NULL)
        evtimer_add(l->deadline, &two);
    for (hook_t *h = l->hooks; h != NULL; h = h->next)
        h->cb(h->arg);
    /* give the hooks' last writes one short turn of the loop */
    event_base_loopexit(l->base, &soon);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    core_loop_t *l = arg;

    if (sig == SIGHUP) {
        int rv = core_log_reopen();

        if (rv != 0)
            core_log_error("loop", "log reopen failed", "error=\"%s\"", strerror(-rv));
        else
            core_log_info("loop", "log reopened", NULL);
        return;
    }
    core_log_info("loop", "signal received", "signal=%s", sig == SIGTERM ? "SIGTERM" : "SIGINT");
    core_loop_shutdown(l);
}

core_loop_t *core_loop_new(void)
{
    core_loop_t *l = core_calloc(CORE_TAG_CORE, 1, sizeof(*l));

    if (l == NULL)
        return NULL;
    signal(SIGPIPE, SIG_IGN);
    l->base = event_base_new();
    if (l->base == NULL)
        goto err;
    l->sigterm = evsignal_new(l->base, SIGTERM, signal_cb, l);
    l->sigint = evsignal_new(l->base, SIGINT, signal_cb, l);
    l->sighup = evsignal_new(l->base, SIGHUP, signal_cb, l);
    if (l->sigterm == NULL || l->sigint == NULL || l->sighup == NULL)
        goto err;
    evsignal_add(l->sigterm, NULL);
    evsignal_add(l->sigint, NULL);
    evsignal_add(l->sighup, NULL);
    return l;
err:
    core_loop_free(&l);
    return NULL;
}

void core_loop_free(core_loop_t **lp)
{
    core_loop_t *l = *lp;

    if (l == NULL)
        return;
    while (l->hooks != NULL) {
        hook_t *h = l->hooks;

        l->hooks = h->next;
        core_free(h);
    }
    while (l->timers != NULL) {
        timer_t_ *t = l->timers;

        l->timers = t->next;
        event_free(t->ev);
        core_free(t);
    }
    if (l->deadline)
        event_free(l->deadline);
    if (l->sigterm)
        event_free(l->sigterm);
    if (l->sigint)
        event_free(l->sigint);
    if (l->sighup)
        event_free(l->sighup);
    if (l->base)
        event_base_free(l->base);
    core_free(l);
    *lp = NULL;
}

struct event_base *core_loop_base(core_loop_t *l)
{
    return l->base;
}

int core_loop_on_shutdown(core_loop_t *l, core_loop_cb cb, void *arg)
{
    hook_t *h = core_malloc(CORE_TAG_CORE, sizeof(*h));

    if (h == NULL)
        return -ENOMEM;
    h->cb = cb;
    h->arg = arg;
    h->next = l->hooks;
    l->hooks = h;
    return 0;
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    timer_t_ *t = arg;

    /* the shutdown hooks have freed the subsystems whose timers these are */
    if (t->loop->stopping)
        return;
    t->cb(t->arg);
}

int core_loop_every(core_loop_t *l, uint64_t period_ms, core_loop_cb cb, void *arg)
{
    timer_t_ *t = core_calloc(CORE_TAG_CORE, 1, sizeof(*t));
    struct timeval tv = {(time_t)(period_ms / 1000), (suseconds_t)(period_ms % 1000) * 1000};

    if (t == NULL)
        return -ENOMEM;
    t->ev = event_new(l->base, -1, EV_PERSIST, timer_cb, t);
    if (t->ev == NULL) {
        core_free(t);
        return -ENOMEM;
    }
    t->cb = cb;
    t->arg = arg;
    t->loop = l;
    t->next = l->timers;
    l->timers = t;
    event_add(t->ev, &tv);
    return 0;
}

int core_loop_run(core_loop_t *l)
{
    return event_base_dispatch(l->base) < 0 ? -EIO : 0;
}

int core_loop_stopping(const core_loop_t *l)
{
    return l->stopping;
}

int core_listen_tcp(const char *host, int port, int backlog, int *bound_port)
{
    struct addrinfo hints, *res = NULL;
    char portstr[16];
    int fd = -1, rv, one = 1;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%d", port);
    rv = getaddrinfo(host, portstr, &hints, &res);
    if (rv != 0)
        return -EADDRNOTAVAIL;
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rv = -errno;
        goto out;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, backlog) != 0) {
        rv = -errno;
        close(fd);
        goto out;
    }
    if (bound_port != NULL) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);

        getsockname(fd, (struct sockaddr *)&ss, &sl);
        *bound_port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                     : ((struct sockaddr_in *)&ss)->sin_port);
    }
    rv = fd;
out:
    freeaddrinfo(res);
    return rv;
}

uint64_t core_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t core_mono_ms(void)
{
    return core_mono_us() / 1000u;
}

uint64_t core_wall_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
