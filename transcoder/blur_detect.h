/* transcoder/blur_detect: finds smartphone notification banners in 4:2:0
 * frames (pure functions over planes, no FFmpeg).
 *
 * A banner as phones draw it: a wide rounded rectangle near the top of the
 * screen, filled with a flat light or dark neutral colour (text on it),
 * not touching the screen's sides, sliding in from the top over a few
 * frames and staying seconds. The detector looks at the top 40% of the
 * luma plane in 8x8 blocks: a block is "fill" when it is flat, light
 * (mean >= 170) or dark (<= 90), with near-neutral chroma. Rows of blocks
 * holding a long run of fill (text gaps allowed) that stack up with the
 * same left and right edges form a candidate; its height, width, side
 * contrast and position are checked. Candidates are tracked from frame
 * to frame; a track seen in two consecutive frames turns active, and its
 * region (full extent + margin) is blurred while it lasts and for half a
 * second after it was last seen (it slides out). When a track turns
 * active, the frames before it are covered by `back` (the region up to
 * the top of the frame), which is why a caller delays output by
 * BLUR_DETECT_DELAY frames. */
#ifndef TC_BLUR_DETECT_H
#define TC_BLUR_DETECT_H

#include "transcoder/blur_box.h"

#include <stdint.h>

#define BLUR_DETECT_MAX 4        /* regions per frame */
#define BLUR_DETECT_DELAY 2      /* frames a caller holds back for `back` */

typedef struct blur_detect blur_detect_t;

typedef struct blur_detect_result {
    int n;                               /* regions to blur in this frame */
    blur_rect_t rects[BLUR_DETECT_MAX];
    int nback;                           /* regions to blur in the previous */
    blur_rect_t back[BLUR_DETECT_MAX];   /* BLUR_DETECT_DELAY frames too */
} blur_detect_result_t;

/* New detector for frames of width x height (even, 64..8192) at fps
 * frames per second (for the hold time; <= 0 means 30). Returns 0 and
 * *out (owned by the caller, free with blur_detect_free), -EINVAL or
 * -ENOMEM. */
int blur_detect_new(blur_detect_t **out, int width, int height, double fps);

/* Free the detector; *dp becomes NULL. NULL is a no-op. */
void blur_detect_free(blur_detect_t **dp);

/* Analyse one frame (planes borrowed; u and v are width/2 x height/2) and
 * fill *res. Never fails. */
void blur_detect_frame(blur_detect_t *d, const uint8_t *y, int ystride, const uint8_t *u,
                       int ustride, const uint8_t *v, int vstride, blur_detect_result_t *res);

/* Regions found in the last frame before tracking (for tests). Returns
 * their number and copies up to max into out. */
int blur_detect_candidates(const blur_detect_t *d, blur_rect_t *out, int max);

#endif
