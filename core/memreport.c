/* core/memreport: rendering of core_mem_stats(). */
#include "core/memreport.h"

#include "core/arena.h"

#include <event2/buffer.h>

void core_memreport_json(struct evbuffer *out)
{
    core_mem_stats_t st;

    core_mem_stats(&st, 1);
    evbuffer_add_printf(out,
                        "{\"allocator\":\"%s\",\"rss_private\":%lld,\"rss_lazyfree\":%lld,"
                        "\"live_bytes\":%lld,\"heap_mapped\":%lld,\"heap_free_retained\":%lld,"
                        "\"heap_purged_total\":%lld,\"tags\":{",
                        st.allocator, (long long)st.rss_private, (long long)st.rss_lazyfree,
                        (long long)st.live_bytes, (long long)st.heap_mapped,
                        (long long)st.heap_free_retained, (long long)st.heap_purged_total);
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "%s\"%s\":{\"bytes\":%lld,\"objects\":%lld}", i ? "," : "",
                            core_tag_name(i), (long long)st.tags[i].live_bytes,
                            (long long)st.tags[i].live_objects);
    evbuffer_add_printf(out, "}}\n");
}

void core_memreport_prometheus(struct evbuffer *out, void *arg)
{
    core_mem_stats_t st;

    (void)arg;
    core_mem_stats(&st, 1);
    evbuffer_add_printf(out,
                        "# HELP oboro_memory_live_bytes Live bytes allocated, per tag.\n"
                        "# TYPE oboro_memory_live_bytes gauge\n");
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "oboro_memory_live_bytes{tag=\"%s\"} %lld\n", core_tag_name(i),
                            (long long)st.tags[i].live_bytes);
    evbuffer_add_printf(out,
                        "# HELP oboro_memory_live_objects Live allocations, per tag.\n"
                        "# TYPE oboro_memory_live_objects gauge\n");
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "oboro_memory_live_objects{tag=\"%s\"} %lld\n",
                            core_tag_name(i), (long long)st.tags[i].live_objects);
    evbuffer_add_printf(out,
                        "# HELP oboro_memory_rss_private_bytes Private_Clean + Private_Dirty from smaps_rollup.\n"
                        "# TYPE oboro_memory_rss_private_bytes gauge\n"
                        "oboro_memory_rss_private_bytes %lld\n"
                        "# HELP oboro_memory_lazyfree_bytes LazyFree from smaps_rollup (MADV_FREE pages).\n"
                        "# TYPE oboro_memory_lazyfree_bytes gauge\n"
                        "oboro_memory_lazyfree_bytes %lld\n"
                        "# HELP oboro_memory_heap_mapped_bytes Bytes the page heap holds from the kernel.\n"
                        "# TYPE oboro_memory_heap_mapped_bytes gauge\n"
                        "oboro_memory_heap_mapped_bytes %lld\n"
                        "# HELP oboro_memory_heap_free_retained_bytes Free heap bytes not yet returned.\n"
                        "# TYPE oboro_memory_heap_free_retained_bytes gauge\n"
                        "oboro_memory_heap_free_retained_bytes %lld\n"
                        "# HELP oboro_memory_heap_purged_bytes_total Bytes returned with MADV_DONTNEED.\n"
                        "# TYPE oboro_memory_heap_purged_bytes_total counter\n"
                        "oboro_memory_heap_purged_bytes_total %lld\n",
                        (long long)st.rss_private, (long long)st.rss_lazyfree,
                        (long long)st.heap_mapped, (long long)st.heap_free_retained,
                        (long long)st.heap_purged_total);
}

void core_memreport_info(struct evbuffer *out)
{
    core_mem_stats_t st;

    core_mem_stats(&st, 1);
    evbuffer_add_printf(out,
                        "used_memory:%lld\r\nused_memory_rss:%lld\r\nused_memory_lazyfree:%lld\r\n"
                        "mem_allocator:oboro-%s\r\nheap_mapped:%lld\r\nheap_free_retained:%lld\r\n"
                        "heap_purged_total:%lld\r\n",
                        (long long)st.live_bytes, (long long)st.rss_private,
                        (long long)st.rss_lazyfree, st.allocator, (long long)st.heap_mapped,
                        (long long)st.heap_free_retained, (long long)st.heap_purged_total);
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "mem_tag_%s:bytes=%lld,objects=%lld\r\n", core_tag_name(i),
                            (long long)st.tags[i].live_bytes, (long long)st.tags[i].live_objects);
}
