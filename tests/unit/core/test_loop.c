/* Unit tests for core/loop: listeners, timers, shutdown hooks, signals. */
#include "core/loop.h"

#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

static int ticks, hooks_run;
static core_loop_t *loop;

static void tick(void *arg)
{
    if (++ticks == 3)
        core_loop_shutdown(arg);
}

static void hook(void *arg)
{
    hooks_run = hooks_run * 10 + *(int *)arg;
}

START_TEST(listen_and_busy)
{
    int port = 0, port2 = -1;
    int fd = core_listen_tcp("127.0.0.1", 0, 16, &port);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_gt(port, 0);
    ck_assert_int_eq(core_listen_tcp("127.0.0.1", port, 16, &port2), -EADDRINUSE);
    ck_assert_int_eq(port2, -1);
    close(fd);
    ck_assert_int_eq(core_listen_tcp("no.such.host.invalid", 0, 16, NULL), -EADDRNOTAVAIL);
}
END_TEST

START_TEST(timer_and_shutdown_hooks)
{
    int one = 1, two = 2;

    loop = core_loop_new();
    ck_assert_ptr_nonnull(loop);
    ticks = hooks_run = 0;
    ck_assert_int_eq(core_loop_on_shutdown(loop, hook, &one), 0);
    ck_assert_int_eq(core_loop_on_shutdown(loop, hook, &two), 0);
    ck_assert_int_eq(core_loop_every(loop, 5, tick, loop), 0);
    ck_assert_int_eq(core_loop_run(loop), 0);
    ck_assert_int_ge(ticks, 3);
    ck_assert(core_loop_stopping(loop));
    /* reverse order of registration */
    ck_assert_int_eq(hooks_run, 21);
    core_loop_free(&loop);
    ck_assert_ptr_null(loop);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CORE), 0);
}
END_TEST

static void send_term(void *arg)
{
    if (++ticks == 2)
        kill(getpid(), SIGTERM);
}

START_TEST(sigterm_stops_loop)
{
    int one = 1;

    loop = core_loop_new();
    ticks = hooks_run = 0;
    core_loop_on_shutdown(loop, hook, &one);
    core_loop_every(loop, 5, send_term, NULL);
    ck_assert_int_eq(core_loop_run(loop), 0);
    ck_assert_int_eq(hooks_run, 1);
    core_loop_free(&loop);
}
END_TEST

START_TEST(clocks)
{
    uint64_t a = core_mono_us(), b;

    usleep(2000);
    b = core_mono_us();
    ck_assert_uint_ge(b - a, 2000);
    ck_assert_uint_gt(core_wall_ms(), 1600000000000ULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/loop");
    TCase *tc = tcase_create("loop");
    SRunner *sr;
    int failed;

    tcase_add_test(tc, listen_and_busy);
    tcase_add_test(tc, timer_and_shutdown_hooks);
    tcase_add_test(tc, sigterm_stops_loop);
    tcase_add_test(tc, clocks);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
