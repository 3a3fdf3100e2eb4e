/* Unit tests for proto/amf0: decode tables fed whole and split at every
 * byte boundary, round trips, limits. */
#include "proto/amf0.h"

#include <check.h>
#include <errno.h>
#include <string.h>

static core_scope_t *scope;

static void setup(void)
{
    scope = core_scope_new(CORE_TAG_TEST, 0);
}

static void teardown(void)
{
    core_scope_free(&scope);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}

typedef struct tcase_bytes {
    const char *name;
    const uint8_t *in;
    size_t len;
    ssize_t result;            /* bytes consumed or -errno for the whole input */
    amf0_type_t type;
} case_t;

#define B(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})

static const case_t cases[] = {
    {"number 1.5", B(0x00, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0), 9, AMF0_NUMBER},
    {"true", B(0x01, 0x01), 2, AMF0_BOOLEAN},
    {"string", B(0x02, 0x00, 0x03, 'a', 'b', 'c'), 6, AMF0_STRING},
    {"empty string", B(0x02, 0x00, 0x00), 3, AMF0_STRING},
    {"null", B(0x05), 1, AMF0_NULL},
    {"undefined", B(0x06), 1, AMF0_UNDEFINED},
    {"object", B(0x03, 0x00, 0x01, 'k', 0x05, 0x00, 0x00, 0x09), 8, AMF0_OBJECT},
    {"empty object", B(0x03, 0x00, 0x00, 0x09), 4, AMF0_OBJECT},
    {"ecma array", B(0x08, 0, 0, 0, 1, 0x00, 0x01, 'x', 0x01, 0x00, 0x00, 0x00, 0x09), 13,
     AMF0_ECMA_ARRAY},
    {"strict array", B(0x0a, 0, 0, 0, 2, 0x05, 0x01, 0x00), 8, AMF0_STRICT_ARRAY},
    {"date", B(0x0b, 0x42, 0x77, 0, 0, 0, 0, 0, 0, 0x00, 0x00), 11, AMF0_DATE},
    {"long string", B(0x0c, 0, 0, 0, 2, 'h', 'i'), 7, AMF0_LONG_STRING},
    {"trailing bytes not consumed", B(0x05, 0x05), 1, AMF0_NULL},
    {"unknown marker", B(0x11), -EPROTO, 0},
    {"reference marker refused", B(0x07, 0x00, 0x01), -EPROTO, 0},
    {"bad object end", B(0x03, 0x00, 0x00, 0x08), -EPROTO, 0},
    {"truncated number", B(0x00, 0x3f), -EAGAIN, 0},
    {"truncated string", B(0x02, 0x00, 0x05, 'a'), -EAGAIN, 0},
    {"strict array too long", B(0x0a, 0x00, 0x01, 0x00, 0x01), -EPROTO, 0},
    {"strict array count lies", B(0x0a, 0x00, 0x00, 0x00, 0x05, 0x05), -EAGAIN, 0},
};

START_TEST(decode_table)
{
    const case_t *c = &cases[_i];
    amf0_value_t *v = NULL;
    ssize_t rv = amf0_parse(scope, c->in, c->len, &v);

    ck_assert_msg(rv == c->result, "%s: got %zd want %zd", c->name, rv, c->result);
    if (rv > 0)
        ck_assert_int_eq(v->type, c->type);
    /* every strict prefix of a well-formed value needs more bytes; a
     * malformed value is malformed or incomplete in every prefix */
    for (size_t cut = 0; cut < c->len && cut < (size_t)(rv > 0 ? rv : 0); cut++) {
        core_scope_reset(scope);
        ck_assert_msg(amf0_parse(scope, c->in, cut, &v) == -EAGAIN, "%s cut %zu", c->name, cut);
    }
    core_scope_reset(scope);
}
END_TEST

START_TEST(decode_values)
{
    static const uint8_t obj[] = {0x03, 0x00, 0x03, 'a', 'p', 'p', 0x02, 0x00, 0x04, 'l', 'i', 'v', 'e',
                                  0x00, 0x02, 'v', 'n', 0x00, 0x40, 0x08, 0, 0, 0, 0, 0, 0,
                                  0x00, 0x00, 0x09};
    amf0_value_t *v;

    ck_assert_int_eq(amf0_parse(scope, obj, sizeof(obj), &v), (ssize_t)sizeof(obj));
    ck_assert_str_eq(amf0_get_str(v, "app"), "live");
    ck_assert(amf0_get_num(v, "vn", 0) == 3.0);
    ck_assert(amf0_get_num(v, "missing", -1) == -1.0);
    ck_assert_ptr_null(amf0_get_str(v, "vn"));
}
END_TEST

START_TEST(roundtrip)
{
    uint8_t buf[512], buf2[512];
    amf0_buf_t b, b2;
    amf0_value_t *v;
    ssize_t n;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_object_begin(&b);
    amf0_put_key(&b, "n");
    amf0_put_number(&b, -2.25);
    amf0_put_key(&b, "b");
    amf0_put_bool(&b, 1);
    amf0_put_key(&b, "s");
    amf0_put_string(&b, "hello");
    amf0_put_key(&b, "u");
    amf0_put_undefined(&b);
    amf0_put_key(&b, "z");
    amf0_put_null(&b);
    amf0_put_key(&b, "d");
    amf0_put_date(&b, 1.7e12, 60);
    amf0_put_key(&b, "e");
    amf0_put_ecma_begin(&b, 1);
    amf0_put_key(&b, "w");
    amf0_put_number(&b, 1280);
    amf0_put_object_end(&b);
    amf0_put_key(&b, "a");
    amf0_put_strict_array_begin(&b, 2);
    amf0_put_number(&b, 1);
    amf0_put_string(&b, "x");
    amf0_put_object_end(&b);
    ck_assert_int_eq(b.err, 0);

    n = amf0_parse(scope, buf, b.len, &v);
    ck_assert_int_eq(n, (ssize_t)b.len);
    ck_assert(amf0_get_num(v, "n", 0) == -2.25);
    ck_assert_int_eq(amf0_get(v, "b")->boolean, 1);
    ck_assert_str_eq(amf0_get_str(v, "s"), "hello");
    ck_assert_int_eq(amf0_get(v, "u")->type, AMF0_UNDEFINED);
    ck_assert(amf0_get(v, "d")->num == 1.7e12);
    ck_assert_int_eq(amf0_get(v, "d")->tz, 60);
    ck_assert(amf0_get_num(amf0_get(v, "e"), "w", 0) == 1280);
    ck_assert_int_eq(amf0_get(v, "a")->n, 2);
    ck_assert_str_eq(amf0_get(v, "a")->items[1]->str, "x");

    amf0_buf_init(&b2, buf2, sizeof(buf2));
    amf0_put_value(&b2, v);
    ck_assert_int_eq(b2.err, 0);
    ck_assert_int_eq(b2.len, b.len);
    ck_assert_mem_eq(buf, buf2, b.len);
}
END_TEST

START_TEST(long_string_roundtrip)
{
    static uint8_t buf[70000 + 16];
    static char big[70000];
    amf0_buf_t b;
    amf0_value_t *v;

    memset(big, 'q', sizeof(big));
    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_stringn(&b, big, sizeof(big));
    ck_assert_int_eq(b.err, 0);
    ck_assert_int_eq(buf[0], AMF0_LONG_STRING);
    ck_assert_int_eq(amf0_parse(scope, buf, b.len, &v), (ssize_t)b.len);
    ck_assert_int_eq(v->len, sizeof(big));
    ck_assert_int_eq(v->str[69999], 'q');
}
END_TEST

START_TEST(encode_overflow_sticky)
{
    uint8_t buf[8];
    amf0_buf_t b;

    amf0_buf_init(&b, buf, sizeof(buf));
    amf0_put_string(&b, "too long for eight");
    amf0_put_null(&b);
    ck_assert_int_eq(b.err, -ENOSPC);
    ck_assert_int_eq(b.len, 0);
}
END_TEST

START_TEST(depth_limit)
{
    uint8_t buf[256];
    size_t n = 0;
    amf0_value_t *v;

    /* AMF0_MAX_DEPTH + 2 nested objects: {"k": {"k": ...}} */
    for (int i = 0; i < AMF0_MAX_DEPTH + 2; i++) {
        buf[n++] = 0x03;
        buf[n++] = 0;
        buf[n++] = 1;
        buf[n++] = 'k';
    }
    buf[n++] = 0x05;
    ck_assert_int_eq(amf0_parse(scope, buf, n, &v), -EPROTO);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("proto/amf0");
    TCase *tc = tcase_create("decode");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_loop_test(tc, decode_table, 0, sizeof(cases) / sizeof(cases[0]));
    tcase_add_test(tc, decode_values);
    tcase_add_test(tc, depth_limit);
    suite_add_tcase(s, tc);
    tc = tcase_create("encode");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, roundtrip);
    tcase_add_test(tc, long_string_roundtrip);
    tcase_add_test(tc, encode_overflow_sticky);
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
