/* cache/: the embedded, Redis-protocol cache.
 *
 * This is the only header other folders include. The cache owns its
 * listening socket, clients and keyspace; everything runs on the loop
 * thread. */
#ifndef CACHE_CACHE_H
#define CACHE_CACHE_H

#include "core/conf.h"
#include "core/loop.h"

typedef struct cache_conf {
    long long maxclients;
    long long timeout;          /* idle seconds, 0 = never */
    char *requirepass;
    long long proto_max_bulk_len;
    long long client_output_limit;
} cache_conf_t;

/* Register the cache's directives (storage in *cc) with c. Returns 0 or a
 * negative errno from core_conf_add. */
int cache_conf_register(core_conf_t *c, cache_conf_t *cc);

typedef struct cache_server cache_server_t;

/* Serve RESP on the listening socket fd (ownership passes). conf and all
 * are borrowed and must outlive the server (all: for CONFIG GET/SET; may be
 * NULL, then CONFIG answers an error). Writes go to the local log until
 * cache_server_set_log() (cache/log.h) installs another.
 * Returns 0 and *out, or a negative errno (fd closed then). */
int cache_server_new(cache_server_t **out, core_loop_t *loop, int fd,
                     const cache_conf_t *conf, core_conf_t *all);

/* Stop accepting, close every client, free the keyspace; *sp = NULL. */
void cache_server_free(cache_server_t **sp);

#endif
