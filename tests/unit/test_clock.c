/* Unit tests of lib/clock.c: the fixed clock and RFC 3339 formatting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include "abacus/clock.h"

static void test_fixed_clock(void **state)
{
    (void)state;
    struct ab_clock_fixed f;
    ab_clock_fixed_init(&f, 1700000000000);
    assert_int_equal(ab_clock_now_ms(&f.clock), 1700000000000);
    int64_t m0 = ab_clock_mono_ns(&f.clock);
    ab_clock_fixed_advance_ms(&f, 1500);
    assert_int_equal(ab_clock_now_ms(&f.clock), 1700000001500);
    assert_int_equal(ab_clock_mono_ns(&f.clock) - m0, 1500000000);
}

static void test_system_clock_moves_forward(void **state)
{
    (void)state;
    int64_t a = ab_clock_mono_ns(&ab_clock_system), b = ab_clock_mono_ns(&ab_clock_system);
    assert_true(b >= a);
    assert_true(ab_clock_now_ms(&ab_clock_system) > 1600000000000); /* after 2020 */
}

static void test_rfc3339(void **state)
{
    (void)state;
    char buf[32];
    ab_clock_format_rfc3339(0, buf, sizeof(buf));
    assert_string_equal(buf, "1970-01-01T00:00:00.000Z");
    ab_clock_format_rfc3339(1795517162123, buf, sizeof(buf));
    assert_string_equal(buf, "2026-11-24T10:46:02.123Z");
    ab_clock_format_rfc3339(-1, buf, sizeof(buf)); /* before the epoch rounds down */
    assert_string_equal(buf, "1969-12-31T23:59:59.999Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_clock),
        cmocka_unit_test(test_system_clock_moves_forward),
        cmocka_unit_test(test_rfc3339),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
