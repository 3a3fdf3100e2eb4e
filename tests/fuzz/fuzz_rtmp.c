/* Fuzz target for proto/rtmp (and the AMF0 commands it carries): the
 * input is what a client sends, C0+C1 first when long enough, then the
 * chunk stream, fed in pieces whose sizes come from the input itself.
 * Built for libFuzzer with clang; otherwise main() replays a corpus. */
#include "proto/amf0.h"
#include "proto/rtmp.h"

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t reply[1 + 2 * RTMP_HS_SIZE], rnd[RTMP_HS_SIZE];
    core_scope_t *scope = core_scope_new(CORE_TAG_TEST, 0);
    rtmp_reader_t r;
    size_t off = 0, step;

    if (size >= 1 + RTMP_HS_SIZE)
        rtmp_handshake_respond(data, reply, rnd, 0);
    /* a recorded session: skip C0, C1 and C2 */
    if (size >= 1 + 2 * RTMP_HS_SIZE && data[0] == RTMP_VERSION)
        off = 1 + 2 * RTMP_HS_SIZE;
    rtmp_reader_init(&r, 1 << 16, CORE_TAG_TEST);
    step = size > 0 ? (size_t)(data[0] % 17) + 1 : 1;
    while (off < size) {
        size_t avail = size - off < step ? size - off : step;
        rtmp_msg_t m;
        int done;
        ssize_t n = rtmp_reader_parse(&r, data + off, avail, &m, &done);

        if (n == -EAGAIN) {
            if (avail == size - off)
                break;
            step++;
            continue;
        }
        if (n < 0)
            break;
        off += (size_t)n;
        if (done) {
            if (m.type == RTMP_MSG_COMMAND_AMF0 || m.type == RTMP_MSG_DATA_AMF0) {
                size_t p = 0;
                amf0_value_t *v;
                ssize_t k;

                while (p < m.len && (k = amf0_parse(scope, m.payload + p, m.len - p, &v)) > 0)
                    p += (size_t)k;
                core_scope_reset(scope);
            }
            core_free(m.payload);
        }
    }
    rtmp_reader_close(&r);
    core_scope_free(&scope);
    return 0;
}

#ifndef OBORO_LIBFUZZER
#include "fuzz_main.h"
#endif
