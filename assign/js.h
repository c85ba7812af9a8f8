/*
 * The JavaScript semantics that GrowthBook's reference SDK applies to JSON values, for the C that
 * must agree with it bit for bit: Number::toString, ToNumber of a string, the UTF-16 code-unit
 * order of strings, canonical array indices. Private to assign/: the targeting conditions
 * (cond_*.c) compare and convert with them, the evaluation core (eval.c) turns hashed attribute
 * values into their JavaScript text with them. Pure functions; nothing allocated but for strings
 * longer than 63 bytes given to js_string_to_number.
 */
#ifndef ABACUS_ASSIGN_JS_H
#define ABACUS_ASSIGN_JS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* A string of UTF-8 bytes, not NUL-terminated in general. */
struct js_str {
    const char *p;
    size_t len;
};

#define JS_NUMBER_MAX 32 /* bytes of the longest js_number_format text, with its NUL */

/*
 * Number::toString (ECMA-262 6.1.6.1.20) of x into out, NUL-terminated: the shortest digits that
 * read back as x, in fixed notation from 1e-6 to below 1e21, else exponent notation ("1e+21",
 * "1.5e-7"); "NaN", "Infinity", "-Infinity"; 0 and -0 are "0". Returns the length.
 */
size_t js_number_format(double x, char out[JS_NUMBER_MAX]);

/*
 * ToNumber of a string (ECMA-262 StringToNumber): surrounding white space and line terminators
 * ignored, "" is 0, 0x / 0o / 0b literals, [+-]Infinity, decimal literals; NaN for anything else.
 */
double js_string_to_number(struct js_str s);

/*
 * JavaScript's order of two strings (by UTF-16 code units) given as UTF-8: <0, 0 or >0. It is the
 * byte order except between U+E000..U+FFFF and the code points above U+FFFF.
 */
int js_strcmp(struct js_str a, struct js_str b);

/* The array index ("0" .. "4294967294") that s spells canonically, or -1. */
int64_t js_array_index(struct js_str s);

/*
 * memcmp for the short texts attribute names and values are: below a few dozen bytes a loop costs
 * less than the call, and every evaluation makes several.
 */
static inline int js_bytes_cmp(const char *a, const char *b, size_t n)
{
    if (n > 32)
        return memcmp(a, b, n);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    return 0;
}

/* Strict equality of two strings (equal code units are equal bytes). */
static inline int js_str_eq(struct js_str a, struct js_str b)
{
    return a.len == b.len && js_bytes_cmp(a.p, b.p, a.len) == 0;
}

/* 1 when s is the NUL-terminated literal lit. */
static inline int js_str_is(struct js_str s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

#endif
