/* Blur pipeline stages on one core: decode (libavcodec H.264), detect
 * (blur_detect), blur (blur_box), encode (libx264 through libavcodec,
 * tune=zerolatency), per frame of a clip, as oborod's pipeline runs them.
 *
 *   blur_bench CLIP PRESET
 *
 * Prints key=value figures: frames, µs per frame per stage, frames/s of
 * the whole pipeline (CPU time of this thread). */
#include "transcoder/blur_box.h"
#include "transcoder/blur_detect.h"

#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>
#include <libavutil/opt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: blur_bench CLIP PRESET\n");
        return 2;
    }
    av_log_set_level(AV_LOG_ERROR);
    AVFormatContext *fc = NULL;
    if (avformat_open_input(&fc, argv[1], NULL, NULL) < 0 || avformat_find_stream_info(fc, NULL) < 0)
        return 1;
    int vi = av_find_best_stream(fc, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (vi < 0)
        return 1;
    AVStream *st = fc->streams[vi];
    const AVCodec *dc = avcodec_find_decoder(st->codecpar->codec_id);
    AVCodecContext *dec = avcodec_alloc_context3(dc);
    avcodec_parameters_to_context(dec, st->codecpar);
    dec->thread_count = 1;
    if (avcodec_open2(dec, dc, NULL) < 0)
        return 1;
    AVCodecContext *enc = NULL;
    AVPacket *pkt = av_packet_alloc(), *opkt = av_packet_alloc();
    AVFrame *f = av_frame_alloc();
    blur_detect_t *det = NULL;
    void *scratch = NULL;
    double t_dec = 0, t_det = 0, t_blur = 0, t_enc = 0;
    long frames = 0, blurred = 0;
    int radius = 0;
    for (int eof = 0; !eof;) {
        int rc = av_read_frame(fc, pkt);
        if (rc < 0) {
            eof = 1;
        } else if (pkt->stream_index != vi) {
            av_packet_unref(pkt);
            continue;
        }
        double t0 = cpu_us();
        avcodec_send_packet(dec, eof ? NULL : pkt);
        av_packet_unref(pkt);
        for (;;) {
            rc = avcodec_receive_frame(dec, f);
            double t1 = cpu_us();
            t_dec += t1 - t0;
            if (rc < 0)
                break;
            if (!enc) {
                const AVCodec *ec = avcodec_find_encoder_by_name("libx264");
                enc = avcodec_alloc_context3(ec);
                enc->width = f->width;
                enc->height = f->height;
                enc->pix_fmt = AV_PIX_FMT_YUV420P;
                enc->time_base = (AVRational){1, 1000};
                enc->framerate = (AVRational){30, 1};
                enc->gop_size = 100000;
                enc->max_b_frames = 0;
                enc->thread_count = 1;
                enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
                av_opt_set(enc->priv_data, "preset", argv[2], 0);
                av_opt_set(enc->priv_data, "tune", "zerolatency", 0);
                av_opt_set(enc->priv_data, "crf", "18", 0);
                av_opt_set(enc->priv_data, "forced-idr", "1", 0);
                av_opt_set(enc->priv_data, "x264-params", "scenecut=0", 0);
                if (avcodec_open2(enc, ec, NULL) < 0)
                    return 1;
                blur_detect_new(&det, f->width, f->height, 30);
                radius = blur_box_radius(f->height);
                scratch = aligned_alloc(16, (blur_box_scratch_size(f->width, radius) + 15) & ~(size_t)15);
            }
            blur_detect_result_t res;
            double t2 = cpu_us();
            blur_detect_frame(det, f->data[0], f->linesize[0], f->data[1], f->linesize[1], f->data[2],
                              f->linesize[2], &res);
            double t3 = cpu_us();
            uint8_t *const planes[3] = {f->data[0], f->data[1], f->data[2]};
            const int strides[3] = {f->linesize[0], f->linesize[1], f->linesize[2]};
            double t4 = cpu_us();
            for (int i = 0; i < res.n; i++)
                blur_box_frame(planes, strides, f->width, f->height, 1, 1, res.rects[i], radius, scratch);
            blurred += res.n > 0;
            double t5 = cpu_us();
            f->pict_type = f->key_frame ? AV_PICTURE_TYPE_I : AV_PICTURE_TYPE_NONE;
            f->pts = frames * 33;
            avcodec_send_frame(enc, f);
            while (avcodec_receive_packet(enc, opkt) == 0)
                av_packet_unref(opkt);
            double t6 = cpu_us();
            t_det += t3 - t2;
            t_blur += t5 - t4;
            t_enc += t6 - t5;
            frames++;
            av_frame_unref(f);
            t0 = cpu_us();
        }
    }
    double total = t_dec + t_det + t_blur + t_enc;
    printf("frames=%ld blurred=%ld decode_us=%.1f detect_us=%.1f blur_us=%.1f encode_us=%.1f "
           "detect_blur_us=%.1f fps=%.1f\n",
           frames, blurred, t_dec / frames, t_det / frames, blurred ? t_blur / blurred : 0.0,
           t_enc / frames, (t_det + t_blur) / frames, frames / (total / 1e6));
    avcodec_free_context(&dec);
    avcodec_free_context(&enc);
    av_packet_free(&pkt);
    av_packet_free(&opkt);
    av_frame_free(&f);
    blur_detect_free(&det);
    free(scratch);
    avformat_close_input(&fc);
    return 0;
}
