/* Unit tests for proto/rtmp: handshake both ways, chunk headers of every
 * type, extended timestamps, control messages; chunk inputs are tables fed
 * whole and split at every byte boundary. */
#include "proto/rtmp.h"

#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void teardown(void)
{
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}

/* ---- handshake ---------------------------------------------------------- */

static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

START_TEST(handshake_digest_both_schemes)
{
    uint8_t c0c1[1 + RTMP_HS_SIZE], s[1 + 2 * RTMP_HS_SIZE], rnd[RTMP_HS_SIZE];

    fill(rnd, sizeof(rnd), 7u + (unsigned)_i);
    rtmp_handshake_client(c0c1, rnd, _i);
    fill(rnd, sizeof(rnd), 99u);
    ck_assert_int_eq(rtmp_handshake_respond(c0c1, s, rnd, 1234), 1);
    ck_assert_int_eq(s[0], 3);
    ck_assert_int_eq(rtmp_get_be32(s + 1), 1234);
    ck_assert_int_ne(s[5], 0);   /* a server version: clients then verify */
    ck_assert_int_eq(rtmp_handshake_verify(c0c1, s), 0);
    /* a flipped bit in S2's signed part or its signature is caught */
    s[1 + RTMP_HS_SIZE + 100] ^= 1;
    ck_assert_int_eq(rtmp_handshake_verify(c0c1, s), -EPROTO);
    s[1 + RTMP_HS_SIZE + 100] ^= 1;
    s[2 * RTMP_HS_SIZE] ^= 0x80;
    ck_assert_int_eq(rtmp_handshake_verify(c0c1, s), -EPROTO);
    s[2 * RTMP_HS_SIZE] ^= 0x80;
    /* and so is an S1 whose digest is wrong */
    for (size_t i = 1; i <= RTMP_HS_SIZE; i += 16)
        s[i] ^= 0x55;
    ck_assert_int_eq(rtmp_handshake_verify(c0c1, s), -EPROTO);
}
END_TEST

START_TEST(handshake_simple)
{
    uint8_t c0c1[1 + RTMP_HS_SIZE], s[1 + 2 * RTMP_HS_SIZE], rnd[RTMP_HS_SIZE];

    fill(c0c1, sizeof(c0c1), 3);
    c0c1[0] = 3;
    memset(c0c1 + 5, 0, 4);      /* zero version: the simple handshake */
    fill(rnd, sizeof(rnd), 4);
    ck_assert_int_eq(rtmp_handshake_respond(c0c1, s, rnd, 5), 0);
    ck_assert_int_eq(s[0], 3);
    ck_assert_mem_eq(s + 1 + RTMP_HS_SIZE, c0c1 + 1, RTMP_HS_SIZE); /* S2 echoes C1 */
    ck_assert_int_eq(s[5] | s[6] | s[7] | s[8], 0);
    /* a version but no valid digest: still the simple handshake */
    c0c1[5] = 9;
    ck_assert_int_eq(rtmp_handshake_respond(c0c1, s, rnd, 5), 0);
}
END_TEST

START_TEST(handshake_bad_c0)
{
    uint8_t c0c1[1 + RTMP_HS_SIZE] = {6}, s[1 + 2 * RTMP_HS_SIZE], rnd[RTMP_HS_SIZE] = {0};

    ck_assert_int_eq(rtmp_handshake_respond(c0c1, s, rnd, 0), -EPROTO);
    c0c1[0] = 'G';   /* an HTTP request on the RTMP port */
    ck_assert_int_eq(rtmp_handshake_respond(c0c1, s, rnd, 0), -EPROTO);
}
END_TEST

/* ---- chunk stream ------------------------------------------------------- */

typedef struct want {
    uint32_t csid, ts, len, msid;
    uint8_t type;
} want_t;

typedef struct chunk_case {
    const char *name;
    uint8_t in[1200];
    size_t len;
    int nwant;
    want_t want[6];
    int result;                /* 0, or the error the input ends with */
} chunk_case_t;

static chunk_case_t cases[16];
static int ncases;

/* Little builder for hand-made chunk inputs. */
static chunk_case_t *cur;
static void put(const void *p, size_t n)
{
    memcpy(cur->in + cur->len, p, n);
    cur->len += n;
}
static void put8(uint8_t v) { put(&v, 1); }
static void put24(uint32_t v) { put8((uint8_t)(v >> 16)); put8((uint8_t)(v >> 8)); put8((uint8_t)v); }
static void put32(uint32_t v) { put8((uint8_t)(v >> 24)); put24(v & 0xffffff); }
static void fill_bytes(size_t n) { for (size_t i = 0; i < n; i++) put8((uint8_t)i); }
static void fmt0(uint8_t b0, uint32_t ts, uint32_t len, uint8_t type, uint32_t msid)
{
    put8(b0);
    put24(ts >= 0xffffff ? 0xffffff : ts);
    put24(len);
    put8(type);
    put8((uint8_t)msid); put8(0); put8(0); put8(0);
    if (ts >= 0xffffff)
        put32(ts);
}
static chunk_case_t *add(const char *name, int result)
{
    cur = &cases[ncases++];
    memset(cur, 0, sizeof(*cur));
    cur->name = name;
    cur->result = result;
    return cur;
}
static void want(uint32_t csid, uint32_t ts, uint32_t len, uint8_t type, uint32_t msid)
{
    cur->want[cur->nwant++] = (want_t){csid, ts, len, msid, type};
}

static void build_cases(void)
{
    if (ncases)
        return;
    add("type 0, one chunk", 0);
    fmt0(0x03, 1000, 5, 20, 0); fill_bytes(5);
    want(3, 1000, 5, 20, 0);

    add("types 0, 1, 2, 3 with deltas", 0);
    fmt0(0x04, 1000, 4, 9, 1); fill_bytes(4);
    put8(0x44); put24(40); put24(6); put8(8); fill_bytes(6);   /* type 1 */
    put8(0x84); put24(33); fill_bytes(6);                      /* type 2 */
    put8(0xc4); fill_bytes(6);                                 /* type 3: new message */
    want(4, 1000, 4, 9, 1); want(4, 1040, 6, 8, 1); want(4, 1073, 6, 8, 1); want(4, 1106, 6, 8, 1);

    add("message over two chunks (128)", 0);
    fmt0(0x05, 7, 200, 9, 1); fill_bytes(128); put8(0xc5); fill_bytes(72);
    want(5, 7, 200, 9, 1);

    add("extended timestamp, also in type 3", 0);
    fmt0(0x06, 0x01000000, 130, 9, 1); fill_bytes(128); put8(0xc6); put32(0x01000000); fill_bytes(2);
    want(6, 0x01000000, 130, 9, 1);

    add("two- and three-byte chunk stream ids", 0);
    fmt0(0x00, 1, 1, 8, 1); cur->len -= 11; put8(100 - 64); put24(1); put24(1); put8(8);
    put8(1); put8(0); put8(0); put8(0); put8(0xaa);
    put8(0x01); put8((400 - 64) & 0xff); put8((400 - 64) >> 8);
    put24(2); put24(1); put8(8); put8(1); put8(0); put8(0); put8(0); put8(0xbb);
    want(100, 1, 1, 8, 1); want(400, 2, 1, 8, 1);

    add("set chunk size then a larger chunk", 0);
    fmt0(0x02, 0, 4, RTMP_MSG_SET_CHUNK_SIZE, 0); put32(300);
    fmt0(0x07, 5, 300, 9, 1); fill_bytes(300);
    want(2, 0, 4, RTMP_MSG_SET_CHUNK_SIZE, 0); want(7, 5, 300, 9, 1);

    add("abort drops a partial message", 0);
    fmt0(0x08, 0, 200, 9, 1); fill_bytes(128);
    fmt0(0x02, 0, 4, RTMP_MSG_ABORT, 0); put32(8);
    fmt0(0x08, 9, 3, 9, 1); fill_bytes(3);
    want(2, 0, 4, RTMP_MSG_ABORT, 0); want(8, 9, 3, 9, 1);

    add("empty message", 0);
    fmt0(0x03, 1, 0, 20, 0);
    want(3, 1, 0, 20, 0);

    add("type 1 without a previous header", -EPROTO);
    put8(0x43); put24(1); put24(1); put8(8); put8(0);

    add("message over the limit", -EMSGSIZE);
    fmt0(0x03, 0, 70000, 9, 1);

    add("set chunk size 0", -EPROTO);
    fmt0(0x02, 0, 4, RTMP_MSG_SET_CHUNK_SIZE, 0); put32(0);

    add("new header in the middle of a message", -EPROTO);
    fmt0(0x05, 0, 200, 9, 1); fill_bytes(128); fmt0(0x05, 0, 10, 9, 1);

    add("too many chunk streams", -EPROTO);
    for (int i = 0; i <= RTMP_MAX_CHUNK_STREAMS; i++) {
        fmt0((uint8_t)(3 + i), 0, 200, 9, 1);
        fill_bytes(128);   /* every message stays partial and keeps its slot */
    }
}

typedef struct run {
    int nmsg;
    rtmp_msg_t msgs[8];
    int err;
} run_t;

/* Feed data in two parts split at cut, keeping unconsumed bytes like a
 * connection's input buffer. */
static void run_split(const chunk_case_t *c, size_t cut, run_t *out)
{
    rtmp_reader_t r;
    uint8_t held[1200];
    size_t hlen = 0, pos = 0;

    memset(out, 0, sizeof(*out));
    rtmp_reader_init(&r, 65536, CORE_TAG_TEST);
    for (int part = 0; part < 2 && out->err == 0; part++) {
        size_t end = part == 0 ? cut : c->len;

        memcpy(held + hlen, c->in + pos, end - pos);
        hlen += end - pos;
        pos = end;
        while (hlen > 0) {
            rtmp_msg_t m;
            int done;
            ssize_t n = rtmp_reader_parse(&r, held, hlen, &m, &done);

            if (n == -EAGAIN)
                break;
            if (n < 0) {
                out->err = (int)n;
                break;
            }
            ck_assert_int_gt(n, 0);
            memmove(held, held + n, hlen - (size_t)n);
            hlen -= (size_t)n;
            if (done) {
                ck_assert_int_lt(out->nmsg, 8);
                out->msgs[out->nmsg++] = m;
            }
        }
    }
    rtmp_reader_close(&r);
}

START_TEST(chunk_table)
{
    build_cases();
    for (int ci = 0; ci < ncases; ci++) {
        const chunk_case_t *c = &cases[ci];

        for (size_t cut = 0; cut <= c->len; cut++) {
            run_t r;

            run_split(c, cut, &r);
            ck_assert_msg(r.err == c->result, "%s cut %zu: err %d", c->name, cut, r.err);
            if (c->result == 0)
                ck_assert_msg(r.nmsg == c->nwant, "%s cut %zu: %d messages", c->name, cut, r.nmsg);
            for (int i = 0; i < r.nmsg && i < c->nwant; i++) {
                const want_t *w = &c->want[i];
                rtmp_msg_t *m = &r.msgs[i];

                ck_assert_msg(m->csid == w->csid && m->timestamp == w->ts && m->len == w->len &&
                                  m->type == w->type && m->msid == w->msid,
                              "%s cut %zu msg %d: csid %u ts %u len %u type %u", c->name, cut, i,
                              m->csid, m->timestamp, m->len, m->type);
                /* bodies are 0, 1, 2, ... restarting with every chunk */
                if (m->len > 0 && m->type == 9)
                    ck_assert_int_eq(m->payload[m->len - 1], (uint8_t)((m->len - 1) % 128));
            }
            for (int i = 0; i < r.nmsg; i++)
                core_free(r.msgs[i].payload);
        }
    }
}
END_TEST

START_TEST(writer_roundtrip)
{
    static const uint32_t stamps[] = {0, 40, 0xfffffe, 0xffffff, 0x12345678};
    static const size_t lens[] = {0, 1, 127, 128, 129, 1000};
    static const uint32_t csids[] = {3, 63, 64, 319, 320, 65599};
    uint8_t payload[1000], out[1400];

    fill(payload, sizeof(payload), 11);
    for (size_t a = 0; a < 5; a++)
        for (size_t b = 0; b < 6; b++)
            for (size_t c = 0; c < 6; c++) {
                rtmp_reader_t r;
                size_t n = rtmp_chunk_encode(out, csids[c], 9, 1, stamps[a], payload, lens[b], 128);
                size_t off = 0;
                rtmp_msg_t m = {0};
                int done = 0;

                ck_assert_int_eq(n, rtmp_chunk_encoded_size(csids[c], stamps[a], lens[b], 128));
                rtmp_reader_init(&r, 1 << 20, CORE_TAG_TEST);
                while (off < n && !done) {
                    ssize_t k = rtmp_reader_parse(&r, out + off, n - off, &m, &done);

                    ck_assert_int_gt(k, 0);
                    off += (size_t)k;
                }
                ck_assert_int_eq(done, 1);
                ck_assert_int_eq(off, n);
                ck_assert_uint_eq(m.timestamp, stamps[a]);
                ck_assert_uint_eq(m.csid, csids[c]);
                ck_assert_uint_eq(m.len, lens[b]);
                if (lens[b])
                    ck_assert_mem_eq(m.payload, payload, lens[b]);
                core_free(m.payload);
                rtmp_reader_close(&r);
            }
}
END_TEST

START_TEST(control_messages)
{
    uint8_t out[RTMP_CONTROL_MAX];
    rtmp_reader_t r;
    rtmp_msg_t m;
    int done;
    size_t n;

    rtmp_reader_init(&r, 1024, CORE_TAG_TEST);
    n = rtmp_encode_set_chunk_size(out, 4096);
    ck_assert_int_eq(rtmp_reader_parse(&r, out, n, &m, &done), 12);
    ck_assert_int_eq(rtmp_reader_parse(&r, out + 12, n - 12, &m, &done), 4);
    ck_assert_int_eq(done, 1);
    ck_assert_int_eq(m.type, RTMP_MSG_SET_CHUNK_SIZE);
    ck_assert_uint_eq(r.chunk_size, 4096);
    core_free(m.payload);

    n = rtmp_encode_user_control(out, RTMP_UC_PING_RESPONSE, 77);
    ck_assert_int_eq(n, 12 + 6);
    ck_assert_int_eq(out[7], RTMP_MSG_USER_CONTROL);
    ck_assert_int_eq(out[12 + 1], RTMP_UC_PING_RESPONSE);
    ck_assert_uint_eq(rtmp_get_be32(out + 14), 77);
    n = rtmp_encode_peer_bw(out, 2500000, 2);
    ck_assert_int_eq(n, 12 + 5);
    ck_assert_uint_eq(rtmp_get_be32(out + 12), 2500000);
    ck_assert_int_eq(out[16], 2);
    ck_assert_int_eq(rtmp_encode_window_ack(out, 5000000), 16);
    ck_assert_int_eq(out[7], RTMP_MSG_WINDOW_ACK);
    ck_assert_int_eq(rtmp_encode_ack(out, 12345), 16);
    ck_assert_uint_eq(rtmp_get_be32(out + 12), 12345);
    ck_assert_int_eq(rtmp_encode_abort(out, 5), 16);
    rtmp_reader_close(&r);
}
END_TEST

START_TEST(lying_length_does_not_allocate)
{
    /* a header announcing 16 MB followed by 10 bytes holds about 4 KiB */
    uint8_t in[32] = {0x03, 0, 0, 0, 0xff, 0xff, 0xf0, 9, 1, 0, 0, 0};
    rtmp_reader_t r;
    rtmp_msg_t m;
    int done;

    rtmp_reader_init(&r, RTMP_MAX_CHUNK_SIZE, CORE_TAG_TEST);
    ck_assert_int_eq(rtmp_reader_parse(&r, in, 12, &m, &done), 12);
    ck_assert_int_eq(rtmp_reader_parse(&r, in + 12, 10, &m, &done), 10);
    ck_assert_int_le(core_mem_tag_live(CORE_TAG_TEST), 8192);
    rtmp_reader_close(&r);
}
END_TEST

START_TEST(enomem_while_assembling)
{
    uint8_t in[12 + 200] = {0x03, 0, 0, 0, 0, 0, 200, 9, 1, 0, 0, 0};
    rtmp_reader_t r;
    rtmp_msg_t m;
    int done;

    rtmp_reader_init(&r, 65536, CORE_TAG_TEST);
    ck_assert_int_eq(rtmp_reader_parse(&r, in, sizeof(in), &m, &done), 12);
    core_mem_fail_after(1);
    ck_assert_int_eq(rtmp_reader_parse(&r, in + 12, 128, &m, &done), -ENOMEM);
    core_mem_fail_reset();
    rtmp_reader_close(&r);
}
END_TEST

/* With prealloc, a message up to that size is assembled in one allocation
 * (no doubling from 4 KiB), whatever the read boundaries; a lying header
 * still costs at most prealloc bytes. */
START_TEST(prealloc_one_allocation)
{
    static uint8_t payload[10000], out[10000 + 200];
    static const uint32_t pre[] = {16384, 10000, 3000};
    size_t n;

    fill(payload, sizeof(payload), 5);
    n = rtmp_chunk_encode(out, 6, 9, 1, 40, payload, sizeof(payload), 128);
    for (size_t p = 0; p < sizeof(pre) / sizeof(pre[0]); p++)
        for (size_t cut = 0; cut <= n; cut += (cut < 300 || n - cut < 300) ? 1 : 97) {
            rtmp_reader_t r;
            rtmp_msg_t m = {0};
            int done = 0;
            size_t off = 0;

            rtmp_reader_init(&r, 1 << 20, CORE_TAG_TEST);
            r.prealloc = pre[p];
            if (pre[p] >= sizeof(payload))
                core_mem_fail_after(2);   /* one allocation is all it may take */
            while (off < n && !done) {
                size_t end = off < cut ? cut : n;
                ssize_t k = rtmp_reader_parse(&r, out + off, end - off, &m, &done);

                if (k == -EAGAIN && end < n)   /* a header split at the cut */
                    k = rtmp_reader_parse(&r, out + off, n - off, &m, &done);
                ck_assert_int_gt(k, 0);
                off += (size_t)k;
            }
            core_mem_fail_reset();
            ck_assert_int_eq(done, 1);
            ck_assert_uint_eq(m.len, sizeof(payload));
            ck_assert_mem_eq(m.payload, payload, sizeof(payload));
            core_free(m.payload);
            rtmp_reader_close(&r);
        }
    {
        /* a header announcing 16 MB followed by 10 bytes */
        uint8_t in[32] = {0x03, 0, 0, 0, 0xff, 0xff, 0xf0, 9, 1, 0, 0, 0};
        rtmp_reader_t r;
        rtmp_msg_t m;
        int done;

        rtmp_reader_init(&r, RTMP_MAX_CHUNK_SIZE, CORE_TAG_TEST);
        r.prealloc = 65536;
        ck_assert_int_eq(rtmp_reader_parse(&r, in, 12, &m, &done), 12);
        ck_assert_int_eq(rtmp_reader_parse(&r, in + 12, 10, &m, &done), 10);
        ck_assert_int_le(core_mem_tag_live(CORE_TAG_TEST), 65536 + 4096);
        rtmp_reader_close(&r);
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proto/rtmp");
    TCase *tc = tcase_create("handshake");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, handshake_digest_both_schemes, 0, 2);
    tcase_add_test(tc, handshake_simple);
    tcase_add_test(tc, handshake_bad_c0);
    suite_add_tcase(s, tc);
    tc = tcase_create("chunks");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, chunk_table);
    tcase_add_test(tc, writer_roundtrip);
    tcase_add_test(tc, control_messages);
    tcase_add_test(tc, lying_length_does_not_allocate);
    tcase_add_test(tc, enomem_while_assembling);
    tcase_add_test(tc, prealloc_one_allocation);
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
