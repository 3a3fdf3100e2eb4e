/* Shared by the unit suites of the live-stream types: run commands
 * against a bare keyspace the way the apply step does (batch time given by
 * the test, no clock, no server), and read the RESP reply as text. */
#ifndef TESTS_UNIT_CACHE_LIVE_FIXTURE_H
#define TESTS_UNIT_CACHE_LIVE_FIXTURE_H

#include "cache/t_live.h"
#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static cache_out_t lf_out;
static char lf_reply[1 << 16];

/* Run one command (arguments separated by single spaces; no empty
 * arguments) on k at batch time now_ms, as a batch entry (writes) or a
 * read. With prep, a write goes through its prep step first, as on the
 * proposer. Returns the raw RESP reply (static buffer). */
static inline const char *lf_run_argv(cache_ks_t *k, uint64_t now_ms, int prep, int argc,
                                      resp_arg_t *argv)
{
    const cache_cmd_t *cmd;
    cache_ctx_t x;
    core_scope_t *scope = core_scope_new(CORE_TAG_TEST, 4096);

    cache_cmd_init();
    memset(&x, 0, sizeof(x));
    x.ks = k;
    x.out = &lf_out;
    x.resp = 2;
    x.now_ms = now_ms;
    x.argc = argc;
    x.argv = argv;
    lf_out.len = 0;
    cmd = cache_cmd_lookup(argv[0].p, argv[0].len);
    ck_assert_msg(cmd != NULL, "unknown command %.*s", (int)argv[0].len, argv[0].p);
    x.in_apply = (cmd->flags & CMD_WRITE) != 0;
    if (prep && cmd->prep != NULL) {
        if (cmd->prep(&x, scope) != 0)
            goto out;
        cmd = cache_cmd_lookup(x.argv[0].p, x.argv[0].len);
        ck_assert(cmd != NULL);
    }
    if ((cmd->arity > 0 && x.argc != cmd->arity) || (cmd->arity < 0 && x.argc < -cmd->arity))
        add_err(&x, "ERR wrong number of arguments");
    else
        cmd->proc(&x);
out:
    ck_assert(lf_out.len < sizeof(lf_reply));
    memcpy(lf_reply, lf_out.p, lf_out.len);
    lf_reply[lf_out.len] = '\0';
    core_scope_free(&scope);
    return lf_reply;
}

static inline const char *lf_run(cache_ks_t *k, uint64_t now_ms, const char *fmt, ...)
{
    char line[4096];
    resp_arg_t argv[64];
    int argc = 0;
    va_list ap;
    char *p, *save = NULL;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    for (p = strtok_r(line, " ", &save); p != NULL && argc < 64; p = strtok_r(NULL, " ", &save)) {
        argv[argc].p = p;
        argv[argc].len = strlen(p);
        argv[argc].off = 0;
        argv[argc].esc = 0;
        argc++;
    }
    return lf_run_argv(k, now_ms, 1, argc, argv);
}

/* Integer reply of a command, failing the test on anything else. */
static inline long long lf_int(cache_ks_t *k, uint64_t now_ms, const char *fmt, ...)
{
    char line[4096];
    va_list ap;
    const char *r;
    long long v;

    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    r = lf_run(k, now_ms, "%s", line);
    ck_assert_msg(r[0] == ':', "%s -> %s", line, r);
    ck_assert_int_eq(sscanf(r + 1, "%lld", &v), 1);
    return v;
}

/* Snapshot bytes of k into a fresh evbuffer (caller frees). */
static inline struct evbuffer *lf_snapshot(cache_ks_t *k, uint64_t now_ms)
{
    struct evbuffer *b = evbuffer_new();

    ck_assert(b != NULL);
    ck_assert_int_eq(cache_ks_snapshot(k, b, now_ms), 0);
    return b;
}

static inline int lf_same_snapshot(cache_ks_t *a, cache_ks_t *b, uint64_t now_ms)
{
    struct evbuffer *sa = lf_snapshot(a, now_ms), *sb = lf_snapshot(b, now_ms);
    size_t la = evbuffer_get_length(sa), lb = evbuffer_get_length(sb);
    int same = la == lb && memcmp(evbuffer_pullup(sa, -1), evbuffer_pullup(sb, -1), la) == 0;

    evbuffer_free(sa);
    evbuffer_free(sb);
    return same;
}

/* Snapshot a, restore into a new keyspace, return it. */
static inline cache_ks_t *lf_clone(cache_ks_t *a, uint64_t now_ms)
{
    struct evbuffer *s = lf_snapshot(a, now_ms);
    cache_ks_t *k = cache_ks_new();

    ck_assert(k != NULL);
    ck_assert_int_eq(cache_ks_restore(k, evbuffer_pullup(s, -1), evbuffer_get_length(s)), 0);
    evbuffer_free(s);
    return k;
}

/* Every byte of a snapshot flipped in turn: restore either accepts it or
 * refuses it, and never reads out of bounds or leaks (ASan pass). */
static inline void lf_flip_each_byte(cache_ks_t *src, uint64_t now_ms)
{
    struct evbuffer *s = lf_snapshot(src, now_ms);
    size_t len = evbuffer_get_length(s);
    unsigned char *p = evbuffer_pullup(s, -1);
    cache_ks_t *k = cache_ks_new();

    ck_assert(k != NULL);
    for (size_t i = 0; i < len; i++) {
        int rv;

        p[i] ^= 0xff;
        rv = cache_ks_restore(k, p, len);
        ck_assert_msg(rv == 0 || rv == -EPROTO, "byte %zu: %d", i, rv);
        p[i] ^= 0xff;
    }
    cache_ks_free(&k);
    evbuffer_free(s);
}

/* The keyspace each test of a live-type suite runs on (lf_setup makes it,
 * lf_teardown frees it and checks that the suite's values left nothing). */
static cache_ks_t *ks;
static int64_t lf_base_values;

static inline void lf_setup(void)
{
    lf_base_values = core_mem_tag_live(CORE_TAG_CACHE_VALUES);
    ks = cache_ks_new();
    ck_assert(ks != NULL);
}

static inline void lf_teardown(void)
{
    cache_ks_free(&ks);
    out_free(&lf_out);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), lf_base_values);
}

#endif
