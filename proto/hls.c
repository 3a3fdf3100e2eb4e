/* proto/hls: LL-HLS playlist rendering and delivery-directive parsing. */
#include "proto/hls.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* Largest _HLS_msn / _HLS_part accepted: far beyond any real stream, small
 * enough that arithmetic on them cannot overflow. */
#define MSN_MAX ((uint64_t)1 << 53)
#define PART_MAX 1000000u

/* An output cursor that counts what it could not write. */
typedef struct out {
    char *buf;
    size_t cap;
    size_t len;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out_t *o, const char *fmt, ...)
{
    va_list ap;
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(room > 0 ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        o->len += (size_t)n;
}

static long finish(out_t *o)
{
    if (o->cap > 0)
        o->buf[o->len < o->cap ? o->len : o->cap - 1] = '\0';
    return (long)o->len;
}

/* Milliseconds as seconds with three decimals. */
#define SEC_FMT "%" PRIu32 ".%03" PRIu32
#define SEC_ARG(ms) (uint32_t)((ms) / 1000), (uint32_t)((ms) % 1000)

static void put_pdt(out_t *o, int64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    gmtime_r(&t, &tm);
    put(o, "#EXT-X-PROGRAM-DATE-TIME:%04d-%02d-%02dT%02d:%02d:%02d.%03dZ\n", tm.tm_year + 1900,
        tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ms % 1000));
}

static void put_parts(out_t *o, const hls_part_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        put(o, "#EXT-X-PART:DURATION=" SEC_FMT ",URI=\"%s\"%s\n", SEC_ARG(p[i].duration_ms),
            p[i].uri, p[i].independent ? ",INDEPENDENT=YES" : "");
}

static size_t parts_from(const hls_media_t *m)
{
    return m->parts_segments >= m->nsegs ? 0 : m->nsegs - m->parts_segments;
}

size_t hls_media_skippable(const hls_media_t *m)
{
    uint64_t total = 0, start = 0;
    size_t n = 0, limit = parts_from(m);

    if (m->can_skip_until_ms == 0)
        return 0;
    for (size_t i = 0; i < m->nsegs; i++)
        total += m->segs[i].duration_ms;
    for (size_t i = 0; i < m->ntail; i++)
        total += m->tail[i].duration_ms;
    /* a segment may go when its end lies at or before the skip boundary */
    for (size_t i = 0; i < limit; i++) {
        uint64_t end = start + m->segs[i].duration_ms;

        if (end + m->can_skip_until_ms > total)
            break;
        n = i + 1;
        start = end;
    }
    return n;
}

long hls_media_render(const hls_media_t *m, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0};
    size_t pf = parts_from(m);
    uint64_t first = m->nsegs > 0 ? m->segs[0].msn : m->tail_msn;

    if (m->skip > m->nsegs || (m->skip > 0 && m->can_skip_until_ms == 0) ||
        (m->skip > 0 && m->skip > pf))
        return -EINVAL;
    put(&o, "#EXTM3U\n#EXT-X-VERSION:%u\n#EXT-X-TARGETDURATION:%u\n", m->version,
        m->target_duration_s);
    if (m->can_block_reload || m->part_hold_back_ms > 0 || m->can_skip_until_ms > 0) {
        const char *sep = "";

        put(&o, "#EXT-X-SERVER-CONTROL:");
        if (m->can_block_reload) {
            put(&o, "CAN-BLOCK-RELOAD=YES");
            sep = ",";
        }
        if (m->can_skip_until_ms > 0) {
            put(&o, "%sCAN-SKIP-UNTIL=" SEC_FMT, sep, SEC_ARG(m->can_skip_until_ms));
            sep = ",";
            if (m->can_skip_dateranges)
                put(&o, ",CAN-SKIP-DATERANGES=YES");
        }
        if (m->part_hold_back_ms > 0)
            put(&o, "%sPART-HOLD-BACK=" SEC_FMT, sep, SEC_ARG(m->part_hold_back_ms));
        put(&o, "\n");
    }
    if (m->part_target_ms > 0)
        put(&o, "#EXT-X-PART-INF:PART-TARGET=" SEC_FMT "\n", SEC_ARG(m->part_target_ms));
    put(&o, "#EXT-X-MEDIA-SEQUENCE:%" PRIu64 "\n", first);
    if (m->skip > 0)
        put(&o, "#EXT-X-SKIP:SKIPPED-SEGMENTS=%zu%s\n", m->skip,
            m->skip_v2 ? ",RECENTLY-REMOVED-DATERANGES=\"\"" : "");
    if (m->map_uri != NULL)
        put(&o, "#EXT-X-MAP:URI=\"%s\"\n", m->map_uri);
    for (size_t i = m->skip; i < m->nsegs; i++) {
        const hls_segment_t *s = &m->segs[i];

        if (s->discontinuity)
            put(&o, "#EXT-X-DISCONTINUITY\n");
        if (s->pdt_ms >= 0)
            put_pdt(&o, s->pdt_ms);
        if (i >= pf)
            put_parts(&o, s->parts, s->nparts);
        put(&o, "#EXTINF:" SEC_FMT ",\n%s\n", SEC_ARG(s->duration_ms), s->uri);
    }
    if (m->nsegs == 0 && m->tail_pdt_ms >= 0 && m->ntail > 0)
        put_pdt(&o, m->tail_pdt_ms);
    put_parts(&o, m->tail, m->ntail);
    if (m->preload_uri != NULL)
        put(&o, "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"%s\"\n", m->preload_uri);
    for (size_t i = 0; i < m->nreports; i++)
        put(&o, "#EXT-X-RENDITION-REPORT:URI=\"%s\",LAST-MSN=%" PRIu64 ",LAST-PART=%" PRIu32 "\n",
            m->reports[i].uri, m->reports[i].last_msn, m->reports[i].last_part);
    if (m->endlist)
        put(&o, "#EXT-X-ENDLIST\n");
    return finish(&o);
}

long hls_multivariant_render(const hls_variant_t *v, size_t n, char *buf, size_t cap)
{
    out_t o = {buf, cap, 0};

    if (n == 0)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (v[i].uri == NULL)
            return -EINVAL;
    put(&o, "#EXTM3U\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for (size_t i = 0; i < n; i++) {
        put(&o, "#EXT-X-STREAM-INF:BANDWIDTH=%" PRIu64, v[i].bandwidth);
        if (v[i].average_bandwidth > 0)
            put(&o, ",AVERAGE-BANDWIDTH=%" PRIu64, v[i].average_bandwidth);
        if (v[i].codecs != NULL)
            put(&o, ",CODECS=\"%s\"", v[i].codecs);
        if (v[i].width > 0 && v[i].height > 0)
            put(&o, ",RESOLUTION=%ux%u", v[i].width, v[i].height);
        if (v[i].frame_rate_milli > 0)
            put(&o, ",FRAME-RATE=" SEC_FMT, SEC_ARG(v[i].frame_rate_milli));
        put(&o, "\n%s\n", v[i].uri);
    }
    return finish(&o);
}

/* A decimal number of at most 16 digits with no sign, no leading junk. */
static int parse_dec(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;

    if (n == 0 || n > 16)
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -EINVAL;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (v > max)
        return -EINVAL;
    *out = v;
    return 0;
}

static int keyis(const char *k, size_t kn, const char *name)
{
    return kn == strlen(name) && memcmp(k, name, kn) == 0;
}

int hls_query_parse(const char *q, size_t len, hls_query_t *out)
{
    hls_query_t r;
    int seen_skip = 0, seen_sid = 0;
    size_t i = 0;

    memset(&r, 0, sizeof(r));
    if (len > HLS_QUERY_MAX)
        return -E2BIG;
    while (q != NULL && i < len) {
        size_t start = i, eq = (size_t)-1;
        const char *k, *v;
        size_t kn, vn;
        uint64_t num;

        while (i < len && q[i] != '&') {
            if (q[i] == '=' && eq == (size_t)-1)
                eq = i;
            i++;
        }
        k = q + start;
        kn = (eq == (size_t)-1 ? i : eq) - start;
        v = eq == (size_t)-1 ? q + i : q + eq + 1;
        vn = eq == (size_t)-1 ? 0 : i - eq - 1;
        i++; /* the '&' */
        if (keyis(k, kn, "_HLS_msn")) {
            if (r.has_msn || parse_dec(v, vn, MSN_MAX, &num) != 0)
                return -EINVAL;
            r.has_msn = 1;
            r.msn = num;
        } else if (keyis(k, kn, "_HLS_part")) {
            if (r.has_part || parse_dec(v, vn, PART_MAX, &num) != 0)
                return -EINVAL;
            r.has_part = 1;
            r.part = (uint32_t)num;
        } else if (keyis(k, kn, "_HLS_skip")) {
            if (seen_skip)
                return -EINVAL;
            seen_skip = 1;
            if (keyis(v, vn, "YES"))
                r.skip = HLS_SKIP_YES;
            else if (keyis(v, vn, "v2"))
                r.skip = HLS_SKIP_V2;
            else
                return -EINVAL;
        } else if (keyis(k, kn, "sid")) {
            if (seen_sid || vn == 0 || vn > HLS_SID_MAX)
                return -EINVAL;
            seen_sid = 1;
            for (size_t j = 0; j < vn; j++) {
                char c = v[j];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                      (c >= '0' && c <= '9') || c == '-' || c == '_'))
                    return -EINVAL;
            }
            memcpy(r.sid, v, vn);
            r.sid[vn] = '\0';
        }
    }
    if (r.has_part && !r.has_msn)
        return -EINVAL;
    *out = r;
    return 0;
}
