/* Unit tests for core/conf. */
#include "core/conf.h"

#include "core/arena.h"

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char *s_name;
static long long i_port, i_size;
static int b_flag, e_level;
static const char *const levels[] = {"debug", "info", "warning", NULL};
static core_conf_def_t defs[] = {
    {"name", CORE_CONF_STR, "oboro", "a string", &s_name, 0, 0, NULL, 0, NULL, NULL},
    {"port", CORE_CONF_INT, "6379", "a port", &i_port, 0, 65535, NULL, 0, NULL, NULL},
    {"limit", CORE_CONF_SIZE, "64mb", "a size", &i_size, 0, 0, NULL, 0, NULL, NULL},
    {"flag", CORE_CONF_BOOL, "no", "a bool", &b_flag, 0, 0, NULL, 0, NULL, NULL},
    {"level", CORE_CONF_ENUM, "info", "an enum", &e_level, 0, 0, levels, 0, NULL, NULL},
};
static core_conf_t *conf;

static void setup(void)
{
    conf = core_conf_new();
    ck_assert_int_eq(core_conf_add(conf, defs, 5), 0);
}

static void teardown(void)
{
    core_conf_free(&conf);
    ck_assert_ptr_null(conf);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CORE), 0);
}

static char *write_tmp(const char *text)
{
    static char path[64];
    int fd;

    strcpy(path, "/tmp/oboro-conf-XXXXXX");
    fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

START_TEST(defaults_applied)
{
    ck_assert_str_eq(s_name, "oboro");
    ck_assert_int_eq(i_port, 6379);
    ck_assert_int_eq(i_size, 64LL * 1024 * 1024);
    ck_assert_int_eq(b_flag, 0);
    ck_assert_int_eq(e_level, 1);
}
END_TEST

START_TEST(duplicate_rejected)
{
    ck_assert_int_eq(core_conf_add(conf, defs, 1), -EEXIST);
}
END_TEST

START_TEST(set_and_get)
{
    char err[128], buf[64];

    ck_assert_int_eq(core_conf_set(conf, "port", "7000", err, sizeof(err)), 0);
    ck_assert_int_eq(i_port, 7000);
    ck_assert_int_eq(core_conf_set(conf, "PORT", "7001", err, sizeof(err)), 0);
    ck_assert_int_eq(core_conf_get(conf, "port", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "7001");
    ck_assert_int_eq(core_conf_set(conf, "port", "70000", err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "out of range"));
    ck_assert_int_eq(i_port, 7001);
    ck_assert_int_eq(core_conf_set(conf, "port", "12x", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(core_conf_set(conf, "nope", "1", err, sizeof(err)), -ENOENT);
    ck_assert_int_eq(core_conf_set(conf, "flag", "yes", err, sizeof(err)), 0);
    ck_assert_int_eq(b_flag, 1);
    ck_assert_int_eq(core_conf_set(conf, "flag", "maybe", err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(core_conf_set(conf, "level", "WARNING", err, sizeof(err)), 0);
    ck_assert_int_eq(e_level, 2);
    ck_assert_int_eq(core_conf_set(conf, "level", "loud", err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "debug info warning"));
    ck_assert_int_eq(core_conf_set(conf, "name", "x y", err, sizeof(err)), 0);
    ck_assert_str_eq(s_name, "x y");
}
END_TEST

START_TEST(sizes)
{
    static const struct { const char *in; long long out; int rv; } cases[] = {
        {"100", 100, 0}, {"1k", 1000, 0}, {"1kb", 1024, 0}, {"2MB", 2097152, 0},
        {"1g", 1000000000LL, 0}, {"1gb", 1073741824LL, 0}, {"", 0, -EINVAL},
        {"-1", 0, -EINVAL}, {"1tb", 0, -EINVAL}, {"99999999999999999999", 0, -EINVAL},
        {"9223372036854775807gb", 0, -EINVAL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long v = 0;

        ck_assert_int_eq(core_conf_parse_size(cases[i].in, &v), cases[i].rv);
        if (cases[i].rv == 0)
            ck_assert_int_eq(v, cases[i].out);
    }
}
END_TEST

START_TEST(file_ok)
{
    char err[256];
    const char *p = write_tmp("# comment\n\n  port 1234\nname \"with space\"\nlimit 1kb\n");

    ck_assert_int_eq(core_conf_load_file(conf, p, err, sizeof(err)), 0);
    ck_assert_int_eq(i_port, 1234);
    ck_assert_str_eq(s_name, "with space");
    ck_assert_int_eq(i_size, 1024);
    unlink(p);
}
END_TEST

START_TEST(file_errors_name_line)
{
    char err[256], want[128];
    const char *p = write_tmp("port 1\nbogus 2\n");

    ck_assert_int_eq(core_conf_load_file(conf, p, err, sizeof(err)), -ENOENT);
    snprintf(want, sizeof(want), "%s:2: unknown directive 'bogus'", p);
    ck_assert_str_eq(err, want);
    unlink(p);
    p = write_tmp("port abc\n");
    ck_assert_int_eq(core_conf_load_file(conf, p, err, sizeof(err)), -EINVAL);
    snprintf(want, sizeof(want), "%s:1: directive 'port':", p);
    ck_assert_ptr_nonnull(strstr(err, want));
    unlink(p);
    ck_assert_int_eq(core_conf_load_file(conf, "/nonexistent/x.conf", err, sizeof(err)), -ENOENT);
}
END_TEST

START_TEST(args_override)
{
    char err[256];
    char *argv[] = {"prog", "file.conf", "--port", "99", "--name=n", "--help", "--flag", "yes", NULL};
    static const char *const skip[] = {"help", NULL};

    ck_assert_int_eq(core_conf_load_args(conf, 8, argv, skip, err, sizeof(err)), 0);
    ck_assert_int_eq(i_port, 99);
    ck_assert_str_eq(s_name, "n");
    ck_assert_int_eq(b_flag, 1);
}
END_TEST

START_TEST(args_errors)
{
    char err[256];
    char *a1[] = {"prog", "--nope", "1", NULL};
    char *a2[] = {"prog", "--port", NULL};
    char *a3[] = {"prog", "--port", "x", NULL};

    ck_assert_int_eq(core_conf_load_args(conf, 3, a1, NULL, err, sizeof(err)), -ENOENT);
    ck_assert_str_eq(err, "unknown flag '--nope'");
    ck_assert_int_eq(core_conf_load_args(conf, 2, a2, NULL, err, sizeof(err)), -EINVAL);
    ck_assert_int_eq(core_conf_load_args(conf, 3, a3, NULL, err, sizeof(err)), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "--port"));
}
END_TEST

/* ---- repeatable directives (CORE_CONF_LIST) ---------------------------- */

static core_conf_list_t l_pull;
static core_conf_def_t list_defs[] = {
    {"pull", CORE_CONF_LIST, "", "a list", &l_pull, 0, 0, NULL, 0, NULL, NULL},
    {"port", CORE_CONF_INT, "6379", "a port", &i_port, 0, 65535, NULL, 0, NULL, NULL},
};

static void list_setup(void)
{
    conf = core_conf_new();
    ck_assert_int_eq(core_conf_add(conf, list_defs, 2), 0);
}

START_TEST(list_starts_empty)
{
    char buf[32];

    ck_assert_uint_eq(l_pull.n, 0);
    ck_assert_ptr_null(l_pull.items);
    ck_assert_int_eq(core_conf_get(conf, "pull", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(list_appends_file_then_flags)
{
    char err[256], buf[256];
    const char *p = write_tmp("pull live/* rtmp://a/live/$name on-demand\n"
                              "port 1\n"
                              "pull \"tv/one rtmp://b/tv/one always\"\n");
    char *argv[] = {"prog", "--pull", "x/* http://c/$app/$name.flv", "--pull=y/z rtmp://d/y/z", NULL};

    ck_assert_int_eq(core_conf_load_file(conf, p, err, sizeof(err)), 0);
    ck_assert_uint_eq(l_pull.n, 2);
    ck_assert_str_eq(l_pull.items[0], "live/* rtmp://a/live/$name on-demand");
    ck_assert_str_eq(l_pull.items[1], "tv/one rtmp://b/tv/one always");
    ck_assert_int_eq(core_conf_load_args(conf, 4, argv, NULL, err, sizeof(err)), 0);
    ck_assert_uint_eq(l_pull.n, 4);
    ck_assert_str_eq(l_pull.items[2], "x/* http://c/$app/$name.flv");
    ck_assert_str_eq(l_pull.items[3], "y/z rtmp://d/y/z");
    ck_assert_int_eq(core_conf_get(conf, "pull", buf, sizeof(buf)), 0);
    ck_assert_str_eq(buf, "live/* rtmp://a/live/$name on-demand; tv/one rtmp://b/tv/one always; "
                          "x/* http://c/$app/$name.flv; y/z rtmp://d/y/z");
    /* a short buffer truncates, never overflows */
    ck_assert_int_eq(core_conf_get(conf, "pull", buf, 8), 0);
    ck_assert_str_eq(buf, "live/* ");
    unlink(p);
}
END_TEST

START_TEST(list_empty_value_adds_nothing)
{
    char err[64];

    ck_assert_int_eq(core_conf_set(conf, "pull", "", err, sizeof(err)), 0);
    ck_assert_uint_eq(l_pull.n, 0);
    ck_assert_int_eq(core_conf_set(conf, "PULL", "a b", err, sizeof(err)), 0);
    ck_assert_uint_eq(l_pull.n, 1);
}
END_TEST

START_TEST(list_out_of_memory)
{
    char err[64];

    ck_assert_int_eq(core_conf_set(conf, "pull", "a b", err, sizeof(err)), 0);
    core_mem_fail_after(2);   /* the copy succeeds, growing the array fails */
    ck_assert_int_eq(core_conf_set(conf, "pull", "c d", err, sizeof(err)), -ENOMEM);
    core_mem_fail_reset();
    ck_assert_uint_eq(l_pull.n, 1);
    ck_assert_str_eq(l_pull.items[0], "a b");
    core_mem_fail_after(1);
    ck_assert_int_eq(core_conf_set(conf, "pull", "c d", err, sizeof(err)), -ENOMEM);
    core_mem_fail_reset();
    ck_assert_uint_eq(l_pull.n, 1);
}
END_TEST

START_TEST(list_freed_with_conf)
{
    char err[64];

    for (int i = 0; i < 50; i++)
        ck_assert_int_eq(core_conf_set(conf, "pull", "p u", err, sizeof(err)), 0);
    ck_assert_uint_eq(l_pull.n, 50);
    core_conf_free(&conf);
    ck_assert_uint_eq(l_pull.n, 0);
    ck_assert_ptr_null(l_pull.items);
    ck_assert_int_eq(core_mem_tag_live(CORE_TAG_CORE), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("core/conf");
    TCase *tc = tcase_create("directives");
    SRunner *sr;
    int failed;

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, defaults_applied);
    tcase_add_test(tc, duplicate_rejected);
    tcase_add_test(tc, set_and_get);
    tcase_add_test(tc, sizes);
    tcase_add_test(tc, file_ok);
    tcase_add_test(tc, file_errors_name_line);
    tcase_add_test(tc, args_override);
    tcase_add_test(tc, args_errors);
    suite_add_tcase(s, tc);
    tc = tcase_create("list");
    tcase_add_checked_fixture(tc, list_setup, teardown);
    tcase_add_test(tc, list_starts_empty);
    tcase_add_test(tc, list_appends_file_then_flags);
    tcase_add_test(tc, list_empty_value_adds_nothing);
    tcase_add_test(tc, list_out_of_memory);
    tcase_add_test(tc, list_freed_with_conf);
    suite_add_tcase(s, tc);
    sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
