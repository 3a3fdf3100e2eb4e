/* Unit tests for core/arena: tagged allocation, accounting, scopes, fault
 * injection. */
#include "core/arena.h"

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static int called;
static void bump(void *arg)
{
    called += *(int *)arg;
}

START_TEST(tagged_accounting)
{
    int64_t before = core_mem_tag_live(CORE_TAG_TEST);
    char *p = core_malloc(CORE_TAG_TEST, 100);
    char *q;

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq((uintptr_t)p % 16, 0);
    ck_assert_int_ge(core_alloc_size(p), 100);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(p));
    memset(p, 'x', 100);
    q = core_realloc(CORE_TAG_MISC, p, 5000);
    ck_assert_ptr_nonnull(q);
    ck_assert_int_eq(q[99], 'x');
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST) - before, (int64_t)core_alloc_size(q));
    core_free(q);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), before);
    core_free(NULL);
}
END_TEST

START_TEST(calloc_overflow)
{
    ck_assert_ptr_null(core_calloc(CORE_TAG_TEST, SIZE_MAX / 2, 4));
    char *z = core_calloc(CORE_TAG_TEST, 10, 10);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(z[i], 0);
    core_free(z);
}
END_TEST

START_TEST(dup)
{
    char *s = core_strdup(CORE_TAG_TEST, "hello");
    char *m = core_memdup(CORE_TAG_TEST, "ab\0cd", 5);

    ck_assert_str_eq(s, "hello");
    ck_assert_int_eq(memcmp(m, "ab\0cd", 6), 0);
    core_free(s);
    core_free(m);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}
END_TEST

START_TEST(stats_sum)
{
    core_mem_stats_t st;
    void *p = core_malloc(CORE_TAG_HLS, 1000);

    core_mem_stats(&st, 1);
    ck_assert_int_ge(st.tags[CORE_TAG_HLS].live_bytes, 1000);
    ck_assert_int_ge(st.tags[CORE_TAG_HLS].live_objects, 1);
    ck_assert_int_ge(st.live_bytes, st.tags[CORE_TAG_HLS].live_bytes);
    ck_assert_int_gt(st.rss_private, 0);
    ck_assert_str_eq(core_tag_name(CORE_TAG_HUB_PACKETS), "hub.packets");
    ck_assert_str_eq(core_tag_name(CORE_TAG_CACHE_KEYS), "cache.keys");
    core_free(p);
}
END_TEST

START_TEST(scope_basic)
{
    core_scope_t *s = core_scope_new(CORE_TAG_TEST, 1024);
    int one = 1, ten = 10;

    ck_assert_ptr_nonnull(s);
    for (int i = 0; i < 1000; i++) {
        char *p = core_scope_alloc(s, 100);

        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 16, 0);
        memset(p, i, 100);
    }
    ck_assert_int_eq(core_scope_used(s), 100000);
    ck_assert_ptr_nonnull(core_scope_alloc(s, 100000)); /* larger than a chunk */
    ck_assert_int_eq(core_scope_cleanup_add(s, bump, &one), 0);
    ck_assert_int_eq(core_scope_cleanup_add(s, bump, &ten), 0);
    called = 0;
    core_scope_reset(s);
    ck_assert_int_eq(called, 11);
    ck_assert_int_eq(core_scope_used(s), 0);
    /* a reset scope keeps at most one chunk */
    ck_assert_int_le(core_mem_tag_live(CORE_TAG_TEST), 2048 + 256);
    ck_assert_str_eq(core_scope_strndup(s, "abcdef", 3), "abc");
    core_scope_cleanup_add(s, bump, &one);
    called = 0;
    core_scope_free(&s);
    ck_assert_ptr_null(s);
    ck_assert_int_eq(called, 1);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_TEST), 0);
}
END_TEST

START_TEST(scope_loop_does_not_grow)
{
    core_scope_t *s = core_scope_new(CORE_TAG_TEST, 0);
    int64_t high = 0;

    /* the habit that prevents the incident: a loop resets its scratch */
    for (int it = 0; it < 10000; it++) {
        for (int k = 0; k < 20; k++)
            ck_assert_ptr_nonnull(core_scope_alloc(s, 64 + (size_t)k * 8));
        if (core_mem_tag_live(CORE_TAG_TEST) > high)
            high = core_mem_tag_live(CORE_TAG_TEST);
        core_scope_reset(s);
    }
    ck_assert_int_le(high, 64 * 1024);
    core_scope_free(&s);
}
END_TEST

START_TEST(fault_injection)
{
    void *a, *b;

    core_mem_fail_after(2);
    a = core_malloc(CORE_TAG_TEST, 10);
    b = core_malloc(CORE_TAG_TEST, 10);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_null(b);
    ck_assert_ptr_null(core_malloc(CORE_TAG_TEST, 10));
    core_mem_fail_reset();
    b = core_malloc(CORE_TAG_TEST, 10);
    ck_assert_ptr_nonnull(b);
    core_free(a);
    core_free(b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/arena");
    TCase *t1 = tcase_create("tagged");
    TCase *t2 = tcase_create("scope");
    SRunner *sr;
    int failed;

    tcase_add_test(t1, tagged_accounting);
    tcase_add_test(t1, calloc_overflow);
    tcase_add_test(t1, dup);
    tcase_add_test(t1, stats_sum);
    tcase_add_test(t1, fault_injection);
    tcase_add_test(t2, scope_basic);
    tcase_add_test(t2, scope_loop_does_not_grow);
    suite_add_tcase(s, t1);
    suite_add_tcase(s, t2);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
