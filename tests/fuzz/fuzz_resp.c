/* libFuzzer target for proto/resp: request parsing (whole and resumed in
 * two pieces), inline unescaping and value scanning must never read out of
 * bounds, never report more bytes than given, and agree with each other.
 * Without libFuzzer (gcc), main() replays every file of the directories or
 * files given on the command line. */
#include "proto/resp.h"

#include "core/arena.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void parse_all(const char *buf, size_t len, size_t split)
{
    resp_limits_t l = {1 << 20, 1024, 4096, (int)(len & 1)};
    resp_arg_t argv[64];
    resp_req_t r;
    size_t pos = 0;

    resp_req_reset(&r);
    while (pos < len) {
        size_t argc = 0;
        const char *err = NULL;
        size_t avail = len - pos;
        ssize_t n;

        if (split > 0 && split < avail) {
            n = resp_req_parse(&r, &l, buf + pos, split, argv, 64, &argc, &err);
            if (n == -EPROTO)
                return;
            if (n > 0) {
                assert((size_t)n <= split);
                pos += (size_t)n;
                continue;
            }
        }
        n = resp_req_parse(&r, &l, buf + pos, avail, argv, 64, &argc, &err);
        if (n == -EAGAIN || n == -EPROTO || n == -ENOSPC) {
            if (n == -EPROTO)
                assert(err != NULL && strncmp(err, "Protocol error: ", 16) == 0);
            return;
        }
        assert(n > 0 && (size_t)n <= avail);
        for (size_t i = 0; i < argc; i++) {
            char tmp[4096];

            assert(argv[i].p >= buf + pos && argv[i].p + argv[i].len <= buf + pos + (size_t)n);
            if (argv[i].len <= sizeof(tmp))
                assert(resp_arg_unescape(&argv[i], tmp) <= argv[i].len);
        }
        pos += (size_t)n;
        resp_req_reset(&r);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    resp_limits_t l = {1 << 20, 1024, 4096, 0};
    resp_type_t t;
    ssize_t n;

    parse_all(buf, size, 0);
    parse_all(buf, size, size ? (size_t)data[0] % (size + 1) : 0);
    n = resp_value_scan(&l, buf, size, 8, &t);
    assert(n == -EAGAIN || n == -EPROTO || (n > 0 && (size_t)n <= size));
    return 0;
}

#ifndef OBORO_LIBFUZZER
static int replay_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf;
    long len;

    if (f == NULL)
        return -1;
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = core_malloc(CORE_TAG_TEST, len > 0 ? (size_t)len : 1);
    if (buf == NULL || (len > 0 && fread(buf, 1, (size_t)len, f) != (size_t)len)) {
        core_free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    LLVMFuzzerTestOneInput(buf, (size_t)len);
    core_free(buf);
    return 0;
}

int main(int argc, char **argv)
{
    int files = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d;
        struct dirent *e;

        if (argv[i][0] == '-')
            continue; /* libFuzzer flags such as -runs=0 */
        d = opendir(argv[i]);
        if (d == NULL) {
            if (replay_file(argv[i]) != 0) {
                fprintf(stderr, "fuzz_resp: cannot read %s\n", argv[i]);
                return 1;
            }
            files++;
            continue;
        }
        while ((e = readdir(d)) != NULL) {
            char p[4096];

            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
            if (replay_file(p) != 0) {
                fprintf(stderr, "fuzz_resp: cannot read %s\n", p);
                closedir(d);
                return 1;
            }
            files++;
        }
        closedir(d);
    }
    printf("fuzz_resp: %d inputs replayed\n", files);
    return files > 0 ? 0 : 1;
}
#endif
