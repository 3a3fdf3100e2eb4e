/* Unit tests for transcoder/blur_box and transcoder/blur_detect on
 * synthetic 4:2:0 frames drawn here: moving colour bars, stripes and
 * noise; light and dark rounded banners with "text" sliding in from the
 * top; banner-free content with wide flat areas. */
#include "transcoder/blur_box.h"
#include "transcoder/blur_detect.h"

#include "core/arena.h"
#include "proto/amf0.h"
#include "transcoder/blur.h"
#include "transcoder/tc_int.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define W 1280
#define H 720
#define CW (W / 2)
#define CH (H / 2)

typedef struct frame {
    uint8_t y[W * H], u[CW * CH], v[CW * CH];
} frame_t;

static uint32_t rng = 1;
static uint32_t rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

/* Saturated moving bars with a diagonal stripe and light noise: ordinary
 * moving content with strong edges. */
static void draw_background(frame_t *f, int t)
{
    static const uint8_t bars[6][3] = {
        {81, 90, 240}, {145, 54, 34}, {210, 16, 146}, {41, 240, 110}, {106, 202, 222}, {170, 166, 16},
    };
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int b = ((x + 7 * t) / (W / 6)) % 6;
            int v = bars[b][0] + (int)(rnd() % 9) - 4;
            if (abs((x - 2 * y + 11 * t) % 97) < 6)
                v = 255 - v;
            f->y[y * W + x] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
        }
    for (int y = 0; y < CH; y++)
        for (int x = 0; x < CW; x++) {
            int b = ((2 * x + 7 * t) / (W / 6)) % 6;
            f->u[y * CW + x] = bars[b][1];
            f->v[y * CW + x] = bars[b][2];
        }
}

/* A banner with corners of radius 16 at (bx, by) (by may be negative),
 * fill luma `fill`, neutral chroma, and three lines of "text": strokes of
 * contrasting luma 2-3 px wide. */
static void draw_banner(frame_t *f, int bx, int by, int bw, int bh, uint8_t fill)
{
    const int rad = 16;
    uint8_t ink = fill > 128 ? 30 : 230;
    uint32_t save = rng;
    rng = 77;
    for (int j = 0; j < bh; j++) {
        int y = by + j;
        if (y < 0 || y >= H)
            continue;
        for (int i = 0; i < bw; i++) {
            int x = bx + i;
            int cx = i < rad ? rad - i : i >= bw - rad ? i - (bw - rad - 1) : 0;
            int cy = j < rad ? rad - j : j >= bh - rad ? j - (bh - rad - 1) : 0;
            if (cx * cx + cy * cy > rad * rad)
                continue;
            uint8_t v = fill;
            /* text lines at 20..36, 46..62, 72..88 inside the banner */
            int line = (j - 20) % 26;
            if (j >= 20 && j < 90 && line < 16 && i >= 24 && i < bw - 60) {
                int glyph = (i - 24) / 12, gx = (i - 24) % 12;
                uint32_t g = (uint32_t)(glyph * 2654435761u + (uint32_t)(j / 26) * 40503u);
                if (glyph % 7 != 6 && ((gx < 3 && (g & 1)) || (line < 3 && (g & 2)) ||
                                       (line > 12 && (g & 4)) || (abs(gx - line * 10 / 16) < 2 && (g & 8))))
                    v = ink;
            }
            f->y[y * W + x] = v;
            f->u[(y / 2) * CW + x / 2] = 128;
            f->v[(y / 2) * CW + x / 2] = 128;
        }
    }
    rng = save;
}

/* High-frequency energy of the luma inside r: squared differences between
 * neighbours. */
static double hf_energy(const frame_t *f, blur_rect_t r)
{
    double e = 0;
    for (int y = r.y; y < r.y + r.h - 1; y++)
        for (int x = r.x; x < r.x + r.w - 1; x++) {
            int p = f->y[y * W + x];
            int dx = f->y[y * W + x + 1] - p, dy = f->y[(y + 1) * W + x] - p;
            e += dx * dx + dy * dy;
        }
    return e;
}

static void *scratch;
static frame_t *fa, *fb;

static void setup(void)
{
    scratch = core_aligned_alloc(CORE_TAG_TEST, 16, blur_box_scratch_size(W, BLUR_BOX_MAX_RADIUS));
    fa = core_malloc(CORE_TAG_TEST, sizeof(frame_t));
    fb = core_malloc(CORE_TAG_TEST, sizeof(frame_t));
    ck_assert_ptr_nonnull(scratch);
    ck_assert_ptr_nonnull(fa);
    ck_assert_ptr_nonnull(fb);
    rng = 1;
}

static void teardown(void)
{
    core_free(scratch);
    core_free(fa);
    core_free(fb);
}

static void blur_frame(frame_t *f, blur_rect_t r)
{
    uint8_t *const planes[3] = {f->y, f->u, f->v};
    const int strides[3] = {W, CW, CW};
    ck_assert_int_eq(blur_box_frame(planes, strides, W, H, 1, 1, r, blur_box_radius(H), scratch), 0);
}

START_TEST(radius_scales)
{
    ck_assert_int_eq(blur_box_radius(720), 12);
    ck_assert_int_eq(blur_box_radius(1080), 18);
    ck_assert_int_eq(blur_box_radius(360), 6);
    ck_assert_int_eq(blur_box_radius(2), 2);
    blur_rect_t r = {-10, -10, 30, 30};
    ck_assert_int_eq(blur_rect_clip(&r, 100, 100), 1);
    ck_assert_int_eq(r.x, 0);
    ck_assert_int_eq(r.w, 20);
    r = (blur_rect_t){100, 0, 10, 10};
    ck_assert_int_eq(blur_rect_clip(&r, 100, 100), 0);
    uint8_t p[16];
    ck_assert_int_eq(blur_box_plane(p, 4, 4, 4, (blur_rect_t){0, 0, 4, 4}, 0, 1, scratch), -EINVAL);
    ck_assert_int_eq(blur_box_plane(p, 4, 4, 4, (blur_rect_t){0, 0, 4, 4}, BLUR_BOX_MAX_RADIUS + 1, 1,
                                    scratch), -EINVAL);
}
END_TEST

START_TEST(box_flat_and_mean)
{
    /* a flat area stays flat; a box keeps the mean of a ramp's middle */
    uint8_t p[64 * 64];
    memset(p, 99, sizeof(p));
    ck_assert_int_eq(blur_box_plane(p, 64, 64, 64, (blur_rect_t){0, 0, 64, 64}, 5, 3, scratch), 0);
    for (size_t i = 0; i < sizeof(p); i++)
        ck_assert_int_eq(p[i], 99);
    for (int y = 0; y < 64; y++)
        for (int x = 0; x < 64; x++)
            p[y * 64 + x] = (uint8_t)(x * 4);
    ck_assert_int_eq(blur_box_plane(p, 64, 64, 64, (blur_rect_t){0, 0, 64, 64}, 3, 1, scratch), 0);
    ck_assert_int_eq(p[10 * 64 + 32], 128);
    /* a single bright pixel spreads over (2r+1)^2 pixels */
    memset(p, 0, sizeof(p));
    p[32 * 64 + 32] = 255;
    ck_assert_int_eq(blur_box_plane(p, 64, 64, 64, (blur_rect_t){0, 0, 64, 64}, 1, 1, scratch), 0);
    ck_assert_int_eq(p[31 * 64 + 31], 28);
    ck_assert_int_eq(p[33 * 64 + 33], 28);
    ck_assert_int_eq(p[30 * 64 + 32], 0);
}
END_TEST

START_TEST(box_kills_text_and_stays_inside)
{
    draw_background(fa, 0);
    draw_banner(fa, 100, 30, 1080, 110, 240);
    memcpy(fb, fa, sizeof(*fa));
    blur_rect_t banner = {100, 30, 1080, 110};
    blur_rect_t r = {88, 18, 1104, 134};
    double before = hf_energy(fa, banner);
    blur_frame(fa, r);
    double after = hf_energy(fa, banner);
    ck_assert_double_lt(after, before * 0.10);
    /* nothing outside r changed, in any plane */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            if (x < r.x || x >= r.x + r.w || y < r.y || y >= r.y + r.h)
                ck_assert_int_eq(fa->y[y * W + x], fb->y[y * W + x]);
    for (int y = 0; y < CH; y++)
        for (int x = 0; x < CW; x++)
            if (x < r.x / 2 || x >= (r.x + r.w) / 2 || y < r.y / 2 || y >= (r.y + r.h) / 2) {
                ck_assert_int_eq(fa->u[y * CW + x], fb->u[y * CW + x]);
                ck_assert_int_eq(fa->v[y * CW + x], fb->v[y * CW + x]);
            }
    /* a rectangle partly outside the frame is clipped, not an error */
    blur_frame(fa, (blur_rect_t){W - 20, H - 20, 100, 100});
    blur_frame(fa, (blur_rect_t){-50, -50, 60, 60});
}
END_TEST

static int covers(const blur_rect_t *rs, int n, blur_rect_t want)
{
    /* every pixel of want inside the union of rs */
    if (!blur_rect_clip(&want, W, H))
        return 1;
    for (int y = want.y; y < want.y + want.h; y++)
        for (int x = want.x; x < want.x + want.w; x++) {
            int in = 0;
            for (int i = 0; i < n && !in; i++)
                in = x >= rs[i].x && x < rs[i].x + rs[i].w && y >= rs[i].y && y < rs[i].y + rs[i].h;
            if (!in)
                return 0;
        }
    return 1;
}

#define NFRAMES 40
#define MAXR (BLUR_DETECT_MAX * 2)

/* Run a sliding banner through the detector with the output delay the
 * pipeline uses; check coverage and the energy drop on every frame where
 * the banner is visible. */
static void run_slide(uint8_t fill, int bx, int bw, int bh, int stop_y, int slide_frames)
{
    blur_detect_t *d = NULL;
    ck_assert_int_eq(blur_detect_new(&d, W, H, 30), 0);
    blur_rect_t regions[NFRAMES][MAXR];
    int checked = 0;
    int nreg[NFRAMES] = {0};
    for (int t = 0; t < NFRAMES; t++) {
        int by = t < slide_frames ? -bh + (bh + stop_y) * (t + 1) / slide_frames : stop_y;
        draw_background(fa, t);
        draw_banner(fa, bx, by, bw, bh, fill);
        blur_detect_result_t res;
        blur_detect_frame(d, fa->y, W, fa->u, CW, fa->v, CW, &res);
        for (int i = 0; i < res.n; i++)
            regions[t][nreg[t]++] = res.rects[i];
        for (int k = 1; k <= BLUR_DETECT_DELAY && t - k >= 0; k++)
            for (int i = 0; i < res.nback && nreg[t - k] < MAXR; i++)
                regions[t - k][nreg[t - k]++] = res.back[i];
    }
    /* replay with the final regions (what the delayed output gets) */
    for (int t = 0; t < NFRAMES - BLUR_DETECT_DELAY; t++) {
        int by = t < slide_frames ? -bh + (bh + stop_y) * (t + 1) / slide_frames : stop_y;
        blur_rect_t vis = {bx, by, bw, bh};
        if (!blur_rect_clip(&vis, W, H))
            continue;
        ck_assert_msg(covers(regions[t], nreg[t], vis), "frame %d: banner at y=%d not covered (%d regions)",
                      t, by, nreg[t]);
        draw_background(fa, t);
        draw_banner(fa, bx, by, bw, bh, fill);
        /* inside the banner: its rounded corners show background */
        blur_rect_t in = {vis.x + 16, vis.y, vis.w - 32, vis.h};
        double before = hf_energy(fa, in);
        for (int i = 0; i < nreg[t]; i++)
            blur_frame(fa, regions[t][i]);
        double after = hf_energy(fa, in);
        /* where only the plain fill shows there is nothing to read */
        if (before > 20.0 * in.w * in.h)
            ck_assert_msg(after <= before * 0.10, "frame %d: energy %.0f -> %.0f", t, before, after);
        checked++;
    }
    ck_assert_int_ge(checked, NFRAMES - BLUR_DETECT_DELAY - 1);
    blur_detect_free(&d);
    ck_assert_ptr_null(d);
}

START_TEST(detects_light_banner_sliding_in)
{
    run_slide(235, 96, 1088, 112, 24, 8);
}
END_TEST

START_TEST(detects_dark_banner_sliding_in)
{
    run_slide(40, 200, 880, 100, 16, 6);
}
END_TEST

START_TEST(detects_slow_slide)
{
    run_slide(225, 64, 1152, 130, 30, 16);
}
END_TEST

START_TEST(nothing_on_banner_free_content)
{
    blur_detect_t *d = NULL;
    ck_assert_int_eq(blur_detect_new(&d, W, H, 30), 0);
    for (int t = 0; t < 300; t++) {
        draw_background(fa, t);
        int phase = (t / 60) % 5;
        if (phase == 1) {
            /* an app's white title bar across the whole width */
            for (int y = 0; y < 90; y++)
                memset(fa->y + y * W, 240, W);
            memset(fa->u, 128, CW * 45);
            memset(fa->v, 128, CW * 45);
        } else if (phase == 2) {
            /* a white page filling the top half, with a moving box */
            for (int y = 0; y < H / 2; y++)
                memset(fa->y + y * W + 100, 235, W - 200);
            for (int y = 0; y < H / 4; y++) {
                memset(fa->u + y * CW + 50, 128, CW - 100);
                memset(fa->v + y * CW + 50, 128, CW - 100);
            }
        } else if (phase == 3) {
            /* dark letterbox bar at the top, full width */
            for (int y = 0; y < 80; y++)
                memset(fa->y + y * W, 16, W);
            memset(fa->u, 128, CW * 40);
            memset(fa->v, 128, CW * 40);
        } else if (phase == 4) {
            /* a small grey box moving around: too small for a banner */
            int x0 = (t * 9) % (W - 300), y0 = 10 + (t * 3) % 100;
            for (int y = y0; y < y0 + 60; y++)
                memset(fa->y + y * W + x0, 200, 300);
        }
        blur_detect_result_t res;
        blur_detect_frame(d, fa->y, W, fa->u, CW, fa->v, CW, &res);
        ck_assert_msg(res.n == 0 && res.nback == 0, "frame %d (phase %d): %d regions", t, phase, res.n);
    }
    blur_detect_free(&d);
}
END_TEST

START_TEST(bad_geometry)
{
    blur_detect_t *d = NULL;
    ck_assert_int_eq(blur_detect_new(&d, 0, 720, 30), -EINVAL);
    ck_assert_int_eq(blur_detect_new(&d, 1281, 720, 30), -EINVAL);
    ck_assert_int_eq(blur_detect_new(&d, 16384, 720, 30), -EINVAL);
    ck_assert_ptr_null(d);
    blur_detect_free(&d);
}
END_TEST

START_TEST(wanted_options)
{
    static const struct {
        const char *opts;
        int dflt, want;
    } cases[] = {
        {"", 0, 0}, {"", 1, 1}, {"blur=1", 0, 1}, {"blur=yes", 0, 1}, {"x=2&blur=on", 0, 1},
        {"blur=0", 1, 0}, {"blur=no", 1, 0}, {"a=1&blur=off&b=2", 1, 0}, {"blur=maybe", 1, 1},
        {"noblur=1", 0, 0}, {"blur=10", 0, 0}, {"xblur=1&blur=1", 0, 1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(tc_blur_wanted(cases[i].opts, cases[i].dflt) == cases[i].want, "case %zu (%s)", i,
                      cases[i].opts);
}
END_TEST

/* onNotification payloads (after the name) are checked before the stream's
 * pipeline is looked at: a stream without blur says -ENOENT for a good
 * one, -EPROTO for a bad one. */
START_TEST(notification_parse)
{
    static const struct {
        double x, y, w, h, dur;
        int n, want;
    } cases[] = {
        {10, 20, 300, 80, 5, 5, -ENOENT}, {10, 20, 300, 80, 0, 4, -ENOENT},
        {-1, 20, 300, 80, 5, 5, -EPROTO}, {10, 20, 0, 80, 5, 5, -EPROTO},
        {10, 20, 300, 99999, 5, 5, -EPROTO}, {10, 20, 300, 80, 61, 5, -EPROTO},
        {10, 20, 300, 80, 5, 3, -EPROTO},
    };
    tc_stream_t *st = core_calloc(CORE_TAG_TEST, 1, sizeof(*st));
    core_scope_t *sc = core_scope_new(CORE_TAG_TEST, 0);
    ck_assert_ptr_nonnull(st);
    ck_assert_ptr_nonnull(sc);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t buf[256];
        amf0_buf_t b;
        amf0_buf_init(&b, buf, sizeof(buf));
        amf0_put_object_begin(&b);
        const char *keys[] = {"x", "y", "width", "height", "duration"};
        const double vals[] = {cases[i].x, cases[i].y, cases[i].w, cases[i].h, cases[i].dur};
        for (int k = 0; k < cases[i].n; k++) {
            amf0_put_key(&b, keys[k]);
            amf0_put_number(&b, vals[k]);
        }
        amf0_put_object_end(&b);
        ck_assert_int_eq(b.err, 0);
        ck_assert_msg(tc_blur_notification(st, sc, buf, b.len) == cases[i].want, "case %zu", i);
        /* truncated at every byte: never accepted */
        for (size_t cut = 0; cut < b.len; cut++)
            ck_assert_int_eq(tc_blur_notification(st, sc, buf, cut), -EPROTO);
        core_scope_reset(sc);
    }
    /* not an object */
    uint8_t nb[16];
    amf0_buf_t b;
    amf0_buf_init(&b, nb, sizeof(nb));
    amf0_put_number(&b, 3);
    ck_assert_int_eq(tc_blur_notification(st, sc, nb, b.len), -EPROTO);
    core_scope_free(&sc);
    core_free(st);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("transcoder/blur");
    TCase *tc = tcase_create("box");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, radius_scales);
    tcase_add_test(tc, box_flat_and_mean);
    tcase_add_test(tc, box_kills_text_and_stays_inside);
    suite_add_tcase(s, tc);
    tc = tcase_create("detect");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, detects_light_banner_sliding_in);
    tcase_add_test(tc, detects_dark_banner_sliding_in);
    tcase_add_test(tc, detects_slow_slide);
    tcase_add_test(tc, nothing_on_banner_free_content);
    tcase_add_test(tc, bad_geometry);
    suite_add_tcase(s, tc);
    tc = tcase_create("pipeline");
    tcase_add_test(tc, wanted_options);
    tcase_add_test(tc, notification_parse);
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
