/* Unit tests for core/http: routing and limits, with a blocking client in
 * a thread against the server on the loop. */
#include "core/http.h"

#include "core/arena.h"
#include "core/loop.h"

#include <arpa/inet.h>
#include <check.h>
#include <event2/event.h>
#include <event2/http.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port;
static _Atomic int done;
static char replies[4][4096];
static const char *requests[5];

static void exact_cb(struct evhttp_request *req, const char *path, void *arg)
{
    core_http_reply(req, 200, "text/plain", "exact", 5);
}

static void prefix_cb(struct evhttp_request *req, const char *path, void *arg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), "%s:%s", (const char *)arg, path);

    core_http_reply(req, 200, "text/plain", body, (size_t)n);
}

static void *client(void *arg)
{
    for (int i = 0; requests[i] != NULL; i++) {
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        size_t off = 0;
        ssize_t n;

        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
            break;
        n = write(fd, requests[i], strlen(requests[i]));
        (void)n;
        while (off < sizeof(replies[i]) - 1 &&
               (n = read(fd, replies[i] + off, sizeof(replies[i]) - 1 - off)) > 0)
            off += (size_t)n;
        replies[i][off] = '\0';
        close(fd);
    }
    atomic_store(&done, 1);
    return NULL;
}

static void poll_done(void *arg)
{
    if (atomic_load(&done))
        core_loop_shutdown(arg);
}

START_TEST(routes_and_limits)
{
    core_loop_t *loop = core_loop_new();
    int fd = core_listen_tcp("127.0.0.1", 0, 16, &port);
    core_http_t *h = core_http_new(core_loop_base(loop), fd);
    static char big[12000];
    pthread_t th;

    memset(big, 'a', sizeof(big) - 1);
    memcpy(big, "GET /x HTTP/1.0\r\nX-Big: ", 24);
    memcpy(big + sizeof(big) - 5, "\r\n\r\n", 4);
    requests[0] = "GET /healthz HTTP/1.0\r\n\r\n";
    requests[1] = "GET /live/abc.flv?x=1 HTTP/1.0\r\n\r\n";
    requests[2] = "GET /missing HTTP/1.0\r\n\r\n";
    requests[3] = big;
    ck_assert_ptr_nonnull(h);
    ck_assert_int_eq(core_http_route(h, "/healthz", exact_cb, NULL), 0);
    ck_assert_int_eq(core_http_route(h, "/", prefix_cb, "root"), 0);
    ck_assert_int_eq(core_http_route(h, "/live/", prefix_cb, "live"), 0);
    ck_assert_int_eq(core_http_route(h, "/missing/", prefix_cb, "no"), 0);
    done = 0;
    pthread_create(&th, NULL, client, NULL);
    core_loop_every(loop, 5, poll_done, loop);
    core_loop_run(loop);
    pthread_join(th, NULL);

    ck_assert_ptr_nonnull(strstr(replies[0], "200 OK"));
    ck_assert_ptr_nonnull(strstr(replies[0], "\r\n\r\nexact"));
    /* longest prefix wins, query string is not part of the path */
    ck_assert_ptr_nonnull(strstr(replies[1], "\r\n\r\nlive:/live/abc.flv"));
    /* "/missing/" does not match "/missing"; "/" does */
    ck_assert_ptr_nonnull(strstr(replies[2], "\r\n\r\nroot:/missing"));
    /* headers over the limit are refused, not served */
    ck_assert_ptr_null(strstr(replies[3], "200 OK"));

    core_http_free(&h);
    core_loop_free(&loop);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_HTTP), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/http");
    TCase *tc = tcase_create("routes");
    SRunner *sr;
    int failed;

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, routes_and_limits);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
