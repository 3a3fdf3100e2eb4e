/* transcoder/server: wiring of the RTMP listener and playback routes.
 *
 * Bootstrap version: accepts RTMP connections and closes them; /live/
 * answers 404. The RTMP sessions and the stream hub replace it. */
#include "transcoder/tc.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/listener.h>
#include <string.h>
#include <unistd.h>

struct tc_server {
    struct evconnlistener *lst;
    const tc_conf_t *conf;
};

static const core_conf_def_t defs_tmpl[] = {
    {"rtmp-chunk-size", CORE_CONF_INT, "4096", "RTMP chunk size oborod sends", NULL, 128, 65536, NULL, 0, NULL, NULL},
    {"rtmp-max-message", CORE_CONF_SIZE, "16mb", "largest RTMP message a peer may send", NULL, 1024, 1LL << 30, NULL, 0, NULL, NULL},
    {"viewer-queue-bytes", CORE_CONF_SIZE, "4mb", "per-viewer output queue before frames are dropped", NULL, 65536, 1LL << 30, NULL, CORE_CONF_RUNTIME, NULL, NULL},
};
static core_conf_def_t defs[sizeof(defs_tmpl) / sizeof(defs_tmpl[0])];

int tc_conf_register(core_conf_t *c, tc_conf_t *tc)
{
    memcpy(defs, defs_tmpl, sizeof(defs));
    defs[0].ptr = &tc->rtmp_chunk_size;
    defs[1].ptr = &tc->rtmp_max_message;
    defs[2].ptr = &tc->viewer_queue_bytes;
    return core_conf_add(c, defs, sizeof(defs) / sizeof(defs[0]));
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                      int socklen, void *arg)
{
    close(fd);
}

int tc_server_new(tc_server_t **out, core_loop_t *loop, int rtmp_fd, core_http_t *http,
                  const tc_conf_t *conf)
{
    tc_server_t *s = core_calloc(CORE_TAG_HUB, 1, sizeof(*s));

    if (s == NULL) {
        close(rtmp_fd);
        return -ENOMEM;
    }
    s->conf = conf;
    s->lst = evconnlistener_new(core_loop_base(loop), accept_cb, s,
                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, -1, rtmp_fd);
    if (s->lst == NULL) {
        close(rtmp_fd);
        core_free(s);
        return -ENOMEM;
    }
    *out = s;
    return 0;
}

void tc_server_free(tc_server_t **sp)
{
    tc_server_t *s = *sp;

    if (s == NULL)
        return;
    evconnlistener_free(s->lst);
    core_free(s);
    *sp = NULL;
}
