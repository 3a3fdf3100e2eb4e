/* transcoder/blur_detect: see blur_detect.h. */
#include "transcoder/blur_detect.h"

#include "core/arena.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define BS 8                 /* block size in luma pixels */
#define MAX_TRACKS 8
#define MAX_CANDS 8
#define FLAT_RANGE 24        /* max - min inside a fill block */
#define LIGHT_MIN 170
#define DARK_MAX 90
#define CHROMA_TOL 24
#define GAP_BLOCKS 3         /* non-fill blocks a run may bridge (text) */
#define EDGE_TOL 3           /* blocks the edges of stacked rows may differ */
#define BRIDGE_ROWS 12       /* block rows of text between clean rows */

enum { CLS_NONE = 0, CLS_LIGHT = 1, CLS_DARK = 2 };

typedef struct cand {
    int cls;
    int bx0, bx1, by0, by1;  /* blocks, half-open */
    blur_rect_t r;           /* pixels, extent without margin */
} cand_t;

typedef struct track {
    int used, cls, hits, misses, active;
    blur_rect_t r;
} track_t;

struct blur_detect {
    int w, h, nbc, nbr, margin, hold;
    uint8_t *cls;            /* nbc * nbr */
    uint16_t *cmin, *cmax;   /* per column, one block row */
    uint32_t *csum;
    cand_t cands[MAX_CANDS];
    int ncands;
    track_t tracks[MAX_TRACKS];
};

int blur_detect_new(blur_detect_t **out, int width, int height, double fps)
{
    if (width < 64 || height < 64 || width > 8192 || height > 8192 || (width & 1) || (height & 1))
        return -EINVAL;
    blur_detect_t *d = core_calloc(CORE_TAG_BLUR, 1, sizeof(*d));
    if (!d)
        return -ENOMEM;
    d->w = width;
    d->h = height;
    d->nbc = width / BS;
    d->nbr = (height * 2 / 5) / BS;
    d->margin = height / 60 < 4 ? 4 : height / 60;
    d->hold = (int)((fps > 0 ? fps : 30) / 2);
    if (d->hold < 2)
        d->hold = 2;
    d->cls = core_calloc(CORE_TAG_BLUR, (size_t)d->nbc * d->nbr, 1);
    d->cmin = core_malloc(CORE_TAG_BLUR, (size_t)width * sizeof(uint16_t));
    d->cmax = core_malloc(CORE_TAG_BLUR, (size_t)width * sizeof(uint16_t));
    d->csum = core_malloc(CORE_TAG_BLUR, (size_t)width * sizeof(uint32_t));
    if (!d->cls || !d->cmin || !d->cmax || !d->csum) {
        blur_detect_free(&d);
        return -ENOMEM;
    }
    *out = d;
    return 0;
}

void blur_detect_free(blur_detect_t **dp)
{
    blur_detect_t *d = *dp;
    if (!d)
        return;
    core_free(d->cls);
    core_free(d->cmin);
    core_free(d->cmax);
    core_free(d->csum);
    core_free(d);
    *dp = NULL;
}

/* Classify every 8x8 block of the analysed area. The per-pixel work is
 * column-wise min/max/sum over the 8 lines of a block row (vectorised),
 * then one reduction per block. */
static void classify(blur_detect_t *d, const uint8_t *y, int ys, const uint8_t *u, int us,
                     const uint8_t *v, int vs)
{
    const int w = d->nbc * BS;
    uint16_t *restrict mn = d->cmin, *restrict mx = d->cmax;
    uint32_t *restrict sm = d->csum;
    for (int by = 0; by < d->nbr; by++) {
        const uint8_t *row = y + (size_t)by * BS * ys;
        for (int x = 0; x < w; x++) {
            mn[x] = row[x];
            mx[x] = row[x];
            sm[x] = row[x];
        }
        for (int l = 1; l < BS; l++) {
            const uint8_t *restrict rl = row + (size_t)l * ys;
            for (int x = 0; x < w; x++) {
                uint16_t p = rl[x];
                mn[x] = p < mn[x] ? p : mn[x];
                mx[x] = p > mx[x] ? p : mx[x];
                sm[x] += p;
            }
        }
        uint8_t *cl = d->cls + (size_t)by * d->nbc;
        for (int bx = 0; bx < d->nbc; bx++) {
            int lo = 255, hi = 0;
            uint32_t s = 0;
            for (int i = 0; i < BS; i++) {
                int x = bx * BS + i;
                lo = mn[x] < lo ? mn[x] : lo;
                hi = mx[x] > hi ? mx[x] : hi;
                s += sm[x];
            }
            int mean = (int)(s / (BS * BS));
            int c = CLS_NONE;
            if (hi - lo <= FLAT_RANGE && (mean >= LIGHT_MIN || mean <= DARK_MAX)) {
                /* chroma: the 4x4 block at the same place, sampled on a
                 * 2x2 grid */
                const uint8_t *ub = u + (size_t)by * (BS / 2) * us + bx * (BS / 2);
                const uint8_t *vb = v + (size_t)by * (BS / 2) * vs + bx * (BS / 2);
                int su = 0, sv = 0;
                for (int j = 0; j < BS / 2; j += 2)
                    for (int i = 0; i < BS / 2; i += 2) {
                        su += ub[(size_t)j * us + i];
                        sv += vb[(size_t)j * vs + i];
                    }
                su /= 4;
                sv /= 4;
                if (abs(su - 128) <= CHROMA_TOL && abs(sv - 128) <= CHROMA_TOL)
                    c = mean >= LIGHT_MIN ? CLS_LIGHT : CLS_DARK;
            }
            cl[bx] = (uint8_t)c;
        }
    }
}

/* Longest run of class c in block row by (gaps of up to GAP_BLOCKS other
 * blocks inside); returns its length in blocks with [*x0, *x1) and the
 * number of fill blocks in it. */
static int row_run(const blur_detect_t *d, int by, int c, int *x0, int *x1, int *fill)
{
    const uint8_t *cl = d->cls + (size_t)by * d->nbc;
    int best = 0;
    int bx = 0;
    while (bx < d->nbc) {
        if (cl[bx] != c) {
            bx++;
            continue;
        }
        int s = bx, e = bx + 1, f = 1, gap = 0;
        for (int i = bx + 1; i < d->nbc; i++) {
            if (cl[i] == c) {
                e = i + 1;
                f++;
                gap = 0;
            } else if (++gap > GAP_BLOCKS) {
                break;
            }
        }
        if (e - s > best && f * 10 >= (e - s) * 6) {
            best = e - s;
            *x0 = s;
            *x1 = e;
            *fill = f;
        }
        bx = e;
    }
    return best;
}

static int row_has(const blur_detect_t *d, int by, int bx, int c)
{
    if (by < 0 || by >= d->nbr || bx < 0 || bx >= d->nbc)
        return 0;
    return d->cls[(size_t)by * d->nbc + bx] == c;
}

/* A row of text inside a banner: fill at both side margins (within a
 * block or two of the edges of its clean rows, which the rounded corners
 * shorten). */
static int row_edges(const blur_detect_t *d, int by, int gx0, int gx1, int c)
{
    int l = 0, r = 0;
    for (int i = -2; i <= 1; i++) {
        l |= row_has(d, by, gx0 + i, c);
        r |= row_has(d, by, gx1 - 1 - i, c);
    }
    return l && r;
}

static void find_candidates(blur_detect_t *d)
{
    const int minw = (d->nbc * 35 + 99) / 100;
    const int maxh = (d->h / 4) / BS;
    d->ncands = 0;
    for (int c = CLS_LIGHT; c <= CLS_DARK; c++) {
        int by = 0, floor = 0;
        while (by < d->nbr && d->ncands < MAX_CANDS) {
            int x0 = 0, x1 = 0, f = 0;
            if (row_run(d, by, c, &x0, &x1, &f) < minw) {
                by++;
                continue;
            }
            int gx0 = x0, gx1 = x1, last = by, bridged = 0;
            int r = by + 1;
            for (; r < d->nbr; r++) {
                int a0 = 0, a1 = 0, af = 0;
                int len = row_run(d, r, c, &a0, &a1, &af);
                if (len >= minw && abs(a0 - gx0) <= EDGE_TOL && abs(a1 - gx1) <= EDGE_TOL) {
                    gx0 = a0 < gx0 ? a0 : gx0;
                    gx1 = a1 > gx1 ? a1 : gx1;
                    last = r;
                    bridged = 0;
                } else if (bridged < BRIDGE_ROWS && row_edges(d, r, gx0, gx1, c)) {
                    bridged++;
                } else {
                    break;
                }
            }
            /* text rows at its lower end belong to it too (its bottom
             * edge may be off the analysed rows' block grid) */
            if (bridged > 0 && r < d->nbr)
                last = r - 1;
            /* a banner sliding in shows its lower part first: text rows
             * above the first clean row count when they reach the top */
            int solid = by;
            int first = by;
            while (first > floor && by - first < BRIDGE_ROWS && row_edges(d, first - 1, gx0, gx1, c))
                first--;
            if (first == 0)
                by = 0;
            int rows = last - by + 1;
            int touches_top = by == 0;
            int ok = rows <= maxh && last < d->nbr - 1 && gx0 > 0 && gx1 < d->nbc &&
                     (rows >= 2 || touches_top) && !row_has(d, solid, gx0 - 1, c) &&
                     !row_has(d, solid, gx1, c);
            /* a region that reaches the end of the analysed area is page
             * content, not a banner */
            if (ok && r >= d->nbr)
                ok = 0;
            if (ok) {
                cand_t *k = &d->cands[d->ncands++];
                k->cls = c;
                k->bx0 = gx0;
                k->bx1 = gx1;
                k->by0 = by;
                k->by1 = last + 1;
                /* one block of slack each side: the banner's edges and
                 * corners sit in blocks that are not flat */
                k->r.x = (gx0 - 1) * BS;
                k->r.y = by > 0 ? (by - 1) * BS : 0;
                k->r.w = (gx1 - gx0 + 2) * BS;
                k->r.h = (last + 2) * BS - k->r.y;
                blur_rect_clip(&k->r, d->w, d->h);
            }
            by = last + 1;
            floor = by;
        }
    }
}

static blur_rect_t grow(const blur_detect_t *d, blur_rect_t r, int to_top)
{
    blur_rect_t o = {r.x - d->margin, r.y - d->margin, r.w + 2 * d->margin, r.h + 2 * d->margin};
    if (to_top) {
        o.h += o.y;
        o.y = 0;
    }
    blur_rect_clip(&o, d->w, d->h);
    return o;
}

static int overlap_x(blur_rect_t a, blur_rect_t b)
{
    int x0 = a.x > b.x ? a.x : b.x;
    int x1 = a.x + a.w < b.x + b.w ? a.x + a.w : b.x + b.w;
    int mw = a.w < b.w ? a.w : b.w;
    return x1 > x0 && (x1 - x0) * 2 >= mw;
}

void blur_detect_frame(blur_detect_t *d, const uint8_t *y, int ystride, const uint8_t *u,
                       int ustride, const uint8_t *v, int vstride, blur_detect_result_t *res)
{
    res->n = 0;
    res->nback = 0;
    classify(d, y, ystride, u, ustride, v, vstride);
    find_candidates(d);
    int matched[MAX_CANDS] = {0};
    for (int t = 0; t < MAX_TRACKS; t++) {
        track_t *tr = &d->tracks[t];
        if (!tr->used)
            continue;
        int hit = -1;
        for (int i = 0; i < d->ncands; i++) {
            const cand_t *k = &d->cands[i];
            if (matched[i] || k->cls != tr->cls || !overlap_x(k->r, tr->r) ||
                abs(k->r.y - tr->r.y) > d->h / 6)
                continue;
            hit = i;
            break;
        }
        if (hit >= 0) {
            blur_rect_t prev = tr->r;
            matched[hit] = 1;
            tr->r = d->cands[hit].r;
            /* banners do not move sideways: keep the widest extent seen
             * (rows near the rounded corners come out shorter) */
            int x0 = prev.x < tr->r.x ? prev.x : tr->r.x;
            int x1 = prev.x + prev.w > tr->r.x + tr->r.w ? prev.x + prev.w : tr->r.x + tr->r.w;
            tr->r.x = x0;
            tr->r.w = x1 - x0;
            tr->hits++;
            tr->misses = 0;
            if (!tr->active && tr->hits >= 2) {
                tr->active = 1;
                if (res->nback < BLUR_DETECT_MAX)
                    res->back[res->nback++] = grow(d, tr->r, 1);
            }
            if (tr->active && res->n < BLUR_DETECT_MAX) {
                /* while it moves, cover where it was too */
                int moved = prev.y != tr->r.y || prev.h != tr->r.h;
                blur_rect_t g = grow(d, tr->r, 0);
                if (moved) {
                    /* one rectangle over both: the box blur is done once */
                    blur_rect_t q = grow(d, prev, 0);
                    int ux0 = g.x < q.x ? g.x : q.x, uy0 = g.y < q.y ? g.y : q.y;
                    int ux1 = g.x + g.w > q.x + q.w ? g.x + g.w : q.x + q.w;
                    int uy1 = g.y + g.h > q.y + q.h ? g.y + g.h : q.y + q.h;
                    g = (blur_rect_t){ux0, uy0, ux1 - ux0, uy1 - uy0};
                }
                res->rects[res->n++] = g;
            }
        } else {
            tr->misses++;
            if (!tr->active || tr->misses > d->hold) {
                memset(tr, 0, sizeof(*tr));
                continue;
            }
            /* not seen: it may be sliding out upwards or fading */
            if (res->n < BLUR_DETECT_MAX)
                res->rects[res->n++] = grow(d, tr->r, 1);
        }
    }
    for (int i = 0; i < d->ncands; i++) {
        if (matched[i])
            continue;
        for (int t = 0; t < MAX_TRACKS; t++) {
            track_t *tr = &d->tracks[t];
            if (tr->used)
                continue;
            tr->used = 1;
            tr->cls = d->cands[i].cls;
            tr->hits = 1;
            tr->r = d->cands[i].r;
            break;
        }
    }
}

int blur_detect_candidates(const blur_detect_t *d, blur_rect_t *out, int max)
{
    for (int i = 0; i < d->ncands && i < max; i++)
        out[i] = d->cands[i].r;
    return d->ncands;
}
