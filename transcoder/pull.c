/* transcoder/pull: ingest workers pulling streams from origin servers.
 *
 * One pulled stream is a pull_stream_t on the loop thread; each
 * connection attempt to its origin is a job_t that a worker thread runs:
 * libavformat demuxes the origin, timestamps are normalised, and the FLV
 * muxer (writing into memory) turns every packet into the FLV tag body an
 * RTMP publisher would send (AVCC H.264, raw AAC with its sequence
 * headers, onMetaData). Tags travel to the loop through a mutex-protected
 * queue and an eventfd, and enter the hub through tc_hub_push(), exactly
 * like an RTMP publisher's messages.
 *
 * Ownership: the loop creates and frees jobs. A worker owns a job's
 * libavformat state while it runs it and posts MSG_DONE last; the loop
 * frees the job when that message arrives. A job whose stream stopped
 * (idle, shutdown) is detached (job->ps = NULL) and told to stop; its
 * remaining messages are dropped. */
#include "transcoder/pull.h"

#include "transcoder/llhls.h"
#include "transcoder/pull_int.h"
#include "transcoder/tc_int.h"

#include "core/arena.h"
#include "core/log.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fnmatch.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/* ---- rules, names, URL templates ---------------------------------------- */

int tc_pull_name_valid(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len >= 100 || s[0] == '.')
        return 0;
    for (const char *p = s; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return 0;
    return 1;
}

/* Next blank-separated field of *p into out; 0, or -1 if none/too long. */
static int next_field(const char **p, char *out, size_t outlen)
{
    const char *s = *p, *e;

    while (*s == ' ' || *s == '\t')
        s++;
    if (*s == '\0')
        return -1;
    for (e = s; *e && *e != ' ' && *e != '\t'; e++)
        ;
    if ((size_t)(e - s) >= outlen)
        return -2;
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    *p = e;
    return 0;
}

int tc_pull_rule_parse(const char *text, tc_pull_rule_t *out, const char **why)
{
    const char *p = text, *slash;
    char mode[32];
    int rv;

    memset(out, 0, sizeof(*out));
    rv = next_field(&p, out->pattern, sizeof(out->pattern));
    if (rv != 0) {
        *why = rv == -1 ? "expected PATTERN URL-TEMPLATE [on-demand|always]" : "pattern too long";
        return -EINVAL;
    }
    rv = next_field(&p, out->url, sizeof(out->url));
    if (rv != 0) {
        *why = rv == -1 ? "missing URL template" : "URL template too long";
        return -EINVAL;
    }
    out->mode = TC_PULL_ON_DEMAND;
    rv = next_field(&p, mode, sizeof(mode));
    if (rv == 0) {
        if (strcmp(mode, "always") == 0) {
            out->mode = TC_PULL_ALWAYS;
        } else if (strcmp(mode, "on-demand") != 0) {
            *why = "mode must be on-demand or always";
            return -EINVAL;
        }
        if (next_field(&p, mode, sizeof(mode)) != -1) {
            *why = "unexpected text after the mode";
            return -EINVAL;
        }
    } else if (rv == -2) {
        *why = "mode must be on-demand or always";
        return -EINVAL;
    }
    slash = strchr(out->pattern, '/');
    if (slash == NULL || slash == out->pattern || slash[1] == '\0' || strchr(slash + 1, '/') != NULL) {
        *why = "pattern must be APP/NAME (e.g. live/*)";
        return -EINVAL;
    }
    if (strstr(out->url, "://") == NULL) {
        *why = "URL template must have a scheme (rtmp://, http://, ...)";
        return -EINVAL;
    }
    if (out->mode == TC_PULL_ALWAYS) {
        char app[TC_PULL_PATTERN_MAX];

        snprintf(app, sizeof(app), "%.*s", (int)(slash - out->pattern), out->pattern);
        if (!tc_pull_name_valid(app) || !tc_pull_name_valid(slash + 1)) {
            *why = "an always rule names one stream: APP/NAME without wildcards";
            return -EINVAL;
        }
    }
    return 0;
}

int tc_pull_rule_match(const tc_pull_rule_t *r, const char *app, const char *name)
{
    char full[TC_PULL_PATTERN_MAX + 8];

    if ((size_t)snprintf(full, sizeof(full), "%s/%s", app, name) >= sizeof(full))
        return 0;
    return fnmatch(r->pattern, full, FNM_PATHNAME) == 0;
}

int tc_pull_url_expand(const char *tmpl, const char *app, const char *name, char *out,
                       size_t outlen)
{
    static const struct { const char *var; int which; } vars[] = {
        {"${name}", 1}, {"${app}", 0}, {"$name", 1}, {"$app", 0},
    };
    size_t o = 0;

    for (const char *p = tmpl; *p;) {
        const char *val = NULL;
        size_t skip = 1, vl;

        if (*p == '$') {
            for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
                size_t l = strlen(vars[i].var);

                if (strncmp(p, vars[i].var, l) == 0) {
                    val = vars[i].which ? name : app;
                    skip = l;
                    break;
                }
            }
        }
        if (val == NULL) {
            val = p;
            vl = 1;
        } else {
            vl = strlen(val);
        }
        if (o + vl >= outlen)
            return -ENAMETOOLONG;
        memcpy(out + o, val, vl);
        o += vl;
        p += skip;
    }
    if (outlen == 0)
        return -ENAMETOOLONG;
    out[o] = '\0';
    return (int)o;
}

/* ---- timestamps and backoff --------------------------------------------- */

int64_t tc_pull_ts_map(tc_pull_ts_t *t, int track, int64_t in_ms)
{
    int64_t out;

    track = track ? 1 : 0;
    if (!t->have) {
        t->have = 1;
        t->offset = -in_ms;
        t->last_out[0] = t->last_out[1] = 0;
        t->max_out = 0;
    } else if (in_ms - t->last_in > TC_PULL_TS_JUMP_MS || t->last_in - in_ms > TC_PULL_TS_JUMP_MS) {
        /* a wrap, a restart of the origin's clock or a splice: carry on
         * just after everything sent so far */
        t->offset = t->max_out + 1 - in_ms;
        t->jumps++;
    }
    t->last_in = in_ms;
    out = in_ms + t->offset;
    if (out < t->last_out[track])
        out = t->last_out[track];
    if (out < 0)
        out = 0;
    t->last_out[track] = out;
    if (out > t->max_out)
        t->max_out = out;
    return out;
}

uint64_t tc_pull_backoff_ms(unsigned attempt, uint32_t rnd)
{
    uint64_t ms = 1000;

    for (unsigned i = 1; i < attempt && ms < 30000; i++)
        ms *= 2;
    if (ms > 30000)
        ms = 30000;
    return ms - (rnd % (ms / 4 + 1));
}

/* ---- directives --------------------------------------------------------- */

static const char *const rtmp_clients[] = {"native", "libavformat", NULL};
static const core_conf_def_t defs_tmpl[] = {
    {"pull", CORE_CONF_LIST, "", "repeatable: 'PATTERN URL-TEMPLATE [on-demand|always]' pulls streams matching PATTERN (e.g. live/*) from the origin URL ($app, $name substituted)", NULL, 0, 0, NULL, 0, NULL, NULL},
    {"pull-workers", CORE_CONF_INT, "0", "pull worker threads kept ready (0: one per core); a stream being pulled occupies one while it runs", NULL, 0, 4096, NULL, 0, NULL, NULL},
    {"pull-start-timeout-ms", CORE_CONF_INT, "5000", "a viewer of an on-demand stream waits this long for its first keyframe", NULL, 100, 600000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"pull-idle-ms", CORE_CONF_INT, "10000", "an on-demand pull stops this long after its last viewer left", NULL, 0, 86400000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
    {"pull-rtmp-client", CORE_CONF_ENUM, "native", "rtmp:// origins given by IP address: native (on the event loop, no worker thread) or libavformat (worker threads, like every other scheme)", NULL, 0, 0, rtmp_clients, 0, NULL, NULL},
    {"pull-timeout-ms", CORE_CONF_INT, "10000", "an origin that sends nothing this long (or does not answer) is dropped and reconnected", NULL, 500, 600000, NULL, CORE_CONF_RUNTIME, NULL, NULL},
};
#define NDEFS (sizeof(defs_tmpl) / sizeof(defs_tmpl[0]))
static core_conf_def_t defs[NDEFS];

int tc_pull_conf_register(core_conf_t *c, tc_pull_conf_t *pc)
{
    void *ptrs[NDEFS] = {&pc->rules, &pc->workers, &pc->start_timeout_ms, &pc->idle_ms,
                         &pc->rtmp_client, &pc->timeout_ms};

    memcpy(defs, defs_tmpl, sizeof(defs));
    for (size_t i = 0; i < NDEFS; i++)
        defs[i].ptr = ptrs[i];
    return core_conf_add(c, defs, NDEFS);
}

/* ---- state -------------------------------------------------------------- */

typedef enum msg_kind { MSG_OPENED, MSG_TAG, MSG_DONE } msg_kind_t;

typedef struct job job_t;
typedef struct pull_stream pull_stream_t;

typedef struct msg {
    struct msg *next;
    job_t *job;
    msg_kind_t kind;
    uint8_t type;              /* TAG: FLV tag type */
    uint8_t has_video;         /* OPENED */
    uint8_t opened;            /* DONE: the origin was opened */
    int err;                   /* DONE: 0 stopped by us, else negative */
    uint32_t ts;
    uint32_t len;              /* data bytes (TAG), text length + 1 otherwise */
    uint64_t arrival_us;
    uint8_t data[];
} msg_t;

#define QUEUE_MAX_BYTES (16u << 20)   /* per job, before its worker waits */
#define OUT_MAX_BYTES (32u << 20)     /* muxer output not yet cut into tags */

struct job {
    job_t *next, *prev;        /* loop: p->jobs, every job not yet done */
    job_t *qnext;              /* pool queue (under p->mu) */
    tc_pull_t *p;
    pull_stream_t *ps;         /* loop only; NULL once detached */
    char url[TC_PULL_URL_MAX];
    int64_t timeout_us;
    atomic_int stop;
    size_t queued;             /* message bytes not yet taken (under p->mu) */
    /* worker only */
    uint64_t deadline_us;
    uint8_t *obuf;
    size_t olen, ocap;
    int hdr_done;
};

typedef enum ps_state { PS_CONNECTING, PS_LIVE, PS_BACKOFF } ps_state_t;

static const char *const state_names[] = {"connecting", "live", "backoff"};

struct pull_stream {
    pull_stream_t *next;
    tc_pull_t *p;
    const tc_pull_rule_t *rule;
    char app[100], name[100], full[208];
    char url[TC_PULL_URL_MAX];
    ps_state_t state;
    job_t *job;
    tc_stream_t *hs;           /* published in the hub, or NULL */
    tc_pull_rtmp_t *rc;        /* native RTMP connection, or NULL */
    tc_pull_rtmp_url_t ru;
    int native;                /* rtmp:// with a numeric host: no worker */
    uint64_t opened_ms;
    tc_waiter_t *waiters;
    int has_video, key_seen;
    int dirty;                 /* pushed since the last tc_hub_flush() */
    unsigned attempt;          /* failed attempts in a row */
    uint64_t reconnects;
    uint64_t retry_at_ms, idle_since_ms, started_ms;
    uint64_t bytes;
    char last_error[160];
};

typedef struct pull_metrics {
    core_metric_t *streams, *live, *workers, *starts, *reconnects, *failures, *bytes;
} pull_metrics_t;

struct tc_pull {
    tc_server_t *srv;
    tc_hub_t *hub;
    const tc_pull_conf_t *conf;
    tc_pull_rule_t *rules;
    size_t nrules;
    pull_stream_t *streams;
    int nstreams;
    job_t *jobs;
    int efd;
    struct event *wake_ev, *tick_ev;
    pull_metrics_t m;
    uint32_t rnd;
    /* shared with the workers, under mu */
    pthread_mutex_t mu;
    pthread_cond_t work, drained;
    job_t *q_head, *q_tail;
    int nqueued, idle, stopping;
    msg_t *m_head, *m_tail;
    pthread_t *threads;
    size_t nthreads, cap;
};

/* ---- worker side -------------------------------------------------------- */

static void post(job_t *j, msg_t *m)
{
    tc_pull_t *p = j->p;
    int was_empty;
    uint64_t one = 1;

    m->job = j;
    m->next = NULL;
    pthread_mutex_lock(&p->mu);
    /* the loop is behind: wait rather than queue without bound */
    while (m->kind == MSG_TAG && j->queued > QUEUE_MAX_BYTES && !atomic_load(&j->stop))
        pthread_cond_wait(&p->drained, &p->mu);
    j->queued += m->len;
    was_empty = p->m_head == NULL;
    if (p->m_tail != NULL)
        p->m_tail->next = m;
    else
        p->m_head = m;
    p->m_tail = m;
    pthread_mutex_unlock(&p->mu);
    if (was_empty && write(p->efd, &one, sizeof(one)) < 0) {
        /* the counter is already nonzero: the loop will wake */
    }
}

static msg_t *msg_new(msg_kind_t kind, const void *data, uint32_t len)
{
    msg_t *m = core_malloc(CORE_TAG_INGEST, sizeof(*m) + len);

    if (m == NULL)
        return NULL;
    memset(m, 0, sizeof(*m));
    m->kind = kind;
    m->len = len;
    if (len > 0)
        memcpy(m->data, data, len);
    return m;
}

static void post_text(job_t *j, msg_kind_t kind, int err, int opened, int has_video,
                      const char *text)
{
    msg_t *m = msg_new(kind, text, (uint32_t)strlen(text) + 1);

    if (m == NULL)
        m = msg_new(kind, "", 1);
    if (m == NULL) {
        /* nothing to tell the loop with: it will find the job stopped at
         * shutdown at the latest */
        return;
    }
    m->err = err;
    m->opened = (uint8_t)opened;
    m->has_video = (uint8_t)has_video;
    post(j, m);
}

static int interrupt_cb(void *arg)
{
    job_t *j = arg;

    if (atomic_load(&j->stop))
        return 1;
    return j->deadline_us != 0 && core_mono_us() > j->deadline_us;
}

static int out_write(void *opaque, uint8_t *buf, int n)
{
    job_t *j = opaque;

    if (n <= 0)
        return 0;
    if (j->olen + (size_t)n > OUT_MAX_BYTES)
        return AVERROR(ENOSPC);
    if (j->olen + (size_t)n > j->ocap) {
        size_t cap = j->ocap ? j->ocap : 65536;
        uint8_t *nb;

        while (cap < j->olen + (size_t)n)
            cap *= 2;
        nb = core_realloc(CORE_TAG_INGEST, j->obuf, cap);
        if (nb == NULL)
            return AVERROR(ENOMEM);
        j->obuf = nb;
        j->ocap = cap;
    }
    memcpy(j->obuf + j->olen, buf, (size_t)n);
    j->olen += (size_t)n;
    return n;
}

/* Cut complete FLV tags out of the muxer's output and post them. Returns 0
 * or a negative errno. */
static int drain_tags(job_t *j)
{
    size_t off = 0;
    int rv = 0;

    if (!j->hdr_done) {
        uint8_t flags;
        ssize_t k = flv_header_parse(j->obuf, j->olen, &flags);

        if (k == -EAGAIN)
            return 0;
        if (k < 0)
            return -EPROTO;
        off = (size_t)k;
        j->hdr_done = 1;
    }
    while (off < j->olen) {
        flv_tag_t t;
        ssize_t k = flv_tag_parse(j->obuf + off, j->olen - off, FLV_MAX_TAG_DATA, &t);
        msg_t *m;

        if (k == -EAGAIN)
            break;
        if (k < 0) {
            rv = -EPROTO;
            break;
        }
        off += (size_t)k;
        if (t.len == 0)
            continue;
        m = msg_new(MSG_TAG, t.data, t.len);
        if (m == NULL) {
            rv = -ENOMEM;
            break;
        }
        m->type = t.type;
        m->ts = t.timestamp;
        m->arrival_us = core_mono_us();
        post(j, m);
    }
    memmove(j->obuf, j->obuf + off, j->olen - off);
    j->olen -= off;
    return rv;
}

static const char *averr(int rv, char *buf, size_t len)
{
    if (rv == AVERROR_HTTP_NOT_FOUND)
        return "origin has no such stream (HTTP 404)";
    if (rv == AVERROR_EXIT)
        return "timed out";
    if (av_strerror(rv, buf, len) != 0)
        snprintf(buf, len, "error %d", rv);
    return buf;
}

static int codec_ok(const AVCodecParameters *par)
{
    if (par->codec_type == AVMEDIA_TYPE_VIDEO)
        return par->codec_id == AV_CODEC_ID_H264;
    return par->codec_id == AV_CODEC_ID_AAC || par->codec_id == AV_CODEC_ID_MP3;
}

/* Picture size of a video stream whose demuxer did not say (FLV before
 * its metadata): parse the sequence header and a frame with the codec's
 * parser. Leaves par untouched when it cannot tell. */
static void fill_dims(AVCodecParameters *par, AVPacket *const *pkts, int n)
{
    AVCodecParserContext *pc = av_parser_init(par->codec_id);
    AVCodecContext *cc = avcodec_alloc_context3(NULL);

    if (pc != NULL && cc != NULL && avcodec_parameters_to_context(cc, par) == 0) {
        for (int i = 0; i < n && (pc->width <= 0 || pc->height <= 0); i++) {
            uint8_t *o;
            int olen;

            if (pkts[i]->stream_index < 0 || pkts[i]->size <= 0 || pkts[i]->data == NULL ||
                pkts[i]->flags & AV_PKT_FLAG_DISCARD)
                continue;
            av_parser_parse2(pc, cc, &o, &olen, pkts[i]->data, pkts[i]->size, AV_NOPTS_VALUE,
                             AV_NOPTS_VALUE, 0);
        }
        if (pc->width > 0 && pc->height > 0) {
            par->width = pc->width;
            par->height = pc->height;
        }
    }
    avcodec_free_context(&cc);
    if (pc != NULL)
        av_parser_close(pc);
}

#define EARLY_MAX 512
#define EARLY_WAIT_US 4000000

/* One connection to the origin, from open to end. Posts MSG_OPENED once
 * the output is ready, MSG_TAG per tag and always MSG_DONE last. */
static void job_run(job_t *j)
{
    AVFormatContext *ic = NULL, *oc = NULL;
    AVDictionary *opts = NULL;
    AVPacket *pkt = NULL;
    uint8_t *iobuf = NULL;
    int idx[2] = {-1, -1}, oidx[2] = {-1, -1}, nout = 0, opened = 0, rv;
    AVPacket *early[EARLY_MAX];
    int nearly = 0, ei = 0;
    tc_pull_ts_t ts = {0};
    char why[200], ebuf[128], tmp[32];
    const char *reason = NULL;

    j->deadline_us = core_mono_us() + (uint64_t)j->timeout_us;
    ic = avformat_alloc_context();
    if (ic == NULL) {
        reason = "out of memory";
        rv = AVERROR(ENOMEM);
        goto done;
    }
    ic->interrupt_callback.callback = interrupt_cb;
    ic->interrupt_callback.opaque = j;
    /* start fast: the first viewer waits for us */
    ic->max_analyze_duration = 500000;
    ic->probesize = 1 << 20;
    ic->fps_probe_size = 0;
    snprintf(tmp, sizeof(tmp), "%lld", (long long)j->timeout_us);
    av_dict_set(&opts, "rw_timeout", tmp, 0);
    av_dict_set(&opts, "rtmp_live", "live", 0);
    /* an oborod origin leaves relays out of its viewer counts (viewers.c) */
    av_dict_set(&opts, "rtmp_flashver", TC_RELAY_FLASHVER, 0);
    av_dict_set(&opts, "user_agent", "Lavf " TC_RELAY_MARK, 0);
    rv = avformat_open_input(&ic, j->url, NULL, &opts);
    av_dict_free(&opts);
    if (rv < 0) {
        snprintf(why, sizeof(why), "cannot open origin: %s", averr(rv, ebuf, sizeof(ebuf)));
        reason = why;
        goto done;
    }
    rv = avformat_find_stream_info(ic, NULL);
    if (rv < 0) {
        snprintf(why, sizeof(why), "cannot read origin: %s", averr(rv, ebuf, sizeof(ebuf)));
        reason = why;
        goto done;
    }
    idx[0] = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    idx[1] = av_find_best_stream(ic, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    if (idx[0] < 0 && strstr(ic->iformat->name, "flv") != NULL) {
        /* FLV (RTMP, HTTP-FLV) creates streams as their first packet
         * comes, and an origin without a GOP cache sends video from its
         * next keyframe only: read on for a while, keeping the packets,
         * until video appears (an audio-only stream pays this wait) */
        uint64_t until = core_mono_us() + EARLY_WAIT_US;

        while (nearly < EARLY_MAX && core_mono_us() < until && !atomic_load(&j->stop)) {
            AVPacket *ep = av_packet_alloc();

            if (ep == NULL || av_read_frame(ic, ep) < 0) {
                av_packet_free(&ep);
                break;
            }
            early[nearly++] = ep;
            if (ic->streams[ep->stream_index]->codecpar->codec_type == AVMEDIA_TYPE_VIDEO)
                break;
        }
        idx[0] = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
        if (idx[0] >= 0 && nearly > 0 && early[nearly - 1]->stream_index == idx[0]) {
            AVCodecParameters *par = ic->streams[idx[0]]->codecpar;

            if (par->width <= 0 || par->height <= 0)
                fill_dims(par, &early[nearly - 1], 1);
        }
    }
    if (idx[0] >= 0 && (ic->streams[idx[0]]->codecpar->width <= 0 ||
                        ic->streams[idx[0]]->codecpar->height <= 0)) {
        reason = "origin video has no picture size yet";
        rv = AVERROR(EAGAIN);
        goto done;
    }
    if (idx[0] < 0 && idx[1] < 0) {
        reason = "origin has no audio or video";
        rv = AVERROR_INVALIDDATA;
        goto done;
    }
    for (int t = 0; t < 2; t++) {
        const AVCodecParameters *par = idx[t] >= 0 ? ic->streams[idx[t]]->codecpar : NULL;

        if (par != NULL && !codec_ok(par)) {
            snprintf(why, sizeof(why), "unsupported %s codec %s (outputs carry H.264, AAC, MP3)",
                     t == 0 ? "video" : "audio", avcodec_get_name(par->codec_id));
            reason = why;
            rv = AVERROR_PATCHWELCOME;
            goto done;
        }
    }
    rv = avformat_alloc_output_context2(&oc, NULL, "flv", NULL);
    if (rv < 0 || oc == NULL) {
        reason = "cannot create the FLV muxer";
        goto done;
    }
    iobuf = av_malloc(32768);
    if (iobuf == NULL || (oc->pb = avio_alloc_context(iobuf, 32768, 1, j, NULL, out_write, NULL)) == NULL) {
        av_free(iobuf);
        reason = "out of memory";
        rv = AVERROR(ENOMEM);
        goto done;
    }
    oc->flags |= AVFMT_FLAG_CUSTOM_IO;
    for (int t = 0; t < 2; t++) {
        AVStream *os;

        if (idx[t] < 0)
            continue;
        os = avformat_new_stream(oc, NULL);
        if (os == NULL || avcodec_parameters_copy(os->codecpar, ic->streams[idx[t]]->codecpar) < 0) {
            reason = "out of memory";
            rv = AVERROR(ENOMEM);
            goto done;
        }
        os->codecpar->codec_tag = 0;
        os->time_base = (AVRational){1, 1000};
        oidx[t] = nout++;
    }
    av_dict_set(&opts, "flvflags", "no_duration_filesize+no_sequence_end", 0);
    rv = avformat_write_header(oc, &opts);
    av_dict_free(&opts);
    if (rv < 0) {
        snprintf(why, sizeof(why), "cannot remux to FLV: %s", averr(rv, ebuf, sizeof(ebuf)));
        reason = why;
        goto done;
    }
    snprintf(why, sizeof(why), "video=%s audio=%s",
             idx[0] >= 0 ? avcodec_get_name(ic->streams[idx[0]]->codecpar->codec_id) : "none",
             idx[1] >= 0 ? avcodec_get_name(ic->streams[idx[1]]->codecpar->codec_id) : "none");
    post_text(j, MSG_OPENED, 0, 1, idx[0] >= 0, why);
    opened = 1;
    avio_flush(oc->pb);
    if ((rv = drain_tags(j)) != 0) {
        reason = "muxer output unreadable";
        rv = AVERROR(-rv);
        goto done;
    }
    pkt = av_packet_alloc();
    if (pkt == NULL) {
        reason = "out of memory";
        rv = AVERROR(ENOMEM);
        goto done;
    }
    while (!atomic_load(&j->stop)) {
        AVStream *is;
        int t;
        int64_t dts, in_ms, cts = 0, out_ms;
        AVRational ms = {1, 1000};

        if (ei < nearly) {
            av_packet_move_ref(pkt, early[ei]);
            av_packet_free(&early[ei]);
            ei++;
            rv = 0;
        } else {
            j->deadline_us = core_mono_us() + (uint64_t)j->timeout_us;
            rv = av_read_frame(ic, pkt);
        }
        if (rv < 0) {
            if (rv == AVERROR_EOF)
                reason = "origin ended the stream";
            else {
                snprintf(why, sizeof(why), "origin lost: %s", averr(rv, ebuf, sizeof(ebuf)));
                reason = why;
            }
            break;
        }
        t = pkt->stream_index == idx[0] ? 0 : pkt->stream_index == idx[1] ? 1 : -1;
        if (t < 0 || pkt->size <= 0) {
            av_packet_unref(pkt);
            continue;
        }
        is = ic->streams[pkt->stream_index];
        dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
        in_ms = dts != AV_NOPTS_VALUE ? av_rescale_q(dts, is->time_base, ms) : (ts.have ? ts.last_in : 0);
        if (pkt->pts != AV_NOPTS_VALUE && pkt->dts != AV_NOPTS_VALUE && pkt->pts > pkt->dts)
            cts = av_rescale_q(pkt->pts - pkt->dts, is->time_base, ms);
        if (cts > 10000)
            cts = 0;   /* nonsense composition offset: play it at its dts */
        out_ms = tc_pull_ts_map(&ts, t, in_ms);
        pkt->stream_index = oidx[t];
        pkt->dts = av_rescale_q(out_ms, ms, oc->streams[oidx[t]]->time_base);
        pkt->pts = av_rescale_q(out_ms + cts, ms, oc->streams[oidx[t]]->time_base);
        pkt->duration = 0;
        pkt->pos = -1;
        rv = av_write_frame(oc, pkt);
        av_packet_unref(pkt);
        if (rv < 0) {
            snprintf(why, sizeof(why), "cannot remux a packet: %s", averr(rv, ebuf, sizeof(ebuf)));
            reason = why;
            break;
        }
        avio_flush(oc->pb);
        if ((rv = drain_tags(j)) != 0) {
            reason = rv == -ENOMEM ? "out of memory" : "muxer output unreadable";
            rv = AVERROR(-rv);
            break;
        }
    }

done:
    if (atomic_load(&j->stop)) {
        rv = 0;
        reason = "stopped";
    }
    av_packet_free(&pkt);
    while (ei < nearly)
        av_packet_free(&early[ei++]);
    if (oc != NULL) {
        if (oc->pb != NULL) {
            av_freep(&oc->pb->buffer);
            avio_context_free(&oc->pb);
        }
        avformat_free_context(oc);
    }
    avformat_close_input(&ic);
    core_free(j->obuf);
    j->obuf = NULL;
    j->olen = j->ocap = 0;
    /* last: once the loop has this message it frees the job */
    post_text(j, MSG_DONE, rv < 0 ? (rv == AVERROR_EXIT ? -ETIMEDOUT : -EIO) : 0, opened, 0,
              reason != NULL ? reason : "stopped");
}

static void *worker_main(void *arg)
{
    tc_pull_t *p = arg;

    pthread_mutex_lock(&p->mu);
    for (;;) {
        job_t *j;

        while (!p->stopping && p->q_head == NULL)
            pthread_cond_wait(&p->work, &p->mu);
        if (p->stopping)
            break;
        j = p->q_head;
        p->q_head = j->qnext;
        if (p->q_head == NULL)
            p->q_tail = NULL;
        p->nqueued--;
        p->idle--;
        pthread_mutex_unlock(&p->mu);
        job_run(j);
        pthread_mutex_lock(&p->mu);
        p->idle++;
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

/* Start one more worker thread (p->mu held). Returns 0 or -EAGAIN /
 * -ENOMEM. */
static int spawn_locked(tc_pull_t *p)
{
    if (p->nthreads == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 8;
        pthread_t *t = core_realloc(CORE_TAG_INGEST, p->threads, cap * sizeof(*t));

        if (t == NULL)
            return -ENOMEM;
        p->threads = t;
        p->cap = cap;
    }
    if (pthread_create(&p->threads[p->nthreads], NULL, worker_main, p) != 0)
        return -EAGAIN;
    p->nthreads++;
    p->idle++;
    core_metric_set(p->m.workers, (int64_t)p->nthreads);
    return 0;
}

/* ---- loop side: jobs and messages --------------------------------------- */

static void job_free(job_t *j)
{
    tc_pull_t *p = j->p;

    if (j->prev != NULL)
        j->prev->next = j->next;
    else
        p->jobs = j->next;
    if (j->next != NULL)
        j->next->prev = j->prev;
    core_free(j->obuf);
    core_free(j);
}

/* Queue a new connection attempt for ps. Returns 0 or -ENOMEM / -EAGAIN. */
static int job_start(pull_stream_t *ps)
{
    tc_pull_t *p = ps->p;
    job_t *j = core_calloc(CORE_TAG_INGEST, 1, sizeof(*j));
    int rv = 0;

    if (j == NULL)
        return -ENOMEM;
    j->p = p;
    j->ps = ps;
    snprintf(j->url, sizeof(j->url), "%s", ps->url);
    j->timeout_us = p->conf->timeout_ms * 1000;
    atomic_init(&j->stop, 0);
    pthread_mutex_lock(&p->mu);
    if (p->idle <= p->nqueued)
        rv = spawn_locked(p);
    if (rv == 0 || p->nthreads > 0) {
        /* without a new thread it waits for a free one */
        j->qnext = NULL;
        if (p->q_tail != NULL)
            p->q_tail->qnext = j;
        else
            p->q_head = j;
        p->q_tail = j;
        p->nqueued++;
        pthread_cond_signal(&p->work);
        rv = 0;
    }
    pthread_mutex_unlock(&p->mu);
    if (rv != 0) {
        core_free(j);
        return rv;
    }
    j->next = p->jobs;
    if (j->next != NULL)
        j->next->prev = j;
    p->jobs = j;
    ps->job = j;
    ps->state = PS_CONNECTING;
    ps->key_seen = 0;
    core_metric_inc(p->m.starts, 1);
    return 0;
}

static void job_stop(job_t *j)
{
    j->ps = NULL;
    atomic_store(&j->stop, 1);
    pthread_mutex_lock(&j->p->mu);
    pthread_cond_broadcast(&j->p->drained);
    pthread_mutex_unlock(&j->p->mu);
}

static void resolve_waiters(pull_stream_t *ps, tc_stream_t *s, int err)
{
    while (ps->waiters != NULL) {
        tc_waiter_t *w = ps->waiters;

        tc_waiter_cancel(w);
        w->cb(w, s, err);
    }
}

static void ps_down(pull_stream_t *ps, const char *why, int opened);
static void ps_opened(pull_stream_t *ps, int has_video, const char *desc);
static void ps_tag(pull_stream_t *ps, uint8_t type, uint32_t ts, const uint8_t *data, uint32_t len,
                   uint64_t arrival_us);

static void rc_opened(void *arg)
{
    ps_opened(arg, -1, "client=native");
}

static void rc_tag(void *arg, uint8_t type, uint32_t ts, const uint8_t *body, uint32_t len,
                   uint64_t arrival_us)
{
    ps_tag(arg, type, ts, body, len, arrival_us);
}

static void rc_batch_end(void *arg)
{
    pull_stream_t *ps = arg;

    if (ps->dirty && ps->hs != NULL) {
        ps->dirty = 0;
        tc_hub_flush(ps->hs);
    }
}

static void rc_done(void *arg, int opened, const char *why)
{
    pull_stream_t *ps = arg;

    ps->rc = NULL;   /* it frees itself */
    ps_down(ps, why, opened);
}

static const tc_pull_rtmp_ops_t rc_ops = {rc_opened, rc_tag, rc_batch_end, rc_done};

/* Start one connection attempt: natively for rtmp:// with a numeric host,
 * else as a job for the workers. Returns 0 or a negative errno. */
static int conn_start(pull_stream_t *ps)
{
    if (!ps->native)
        return job_start(ps);
    ps->rc = tc_pull_rtmp_start(ps->p->srv->base, &ps->ru, ps->p->conf->timeout_ms, &rc_ops, ps);
    if (ps->rc == NULL)
        return -ENOMEM;
    ps->state = PS_CONNECTING;
    ps->key_seen = 0;
    core_metric_inc(ps->p->m.starts, 1);
    return 0;
}

static void conn_stop(pull_stream_t *ps)
{
    if (ps->job != NULL) {
        job_stop(ps->job);
        ps->job = NULL;
    }
    tc_pull_rtmp_stop(&ps->rc);
}

static int viewers(const pull_stream_t *ps)
{
    const tc_stream_t *s = ps->hs;

    if (s == NULL) {
        s = tc_hub_find(ps->p->hub, ps->app, ps->name);
        if (s != NULL && s->publisher != NULL)
            return 0;   /* someone else publishes it */
    }
    if (s == NULL)
        return 0;
    /* LL-HLS viewers are sessions of requests, not hub subscribers */
    return s->nsubs[TC_PROTO_FLV] + s->nsubs[TC_PROTO_RTMP] +
           (ps->p->srv->llhls != NULL && strcmp(ps->app, "live") == 0
                ? (int)tc_llhls_viewers(ps->p->srv->llhls, ps->name) : 0);
}

static void ps_free(pull_stream_t *ps)
{
    tc_pull_t *p = ps->p;

    for (pull_stream_t **pp = &p->streams; *pp != NULL; pp = &(*pp)->next)
        if (*pp == ps) {
            *pp = ps->next;
            break;
        }
    p->nstreams--;
    core_metric_set(p->m.streams, p->nstreams);
    core_free(ps);
}

/* Stop pulling: the job is told to stop, the stream leaves the hub
 * (viewers, if any, get the grace period), waiters get err. */
static void ps_stop(pull_stream_t *ps, int err, const char *why)
{
    if (why != NULL)
        core_log_info("pull", "pull stopped", "stream=%s reason=\"%s\" reconnects=%llu", ps->full,
                      why, (unsigned long long)ps->reconnects);
    conn_stop(ps);
    if (ps->hs != NULL) {
        tc_hub_unpublish(ps->hs);
        ps->hs = NULL;
        core_metric_inc(ps->p->m.live, -1);
    }
    resolve_waiters(ps, NULL, err);
    ps_free(ps);
}

static void ps_opened(pull_stream_t *ps, int has_video, const char *desc)
{
    tc_pull_t *p = ps->p;
    int err = 0;
    tc_stream_t *hs = tc_hub_publish(p->hub, ps->app, ps->name, "", ps, &err);

    if (hs == NULL) {
        tc_stream_t *other = err == -EBUSY ? tc_hub_find(p->hub, ps->app, ps->name) : NULL;

        const char *why = err == -EBUSY ? "stream is published by someone else"
                          : err == -ENOSPC ? "too many streams" : "out of memory";

        conn_stop(ps);
        if (other != NULL)
            resolve_waiters(ps, other, 0);
        ps_down(ps, why, 1);
        return;
    }
    ps->hs = hs;
    ps->state = PS_LIVE;
    ps->has_video = has_video;
    ps->opened_ms = core_mono_ms();
    core_metric_inc(p->m.live, 1);
    core_log_info("pull", "pulling", "stream=%s url=\"%s\" %s reconnects=%llu", ps->full, ps->url,
                  desc, (unsigned long long)ps->reconnects);
}

static void ps_tag(pull_stream_t *ps, uint8_t type, uint32_t ts, const uint8_t *data, uint32_t len,
                   uint64_t arrival_us)
{
    int key = 0, rv;

    if (ps->hs == NULL)
        return;
    if (type == FLV_TAG_VIDEO) {
        flv_video_info_t v;

        ps->has_video = 1;
        key = flv_video_parse(data, len, &v) == 0 && v.keyframe && v.pkt == FLV_VPKT_FRAME;
    } else if (type == FLV_TAG_AUDIO) {
        flv_audio_info_t a;

        /* not told whether video comes (native RTMP): audio-only after 2 s */
        if (ps->has_video < 0 && core_mono_ms() - ps->opened_ms > 2000)
            ps->has_video = 0;
        key = ps->has_video == 0 && flv_audio_parse(data, len, &a) == 0 && !a.seq_header;
    }
    rv = tc_hub_push(ps->hs, type, ts, data, len, arrival_us);
    if (rv == -EPROTO)
        return;   /* a body too short for its codec: skipped, as RTMP would not */
    if (rv != 0) {
        conn_stop(ps);
        ps_down(ps, "out of memory", 1);
        return;
    }
    ps->bytes += len;
    ps->dirty = 1;
    core_metric_inc(ps->p->m.bytes, len);
    if (key && !ps->key_seen) {
        ps->key_seen = 1;
        ps->attempt = 0;
        resolve_waiters(ps, ps->hs, 0);
    }
}

/* The connection to the origin is over (ps->job already cleared): leave
 * the hub (viewers get the grace period), tell the waiters if no keyframe
 * came, then retry after a backoff, or end an on-demand pull nobody
 * watches. May free ps. */
static void ps_down(pull_stream_t *ps, const char *why, int opened)
{
    tc_pull_t *p = ps->p;
    int was_live = ps->hs != NULL;

    if (ps->hs != NULL) {
        tc_hub_flush(ps->hs);
        tc_hub_unpublish(ps->hs);
        ps->hs = NULL;
        core_metric_inc(p->m.live, -1);
    }
    ps->dirty = 0;
    snprintf(ps->last_error, sizeof(ps->last_error), "%s", why);
    core_metric_inc(p->m.failures, 1);
    if (!ps->key_seen)
        resolve_waiters(ps, NULL, opened ? -EIO : -ENOENT);
    if (ps->rule->mode == TC_PULL_ON_DEMAND && viewers(ps) == 0) {
        core_log_warn("pull", was_live ? "origin lost" : "pull failed",
                      "stream=%s url=\"%s\" reason=\"%s\"", ps->full, ps->url, why);
        ps_free(ps);
        return;
    }
    ps->attempt++;
    ps->state = PS_BACKOFF;
    p->rnd = p->rnd * 1103515245u + 12345u;
    ps->retry_at_ms = core_mono_ms() + tc_pull_backoff_ms(ps->attempt, p->rnd >> 8);
    core_log_warn("pull", was_live ? "origin lost" : "pull failed",
                  "stream=%s url=\"%s\" reason=\"%s\" retry_ms=%llu", ps->full, ps->url, why,
                  (unsigned long long)(ps->retry_at_ms - core_mono_ms()));
}

static void on_done(pull_stream_t *ps, const msg_t *m)
{
    ps->job = NULL;
    ps_down(ps, (const char *)m->data, m->opened);
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_pull_t *p = arg;
    uint64_t n;
    msg_t *m, *next;

    if (read(p->efd, &n, sizeof(n)) < 0) {
        /* spurious: nothing to read */
    }
    pthread_mutex_lock(&p->mu);
    m = p->m_head;
    p->m_head = p->m_tail = NULL;
    for (msg_t *x = m; x != NULL; x = x->next)
        x->job->queued -= x->len;
    pthread_cond_broadcast(&p->drained);
    pthread_mutex_unlock(&p->mu);
    for (; m != NULL; m = next) {
        job_t *j = m->job;
        pull_stream_t *ps = j->ps;

        next = m->next;
        if (ps != NULL) {
            if (m->kind == MSG_OPENED)
                ps_opened(ps, m->has_video, (const char *)m->data);
            else if (m->kind == MSG_TAG)
                ps_tag(ps, m->type, m->ts, m->data, m->len, m->arrival_us);
            else
                on_done(ps, m);
        }
        if (m->kind == MSG_DONE)
            job_free(j);
        core_free(m);
    }
    /* one write per viewer for the whole batch, as RTMP ingest does */
    for (pull_stream_t *ps = p->streams; ps != NULL; ps = ps->next)
        if (ps->dirty && ps->hs != NULL) {
            ps->dirty = 0;
            tc_hub_flush(ps->hs);
        }
}

/* ---- loop side: streams ------------------------------------------------- */

static pull_stream_t *ps_find(tc_pull_t *p, const char *app, const char *name)
{
    for (pull_stream_t *ps = p->streams; ps != NULL; ps = ps->next)
        if (strcmp(ps->app, app) == 0 && strcmp(ps->name, name) == 0)
            return ps;
    return NULL;
}

static pull_stream_t *ps_new(tc_pull_t *p, const tc_pull_rule_t *r, const char *app,
                             const char *name)
{
    pull_stream_t *ps;
    int rv;

    if (p->nstreams >= p->hub->conf->max_streams)
        return NULL;
    ps = core_calloc(CORE_TAG_INGEST, 1, sizeof(*ps));
    if (ps == NULL)
        return NULL;
    ps->p = p;
    ps->rule = r;
    snprintf(ps->app, sizeof(ps->app), "%s", app);
    snprintf(ps->name, sizeof(ps->name), "%s", name);
    snprintf(ps->full, sizeof(ps->full), "%s/%s", app, name);
    if (tc_pull_url_expand(r->url, app, name, ps->url, sizeof(ps->url)) < 0) {
        core_free(ps);
        return NULL;
    }
    ps->started_ms = core_mono_ms();
    ps->next = p->streams;
    p->streams = ps;
    p->nstreams++;
    core_metric_set(p->m.streams, p->nstreams);
    ps->native = ps->p->conf->rtmp_client == 0 &&
                 tc_pull_rtmp_url_parse(ps->url, &ps->ru) == 0 && ps->ru.numeric;
    rv = conn_start(ps);
    if (rv != 0) {
        core_log_warn("pull", "cannot start a pull worker", "stream=%s err=%d", ps->full, rv);
        ps_free(ps);
        return NULL;
    }
    return ps;
}

static int want(void *arg, const char *app, const char *name, tc_waiter_t *w)
{
    tc_pull_t *p = arg;
    pull_stream_t *ps;

    if (!tc_pull_name_valid(app) || !tc_pull_name_valid(name))
        return -ENOENT;
    ps = ps_find(p, app, name);
    if (ps == NULL) {
        const tc_pull_rule_t *r = NULL;

        for (size_t i = 0; i < p->nrules && r == NULL; i++)
            if (tc_pull_rule_match(&p->rules[i], app, name))
                r = &p->rules[i];
        if (r == NULL)
            return -ENOENT;
        ps = ps_new(p, r, app, name);
        if (ps == NULL)
            return -ENOENT;
        core_log_info("pull", "on-demand start", "stream=%s url=\"%s\"", ps->full, ps->url);
    }
    w->prev = NULL;
    w->next = ps->waiters;
    if (w->next != NULL)
        w->next->prev = w;
    ps->waiters = w;
    w->head = &ps->waiters;
    w->deadline_ms = core_mono_ms() + (uint64_t)p->conf->start_timeout_ms;
    ps->idle_since_ms = 0;
    return 0;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
    tc_pull_t *p = arg;
    uint64_t now = core_mono_ms();

    for (pull_stream_t *ps = p->streams, *next; ps != NULL; ps = next) {
        next = ps->next;
        for (tc_waiter_t *w = ps->waiters, *wn; w != NULL; w = wn) {
            wn = w->next;
            if (now >= w->deadline_ms) {
                tc_waiter_cancel(w);
                w->cb(w, NULL, -ETIMEDOUT);
            }
        }
        if (ps->state == PS_BACKOFF && now >= ps->retry_at_ms) {
            if (conn_start(ps) == 0) {
                ps->reconnects++;
                core_metric_inc(p->m.reconnects, 1);
            } else {
                ps->retry_at_ms = now + 1000;
            }
        }
        if (ps->rule->mode != TC_PULL_ON_DEMAND)
            continue;
        if (ps->waiters != NULL || viewers(ps) > 0) {
            ps->idle_since_ms = 0;
        } else if (ps->idle_since_ms == 0) {
            ps->idle_since_ms = now;
        } else if (now - ps->idle_since_ms >= (uint64_t)p->conf->idle_ms) {
            ps_stop(ps, -ENOENT, "no viewers");
        }
    }
}

/* ---- status ------------------------------------------------------------- */

static void json_esc(struct evbuffer *b, const char *s)
{
    evbuffer_add(b, "\"", 1);
    for (; *s; s++) {
        if (*s == '"' || *s == '\\')
            evbuffer_add_printf(b, "\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            evbuffer_add_printf(b, "\\u%04x", (unsigned char)*s);
        else
            evbuffer_add(b, s, 1);
    }
    evbuffer_add(b, "\"", 1);
}

static void pull_json(struct evbuffer *b, const pull_stream_t *ps)
{
    evbuffer_add_printf(b, "\"source\":\"pull\",\"pull\":{\"url\":");
    json_esc(b, ps->url);
    evbuffer_add_printf(b, ",\"mode\":\"%s\",\"state\":\"%s\",\"reconnects\":%llu,\"bytes\":%llu,"
                           "\"waiting_viewers\":%d,\"last_error\":",
                        ps->rule->mode == TC_PULL_ALWAYS ? "always" : "on-demand",
                        state_names[ps->state], (unsigned long long)ps->reconnects,
                        (unsigned long long)ps->bytes, ps->waiters != NULL);
    json_esc(b, ps->last_error);
    evbuffer_add(b, "},", 2);
}

static int describe(void *arg, const tc_stream_t *s, struct evbuffer *b)
{
    tc_pull_t *p = arg;

    for (pull_stream_t *ps = p->streams; ps != NULL; ps = ps->next)
        if (ps->hs == s || (s->publisher == NULL && strcmp(ps->full, s->name) == 0)) {
            pull_json(b, ps);
            return 1;
        }
    return 0;
}

static void list(void *arg, struct evbuffer *b, int *first)
{
    tc_pull_t *p = arg;

    for (pull_stream_t *ps = p->streams; ps != NULL; ps = ps->next) {
        if (ps->hs != NULL || tc_hub_find(p->hub, ps->app, ps->name) != NULL)
            continue;
        evbuffer_add_printf(b, "%s{\"name\":\"%s\",\"app\":\"%s\",", *first ? "" : ",", ps->name,
                            ps->app);
        pull_json(b, ps);
        evbuffer_add_printf(b, "\"publishing\":false,\"viewers\":{\"flv\":0,\"rtmp\":0,\"total\":0}}");
        *first = 0;
    }
}

/* ---- setup and teardown ------------------------------------------------- */

static void av_log_cb(void *avcl, int level, const char *fmt, va_list vl)
{
    char line[256];
    size_t n;

    if (level > AV_LOG_WARNING || core_log_get_level() > CORE_LOG_DEBUG)
        return;
    vsnprintf(line, sizeof(line), fmt, vl);
    n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = '\0';
    for (char *c = line; *c; c++)
        if (*c == '"' || *c == '\\' || (unsigned char)*c < 0x20)
            *c = *c == '"' ? '\'' : ' ';
    core_log_write(CORE_LOG_DEBUG, "libav", "message", "text=\"%s\"", line);
}

int tc_pull_new(tc_pull_t **out, tc_server_t *srv, const tc_pull_conf_t *conf, char *err,
                size_t errlen)
{
    core_metrics_t *mr = core_metrics_global();
    tc_pull_t *p = core_calloc(CORE_TAG_INGEST, 1, sizeof(*p));
    long long nworkers = conf->workers;
    int rv = -ENOMEM;

    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    p->srv = srv;
    p->hub = &srv->hub;
    p->conf = conf;
    p->efd = -1;
    p->rnd = (uint32_t)core_mono_us();
    if (conf->rules.n > 0) {
        p->rules = core_calloc(CORE_TAG_INGEST, conf->rules.n, sizeof(*p->rules));
        if (p->rules == NULL)
            goto err_after_alloc;
    }
    for (size_t i = 0; i < conf->rules.n; i++) {
        const char *why = NULL;

        if (tc_pull_rule_parse(conf->rules.items[i], &p->rules[i], &why) != 0) {
            snprintf(err, errlen, "pull '%s': %s", conf->rules.items[i], why);
            rv = -EINVAL;
            goto err_after_rules;
        }
        p->nrules++;
    }
    p->m.streams = core_metrics_gauge(mr, "oboro_pull_streams", "Streams being pulled (any state).");
    p->m.live = core_metrics_gauge(mr, "oboro_pull_live", "Pulled streams receiving from their origin.");
    p->m.workers = core_metrics_gauge(mr, "oboro_pull_workers", "Pull worker threads.");
    p->m.starts = core_metrics_counter(mr, "oboro_pull_connects_total", "Connection attempts to origins.");
    p->m.reconnects = core_metrics_counter(mr, "oboro_pull_reconnects_total", "Reconnects after an origin failed or dropped.");
    p->m.failures = core_metrics_counter(mr, "oboro_pull_failures_total", "Origin connections that failed or ended.");
    p->m.bytes = core_metrics_counter(mr, "oboro_pull_bytes_total", "Media payload bytes pulled from origins.");
    if (p->m.streams == NULL || p->m.live == NULL || p->m.workers == NULL || p->m.starts == NULL ||
        p->m.reconnects == NULL || p->m.failures == NULL || p->m.bytes == NULL)
        goto err_after_rules;
    if (pthread_mutex_init(&p->mu, NULL) != 0)
        goto err_after_rules;
    pthread_cond_init(&p->work, NULL);
    pthread_cond_init(&p->drained, NULL);
    p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p->efd < 0) {
        rv = -errno;
        goto err_after_sync;
    }
    p->wake_ev = event_new(srv->base, p->efd, EV_READ | EV_PERSIST, wake_cb, p);
    p->tick_ev = event_new(srv->base, -1, EV_PERSIST, tick_cb, p);
    if (p->wake_ev == NULL || p->tick_ev == NULL)
        goto err_after_events;
    {
        struct timeval tv = {0, 100000};

        event_add(p->wake_ev, NULL);
        event_add(p->tick_ev, &tv);
    }
    if (p->nrules > 0) {
        avformat_network_init();
        av_log_set_callback(av_log_cb);
        if (nworkers == 0)
            nworkers = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
        pthread_mutex_lock(&p->mu);
        for (long long i = 0; i < nworkers; i++)
            if ((rv = spawn_locked(p)) != 0)
                break;
        pthread_mutex_unlock(&p->mu);
        if (rv != 0 && p->nthreads == 0) {
            snprintf(err, errlen, "cannot start pull workers");
            goto err_after_events;
        }
    }
    srv->hub.source.want = want;
    srv->hub.source.describe = describe;
    srv->hub.source.list = list;
    srv->hub.source.arg = p;
    for (size_t i = 0; i < p->nrules; i++) {
        const tc_pull_rule_t *r = &p->rules[i];
        char app[TC_PULL_PATTERN_MAX];
        const char *slash = strchr(r->pattern, '/');

        if (r->mode != TC_PULL_ALWAYS)
            continue;
        snprintf(app, sizeof(app), "%.*s", (int)(slash - r->pattern), r->pattern);
        if (ps_find(p, app, slash + 1) != NULL)
            continue;
        if (ps_new(p, r, app, slash + 1) == NULL)
            core_log_warn("pull", "cannot start an always-on pull", "stream=%s", r->pattern);
        else
            core_log_info("pull", "always-on start", "stream=%s url=\"%s\"", r->pattern,
                          p->streams->url);
    }
    *out = p;
    return 0;

err_after_events:
    if (p->wake_ev != NULL)
        event_free(p->wake_ev);
    if (p->tick_ev != NULL)
        event_free(p->tick_ev);
    if (p->efd >= 0)
        close(p->efd);
err_after_sync:
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    pthread_cond_broadcast(&p->work);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    core_free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->mu);
err_after_rules:
    core_free(p->rules);
err_after_alloc:
    if (rv == -ENOMEM)
        snprintf(err, errlen, "out of memory");
    core_free(p);
    return rv;
}

void tc_pull_free(tc_pull_t **pp)
{
    tc_pull_t *p = *pp;
    msg_t *m;

    if (p == NULL)
        return;
    memset(&p->hub->source, 0, sizeof(p->hub->source));
    while (p->streams != NULL)
        ps_stop(p->streams, -ESHUTDOWN, NULL);
    pthread_mutex_lock(&p->mu);
    p->stopping = 1;
    for (job_t *j = p->jobs; j != NULL; j = j->next)
        atomic_store(&j->stop, 1);
    pthread_cond_broadcast(&p->work);
    pthread_cond_broadcast(&p->drained);
    pthread_mutex_unlock(&p->mu);
    for (size_t i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    core_metric_set(p->m.workers, 0);
    while ((m = p->m_head) != NULL) {
        p->m_head = m->next;
        core_free(m);
    }
    while (p->jobs != NULL)
        job_free(p->jobs);
    event_free(p->wake_ev);
    event_free(p->tick_ev);
    close(p->efd);
    core_free(p->threads);
    pthread_cond_destroy(&p->work);
    pthread_cond_destroy(&p->drained);
    pthread_mutex_destroy(&p->mu);
    core_free(p->rules);
    core_free(p);
    *pp = NULL;
}
