/* Unit tests for transcoder/cmaf: an FLV made by ffmpeg at test time is
 * demuxed with libavformat and fed to the packager; the init segment and
 * parts it emits are read back with libavformat and checked. */
#include "transcoder/cmaf.h"

#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[] = "/tmp/oboro-cmaf-XXXXXX";
static char flv[256];

/* H.264 (with B-frames) + AAC, 25 fps, a key frame every second, 5 s. */
static void make_flv(void)
{
    char cmd[1024];

    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(flv, sizeof(flv), "%s/in.flv", dir);
    snprintf(cmd, sizeof(cmd),
             "ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=318x180:rate=25 "
             "-f lavfi -i sine=frequency=440:sample_rate=44100 -t 5 -c:v libx264 "
             "-preset veryfast -g 25 -pix_fmt yuv420p -c:a aac -b:a 64k -f flv %s",
             flv);
    ck_assert_int_eq(system(cmd), 0);
}

static void rm_dir(void)
{
    char cmd[512];

    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    ck_assert_int_eq(system(cmd), 0);
}

typedef struct feed {
    AVFormatContext *in;
    int vidx, aidx;
    tc_cmaf_track_t v, a;
} feed_t;

static void feed_open(feed_t *f)
{
    memset(f, 0, sizeof(*f));
    ck_assert_int_eq(avformat_open_input(&f->in, flv, NULL, NULL), 0);
    ck_assert_int_ge(avformat_find_stream_info(f->in, NULL), 0);
    f->vidx = av_find_best_stream(f->in, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    f->aidx = av_find_best_stream(f->in, AVMEDIA_TYPE_AUDIO, -1, -1, NULL, 0);
    ck_assert_int_ge(f->vidx, 0);
    ck_assert_int_ge(f->aidx, 0);
    {
        AVCodecParameters *p = f->in->streams[f->vidx]->codecpar;

        f->v.codec_id = p->codec_id;
        f->v.extradata = p->extradata;
        f->v.extradata_len = (size_t)p->extradata_size;
        f->v.width = p->width;
        f->v.height = p->height;
    }
    {
        AVCodecParameters *p = f->in->streams[f->aidx]->codecpar;

        f->a.codec_id = p->codec_id;
        f->a.extradata = p->extradata;
        f->a.extradata_len = (size_t)p->extradata_size;
        f->a.sample_rate = p->sample_rate;
        f->a.channels = p->ch_layout.nb_channels;
    }
}

/* Feed every packet; returns the number of video packets fed. */
static int feed_all(feed_t *f, tc_cmaf_t *c, int with_audio)
{
    AVPacket *pkt = av_packet_alloc();
    AVRational ms = {1, 1000};
    int nv = 0;

    while (av_read_frame(f->in, pkt) >= 0) {
        AVStream *st = f->in->streams[pkt->stream_index];
        tc_cmaf_packet_t p = {
            .track = pkt->stream_index == f->vidx ? TC_CMAF_VIDEO : TC_CMAF_AUDIO,
            .dts_ms = av_rescale_q(pkt->dts, st->time_base, ms),
            .pts_ms = av_rescale_q(pkt->pts, st->time_base, ms),
            .keyframe = (pkt->flags & AV_PKT_FLAG_KEY) != 0,
            .data = pkt->data,
            .len = (size_t)pkt->size,
        };

        if (p.track == TC_CMAF_VIDEO)
            nv++;
        if (p.track == TC_CMAF_VIDEO || with_audio)
            ck_assert_int_eq(tc_cmaf_write(c, &p, 1700000000000 + p.dts_ms), 0);
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    return nv;
}

static int parts_seen;

static void on_part(void *arg)
{
    parts_seen++;
}

/* Write init + every part of the window to a file. */
static void dump(tc_cmaf_t *c, const char *path, uint64_t *first_msn)
{
    FILE *fp = fopen(path, "wb");
    tc_cmaf_buf_t *init = tc_cmaf_init_seg(c);

    ck_assert_ptr_nonnull(fp);
    ck_assert_uint_eq(fwrite(init->data, 1, init->len, fp), init->len);
    for (size_t i = 0; i < tc_cmaf_nsegs(c); i++) {
        const tc_cmaf_seg_t *s = tc_cmaf_seg_at(c, i);

        if (i == 0 && first_msn != NULL)
            *first_msn = s->msn;
        for (size_t j = 0; j < s->nparts; j++)
            ck_assert_uint_eq(fwrite(s->parts[j].buf->data, 1, s->parts[j].buf->len, fp),
                              s->parts[j].buf->len);
    }
    fclose(fp);
}

/* Count and check the packets of the written file. */
static void read_back(const char *path, int *nvideo, int *naudio, int64_t *first_vdts_ms)
{
    AVFormatContext *in = NULL;
    AVPacket *pkt = av_packet_alloc();
    int64_t last[8] = {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};

    *nvideo = *naudio = 0;
    *first_vdts_ms = INT64_MIN;
    ck_assert_int_eq(avformat_open_input(&in, path, NULL, NULL), 0);
    ck_assert_int_ge(avformat_find_stream_info(in, NULL), 0);
    ck_assert_int_eq(in->nb_streams, 2);
    while (av_read_frame(in, pkt) >= 0) {
        AVStream *st = in->streams[pkt->stream_index];

        ck_assert_int_gt(pkt->dts, last[pkt->stream_index]);
        last[pkt->stream_index] = pkt->dts;
        if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO) {
            if (*nvideo == 0) {
                ck_assert(pkt->flags & AV_PKT_FLAG_KEY);
                *first_vdts_ms = av_rescale_q(pkt->dts, st->time_base, (AVRational){1, 1000});
            }
            ck_assert_int_ge(pkt->pts, pkt->dts);
            (*nvideo)++;
        } else {
            (*naudio)++;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    avformat_close_input(&in);
}

START_TEST(packages_whole_stream)
{
    tc_cmaf_conf_t conf = {200, 1000, 100};
    feed_t f;
    tc_cmaf_t *c = NULL;
    char out[300];
    int fed, nv, na;
    int64_t vdts;

    make_flv();
    feed_open(&f);
    parts_seen = 0;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, &f.v, &f.a, 1, on_part, NULL), 0);
    ck_assert_int_gt(tc_cmaf_init_seg(c)->len, 16);
    ck_assert_int_eq(memcmp(tc_cmaf_init_seg(c)->data + 4, "ftyp", 4), 0);
    fed = feed_all(&f, c, 1);
    ck_assert_int_eq(fed, 125);
    ck_assert_int_eq(tc_cmaf_finish(c), 0);

    /* 5 s of 1 s GOPs: five segments numbered from 1, each of five parts
     * of 200 ms, the first independent, the others not */
    ck_assert_uint_eq(tc_cmaf_nsegs(c), 6); /* the last one is empty, in progress */
    for (size_t i = 0; i < 5; i++) {
        const tc_cmaf_seg_t *s = tc_cmaf_seg_at(c, i);

        ck_assert_uint_eq(s->msn, i + 1);
        ck_assert(s->complete);
        ck_assert_uint_eq(s->duration_ms, 1000);
        ck_assert_uint_eq(s->nparts, 5);
        ck_assert_int_eq(s->pdt_ms, 1700000000000 + (int64_t)i * 1000);
        for (size_t j = 0; j < s->nparts; j++) {
            ck_assert_uint_eq(s->parts[j].duration_ms, 200);
            ck_assert_int_eq(s->parts[j].independent, j == 0);
            ck_assert_int_eq(memcmp(s->parts[j].buf->data + 4, "moof", 4), 0);
        }
    }
    ck_assert_int_eq(tc_cmaf_seg_at(c, 5)->nparts, 0);
    ck_assert_uint_eq(tc_cmaf_tail_msn(c), 6);
    ck_assert_ptr_eq(tc_cmaf_seg(c, 3), tc_cmaf_seg_at(c, 2));
    ck_assert_ptr_null(tc_cmaf_seg(c, 0));
    ck_assert_ptr_null(tc_cmaf_seg(c, 7));
    ck_assert_int_eq(parts_seen, 25);
    ck_assert_uint_eq(tc_cmaf_max_segment_ms(c), 1000);
    {
        tc_cmaf_info_t info;

        tc_cmaf_info(c, &info);
        ck_assert_int_eq(strncmp(info.codecs, "avc1.64", 7), 0);
        ck_assert_int_eq(strlen(info.codecs), 21);
        ck_assert_str_eq(info.codecs + 11, ",mp4a.40.2");
        ck_assert_int_eq(info.width, 318);
        ck_assert_int_eq(info.height, 180);
        ck_assert_uint_eq(info.frame_rate_milli, 25000);
        ck_assert_uint_gt(info.avg_bps, 10000);
        ck_assert_uint_ge(info.peak_bps, info.avg_bps);
    }

    /* every frame comes back out of init + parts, in order, with timestamps
     * that start where the source's did */
    snprintf(out, sizeof(out), "%s/out.mp4", dir);
    dump(c, out, NULL);
    read_back(out, &nv, &na, &vdts);
    ck_assert_int_eq(nv, 125);
    ck_assert_int_gt(na, 200);
    ck_assert_int_lt(vdts, 100);

    tc_cmaf_free(&c);
    ck_assert_ptr_null(c);
    avformat_close_input(&f.in);
    rm_dir();
}
END_TEST

START_TEST(window_is_bounded)
{
    tc_cmaf_conf_t conf = {300, 1000, 2};
    feed_t f;
    tc_cmaf_t *c = NULL;
    char out[300];
    int nv, na;
    int64_t vdts;
    uint64_t first = 0;

    make_flv();
    feed_open(&f);
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, &f.v, &f.a, 40, NULL, NULL), 0);
    feed_all(&f, c, 1);
    /* segments 40..43 complete, 44 in progress: only 42, 43 and 44 kept */
    ck_assert_uint_eq(tc_cmaf_nsegs(c), 3);
    ck_assert_uint_eq(tc_cmaf_seg_at(c, 0)->msn, 42);
    ck_assert_uint_eq(tc_cmaf_tail_msn(c), 44);
    ck_assert_ptr_null(tc_cmaf_seg(c, 41));
    /* parts of at most 300 ms at 40 ms frames: 280, 280, 280, 160 */
    for (size_t i = 0; i < 2; i++) {
        const tc_cmaf_seg_t *s = tc_cmaf_seg_at(c, i);

        ck_assert_uint_eq(s->nparts, 4);
        for (size_t j = 0; j < s->nparts; j++)
            ck_assert_uint_eq(s->parts[j].duration_ms, j < 3 ? 280 : 160);
    }
    /* the window still plays on its own from its first segment */
    snprintf(out, sizeof(out), "%s/win.mp4", dir);
    dump(c, out, &first);
    ck_assert_uint_eq(first, 42);
    read_back(out, &nv, &na, &vdts);
    ck_assert_int_ge(nv, 50);
    ck_assert_int_ge(vdts, 1900);
    ck_assert_int_le(vdts, 2100);

    tc_cmaf_free(&c);
    avformat_close_input(&f.in);
    rm_dir();
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HLS), 0);
}
END_TEST

START_TEST(buffers_outlive_packager)
{
    tc_cmaf_conf_t conf = {200, 1000, 3};
    feed_t f;
    tc_cmaf_t *c = NULL;
    tc_cmaf_buf_t *keep;

    make_flv();
    feed_open(&f);
    /* the picture size comes from the SPS when the caller has none */
    f.v.width = f.v.height = 0;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, &f.v, NULL, 1, NULL, NULL), 0);
    feed_all(&f, c, 0);
    {
        tc_cmaf_info_t info;

        tc_cmaf_info(c, &info);
        ck_assert_int_eq(info.width, 318);
        ck_assert_int_eq(info.height, 180);
        ck_assert_ptr_null(strstr(info.codecs, "mp4a"));
    }
    keep = tc_cmaf_seg_at(c, 0)->parts[0].buf;
    tc_cmaf_buf_ref(keep);
    tc_cmaf_free(&c);
    ck_assert_int_eq(memcmp(keep->data + 4, "moof", 4), 0);
    ck_assert_int_gt(core_mem_tag_live(CORE_TAG_HLS), 0);
    tc_cmaf_buf_unref(&keep);
    ck_assert_ptr_null(keep);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HLS), 0);
    avformat_close_input(&f.in);
    rm_dir();
}
END_TEST

START_TEST(audio_only)
{
    tc_cmaf_conf_t conf = {200, 1000, 10};
    feed_t f;
    tc_cmaf_t *c = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVRational ms = {1, 1000};

    make_flv();
    feed_open(&f);
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &f.a, 1, NULL, NULL), 0);
    while (av_read_frame(f.in, pkt) >= 0) {
        AVStream *st = f.in->streams[pkt->stream_index];
        tc_cmaf_packet_t p = {TC_CMAF_AUDIO, av_rescale_q(pkt->dts, st->time_base, ms),
                              av_rescale_q(pkt->pts, st->time_base, ms), 0, pkt->data,
                              (size_t)pkt->size};

        if (pkt->stream_index == f.aidx)
            ck_assert_int_eq(tc_cmaf_write(c, &p, 0), 0);
        else /* no video track configured */
            ck_assert_int_eq(tc_cmaf_write(c, &(tc_cmaf_packet_t){TC_CMAF_VIDEO, 0, 0, 1,
                                                                  pkt->data, (size_t)pkt->size}, 0),
                             -EINVAL);
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    ck_assert_uint_ge(tc_cmaf_nsegs(c), 4);
    for (size_t i = 0; i + 1 < tc_cmaf_nsegs(c); i++) {
        const tc_cmaf_seg_t *s = tc_cmaf_seg_at(c, i);

        ck_assert_int_ge(s->duration_ms, 900);
        ck_assert_int_le(s->duration_ms, 1100);
        for (size_t j = 0; j < s->nparts; j++) {
            ck_assert_int_le(s->parts[j].duration_ms, 200);
            ck_assert_int_eq(s->parts[j].independent, 1);
        }
    }
    tc_cmaf_free(&c);
    avformat_close_input(&f.in);
    rm_dir();
}
END_TEST

/* Package the audio of the clip make_flv() wrote, its timestamps stepped
 * back by back_ms from the 40th frame on: every write must succeed. */
static void package_audio_stepped(int64_t back_ms)
{
    tc_cmaf_conf_t conf = {200, 1000, 10};
    feed_t f;
    tc_cmaf_t *c = NULL;
    AVPacket *pkt = av_packet_alloc();
    AVRational ms = {1, 1000};
    int n = 0;

    feed_open(&f);
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &f.a, 1, NULL, NULL), 0);
    while (av_read_frame(f.in, pkt) >= 0) {
        AVStream *st = f.in->streams[pkt->stream_index];
        int64_t back = n >= 40 ? back_ms : 0;
        tc_cmaf_packet_t p = {TC_CMAF_AUDIO, av_rescale_q(pkt->dts, st->time_base, ms) - back,
                              av_rescale_q(pkt->pts, st->time_base, ms) - back, 0, pkt->data,
                              (size_t)pkt->size};

        if (pkt->stream_index == f.aidx) {
            ck_assert_msg(tc_cmaf_write(c, &p, 0) == 0, "frame %d, stepped back %lld ms", n,
                          (long long)back_ms);
            n++;
        }
        av_packet_unref(pkt);
    }
    av_packet_free(&pkt);
    ck_assert_int_gt(n, 100);
    ck_assert_uint_ge(tc_cmaf_nsegs(c), 4);
    tc_cmaf_free(&c);
    avformat_close_input(&f.in);
}

/* A looped source steps its audio clock back, by a little more than a
 * frame (25 ms) or by several (100 ms): packaging goes on, it does not
 * stop the stream's LL-HLS output. */
START_TEST(audio_steps_back)
{
    make_flv();
    package_audio_stepped(25);
    package_audio_stepped(100);
    rm_dir();
}
END_TEST

START_TEST(rejects_bad_configuration)
{
    static const uint8_t asc[] = {0x12, 0x10};
    tc_cmaf_track_t a = {AV_CODEC_ID_AAC, asc, 2, 0, 0, 44100, 2};
    tc_cmaf_track_t v = {AV_CODEC_ID_MPEG2VIDEO, asc, 2, 320, 240, 0, 0};
    tc_cmaf_conf_t conf = {200, 1000, 3};
    tc_cmaf_t *c = NULL;

    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, NULL, 1, NULL, NULL), -EINVAL);
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, &v, &a, 1, NULL, NULL), -EINVAL);
    conf.part_ms = 50;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), -EINVAL);
    conf.part_ms = 200;
    conf.segment_ms = 100;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), -EINVAL);
    conf.segment_ms = 1000;
    a.channels = 0;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), -EINVAL);
    a.channels = 2;
    a.extradata_len = 0;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), -EINVAL);
    ck_assert_ptr_null(c);
    a.extradata_len = 2;
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), 0);
    ck_assert_int_eq(tc_cmaf_write(c, &(tc_cmaf_packet_t){TC_CMAF_AUDIO, 0, 0, 1, asc, 0}, 0),
                     -EINVAL);
    ck_assert_int_eq(tc_cmaf_write(c, &(tc_cmaf_packet_t){5, 0, 0, 1, asc, 2}, 0), -EINVAL);
    tc_cmaf_free(&c);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HLS), 0);
}
END_TEST

START_TEST(out_of_memory)
{
    static const uint8_t asc[] = {0x12, 0x10};
    tc_cmaf_track_t a = {AV_CODEC_ID_AAC, asc, 2, 0, 0, 44100, 2};
    tc_cmaf_conf_t conf = {200, 1000, 3};
    tc_cmaf_t *c = NULL;

    /* the packager, the muxer's output buffer, the init segment */
    for (long n = 1; n <= 3; n++) {
        core_mem_fail_after(n);
        ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), -ENOMEM);
        core_mem_fail_reset();
        ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HLS), 0);
    }
    core_mem_fail_after(4);
    ck_assert_int_eq(tc_cmaf_new(&c, &conf, NULL, &a, 1, NULL, NULL), 0);
    core_mem_fail_reset();
    tc_cmaf_free(&c);
}
END_TEST

static Suite *cmaf_suite(void)
{
    Suite *s = suite_create("transcoder/cmaf");
    TCase *tc = tcase_create("package");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, packages_whole_stream);
    tcase_add_test(tc, window_is_bounded);
    tcase_add_test(tc, buffers_outlive_packager);
    tcase_add_test(tc, audio_only);
    tcase_add_test(tc, audio_steps_back);
    suite_add_tcase(s, tc);
    tc = tcase_create("errors");
    tcase_add_test(tc, rejects_bad_configuration);
    tcase_add_test(tc, out_of_memory);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(cmaf_suite());
    int failed;

    av_log_set_level(AV_LOG_ERROR);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
