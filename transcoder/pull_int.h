/* transcoder/pull internals: the pure parts (rules, URL templates,
 * timestamp normalisation, backoff), exposed for unit tests. */
#ifndef TC_PULL_INT_H
#define TC_PULL_INT_H

#include <stddef.h>
#include <stdint.h>

typedef enum tc_pull_mode {
    TC_PULL_ON_DEMAND = 0,
    TC_PULL_ALWAYS = 1,
} tc_pull_mode_t;

#define TC_PULL_PATTERN_MAX 160
#define TC_PULL_URL_MAX 1024

typedef struct tc_pull_rule {
    char pattern[TC_PULL_PATTERN_MAX];   /* "app/name-glob" */
    char url[TC_PULL_URL_MAX];           /* template with $app, $name */
    tc_pull_mode_t mode;
} tc_pull_rule_t;

/* Parse "PATTERN URL-TEMPLATE [on-demand|always]" (fields separated by
 * blanks). PATTERN must be APP/NAME where both parts are non-empty; an
 * always rule names one stream (no '*', '?' or '['). Returns 0, or
 * -EINVAL with *why set to a static reason. */
int tc_pull_rule_parse(const char *text, tc_pull_rule_t *out, const char **why);

/* Nonzero when the stream app/name matches the rule's pattern ('*' and
 * '?' do not match '/'). */
int tc_pull_rule_match(const tc_pull_rule_t *r, const char *app, const char *name);

/* Nonzero for a name that may be substituted into a URL: 1..99 bytes of
 * [A-Za-z0-9_.-], not starting with '.'. */
int tc_pull_name_valid(const char *s);

/* Expand $app and $name (also ${app}, ${name}) in tmpl into out. Returns
 * the length, or -ENAMETOOLONG when out is too small. */
int tc_pull_url_expand(const char *tmpl, const char *app, const char *name, char *out,
                       size_t outlen);

/* Timestamp normaliser of one connection to an origin: maps input
 * timestamps (ms, any origin, possibly wrapping or jumping) to an output
 * timeline that starts at 0 and never goes backwards per track. A jump of
 * more than TC_PULL_TS_JUMP_MS either way (a wrap, an origin restart, a
 * splice) continues the output just after the largest output so far. */
#define TC_PULL_TS_JUMP_MS 5000
typedef struct tc_pull_ts {
    int have;
    int64_t last_in;       /* last input, any track */
    int64_t offset;        /* output = input + offset */
    int64_t last_out[2];   /* per track (0 video, 1 audio) */
    int64_t max_out;
    uint64_t jumps;        /* discontinuities seen */
} tc_pull_ts_t;

/* Output timestamp (ms, >= 0) for an input dts in_ms on track (0 or 1). */
int64_t tc_pull_ts_map(tc_pull_ts_t *t, int track, int64_t in_ms);

/* Delay before reconnect attempt number attempt (1 = first): 1 s doubled
 * each time up to 30 s, minus up to a quarter at random (rnd is any
 * random value). */
uint64_t tc_pull_backoff_ms(unsigned attempt, uint32_t rnd);

/* ---- native RTMP client (pull_rtmp.c) ------------------------------- */

struct event_base;

typedef struct tc_pull_rtmp_url {
    char host[256];
    int port;                  /* 1935 when absent */
    char app[128];
    char stream[512];          /* the rest of the path, query included */
    int numeric;               /* host is an IPv4 or IPv6 literal */
} tc_pull_rtmp_url_t;

/* Split rtmp://HOST[:PORT]/APP/STREAM. Returns 0 or -EINVAL. */
int tc_pull_rtmp_url_parse(const char *url, tc_pull_rtmp_url_t *out);

typedef struct tc_pull_rtmp tc_pull_rtmp_t;

/* Callbacks on the loop thread. done() comes once, last; the client frees
 * itself after it returns. The callbacks may call tc_pull_rtmp_stop(). */
typedef struct tc_pull_rtmp_ops {
    void (*opened)(void *arg);                    /* NetStream.Play.Start */
    void (*tag)(void *arg, uint8_t type, uint32_t ts, uint8_t *body, uint32_t len,
                uint64_t arrival_us);             /* FLV tag body (core_malloc'd, may be
                                                   * NULL if len is 0; ownership
                                                   * passes), normalised ts */
    void (*batch_end)(void *arg);                 /* after each read from the socket */
    void (*done)(void *arg, int opened, const char *why);
} tc_pull_rtmp_ops_t;

/* Connect to u (numeric host) and play its stream. timeout_ms bounds the
 * connect, the handshake and every silence. Returns NULL on -ENOMEM or an
 * address that does not parse; ops and arg are borrowed. */
tc_pull_rtmp_t *tc_pull_rtmp_start(struct event_base *base, const tc_pull_rtmp_url_t *u,
                                   int64_t timeout_ms, const tc_pull_rtmp_ops_t *ops, void *arg);

/* Close without any further callback; *cp = NULL. */
void tc_pull_rtmp_stop(tc_pull_rtmp_t **cp);

#endif
