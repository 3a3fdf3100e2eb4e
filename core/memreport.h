/* core/memreport: memory figures rendered for people and machines, from
 * core_mem_stats(): JSON for /debug/memory, Prometheus lines for /metrics,
 * and "key:value" lines for INFO memory. */
#ifndef CORE_MEMREPORT_H
#define CORE_MEMREPORT_H

struct evbuffer;

/* Append a JSON object: allocator, rss_private, rss_lazyfree, live_bytes,
 * heap figures and {"tags": {"name": {"bytes": n, "objects": n}, ...}}. */
void core_memreport_json(struct evbuffer *out);

/* Append oboro_memory_* gauges (per tag bytes/objects, RSS, heap). Has the
 * signature of a core_metrics_collect_cb. */
void core_memreport_prometheus(struct evbuffer *out, void *arg);

/* Append INFO-style "name:value\r\n" lines (used_memory, used_memory_rss,
 * mem_tag_<name>:bytes,objects, ...). */
void core_memreport_info(struct evbuffer *out);

#endif
