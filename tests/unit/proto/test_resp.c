/* Unit tests for proto/resp: request parsing (multibulk and inline, limits,
 * Redis's error texts), value scanning (RESP2 and RESP3) and encoding.
 * Every table case is fed whole, then byte by byte with the parser state
 * kept between calls, then split at every boundary. */
#include "proto/resp.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct req_case {
    const char *in;
    size_t len;          /* 0: strlen(in) */
    ssize_t want;        /* bytes consumed, -EPROTO */
    int argc;
    const char *args[4]; /* expected values (unescaped) */
    const char *err;     /* with -EPROTO */
    int unauth;
} req_case_t;

#define MB 1024LL * 1024 * 512

static const req_case_t req_cases[] = {
    {"*1\r\n$4\r\nPING\r\n", 0, 14, 1, {"PING"}, NULL, 0},
    {"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 0, 20, 2, {"GET", "k"}, NULL, 0},
    {"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n", 0, 26, 3, {"SET", "k", ""}, NULL, 0},
    {"*1\r\n$4\r\nPING\r\n*1\r\n", 0, 14, 1, {"PING"}, NULL, 0},
    {"*2\r\n$3\r\na\r\n\r\n$1\r\nb\r\n", 0, 20, 2, {"a\r\n", "b"}, NULL, 0},
    {"*0\r\n", 0, 4, 0, {0}, NULL, 0},
    {"*-1\r\n", 0, 5, 0, {0}, NULL, 0},
    {"PING\r\n", 0, 6, 1, {"PING"}, NULL, 0},
    {"PING\n", 0, 5, 1, {"PING"}, NULL, 0},
    {"  set  k   v \r\n", 0, 15, 3, {"set", "k", "v"}, NULL, 0},
    {"\r\n", 0, 2, 0, {0}, NULL, 0},
    {"set k \"a b\\x41\\n\"\r\n", 0, 19, 3, {"set", "k", "a bA\n"}, NULL, 0},
    {"set k 'it\\'s'\r\n", 0, 15, 3, {"set", "k", "it's"}, NULL, 0},
    {"set k \"abc\r\n", 0, -EPROTO, 0, {0}, "Protocol error: unbalanced quotes in request", 0},
    {"set k \"a\"b\r\n", 0, -EPROTO, 0, {0}, "Protocol error: unbalanced quotes in request", 0},
    {"*x\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid multibulk length", 0},
    {"*01\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid multibulk length", 0},
    {"*+1\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid multibulk length", 0},
    {"*3000000000\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid multibulk length", 0},
    {"*1\r\n+PING\r\n", 0, -EPROTO, 0, {0}, "Protocol error: expected '$', got '+'", 0},
    {"*1\r\n$-1\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid bulk length", 0},
    {"*1\r\n$x\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid bulk length", 0},
    {"*1\r\n$999999999999\r\n", 0, -EPROTO, 0, {0}, "Protocol error: invalid bulk length", 0},
    {"*1\r\n$4\r\nPINGxx", 0, -EPROTO, 0, {0}, "Protocol error: bulk string not terminated by CRLF", 0},
    {"*11\r\n", 0, -EPROTO, 0, {0}, "Protocol error: unauthenticated multibulk length", 1},
    {"*1\r\n$16385\r\n", 0, -EPROTO, 0, {0}, "Protocol error: unauthenticated bulk length", 1},
    {"*10\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n$1\r\na\r\n",
     0, 75, 10, {"a", "a", "a", "a"}, NULL, 1},
};

static resp_limits_t lim_for(const req_case_t *c)
{
    resp_limits_t l = {MB, 1 << 20, RESP_INLINE_MAX, c->unauth};

    return l;
}

static void check_result(const req_case_t *c, ssize_t n, resp_arg_t *argv, size_t argc, const char *err)
{
    ck_assert_int_eq(n, c->want);
    if (n < 0) {
        ck_assert_str_eq(err, c->err);
        return;
    }
    ck_assert_int_eq(argc, c->argc);
    for (int i = 0; i < c->argc && i < 4; i++) {
        char v[64];
        size_t vl = resp_arg_unescape(&argv[i], v);

        ck_assert_uint_eq(vl, strlen(c->args[i]));
        ck_assert(memcmp(v, c->args[i], vl) == 0);
    }
}

/* Parse with the bytes arriving in two pieces at split; returns the result
 * of the final call. */
static ssize_t parse_split(const req_case_t *c, size_t split, resp_arg_t *argv, size_t cap,
                           size_t *argc, const char **err)
{
    size_t len = c->len ? c->len : strlen(c->in);
    resp_limits_t l = lim_for(c);
    resp_req_t r;
    ssize_t n;

    resp_req_reset(&r);
    if (split < len) {
        n = resp_req_parse(&r, &l, c->in, split, argv, cap, argc, err);
        if (n == -EPROTO)
            return n; /* an error may show before the end */
        if (n != -EAGAIN && c->want > 0)
            ck_assert_int_le(n, (ssize_t)split); /* a complete earlier request */
        if (n > 0)
            return n;
    }
    return resp_req_parse(&r, &l, c->in, len, argv, cap, argc, err);
}

START_TEST(test_req_table)
{
    const req_case_t *c = &req_cases[_i];
    size_t len = c->len ? c->len : strlen(c->in);
    resp_arg_t argv[16];
    size_t argc = 0;
    const char *err = NULL;
    ssize_t n;

    /* whole */
    n = parse_split(c, len, argv, 16, &argc, &err);
    check_result(c, n, argv, argc, err);
    /* split at every boundary */
    for (size_t s = 0; s < len; s++) {
        err = NULL;
        n = parse_split(c, s, argv, 16, &argc, &err);
        if (n == -EPROTO && c->want == -EPROTO) {
            ck_assert_str_eq(err, c->err);
            continue;
        }
        check_result(c, n, argv, argc, err);
    }
    /* byte by byte with the state kept */
    {
        resp_limits_t l = lim_for(c);
        resp_req_t r;

        resp_req_reset(&r);
        n = -EAGAIN;
        for (size_t k = 1; k <= len && n == -EAGAIN; k++)
            n = resp_req_parse(&r, &l, c->in, k, argv, 16, &argc, &err);
        check_result(c, n, argv, argc, err);
    }
}
END_TEST

START_TEST(test_req_enospc)
{
    const char *in = "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n";
    resp_limits_t l = {MB, 1 << 20, RESP_INLINE_MAX, 0};
    resp_arg_t small[2], big[3];
    resp_req_t r;
    size_t argc;
    const char *err;

    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, in, strlen(in), small, 2, &argc, &err), -ENOSPC);
    ck_assert_int_eq(r.nargs, 3);
    ck_assert_int_eq(resp_req_parse(&r, &l, in, strlen(in), big, 3, &argc, &err), (ssize_t)strlen(in));
    ck_assert_int_eq(argc, 3);
    ck_assert(memcmp(big[2].p, "c", 1) == 0);
    /* inline */
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, "a b c\r\n", 7, small, 2, &argc, &err), -ENOSPC);
    ck_assert_int_eq(r.nargs, 3);
    ck_assert_int_eq(resp_req_parse(&r, &l, "a b c\r\n", 7, big, 3, &argc, &err), 7);
}
END_TEST

START_TEST(test_req_limits)
{
    resp_limits_t l = {10, 3, 16, 0};
    resp_arg_t argv[8];
    resp_req_t r;
    size_t argc;
    const char *err = NULL;
    char big[64];

    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, "*4\r\n", 4, argv, 8, &argc, &err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error: invalid multibulk length");
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, "*1\r\n$11\r\n", 9, argv, 8, &argc, &err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error: invalid bulk length");
    memset(big, 'a', sizeof(big));
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, big, 17, argv, 8, &argc, &err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error: too big inline request");
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, big, 16, argv, 8, &argc, &err), -EAGAIN);
    big[0] = '*';
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, big, 17, argv, 8, &argc, &err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error: too big mbulk count string");
    memcpy(big, "*1\r\n", 4);
    big[4] = '$';
    resp_req_reset(&r);
    ck_assert_int_eq(resp_req_parse(&r, &l, big, 30, argv, 8, &argc, &err), -EPROTO);
    ck_assert_str_eq(err, "Protocol error: too big bulk count string");
}
END_TEST

START_TEST(test_str2ll)
{
    long long v;

    ck_assert_int_eq(resp_str2ll("0", 1, &v), 0);
    ck_assert_int_eq(v, 0);
    ck_assert_int_eq(resp_str2ll("-9223372036854775808", 20, &v), 0);
    ck_assert(v == -9223372036854775807LL - 1);
    ck_assert_int_eq(resp_str2ll("9223372036854775807", 19, &v), 0);
    ck_assert_int_eq(resp_str2ll("9223372036854775808", 19, &v), -1);
    ck_assert_int_eq(resp_str2ll("-0", 2, &v), -1);
    ck_assert_int_eq(resp_str2ll("01", 2, &v), -1);
    ck_assert_int_eq(resp_str2ll("+1", 2, &v), -1);
    ck_assert_int_eq(resp_str2ll(" 1", 2, &v), -1);
    ck_assert_int_eq(resp_str2ll("", 0, &v), -1);
}
END_TEST

typedef struct val_case {
    const char *in;
    ssize_t want;
    char type;
} val_case_t;

static const val_case_t val_cases[] = {
    {"+OK\r\n", 5, '+'},
    {"-ERR x\r\n", 8, '-'},
    {":-12\r\n", 6, ':'},
    {"$3\r\nabc\r\n", 9, '$'},
    {"$-1\r\n", 5, '$'},
    {"*-1\r\n", 5, '*'},
    {"*2\r\n:1\r\n$1\r\na\r\n", 15, '*'},
    {"_\r\n", 3, '_'},
    {"#t\r\n", 4, '#'},
    {",3.14\r\n", 7, ','},
    {",-inf\r\n", 7, ','},
    {"(3492890328409238509324850943850943825024385\r\n", 46, '('},
    {"!5\r\nERR x\r\n", 11, '!'},
    {"=8\r\ntxt:abcd\r\n", 14, '='},
    {"%1\r\n+a\r\n:1\r\n", 12, '%'},
    {"~2\r\n+a\r\n+b\r\n", 12, '~'},
    {">2\r\n+message\r\n+x\r\n", 18, '>'},
    {"|1\r\n+ttl\r\n:3\r\n+v\r\n", 18, '|'},
    {"*1\r\n*1\r\n*1\r\n:1\r\n", 16, '*'},
    {"*1\r\n*1\r\n*1\r\n*1\r\n:1\r\n", -EPROTO, 0}, /* deeper than 3 */
    {"?x\r\n", -EPROTO, 0},
    {":1x\r\n", -EPROTO, 0},
    {"#x\r\n", -EPROTO, 0},
    {",1.2.3\r\n", -EPROTO, 0},
    {"_x\r\n", -EPROTO, 0},
    {"$3\r\nabcd\r\n", -EPROTO, 0},
    {"=3\r\ntxt\r\n", -EPROTO, 0},
    {"+a\rb\r\n", -EPROTO, 0},
};

START_TEST(test_value_table)
{
    const val_case_t *c = &val_cases[_i];
    resp_limits_t l = {MB, 1 << 20, RESP_INLINE_MAX, 0};
    size_t len = strlen(c->in);
    resp_type_t t = 0;
    ssize_t n = resp_value_scan(&l, c->in, len, 3, &t);

    ck_assert_int_eq(n, c->want);
    if (n > 0)
        ck_assert_int_eq(t, c->type);
    for (size_t k = 0; k < len; k++) {
        n = resp_value_scan(&l, c->in, k, 3, &t);
        if (c->want > 0)
            ck_assert_int_eq(n, -EAGAIN);
        else
            ck_assert(n == -EAGAIN || n == -EPROTO);
    }
}
END_TEST

START_TEST(test_encode)
{
    char buf[128], *e;
    const char *argv[] = {"SET", "k", "value"};
    size_t lens[] = {3, 1, 5};

    e = resp_encode_hdr(buf, ':', -42);
    ck_assert(e - buf == 6 && memcmp(buf, ":-42\r\n", 6) == 0);
    e = resp_encode_bulk(buf, "abc", 3);
    ck_assert(e - buf == 9 && memcmp(buf, "$3\r\nabc\r\n", 9) == 0);
    e = resp_encode_line(buf, '-', "ERR a\r\nb", 8);
    ck_assert(e - buf == 11 && memcmp(buf, "-ERR a  b\r\n", 11) == 0);
    e = resp_encode_null(buf, 0);
    ck_assert(e - buf == 5 && memcmp(buf, "$-1\r\n", 5) == 0);
    e = resp_encode_null(buf, 1);
    ck_assert(e - buf == 3 && memcmp(buf, "_\r\n", 3) == 0);
    ck_assert_uint_ge(resp_encode_cmd_len(3, argv, lens), 31);
    e = resp_encode_cmd(buf, 3, argv, lens);
    ck_assert(e - buf == 31 && memcmp(buf, "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n", 31) == 0);
    {
        /* what the encoder writes, the parser reads back */
        resp_limits_t l = {MB, 16, RESP_INLINE_MAX, 0};
        resp_req_t r;
        resp_arg_t av[4];
        size_t argc;
        const char *err;

        resp_req_reset(&r);
        ck_assert_int_eq(resp_req_parse(&r, &l, buf, 31, av, 4, &argc, &err), 31);
        ck_assert_int_eq(argc, 3);
        ck_assert(av[2].len == 5 && memcmp(av[2].p, "value", 5) == 0);
    }
}
END_TEST

static Suite *resp_suite(void)
{
    Suite *s = suite_create("resp");
    TCase *tc = tcase_create("request");

    tcase_add_loop_test(tc, test_req_table, 0, sizeof(req_cases) / sizeof(req_cases[0]));
    tcase_add_test(tc, test_req_enospc);
    tcase_add_test(tc, test_req_limits);
    tcase_add_test(tc, test_str2ll);
    suite_add_tcase(s, tc);
    tc = tcase_create("value");
    tcase_add_loop_test(tc, test_value_table, 0, sizeof(val_cases) / sizeof(val_cases[0]));
    suite_add_tcase(s, tc);
    tc = tcase_create("encode");
    tcase_add_test(tc, test_encode);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(resp_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
