/*
 * The hot-path JSON writer (see abacus/jsonw.h).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/jsonw.h"
#include "abacus/mem.h"

void ab_jsonw_init(struct ab_jsonw *w, size_t max)
{
    size_t cap = 512 < max ? 512 : max;
    ab_jsonw_init_in(w, ab_mem_realloc(NULL, cap + 1), cap, max);
    w->owned = 1;
}

void ab_jsonw_init_in(struct ab_jsonw *w, char *buf, size_t cap, size_t max)
{
    w->buf = buf;
    w->buf[0] = '\0';
    w->len = 0;
    w->cap = cap < max ? cap : max;
    w->max = max;
    w->failed = 0;
    w->owned = 0;
}

void ab_jsonw_dispose(struct ab_jsonw *w)
{
    if (w->owned)
        free(w->buf);
    w->buf = NULL;
}

/* Makes room for n more bytes; returns 0, or -1 (and fails the writer) past max. */
static int reserve(struct ab_jsonw *w, size_t n)
{
    if (w->failed)
        return -1;
    if (w->len + n > w->max) {
        w->failed = 1;
        return -1;
    }
    if (w->len + n > w->cap) {
        size_t cap = w->cap * 2 > w->len + n ? w->cap * 2 : w->len + n;
        w->cap = cap < w->max ? cap : w->max;
        if (w->owned) {
            w->buf = ab_mem_realloc(w->buf, w->cap + 1);
        } else { /* leave the caller's buffer */
            char *heap = ab_mem_realloc(NULL, w->cap + 1);
            memcpy(heap, w->buf, w->len + 1);
            w->buf = heap;
            w->owned = 1;
        }
    }
    return 0;
}

int ab_jsonw_room_grow(struct ab_jsonw *w, size_t n)
{
    if (w->failed || w->len + n > w->max)
        return 0; /* the caller writes piece by piece, which may still fit */
    return reserve(w, n) == 0;
}

void ab_jsonw_reserve(struct ab_jsonw *w, size_t n)
{
    if (w->len + n > w->max)
        n = w->max - w->len;
    (void)reserve(w, n);
}

void ab_jsonw_raw_grow(struct ab_jsonw *w, const char *s, size_t n)
{
    if (reserve(w, n) != 0)
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

void ab_jsonw_str(struct ab_jsonw *w, const char *s, size_t n)
{
    static const char HEX[] = "0123456789abcdef";
    if (reserve(w, 6 * n + 2) != 0) /* worst case: every byte a \u00XX escape */
        return;
    char *o = w->buf + w->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else if (c < 0x20) {
            *o++ = '\\';
            switch (c) {
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            default:
                *o++ = 'u';
                *o++ = '0';
                *o++ = '0';
                *o++ = HEX[c >> 4];
                *o++ = HEX[c & 15];
            }
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    w->len = (size_t)(o - w->buf);
    w->buf[w->len] = '\0';
}

/* Writes the decimal of v ending at end; returns where it starts. */
static char *format_uint(unsigned long long v, char *end)
{
    do {
        *--end = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    return end;
}

void ab_jsonw_int(struct ab_jsonw *w, long long v)
{
    char tmp[24];
    char *end = tmp + sizeof(tmp);
    unsigned long long mag = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    char *p = format_uint(mag, end);
    if (v < 0)
        *--p = '-';
    ab_jsonw_raw(w, p, (size_t)(end - p));
}

const char ab_jsonw_pairs[201] = "00010203040506070809101112131415161718192021222324"
                                 "25262728293031323334353637383940414243444546474849"
                                 "50515253545556575859606162636465666768697071727374"
                                 "75767778798081828384858687888990919293949596979899";

const unsigned char ab_jsonw_trailing[100] = {
    2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};

/*
 * Fast path for values with at most 4 decimals: when k / 10^4 reads back as v, "k / 10^4" with
 * its trailing zeros dropped is v's shortest text. Writes it so that it ends at end and returns
 * where it starts, or returns NULL when v is not such a value.
 */
static char *format_short_decimal(double v, char *end)
{
    double a = fabs(v);
    if (!(a < 1e11))
        return NULL;
    unsigned long long k = (unsigned long long)(a * 10000 + 0.5);
    if ((double)k / 10000 != a)
        return NULL;
    unsigned frac = (unsigned)(k % 10000);
    char *p = end;
    if (frac == 0) {
        *--p = '0';
    } else {
        char d[4];
        size_t n = ab_jsonw_decimals4(frac, d);
        p -= n;
        memcpy(p, d, n);
    }
    *--p = '.';
    p = format_uint(k / 10000, p);
    if (v < 0)
        *--p = '-';
    return p;
}

/* ab_jsonw_double for any value: out of line, so that the bucket's path needs no stack frame. */
__attribute__((noinline)) static void write_double(struct ab_jsonw *w, double v)
{
    if (!isfinite(v)) {
        ab_jsonw_raw(w, "null", 4);
        return;
    }
    char tmp[40];
    const char *fast = format_short_decimal(v, tmp + sizeof(tmp));
    if (fast != NULL) {
        ab_jsonw_raw(w, fast, (size_t)(tmp + sizeof(tmp) - fast));
        return;
    }
    int n = 0;
    for (int prec = 15; prec <= 17; prec++) { /* %g drops trailing zeros: 15 is shortest */
        n = snprintf(tmp, sizeof(tmp), "%.*g", prec, v);
        if (strtod(tmp, NULL) == v)
            break;
    }
    /* "%g" may print an integer-looking "1"; JSON readers (jansson) then see an integer: keep
     * the value a real so that it reads back as the same type */
    if (strpbrk(tmp, ".eEn") == NULL) {
        tmp[n++] = '.';
        tmp[n++] = '0';
        tmp[n] = '\0';
    }
    ab_jsonw_raw(w, tmp, (size_t)n);
}

void ab_jsonw_double(struct ab_jsonw *w, double v)
{
    if (!w->failed && w->cap - w->len >= 8) {
        char *end = ab_jsonw_put_bucket(w->buf + w->len, v);
        if (end != NULL) { /* a bucket a hash gives, most often: written in one store */
            ab_jsonw_end(w, end);
            return;
        }
    }
    write_double(w, v);
}

void ab_jsonw_bool(struct ab_jsonw *w, int v)
{
    if (v)
        ab_jsonw_raw(w, "true", 4);
    else
        ab_jsonw_raw(w, "false", 5);
}
