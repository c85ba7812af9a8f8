/* Unit tests of lib/utf8.c against the boundary cases of RFC 3629 and Unicode table 3-7. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/utf8.h"

#define VALID(s) assert_int_equal(ab_utf8_valid(s, sizeof(s) - 1), 1)
#define INVALID(s) assert_int_equal(ab_utf8_valid(s, sizeof(s) - 1), 0)

static void test_valid(void **state)
{
    (void)state;
    VALID("");
    VALID("plain ascii");
    VALID("caf\xc3\xa9");                 /* é */
    VALID("\xe4\xb8\xad\xe6\x96\x87");    /* 中文 */
    VALID("\xf0\x9f\x98\x80");            /* 😀 U+1F600 */
    VALID("\xed\x9f\xbf");                /* U+D7FF, last before surrogates */
    VALID("\xee\x80\x80");                /* U+E000, first after */
    VALID("\xf4\x8f\xbf\xbf");            /* U+10FFFF */
    VALID("\xc2\x80");                    /* U+0080 */
}

static void test_invalid(void **state)
{
    (void)state;
    INVALID("\xff");
    INVALID("\xc0\xaf");                  /* overlong '/' */
    INVALID("\xc1\xbf");                  /* overlong */
    INVALID("\xe0\x80\xaf");              /* overlong 3-byte */
    INVALID("\xf0\x80\x80\xaf");          /* overlong 4-byte */
    INVALID("\xed\xa0\x80");              /* surrogate U+D800 */
    INVALID("\xf4\x90\x80\x80");          /* U+110000 */
    INVALID("\xf5\x80\x80\x80");
    INVALID("\xc3");                      /* truncated */
    INVALID("\xe4\xb8");                  /* truncated */
    INVALID("abc\x80");                   /* lone continuation */
    INVALID("\xc3\x28");                  /* bad continuation */
    INVALID("\xe2\x82\x28");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_invalid),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
