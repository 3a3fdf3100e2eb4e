/* Unit tests for core/log: format, levels, escaping, reopen. */
#include "core/log.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

static void setup(void)
{
    int fd;

    strcpy(path, "/tmp/oboro-log-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    ck_assert_int_eq(core_log_open(path), 0);
    core_log_set_level(CORE_LOG_INFO);
}

static void teardown(void)
{
    core_log_open(NULL);
    unlink(path);
}

static char *slurp(void)
{
    static char buf[8192];
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);

    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(line_format)
{
    char *out;

    core_log_info("rtmp", "publish", "stream=%s port=%d", "abc", 1935);
    out = slurp();
    /* 2026-11-22T18:30:00.123Z level=info sub=rtmp msg="publish" stream=abc port=1935 */
    ck_assert_int_eq(out[4], '-');
    ck_assert_int_eq(out[10], 'T');
    ck_assert_int_eq(out[23], 'Z');
    ck_assert_str_eq(out + 24, " level=info sub=rtmp msg=\"publish\" stream=abc port=1935\n");
}
END_TEST

START_TEST(levels_filter)
{
    core_log_set_level(CORE_LOG_WARN);
    core_log_info("x", "dropped", NULL);
    core_log_debug("x", "dropped", "%d", 1);
    core_log_error("x", "kept", NULL);
    ck_assert_ptr_null(strstr(slurp(), "dropped"));
    ck_assert_ptr_nonnull(strstr(slurp(), "level=error sub=x msg=\"kept\"\n"));
    ck_assert_int_eq(core_log_level_parse("warning"), CORE_LOG_WARN);
    ck_assert_int_eq(core_log_level_parse("verbose"), CORE_LOG_DEBUG);
    ck_assert_int_eq(core_log_level_parse("loud"), -EINVAL);
}
END_TEST

START_TEST(escapes_peer_text)
{
    char *out;

    core_log_info("x", "bad \"name\"\nlevel=error", "f=%s", "a\nb");
    out = slurp();
    ck_assert_ptr_nonnull(strstr(out, "msg=\"bad \\\"name\\\"\\x0alevel=error\""));
    ck_assert_ptr_nonnull(strstr(out, "f=a b\n"));
    ck_assert_int_eq(strchr(out, '\n') - out, (long)strlen(out) - 1);
}
END_TEST

START_TEST(reopen_after_rotation)
{
    char rotated[80];

    snprintf(rotated, sizeof(rotated), "%s.1", path);
    core_log_info("x", "before", NULL);
    ck_assert_int_eq(rename(path, rotated), 0);
    ck_assert_int_eq(core_log_reopen(), 0);
    core_log_info("x", "after", NULL);
    ck_assert_ptr_nonnull(strstr(slurp(), "after"));
    ck_assert_ptr_null(strstr(slurp(), "before"));
    unlink(rotated);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/log");
    TCase *tc = tcase_create("lines");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, line_format);
    tcase_add_test(tc, levels_filter);
    tcase_add_test(tc, escapes_peer_text);
    tcase_add_test(tc, reopen_after_rotation);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
