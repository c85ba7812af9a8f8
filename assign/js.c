/*
 * JavaScript semantics of JSON values (see js.h), from ECMA-262: Number::toString, StringToNumber
 * and its white space, the code-unit order of strings, canonical array indices.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include "abacus/mem.h"
#include "abacus/utf8.h"
#include "js.h"

/* The first UTF-16 code unit of a code point: what JavaScript compares strings by. */
static uint32_t utf16_lead(uint32_t cp)
{
    return cp < 0x10000 ? cp : 0xD800 + ((cp - 0x10000) >> 10);
}

/*
 * JavaScript's string order (by UTF-16 code units) of two UTF-8 strings: <0, 0 or >0. It equals
 * the byte order except between U+E000..U+FFFF and the code points above U+FFFF.
 */
int js_strcmp(struct js_str a, struct js_str b)
{
    const unsigned char *pa = (const unsigned char *)a.p, *pb = (const unsigned char *)b.p;
    size_t n = a.len < b.len ? a.len : b.len, i = 0;
    while (i < n && pa[i] == pb[i])
        i++;
    if (i == n)
        return a.len < b.len ? -1 : a.len > b.len;
    size_t start = i; /* the differing code points begin at the same offset */
    while (start > 0 && i - start < 3 && (pa[start] & 0xC0) == 0x80)
        start--;
    uint32_t ca, cb;
    if (ab_utf8_decode(a.p + start, a.len - start, &ca) == 0 ||
        ab_utf8_decode(b.p + start, b.len - start, &cb) == 0)
        return pa[i] < pb[i] ? -1 : 1;
    if (utf16_lead(ca) != utf16_lead(cb))
        return utf16_lead(ca) < utf16_lead(cb) ? -1 : 1;
    return ca < cb ? -1 : 1;
}

/* Number::toString (ECMA-262 6.1.6.1.20): the shortest digits that read back as x. */
size_t js_number_format(double x, char out[JS_NUMBER_MAX])
{
    char e[32], digits[20] = "";
    size_t o = 0, k = 0;
    if (isnan(x) || isinf(x) || x == 0) {
        const char *s = isnan(x) ? "NaN" : x == 0 ? "0" : x < 0 ? "-Infinity" : "Infinity";
        memcpy(out, s, strlen(s) + 1);
        return strlen(s);
    }
    if (fabs(x) < 9007199254740992.0 && x == (double)(long long)x) /* an exact integer */
        return (size_t)snprintf(out, JS_NUMBER_MAX, "%lld", (long long)x);
    if (x < 0) {
        out[o++] = '-';
        x = -x;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(e, sizeof e, "%.*e", prec - 1, x);
        if (strtod(e, NULL) == x)
            break;
    }
    const char *p = e; /* d[.ddd]e[+-]xx */
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[k++] = *p;
    while (k > 1 && digits[k - 1] == '0')
        k--;
    long n = strtol(p + 1, NULL, 10) + 1; /* x = 0.digits * 10^n */
    if ((long)k <= n && n <= 21) {
        memcpy(out + o, digits, k), o += k;
        for (long z = 0; z < n - (long)k; z++)
            out[o++] = '0';
    } else if (0 < n && n < (long)k) {
        memcpy(out + o, digits, (size_t)n), o += (size_t)n;
        out[o++] = '.';
        memcpy(out + o, digits + n, k - (size_t)n), o += k - (size_t)n;
    } else if (-6 < n && n <= 0) {
        out[o++] = '0', out[o++] = '.';
        for (long z = 0; z < -n; z++)
            out[o++] = '0';
        memcpy(out + o, digits, k), o += k;
    } else {
        out[o++] = digits[0];
        if (k > 1) {
            out[o++] = '.';
            memcpy(out + o, digits + 1, k - 1), o += k - 1;
        }
        o += (size_t)snprintf(out + o, JS_NUMBER_MAX - o, "e%c%ld", n - 1 < 0 ? '-' : '+',
                              labs(n - 1));
    }
    out[o] = '\0';
    return o;
}

/* StrWhiteSpaceChar of ECMA-262: WhiteSpace and LineTerminator. */
static int js_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000 || c == 0xFEFF;
}

static struct js_str js_trim(struct js_str s)
{
    const char *p = s.p;
    size_t len = s.len, n;
    uint32_t c;
    while ((n = ab_utf8_decode(p, len, &c)) != 0 && js_space(c))
        p += n, len -= n;
    while (len > 0) {
        size_t start = len - 1;
        while (start > 0 && len - start < 4 && ((unsigned char)p[start] & 0xC0) == 0x80)
            start--;
        if (ab_utf8_decode(p + start, len - start, &c) != len - start || !js_space(c))
            break;
        len = start;
    }
    return (struct js_str){p, len};
}

static double parse_radix(const char *s, size_t len, int radix)
{
    double v = 0;
    if (len == 0)
        return NAN;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int lower = c | 0x20, d = 99;
        if (c >= '0' && c <= '9')
            d = c - '0';
        else if (lower >= 'a' && lower <= 'f')
            d = lower - 'a' + 10;
        if (d >= radix)
            return NAN;
        v = v * radix + d;
    }
    return v;
}

static size_t skip_digits(const char *s, size_t i, size_t len)
{
    while (i < len && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* StrDecimalLiteral of ECMA-262 without Infinity: [+-] digits [. digits] [e [+-] digits]. */
static int is_decimal_literal(const char *s, size_t len)
{
    size_t i = len > 0 && (s[0] == '+' || s[0] == '-');
    size_t j = skip_digits(s, i, len), mantissa = j - i;
    i = j;
    if (i < len && s[i] == '.') {
        j = skip_digits(s, i + 1, len);
        mantissa += j - i - 1;
        i = j;
    }
    if (mantissa == 0)
        return 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < len && (s[i] == '+' || s[i] == '-'))
            i++;
        j = skip_digits(s, i, len);
        if (j == i)
            return 0;
        i = j;
    }
    return i == len;
}

/* ToNumber of a string (ECMA-262 StringToNumber): NaN when it is not a numeric literal. */
double js_string_to_number(struct js_str in)
{
    struct js_str s = js_trim(in);
    char buf[64];
    if (s.len == 0)
        return 0;
    if (s.len > 2 && s.p[0] == '0') {
        char x = (char)(s.p[1] | 0x20);
        int radix = x == 'x' ? 16 : x == 'o' ? 8 : x == 'b' ? 2 : 0;
        if (radix != 0)
            return parse_radix(s.p + 2, s.len - 2, radix);
    }
    size_t sign = s.p[0] == '+' || s.p[0] == '-';
    if (s.len - sign == 8 && memcmp(s.p + sign, "Infinity", 8) == 0)
        return s.p[0] == '-' ? -INFINITY : INFINITY;
    if (!is_decimal_literal(s.p, s.len))
        return NAN;
    char *copy = s.len < sizeof buf ? buf : ab_mem_calloc(1, s.len + 1);
    memcpy(copy, s.p, s.len);
    copy[s.len] = '\0';
    double v = strtod(copy, NULL);
    if (copy != buf)
        free(copy);
    return v;
}

/* The array index ("0", "1", ..., "4294967294") that s spells canonically, or -1. */
int64_t js_array_index(struct js_str s)
{
    int64_t v = 0;
    if (s.len == 0 || s.len > 10 || (s.p[0] == '0' && s.len > 1))
        return -1;
    for (size_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return -1;
        v = v * 10 + (s.p[i] - '0');
    }
    return v <= 4294967294 ? v : -1;
}

