/* proto/hls: Low-Latency HLS playlists (RFC 8216bis) as pure functions.
 *
 * Rendering takes a description of the playlist (segments, parts, the
 * preload hint, server control, a delta-update skip) that the caller owns
 * and writes text into a caller buffer, snprintf style: the return value
 * is the length the whole rendering needs, and at most cap bytes (with a
 * NUL when cap > 0) are written. Nothing here allocates, logs or does I/O.
 *
 * Times are milliseconds; they are printed in seconds with three decimals. */
#ifndef PROTO_HLS_H
#define PROTO_HLS_H

#include <stddef.h>
#include <stdint.h>

/* Longest session id accepted in a query (characters, [A-Za-z0-9_-]). */
#define HLS_SID_MAX 32
/* Longest query string hls_query_parse() looks at. */
#define HLS_QUERY_MAX 2048

typedef struct hls_part {
    uint32_t duration_ms;
    int independent;        /* starts with a key frame: INDEPENDENT=YES */
    const char *uri;        /* borrowed */
} hls_part_t;

typedef struct hls_segment {
    uint64_t msn;           /* media sequence number */
    uint32_t duration_ms;
    int64_t pdt_ms;         /* wall clock of the first sample (Unix ms); < 0: none */
    int discontinuity;      /* EXT-X-DISCONTINUITY before it */
    const char *uri;        /* borrowed */
    const hls_part_t *parts;/* borrowed; listed only for the last segments */
    size_t nparts;
} hls_segment_t;

typedef struct hls_report {
    const char *uri;        /* borrowed: the other rendition's media playlist */
    uint64_t last_msn;
    uint32_t last_part;
} hls_report_t;

typedef struct hls_media {
    unsigned version;            /* EXT-X-VERSION */
    unsigned target_duration_s;  /* EXT-X-TARGETDURATION */
    uint32_t part_target_ms;     /* EXT-X-PART-INF; 0: not low-latency */
    uint32_t part_hold_back_ms;  /* SERVER-CONTROL PART-HOLD-BACK (0: omitted) */
    uint32_t can_skip_until_ms;  /* SERVER-CONTROL CAN-SKIP-UNTIL (0: omitted) */
    int can_skip_dateranges;     /* CAN-SKIP-DATERANGES=YES */
    int can_block_reload;        /* CAN-BLOCK-RELOAD=YES */
    const char *map_uri;         /* EXT-X-MAP URI, NULL: none */
    const hls_segment_t *segs;   /* complete segments, oldest first; msn consecutive */
    size_t nsegs;
    uint64_t tail_msn;           /* msn of the segment in progress */
    const hls_part_t *tail;      /* its parts so far (may be 0) */
    size_t ntail;
    int64_t tail_pdt_ms;         /* PDT of the segment in progress when nsegs == 0 */
    size_t parts_segments;       /* list parts of the last this-many complete segments */
    const char *preload_uri;     /* EXT-X-PRELOAD-HINT TYPE=PART, NULL: none */
    size_t skip;                 /* replace the first skip segments by EXT-X-SKIP */
    int skip_v2;                 /* the request was _HLS_skip=v2 */
    const hls_report_t *reports; /* EXT-X-RENDITION-REPORT */
    size_t nreports;
    int endlist;                 /* EXT-X-ENDLIST */
} hls_media_t;

/* Render a media playlist. m is borrowed. Returns the length of the whole
 * text (excluding the NUL); the output is complete only if that is < cap.
 * Returns -EINVAL if m is inconsistent (skip > nsegs, skip without
 * can_skip_until_ms, parts listed for a skipped segment). */
long hls_media_render(const hls_media_t *m, char *buf, size_t cap);

/* Number of leading complete segments a delta update may replace by
 * EXT-X-SKIP: those that end at least can_skip_until_ms before the end of
 * the playlist (the last complete segment plus the tail parts), never one
 * whose parts are listed. 0 when delta updates are off. */
size_t hls_media_skippable(const hls_media_t *m);

typedef struct hls_variant {
    uint64_t bandwidth;          /* bits per second (peak) */
    uint64_t average_bandwidth;  /* 0: omitted */
    const char *codecs;          /* RFC 6381, e.g. "avc1.64001f,mp4a.40.2"; NULL: omitted */
    unsigned width, height;      /* 0: RESOLUTION omitted */
    uint32_t frame_rate_milli;   /* frames per 1000 s; 0: omitted */
    const char *uri;             /* borrowed */
} hls_variant_t;

/* Render a multivariant playlist with one EXT-X-STREAM-INF per variant.
 * Returns as hls_media_render; -EINVAL for no variants or a NULL uri. */
long hls_multivariant_render(const hls_variant_t *v, size_t n, char *buf, size_t cap);

typedef enum hls_skip {
    HLS_SKIP_NO = 0,
    HLS_SKIP_YES,   /* _HLS_skip=YES */
    HLS_SKIP_V2,    /* _HLS_skip=v2: date ranges too */
} hls_skip_t;

typedef struct hls_query {
    int has_msn;
    uint64_t msn;                /* _HLS_msn */
    int has_part;
    uint32_t part;               /* _HLS_part; 0 when only _HLS_msn was given */
    hls_skip_t skip;             /* _HLS_skip */
    char sid[HLS_SID_MAX + 1];   /* sid=..., "" when absent */
} hls_query_t;

/* Parse the delivery directives of a playlist request from the query
 * string q[0..len) (without the '?'; NULL or empty is fine). Other
 * parameters are ignored. Returns 0, or -EINVAL when a directive is
 * malformed (not a decimal number, out of range, repeated, _HLS_part
 * without _HLS_msn, an unknown _HLS_skip value, a bad sid) and -E2BIG when
 * len exceeds HLS_QUERY_MAX. *out is fully written on success. */
int hls_query_parse(const char *q, size_t len, hls_query_t *out);

#endif
