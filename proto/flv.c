/* proto/flv: FLV header, tags and tag-body classification. */
#include "proto/flv.h"

#include <errno.h>

#define FOURCC(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | (uint32_t)(c) << 8 | (uint32_t)(d))

static void be24(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 16);
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)v;
}

static uint32_t get24(const uint8_t *p)
{
    return (uint32_t)p[0] << 16 | (uint32_t)p[1] << 8 | p[2];
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | get24(p + 1);
}

void flv_header_encode(uint8_t *out, int has_audio, int has_video)
{
    out[0] = 'F';
    out[1] = 'L';
    out[2] = 'V';
    out[3] = 1;
    out[4] = (uint8_t)((has_audio ? 4 : 0) | (has_video ? 1 : 0));
    out[5] = 0;
    out[6] = 0;
    out[7] = 0;
    out[8] = 9;
    out[9] = out[10] = out[11] = out[12] = 0;
}

void flv_tag_header_encode(uint8_t *out, uint8_t type, uint32_t timestamp, uint32_t data_len)
{
    out[0] = type;
    be24(out + 1, data_len);
    be24(out + 4, timestamp & 0xffffff);
    out[7] = (uint8_t)(timestamp >> 24);
    out[8] = out[9] = out[10] = 0;
}

void flv_tag_trailer_encode(uint8_t *out, uint32_t data_len)
{
    uint32_t v = data_len + FLV_TAG_HEADER_LEN;

    out[0] = (uint8_t)(v >> 24);
    be24(out + 1, v);
}

ssize_t flv_header_parse(const uint8_t *buf, size_t len, uint8_t *flags)
{
    uint32_t off;

    for (size_t i = 0; i < 3 && i < len; i++)
        if (buf[i] != "FLV"[i])
            return -EPROTO;
    if (len < 9)
        return -EAGAIN;
    off = get32(buf + 5);
    if (buf[3] != 1 || (buf[4] & ~5u) != 0 || off < 9 || off > 1024)
        return -EPROTO;
    if (len < (size_t)off + 4)
        return -EAGAIN;
    if (get32(buf + off) != 0)
        return -EPROTO;
    *flags = buf[4];
    return (ssize_t)off + 4;
}

ssize_t flv_tag_parse(const uint8_t *buf, size_t len, uint32_t max_len, flv_tag_t *out)
{
    uint32_t dlen;

    if (len >= 1 && ((buf[0] & 0xe0) != 0 ||
                     ((buf[0] & 0x1f) != FLV_TAG_AUDIO && (buf[0] & 0x1f) != FLV_TAG_VIDEO &&
                      (buf[0] & 0x1f) != FLV_TAG_SCRIPT)))
        return -EPROTO;   /* reserved/filter bits or unknown type */
    if (len < FLV_TAG_HEADER_LEN)
        return -EAGAIN;
    dlen = get24(buf + 1);
    if (dlen > max_len || get24(buf + 8) != 0)
        return -EPROTO;
    if (len < FLV_TAG_HEADER_LEN + (size_t)dlen + FLV_TAG_TRAILER_LEN)
        return -EAGAIN;
    if (get32(buf + FLV_TAG_HEADER_LEN + dlen) != dlen + FLV_TAG_HEADER_LEN)
        return -EPROTO;
    out->type = buf[0];
    out->timestamp = get24(buf + 4) | (uint32_t)buf[7] << 24;
    out->data = buf + FLV_TAG_HEADER_LEN;
    out->len = dlen;
    return FLV_TAG_HEADER_LEN + (ssize_t)dlen + FLV_TAG_TRAILER_LEN;
}

static int32_t sext24(uint32_t v)
{
    return (v & 0x800000) ? (int32_t)(v | 0xff000000u) : (int32_t)v;
}

int flv_video_parse(const uint8_t *data, size_t len, flv_video_info_t *out)
{
    uint8_t b;

    if (len < 1)
        return -EPROTO;
    b = data[0];
    out->cts = 0;
    out->fourcc = 0;
    if (b & 0x80) {
        /* Enhanced RTMP: frame type, packet type, FourCC */
        unsigned pt = b & 0x0f;

        if (len < 5)
            return -EPROTO;
        out->enhanced = 1;
        out->keyframe = ((b >> 4) & 7) == 1;
        out->fourcc = get32(data + 1);
        switch (out->fourcc) {
        case FOURCC('h', 'v', 'c', '1'): out->codec = FLV_VCODEC_HEVC; break;
        case FOURCC('a', 'v', '0', '1'): out->codec = FLV_VCODEC_AV1; break;
        case FOURCC('v', 'p', '0', '9'): out->codec = FLV_VCODEC_VP9; break;
        default: out->codec = FLV_VCODEC_OTHER; break;
        }
        switch (pt) {
        case 0: out->pkt = FLV_VPKT_SEQUENCE_HEADER; break;
        case 1:
            out->pkt = FLV_VPKT_FRAME;
            /* HEVC CodedFrames carry a composition time; AV1/VP9 do not */
            if (out->codec == FLV_VCODEC_HEVC) {
                if (len < 8)
                    return -EPROTO;
                out->cts = sext24(get24(data + 5));
            }
            break;
        case 2: out->pkt = FLV_VPKT_END; break;
        case 3: out->pkt = FLV_VPKT_FRAME; break;   /* CodedFramesX */
        default: out->pkt = FLV_VPKT_OTHER; break;
        }
        return 0;
    }
    out->enhanced = 0;
    out->keyframe = (b >> 4) == 1;
    out->codec = (b & 0x0f) == 7 ? FLV_VCODEC_H264 : (b & 0x0f) == 12 ? FLV_VCODEC_HEVC
                                                                      : FLV_VCODEC_OTHER;
    if (out->codec == FLV_VCODEC_OTHER) {
        out->pkt = FLV_VPKT_FRAME;
        return 0;
    }
    if (len < 5)
        return -EPROTO;
    out->pkt = data[1] == 0 ? FLV_VPKT_SEQUENCE_HEADER : data[1] == 1 ? FLV_VPKT_FRAME
             : data[1] == 2 ? FLV_VPKT_END : FLV_VPKT_OTHER;
    out->cts = sext24(get24(data + 2));
    return 0;
}

int flv_audio_parse(const uint8_t *data, size_t len, flv_audio_info_t *out)
{
    if (len < 1)
        return -EPROTO;
    out->codec = data[0] >> 4;
    out->seq_header = 0;
    if (out->codec == 10) {
        if (len < 2)
            return -EPROTO;
        out->seq_header = data[1] == 0;
    }
    return 0;
}

const char *flv_vcodec_name(flv_vcodec_t c)
{
    switch (c) {
    case FLV_VCODEC_H264: return "h264";
    case FLV_VCODEC_HEVC: return "hevc";
    case FLV_VCODEC_AV1: return "av1";
    case FLV_VCODEC_VP9: return "vp9";
    case FLV_VCODEC_NONE: return "none";
    default: return "other";
    }
}

const char *flv_acodec_name(int codec)
{
    switch (codec) {
    case 10: return "aac";
    case 2: return "mp3";
    case 11: return "speex";
    case 13: return "opus";
    case -1: return "none";
    default: return "other";
    }
}
