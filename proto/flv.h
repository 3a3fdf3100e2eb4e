/* proto/flv: FLV file header and tags, and the audio/video tag bodies
 * RTMP and FLV share (legacy codec ids and Enhanced RTMP FourCC), as pure
 * functions over bytes. */
#ifndef PROTO_FLV_H
#define PROTO_FLV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    FLV_TAG_AUDIO = 8,
    FLV_TAG_VIDEO = 9,
    FLV_TAG_SCRIPT = 18,
};

#define FLV_HEADER_LEN 13      /* 9-byte header + PreviousTagSize0 */
#define FLV_TAG_HEADER_LEN 11
#define FLV_TAG_TRAILER_LEN 4  /* PreviousTagSize */
#define FLV_MAX_TAG_DATA 0xffffff

/* Video codecs: legacy ids, and Enhanced RTMP FourCCs mapped to ids of
 * our own above 0xff. */
typedef enum flv_vcodec {
    FLV_VCODEC_NONE = 0,
    FLV_VCODEC_H264 = 7,
    FLV_VCODEC_HEVC = 0x100,   /* 'hvc1' */
    FLV_VCODEC_AV1 = 0x101,    /* 'av01' */
    FLV_VCODEC_VP9 = 0x102,    /* 'vp09' */
    FLV_VCODEC_OTHER = 0x1ff,
} flv_vcodec_t;

typedef enum flv_vpkt {
    FLV_VPKT_SEQUENCE_HEADER = 0,
    FLV_VPKT_FRAME = 1,
    FLV_VPKT_END = 2,
    FLV_VPKT_OTHER = 3,        /* metadata, MPEG-2 TS sequence start, ... */
} flv_vpkt_t;

typedef struct flv_video_info {
    flv_vcodec_t codec;
    int keyframe;              /* frame type 1 */
    int enhanced;              /* Enhanced RTMP header */
    flv_vpkt_t pkt;
    int32_t cts;               /* composition time offset, ms */
    uint32_t fourcc;           /* enhanced only */
} flv_video_info_t;

typedef struct flv_audio_info {
    int codec;                 /* SoundFormat: 10 = AAC, 2 = MP3, ... */
    int seq_header;            /* AAC sequence header (AudioSpecificConfig) */
} flv_audio_info_t;

/* Write the 9-byte FLV header and a zero PreviousTagSize into out
 * (FLV_HEADER_LEN bytes). */
void flv_header_encode(uint8_t *out, int has_audio, int has_video);

/* Write a tag header (FLV_TAG_HEADER_LEN bytes) for data_len bytes of data
 * at timestamp ms (32 bits, upper 8 in the extension byte). */
void flv_tag_header_encode(uint8_t *out, uint8_t type, uint32_t timestamp, uint32_t data_len);

/* Write the PreviousTagSize (FLV_TAG_TRAILER_LEN bytes) after data_len
 * bytes of data. */
void flv_tag_trailer_encode(uint8_t *out, uint32_t data_len);

typedef struct flv_tag {
    uint8_t type;
    uint32_t timestamp;
    const uint8_t *data;       /* borrowed, points into the input */
    uint32_t len;
} flv_tag_t;

/* Parse the FLV header at buf: returns FLV_HEADER_LEN (or the header's
 * data offset + 4) consumed, -EAGAIN, or -EPROTO. *flags gets the
 * audio (4) / video (1) flags. */
ssize_t flv_header_parse(const uint8_t *buf, size_t len, uint8_t *flags);

/* Parse one tag with its trailing PreviousTagSize. Returns bytes
 * consumed, -EAGAIN when incomplete, -EPROTO when malformed (reserved
 * bits, filtered tags, a PreviousTagSize that does not match, data over
 * max_len). */
ssize_t flv_tag_parse(const uint8_t *buf, size_t len, uint32_t max_len, flv_tag_t *out);

/* Classify a video tag body (the RTMP video message payload). Returns 0
 * or -EPROTO when too short for its header. */
int flv_video_parse(const uint8_t *data, size_t len, flv_video_info_t *out);

/* Classify an audio tag body. Returns 0 or -EPROTO. */
int flv_audio_parse(const uint8_t *data, size_t len, flv_audio_info_t *out);

/* Short names for the API: "h264", "hevc", "av1", "vp9", "aac", "mp3". */
const char *flv_vcodec_name(flv_vcodec_t c);
const char *flv_acodec_name(int codec);

#endif
