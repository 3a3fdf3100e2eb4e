/* Unit tests for cache/t_presence: deadlines from batch time, the
 * replicated sweep (__live.tick), the sorted-set mirror, and replicas that
 * stay identical through sweeps. */
#include "live_fixture.h"

#include "cache/log.h"
#include "core/loop.h"

#include <errno.h>
#include <event2/event.h>
#include <stdint.h>

#define T0 1700000000000ull

START_TEST(test_touch_count_leave)
{
    ck_assert_int_eq(lf_int(ks, T0, "PRESENCE.TOUCH p a 1000"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 10, "PRESENCE.TOUCH p b 5000"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 20, "PRESENCE.TOUCH p a 1000"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 20, "PRESENCE.COUNT p"), 2);
    ck_assert_int_eq(lf_int(ks, T0, "PRESENCE.COUNT none"), 0);
    ck_assert_str_eq(lf_run(ks, T0 + 20, "PRESENCE.MEMBERS p"), "*2\r\n$1\r\nb\r\n$1\r\na\r\n");
    ck_assert_str_eq(lf_run(ks, T0 + 20, "PRESENCE.MEMBERS p COUNT 1"), "*1\r\n$1\r\nb\r\n");
    ck_assert_str_eq(lf_run(ks, T0 + 20, "PRESENCE.MEMBERS none"), "*0\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "TYPE p"), "+presence\r\n");
    /* a's deadline is T0 + 1020: present at it, gone after it */
    ck_assert_int_eq(lf_int(ks, T0 + 1020, "PRESENCE.COUNT p"), 2);
    ck_assert_int_eq(lf_int(ks, T0 + 1021, "PRESENCE.COUNT p"), 1);
    ck_assert_str_eq(lf_run(ks, T0 + 1021, "PRESENCE.MEMBERS p"), "*1\r\n$1\r\nb\r\n");
    /* touching an expired, not yet swept member is a new arrival */
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "PRESENCE.TOUCH p a 1000"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "PRESENCE.LEAVE p a"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "PRESENCE.LEAVE p a"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "PRESENCE.LEAVE none a"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "PRESENCE.LEAVE p b"), 1);
    /* the last member left: the key is gone */
    ck_assert_int_eq(lf_int(ks, T0 + 1100, "EXISTS p"), 0);
    /* errors */
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.TOUCH p a 0"), "-ERR invalid ttl-ms: 1..2^40 milliseconds\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.TOUCH p a x"), "-ERR value is not an integer or out of range\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.TOUCH p a 10 MIRROR z"), "-ERR syntax error\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.MEMBERS p LIMIT 1"), "-ERR syntax error\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.MEMBERS p COUNT -1"), "-ERR COUNT must not be negative\r\n");
    lf_run(ks, T0, "SET s v");
    ck_assert(strncmp(lf_run(ks, T0, "PRESENCE.TOUCH s a 10"), "-WRONGTYPE", 10) == 0);
    ck_assert(strncmp(lf_run(ks, T0, "PRESENCE.COUNT s"), "-WRONGTYPE", 10) == 0);
    ck_assert_int_eq(lf_int(ks, T0, "DEL s"), 1);
}
END_TEST

START_TEST(test_logged_form)
{
    resp_arg_t argv[4];
    const char *words[4] = {"PRESENCE.TOUCH", "p", "m", "2500"};
    const cache_cmd_t *cmd;
    cache_ctx_t x;
    core_scope_t *scope = core_scope_new(CORE_TAG_TEST, 1024);

    cache_cmd_init();
    for (int i = 0; i < 4; i++) {
        argv[i].p = words[i];
        argv[i].len = strlen(words[i]);
        argv[i].off = 0;
        argv[i].esc = 0;
    }
    memset(&x, 0, sizeof(x));
    x.ks = ks;
    x.out = &lf_out;
    x.now_ms = T0 + 7;
    x.argc = 4;
    x.argv = argv;
    cmd = cache_cmd_lookup("presence.touch", 14);
    ck_assert(cmd != NULL && cmd->prep != NULL);
    ck_assert_int_eq(cmd->prep(&x, scope), 0);
    /* the relative ttl became an absolute deadline in the internal form */
    ck_assert(x.argv[0].len == 18 && memcmp(x.argv[0].p, "__presence.touchat", 18) == 0);
    ck_assert(x.argv[3].len == 13 && memcmp(x.argv[3].p, "1700000002507", 13) == 0);
    ck_assert(cache_cmd_lookup("__presence.touchat", 18)->flags & CMD_INTERNAL);
    core_scope_free(&scope);
    /* applied later (a slow commit), the deadline stays the logged one */
    ck_assert_int_eq(lf_int(ks, T0 + 2000, "__presence.touchat p m 1700000002507"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 2507, "PRESENCE.COUNT p"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 2508, "PRESENCE.COUNT p"), 0);
    /* a deadline already past removes the member */
    ck_assert_int_eq(lf_int(ks, T0 + 2000, "__presence.touchat p m 5"), 0);
    ck_assert_int_eq(lf_int(ks, T0, "EXISTS p"), 0);
}
END_TEST

START_TEST(test_sweep_and_mirror)
{
    int64_t before = core_mem_tag_live(CORE_TAG_CACHE_VALUES);

    lf_int(ks, T0, "PRESENCE.TOUCH viewers:live/a s1 1000 MIRROR rank:viewers live/a");
    lf_int(ks, T0, "PRESENCE.TOUCH viewers:live/a s2 3000 MIRROR rank:viewers live/a");
    lf_int(ks, T0, "PRESENCE.TOUCH viewers:live/a s3 3000 MIRROR rank:viewers live/a");
    lf_int(ks, T0, "PRESENCE.TOUCH viewers:live/b s1 2000 MIRROR rank:viewers live/b");
    ck_assert_str_eq(lf_run(ks, T0, "ZSCORE rank:viewers live/a"), "$1\r\n3\r\n");
    ck_assert_str_eq(lf_run(ks, T0, "ZREVRANGE rank:viewers 0 -1"),
                     "*2\r\n$6\r\nlive/a\r\n$6\r\nlive/b\r\n");
    ck_assert_int_eq(lf_int(ks, T0, "PRESENCE.LEAVE viewers:live/a s3"), 1);
    ck_assert_str_eq(lf_run(ks, T0, "ZSCORE rank:viewers live/a"), "$1\r\n2\r\n");
    /* nothing is due until a deadline passes */
    ck_assert(!cache_live_due(ks, T0 + 1000));
    ck_assert(cache_live_due(ks, T0 + 1001));
    ck_assert_int_eq(lf_int(ks, T0 + 1001, "__live.tick"), 0);
    ck_assert_str_eq(lf_run(ks, T0 + 1001, "ZSCORE rank:viewers live/a"), "$1\r\n1\r\n");
    ck_assert_str_eq(lf_run(ks, T0 + 1001, "ZSCORE rank:viewers live/b"), "$1\r\n1\r\n");
    ck_assert(!cache_live_due(ks, T0 + 1001));
    /* b's only viewer expires: its key and its mirror member go */
    ck_assert_int_eq(lf_int(ks, T0 + 2500, "__live.tick"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 2500, "EXISTS viewers:live/b"), 0);
    ck_assert_str_eq(lf_run(ks, T0 + 2500, "ZSCORE rank:viewers live/b"), "$-1\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + 4000, "__live.tick"), 1);
    /* everything gone, the mirror set too, and the memory with it */
    ck_assert_int_eq(lf_int(ks, T0 + 4000, "DBSIZE"), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), before);
    /* a mirror key of another type is left alone */
    lf_run(ks, T0, "SET str x");
    lf_int(ks, T0, "PRESENCE.TOUCH p m 1000 MIRROR str m");
    ck_assert_str_eq(lf_run(ks, T0, "GET str"), "$1\r\nx\r\n");
    /* changing the mirror clears the old one */
    lf_int(ks, T0, "PRESENCE.TOUCH p m 1000 MIRROR z1 m");
    ck_assert_str_eq(lf_run(ks, T0, "ZSCORE z1 m"), "$1\r\n1\r\n");
    lf_int(ks, T0, "PRESENCE.TOUCH p m 1000 MIRROR z2 m");
    ck_assert_int_eq(lf_int(ks, T0, "EXISTS z1 z2"), 1);
}
END_TEST

START_TEST(test_many_members)
{
    int64_t before = core_mem_tag_live(CORE_TAG_CACHE_VALUES), with;
    long long mem_full, mem_half;

    /* member i's deadline is T0 + 1000 + i */
    for (int i = 0; i < 10000; i++)
        lf_int(ks, T0, "PRESENCE.TOUCH p member-%05d %d MIRROR rv p", i, 1000 + i);
    ck_assert_int_eq(lf_int(ks, T0, "PRESENCE.COUNT p"), 10000);
    ck_assert_str_eq(lf_run(ks, T0, "ZSCORE rv p"), "$5\r\n10000\r\n");
    for (int t = 0; t < 10000; t += 1237)
        ck_assert_int_eq(lf_int(ks, T0 + 1001 + (uint64_t)t, "PRESENCE.COUNT p"), 10000 - t - 1);
    ck_assert_str_eq(lf_run(ks, T0, "PRESENCE.MEMBERS p COUNT 2"),
                     "*2\r\n$12\r\nmember-09999\r\n$12\r\nmember-09998\r\n");
    mem_full = lf_int(ks, T0, "MEMORY USAGE p");
    with = core_mem_tag_live(CORE_TAG_CACHE_VALUES);
    /* one sweep drops the first half, and their memory */
    ck_assert_int_eq(lf_int(ks, T0 + 1000 + 5000, "__live.tick"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 6000, "PRESENCE.COUNT p"), 5000);
    ck_assert_str_eq(lf_run(ks, T0 + 6000, "ZSCORE rv p"), "$4\r\n5000\r\n");
    mem_half = lf_int(ks, T0 + 6000, "MEMORY USAGE p");
    ck_assert_int_lt(mem_half, mem_full * 6 / 10);
    ck_assert_int_lt(core_mem_tag_live(CORE_TAG_CACHE_VALUES) - before, (with - before) * 6 / 10);
    ck_assert_int_eq(lf_int(ks, T0 + 20000, "__live.tick"), 1);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), before);
}
END_TEST

/* Two replicas apply the same batches (touches logged with deadlines,
 * leaves, leader ticks): their snapshots are byte-identical after every
 * sweep, and a restored replica continues identically. */
START_TEST(test_replicas_identical)
{
    cache_ks_t *b = cache_ks_new(), *both[2] = {ks, b}, *c;
    uint64_t rng = 0x9e3779b97f4a7c15ull;

    for (int step = 0; step < 3000; step++) {
        uint64_t t = T0 + (uint64_t)step * 37;
        int m, s;

        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        m = (int)(rng % 200);
        s = (int)((rng >> 20) % 8);
        for (int k = 0; k < 2; k++) {
            if (rng % 5 == 0)
                lf_int(both[k], t, "PRESENCE.LEAVE viewers:live/s%d v%d", s, m);
            else
                lf_int(both[k], t, "PRESENCE.TOUCH viewers:live/s%d v%d %d MIRROR rank:viewers live/s%d", s, m,
                       (int)(500 + rng % 3000), s);
        }
        /* the leader decides when to sweep; followers just apply */
        if (step % 7 == 0 && cache_live_due(ks, t)) {
            lf_int(ks, t, "__live.tick");
            lf_int(b, t, "__live.tick");
            ck_assert(lf_same_snapshot(ks, b, t));
        }
    }
    ck_assert(lf_same_snapshot(ks, b, T0 + 3000 * 37));
    c = lf_clone(ks, T0 + 3000 * 37);
    for (int s = 0; s < 8; s++) {
        char a[64];

        snprintf(a, sizeof(a), "%s", lf_run(ks, T0 + 111100, "PRESENCE.COUNT viewers:live/s%d", s));
        ck_assert_str_eq(lf_run(c, T0 + 111100, "PRESENCE.COUNT viewers:live/s%d", s), a);
        snprintf(a, sizeof(a), "%s", lf_run(ks, T0 + 111100, "ZSCORE rank:viewers live/s%d", s));
        ck_assert_str_eq(lf_run(c, T0 + 111100, "ZSCORE rank:viewers live/s%d", s), a);
    }
    ck_assert_int_eq(lf_int(c, T0 + 200000, "__live.tick"), lf_int(ks, T0 + 200000, "__live.tick"));
    ck_assert_int_eq(lf_int(c, T0 + 200000, "DBSIZE"), 0);
    ck_assert_int_eq(lf_int(ks, T0 + 200000, "DBSIZE"), 0);
    cache_ks_free(&c);
    cache_ks_free(&b);
}
END_TEST

START_TEST(test_generic_commands)
{
    const char *r;
    struct evbuffer *s;
    size_t len;
    cache_ks_t *c;

    lf_int(ks, T0, "PRESENCE.TOUCH p a 100000 MIRROR rv p");
    lf_int(ks, T0, "PRESENCE.TOUCH q a 100000");
    r = lf_run(ks, T0, "SCAN 0 TYPE presence COUNT 100");
    ck_assert(strstr(r, "$1\r\np\r\n") != NULL && strstr(r, "$1\r\nq\r\n") != NULL);
    ck_assert(strstr(r, "rv") == NULL);
    ck_assert_int_gt(lf_int(ks, T0, "MEMORY USAGE p"), 64);
    /* RENAME: the renamed set still sweeps and is deleted when empty */
    ck_assert_str_eq(lf_run(ks, T0, "RENAME q q2"), "+OK\r\n");
    ck_assert_int_eq(lf_int(ks, T0 + 100001, "__live.tick"), 2);
    ck_assert_int_eq(lf_int(ks, T0 + 100001, "DBSIZE"), 0);
    /* EXPIRE and DEL work on the key as a whole */
    lf_int(ks, T0, "PRESENCE.TOUCH p a 100000");
    ck_assert_int_eq(lf_int(ks, T0, "PEXPIRE p 10"), 1);
    ck_assert_int_eq(lf_int(ks, T0 + 11, "PRESENCE.COUNT p"), 0);
    lf_int(ks, T0, "PRESENCE.TOUCH p a 100000");
    lf_int(ks, T0, "PRESENCE.TOUCH p b 100000 MIRROR rv p");
    /* snapshot: truncations refused */
    s = lf_snapshot(ks, T0);
    len = evbuffer_get_length(s);
    c = cache_ks_new();
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_int_eq(cache_ks_restore(c, evbuffer_pullup(s, -1), cut), -EPROTO);
    ck_assert_int_eq(cache_ks_restore(c, evbuffer_pullup(s, -1), len), 0);
    ck_assert_str_eq(lf_run(c, T0, "PRESENCE.MEMBERS p"), lf_run(ks, T0, "PRESENCE.MEMBERS p"));
    /* the mirror survives the snapshot */
    ck_assert_int_eq(lf_int(c, T0, "PRESENCE.LEAVE p a"), 1);
    ck_assert_str_eq(lf_run(c, T0, "ZSCORE rv p"), "$1\r\n1\r\n");
    cache_ks_free(&c);
    evbuffer_free(s);
    lf_flip_each_byte(ks, T0);
    ck_assert_int_eq(lf_int(ks, T0, "DEL p rv"), 2);
}
END_TEST


/* ---- a shard: the leader's events and sweeps reach every replica ------------ */

static core_loop_t *sloop;
static cache_server_t *leader, *fol[2];
static cache_conf_t sconf = {100, 0, "", 512 << 20, 64 << 20};
static uint64_t nprop;

/* The log of the test shard: every proposal is committed at once and
 * applied on the leader and both followers, in order. */
static int fan_propose(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg)
{
    nprop++;
    cache_apply_batch(leader, buf, len, nprop);
    for (int i = 0; i < 2; i++)
        cache_apply_batch(fol[i], buf, len, nprop);
    done(arg, 0);
    return 0;
}

static int yes(void *impl)
{
    return 1;
}

static int no(void *impl)
{
    return 0;
}

static const char *noaddr(void *impl)
{
    return NULL;
}

static int refuse(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg)
{
    return -ENOTCONN;
}

static const cache_log_ops_t fan_ops = {fan_propose, yes, noaddr, NULL};
static const cache_log_ops_t follower_ops = {refuse, no, noaddr, NULL};

static cache_server_t *shard_server(void)
{
    cache_server_t *s = NULL;
    int fd = core_listen_tcp("127.0.0.1", 0, 16, NULL);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(cache_server_new(&s, sloop, fd, &sconf, NULL), 0);
    return s;
}

static void shard_setup(void)
{
    lf_base_values = core_mem_tag_live(CORE_TAG_CACHE_VALUES);
    sloop = core_loop_new();
    ck_assert(sloop != NULL);
    leader = shard_server();
    cache_server_set_log(leader, &fan_ops, NULL);
    for (int i = 0; i < 2; i++) {
        fol[i] = shard_server();
        cache_server_set_log(fol[i], &follower_ops, NULL);
    }
}

static void shard_teardown(void)
{
    cache_server_free(&leader);
    for (int i = 0; i < 2; i++)
        cache_server_free(&fol[i]);
    core_loop_free(&sloop);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), lf_base_values);
}

static void brk(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(core_loop_base(sloop));
}

static void run_for(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    struct event *t = evtimer_new(core_loop_base(sloop), brk, NULL);

    evtimer_add(t, &tv);
    event_base_dispatch(core_loop_base(sloop));
    event_free(t);
}

/* Score of member in the sorted set key of s, -1 when absent. */
static double zscore(cache_server_t *s, const char *key, const char *m)
{
    cache_entry_t *e = cache_ks_find(cache_server_ks(s), key, strlen(key), 0, 0);
    zmember_t *zm;

    if (e == NULL || e->type != CACHE_T_ZSET)
        return -1;
    zm = zset_find(ent_ptr(e), m, strlen(m));
    return zm != NULL ? zm->score : -1;
}

START_TEST(test_shard_events_and_sweeps)
{
    cache_live_rank_t top[4];
    size_t n;

    ck_assert_int_eq(cache_event_viewer_touch(leader, "live/a", "s1", 300, 1), 0);
    ck_assert_int_eq(cache_event_viewer_touch(leader, "live/a", "s2", 60000, 1), 0);
    ck_assert_int_eq(cache_event_viewer_touch(leader, "live/b", "s3", 60000, 1), 0);
    ck_assert_int_eq(cache_event_viewer_touch(fol[0], "live/b", "s4", 60000, 1), -ENOTCONN);
    ck_assert_int_eq(cache_event_viewer_touch(leader, "", "s4", 60000, 1), -EINVAL);
    run_for(30);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cache_live_viewers(fol[i], "live/a"), 2);
        ck_assert_int_eq(cache_live_viewers(fol[i], "live/b"), 1);
        ck_assert(zscore(fol[i], "rank:viewers", "live/a") == 2);
        ck_assert(lf_same_snapshot(cache_server_ks(leader), cache_server_ks(fol[i]), 0));
    }
    ck_assert_int_eq(cache_live_ranking(fol[1], 3600, top, 4, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(top[0].stream, "live/a");
    ck_assert_int_eq(top[0].views, 2);
    ck_assert_int_eq(top[0].viewers, 2);
    ck_assert_str_eq(top[1].stream, "live/b");
    ck_assert_int_eq(cache_live_ranking(fol[1], 60, top, 4, &n), -EINVAL);
    /* a leave is replicated at once */
    ck_assert_int_eq(cache_event_viewer_leave(leader, "live/b", "s3"), 0);
    run_for(30);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(cache_live_viewers(fol[i], "live/b"), 0);
        ck_assert(zscore(fol[i], "rank:viewers", "live/b") == -1);
    }
    /* s1's deadline passes: only the leader's sweep changes the replicas
     * (the mirror is written by the sweep, not computed by a read) */
    run_for(600);
    for (int i = 0; i < 2; i++) {
        ck_assert(zscore(fol[i], "rank:viewers", "live/a") == 1);
        ck_assert(lf_same_snapshot(cache_server_ks(leader), cache_server_ks(fol[i]), 0));
    }
    /* keep-alive of the other session and the joins stay counted */
    ck_assert_int_eq(cache_event_viewer_touch(leader, "live/a", "s2", 60000, 0), 0);
    run_for(30);
    ck_assert_int_eq(cache_live_ranking(fol[0], 86400, top, 4, &n), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_int_eq(top[0].views, 2);
    ck_assert_int_eq(top[0].viewers, 1);
    ck_assert(lf_same_snapshot(cache_server_ks(leader), cache_server_ks(fol[1]), 0));
}
END_TEST

static char leader_addr[64];

static const char *leader_at(void *impl)
{
    return leader_addr;
}

static const cache_log_ops_t forwarding_ops = {refuse, no, leader_at, NULL};

/* A follower's viewer events reach the leader over RESP (with AUTH). */
START_TEST(test_follower_forwards)
{
    static cache_conf_t pconf = {100, 0, "sesame", 512 << 20, 64 << 20};
    cache_server_t *l = NULL, *f = NULL;
    int port = 0, fd = core_listen_tcp("127.0.0.1", 0, 16, &port);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(cache_server_new(&l, sloop, fd, &pconf, NULL), 0);
    fd = core_listen_tcp("127.0.0.1", 0, 16, NULL);
    ck_assert_int_eq(cache_server_new(&f, sloop, fd, &pconf, NULL), 0);
    cache_server_set_log(f, &forwarding_ops, NULL);
    snprintf(leader_addr, sizeof(leader_addr), "127.0.0.1:%d", port);
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s1", 60000, 1), 0);
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s2", 60000, 1), 0);
    run_for(100);
    ck_assert_int_eq(cache_live_viewers(l, "live/f"), 2);
    ck_assert(zscore(l, "rank:viewers", "live/f") == 2);
    ck_assert_int_eq(cache_live_viewers(f, "live/f"), 0); /* no log here to bring it back */
    ck_assert_int_eq(cache_event_viewer_leave(f, "live/f", "s1"), 0);
    run_for(100);
    ck_assert_int_eq(cache_live_viewers(l, "live/f"), 1);
    /* the leader moves away: events go to the new address (none listens) */
    snprintf(leader_addr, sizeof(leader_addr), "127.0.0.1:1");
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s3", 60000, 1), 0);
    run_for(50);
    leader_addr[0] = '\0';
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s3", 60000, 1), -ENOTCONN);
    snprintf(leader_addr, sizeof(leader_addr), "leader:6379");
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s3", 60000, 1), -ENOTCONN);
    ck_assert_int_eq(cache_event_viewer_touch(f, "live/f", "s3", 60000, 1), -ENOTCONN);
    cache_server_free(&f);
    cache_server_free(&l);
}
END_TEST

static Suite *presence_suite(void)
{
    Suite *s = suite_create("cache/presence");
    TCase *tc = tcase_create("presence");

    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, lf_setup, lf_teardown);
    tcase_add_test(tc, test_touch_count_leave);
    tcase_add_test(tc, test_logged_form);
    tcase_add_test(tc, test_sweep_and_mirror);
    tcase_add_test(tc, test_many_members);
    tcase_add_test(tc, test_replicas_identical);
    tcase_add_test(tc, test_generic_commands);
    suite_add_tcase(s, tc);
    tc = tcase_create("shard");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, shard_setup, shard_teardown);
    tcase_add_test(tc, test_shard_events_and_sweeps);
    tcase_add_test(tc, test_follower_forwards);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(presence_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
