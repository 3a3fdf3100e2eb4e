/* core/memreport: rendering of core_mem_stats(). */
#include "core/memreport.h"

#include "core/arena.h"

#include <event2/buffer.h>
#include <stdio.h>

/* private RSS per live byte: 1.0 would mean no overhead at all */
static double rss_ratio(const core_mem_stats_t *st)
{
    return st->live_bytes > 0 ? (double)st->rss_private / (double)st->live_bytes : 0.0;
}

void core_memreport_json(struct evbuffer *out)
{
    core_mem_stats_t st;

    core_mem_stats(&st, 1);
    evbuffer_add_printf(out,
                        "{\"allocator\":\"%s\",\"rss_private\":%lld,\"rss_lazyfree\":%lld,"
                        "\"live_bytes\":%lld,\"heap_mapped\":%lld,\"heap_free_retained\":%lld,"
                        "\"heap_purged_total\":%lld,",
                        st.allocator, (long long)st.rss_private, (long long)st.rss_lazyfree,
                        (long long)st.live_bytes, (long long)st.heap_mapped,
                        (long long)st.heap_free_retained, (long long)st.heap_purged_total);
    evbuffer_add_printf(out,
                        "\"rss\":%lld,\"rss_anon_huge\":%lld,\"rss_private_per_live\":%.3f,"
                        "\"heap_active\":%lld,\"heap_slab_bytes\":%lld,\"heap_slab_used\":%lld,"
                        "\"spans\":{\"active\":%lld,\"retained\":%lld,\"purged\":%lld},"
                        "\"compact_moved_total\":%lld,\"compact_walkers\":%lld,\"purge_delay_ms\":%lld,"
                        "\"tags\":{",
                        (long long)st.rss, (long long)st.rss_anon_huge, rss_ratio(&st),
                        (long long)st.heap_active, (long long)st.heap_slab_bytes,
                        (long long)st.heap_slab_used, (long long)st.spans_active,
                        (long long)st.spans_retained, (long long)st.spans_purged,
                        (long long)st.compact_moved, (long long)st.compact_walkers,
                        (long long)st.purge_delay_ms);
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "%s\"%s\":{\"bytes\":%lld,\"objects\":%lld}", i ? "," : "",
                            core_tag_name(i), (long long)st.tags[i].live_bytes,
                            (long long)st.tags[i].live_objects);
    evbuffer_add_printf(out, "}}\n");
}

static void gauge(struct evbuffer *out, const char *name, const char *type, const char *help,
                  long long v)
{
    evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s %s\n%s %lld\n", name, help, name, type,
                        name, v);
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
    gauge(out, "oboro_memory_rss_private_bytes", "gauge",
          "Private_Clean + Private_Dirty from smaps_rollup.", (long long)st.rss_private);
    gauge(out, "oboro_memory_lazyfree_bytes", "gauge",
          "LazyFree from smaps_rollup (MADV_FREE pages).", (long long)st.rss_lazyfree);
    gauge(out, "oboro_memory_rss_bytes", "gauge", "Rss from smaps_rollup.", (long long)st.rss);
    gauge(out, "oboro_memory_anon_huge_bytes", "gauge", "AnonHugePages from smaps_rollup.",
          (long long)st.rss_anon_huge);
    gauge(out, "oboro_memory_heap_mapped_bytes", "gauge",
          "Bytes the page heap holds from the kernel (reserved).", (long long)st.heap_mapped);
    gauge(out, "oboro_memory_heap_active_bytes", "gauge",
          "Bytes of spans in use (slabs, large and huge blocks).", (long long)st.heap_active);
    gauge(out, "oboro_memory_heap_free_retained_bytes", "gauge",
          "Free heap bytes not yet returned.", (long long)st.heap_free_retained);
    gauge(out, "oboro_memory_heap_purged_bytes_total", "counter",
          "Bytes returned with MADV_DONTNEED.", (long long)st.heap_purged_total);
    gauge(out, "oboro_memory_slab_bytes", "gauge", "Bytes of slabs holding small objects.",
          (long long)st.heap_slab_bytes);
    gauge(out, "oboro_memory_slab_used_bytes", "gauge",
          "Bytes of slab objects in use (with callers or thread caches).",
          (long long)st.heap_slab_used);
    evbuffer_add_printf(out,
                        "# HELP oboro_memory_spans Spans of the page heap by state.\n"
                        "# TYPE oboro_memory_spans gauge\n"
                        "oboro_memory_spans{state=\"active\"} %lld\n"
                        "oboro_memory_spans{state=\"retained\"} %lld\n"
                        "oboro_memory_spans{state=\"purged\"} %lld\n",
                        (long long)st.spans_active, (long long)st.spans_retained,
                        (long long)st.spans_purged);
    gauge(out, "oboro_memory_compact_moved_total", "counter", "Objects moved by compaction.",
          (long long)st.compact_moved);
    evbuffer_add_printf(out,
                        "# HELP oboro_memory_rss_private_per_live Private RSS divided by live bytes.\n"
                        "# TYPE oboro_memory_rss_private_per_live gauge\n"
                        "oboro_memory_rss_private_per_live %.3f\n",
                        rss_ratio(&st));
}

/* Redis's *_human format: B, K, M, G with two decimals */
static void human(char *buf, size_t len, long long v)
{
    static const char units[] = "BKMGT";
    double d = (double)v;
    int u = 0;

    while (d >= 1024 && u < 4) {
        d /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%lldB", v);
    else
        snprintf(buf, len, "%.2f%c", d, units[u]);
}

void core_memreport_info(struct evbuffer *out)
{
    core_mem_stats_t st;
    char h1[32], h2[32];

    core_mem_stats(&st, 1);
    human(h1, sizeof(h1), (long long)st.live_bytes);
    human(h2, sizeof(h2), (long long)st.rss_private);
    evbuffer_add_printf(out,
                        "used_memory:%lld\r\nused_memory_human:%s\r\n"
                        "used_memory_rss:%lld\r\nused_memory_rss_human:%s\r\n"
                        "used_memory_lazyfree:%lld\r\n"
                        "allocator_allocated:%lld\r\nallocator_active:%lld\r\n"
                        "allocator_resident:%lld\r\n"
                        "mem_fragmentation_ratio:%.2f\r\nmem_fragmentation_bytes:%lld\r\n"
                        "mem_allocator:oboro-%s\r\nheap_mapped:%lld\r\nheap_free_retained:%lld\r\n"
                        "heap_purged_total:%lld\r\nheap_spans_active:%lld\r\n"
                        "heap_spans_retained:%lld\r\nheap_spans_purged:%lld\r\n"
                        "rss_total:%lld\r\nrss_anon_huge:%lld\r\ncompact_moved_total:%lld\r\n",
                        (long long)st.live_bytes, h1, (long long)st.rss_private, h2,
                        (long long)st.rss_lazyfree, (long long)st.live_bytes,
                        (long long)st.heap_active,
                        (long long)(st.heap_active + st.heap_free_retained), rss_ratio(&st),
                        (long long)(st.rss_private - st.live_bytes), st.allocator,
                        (long long)st.heap_mapped, (long long)st.heap_free_retained,
                        (long long)st.heap_purged_total, (long long)st.spans_active,
                        (long long)st.spans_retained, (long long)st.spans_purged,
                        (long long)st.rss, (long long)st.rss_anon_huge,
                        (long long)st.compact_moved);
    for (int i = 0; i < CORE_TAG__COUNT; i++)
        evbuffer_add_printf(out, "mem_tag_%s:bytes=%lld,objects=%lld\r\n", core_tag_name(i),
                            (long long)st.tags[i].live_bytes, (long long)st.tags[i].live_objects);
}
