/* cache/cmd: the one command table. Every command is flagged write,
 * read-only or admin here; the server routes every CMD_WRITE command
 * through the replicated write path (cache/log.h). */
#include "cache/cache_int.h"
#include "cache/t_live.h"

#include <ctype.h>
#include <string.h>

#define W (CMD_WRITE | CMD_KEYSPACE | CMD_DENYOOM)
#define WNOOM (CMD_WRITE | CMD_KEYSPACE)
#define R (CMD_READONLY | CMD_KEYSPACE)
#define F CMD_FAST

/* name, arity, flags, proc, prep, first, last, step, group, summary, since */
static const cache_cmd_t table[] = {
    /* connection and server */
    {"ping", -1, CMD_FAST, cmd_ping, NULL, 0, 0, 0, "connection", "Returns the server's liveliness response.", "1.0.0"},
    {"echo", 2, CMD_FAST, cmd_echo, NULL, 0, 0, 0, "connection", "Returns the given string.", "1.0.0"},
    {"quit", -1, CMD_NOAUTH | CMD_FAST | CMD_CONN, cmd_quit, NULL, 0, 0, 0, "connection", "Closes the connection.", "1.0.0"},
    {"hello", -1, CMD_NOAUTH | CMD_FAST | CMD_CONN, cmd_hello, NULL, 0, 0, 0, "connection", "Handshakes with the server.", "6.0.0"},
    {"auth", -2, CMD_NOAUTH | CMD_FAST | CMD_CONN, cmd_auth, NULL, 0, 0, 0, "connection", "Authenticates the connection.", "1.0.0"},
    {"select", 2, CMD_FAST | CMD_CONN, cmd_select, NULL, 0, 0, 0, "connection", "Changes the selected database.", "2.0.0"},
    {"client", -2, CMD_CONN, cmd_client, NULL, 0, 0, 0, "connection", "A container for client connection commands.", "2.4.0"},
    {"command", -1, 0, cmd_command, NULL, 0, 0, 0, "server", "Returns detailed information about all commands.", "2.8.13"},
    {"info", -1, 0, cmd_info, NULL, 0, 0, 0, "server", "Returns information and statistics about the server.", "1.0.0"},
    {"config", -2, CMD_ADMIN, cmd_config, NULL, 0, 0, 0, "server", "A container for server configuration commands.", "2.0.0"},
    {"dbsize", 1, R | F, cmd_dbsize, NULL, 0, 0, 0, "server", "Returns the number of keys in the database.", "1.0.0"},
    {"flushall", -1, WNOOM | CMD_ADMIN, cmd_flushall, NULL, 0, 0, 0, "server", "Removes all keys from all databases.", "1.0.0"},
    {"flushdb", -1, WNOOM | CMD_ADMIN, cmd_flushall, NULL, 0, 0, 0, "server", "Remove all keys from the current database.", "1.0.0"},
    {"time", 1, CMD_FAST, cmd_time, NULL, 0, 0, 0, "server", "Returns the server time.", "2.6.0"},
    {"memory", -2, R, cmd_memory, NULL, 2, 2, 1, "server", "A container for memory diagnostics commands.", "4.0.0"},
    /* strings */
    {"get", 2, R | F, cmd_get, NULL, 1, 1, 1, "string", "Returns the string value of a key.", "1.0.0"},
    {"set", -3, W, cmd_set, prep_set, 1, 1, 1, "string", "Sets the string value of a key, ignoring its type.", "1.0.0"},
    {"setex", 4, W, cmd_setex, prep_setex, 1, 1, 1, "string", "Sets the string value and expiration time of a key.", "2.0.0"},
    {"psetex", 4, W, cmd_psetex, prep_psetex, 1, 1, 1, "string", "Sets both string value and expiration time in milliseconds of a key.", "2.6.0"},
    {"setnx", 3, W | F, cmd_setnx, NULL, 1, 1, 1, "string", "Set the string value of a key only when the key doesn't exist.", "1.0.0"},
    {"getset", 3, W | F, cmd_getset, NULL, 1, 1, 1, "string", "Returns the previous string value of a key after setting it to a new value.", "1.0.0"},
    {"getdel", 2, WNOOM | F, cmd_getdel, NULL, 1, 1, 1, "string", "Returns the string value of a key after deleting the key.", "6.2.0"},
    {"getex", -2, WNOOM | F, cmd_getex, prep_getex, 1, 1, 1, "string", "Returns the string value of a key after setting its expiration time.", "6.2.0"},
    {"mget", -2, R | F, cmd_mget, NULL, 1, -1, 1, "string", "Atomically returns the string values of one or more keys.", "1.0.0"},
    {"mset", -3, W, cmd_mset, NULL, 1, -1, 2, "string", "Atomically creates or modifies the string values of one or more keys.", "1.0.1"},
    {"msetnx", -3, W, cmd_msetnx, NULL, 1, -1, 2, "string", "Atomically modifies the string values of one or more keys only when all keys don't exist.", "1.0.1"},
    {"append", 3, W | F, cmd_append, NULL, 1, 1, 1, "string", "Appends a string to the value of a key. Creates the key if it doesn't exist.", "2.0.0"},
    {"strlen", 2, R | F, cmd_strlen, NULL, 1, 1, 1, "string", "Returns the length of a string value.", "2.2.0"},
    {"getrange", 4, R, cmd_getrange, NULL, 1, 1, 1, "string", "Returns a substring of the string stored at a key.", "2.4.0"},
    {"setrange", 4, W, cmd_setrange, NULL, 1, 1, 1, "string", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", "2.2.0"},
    {"incr", 2, W | F, cmd_incr, NULL, 1, 1, 1, "string", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0"},
    {"decr", 2, W | F, cmd_decr, NULL, 1, 1, 1, "string", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", "1.0.0"},
    {"incrby", 3, W | F, cmd_incrby, NULL, 1, 1, 1, "string", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "1.0.0"},
    {"decrby", 3, W | F, cmd_decrby, NULL, 1, 1, 1, "string", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", "1.0.0"},
    {"incrbyfloat", 3, W | F, cmd_incrbyfloat, NULL, 1, 1, 1, "string", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", "2.6.0"},
    /* keys */
    {"del", -2, WNOOM, cmd_del, NULL, 1, -1, 1, "generic", "Deletes one or more keys.", "1.0.0"},
    {"unlink", -2, WNOOM | F, cmd_del, NULL, 1, -1, 1, "generic", "Asynchronously deletes one or more keys.", "4.0.0"},
    {"exists", -2, R | F, cmd_exists, NULL, 1, -1, 1, "generic", "Determines whether one or more keys exist.", "1.0.0"},
    {"type", 2, R | F, cmd_type, NULL, 1, 1, 1, "generic", "Determines the type of value stored at a key.", "1.0.0"},
    {"rename", 3, WNOOM, cmd_rename, NULL, 1, 2, 1, "generic", "Renames a key and overwrites the destination.", "1.0.0"},
    {"renamenx", 3, WNOOM | F, cmd_renamenx, NULL, 1, 2, 1, "generic", "Renames a key only when the target key name doesn't exist.", "1.0.0"},
    {"keys", 2, R, cmd_keys, NULL, 0, 0, 0, "generic", "Returns all key names that match a pattern.", "1.0.0"},
    {"scan", -2, R, cmd_scan, NULL, 0, 0, 0, "generic", "Iterates over the key names in the database.", "2.8.0"},
    {"randomkey", 1, R, cmd_randomkey, NULL, 0, 0, 0, "generic", "Returns a random key name from the database.", "1.0.0"},
    {"expire", -3, WNOOM | F, cmd_expire, prep_expire, 1, 1, 1, "generic", "Sets the expiration time of a key in seconds.", "1.0.0"},
    {"pexpire", -3, WNOOM | F, cmd_pexpire, prep_pexpire, 1, 1, 1, "generic", "Sets the expiration time of a key in milliseconds.", "2.6.0"},
    {"expireat", -3, WNOOM | F, cmd_expireat, NULL, 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix timestamp.", "1.2.0"},
    {"pexpireat", -3, WNOOM | F, cmd_pexpireat, NULL, 1, 1, 1, "generic", "Sets the expiration time of a key to a Unix milliseconds timestamp.", "2.6.0"},
    {"ttl", 2, R | F, cmd_ttl, NULL, 1, 1, 1, "generic", "Returns the expiration time in seconds of a key.", "1.0.0"},
    {"pttl", 2, R | F, cmd_pttl, NULL, 1, 1, 1, "generic", "Returns the expiration time in milliseconds of a key.", "2.6.0"},
    {"expiretime", 2, R | F, cmd_expiretime, NULL, 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix timestamp.", "7.0.0"},
    {"pexpiretime", 2, R | F, cmd_pexpiretime, NULL, 1, 1, 1, "generic", "Returns the expiration time of a key as a Unix milliseconds timestamp.", "7.0.0"},
    {"persist", 2, WNOOM | F, cmd_persist, NULL, 1, 1, 1, "generic", "Removes the expiration time of a key.", "2.2.0"},
    {"__expdel", 2, WNOOM | CMD_INTERNAL, cmd_expdel, NULL, 1, 1, 1, "generic", "Deletes a key if it has expired (replicated active expiry).", "0.1.0"},
    /* hashes */
    {"hset", -4, W | F, cmd_hset, NULL, 1, 1, 1, "hash", "Creates or modifies the value of a field in a hash.", "2.0.0"},
    {"hmset", -4, W | F, cmd_hset, NULL, 1, 1, 1, "hash", "Sets the values of multiple fields.", "2.0.0"},
    {"hsetnx", 4, W | F, cmd_hsetnx, NULL, 1, 1, 1, "hash", "Sets the value of a field in a hash only when the field doesn't exist.", "2.0.0"},
    {"hget", 3, R | F, cmd_hget, NULL, 1, 1, 1, "hash", "Returns the value of a field in a hash.", "2.0.0"},
    {"hmget", -3, R | F, cmd_hmget, NULL, 1, 1, 1, "hash", "Returns the values of all fields in a hash.", "2.0.0"},
    {"hdel", -3, WNOOM | F, cmd_hdel, NULL, 1, 1, 1, "hash", "Deletes one or more fields and their values from a hash. Deletes the hash if no fields remain.", "2.0.0"},
    {"hgetall", 2, R, cmd_hgetall, NULL, 1, 1, 1, "hash", "Returns all fields and values in a hash.", "2.0.0"},
    {"hincrby", 4, W | F, cmd_hincrby, NULL, 1, 1, 1, "hash", "Increments the integer value of a field in a hash by a number. Uses 0 as initial value if the field doesn't exist.", "2.0.0"},
    {"hexists", 3, R | F, cmd_hexists, NULL, 1, 1, 1, "hash", "Determines whether a field exists in a hash.", "2.0.0"},
    {"hlen", 2, R | F, cmd_hlen, NULL, 1, 1, 1, "hash", "Returns the number of fields in a hash.", "2.0.0"},
    {"hkeys", 2, R, cmd_hkeys, NULL, 1, 1, 1, "hash", "Returns all fields in a hash.", "2.0.0"},
    {"hvals", 2, R, cmd_hvals, NULL, 1, 1, 1, "hash", "Returns all values in a hash.", "2.0.0"},
    /* sorted sets */
    {"zadd", -4, W | F, cmd_zadd, NULL, 1, 1, 1, "sorted_set", "Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", "1.2.0"},
    {"zincrby", 4, W | F, cmd_zincrby, NULL, 1, 1, 1, "sorted_set", "Increments the score of a member in a sorted set.", "1.2.0"},
    {"zscore", 3, R | F, cmd_zscore, NULL, 1, 1, 1, "sorted_set", "Returns the score of a member in a sorted set.", "1.2.0"},
    {"zmscore", -3, R | F, cmd_zmscore, NULL, 1, 1, 1, "sorted_set", "Returns the score of one or more members in a sorted set.", "6.2.0"},
    {"zrank", 3, R | F, cmd_zrank, NULL, 1, 1, 1, "sorted_set", "Returns the index of a member in a sorted set ordered by ascending scores.", "2.0.0"},
    {"zrevrank", 3, R | F, cmd_zrevrank, NULL, 1, 1, 1, "sorted_set", "Returns the index of a member in a sorted set ordered by descending scores.", "2.0.0"},
    {"zrange", -4, R, cmd_zrange, NULL, 1, 1, 1, "sorted_set", "Returns members in a sorted set within a range of indexes.", "1.2.0"},
    {"zrevrange", -4, R, cmd_zrevrange, NULL, 1, 1, 1, "sorted_set", "Returns members in a sorted set within a range of indexes in reverse order.", "1.2.0"},
    {"zrangebyscore", -4, R, cmd_zrangebyscore, NULL, 1, 1, 1, "sorted_set", "Returns members in a sorted set within a range of scores.", "1.0.5"},
    {"zrevrangebyscore", -4, R, cmd_zrevrangebyscore, NULL, 1, 1, 1, "sorted_set", "Returns members in a sorted set within a range of scores in reverse order.", "2.2.0"},
    {"zcount", 4, R | F, cmd_zcount, NULL, 1, 1, 1, "sorted_set", "Returns the count of members in a sorted set that have scores within a range.", "2.0.0"},
    {"zcard", 2, R | F, cmd_zcard, NULL, 1, 1, 1, "sorted_set", "Returns the number of members in a sorted set.", "1.2.0"},
    {"zrem", -3, WNOOM | F, cmd_zrem, NULL, 1, 1, 1, "sorted_set", "Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", "1.2.0"},
    {"zremrangebyrank", 4, WNOOM, cmd_zremrangebyrank, NULL, 1, 1, 1, "sorted_set", "Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", "2.0.0"},
    {"zremrangebyscore", 4, WNOOM, cmd_zremrangebyscore, NULL, 1, 1, 1, "sorted_set", "Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", "1.2.0"},
    {"zpopmin", -2, WNOOM | F, cmd_zpopmin, NULL, 1, 1, 1, "sorted_set", "Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0"},
    {"zpopmax", -2, WNOOM | F, cmd_zpopmax, NULL, 1, 1, 1, "sorted_set", "Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0"},
    {"zunionstore", -4, W, cmd_zunionstore, NULL, 1, 1, 1, "sorted_set", "Stores the union of multiple sorted sets in a key.", "2.0.0"},
    {"zinterstore", -4, W, cmd_zinterstore, NULL, 1, 1, 1, "sorted_set", "Stores the intersect of multiple sorted sets in a key.", "2.0.0"},
    /* live-stream types (t_live.h, docs/commands.md) */
    {"wcount.incr", -2, W | F, cmd_wcount_incr, NULL, 1, 1, 1, "live", "Adds to a windowed counter's current bucket and returns the count over its span. Creates the key if it doesn't exist.", "0.1.0"},
    {"wcount.get", 4, R | F, cmd_wcount_get, NULL, 1, 1, 1, "live", "Returns a windowed counter's count within the last WINDOW seconds.", "0.1.0"},
    {"wrank.incrby", -4, W | F, cmd_wrank_incrby, NULL, 1, 1, 1, "live", "Adds a delta to a member of a windowed ranking and returns its score in the largest window. Creates the key if it doesn't exist.", "0.1.0"},
    {"wrank.top", -3, R, cmd_wrank_top, NULL, 1, 1, 1, "live", "Returns the N members with the highest scores within a window of a windowed ranking.", "0.1.0"},
    {"wrank.score", -3, R | F, cmd_wrank_score, NULL, 1, 1, 1, "live", "Returns a member's score within a window of a windowed ranking.", "0.1.0"},
    {"wrank.rank", -3, R | F, cmd_wrank_rank, NULL, 1, 1, 1, "live", "Returns a member's rank (0 = highest score) within a window of a windowed ranking.", "0.1.0"},
    {"presence.touch", -4, W | F, cmd_presence_touch, prep_presence_touch, 1, 1, 1, "live", "Marks a member present for ttl-ms milliseconds more. Creates the key if it doesn't exist.", "0.1.0"},
    {"__presence.touchat", -4, W | CMD_INTERNAL, cmd_presence_touchat, NULL, 1, 1, 1, "live", "PRESENCE.TOUCH with an absolute deadline (the logged form).", "0.1.0"},
    {"presence.leave", 3, WNOOM | F, cmd_presence_leave, NULL, 1, 1, 1, "live", "Removes a member from a presence set. Deletes the key if no member remains.", "0.1.0"},
    {"presence.count", 2, R | F, cmd_presence_count, NULL, 1, 1, 1, "live", "Returns the number of members present.", "0.1.0"},
    {"presence.members", -2, R, cmd_presence_members, NULL, 1, 1, 1, "live", "Returns the members present, latest deadline first.", "0.1.0"},
    {"__live.tick", 1, WNOOM | CMD_INTERNAL, cmd_live_tick, NULL, 0, 0, 0, "live", "Replicated time step: drops presence members past their deadline, moves ranking windows, deletes emptied keys.", "0.1.0"},
    /* HyperLogLog */
    {"pfadd", -2, W | F, cmd_pfadd, NULL, 1, 1, 1, "hyperloglog", "Adds elements to a HyperLogLog key. Creates the key if it doesn't exist.", "2.8.9"},
    {"pfcount", -2, R, cmd_pfcount, NULL, 1, -1, 1, "hyperloglog", "Returns the approximated cardinality of the set(s) observed by the HyperLogLog key(s).", "2.8.9"},
    {"pfmerge", -2, W, cmd_pfmerge, NULL, 1, -1, 1, "hyperloglog", "Merges one or more HyperLogLog values into a single key.", "2.8.9"},
    /* Raft (cache/raft_cmd.c) */
    {"raft.info", 1, CMD_ADMIN, cmd_raft_info, NULL, 0, 0, 0, "raft", "Returns the Raft role, term, leader, indexes and peers of this node.", "0.1.0"},
    {"raft.node", -3, CMD_ADMIN, cmd_raft_node, NULL, 0, 0, 0, "raft", "Adds (ADD id host:port) or removes (REMOVE id) a voter of the shard.", "0.1.0"},
    {"raft.transfer", -1, CMD_ADMIN, cmd_raft_transfer, NULL, 0, 0, 0, "raft", "Hands leadership to another node (the most up-to-date one without an id).", "0.1.0"},
    {"raft.snapshot", 1, CMD_ADMIN, cmd_raft_snapshot, NULL, 0, 0, 0, "raft", "Takes a snapshot at the next applied entry.", "0.1.0"},
};

#define NCMD (sizeof(table) / sizeof(table[0]))
#define SLOTS 512

static const cache_cmd_t *slots[SLOTS];
static int ready;

static uint32_t name_hash(const char *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (uint32_t)(unsigned char)tolower((unsigned char)p[i])) * 16777619u;
    return h;
}

void cache_cmd_init(void)
{
    if (ready)
        return;
    for (size_t i = 0; i < NCMD; i++) {
        uint32_t h = name_hash(table[i].name, strlen(table[i].name)) & (SLOTS - 1);

        while (slots[h] != NULL)
            h = (h + 1) & (SLOTS - 1);
        slots[h] = &table[i];
    }
    ready = 1;
}

const cache_cmd_t *cache_cmd_lookup(const char *name, size_t len)
{
    uint32_t h;

    if (len == 0 || len > 32)
        return NULL;
    h = name_hash(name, len) & (SLOTS - 1);
    while (slots[h] != NULL) {
        const cache_cmd_t *c = slots[h];

        if (strlen(c->name) == len && strncasecmp(c->name, name, len) == 0)
            return c;
        h = (h + 1) & (SLOTS - 1);
    }
    return NULL;
}

size_t cache_cmd_count(void)
{
    return NCMD;
}

const cache_cmd_t *cache_cmd_at(size_t i)
{
    return i < NCMD ? &table[i] : NULL;
}
