/* cache/log_local: the single-node log. A batch is proposed at the end of
 * a loop iteration; it is applied right away, in the same iteration, and
 * reported done. Nothing is persisted: without Raft the cache is a plain
 * in-memory cache, as Redis without persistence. */
#include "cache/cache_int.h"

static int local_propose(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg)
{
    cache_server_t *s = impl;

    cache_apply_batch(s, buf, len, cache_server_last_index(s) + 1);
    done(arg, 0);
    return 0;
}

static int local_is_leader(void *impl)
{
    return 1;
}

static const char *local_leader(void *impl)
{
    return NULL;
}

const cache_log_ops_t cache_log_local_ops = {local_propose, local_is_leader, local_leader, NULL};
