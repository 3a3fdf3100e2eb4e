/* Unit tests for core/memreport: the JSON, Prometheus and INFO renderings
 * carry the allocator's figures, per tag. */
#include "core/arena.h"
#include "core/memreport.h"

#include <check.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *render(void (*fn)(struct evbuffer *))
{
    static char buf[65536];
    struct evbuffer *b = evbuffer_new();
    size_t n;

    fn(b);
    n = evbuffer_remove(b, buf, sizeof(buf) - 1);
    buf[n] = '\0';
    evbuffer_free(b);
    return buf;
}

static void prom(struct evbuffer *b)
{
    core_memreport_prometheus(b, NULL);
}

START_TEST(json_has_tags_and_figures)
{
    void *p = core_malloc(CORE_TAG_HUB_PACKETS, 5000);
    char want[128];
    char *j = render(core_memreport_json);

    snprintf(want, sizeof(want), "\"hub.packets\":{\"bytes\":%zu,\"objects\":1}", core_alloc_size(p));
    ck_assert_ptr_nonnull(strstr(j, want));
    ck_assert_int_eq(j[0], '{');
    ck_assert_ptr_nonnull(strstr(j, "}}\n"));
    ck_assert_ptr_nonnull(strstr(j, "\"purge_delay_ms\":"));
    for (const char *const *k = (const char *const[]){"\"allocator\":", "\"rss_private\":",
                                                        "\"rss_lazyfree\":0,", "\"rss\":",
                                                        "\"rss_anon_huge\":", "\"heap_mapped\":",
                                                        "\"spans\":{\"active\":", "\"tags\":{",
                                                        "\"rss_private_per_live\":", NULL};
         *k != NULL; k++)
        ck_assert_msg(strstr(j, *k) != NULL, "missing %s in %s", *k, j);
    core_free(p);
}
END_TEST

START_TEST(prometheus_lines)
{
    void *p = core_malloc(CORE_TAG_FLV, 100);
    char *t = render(prom);
    char want[128];

    snprintf(want, sizeof(want), "\noboro_memory_live_bytes{tag=\"flv.tags\"} %zu\n",
             core_alloc_size(p));
    ck_assert_ptr_nonnull(strstr(t, want));
    ck_assert_ptr_nonnull(strstr(t, "\noboro_memory_live_objects{tag=\"flv.tags\"} 1\n"));
    ck_assert_ptr_nonnull(strstr(t, "\noboro_memory_lazyfree_bytes 0\n"));
    ck_assert_ptr_nonnull(strstr(t, "# TYPE oboro_memory_heap_purged_bytes_total counter\n"));
    ck_assert_ptr_nonnull(strstr(t, "\noboro_memory_spans{state=\"retained\"} "));
    core_free(p);
}
END_TEST

START_TEST(info_uses_redis_names)
{
    void *p = core_malloc(CORE_TAG_CACHE_VALUES, 64);
    char *t = render(core_memreport_info);
    char want[128];

    for (const char *const *k = (const char *const[]){"used_memory:", "used_memory_human:",
                                                        "used_memory_rss:", "mem_fragmentation_ratio:",
                                                        "mem_allocator:oboro-", "allocator_allocated:",
                                                        NULL};
         *k != NULL; k++)
        ck_assert_msg(strncmp(t, *k, strlen(*k)) == 0 || strstr(t, *k) != NULL, "missing %s", *k);
    snprintf(want, sizeof(want), "mem_tag_cache.values:bytes=%zu,objects=1\r\n", core_alloc_size(p));
    ck_assert_ptr_nonnull(strstr(t, want));
    /* every line is name:value CRLF */
    for (char *line = t; *line != '\0';) {
        char *end = strstr(line, "\r\n");

        ck_assert_ptr_nonnull(end);
        ck_assert_ptr_nonnull(memchr(line, ':', (size_t)(end - line)));
        line = end + 2;
    }
    core_free(p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/memreport");
    TCase *t = tcase_create("render");
    SRunner *sr;
    int failed;

    tcase_add_test(t, json_has_tags_and_figures);
    tcase_add_test(t, prometheus_lines);
    tcase_add_test(t, info_uses_redis_names);
    suite_add_tcase(s, t);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
