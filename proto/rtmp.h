/* proto/rtmp: the RTMP handshake and chunk stream as pure functions over
 * bytes.
 *
 * Handshake: the server side answers C0+C1 with S0+S1+S2. A C1 that
 * carries a digest (FFmpeg, OBS and Flash always send one) gets digest
 * S1/S2 that those clients verify; otherwise the simple echo handshake.
 * C2 is never validated. The client side (used by tests and tools)
 * builds a digest C1 and verifies S1/S2.
 *
 * Chunk stream: rtmp_reader_t reassembles messages from chunks of all four
 * header types, with extended timestamps, and applies Set Chunk Size and
 * Abort itself. The writer emits one message as a type-0 chunk followed by
 * type-3 chunks, so the bytes of a message are the same for every
 * receiver that shares chunk size, chunk stream and message stream. */
#ifndef PROTO_RTMP_H
#define PROTO_RTMP_H

#include "core/arena.h"

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RTMP_HS_SIZE 1536             /* C1, C2, S1, S2 */
#define RTMP_VERSION 3                /* C0, S0 */

/* Message types. */
enum {
    RTMP_MSG_SET_CHUNK_SIZE = 1,
    RTMP_MSG_ABORT = 2,
    RTMP_MSG_ACK = 3,
    RTMP_MSG_USER_CONTROL = 4,
    RTMP_MSG_WINDOW_ACK = 5,
    RTMP_MSG_PEER_BW = 6,
    RTMP_MSG_AUDIO = 8,
    RTMP_MSG_VIDEO = 9,
    RTMP_MSG_DATA_AMF3 = 15,
    RTMP_MSG_COMMAND_AMF3 = 17,
    RTMP_MSG_DATA_AMF0 = 18,
    RTMP_MSG_COMMAND_AMF0 = 20,
    RTMP_MSG_AGGREGATE = 22,
};

/* User control events. */
enum {
    RTMP_UC_STREAM_BEGIN = 0,
    RTMP_UC_STREAM_EOF = 1,
    RTMP_UC_STREAM_DRY = 2,
    RTMP_UC_SET_BUFFER_LENGTH = 3,
    RTMP_UC_STREAM_IS_RECORDED = 4,
    RTMP_UC_PING_REQUEST = 6,
    RTMP_UC_PING_RESPONSE = 7,
};

#define RTMP_MAX_CHUNK_SIZE 0xffffff  /* largest Set Chunk Size accepted */
#define RTMP_MAX_CHUNK_STREAMS 16     /* chunk streams in use at once per peer */

/* ---- handshake ---------------------------------------------------------- */

/* Answer c0c1 (1 + RTMP_HS_SIZE bytes, borrowed) into s0s1s2 (1 + 2 *
 * RTMP_HS_SIZE bytes). rnd (RTMP_HS_SIZE bytes) fills the random parts;
 * now_ms is the S1 time. Returns 1 when C1 carried a valid digest and the
 * answer is a digest answer, 0 for the simple handshake, -EPROTO when C0
 * is not version 3. */
int rtmp_handshake_respond(const uint8_t *c0c1, uint8_t *s0s1s2, const uint8_t *rnd,
                           uint32_t now_ms);

/* Client side: build C0+C1 (1 + RTMP_HS_SIZE bytes) with a digest at the
 * position of scheme 0 or 1, from rnd (RTMP_HS_SIZE bytes). */
void rtmp_handshake_client(uint8_t *c0c1, const uint8_t *rnd, int scheme);

/* Client side: verify the server's S1 digest and the S2 signature over
 * our C1 (c0c1 as sent). Returns 0, or -EPROTO when either is wrong. */
int rtmp_handshake_verify(const uint8_t *c0c1, const uint8_t *s0s1s2);

/* ---- chunk stream reader ------------------------------------------------ */

typedef struct rtmp_msg {
    uint32_t csid;
    uint32_t timestamp;        /* ms, 32-bit, wraps */
    uint32_t msid;             /* message stream id */
    uint8_t type;
    uint32_t len;
    uint8_t *payload;          /* ownership passes: core_free() it */
} rtmp_msg_t;

typedef struct rtmp_chunk_slot {
    uint32_t csid;
    int used;
    uint32_t timestamp, delta, len, msid;
    uint8_t type;
    int ext;                   /* last header had an extended timestamp */
    uint8_t *payload;          /* message being assembled */
    uint32_t have, cap;
} rtmp_chunk_slot_t;

typedef struct rtmp_reader {
    uint32_t chunk_size;       /* the peer's, 128 until it sets one */
    uint32_t max_message;
    core_tag_t tag;
    rtmp_chunk_slot_t slots[RTMP_MAX_CHUNK_STREAMS];
    rtmp_chunk_slot_t *cur;    /* slot whose chunk body is being read */
    uint32_t chunk_left;       /* body bytes left in the current chunk */
    /* A message's first allocation: min(announced length, prealloc), 0
     * meaning 4096; it then doubles with the bytes that arrive. A caller
     * that trusts its peer more may raise it after rtmp_reader_init() to
     * assemble most messages without a realloc; a lying header then costs
     * at most RTMP_MAX_CHUNK_STREAMS x prealloc bytes. */
    uint32_t prealloc;
} rtmp_reader_t;

/* Start a reader that refuses messages longer than max_message bytes and
 * allocates payloads with tag. */
void rtmp_reader_init(rtmp_reader_t *r, uint32_t max_message, core_tag_t tag);

/* Free partial messages. */
void rtmp_reader_close(rtmp_reader_t *r);

/* Consume bytes from buf[0..len): one chunk header, or body bytes of the
 * current chunk. When a message completes, *out is filled (out->payload
 * is then non-NULL, or the message is empty; check *done) and *done = 1.
 * Set Chunk Size and Abort are applied before they are returned.
 * Returns bytes consumed (> 0); -EAGAIN when a header is incomplete
 * (nothing consumed); -EPROTO for malformed chunks (a continuation header
 * without a previous one, a new header in the middle of a message, more
 * than RTMP_MAX_CHUNK_STREAMS chunk streams, a bad chunk size); -EMSGSIZE
 * for a message over the limit; -ENOMEM. After an error the reader must
 * only be closed. */
ssize_t rtmp_reader_parse(rtmp_reader_t *r, const uint8_t *buf, size_t len, rtmp_msg_t *out,
                          int *done);

/* ---- chunk stream writer ------------------------------------------------ */

/* Bytes rtmp_chunk_encode writes for a message of len bytes. */
size_t rtmp_chunk_encoded_size(uint32_t csid, uint32_t timestamp, size_t len, uint32_t chunk_size);

/* Write one message as chunks of chunk_size into out (room for
 * rtmp_chunk_encoded_size bytes). csid in [2, 65599]. Returns bytes
 * written. */
size_t rtmp_chunk_encode(uint8_t *out, uint32_t csid, uint8_t type, uint32_t msid,
                         uint32_t timestamp, const uint8_t *payload, size_t len,
                         uint32_t chunk_size);

/* Protocol control messages, complete with their chunk header (csid 2,
 * message stream 0). out needs RTMP_CONTROL_MAX bytes. Return bytes
 * written. */
#define RTMP_CONTROL_MAX 32
size_t rtmp_encode_set_chunk_size(uint8_t *out, uint32_t size);
size_t rtmp_encode_abort(uint8_t *out, uint32_t csid);
size_t rtmp_encode_ack(uint8_t *out, uint32_t sequence);
size_t rtmp_encode_window_ack(uint8_t *out, uint32_t size);
size_t rtmp_encode_peer_bw(uint8_t *out, uint32_t size, uint8_t limit_type);
size_t rtmp_encode_user_control(uint8_t *out, uint16_t event, uint32_t value);

/* Big-endian helpers shared with callers that parse control payloads. */
static inline uint32_t rtmp_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

#endif
