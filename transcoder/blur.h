/* transcoder/blur: the per-stream blur pipeline.
 *
 * With blur on, every video message of the stream goes to a worker
 * thread instead of the hub: decode (libavcodec, H.264), detect banners
 * (blur_detect), blur them and the regions set by the app (RTMP
 * onNotification) or the API (static regions) in place (blur_box), encode
 * (libx264 through libavcodec: tune=zerolatency, same size, keyframes
 * where the source has them, so the same GOP), and back on the loop into
 * the hub as the video viewers get. Audio and metadata do not go through
 * it. Timestamps (pts) are carried over. Output is held back
 * BLUR_DETECT_DELAY frames so the detector can cover a banner from the
 * first frame it shows.
 *
 * The blur writes into the decoder's picture: the rectangles' original
 * pixels are saved before and put back once the encoder has taken the
 * frame, so the decoder's reference pictures stay intact and no whole
 * frame is ever copied.
 *
 * Failure (a decode error, a resolution change, a new sequence header, a
 * codec or pixel format the encoder cannot match, a worker falling more
 * than 10 s behind): one log line, the stream's status says why, and the
 * stream falls back to passthrough: the source's sequence header and then
 * the source's video from its next keyframe. */
#ifndef TC_BLUR_H
#define TC_BLUR_H

#include "transcoder/blur_box.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evbuffer;
typedef struct tc_stream tc_stream_t;
typedef struct core_scope core_scope_t;
typedef struct tc_blur tc_blur_t;

#define TC_BLUR_MAX_STATIC 8

/* Should stream options (the stream key's query) turn blur on? "blur=1"
 * / "blur=yes" on, "blur=0" / "blur=no" off, else dflt. */
int tc_blur_wanted(const char *options, int dflt);

/* Start the pipeline of stream s (borrowed; s outlives it) on base.
 * Returns 0 and s->blur, or -ENOMEM / -errno from pthread_create. */
int tc_blur_start(tc_stream_t *s, struct event_base *base);

/* Stop the worker, drop what is queued, free; s->blur becomes NULL.
 * Loop thread only. */
void tc_blur_stop(tc_stream_t *s);

/* A video message from the publisher (borrowed). Returns 0 when the
 * pipeline took it (or dropped it while switching to passthrough), 1 when
 * the hub is to handle it as usual (passthrough), -ENOMEM. */
int tc_blur_take(tc_blur_t *b, uint32_t ts, const uint8_t *payload, uint32_t len,
                 uint64_t arrival_us);

/* The payload of an RTMP "onNotification" data message after its name:
 * an object with x, y, width, height (pixels) and duration (seconds,
 * default 5, at most 60). The region is blurred for that long. Returns 0,
 * -EPROTO for a malformed or out-of-range message, -ENOENT when blur is
 * off for s. */
int tc_blur_notification(tc_stream_t *s, core_scope_t *scope, const uint8_t *p, size_t len);

/* Replace the static regions (n <= TC_BLUR_MAX_STATIC). Returns 0 or
 * -EINVAL. */
int tc_blur_set_static(tc_blur_t *b, const blur_rect_t *r, int n);

/* Append the "blur" JSON object of stream s (status and counters) to
 * out; {"on":false} when blur is off. */
void tc_blur_json(const tc_stream_t *s, struct evbuffer *out);

/* POST /api/streams/NAME/blur with query "on=0|1" and/or
 * "regions=x,y,w,h;x,y,w,h" (empty: none). Returns an HTTP status and a
 * short reason in *why. */
int tc_blur_api(tc_stream_t *s, struct event_base *base, const char *query, const char **why);

#endif
