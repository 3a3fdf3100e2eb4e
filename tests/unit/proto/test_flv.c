/* Unit tests for proto/flv: header and tag output, tag parsing fed whole
 * and split at every byte boundary, and classification of H.264, AAC and
 * Enhanced RTMP (HEVC, AV1) tag bodies from crafted bytes. */
#include "proto/flv.h"

#include <check.h>
#include <errno.h>
#include <string.h>

START_TEST(header_output)
{
    uint8_t h[FLV_HEADER_LEN];
    static const uint8_t want[FLV_HEADER_LEN] = {'F', 'L', 'V', 1, 5, 0, 0, 0, 9, 0, 0, 0, 0};
    uint8_t flags;

    flv_header_encode(h, 1, 1);
    ck_assert_mem_eq(h, want, sizeof(want));
    flv_header_encode(h, 0, 1);
    ck_assert_int_eq(h[4], 1);
    flv_header_encode(h, 1, 0);
    ck_assert_int_eq(h[4], 4);
    ck_assert_int_eq(flv_header_parse(h, sizeof(h), &flags), FLV_HEADER_LEN);
    ck_assert_int_eq(flags, 4);
    for (size_t cut = 0; cut < sizeof(h); cut++)
        ck_assert_int_eq(flv_header_parse(h, cut, &flags), -EAGAIN);
    h[0] = 'G';
    ck_assert_int_eq(flv_header_parse(h, sizeof(h), &flags), -EPROTO);
}
END_TEST

START_TEST(tag_output)
{
    uint8_t t[FLV_TAG_HEADER_LEN + 3 + FLV_TAG_TRAILER_LEN];
    static const uint8_t want[] = {9, 0, 0, 3, 0x34, 0x56, 0x78, 0x12, 0, 0, 0,
                                   0xaa, 0xbb, 0xcc, 0, 0, 0, 14};
    flv_tag_t tag;

    flv_tag_header_encode(t, FLV_TAG_VIDEO, 0x12345678, 3);
    memcpy(t + FLV_TAG_HEADER_LEN, "\xaa\xbb\xcc", 3);
    flv_tag_trailer_encode(t + FLV_TAG_HEADER_LEN + 3, 3);
    ck_assert_mem_eq(t, want, sizeof(want));
    ck_assert_int_eq(flv_tag_parse(t, sizeof(t), 1 << 20, &tag), (ssize_t)sizeof(t));
    ck_assert_uint_eq(tag.timestamp, 0x12345678);
    ck_assert_int_eq(tag.type, FLV_TAG_VIDEO);
    ck_assert_int_eq(tag.len, 3);
    ck_assert_int_eq(tag.data[2], 0xcc);
}
END_TEST

typedef struct tag_case {
    const char *name;
    uint8_t in[32];
    size_t len;
    ssize_t result;
} tag_case_t;

static const tag_case_t tag_cases[] = {
    {"audio tag", {8, 0, 0, 2, 0, 0, 40, 0, 0, 0, 0, 0xaf, 0x01, 0, 0, 0, 13}, 17, 17},
    {"script tag", {18, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0x05, 0, 0, 0, 12}, 16, 16},
    {"empty video tag", {9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11}, 15, 15},
    {"unknown tag type", {7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11}, 15, -EPROTO},
    {"filter bit set", {0x29, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 11}, 15, -EPROTO},
    {"stream id not zero", {9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 11}, 15, -EPROTO},
    {"wrong previous tag size", {9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 12}, 15, -EPROTO},
    {"data over the limit", {9, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0}, 11, -EPROTO},
};

START_TEST(tag_parse_table)
{
    const tag_case_t *c = &tag_cases[_i];
    flv_tag_t tag;
    ssize_t rv = flv_tag_parse(c->in, c->len, 1024, &tag);

    ck_assert_msg(rv == c->result, "%s: %zd", c->name, rv);
    for (size_t cut = 1; cut < c->len; cut++) {
        ssize_t p = flv_tag_parse(c->in, cut, 1024, &tag);

        /* a prefix needs more bytes, unless the error is already visible */
        ck_assert_msg(p == -EAGAIN || (c->result < 0 && p == c->result), "%s cut %zu: %zd",
                      c->name, cut, p);
    }
}
END_TEST

START_TEST(video_h264)
{
    static const uint8_t seq[] = {0x17, 0x00, 0, 0, 0, 0x01, 0x64};
    static const uint8_t inter[] = {0x27, 0x01, 0xff, 0xff, 0xd8, 0, 0, 0, 1};
    flv_video_info_t v;

    ck_assert_int_eq(flv_video_parse(seq, sizeof(seq), &v), 0);
    ck_assert_int_eq(v.codec, FLV_VCODEC_H264);
    ck_assert_int_eq(v.keyframe, 1);
    ck_assert_int_eq(v.pkt, FLV_VPKT_SEQUENCE_HEADER);
    ck_assert_int_eq(v.enhanced, 0);
    ck_assert_int_eq(flv_video_parse(inter, sizeof(inter), &v), 0);
    ck_assert_int_eq(v.keyframe, 0);
    ck_assert_int_eq(v.pkt, FLV_VPKT_FRAME);
    ck_assert_int_eq(v.cts, -40);
    ck_assert_int_eq(flv_video_parse(inter, 3, &v), -EPROTO);
    ck_assert_int_eq(flv_video_parse(inter, 0, &v), -EPROTO);
    ck_assert_str_eq(flv_vcodec_name(FLV_VCODEC_H264), "h264");
}
END_TEST

START_TEST(video_enhanced)
{
    /* Enhanced RTMP: 1 bit IsExHeader, 3 bits frame type, 4 bits packet
     * type, then the FourCC */
    static const uint8_t hevc_seq[] = {0x90, 'h', 'v', 'c', '1', 0x01, 0x01};
    static const uint8_t hevc_key[] = {0x91, 'h', 'v', 'c', '1', 0x00, 0x00, 0x50, 0, 0, 0, 4};
    static const uint8_t hevc_x[] = {0xa3, 'h', 'v', 'c', '1', 0, 0, 0, 4};
    static const uint8_t av1_key[] = {0x91, 'a', 'v', '0', '1', 0x12, 0x00};
    static const uint8_t av1_end[] = {0x92, 'a', 'v', '0', '1'};
    static const uint8_t unknown[] = {0x91, 'x', 'y', 'z', '1', 0};
    flv_video_info_t v;

    ck_assert_int_eq(flv_video_parse(hevc_seq, sizeof(hevc_seq), &v), 0);
    ck_assert_int_eq(v.codec, FLV_VCODEC_HEVC);
    ck_assert_int_eq(v.enhanced, 1);
    ck_assert_int_eq(v.keyframe, 1);
    ck_assert_int_eq(v.pkt, FLV_VPKT_SEQUENCE_HEADER);
    ck_assert_int_eq(flv_video_parse(hevc_key, sizeof(hevc_key), &v), 0);
    ck_assert_int_eq(v.pkt, FLV_VPKT_FRAME);
    ck_assert_int_eq(v.cts, 0x50);
    ck_assert_int_eq(flv_video_parse(hevc_key, 6, &v), -EPROTO);   /* cts cut short */
    ck_assert_int_eq(flv_video_parse(hevc_x, sizeof(hevc_x), &v), 0);
    ck_assert_int_eq(v.keyframe, 0);
    ck_assert_int_eq(v.pkt, FLV_VPKT_FRAME);
    ck_assert_int_eq(v.cts, 0);
    ck_assert_int_eq(flv_video_parse(av1_key, sizeof(av1_key), &v), 0);
    ck_assert_int_eq(v.codec, FLV_VCODEC_AV1);
    ck_assert_int_eq(v.keyframe, 1);
    ck_assert_int_eq(flv_video_parse(av1_end, sizeof(av1_end), &v), 0);
    ck_assert_int_eq(v.pkt, FLV_VPKT_END);
    ck_assert_int_eq(flv_video_parse(unknown, sizeof(unknown), &v), 0);
    ck_assert_int_eq(v.codec, FLV_VCODEC_OTHER);
    ck_assert_int_eq(flv_video_parse(av1_key, 4, &v), -EPROTO);
    ck_assert_str_eq(flv_vcodec_name(FLV_VCODEC_HEVC), "hevc");
    ck_assert_str_eq(flv_vcodec_name(FLV_VCODEC_AV1), "av1");
}
END_TEST

START_TEST(audio)
{
    static const uint8_t aac_seq[] = {0xaf, 0x00, 0x12, 0x10};
    static const uint8_t aac_raw[] = {0xaf, 0x01, 0x21};
    static const uint8_t mp3[] = {0x2f, 0xff};
    flv_audio_info_t a;

    ck_assert_int_eq(flv_audio_parse(aac_seq, sizeof(aac_seq), &a), 0);
    ck_assert_int_eq(a.codec, 10);
    ck_assert_int_eq(a.seq_header, 1);
    ck_assert_int_eq(flv_audio_parse(aac_raw, sizeof(aac_raw), &a), 0);
    ck_assert_int_eq(a.seq_header, 0);
    ck_assert_int_eq(flv_audio_parse(aac_raw, 1, &a), -EPROTO);
    ck_assert_int_eq(flv_audio_parse(mp3, sizeof(mp3), &a), 0);
    ck_assert_int_eq(a.codec, 2);
    ck_assert_int_eq(flv_audio_parse(mp3, 0, &a), -EPROTO);
    ck_assert_str_eq(flv_acodec_name(10), "aac");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proto/flv");
    TCase *tc = tcase_create("output");

    tcase_add_test(tc, header_output);
    tcase_add_test(tc, tag_output);
    suite_add_tcase(s, tc);
    tc = tcase_create("parse");
    tcase_add_loop_test(tc, tag_parse_table, 0, sizeof(tag_cases) / sizeof(tag_cases[0]));
    tcase_add_test(tc, video_h264);
    tcase_add_test(tc, video_enhanced);
    tcase_add_test(tc, audio);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
