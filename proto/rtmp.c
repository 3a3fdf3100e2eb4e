/* proto/rtmp: handshake (simple and digest) and the chunk stream. */
#include "proto/rtmp.h"

#include <errno.h>
#include <openssl/hmac.h>
#include <string.h>

/* ---- handshake ---------------------------------------------------------- */

/* The digest handshake keys: a text part (the only part used to sign C1
 * and S1) followed by 32 fixed bytes (used, whole, to derive the S2 key). */
static const uint8_t key_tail[32] = {
    0xf0, 0xee, 0xc2, 0x4a, 0x80, 0x68, 0xbe, 0xe8, 0x2e, 0x00, 0xd0, 0xd1, 0x02, 0x9e, 0x7e, 0x57,
    0x6e, 0xec, 0x5d, 0x2d, 0x29, 0x80, 0x6f, 0xab, 0x93, 0xb8, 0xe6, 0x36, 0xcf, 0xeb, 0x31, 0xae,
};
static const char client_text[] = "Genuine Adobe Flash Player 001";       /* 30 bytes */
static const char server_text[] = "Genuine Adobe Flash Media Server 001"; /* 36 bytes */

#define CLIENT_TEXT_LEN (sizeof(client_text) - 1)
#define SERVER_TEXT_LEN (sizeof(server_text) - 1)
#define DIGEST_LEN 32

static void hmac(const uint8_t *key, size_t klen, const uint8_t *a, size_t alen,
                 const uint8_t *b, size_t blen, uint8_t out[DIGEST_LEN])
{
    /* the message is a with the 32 digest bytes cut out: a, then b */
    uint8_t msg[RTMP_HS_SIZE];
    unsigned olen = DIGEST_LEN;

    memcpy(msg, a, alen);
    if (blen > 0)
        memcpy(msg + alen, b, blen);
    HMAC(EVP_sha256(), key, (int)klen, msg, alen + blen, out, &olen);
}

static void full_key(uint8_t *k, const char *text, size_t tlen)
{
    memcpy(k, text, tlen);
    memcpy(k + tlen, key_tail, sizeof(key_tail));
}

/* Offset of the digest in a 1536-byte block for scheme 0 (base 8) or 1
 * (base 772): four offset bytes sum modulo 728, past the offset bytes. */
static size_t digest_pos(const uint8_t *blk, int scheme)
{
    size_t base = scheme == 0 ? 8 : 772;

    return (size_t)(blk[base] + blk[base + 1] + blk[base + 2] + blk[base + 3]) % 728 + base + 4;
}

static void block_digest(const uint8_t *blk, size_t pos, const uint8_t *key, size_t klen,
                         uint8_t out[DIGEST_LEN])
{
    hmac(key, klen, blk, pos, blk + pos + DIGEST_LEN, RTMP_HS_SIZE - pos - DIGEST_LEN, out);
}

/* Returns the digest position if blk carries a valid digest signed with
 * key under either scheme, else 0. */
static size_t find_digest(const uint8_t *blk, const uint8_t *key, size_t klen)
{
    for (int scheme = 0; scheme < 2; scheme++) {
        size_t pos = digest_pos(blk, scheme);
        uint8_t d[DIGEST_LEN];

        block_digest(blk, pos, key, klen, d);
        if (memcmp(d, blk + pos, DIGEST_LEN) == 0)
            return pos;
    }
    return 0;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* S2 (or C2) signature: HMAC over the first 1504 bytes with a key derived
 * from the peer's digest and the full key. */
static void sign_reply(uint8_t *blk, const uint8_t *peer_digest, const char *text, size_t tlen)
{
    uint8_t k[64 + DIGEST_LEN], dk[DIGEST_LEN];

    full_key(k, text, tlen);
    hmac(k, tlen + sizeof(key_tail), peer_digest, DIGEST_LEN, NULL, 0, dk);
    hmac(dk, DIGEST_LEN, blk, RTMP_HS_SIZE - DIGEST_LEN, NULL, 0, blk + RTMP_HS_SIZE - DIGEST_LEN);
}

int rtmp_handshake_respond(const uint8_t *c0c1, uint8_t *s0s1s2, const uint8_t *rnd,
                           uint32_t now_ms)
{
    const uint8_t *c1 = c0c1 + 1;
    uint8_t *s1 = s0s1s2 + 1, *s2 = s1 + RTMP_HS_SIZE;
    size_t cpos, spos;

    if (c0c1[0] != RTMP_VERSION)
        return -EPROTO;
    s0s1s2[0] = RTMP_VERSION;
    memcpy(s1, rnd, RTMP_HS_SIZE);
    put_be32(s1, now_ms);
    /* a zero version in C1 announces the simple handshake */
    cpos = (c1[4] | c1[5] | c1[6] | c1[7]) ? find_digest(c1, (const uint8_t *)client_text,
                                                          CLIENT_TEXT_LEN) : 0;
    if (cpos == 0) {
        memset(s1 + 4, 0, 4);
        memcpy(s2, c1, RTMP_HS_SIZE);
        return 0;
    }
    s1[4] = 4;
    s1[5] = 5;
    s1[6] = 0;
    s1[7] = 1;
    spos = digest_pos(s1, cpos < 772 ? 0 : 1);
    block_digest(s1, spos, (const uint8_t *)server_text, SERVER_TEXT_LEN, s1 + spos);
    memcpy(s2, rnd, RTMP_HS_SIZE);
    sign_reply(s2, c1 + cpos, server_text, SERVER_TEXT_LEN);
    return 1;
}

void rtmp_handshake_client(uint8_t *c0c1, const uint8_t *rnd, int scheme)
{
    uint8_t *c1 = c0c1 + 1;
    size_t pos;

    c0c1[0] = RTMP_VERSION;
    memcpy(c1, rnd, RTMP_HS_SIZE);
    memset(c1, 0, 4);
    c1[4] = 9;
    c1[5] = 0;
    c1[6] = 124;
    c1[7] = 2;
    pos = digest_pos(c1, scheme);
    block_digest(c1, pos, (const uint8_t *)client_text, CLIENT_TEXT_LEN, c1 + pos);
}

int rtmp_handshake_verify(const uint8_t *c0c1, const uint8_t *s0s1s2)
{
    const uint8_t *c1 = c0c1 + 1, *s1 = s0s1s2 + 1, *s2 = s1 + RTMP_HS_SIZE;
    uint8_t chk[RTMP_HS_SIZE];
    size_t cpos;

    if (s0s1s2[0] != RTMP_VERSION)
        return -EPROTO;
    cpos = find_digest(c1, (const uint8_t *)client_text, CLIENT_TEXT_LEN);
    if (cpos == 0 || find_digest(s1, (const uint8_t *)server_text, SERVER_TEXT_LEN) == 0)
        return -EPROTO;
    memcpy(chk, s2, RTMP_HS_SIZE);
    sign_reply(chk, c1 + cpos, server_text, SERVER_TEXT_LEN);
    return memcmp(chk + RTMP_HS_SIZE - DIGEST_LEN, s2 + RTMP_HS_SIZE - DIGEST_LEN, DIGEST_LEN) == 0
               ? 0 : -EPROTO;
}

/* ---- chunk stream reader ------------------------------------------------ */

void rtmp_reader_init(rtmp_reader_t *r, uint32_t max_message, core_tag_t tag)
{
    memset(r, 0, sizeof(*r));
    r->chunk_size = 128;
    r->max_message = max_message;
    r->tag = tag;
}

void rtmp_reader_close(rtmp_reader_t *r)
{
    for (int i = 0; i < RTMP_MAX_CHUNK_STREAMS; i++) {
        core_free(r->slots[i].payload);
        r->slots[i].payload = NULL;
    }
    r->cur = NULL;
}

static uint32_t be24(const uint8_t *p)
{
    return ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
}

static rtmp_chunk_slot_t *slot_find(rtmp_reader_t *r, uint32_t csid, int create)
{
    rtmp_chunk_slot_t *free_slot = NULL;

    for (int i = 0; i < RTMP_MAX_CHUNK_STREAMS; i++) {
        if (r->slots[i].used && r->slots[i].csid == csid)
            return &r->slots[i];
        if (!r->slots[i].used && free_slot == NULL)
            free_slot = &r->slots[i];
    }
    if (!create || free_slot == NULL)
        return NULL;
    memset(free_slot, 0, sizeof(*free_slot));
    free_slot->used = 1;
    free_slot->csid = csid;
    return free_slot;
}

/* A complete message: hand it out and apply what concerns the reader. */
static int deliver(rtmp_reader_t *r, rtmp_chunk_slot_t *s, rtmp_msg_t *out)
{
    out->csid = s->csid;
    out->timestamp = s->timestamp;
    out->msid = s->msid;
    out->type = s->type;
    out->len = s->len;
    out->payload = s->payload;
    s->payload = NULL;
    s->have = 0;
    s->cap = 0;
    if (out->type == RTMP_MSG_SET_CHUNK_SIZE) {
        uint32_t n;

        if (out->len < 4)
            return -EPROTO;
        n = rtmp_get_be32(out->payload) & 0x7fffffff;
        if (n < 1 || n > RTMP_MAX_CHUNK_SIZE)
            return -EPROTO;
        r->chunk_size = n;
    } else if (out->type == RTMP_MSG_ABORT) {
        rtmp_chunk_slot_t *a;

        if (out->len < 4)
            return -EPROTO;
        a = slot_find(r, rtmp_get_be32(out->payload), 0);
        if (a != NULL && a != s) {
            core_free(a->payload);
            a->payload = NULL;
            a->have = a->cap = 0;
        }
    }
    return 0;
}

static ssize_t parse_header(rtmp_reader_t *r, const uint8_t *buf, size_t len, rtmp_msg_t *out,
                            int *done)
{
    static const size_t hlen[4] = {11, 7, 3, 0};
    size_t off = 1, need;
    unsigned fmt;
    uint32_t csid, field = 0;
    rtmp_chunk_slot_t *s;
    int ext;

    if (len < 1)
        return -EAGAIN;
    fmt = buf[0] >> 6;
    csid = buf[0] & 0x3f;
    if (csid == 0) {
        if (len < 2)
            return -EAGAIN;
        csid = 64 + buf[1];
        off = 2;
    } else if (csid == 1) {
        if (len < 3)
            return -EAGAIN;
        csid = 64 + buf[1] + ((uint32_t)buf[2] << 8);
        off = 3;
    }
    need = off + hlen[fmt];
    if (len < need)
        return -EAGAIN;
    s = slot_find(r, csid, fmt == 0);
    if (s == NULL)
        return -EPROTO;   /* continuation without a header, or too many */
    if (fmt < 3) {
        field = be24(buf + off);
        ext = field == 0xffffff;
    } else {
        ext = s->ext;
    }
    if (ext) {
        need += 4;
        if (len < need)
            return -EAGAIN;
        field = rtmp_get_be32(buf + off + hlen[fmt]);
    }
    if (fmt < 3 && s->have > 0)
        return -EPROTO;   /* new header in the middle of a message */
    switch (fmt) {
    case 0:
        s->len = be24(buf + off + 3);
        s->type = buf[off + 6];
        s->msid = (uint32_t)buf[off + 7] | ((uint32_t)buf[off + 8] << 8) |
                  ((uint32_t)buf[off + 9] << 16) | ((uint32_t)buf[off + 10] << 24);
        s->timestamp = field;
        s->delta = field;
        break;
    case 1:
        s->len = be24(buf + off + 3);
        s->type = buf[off + 6];
        /* fallthrough */
    case 2:
        s->delta = field;
        s->timestamp += field;
        break;
    default:
        if (s->have == 0)
            s->timestamp += s->delta;
        break;
    }
    if (fmt < 3)
        s->ext = ext;
    if (s->len > r->max_message)
        return -EMSGSIZE;
    if (s->len == 0) {
        int rv = deliver(r, s, out);

        if (rv != 0)
            return rv;
        *done = 1;
        return (ssize_t)need;
    }
    r->cur = s;
    r->chunk_left = s->len - s->have < r->chunk_size ? s->len - s->have : r->chunk_size;
    return (ssize_t)need;
}

ssize_t rtmp_reader_parse(rtmp_reader_t *r, const uint8_t *buf, size_t len, rtmp_msg_t *out,
                          int *done)
{
    rtmp_chunk_slot_t *s = r->cur;
    size_t n;

    *done = 0;
    if (s == NULL)
        return parse_header(r, buf, len, out, done);
    if (len == 0)
        return -EAGAIN;
    n = len < r->chunk_left ? len : r->chunk_left;
    if (s->have + n > s->cap) {
        /* grow with the bytes that actually arrive, not with the announced
         * length, so a lying header cannot make us allocate */
        uint32_t ncap = s->cap ? s->cap * 2 : r->prealloc ? r->prealloc : 4096;
        uint8_t *p;

        if (ncap < s->have + n)
            ncap = (uint32_t)(s->have + n);
        if (ncap > s->len)
            ncap = s->len;
        p = core_realloc(r->tag, s->payload, ncap);
        if (p == NULL)
            return -ENOMEM;
        s->payload = p;
        s->cap = ncap;
    }
    memcpy(s->payload + s->have, buf, n);
    s->have += (uint32_t)n;
    r->chunk_left -= (uint32_t)n;
    if (r->chunk_left == 0) {
        r->cur = NULL;
        if (s->have == s->len) {
            int rv = deliver(r, s, out);

            if (rv != 0) {
                core_free(out->payload);
                out->payload = NULL;
                return rv;
            }
            *done = 1;
        }
    }
    return (ssize_t)n;
}

/* ---- chunk stream writer ------------------------------------------------ */

static size_t basic_len(uint32_t csid)
{
    return csid < 64 ? 1 : csid < 320 ? 2 : 3;
}

static size_t put_basic(uint8_t *p, unsigned fmt, uint32_t csid)
{
    if (csid < 64) {
        p[0] = (uint8_t)(fmt << 6 | csid);
        return 1;
    }
    if (csid < 320) {
        p[0] = (uint8_t)(fmt << 6);
        p[1] = (uint8_t)(csid - 64);
        return 2;
    }
    p[0] = (uint8_t)(fmt << 6 | 1);
    p[1] = (uint8_t)((csid - 64) & 0xff);
    p[2] = (uint8_t)((csid - 64) >> 8);
    return 3;
}

size_t rtmp_chunk_encoded_size(uint32_t csid, uint32_t timestamp, size_t len, uint32_t chunk_size)
{
    size_t ext = timestamp >= 0xffffff ? 4 : 0;
    size_t chunks = len == 0 ? 1 : (len + chunk_size - 1) / chunk_size;

    return basic_len(csid) + 11 + ext + len + (chunks - 1) * (basic_len(csid) + ext);
}

size_t rtmp_chunk_encode(uint8_t *out, uint32_t csid, uint8_t type, uint32_t msid,
                         uint32_t timestamp, const uint8_t *payload, size_t len,
                         uint32_t chunk_size)
{
    int ext = timestamp >= 0xffffff;
    uint32_t field = ext ? 0xffffff : timestamp;
    uint8_t *p = out;
    size_t off = 0;

    p += put_basic(p, 0, csid);
    p[0] = (uint8_t)(field >> 16);
    p[1] = (uint8_t)(field >> 8);
    p[2] = (uint8_t)field;
    p[3] = (uint8_t)(len >> 16);
    p[4] = (uint8_t)(len >> 8);
    p[5] = (uint8_t)len;
    p[6] = type;
    p[7] = (uint8_t)msid;
    p[8] = (uint8_t)(msid >> 8);
    p[9] = (uint8_t)(msid >> 16);
    p[10] = (uint8_t)(msid >> 24);
    p += 11;
    for (;;) {
        size_t n = len - off < chunk_size ? len - off : chunk_size;

        if (ext) {
            put_be32(p, timestamp);
            p += 4;
        }
        if (n > 0)
            memcpy(p, payload + off, n);
        p += n;
        off += n;
        if (off >= len)
            break;
        p += put_basic(p, 3, csid);
    }
    return (size_t)(p - out);
}

static size_t control(uint8_t *out, uint8_t type, const uint8_t *payload, size_t len)
{
    return rtmp_chunk_encode(out, 2, type, 0, 0, payload, len, 128);
}

size_t rtmp_encode_set_chunk_size(uint8_t *out, uint32_t size)
{
    uint8_t b[4];

    put_be32(b, size & 0x7fffffff);
    return control(out, RTMP_MSG_SET_CHUNK_SIZE, b, 4);
}

size_t rtmp_encode_abort(uint8_t *out, uint32_t csid)
{
    uint8_t b[4];

    put_be32(b, csid);
    return control(out, RTMP_MSG_ABORT, b, 4);
}

size_t rtmp_encode_ack(uint8_t *out, uint32_t sequence)
{
    uint8_t b[4];

    put_be32(b, sequence);
    return control(out, RTMP_MSG_ACK, b, 4);
}

size_t rtmp_encode_window_ack(uint8_t *out, uint32_t size)
{
    uint8_t b[4];

    put_be32(b, size);
    return control(out, RTMP_MSG_WINDOW_ACK, b, 4);
}

size_t rtmp_encode_peer_bw(uint8_t *out, uint32_t size, uint8_t limit_type)
{
    uint8_t b[5];

    put_be32(b, size);
    b[4] = limit_type;
    return control(out, RTMP_MSG_PEER_BW, b, 5);
}

size_t rtmp_encode_user_control(uint8_t *out, uint16_t event, uint32_t value)
{
    uint8_t b[6];

    b[0] = (uint8_t)(event >> 8);
    b[1] = (uint8_t)event;
    put_be32(b + 2, value);
    return control(out, RTMP_MSG_USER_CONTROL, b, 6);
}
