/* Unit tests for cache/raft: raft-peers parsing, the snapshot image, the
 * real state machine driven by libraft's fixture (elections, partitions,
 * kill/revive, disk latency, snapshot install), and real nodes on raft_uv
 * embedded in a libevent loop (group commit, restart recovery, fork
 * snapshots, a 3-node group on loopback). */
#include "cache/raft_int.h"

#include "cache/cache_int.h"

#include "core/arena.h"
#include "core/loop.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <ftw.h>
#include <netinet/in.h>
#include <raft/fixture.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- group commit across iterations: when the open batch waits ------- */

START_TEST(test_batch_hold_table)
{
    static const struct {
        int leader, appending;
        size_t bytes;
        unsigned proposals;
        uint64_t held_ms;
        int hold;
    } cases[] = {
        /* nothing on its way to the disk: proposed at once, no added latency */
        {1, 0, 100, 1, 0, 0},
        /* an append in flight: the batch waits for it and grows */
        {1, 1, 100, 1, 0, 1},
        {1, 1, CACHE_RAFT_HOLD_MAX_BYTES - 1, CACHE_RAFT_HOLD_MAX_PROPOSALS - 1,
         CACHE_RAFT_HOLD_MAX_MS - 1, 1},
        /* the bounds: bytes, proposals, time */
        {1, 1, CACHE_RAFT_HOLD_MAX_BYTES, 1, 0, 0},
        {1, 1, 100, CACHE_RAFT_HOLD_MAX_PROPOSALS, 0, 0},
        {1, 1, 100, 1, CACHE_RAFT_HOLD_MAX_MS, 0},
        {1, 1, 100, 1, 10000, 0},
        /* not the leader: proposed now, so its proposals fail now */
        {0, 1, 100, 1, 0, 0},
        {0, 0, 100, 1, 0, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        ck_assert_msg(cache_raft_batch_hold(cases[i].leader, cases[i].appending, cases[i].bytes,
                                            cases[i].proposals, cases[i].held_ms) == cases[i].hold,
                      "case %zu", i);
}
END_TEST

/* ---- a toy keyspace: "key=value\n" commands ---------------------------- */

#define KV_MAX 512

typedef struct kv {
    char key[KV_MAX][32];
    char val[KV_MAX][32];
    unsigned n;
    uint64_t batches, commands, last_index;
} kv_t;

static void kv_set(kv_t *kv, const char *k, size_t kl, const char *v, size_t vl)
{
    unsigned i;

    for (i = 0; i < kv->n; i++)
        if (strlen(kv->key[i]) == kl && memcmp(kv->key[i], k, kl) == 0)
            break;
    if (i == kv->n) {
        ck_assert_uint_lt(kv->n, KV_MAX);
        kv->n++;
        memcpy(kv->key[i], k, kl);
        kv->key[i][kl] = '\0';
    }
    memcpy(kv->val[i], v, vl);
    kv->val[i][vl] = '\0';
}

static const char *kv_get(const kv_t *kv, const char *k)
{
    for (unsigned i = 0; i < kv->n; i++)
        if (strcmp(kv->key[i], k) == 0)
            return kv->val[i];
    return NULL;
}

static int kv_parse(kv_t *kv, const char *p, size_t len, int count)
{
    const char *end = p + len;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *eq;

        if (nl == NULL)
            return -EPROTO;
        eq = memchr(p, '=', (size_t)(nl - p));
        if (eq == NULL || eq - p >= 32 || nl - eq - 1 >= 32)
            return -EPROTO;
        kv_set(kv, p, (size_t)(eq - p), eq + 1, (size_t)(nl - eq - 1));
        if (count)
            kv->commands++;
        p = nl + 1;
    }
    return 0;
}

static void kv_apply(void *arg, const void *buf, size_t len, uint64_t index)
{
    kv_t *kv = arg;

    ck_assert_uint_ge(index, kv->last_index);
    if (index != kv->last_index)
        kv->batches++;
    kv->last_index = index;
    ck_assert_int_eq(kv_parse(kv, buf, len, 1), 0);
}

static int kv_save(void *arg, cache_raft_writer_t *w)
{
    kv_t *kv = arg;

    for (unsigned i = 0; i < kv->n; i++) {
        cache_raft_write(w, kv->key[i], strlen(kv->key[i]));
        cache_raft_write(w, "=", 1);
        cache_raft_write(w, kv->val[i], strlen(kv->val[i]));
        if (cache_raft_write(w, "\n", 1) != 0)
            return -EIO;
    }
    return 0;
}

static int kv_load(void *arg, const void *buf, size_t len)
{
    kv_t *kv = arg;

    kv->n = 0;
    return kv_parse(kv, buf, len, 0);
}

static cache_raft_fsm_t kv_fsm(kv_t *kv)
{
    cache_raft_fsm_t f = {kv, kv_apply, kv_save, kv_load, NULL};

    return f;
}

/* ---- raft-peers ------------------------------------------------------- */

static const struct {
    const char *in;
    int n;
} peers_cases[] = {
    {"", 0},
    {"   ", 0},
    {"1=127.0.0.1:7379", 1},
    {"1=127.0.0.1:7379,2=127.0.0.1:7380,3=127.0.0.1:7381", 3},
    {"1=a:1, 2=b:2", 2},
    {"1=127.0.0.1:7379,", -EINVAL},
    {"0=127.0.0.1:7379", -EINVAL},
    {"x=127.0.0.1:7379", -EINVAL},
    {"1=127.0.0.1", -EINVAL},
    {"1=127.0.0.1:", -EINVAL},
    {"1=:7379", -EINVAL},
    {"1=h:79x", -EINVAL},
    {"1127.0.0.1:7379", -EINVAL},
    {"1=a:1,1=b:2", -EINVAL},
    {"99999999999999999999999=a:1", -EINVAL},
};

static void peer_count(void *arg, uint64_t id, const char *addr)
{
    ck_assert_uint_gt(id, 0);
    ck_assert_ptr_nonnull(strchr(addr, ':'));
    (*(int *)arg)++;
}

START_TEST(test_peers_table)
{
    for (size_t i = 0; i < sizeof(peers_cases) / sizeof(peers_cases[0]); i++) {
        int seen = 0;
        int n = cache_raft_peers_parse(peers_cases[i].in, peer_count, &seen);

        ck_assert_msg(n == peers_cases[i].n, "case %zu '%s': %d", i, peers_cases[i].in, n);
        if (n >= 0)
            ck_assert_int_eq(seen, n);
    }
}
END_TEST

/* ---- snapshot image --------------------------------------------------- */

/* Take a snapshot and return it as one raft_malloc'd buffer, as libraft
 * hands it to restore. */
static struct raft_buffer image_of(cache_raft_sm_t *sm)
{
    struct raft_buffer *bufs, out;
    unsigned n;
    size_t off = 0;

    ck_assert_int_eq(sm->fsm.snapshot(&sm->fsm, &bufs, &n), 0);
    ck_assert_uint_eq(n, 2);
    out.len = bufs[0].len + bufs[1].len;
    out.base = raft_malloc(out.len);
    for (unsigned i = 0; i < n; i++) {
        memcpy((char *)out.base + off, bufs[i].base, bufs[i].len);
        off += bufs[i].len;
    }
    ck_assert_int_eq(sm->fsm.snapshot_finalize(&sm->fsm, &bufs, &n), 0);
    ck_assert_ptr_null(bufs);
    return out;
}

START_TEST(test_snapshot_roundtrip)
{
    static kv_t a, b;
    cache_raft_sm_t sa, sb;
    cache_raft_fsm_t fa = kv_fsm(&a), fb = kv_fsm(&b);
    struct raft_buffer img;
    unsigned char node[300];
    struct raft_buffer e;
    void *res;

    memset(&a, 0, sizeof(a));
    memset(&b, 0, sizeof(b));
    ck_assert_int_eq(cache_raft_sm_init(&sa, &fa, NULL, 0), 0);
    ck_assert_int_eq(cache_raft_sm_init(&sb, &fb, NULL, 0), 0);
    kv_set(&a, "k1", 2, "v1", 2);
    kv_set(&a, "k2", 2, "v2", 2);
    int len = cache_raft_node_encode(7, "127.0.0.1:6390", node, sizeof(node));
    ck_assert_int_gt(len, 0);
    ck_assert_int_eq(cache_raft_entry_new(CACHE_RAFT_ENTRY_NODE, node, (size_t)len, &e), 0);
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    raft_free(e.base);
    ck_assert_str_eq(cache_raft_sm_node_addr(&sa, 7), "127.0.0.1:6390");

    img = image_of(&sa);
    ck_assert_uint_eq(sa.snapshots_taken, 1);
    /* restore takes ownership of the buffer it gets */
    ck_assert_int_eq(sb.fsm.restore(&sb.fsm, &img), 0);
    ck_assert_uint_eq(b.n, 2);
    ck_assert_str_eq(kv_get(&b, "k2"), "v2");
    ck_assert_str_eq(cache_raft_sm_node_addr(&sb, 7), "127.0.0.1:6390");
    ck_assert_uint_eq(sb.snapshots_restored, 1);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_SNAP), 0);
}
END_TEST

START_TEST(test_snapshot_corruption)
{
    static kv_t a;
    cache_raft_sm_t sa;
    cache_raft_fsm_t fa = kv_fsm(&a);
    struct raft_buffer b;
    const unsigned char *state;
    size_t slen;

    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(cache_raft_sm_init(&sa, &fa, NULL, 0), 0);
    kv_set(&a, "key", 3, "value", 5);
    b = image_of(&sa);
    unsigned char *img = b.base;
    size_t len = b.len;

    ck_assert_int_eq(cache_raft_snapshot_check(img, len, &state, &slen), 0);
    ck_assert_uint_eq(slen, strlen("key=value\n"));
    ck_assert_int_eq(memcmp(state, "key=value\n", slen), 0);
    /* every truncation is rejected */
    for (size_t i = 0; i < len; i++)
        ck_assert_int_eq(cache_raft_snapshot_check(img, i, &state, &slen), -EPROTO);
    /* every flipped bit is rejected (the version field may say "newer") */
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            int rv;

            img[i] ^= (unsigned char)(1u << bit);
            rv = cache_raft_snapshot_check(img, len, &state, &slen);
            ck_assert_msg(rv == -EPROTO || (rv == -ENOTSUP && i >= 4 && i < 8),
                          "byte %zu bit %d: %d", i, bit, rv);
            img[i] ^= (unsigned char)(1u << bit);
        }
    }
    raft_free(b.base);
}
END_TEST

START_TEST(test_apply_unknown_kinds)
{
    static kv_t a;
    cache_raft_sm_t sa;
    cache_raft_fsm_t fa = kv_fsm(&a);
    unsigned char junk[] = {9, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8};
    unsigned char shortnode[] = {CACHE_RAFT_ENTRY_NODE, 5, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0};
    unsigned char badpad[] = {CACHE_RAFT_ENTRY_BATCH, 9, 0, 0, 0, 0, 0, 0, 1, 2, 3, 0, 0, 0, 0, 0};
    struct raft_buffer e = {junk, sizeof(junk)};
    void *res;

    memset(&a, 0, sizeof(a));
    ck_assert_int_eq(cache_raft_sm_init(&sa, &fa, NULL, 0), 0);
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    e.base = shortnode;
    e.len = sizeof(shortnode);
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    e.len = 0;
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    e.base = badpad;
    e.len = sizeof(badpad);
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    e.len = 12;
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    /* a record longer than its entry */
    ck_assert_int_eq(cache_raft_entry_new(CACHE_RAFT_ENTRY_BATCH, "\xff\0\0\0a=1\n", 8, &e), 0);
    ck_assert_int_eq(sa.fsm.apply(&sa.fsm, &e, &res), 0);
    raft_free(e.base);
    ck_assert_uint_eq(a.batches, 0);
    ck_assert_uint_eq(sa.n_nodes, 0);
}
END_TEST

/* ---- libraft fixture driving the real state machine ------------------- */

#define FX_N 3
static struct raft_fixture fx;
static kv_t fx_kv[FX_N];
static cache_raft_sm_t fx_sm[FX_N];


/* Node i of fixture f: a state machine over fsm (borrowed), grown into f. */
static void fixture_add(struct raft_fixture *f, cache_raft_sm_t *sm, const cache_raft_fsm_t *fsm,
                        unsigned i)
{
    ck_assert_int_eq(cache_raft_sm_init(sm, fsm, NULL, 0), 0);
    ck_assert_int_eq(raft_fixture_grow(f, &sm->fsm), 0);
    sm->raft = raft_fixture_get(f, i);
}

/* Bootstrap f with all its nodes as voters and start it. */
static void fixture_start(struct raft_fixture *f)
{
    struct raft_configuration cfg;

    ck_assert_int_eq(raft_fixture_configuration(f, FX_N, &cfg), 0);
    ck_assert_int_eq(raft_fixture_bootstrap(f, &cfg), 0);
    raft_configuration_close(&cfg);
    ck_assert_int_eq(raft_fixture_start(f), 0);
}

static void fx_setup(void)
{

    cache_raft_heap_install();
    memset(fx_kv, 0, sizeof(fx_kv));
    ck_assert_int_eq(raft_fixture_initialize(&fx), 0);
    for (unsigned i = 0; i < FX_N; i++) {
        cache_raft_fsm_t f = kv_fsm(&fx_kv[i]);

        fixture_add(&fx, &fx_sm[i], &f, i);
    }
    fixture_start(&fx);
}

static void fx_teardown(void)
{
    raft_fixture_close(&fx);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_SNAP), 0);
}

typedef struct fx_req {
    struct raft_apply req;
    int status, done;
} fx_req_t;

static void fx_apply_cb(struct raft_apply *req, int status, void *result)
{
    fx_req_t *r = req->data;

    r->status = status;
    r->done = 1;
}

/* Propose one batch "k=v\n..." on server i. */
static int fx_propose(unsigned i, const char *batch, fx_req_t *r)
{
    struct raft_buffer buf;
    char rec[256];
    size_t n = strlen(batch);
    int rv;

    /* one record: u32 length, bytes */
    ck_assert_uint_lt(n, sizeof(rec) - 4);
    rec[0] = (char)n;
    rec[1] = rec[2] = rec[3] = 0;
    memcpy(rec + 4, batch, n);
    ck_assert_int_eq(cache_raft_entry_new(CACHE_RAFT_ENTRY_BATCH, rec, n + 4, &buf), 0);
    memset(r, 0, sizeof(*r));
    r->req.data = r;
    rv = raft_apply(raft_fixture_get(&fx, i), &r->req, &buf, 1, fx_apply_cb);
    if (rv != 0)
        raft_free(buf.base);
    return rv;
}

static unsigned fx_leader(void)
{
    ck_assert(raft_fixture_step_until_has_leader(&fx, 10000));
    return raft_fixture_leader_index(&fx);
}

static void fx_same_state(void)
{
    for (unsigned i = 1; i < FX_N; i++) {
        ck_assert_uint_eq(fx_kv[i].n, fx_kv[0].n);
        for (unsigned k = 0; k < fx_kv[0].n; k++)
            ck_assert_str_eq(kv_get(&fx_kv[i], fx_kv[0].key[k]), fx_kv[0].val[k]);
    }
}

START_TEST(test_fixture_replicates)
{
    unsigned l = fx_leader();
    fx_req_t r;

    ck_assert_int_eq(fx_propose(l, "a=1\nb=2\nc=3\n", &r), 0);
    ck_assert(raft_fixture_step_until_applied(&fx, FX_N, raft_last_index(raft_fixture_get(&fx, l)),
                                              5000));
    ck_assert(r.done);
    ck_assert_int_eq(r.status, 0);
    fx_same_state();
    ck_assert_str_eq(kv_get(&fx_kv[(l + 1) % FX_N], "b"), "2");
    for (unsigned i = 0; i < FX_N; i++)
        ck_assert_uint_eq(fx_kv[i].commands, 3);
    /* a follower refuses proposals */
    ck_assert_int_eq(fx_propose((l + 1) % FX_N, "x=1\n", &r), RAFT_NOTLEADER);
}
END_TEST

static bool other_leader(struct raft_fixture *f, void *arg)
{
    unsigned old = *(unsigned *)arg;

    for (unsigned i = 0; i < FX_N; i++)
        if (i != old && raft_state(raft_fixture_get(f, i)) == RAFT_LEADER)
            return true;
    return false;
}

START_TEST(test_fixture_leader_partition)
{
    unsigned l = fx_leader(), nl;
    static fx_req_t r, lost; /* lost is failed at teardown, after we return */

    ck_assert_int_eq(fx_propose(l, "a=1\n", &r), 0);
    ck_assert(raft_fixture_step_until_applied(&fx, FX_N, raft_last_index(raft_fixture_get(&fx, l)),
                                              5000));
    /* the leader accepts a write and dies before sending it anywhere:
     * that write never commits, the others elect a new leader */
    ck_assert_int_eq(fx_propose(l, "a=lost\n", &lost), 0);
    raft_fixture_kill(&fx, l);
    ck_assert(raft_fixture_step_until(&fx, other_leader, &l, 10000));
    for (nl = 0; nl < FX_N; nl++)
        if (nl != l && raft_state(raft_fixture_get(&fx, nl)) == RAFT_LEADER)
            break;
    ck_assert_uint_ne(nl, l);
    ck_assert_int_eq(fx_propose(nl, "a=2\n", &r), 0);
    ck_assert(raft_fixture_step_until_applied(&fx, nl, raft_last_index(raft_fixture_get(&fx, nl)),
                                              5000));
    ck_assert(r.done && r.status == 0);
    /* the old leader's write never reached a majority: not acknowledged,
     * not applied anywhere */
    ck_assert(!lost.done);
    for (unsigned i = 0; i < FX_N; i++) {
        if (i == l)
            continue;
        ck_assert(raft_fixture_step_until_applied(&fx, i, raft_last_index(raft_fixture_get(&fx, nl)),
                                                  5000));
        ck_assert_str_eq(kv_get(&fx_kv[i], "a"), "2");
    }
    ck_assert_str_eq(kv_get(&fx_kv[l], "a"), "1");
}
END_TEST

START_TEST(test_fixture_kill_revive_disk_latency)
{
    unsigned l = fx_leader(), f = (l + 1) % FX_N;
    fx_req_t r[20];
    char cmd[64];

    raft_fixture_kill(&fx, f);
    for (unsigned i = 0; i < FX_N; i++)
        raft_fixture_set_disk_latency(&fx, i, 40);
    for (int i = 0; i < 20; i++) {
        snprintf(cmd, sizeof(cmd), "k%d=%d\n", i % 5, i);
        ck_assert_int_eq(fx_propose(l, cmd, &r[i]), 0);
        raft_fixture_step_n(&fx, 3);
    }
    ck_assert(raft_fixture_step_until_applied(&fx, l, raft_last_index(raft_fixture_get(&fx, l)),
                                              10000));
    for (int i = 0; i < 20; i++)
        ck_assert(r[i].done && r[i].status == 0);
    ck_assert_uint_eq(fx_kv[f].n, 0);
    raft_fixture_revive(&fx, f);
    ck_assert(raft_fixture_step_until_applied(&fx, FX_N, raft_last_index(raft_fixture_get(&fx, l)),
                                              10000));
    fx_same_state();
    ck_assert_str_eq(kv_get(&fx_kv[f], "k4"), "19");
}
END_TEST

START_TEST(test_fixture_snapshot_install)
{
    unsigned l = fx_leader(), f = (l + 2) % FX_N;
    fx_req_t r;
    char cmd[64];

    for (unsigned i = 0; i < FX_N; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&fx, i), 8);
        raft_set_snapshot_trailing(raft_fixture_get(&fx, i), 2);
    }
    raft_fixture_kill(&fx, f);
    for (int i = 0; i < 40; i++) {
        snprintf(cmd, sizeof(cmd), "s%d=%d\n", i, i * i);
        ck_assert_int_eq(fx_propose(l, cmd, &r), 0);
        ck_assert(raft_fixture_step_until_applied(&fx, l, raft_last_index(raft_fixture_get(&fx, l)),
                                                  5000));
    }
    ck_assert_uint_gt(fx_sm[l].snapshots_taken, 0);
    raft_fixture_revive(&fx, f);
    ck_assert(raft_fixture_step_until_applied(&fx, FX_N, raft_last_index(raft_fixture_get(&fx, l)),
                                              20000));
    /* the revived follower was too far behind: it got the snapshot */
    ck_assert_uint_gt(fx_sm[f].snapshots_restored, 0);
    fx_same_state();
    ck_assert_str_eq(kv_get(&fx_kv[f], "s39"), "1521");
}
END_TEST

/* ---- the fixture driving the real cache (cache_apply_batch, keyspace) ---- */

static struct raft_fixture cx;
static cache_raft_sm_t cx_sm[FX_N];
static cache_server_t *cx_srv[FX_N];
static core_loop_t *cx_loop;
static core_conf_t *cx_all;
static cache_conf_t cx_conf;

static void cx_setup(void)
{
    cache_raft_heap_install();
    cx_loop = core_loop_new();
    cx_all = core_conf_new();
    ck_assert_ptr_nonnull(cx_loop);
    ck_assert_int_eq(cache_conf_register(cx_all, &cx_conf), 0);
    ck_assert_int_eq(raft_fixture_initialize(&cx), 0);
    for (unsigned i = 0; i < FX_N; i++) {
        cache_raft_fsm_t f;
        int fd = core_listen_tcp("127.0.0.1", 0, 16, NULL);

        ck_assert_int_ge(fd, 0);
        /* all == NULL: no Raft node of its own, the fixture is the log */
        ck_assert_int_eq(cache_server_new(&cx_srv[i], cx_loop, fd, &cx_conf, NULL), 0);
        cache_raft_server_fsm(cx_srv[i], &f);
        fixture_add(&cx, &cx_sm[i], &f, i);
    }
    fixture_start(&cx);
}

static void cx_teardown(void)
{
    raft_fixture_close(&cx);
    for (unsigned i = 0; i < FX_N; i++)
        cache_server_free(&cx_srv[i]);
    core_conf_free(&cx_all);
    core_loop_free(&cx_loop);
}

/* A cache batch as cache/log.h documents it: header, then commands given
 * as "|"-separated arguments, one string per command. */
static size_t cx_batch(unsigned char *out, size_t cap, uint64_t now_ms, const char *const *cmds,
                       unsigned n)
{
    size_t len = 32;

    memcpy(out, "OBB1", 4);
    memcpy(out + 4, &n, 4);
    memset(out + 8, 0, 16); /* origin, seq: from no live client */
    memcpy(out + 24, &now_ms, 8);
    for (unsigned i = 0; i < n; i++) {
        char tmp[256];
        uint32_t argc = 0;
        size_t at = len;

        len += 4;
        snprintf(tmp, sizeof(tmp), "%s", cmds[i]);
        for (char *save = NULL, *a = strtok_r(tmp, "|", &save); a != NULL;
             a = strtok_r(NULL, "|", &save)) {
            uint32_t l = (uint32_t)strlen(a);

            ck_assert_uint_lt(len + 4 + l, cap);
            memcpy(out + len, &l, 4);
            memcpy(out + len + 4, a, l);
            len += 4 + l;
            argc++;
        }
        memcpy(out + at, &argc, 4);
    }
    return len;
}

static void cx_propose(unsigned leader, uint64_t now_ms, const char *const *cmds, unsigned n)
{
    static unsigned char buf[8192];
    size_t len = cx_batch(buf + 4, sizeof(buf) - 4, now_ms, cmds, n);
    uint32_t l = (uint32_t)len;
    struct raft_buffer e;
    static fx_req_t req;
    struct raft *r = raft_fixture_get(&cx, leader);

    memcpy(buf, &l, 4); /* one record */
    ck_assert_int_eq(cache_raft_entry_new(CACHE_RAFT_ENTRY_BATCH, buf, len + 4, &e), 0);
    memset(&req, 0, sizeof(req));
    req.req.data = &req;
    ck_assert_int_eq(raft_apply(r, &req.req, &e, 1, fx_apply_cb), 0);
    ck_assert(raft_fixture_step_until_applied(&cx, leader, raft_last_index(r), 5000));
    ck_assert(req.done && req.status == 0);
}

static const char *cx_get(unsigned i, const char *key, int64_t *expire)
{
    static char val[256];
    cache_entry_t *e = cache_ks_find(cache_server_ks(cx_srv[i]), key, strlen(key), 0, 0);

    if (e == NULL)
        return NULL;
    ck_assert_uint_lt(e->vlen, sizeof(val));
    memcpy(val, ent_val(e), e->vlen);
    val[e->vlen] = '\0';
    if (expire != NULL)
        *expire = ent_expire(e);
    return val;
}

static unsigned cx_leader(void)
{
    ck_assert(raft_fixture_step_until_has_leader(&cx, 10000));
    return raft_fixture_leader_index(&cx);
}

static void cx_converge(unsigned leader)
{
    ck_assert(raft_fixture_step_until_applied(&cx, FX_N,
                                              raft_last_index(raft_fixture_get(&cx, leader)), 10000));
}

START_TEST(test_cache_fsm_replicates_deterministically)
{
    unsigned l = cx_leader();
    const char *b1[] = {"SET|a|1", "SET|ttl|x|PXAT|5000000", "INCR|n", "INCR|n", "HSET|h|f|v"};
    const char *b2[] = {"__expdel|ttl", "INCRBY|n|40", "DEL|a"};
    const char *b3[] = {"__expdel|ttl", "SET|b|2"};
    int64_t exp0, exp;

    cx_propose(l, 4000000, b1, 5);
    /* the leader's clock is in the batch: an expiry not yet due keeps the key */
    cx_propose(l, 4999999, b2, 3);
    cx_converge(l);
    for (unsigned i = 0; i < FX_N; i++) {
        ck_assert_ptr_null(cx_get(i, "a", NULL));
        ck_assert_str_eq(cx_get(i, "n", NULL), "42");
        ck_assert_str_eq(cx_get(i, "ttl", &exp), "x");
        if (i == 0)
            exp0 = exp;
        ck_assert_int_eq(exp, exp0);
        ck_assert_int_eq(exp, 5000000);
        ck_assert_uint_eq(cache_ks_size(cache_server_ks(cx_srv[i])), 3);
    }
    /* a replicated delete at the leader's later time removes it everywhere */
    cx_propose(l, 5000001, b3, 2);
    cx_converge(l);
    for (unsigned i = 0; i < FX_N; i++) {
        ck_assert_ptr_null(cx_get(i, "ttl", NULL));
        ck_assert_str_eq(cx_get(i, "b", NULL), "2");
    }
}
END_TEST

START_TEST(test_cache_fsm_snapshot_install)
{
    unsigned l = cx_leader(), f = (l + 1) % FX_N;
    char cmd[64], *p = cmd;
    const char *one[1];

    for (unsigned i = 0; i < FX_N; i++) {
        raft_set_snapshot_threshold(raft_fixture_get(&cx, i), 8);
        raft_set_snapshot_trailing(raft_fixture_get(&cx, i), 2);
    }
    raft_fixture_kill(&cx, f);
    one[0] = p;
    for (int i = 0; i < 40; i++) {
        snprintf(cmd, sizeof(cmd), "SET|key%d|value%d|PXAT|%d", i, i, 9000000 + i);
        cx_propose(l, 1000, one, 1);
    }
    ck_assert_uint_gt(cx_sm[l].snapshots_taken, 0);
    raft_fixture_revive(&cx, f);
    cx_converge(l);
    ck_assert_uint_gt(cx_sm[f].snapshots_restored, 0);
    for (int i = 0; i < 40; i++) {
        char key[32], want[32];
        int64_t exp;

        snprintf(key, sizeof(key), "key%d", i);
        snprintf(want, sizeof(want), "value%d", i);
        ck_assert_str_eq(cx_get(f, key, &exp), want);
        ck_assert_int_eq(exp, 9000000 + i);
    }
    ck_assert_uint_eq(cache_ks_size(cache_server_ks(cx_srv[f])),
                      cache_ks_size(cache_server_ks(cx_srv[l])));
}
END_TEST

/* ---- real nodes: raft_uv inside a libevent loop ------------------------ */

static char tmpdir[256];

static int rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static void uv_setup(void)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/oboro-test-raft-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void uv_teardown(void)
{
    if (getenv("KEEP") == NULL)
        nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static int free_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    port = ntohs(a.sin_port);
    close(fd);
    return port;
}

typedef struct node {
    cache_raft_t *r;
    cache_raft_conf_t conf;
    kv_t kv;
    cache_raft_fsm_t fsm;
    char dir[300], resp[64];
    int port;
} node_t;

static void node_conf(node_t *n, long long id, char *peers, int fork_mode)
{
    n->conf.node_id = id;
    n->conf.peers = peers;
    n->conf.snapshot_threshold = 4096;
    n->conf.snapshot_trailing = 16;
    n->conf.election_timeout = 200;
    n->conf.heartbeat_timeout = 20;
    n->conf.read_mode = CACHE_RAFT_READ_LINEARIZABLE;
    n->conf.snapshot_fork = fork_mode;
    n->conf.snapshot_log_bytes = 0;
}

static int node_start(node_t *n, struct event_base *base, int id)
{
    cache_raft_addr_t a;

    snprintf(n->dir, sizeof(n->dir), "%s/n%d", tmpdir, id);
    mkdir(n->dir, 0700);
    snprintf(n->resp, sizeof(n->resp), "127.0.0.1:%d", 16000 + id);
    if (n->port == 0)
        n->port = free_port();
    a.bind = "127.0.0.1";
    a.raft_port = n->port;
    a.dir = n->dir;
    a.resp_addr = n->resp;
    memset(&n->kv, 0, sizeof(n->kv));
    n->fsm = kv_fsm(&n->kv);
    return cache_raft_new(&n->r, base, &n->conf, &a, &n->fsm);
}

/* Run the loop until cond(arg) or about ms milliseconds passed. */
static int run_until(struct event_base *base, int (*cond)(void *), void *arg, int ms)
{
    uint64_t end = core_mono_ms() + (uint64_t)ms;
    struct timeval tick = {0, 5000};

    while (!cond(arg)) {
        if (core_mono_ms() > end)
            return 0;
        event_base_loopexit(base, &tick);
        event_base_loop(base, EVLOOP_ONCE);
    }
    return 1;
}

static int is_leader(void *arg)
{
    return cache_raft_is_leader(((node_t *)arg)->r);
}

typedef struct acks {
    int n, failed, order_ok, next;
} acks_t;

typedef struct ack {
    acks_t *all;
    int seq;
} ack_t;

static void ack_cb(void *arg, int status)
{
    ack_t *a = arg;

    if (status != 0) {
        a->all->failed++;
        return;
    }
    if (a->seq != a->all->next)
        a->all->order_ok = 0;
    a->all->next++;
    a->all->n++;
}

typedef struct want {
    acks_t *acks;
    int n;
} want_t;

static int acked(void *arg)
{
    want_t *w = arg;

    return w->acks->n + w->acks->failed >= w->n;
}

START_TEST(test_uv_single_node_group_commit_and_restart)
{
    struct event_base *base = event_base_new();
    static node_t n;
    static ack_t a[300];
    acks_t acks = {0, 0, 1, 0};
    want_t w = {&acks, 300};
    cache_raft_stats_t st;
    char cmd[64], red[128];

    memset(&n, 0, sizeof(n));
    node_conf(&n, 1, "", 0);
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    ck_assert(run_until(base, is_leader, &n, 5000));
    /* 100 proposals in one loop iteration: one log entry */
    for (int i = 0; i < 100; i++) {
        snprintf(cmd, sizeof(cmd), "k%d=v%d\n", i, i);
        a[i].all = &acks;
        a[i].seq = i;
        ck_assert_int_eq(cache_raft_propose(n.r, cmd, strlen(cmd), ack_cb, &a[i]), 0);
    }
    w.n = 100;
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert_int_eq(acks.failed, 0);
    ck_assert(acks.order_ok);
    cache_raft_stats(n.r, &st);
    ck_assert_uint_eq(st.batches_proposed, 1);
    ck_assert_uint_eq(n.kv.commands, 100);
    /* the done callbacks ran after apply: the state is there */
    ck_assert_str_eq(kv_get(&n.kv, "k99"), "v99");
    /* then 200 more over several iterations */
    for (int i = 100; i < 300; i++) {
        snprintf(cmd, sizeof(cmd), "k%d=v%d\n", i % 150, i);
        a[i].all = &acks;
        a[i].seq = i;
        ck_assert_int_eq(cache_raft_propose(n.r, cmd, strlen(cmd), ack_cb, &a[i]), 0);
        if (i % 50 == 0)
            event_base_loop(base, EVLOOP_NONBLOCK);
    }
    w.n = 300;
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert_int_eq(acks.failed, 0);
    ck_assert(acks.order_ok);
    ck_assert_uint_eq(n.kv.n, 150);
    ck_assert_uint_eq(cache_raft_redirect(n.r, red, sizeof(red)), strlen("CLUSTERDOWN No raft leader"));
    ck_assert_str_eq(cache_raft_leader(n.r), "127.0.0.1:16001");

    /* restart: the log replays into a fresh keyspace */
    cache_raft_free(&n.r);
    ck_assert_ptr_null(n.r);
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    ck_assert(run_until(base, is_leader, &n, 5000));
    a[0].all = &acks;
    a[0].seq = acks.next;
    ck_assert_int_eq(cache_raft_propose(n.r, "after=1\n", 8, ack_cb, &a[0]), 0);
    w.n = 301;
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert_uint_eq(n.kv.n, 151);
    ck_assert_str_eq(kv_get(&n.kv, "k10"), "v160");
    ck_assert_str_eq(kv_get(&n.kv, "k149"), "v299");
    cache_raft_free(&n.r);
    event_base_free(base);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_LOG), 0);
}
END_TEST

/* Proposals of many loop iterations while appends are in flight: they are
 * merged into fewer entries (one per disk write), every done callback
 * still fires once, in proposal order, after its state is applied; on an
 * idle log a proposal becomes an entry in its own iteration. */
START_TEST(test_uv_group_commit_across_iterations)
{
    struct event_base *base = event_base_new();
    static node_t n;
    static ack_t a[400];
    acks_t acks = {0, 0, 1, 0};
    want_t w = {&acks, 400};
    cache_raft_stats_t st0, st;
    char cmd[64];
    int iters = 0;

    memset(&n, 0, sizeof(n));
    node_conf(&n, 1, "", 0);
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    ck_assert(run_until(base, is_leader, &n, 5000));
    /* wait until the leader's own first entry is on disk: the log is idle */
    event_base_loop(base, EVLOOP_NONBLOCK);
    a[0].all = &acks;
    a[0].seq = 0;
    ck_assert_int_eq(cache_raft_propose(n.r, "first=1\n", 8, ack_cb, &a[0]), 0);
    w.n = 1;
    ck_assert(run_until(base, acked, &w, 5000));
    /* idle: the next proposal is an entry at the end of its iteration */
    cache_raft_stats(n.r, &st0);
    a[1].all = &acks;
    a[1].seq = 1;
    ck_assert_int_eq(cache_raft_propose(n.r, "second=1\n", 9, ack_cb, &a[1]), 0);
    event_base_loop(base, EVLOOP_NONBLOCK);
    cache_raft_stats(n.r, &st);
    ck_assert_uint_eq(st.batches_proposed, st0.batches_proposed + 1);
    /* 398 proposals over 199 iterations, two per iteration, without
     * waiting for the disk between iterations */
    for (int i = 2; i < 400; i++) {
        snprintf(cmd, sizeof(cmd), "k%d=v%d\n", i % 300, i);
        a[i].all = &acks;
        a[i].seq = i;
        ck_assert_int_eq(cache_raft_propose(n.r, cmd, strlen(cmd), ack_cb, &a[i]), 0);
        if (i % 2 == 1) {
            event_base_loop(base, EVLOOP_NONBLOCK);
            iters++;
        }
    }
    w.n = 400;
    ck_assert(run_until(base, acked, &w, 10000));
    ck_assert_int_eq(acks.failed, 0);
    ck_assert(acks.order_ok);
    cache_raft_stats(n.r, &st);
    ck_assert_uint_eq(st.commands_proposed - st0.commands_proposed, 399);
    ck_assert_uint_eq(n.kv.commands, 400);
    ck_assert_str_eq(kv_get(&n.kv, "k99"), "v399");
    ck_assert_str_eq(kv_get(&n.kv, "k100"), "v100");
    /* merged: an entry per iteration would be 199 (+1 for "second"); a
     * disk write takes far longer than a non-blocking loop turn, so most
     * iterations found an append in flight and joined the next entry */
    ck_assert_uint_lt(st.batches_proposed - st0.batches_proposed, (uint64_t)iters / 2);
    cache_raft_free(&n.r);
    event_base_free(base);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_LOG), 0);
}
END_TEST

static int snapshotted(void *arg)
{
    cache_raft_stats_t st;

    cache_raft_stats(((node_t *)arg)->r, &st);
    return st.snapshots_taken > 0;
}

START_TEST(test_uv_fork_snapshot_and_restore)
{
    struct event_base *base = event_base_new();
    static node_t n;
    static ack_t a[64];
    acks_t acks = {0, 0, 1, 0};
    want_t w = {&acks, 0};
    cache_raft_stats_t st;
    char cmd[64];

    memset(&n, 0, sizeof(n));
    node_conf(&n, 1, "", 1);
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    ck_assert(run_until(base, is_leader, &n, 5000));
    for (int i = 0; i < 40; i++) {
        snprintf(cmd, sizeof(cmd), "s%d=%d\n", i, i);
        a[i].all = &acks;
        a[i].seq = i;
        ck_assert_int_eq(cache_raft_propose(n.r, cmd, strlen(cmd), ack_cb, &a[i]), 0);
        w.n = i + 1;
        ck_assert(run_until(base, acked, &w, 5000));
        if (i == 30)
            cache_raft_snapshot_now(n.r);
    }
    /* libraft retries the snapshot on each applied entry: keep writing
     * until the child's image is in */
    for (int i = 0; i == 0 || !snapshotted(&n); i++) {
        ck_assert_int_lt(i, 500);
        a[40].all = &acks;
        a[40].seq = acks.next;
        ck_assert_int_eq(cache_raft_propose(n.r, "tick=1\n", 7, ack_cb, &a[40]), 0);
        w.n = acks.n + 1;
        ck_assert(run_until(base, acked, &w, 5000));
        if (!snapshotted(&n))
            usleep(10000);
    }
    cache_raft_free(&n.r);

    /* restart: the snapshot restores, the entries after it replay */
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    cache_raft_stats(n.r, &st);
    ck_assert_uint_eq(st.snapshots_restored, 1);
    ck_assert(run_until(base, is_leader, &n, 5000));
    a[0].seq = acks.next;
    ck_assert_int_eq(cache_raft_propose(n.r, "z=1\n", 4, ack_cb, &a[0]), 0);
    w.n = acks.n + 1;
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert_int_eq(acks.failed, 0);
    ck_assert_uint_eq(n.kv.n, 42);
    ck_assert_str_eq(kv_get(&n.kv, "tick"), "1");
    ck_assert_str_eq(kv_get(&n.kv, "s39"), "39");
    ck_assert_str_eq(kv_get(&n.kv, "s0"), "0");
    cache_raft_free(&n.r);
    event_base_free(base);
}
END_TEST

START_TEST(test_uv_log_budget_snapshot_without_writes)
{
    struct event_base *base = event_base_new();
    static node_t n;
    static ack_t a[256];
    acks_t acks = {0, 0, 1, 0};
    want_t w = {&acks, 0};
    char cmd[128];

    memset(&n, 0, sizeof(n));
    node_conf(&n, 1, "", 1);
    n.conf.snapshot_log_bytes = 2048; /* the toy keyspace reports 0 bytes */
    ck_assert_int_eq(node_start(&n, base, 1), 0);
    ck_assert(run_until(base, is_leader, &n, 5000));
    /* write until the budget asks for a snapshot, then stop */
    for (int i = 0;; i++) {
        cache_raft_stats_t st;

        ck_assert_int_lt(i, 200);
        snprintf(cmd, sizeof(cmd), "budget%d=%020d\n", i % 8, i);
        a[i].all = &acks;
        a[i].seq = i;
        ck_assert_int_eq(cache_raft_propose(n.r, cmd, strlen(cmd), ack_cb, &a[i]), 0);
        w.n = i + 1;
        ck_assert(run_until(base, acked, &w, 5000));
        cache_raft_stats(n.r, &st);
        if (st.snapshot_pending)
            break;
    }
    ck_assert(!snapshotted(&n));
    /* no more writes: the forked image still lands (the leader appends a
     * barrier once it is ready) */
    ck_assert(run_until(base, snapshotted, &n, 10000));
    ck_assert_int_eq(acks.failed, 0);
    cache_raft_free(&n.r);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RAFT_SNAP), 0);
    event_base_free(base);
}
END_TEST

static node_t grp[3];

static int group_has_leader(void *arg)
{
    int *out = arg;

    for (int i = 0; i < 3; i++)
        if (grp[i].r != NULL && cache_raft_is_leader(grp[i].r)) {
            *out = i;
            return 1;
        }
    return 0;
}

typedef struct conv {
    int skip;
    const char *key, *val;
} conv_t;

static int group_converged(void *arg)
{
    conv_t *c = arg;

    for (int i = 0; i < 3; i++) {
        const char *v;

        if (i == c->skip || grp[i].r == NULL)
            continue;
        v = kv_get(&grp[i].kv, c->key);
        if (v == NULL || strcmp(v, c->val) != 0)
            return 0;
    }
    return 1;
}

static int follower_knows_leader(void *arg)
{
    int i = *(int *)arg;

    return cache_raft_leader(grp[i].r) != NULL;
}

static void reply_cb(void *arg, int status)
{
    int *out = arg;

    *out = status == 0 ? 1 : -1;
}

static int flag_set(void *arg)
{
    return *(int *)arg != 0;
}

START_TEST(test_uv_three_nodes)
{
    struct event_base *base = event_base_new();
    static char peers[256];
    static ack_t a[4];
    acks_t acks = {0, 0, 1, 0};
    want_t w = {&acks, 1};
    conv_t c = {-1, "x", "1"};
    int l = -1, l2 = -1, f, done = 0;
    char red[128], expect[128];
    struct evbuffer *info = evbuffer_new();

    memset(grp, 0, sizeof(grp));
    for (int i = 0; i < 3; i++)
        grp[i].port = free_port();
    snprintf(peers, sizeof(peers), "1=127.0.0.1:%d,2=127.0.0.1:%d,3=127.0.0.1:%d", grp[0].port,
             grp[1].port, grp[2].port);
    for (int i = 0; i < 3; i++) {
        node_conf(&grp[i], i + 1, peers, 0);
        ck_assert_int_eq(node_start(&grp[i], base, i + 1), 0);
    }
    ck_assert(run_until(base, group_has_leader, &l, 10000));
    a[0].all = &acks;
    a[0].seq = 0;
    ck_assert_int_eq(cache_raft_propose(grp[l].r, "x=1\n", 4, ack_cb, &a[0]), 0);
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert(run_until(base, group_converged, &c, 5000));

    /* a follower proposes nothing and points at the leader's RESP port */
    f = (l + 1) % 3;
    ck_assert_int_eq(cache_raft_propose(grp[f].r, "y=1\n", 4, ack_cb, &a[1]), -ENOTCONN);
    ck_assert_int_eq(cache_raft_barrier(grp[f].r, reply_cb, &done), -ENOTCONN);
    ck_assert(run_until(base, follower_knows_leader, &f, 5000));
    cache_raft_redirect(grp[f].r, red, sizeof(red));
    snprintf(expect, sizeof(expect), "MOVED 0 %s", grp[l].resp);
    ck_assert_str_eq(red, expect);

    /* a linearizable read waits for its barrier */
    ck_assert_int_eq(cache_raft_barrier(grp[l].r, reply_cb, &done), 0);
    ck_assert(run_until(base, flag_set, &done, 5000));
    ck_assert_int_eq(done, 1);

    /* INFO lists every node with its match index on the leader */
    ck_assert_int_eq(cache_raft_info(grp[l].r, info), 0);
    evbuffer_add(info, "", 1);
    ck_assert_ptr_nonnull(strstr((char *)evbuffer_pullup(info, -1), "raft_role:leader"));
    ck_assert_ptr_nonnull(strstr((char *)evbuffer_pullup(info, -1), "raft_node2:id="));
    ck_assert_ptr_nonnull(strstr((char *)evbuffer_pullup(info, -1), "match_index="));

    /* leadership transfer */
    done = 0;
    ck_assert_int_eq(cache_raft_transfer(grp[l].r, 0, reply_cb, &done), 0);
    ck_assert(run_until(base, flag_set, &done, 5000));
    ck_assert_int_eq(done, 1);
    ck_assert(run_until(base, group_has_leader, &l2, 5000));

    /* the leader dies: the other two elect one and keep writing */
    cache_raft_free(&grp[l2].r);
    c.skip = l2;
    l = -1;
    ck_assert(run_until(base, group_has_leader, &l, 10000));
    ck_assert_int_ne(l, l2);
    a[2].all = &acks;
    a[2].seq = 1;
    ck_assert_int_eq(cache_raft_propose(grp[l].r, "x=2\n", 4, ack_cb, &a[2]), 0);
    w.n = 2;
    ck_assert(run_until(base, acked, &w, 5000));
    ck_assert_int_eq(acks.failed, 0);
    c.val = "2";
    ck_assert(run_until(base, group_converged, &c, 5000));

    /* it comes back and catches up */
    ck_assert_int_eq(node_start(&grp[l2], base, l2 + 1), 0);
    c.skip = -1;
    ck_assert(run_until(base, group_converged, &c, 10000));

    for (int i = 0; i < 3; i++)
        cache_raft_free(&grp[i].r);
    evbuffer_free(info);
    event_base_free(base);
}
END_TEST

static Suite *raft_suite(void)
{
    Suite *s = suite_create("cache/raft");
    TCase *tc;

    tc = tcase_create("peers");
    tcase_add_test(tc, test_peers_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("batch");
    tcase_add_test(tc, test_batch_hold_table);
    suite_add_tcase(s, tc);

    tc = tcase_create("snapshot");
    tcase_add_test(tc, test_snapshot_roundtrip);
    tcase_add_test(tc, test_snapshot_corruption);
    tcase_add_test(tc, test_apply_unknown_kinds);
    suite_add_tcase(s, tc);

    tc = tcase_create("fixture");
    tcase_add_checked_fixture(tc, fx_setup, fx_teardown);
    tcase_add_test(tc, test_fixture_replicates);
    tcase_add_test(tc, test_fixture_leader_partition);
    tcase_add_test(tc, test_fixture_kill_revive_disk_latency);
    tcase_add_test(tc, test_fixture_snapshot_install);
    suite_add_tcase(s, tc);

    tc = tcase_create("cache_fsm");
    tcase_add_checked_fixture(tc, cx_setup, cx_teardown);
    tcase_add_test(tc, test_cache_fsm_replicates_deterministically);
    tcase_add_test(tc, test_cache_fsm_snapshot_install);
    suite_add_tcase(s, tc);

    tc = tcase_create("uv");
    tcase_set_timeout(tc, 60);
    tcase_add_checked_fixture(tc, uv_setup, uv_teardown);
    tcase_add_test(tc, test_uv_single_node_group_commit_and_restart);
    tcase_add_test(tc, test_uv_group_commit_across_iterations);
    tcase_add_test(tc, test_uv_fork_snapshot_and_restore);
    tcase_add_test(tc, test_uv_log_budget_snapshot_without_writes);
    tcase_add_test(tc, test_uv_three_nodes);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(raft_suite());
    int failed;

    signal(SIGPIPE, SIG_IGN); /* as oborod does: peers hang up */

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
