/* Unit tests for the replicated write path (cache/log.h): a batch encoded
 * as documented is applied deterministically (two servers fed the same
 * batches end with byte-identical snapshots), uses the batch's timestamp
 * for expiry (replicated __expdel), ignores batches that are malformed,
 * and a replacement log sees every write a client sends. */
#include "cache/cache_int.h"
#include "core/loop.h"

#include <check.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

static core_loop_t *loop;
static cache_conf_t conf = {100, 0, "", 512 << 20, 64 << 20};

static cache_server_t *server(void)
{
    cache_server_t *s = NULL;
    int fd = core_listen_tcp("127.0.0.1", 0, 16, NULL);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(cache_server_new(&s, loop, fd, &conf, NULL), 0);
    return s;
}

typedef struct bb {
    char buf[4096];
    size_t len;
    uint32_t count;
} bb_t;

static void bb_start(bb_t *b, uint64_t now)
{
    uint32_t magic = 0x3142424fu;
    uint64_t origin = 42, seq = 1;

    memset(b, 0, sizeof(*b));
    memcpy(b->buf, &magic, 4);
    memcpy(b->buf + 8, &origin, 8);
    memcpy(b->buf + 16, &seq, 8);
    memcpy(b->buf + 24, &now, 8);
    b->len = 32;
}

static void bb_cmd(bb_t *b, const char *line)
{
    char tmp[256], *save = NULL, *tok;
    const char *args[16];
    uint32_t argc = 0;

    snprintf(tmp, sizeof(tmp), "%s", line);
    for (tok = strtok_r(tmp, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save))
        args[argc++] = tok;
    memcpy(b->buf + b->len, &argc, 4);
    b->len += 4;
    for (uint32_t i = 0; i < argc; i++) {
        uint32_t l = (uint32_t)strlen(args[i]);

        memcpy(b->buf + b->len, &l, 4);
        memcpy(b->buf + b->len + 4, args[i], l);
        b->len += 4 + l;
    }
    b->count++;
    memcpy(b->buf + 4, &b->count, 4);
}

static void setup(void)
{
    loop = core_loop_new();
    ck_assert_ptr_nonnull(loop);
}

static void teardown(void)
{
    core_loop_free(&loop);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_KEYS), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CACHE_VALUES), 0);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_RESP_CONN), 0);
}

static size_t snap(cache_server_t *s, uint64_t now, unsigned char *out, size_t cap)
{
    struct evbuffer *b = evbuffer_new();
    size_t n;

    ck_assert_int_eq(cache_ks_snapshot(cache_server_ks(s), b, now), 0);
    n = evbuffer_get_length(b);
    ck_assert_uint_le(n, cap);
    evbuffer_remove(b, out, n);
    evbuffer_free(b);
    return n;
}

START_TEST(test_deterministic)
{
    cache_server_t *a = server(), *b = server();
    static unsigned char sa[32768], sb[32768];
    bb_t batch;
    size_t na, nb;
    cache_entry_t *e;

    bb_start(&batch, 1000);
    bb_cmd(&batch, "SET a 1");
    bb_cmd(&batch, "INCRBY a 41");
    bb_cmd(&batch, "SET b v PXAT 1500");
    bb_cmd(&batch, "__expdel b");                 /* not expired at 1000: kept */
    bb_cmd(&batch, "ZADD z 1 m 2 n");
    bb_cmd(&batch, "ZINCRBY z 5 m");
    bb_cmd(&batch, "HSET h f v g w");
    bb_cmd(&batch, "PFADD u x y z");
    bb_cmd(&batch, "GET a");                      /* not a write: refused */
    cache_apply_batch(a, batch.buf, batch.len, 1);
    cache_apply_batch(b, batch.buf, batch.len, 1);
    ck_assert_uint_eq(cache_ks_size(cache_server_ks(a)), 5);
    /* lookups advance incremental rehashing, which orders the snapshot:
     * treat both servers alike */
    for (int i = 0; i < 2; i++) {
        e = cache_ks_find(cache_server_ks(i ? b : a), "a", 1, 1000, 0);
        ck_assert(e != NULL && e->vlen == 2 && memcmp(ent_val(e), "42", 2) == 0);
    }
    na = snap(a, 1000, sa, sizeof(sa));
    nb = snap(b, 1000, sb, sizeof(sb));
    ck_assert_uint_eq(na, nb);
    for (size_t i = 0; i < na; i++)
        ck_assert_msg(sa[i] == sb[i], "snapshots differ at byte %zu of %zu", i, na);
    /* a later batch: b's expiry has passed at its timestamp */
    bb_start(&batch, 2000);
    bb_cmd(&batch, "__expdel b");
    bb_cmd(&batch, "__expdel a");                 /* no expiry: kept */
    cache_apply_batch(a, batch.buf, batch.len, 2);
    ck_assert_uint_eq(cache_ks_size(cache_server_ks(a)), 4);
    ck_assert_ptr_null(cache_ks_find(cache_server_ks(a), "b", 1, 0, 0));
    ck_assert_uint_eq(cache_server_last_index(a), 2);
    cache_server_free(&a);
    cache_server_free(&b);
}
END_TEST

START_TEST(test_malformed)
{
    cache_server_t *a = server();
    bb_t batch;

    bb_start(&batch, 1000);
    bb_cmd(&batch, "SET a 1");
    bb_cmd(&batch, "SET b 2");
    for (size_t cut = 0; cut < batch.len; cut++)
        cache_apply_batch(a, batch.buf, cut, 1);
    /* truncated batches may apply a prefix of whole commands, never a
     * partial one */
    ck_assert_uint_le(cache_ks_size(cache_server_ks(a)), 1);
    batch.buf[0] ^= 1;
    cache_ks_clear(cache_server_ks(a));
    cache_apply_batch(a, batch.buf, batch.len, 1);
    ck_assert_uint_eq(cache_ks_size(cache_server_ks(a)), 0);
    cache_server_free(&a);
}
END_TEST

/* A log that records proposals and applies them like the local one. */
static int proposals;
static size_t proposed_cmds;
static cache_server_t *rec_srv;

static int rec_propose(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg)
{
    uint32_t count;

    memcpy(&count, (const char *)buf + 4, 4);
    proposals++;
    proposed_cmds += count;
    cache_apply_batch(rec_srv, buf, len, (uint64_t)proposals);
    done(arg, 0);
    return 0;
}

static int rec_leader(void *impl)
{
    return 1;
}

static const char *rec_leader_addr(void *impl)
{
    return NULL;
}

static void rec_info(void *impl, struct evbuffer *out)
{
    evbuffer_add_printf(out, "raft_role:test\r\n");
}

static const cache_log_ops_t rec_ops = {rec_propose, rec_leader, rec_leader_addr, rec_info};

static void quit_cb(evutil_socket_t fd, short what, void *arg)
{
    event_base_loopbreak(core_loop_base(loop));
}

START_TEST(test_group_commit)
{
    int port = 0, fd = core_listen_tcp("127.0.0.1", 0, 16, &port);
    cache_server_t *s = NULL;
    struct sockaddr_in sa = {0};
    int c = socket(AF_INET, SOCK_STREAM, 0);
    const char req[] = "SET a 1\r\nINCR a\r\nGET a\r\nSET b x EX 100\r\nTTL b\r\nINFO raft\r\n";
    const char want[] = "+OK\r\n:2\r\n$1\r\n2\r\n+OK\r\n:100\r\n$24\r\n# Raft\r\nraft_role:test\r\n\r\n";
    char got[256];
    size_t n = 0;
    struct event *t;
    struct timeval tv = {0, 20000};

    ck_assert_int_eq(cache_server_new(&s, loop, fd, &conf, NULL), 0);
    rec_srv = s;
    cache_server_set_log(s, &rec_ops, NULL);
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(write(c, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    t = evtimer_new(core_loop_base(loop), quit_cb, NULL);
    while (n < sizeof(want) - 1) {
        ssize_t r;

        evtimer_add(t, &tv);
        event_base_dispatch(core_loop_base(loop));
        r = recv(c, got + n, sizeof(got) - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
    }
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(got, want, n) == 0);
    /* the three writes went through the log, the reads did not; pipelined
     * writes share a batch up to the first read that waits for them */
    ck_assert_uint_eq(proposed_cmds, 3);
    ck_assert_int_eq(proposals, 2);
    event_free(t);
    close(c);
    cache_server_free(&s);
}
END_TEST

/* A log that commits later, from a timer, as Raft would. */
typedef struct pending {
    char buf[4096];
    size_t len;
    cache_log_done_cb done;
    void *arg;
} pending_t;

static pending_t pend[16];
static int npend;
static struct event *commit_ev;

static void commit_cb(evutil_socket_t fd, short what, void *arg)
{
    for (int i = 0; i < npend; i++) {
        cache_apply_batch(rec_srv, pend[i].buf, pend[i].len, (uint64_t)i + 1);
        pend[i].done(pend[i].arg, 0);
    }
    npend = 0;
}

static int late_propose(void *impl, const void *buf, size_t len, cache_log_done_cb done, void *arg)
{
    struct timeval tv = {0, 10000};

    if (npend == 16 || len > sizeof(pend[0].buf))
        return -EAGAIN;
    memcpy(pend[npend].buf, buf, len);
    pend[npend].len = len;
    pend[npend].done = done;
    pend[npend].arg = arg;
    npend++;
    evtimer_add(commit_ev, &tv);
    return 0;
}

static const cache_log_ops_t late_ops = {late_propose, rec_leader, rec_leader_addr, NULL};

static int connect_to(int port)
{
    struct sockaddr_in sa = {0};
    int c = socket(AF_INET, SOCK_STREAM, 0);

    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(0x7f000001);
    ck_assert_int_eq(connect(c, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return c;
}

static void spin(int ms)
{
    struct event *t = evtimer_new(core_loop_base(loop), quit_cb, NULL);
    struct timeval tv = {0, ms * 1000};

    evtimer_add(t, &tv);
    event_base_dispatch(core_loop_base(loop));
    event_free(t);
}

START_TEST(test_async_log)
{
    int port = 0, fd = core_listen_tcp("127.0.0.1", 0, 16, &port);
    cache_server_t *s = NULL;
    const char req[] = "SET a 1\r\nINCR a\r\nGET a\r\nDEL nokey\r\n";
    const char want[] = "+OK\r\n:2\r\n$1\r\n2\r\n:0\r\n";
    char got[256];
    size_t n = 0;
    int c1, c2;

    ck_assert_int_eq(cache_server_new(&s, loop, fd, &conf, NULL), 0);
    rec_srv = s;
    commit_ev = evtimer_new(core_loop_base(loop), commit_cb, NULL);
    cache_server_set_log(s, &late_ops, NULL);
    /* a client that leaves before its writes commit */
    c1 = connect_to(port);
    ck_assert_int_eq(write(c1, "SET gone 1\r\nSET gone2 2\r\n", 26), 26);
    spin(2);
    close(c1);
    /* a client whose read waits for its earlier writes */
    c2 = connect_to(port);
    ck_assert_int_eq(write(c2, req, sizeof(req) - 1), (ssize_t)sizeof(req) - 1);
    for (int k = 0; k < 100 && n < sizeof(want) - 1; k++) {
        ssize_t r;

        spin(5);
        r = recv(c2, got + n, sizeof(got) - n, MSG_DONTWAIT);
        if (r > 0)
            n += (size_t)r;
    }
    ck_assert_uint_eq(n, sizeof(want) - 1);
    ck_assert(memcmp(got, want, n) == 0);
    ck_assert_ptr_nonnull(cache_ks_find(cache_server_ks(s), "gone2", 5, 0, 0));
    close(c2);
    spin(20);
    cache_server_free(&s);
    event_free(commit_ev);
}
END_TEST

static Suite *apply_suite(void)
{
    Suite *s = suite_create("apply");
    TCase *tc = tcase_create("batches");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_deterministic);
    tcase_add_test(tc, test_malformed);
    tcase_add_test(tc, test_group_commit);
    tcase_add_test(tc, test_async_log);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(apply_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
