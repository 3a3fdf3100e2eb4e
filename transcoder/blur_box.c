/* transcoder/blur_box: see blur_box.h. */
#include "transcoder/blur_box.h"

#include <errno.h>
#include <string.h>

int blur_rect_clip(blur_rect_t *r, int pw, int ph)
{
    int x0 = r->x < 0 ? 0 : r->x;
    int y0 = r->y < 0 ? 0 : r->y;
    long x1 = (long)r->x + r->w;
    long y1 = (long)r->y + r->h;
    if (x1 > pw)
        x1 = pw;
    if (y1 > ph)
        y1 = ph;
    if (x1 <= x0 || y1 <= y0) {
        r->w = r->h = 0;
        return 0;
    }
    r->x = x0;
    r->y = y0;
    r->w = (int)(x1 - x0);
    r->h = (int)(y1 - y0);
    return 1;
}

int blur_box_radius(int height)
{
    int r = (height * 12 + 360) / 720;
    if (r < 2)
        r = 2;
    if (r > BLUR_BOX_MAX_RADIUS)
        r = BLUR_BOX_MAX_RADIUS;
    return r;
}

static size_t align16(size_t n)
{
    return (n + 15) & ~(size_t)15;
}

size_t blur_box_scratch_size(int w, int radius)
{
    if (w < 1)
        w = 1;
    size_t pre = align16(((size_t)w + 2 * (size_t)radius + 1) * sizeof(uint16_t));
    size_t sum = align16((size_t)w * sizeof(uint16_t));
    size_t ring = align16((size_t)w * ((size_t)radius + 1));
    return pre + sum + ring;
}

/* Sums of a window of d = 2r+1 samples fit 16 bits (255 * 255 < 65536),
 * so all the arithmetic is 16-bit: prefix sums wrap modulo 2^16 and their
 * differences are still exact; the division is a multiply-high by
 * ceil(65536 / d) after adding d / 2, which rounds to nearest and never
 * exceeds 255 for d <= 255. These loops become pmulhuw & co. */
static inline uint8_t div_d(uint16_t s, uint16_t half, uint16_t inv)
{
    return (uint8_t)(((uint32_t)(uint16_t)(s + half) * inv) >> 16);
}

static void hpass(uint8_t *restrict q, int w, int r, uint16_t *restrict pre, uint16_t half,
                  uint16_t inv)
{
    uint16_t acc = 0;
    pre[0] = 0;
    /* left edge repeated r times, the row, right edge repeated r times */
    for (int i = 0; i < r; i++) {
        acc = (uint16_t)(acc + q[0]);
        pre[i + 1] = acc;
    }
    for (int i = 0; i < w; i++) {
        acc = (uint16_t)(acc + q[i]);
        pre[r + i + 1] = acc;
    }
    for (int i = 0; i < r; i++) {
        acc = (uint16_t)(acc + q[w - 1]);
        pre[r + w + i + 1] = acc;
    }
    const int d = 2 * r + 1;
    const uint16_t *restrict hi = pre + d;
    for (int j = 0; j < w; j++)
        q[j] = div_d((uint16_t)(hi[j] - pre[j]), half, inv);
}

static void vpass(uint8_t *p, int stride, int w, int h, int r, uint16_t *restrict sum,
                  uint8_t *restrict ring, uint16_t half, uint16_t inv)
{
    const int slots = r + 1;
    const uint8_t *row0 = p;
    for (int x = 0; x < w; x++)
        sum[x] = (uint16_t)(row0[x] * (r + 1));
    for (int k = 1; k <= r; k++) {
        const uint8_t *restrict rk = p + (size_t)(k < h ? k : h - 1) * stride;
        for (int x = 0; x < w; x++)
            sum[x] = (uint16_t)(sum[x] + rk[x]);
    }
    for (int i = 0; i < h; i++) {
        uint8_t *restrict row = p + (size_t)i * stride;
        memcpy(ring + (size_t)(i % slots) * w, row, (size_t)w);
        for (int x = 0; x < w; x++)
            row[x] = div_d(sum[x], half, inv);
        if (i + 1 == h)
            break;
        int add = i + r + 1 < h ? i + r + 1 : h - 1;
        int sub = i - r > 0 ? i - r : 0;
        const uint8_t *restrict ra = p + (size_t)add * stride;
        const uint8_t *restrict rs = ring + (size_t)(sub % slots) * w;
        for (int x = 0; x < w; x++)
            sum[x] = (uint16_t)(sum[x] + ra[x] - rs[x]);
    }
}

int blur_box_plane(uint8_t *p, int stride, int pw, int ph, blur_rect_t r, int radius, int passes,
                   void *scratch)
{
    if (radius < 1 || radius > BLUR_BOX_MAX_RADIUS)
        return -EINVAL;
    if (!blur_rect_clip(&r, pw, ph))
        return 0;
    uint8_t *base = p + (size_t)r.y * stride + r.x;
    uint8_t *s = scratch;
    uint16_t *pre = (uint16_t *)(void *)s;
    s += align16(((size_t)r.w + 2 * (size_t)radius + 1) * sizeof(uint16_t));
    uint16_t *sum = (uint16_t *)(void *)s;
    s += align16((size_t)r.w * sizeof(uint16_t));
    uint8_t *ring = s;
    const int d = 2 * radius + 1;
    const uint16_t inv = (uint16_t)((65536 + d - 1) / d);
    const uint16_t half = (uint16_t)(d / 2);
    for (int pass = 0; pass < passes; pass++) {
        for (int y = 0; y < r.h; y++)
            hpass(base + (size_t)y * stride, r.w, radius, pre, half, inv);
        vpass(base, stride, r.w, r.h, radius, sum, ring, half, inv);
    }
    return 0;
}

int blur_box_frame(uint8_t *const planes[3], const int strides[3], int w, int h, int cw_shift,
                   int ch_shift, blur_rect_t r, int radius, void *scratch)
{
    if (!blur_rect_clip(&r, w, h))
        return 0;
    int rc = blur_box_plane(planes[0], strides[0], w, h, r, radius, 3, scratch);
    if (rc < 0)
        return rc;
    int cw = (w + (1 << cw_shift) - 1) >> cw_shift;
    int chh = (h + (1 << ch_shift) - 1) >> ch_shift;
    blur_rect_t c = {
        .x = r.x >> cw_shift,
        .y = r.y >> ch_shift,
        .w = ((r.x + r.w + (1 << cw_shift) - 1) >> cw_shift) - (r.x >> cw_shift),
        .h = ((r.y + r.h + (1 << ch_shift) - 1) >> ch_shift) - (r.y >> ch_shift),
    };
    int cr = radius >> (cw_shift > ch_shift ? cw_shift : ch_shift);
    if (cr < 1)
        cr = 1;
    for (int i = 1; i < 3; i++) {
        rc = blur_box_plane(planes[i], strides[i], cw, chh, c, cr, 3, scratch);
        if (rc < 0)
            return rc;
    }
    return 0;
}
