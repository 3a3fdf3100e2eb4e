/* transcoder/llhls: Apple Low-Latency HLS for every published stream.
 *
 * The stream hub calls the hooks below once per stream event and once per
 * packet (never per viewer); each stream is packaged once into CMAF parts
 * (transcoder/cmaf) and served to every viewer from the same bytes:
 *
 *   /live/NAME/master.m3u8   multivariant playlist (starts a viewer session)
 *   /live/NAME/index.m3u8    media playlist (a plain request waits for the
 *                            first complete segment); _HLS_msn/_HLS_part
 *                            block, _HLS_skip=YES|v2 gives a delta update
 *   /live/NAME/init.mp4      init segment (EXT-X-MAP)
 *   /live/NAME/sMSN.m4s      complete media segment
 *   /live/NAME/pMSN.PART.m4s part; the hinted next part is held and sent
 *                            (chunked) as soon as the muxer produces it
 *
 * Viewer sessions: master.m3u8 hands out a session id that the variant URI
 * carries (index.m3u8?sid=...), so every playlist reload refreshes it. A
 * playlist request without a sid counts as the session of its client
 * address and User-Agent. Sessions idle for llhls-session-idle-ms end.
 *
 * Loop thread only. Memory is tagged CORE_TAG_HLS. */
#ifndef TC_LLHLS_H
#define TC_LLHLS_H

#include "core/conf.h"
#include "transcoder/cmaf.h"

#include <stddef.h>
#include <stdint.h>

struct event_base;
struct evhttp_request;

typedef struct tc_llhls_conf {
    long long part_ms;          /* llhls-part-ms */
    long long segment_ms;       /* llhls-segment-ms */
    long long window_segments;  /* llhls-window-segments */
    long long session_idle_ms;  /* llhls-session-idle-ms */
} tc_llhls_conf_t;

/* Register the llhls-* directives; their storage is static in llhls.c and
 * readable through tc_llhls_conf(). Returns as core_conf_add(). */
int tc_llhls_conf_register(core_conf_t *c);
const tc_llhls_conf_t *tc_llhls_conf(void);

typedef struct tc_llhls tc_llhls_t;
typedef struct tc_llhls_stream tc_llhls_stream_t;

/* The LL-HLS side of a server. base and conf are borrowed and must outlive
 * it. Returns 0 or -ENOMEM. */
int tc_llhls_new(tc_llhls_t **out, struct event_base *base, const tc_llhls_conf_t *conf);

/* Close every stream (held requests get 404) and free; *hp = NULL. */
void tc_llhls_free(tc_llhls_t **hp);

/* ---- hooks for the stream hub ---------------------------------------- */

/* A stream starts publishing. name is copied (1..128 characters of
 * [A-Za-z0-9._-]). Returns 0 and *out (owned by h until closed), -EINVAL
 * for a bad name, -EEXIST when a stream of that name is open, -ENOMEM. */
/* Viewer session events, for viewer counts in the cache: JOIN when a
 * session first appears, TOUCH about every touch_ms while it lasts (it
 * lasts until llhls-session-idle-ms without a request), LEAVE when it
 * idles out or its stream ends. stream is the stream name (app "live"),
 * sid the session id; both borrowed for the call. event is 0 (join),
 * 1 (touch) or 2 (leave). */
typedef void (*tc_llhls_session_cb)(void *arg, const char *stream, const char *sid, int event);
void tc_llhls_set_session_cb(tc_llhls_t *h, tc_llhls_session_cb cb, void *arg, uint64_t touch_ms);

int tc_llhls_stream_open(tc_llhls_t *h, const char *name, tc_llhls_stream_t **out);

/* The stream stops: requests held for it get 404, its memory is freed
 * (bytes being sent stay alive until sent); *sp = NULL. NULL is a no-op. */
void tc_llhls_stream_close(tc_llhls_stream_t **sp);

/* The codec configuration (either track may be NULL; both NULL stops
 * packaging). Called again when it changes: packaging restarts with a new
 * init segment and the segment numbers go on. Returns 0, -EINVAL for codecs
 * LL-HLS cannot carry (the stream then has no LL-HLS output), -ENOMEM. */
int tc_llhls_on_config(tc_llhls_stream_t *s, const tc_cmaf_track_t *video,
                       const tc_cmaf_track_t *audio);

/* One media packet (borrowed for the call). Returns 0, -EINVAL for a
 * packet that cannot be packaged (dropped), -EIO when packaging failed
 * (the stream's LL-HLS output stops until the next on_config). */
int tc_llhls_on_packet(tc_llhls_stream_t *s, const tc_cmaf_packet_t *pkt);

/* The same from an RTMP message / FLV tag body: type 9 (video: H.264,
 * or HEVC/H.264 in Enhanced RTMP) or 8 (audio: AAC), ts the dts in ms,
 * p[0..len) the body (borrowed). Sequence headers become the
 * configuration (tc_llhls_on_config when it changes, at the next frame);
 * frames become packets. Other types and codecs are ignored (-EINVAL for
 * codecs LL-HLS cannot carry, 0 for the rest). Returns as
 * tc_llhls_on_packet(). */
int tc_llhls_on_flv(tc_llhls_stream_t *s, uint8_t type, uint32_t ts, const uint8_t *p,
                    size_t len);

/* Live viewer sessions of the stream named name (0 if none). */
size_t tc_llhls_viewers(const tc_llhls_t *h, const char *name);

/* ---- HTTP ---------------------------------------------------------- */

/* Nonzero when path is an LL-HLS resource ("/live/NAME/..."), so that the
 * handler of the "/live/" prefix can pass it on to tc_llhls_http(). */
int tc_llhls_match(const char *path);

/* core_http_cb for LL-HLS paths; arg is the tc_llhls_t. Answers 404 for
 * unknown streams and resources, 400 for bad delivery directives, 503 when
 * a blocking request waited more than 3 target durations. */
void tc_llhls_http(struct evhttp_request *req, const char *path, void *arg);

#endif
