/* transcoder/blur_box: in-place separable box blur of rectangles of 8-bit
 * planes (pure functions, no FFmpeg).
 *
 * A pass is a horizontal box of radius r over every row of the rectangle,
 * then a vertical box of radius r over every column; samples beyond the
 * rectangle's edges repeat the edge (so nothing from outside leaks in and
 * nothing inside leaks out). Three passes approximate a Gaussian of sigma
 * about r. The rows are done through prefix sums and the columns through
 * running column sums, both in loops over x that the compiler vectorises;
 * the only copy is a ring of 2r+1 rows of the rectangle in the caller's
 * scratch buffer, never the whole frame. */
#ifndef TC_BLUR_BOX_H
#define TC_BLUR_BOX_H

#include <stddef.h>
#include <stdint.h>

typedef struct blur_rect {
    int x, y, w, h;
} blur_rect_t;

/* Largest radius blur_box_plane accepts. */
#define BLUR_BOX_MAX_RADIUS 127

/* Clip r to a plane of pw x ph. Returns 1 when something is left. */
int blur_rect_clip(blur_rect_t *r, int pw, int ph);

/* Luma radius for a frame height: 12 at 720 lines, scaled linearly, at
 * least 2. */
int blur_box_radius(int height);

/* Bytes of scratch blur_box_plane needs for a rectangle of width w with
 * radius r. */
size_t blur_box_scratch_size(int w, int radius);

/* Blur rectangle r (clipped to pw x ph) of the plane at p with stride
 * `stride`, passes times, in place. scratch holds at least
 * blur_box_scratch_size(r.w, radius) bytes, 16-byte aligned (borrowed).
 * Returns 0, or -EINVAL for a radius outside 1..BLUR_BOX_MAX_RADIUS. */
int blur_box_plane(uint8_t *p, int stride, int pw, int ph, blur_rect_t r, int radius, int passes,
                   void *scratch);

/* Blur r on a 4:2:0 (or 4:2:2 / 4:4:4 per the shifts) frame: planes[0]
 * luma of w x h with radius, planes[1] and planes[2] chroma with the
 * rectangle and radius scaled by the subsampling shifts. scratch as for
 * blur_box_plane with width w. Three passes. Returns 0 or -EINVAL. */
int blur_box_frame(uint8_t *const planes[3], const int strides[3], int w, int h, int cw_shift,
                   int ch_shift, blur_rect_t r, int radius, void *scratch);

#endif
