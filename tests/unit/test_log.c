/* Unit tests of lib/log.c: format, levels, one line per event, escaping, truncation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "abacus/log.h"

struct fixture {
    int fds[2];
    struct ab_clock_fixed clock;
    struct ab_log log;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (pipe(f->fds) != 0)
        return -1;
    ab_clock_fixed_init(&f->clock, 1795517162123);
    ab_log_init(&f->log, AB_LOG_INFO, f->fds[1], &f->clock.clock);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    close(f->fds[0]);
    close(f->fds[1]);
    free(f);
    return 0;
}

/* Reads what has been written so far (the writes are complete before this is called). */
static char *drain(struct fixture *f)
{
    static char buf[8192];
    close(f->fds[1]);
    ssize_t n = read(f->fds[0], buf, sizeof(buf) - 1);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void test_line_format(void **state)
{
    struct fixture *f = *state;
    AB_LOG_I(&f->log, "listening", "addr=%s port=%d", "127.0.0.1", 8080);
    assert_string_equal(drain(f), "2026-11-24T10:46:02.123Z info listening addr=127.0.0.1 port=8080\n");
    f->fds[1] = dup(f->fds[0]); /* keep teardown's close balanced */
}

static void test_levels_filter(void **state)
{
    struct fixture *f = *state;
    AB_LOG_D(&f->log, "hidden", NULL);
    AB_LOG_W(&f->log, "shown", NULL);
    AB_LOG_E(&f->log, "also_shown", "x=1");
    char *out = drain(f);
    assert_null(strstr(out, "hidden"));
    assert_non_null(strstr(out, " warn shown\n"));
    assert_non_null(strstr(out, " error also_shown x=1\n"));
    f->fds[1] = dup(f->fds[0]);
    enum ab_log_level l;
    assert_int_equal(ab_log_level_parse("debug", &l), 0);
    assert_int_equal(l, AB_LOG_DEBUG);
    assert_int_equal(ab_log_level_parse("verbose", &l), -1);
}

static void test_one_line_per_event(void **state)
{
    struct fixture *f = *state;
    AB_LOG_I(&f->log, "bad_input", "text=\"a\nb\rc\x01\"");
    char *out = drain(f);
    assert_string_equal(out, "2026-11-24T10:46:02.123Z info bad_input text=\"a\\nb\\x0dc\\x01\"\n");
    f->fds[1] = dup(f->fds[0]);
}

static void test_long_line_truncated(void **state)
{
    struct fixture *f = *state;
    char big[5000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    AB_LOG_I(&f->log, "big", "v=%s", big);
    char *out = drain(f);
    size_t len = strlen(out);
    assert_true(len < 2200);
    assert_string_equal(out + len - 4, "...\n");
    assert_ptr_equal(strchr(out, '\n'), out + len - 1); /* exactly one line */
    f->fds[1] = dup(f->fds[0]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_line_format, setup, teardown),
        cmocka_unit_test_setup_teardown(test_levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_line_per_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_line_truncated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
