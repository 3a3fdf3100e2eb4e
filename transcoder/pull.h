/* transcoder/pull: ingest workers that pull streams from origin servers.
 *
 * "pull PATTERN URL-TEMPLATE [on-demand|always]" rules map stream names
 * ("app/name", PATTERN is a glob where '*' stops at '/') to origin URLs
 * ($app and $name are substituted); any URL libavformat opens will do.
 * An on-demand stream starts when a viewer asks for it and nobody
 * publishes it, and stops after pull-idle-ms without viewers; an always
 * stream starts at boot and is kept alive. Packets reach the hub as the
 * FLV tag bodies an RTMP publisher sends, so the hub and every output
 * treat a pulled stream like a pushed one.
 *
 * Everything here runs on the loop thread except the worker threads,
 * which only run libavformat and post tags back through a queue. */
#ifndef TC_PULL_H
#define TC_PULL_H

#include "core/conf.h"
#include "core/loop.h"
#include "transcoder/tc.h"

typedef struct tc_pull_conf {
    core_conf_list_t rules;        /* "PATTERN URL-TEMPLATE [MODE]" each */
    long long workers;             /* worker threads kept ready; 0: cores */
    long long start_timeout_ms;    /* a viewer waits this long for a keyframe */
    long long idle_ms;             /* an on-demand pull stops this long after its last viewer */
    int rtmp_client;               /* 0 native, 1 libavformat (rtmp:// with an IP) */
    long long timeout_ms;          /* origin silent this long: reconnect */
} tc_pull_conf_t;

/* Register pull, pull-workers, pull-start-timeout-ms, pull-idle-ms,
 * pull-rtmp-client and pull-timeout-ms (storage in *pc, borrowed). publish-grace-ms of the hub
 * is what keeps viewers attached through an origin outage. Returns 0 or
 * the errors of core_conf_add(). */
int tc_pull_conf_register(core_conf_t *c, tc_pull_conf_t *pc);

typedef struct tc_pull tc_pull_t;

/* Parse the rules, start the worker threads and the always-on streams,
 * and hook into srv's hub so that viewers start on-demand streams. srv
 * and conf are borrowed and must outlive the pull. Returns 0 and *out;
 * -EINVAL for a bad rule (err gets "pull 'TEXT': reason"); -ENOMEM;
 * -EAGAIN when a thread cannot be started. */
int tc_pull_new(tc_pull_t **out, tc_server_t *srv, const tc_pull_conf_t *conf, char *err,
                size_t errlen);

/* Stop every pull (waiting viewers get an error, pulled streams are
 * unpublished), interrupt and join the workers, free everything; *pp =
 * NULL. Call before tc_server_free(). */
void tc_pull_free(tc_pull_t **pp);

#endif
