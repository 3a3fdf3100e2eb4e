/* transcoder/cmaf: CMAF packaging of one stream for LL-HLS.
 *
 * libavformat's mp4 muxer writes fragmented MP4 with an empty moov into
 * memory (a custom AVIOContext). The packager turns the stream's packets
 * into an init segment and a sliding window of media segments, each cut
 * into parts of about part_ms at sample boundaries. Segments start on a
 * video key frame (audio-only streams: on any frame) once segment_ms have
 * passed, so a longer source GOP makes longer segments. Only the last
 * window_segments complete segments are kept; older ones are released.
 *
 * Packaging runs once per stream; viewers share the bytes by reference
 * (tc_cmaf_buf_ref). Memory is tagged CORE_TAG_HLS. Loop thread only. */
#ifndef TC_CMAF_H
#define TC_CMAF_H

#include <stddef.h>
#include <stdint.h>

enum {
    TC_CMAF_VIDEO = 0,
    TC_CMAF_AUDIO = 1,
};

/* Most parts one segment may hold; past it a segment is cut without a key
 * frame, so a source that never sends one cannot grow memory. */
#define TC_CMAF_MAX_PARTS 300

typedef struct tc_cmaf_conf {
    uint32_t part_ms;          /* part target, 100..1000 */
    uint32_t segment_ms;       /* segment target, >= part_ms */
    uint32_t window_segments;  /* complete segments kept, >= 1 */
} tc_cmaf_conf_t;

/* Codec parameters of one track. codec_id is an enum AVCodecID
 * (AV_CODEC_ID_H264 or AV_CODEC_ID_HEVC for video, AV_CODEC_ID_AAC for
 * audio). extradata is the avcC / hvcC record or the AAC
 * AudioSpecificConfig (borrowed; copied). */
typedef struct tc_cmaf_track {
    int codec_id;
    const uint8_t *extradata;
    size_t extradata_len;
    int width, height;          /* video; 0: read from the H.264 SPS */
    int sample_rate, channels;  /* audio */
} tc_cmaf_track_t;

/* One media packet: payload as carried in FLV/MP4 (length-prefixed NAL
 * units, raw AAC frames), borrowed for the duration of the call. */
typedef struct tc_cmaf_packet {
    int track;                  /* TC_CMAF_VIDEO or TC_CMAF_AUDIO */
    int64_t dts_ms, pts_ms;
    int keyframe;
    const uint8_t *data;
    size_t len;
} tc_cmaf_packet_t;

/* Reference-counted bytes of the init segment or of one part. */
typedef struct tc_cmaf_buf {
    int refs;
    size_t len;
    uint8_t data[];
} tc_cmaf_buf_t;

void tc_cmaf_buf_ref(tc_cmaf_buf_t *b);
/* Drop one reference; frees at zero. *bp = NULL. NULL is a no-op. */
void tc_cmaf_buf_unref(tc_cmaf_buf_t **bp);

typedef struct tc_cmaf_part {
    tc_cmaf_buf_t *buf;
    uint32_t duration_ms;
    int independent;            /* begins with a key frame */
} tc_cmaf_part_t;

typedef struct tc_cmaf_seg {
    uint64_t msn;
    int64_t pdt_ms;             /* wall clock of its first sample (Unix ms) */
    uint32_t duration_ms;       /* sum of its parts */
    int complete;               /* the next segment has begun */
    tc_cmaf_part_t *parts;
    size_t nparts, cap;
    size_t bytes;
} tc_cmaf_seg_t;

typedef struct tc_cmaf tc_cmaf_t;

/* Called after each new part (and after a segment completes). */
typedef void (*tc_cmaf_cb)(void *arg);

/* New packager for the given tracks (either may be NULL, not both).
 * Segments are numbered from first_msn. The init segment exists once this
 * returns. cb(arg) runs on every new part. Returns 0, -EINVAL (bad
 * configuration or codec), -ENOMEM, -EIO (the muxer refused the tracks). */
int tc_cmaf_new(tc_cmaf_t **out, const tc_cmaf_conf_t *conf, const tc_cmaf_track_t *video,
                const tc_cmaf_track_t *audio, uint64_t first_msn, tc_cmaf_cb cb, void *arg);

/* Flush what is pending (as a last part) and free; *cp = NULL. Buffers
 * still referenced elsewhere stay valid until unreferenced. */
void tc_cmaf_free(tc_cmaf_t **cp);

/* Feed one packet. Packets before the first video key frame are dropped;
 * dts going backwards is clamped. wall_ms is the wall clock at arrival
 * (used for EXT-X-PROGRAM-DATE-TIME of the first segment). Returns 0,
 * -EINVAL (unknown track, empty payload), -ENOMEM or -EIO (the muxer
 * failed; the packager is unusable then). */
int tc_cmaf_write(tc_cmaf_t *c, const tc_cmaf_packet_t *pkt, int64_t wall_ms);

/* Emit what is pending as a final part and complete the segment. */
int tc_cmaf_finish(tc_cmaf_t *c);

/* The init segment (borrowed; tc_cmaf_buf_ref to keep it). */
tc_cmaf_buf_t *tc_cmaf_init_seg(const tc_cmaf_t *c);

/* Segments in the window, oldest first; the last one may be incomplete.
 * Borrowed until the next write. */
size_t tc_cmaf_nsegs(const tc_cmaf_t *c);
const tc_cmaf_seg_t *tc_cmaf_seg_at(const tc_cmaf_t *c, size_t i);
/* The segment with that msn, NULL when outside the window. */
const tc_cmaf_seg_t *tc_cmaf_seg(const tc_cmaf_t *c, uint64_t msn);

/* msn of the segment in progress (the next to complete). */
uint64_t tc_cmaf_tail_msn(const tc_cmaf_t *c);

/* Longest complete segment so far, in ms. */
uint32_t tc_cmaf_max_segment_ms(const tc_cmaf_t *c);

typedef struct tc_cmaf_info {
    char codecs[64];            /* RFC 6381, "" when unknown */
    int width, height;
    uint32_t frame_rate_milli;  /* 0: unknown */
    uint64_t peak_bps, avg_bps; /* over the window; 0: unknown */
} tc_cmaf_info_t;

/* What a multivariant playlist says about the stream. */
void tc_cmaf_info(const tc_cmaf_t *c, tc_cmaf_info_t *out);

#endif
