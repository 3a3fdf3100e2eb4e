/* Fuzz target for proto/amf0: decode, re-encode, decode again and check
 * the two encodings agree. Built for libFuzzer with clang; otherwise
 * main() replays a corpus. */
#include "proto/amf0.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint8_t a[1 << 17], b[1 << 17];
    core_scope_t *scope = core_scope_new(CORE_TAG_TEST, 0);
    amf0_value_t *v, *w;
    amf0_buf_t ea, eb;
    ssize_t n = amf0_parse(scope, data, size, &v);

    if (n > 0) {
        amf0_buf_init(&ea, a, sizeof(a));
        amf0_put_value(&ea, v);
        if (ea.err == 0) {
            if (amf0_parse(scope, a, ea.len, &w) != (ssize_t)ea.len)
                abort();
            amf0_buf_init(&eb, b, sizeof(b));
            amf0_put_value(&eb, w);
            if (eb.err != 0 || eb.len != ea.len || memcmp(a, b, ea.len) != 0)
                abort();
        }
    }
    core_scope_free(&scope);
    return 0;
}

#ifndef OBORO_LIBFUZZER
#include "fuzz_main.h"
#endif
