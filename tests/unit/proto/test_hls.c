/* Unit tests for proto/hls: playlists rendered against expected text, and
 * delivery directives parsed from tables of queries. */
#include "proto/hls.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Render into a buffer of exactly the size asked for, and check that every
 * smaller buffer reports the same length and stays NUL-terminated. */
static void check_media(const hls_media_t *m, const char *want)
{
    char buf[8192];
    long n = hls_media_render(m, buf, sizeof(buf));

    ck_assert_int_ge(n, 0);
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(n, (long)strlen(want));
    for (size_t cap = 0; cap <= (size_t)n; cap++) {
        char small[8192];

        memset(small, 'x', sizeof(small));
        ck_assert_int_eq(hls_media_render(m, small, cap), n);
        if (cap > 0) {
            ck_assert_int_eq(strlen(small), cap - 1);
            ck_assert_int_eq(memcmp(small, want, cap - 1), 0);
        }
        ck_assert_int_eq(small[cap], 'x');
    }
}

static const hls_part_t seg2_parts[] = {
    {200, 1, "p3.0.m4s"}, {200, 0, "p3.1.m4s"}, {200, 0, "p3.2.m4s"},
    {200, 0, "p3.3.m4s"}, {200, 0, "p3.4.m4s"},
};
static const hls_part_t tail_parts[] = {{200, 1, "p4.0.m4s"}, {167, 0, "p4.1.m4s"}};

static hls_segment_t segs[] = {
    {1, 1000, 1700000000000, 0, "s1.m4s", NULL, 0},
    {2, 1000, 1700000001000, 0, "s2.m4s", NULL, 0},
    {3, 1000, 1700000002000, 0, "s3.m4s", seg2_parts, 5},
};

static hls_media_t base_media(void)
{
    hls_media_t m = {
        .version = 9,
        .target_duration_s = 1,
        .part_target_ms = 200,
        .part_hold_back_ms = 600,
        .can_skip_until_ms = 6000,
        .can_block_reload = 1,
        .map_uri = "init.mp4",
        .segs = segs,
        .nsegs = 3,
        .tail_msn = 4,
        .tail = tail_parts,
        .ntail = 2,
        .tail_pdt_ms = -1,
        .parts_segments = 1,
        .preload_uri = "p4.2.m4s",
    };
    return m;
}

START_TEST(media_full)
{
    hls_media_t m = base_media();

    check_media(&m,
                "#EXTM3U\n"
                "#EXT-X-VERSION:9\n"
                "#EXT-X-TARGETDURATION:1\n"
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.000,PART-HOLD-BACK=0.600\n"
                "#EXT-X-PART-INF:PART-TARGET=0.200\n"
                "#EXT-X-MEDIA-SEQUENCE:1\n"
                "#EXT-X-MAP:URI=\"init.mp4\"\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.000Z\n"
                "#EXTINF:1.000,\n"
                "s1.m4s\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z\n"
                "#EXTINF:1.000,\n"
                "s2.m4s\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.0.m4s\",INDEPENDENT=YES\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.1.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.2.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.3.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.4.m4s\"\n"
                "#EXTINF:1.000,\n"
                "s3.m4s\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p4.0.m4s\",INDEPENDENT=YES\n"
                "#EXT-X-PART:DURATION=0.167,URI=\"p4.1.m4s\"\n"
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p4.2.m4s\"\n");
}
END_TEST

START_TEST(media_empty_stream)
{
    /* before the first part exists: the hint alone, sequence 1 */
    hls_media_t m = base_media();

    m.nsegs = 0;
    m.ntail = 0;
    m.tail_msn = 1;
    m.preload_uri = "p1.0.m4s";
    m.can_skip_until_ms = 0;
    check_media(&m,
                "#EXTM3U\n"
                "#EXT-X-VERSION:9\n"
                "#EXT-X-TARGETDURATION:1\n"
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600\n"
                "#EXT-X-PART-INF:PART-TARGET=0.200\n"
                "#EXT-X-MEDIA-SEQUENCE:1\n"
                "#EXT-X-MAP:URI=\"init.mp4\"\n"
                "#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"p1.0.m4s\"\n");
}
END_TEST

START_TEST(media_tail_only_has_pdt)
{
    hls_media_t m = base_media();

    m.nsegs = 0;
    m.tail_msn = 1;
    m.tail_pdt_ms = 1700000000250;
    m.ntail = 1;
    m.can_skip_until_ms = 0;
    m.can_block_reload = 0;
    m.part_hold_back_ms = 0;
    m.preload_uri = NULL;
    m.endlist = 1;
    check_media(&m,
                "#EXTM3U\n"
                "#EXT-X-VERSION:9\n"
                "#EXT-X-TARGETDURATION:1\n"
                "#EXT-X-PART-INF:PART-TARGET=0.200\n"
                "#EXT-X-MEDIA-SEQUENCE:1\n"
                "#EXT-X-MAP:URI=\"init.mp4\"\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:20.250Z\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p4.0.m4s\",INDEPENDENT=YES\n"
                "#EXT-X-ENDLIST\n");
}
END_TEST

START_TEST(media_skip)
{
    hls_media_t m = base_media();

    m.can_skip_until_ms = 2000;
    /* total 3367 ms; s1 ends at 1000 <= 1367 and may go, s2 ends at 2000 */
    ck_assert_uint_eq(hls_media_skippable(&m), 1);
    m.skip = 1;
    m.skip_v2 = 1;
    m.can_skip_dateranges = 1;
    m.preload_uri = NULL;
    m.ntail = 0;
    check_media(&m,
                "#EXTM3U\n"
                "#EXT-X-VERSION:9\n"
                "#EXT-X-TARGETDURATION:1\n"
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=2.000,"
                "CAN-SKIP-DATERANGES=YES,PART-HOLD-BACK=0.600\n"
                "#EXT-X-PART-INF:PART-TARGET=0.200\n"
                "#EXT-X-MEDIA-SEQUENCE:1\n"
                "#EXT-X-SKIP:SKIPPED-SEGMENTS=1,RECENTLY-REMOVED-DATERANGES=\"\"\n"
                "#EXT-X-MAP:URI=\"init.mp4\"\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z\n"
                "#EXTINF:1.000,\n"
                "s2.m4s\n"
                "#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:22.000Z\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.0.m4s\",INDEPENDENT=YES\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.1.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.2.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.3.m4s\"\n"
                "#EXT-X-PART:DURATION=0.200,URI=\"p3.4.m4s\"\n"
                "#EXTINF:1.000,\n"
                "s3.m4s\n");
}
END_TEST

START_TEST(media_skippable_bounds)
{
    hls_media_t m = base_media();

    /* delta updates off */
    m.can_skip_until_ms = 0;
    ck_assert_uint_eq(hls_media_skippable(&m), 0);
    /* a boundary shorter than the playlist never reaches segments with parts */
    m.can_skip_until_ms = 1;
    ck_assert_uint_eq(hls_media_skippable(&m), 2);
    /* longer than the playlist: nothing */
    m.can_skip_until_ms = 6000;
    ck_assert_uint_eq(hls_media_skippable(&m), 0);
    /* exactly at the end of s2: 3367 - 1367 = 2000 */
    m.can_skip_until_ms = 1367;
    ck_assert_uint_eq(hls_media_skippable(&m), 2);
    m.can_skip_until_ms = 1368;
    ck_assert_uint_eq(hls_media_skippable(&m), 1);
}
END_TEST

START_TEST(media_inconsistent)
{
    hls_media_t m = base_media();
    char buf[64];

    m.skip = 4;
    ck_assert_int_eq(hls_media_render(&m, buf, sizeof(buf)), -EINVAL);
    m.skip = 3; /* s3's parts are listed */
    ck_assert_int_eq(hls_media_render(&m, buf, sizeof(buf)), -EINVAL);
    m.skip = 1;
    m.can_skip_until_ms = 0;
    ck_assert_int_eq(hls_media_render(&m, buf, sizeof(buf)), -EINVAL);
}
END_TEST

START_TEST(media_discontinuity_and_reports)
{
    static const hls_report_t rep[] = {{"../720p/index.m3u8", 41, 3}};
    hls_segment_t s[] = {{40, 2002, -1, 1, "s40.m4s", NULL, 0}};
    hls_media_t m = {
        .version = 9,
        .target_duration_s = 2,
        .map_uri = "init.mp4",
        .segs = s,
        .nsegs = 1,
        .tail_msn = 41,
        .tail_pdt_ms = -1,
        .reports = rep,
        .nreports = 1,
    };

    check_media(&m,
                "#EXTM3U\n"
                "#EXT-X-VERSION:9\n"
                "#EXT-X-TARGETDURATION:2\n"
                "#EXT-X-MEDIA-SEQUENCE:40\n"
                "#EXT-X-MAP:URI=\"init.mp4\"\n"
                "#EXT-X-DISCONTINUITY\n"
                "#EXTINF:2.002,\n"
                "s40.m4s\n"
                "#EXT-X-RENDITION-REPORT:URI=\"../720p/index.m3u8\",LAST-MSN=41,LAST-PART=3\n");
}
END_TEST

START_TEST(multivariant)
{
    hls_variant_t v[] = {
        {2500000, 2000000, "avc1.64001f,mp4a.40.2", 1280, 720, 29970, "index.m3u8?sid=abc"},
        {96000, 0, "mp4a.40.2", 0, 0, 0, "audio.m3u8"},
    };
    char buf[1024];
    const char *want =
        "#EXTM3U\n"
        "#EXT-X-INDEPENDENT-SEGMENTS\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=2500000,AVERAGE-BANDWIDTH=2000000,"
        "CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970\n"
        "index.m3u8?sid=abc\n"
        "#EXT-X-STREAM-INF:BANDWIDTH=96000,CODECS=\"mp4a.40.2\"\n"
        "audio.m3u8\n";
    long n = hls_multivariant_render(v, 2, buf, sizeof(buf));

    ck_assert_int_eq(n, (long)strlen(want));
    ck_assert_str_eq(buf, want);
    ck_assert_int_eq(hls_multivariant_render(v, 2, buf, 10), n);
    ck_assert_int_eq(strlen(buf), 9);
    ck_assert_int_eq(hls_multivariant_render(v, 0, buf, sizeof(buf)), -EINVAL);
    v[1].uri = NULL;
    ck_assert_int_eq(hls_multivariant_render(v, 2, buf, sizeof(buf)), -EINVAL);
}
END_TEST

typedef struct qcase {
    const char *q;
    int rv;
    int has_msn;
    uint64_t msn;
    int has_part;
    uint32_t part;
    hls_skip_t skip;
    const char *sid;
} qcase_t;

static const qcase_t qcases[] = {
    {"", 0, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=12", 0, 1, 12, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=12&_HLS_part=3", 0, 1, 12, 1, 3, HLS_SKIP_NO, ""},
    {"_HLS_part=3&_HLS_msn=12", 0, 1, 12, 1, 3, HLS_SKIP_NO, ""},
    {"_HLS_msn=0&_HLS_part=0&_HLS_skip=YES", 0, 1, 0, 1, 0, HLS_SKIP_YES, ""},
    {"_HLS_skip=v2&sid=Ab-9_z", 0, 0, 0, 0, 0, HLS_SKIP_V2, "Ab-9_z"},
    {"foo=bar&_HLS_report=../x.m3u8&&_HLS_msn=7&x", 0, 1, 7, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=9007199254740992", 0, 1, 9007199254740992ull, 0, 0, HLS_SKIP_NO, ""},
    {"sid=0123456789abcdef0123456789abcdef", 0, 0, 0, 0, 0, HLS_SKIP_NO,
     "0123456789abcdef0123456789abcdef"},
    /* malformed */
    {"_HLS_part=3", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=-1", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=+1", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=1x", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn= 1", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=9007199254740993", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=99999999999999999999", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=1&_HLS_msn=1", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=1&_HLS_part=1000001", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_msn=1&_HLS_part=1&_HLS_part=2", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_skip=yes", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_skip=", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"_HLS_skip=YES&_HLS_skip=YES", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"sid=", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"sid=a.b", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"sid=a%20b", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"sid=0123456789abcdef0123456789abcdefX", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
    {"sid=a&sid=b", -EINVAL, 0, 0, 0, 0, HLS_SKIP_NO, ""},
};

START_TEST(query_table)
{
    const qcase_t *c = &qcases[_i];
    hls_query_t q;
    int rv;

    memset(&q, 0x5a, sizeof(q));
    rv = hls_query_parse(c->q, strlen(c->q), &q);
    ck_assert_msg(rv == c->rv, "query '%s': %d, want %d", c->q, rv, c->rv);
    if (rv != 0)
        return;
    ck_assert_int_eq(q.has_msn, c->has_msn);
    ck_assert_uint_eq(q.msn, c->msn);
    ck_assert_int_eq(q.has_part, c->has_part);
    ck_assert_uint_eq(q.part, c->part);
    ck_assert_int_eq(q.skip, c->skip);
    ck_assert_str_eq(q.sid, c->sid);
}
END_TEST

START_TEST(query_prefix_is_not_the_whole)
{
    /* the length bounds the parse: a prefix of a valid query is parsed as
     * itself, never past len */
    const char *q = "_HLS_msn=12&_HLS_part=3";
    hls_query_t r;

    ck_assert_int_eq(hls_query_parse(q, 11, &r), 0);
    ck_assert_uint_eq(r.msn, 12);
    ck_assert_int_eq(r.has_part, 0);
    ck_assert_int_eq(hls_query_parse(q, 10, &r), 0);
    ck_assert_uint_eq(r.msn, 1);
    ck_assert_int_eq(hls_query_parse(q, 9, &r), -EINVAL);
    ck_assert_int_eq(hls_query_parse(NULL, 0, &r), 0);
    ck_assert_int_eq(r.has_msn, 0);
}
END_TEST

START_TEST(query_too_long)
{
    char *q = malloc(HLS_QUERY_MAX + 2);
    hls_query_t r;

    memset(q, 'a', HLS_QUERY_MAX + 1);
    q[HLS_QUERY_MAX + 1] = '\0';
    ck_assert_int_eq(hls_query_parse(q, HLS_QUERY_MAX + 1, &r), -E2BIG);
    ck_assert_int_eq(hls_query_parse(q, HLS_QUERY_MAX, &r), 0);
    free(q);
}
END_TEST

static Suite *hls_suite(void)
{
    Suite *s = suite_create("proto/hls");
    TCase *tc = tcase_create("media");

    tcase_add_test(tc, media_full);
    tcase_add_test(tc, media_empty_stream);
    tcase_add_test(tc, media_tail_only_has_pdt);
    tcase_add_test(tc, media_skip);
    tcase_add_test(tc, media_skippable_bounds);
    tcase_add_test(tc, media_inconsistent);
    tcase_add_test(tc, media_discontinuity_and_reports);
    suite_add_tcase(s, tc);
    tc = tcase_create("multivariant");
    tcase_add_test(tc, multivariant);
    suite_add_tcase(s, tc);
    tc = tcase_create("query");
    tcase_add_loop_test(tc, query_table, 0, (int)(sizeof(qcases) / sizeof(qcases[0])));
    tcase_add_test(tc, query_prefix_is_not_the_whole);
    tcase_add_test(tc, query_too_long);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
