/*
 * A small JSON writer for measured hot paths (the assignment answers), where building a jansson
 * tree per request costs more than the request itself. The caller writes structure with
 * ab_jsonw_raw ("{", ",", "\"key\":") and values with the typed functions, which escape and
 * format; everything else emits JSON through jansson. Fuzzed and round-trip-tested through
 * jansson (tests/fuzz/fuzz_jsonw.c, tests/unit/test_jsonw.c).
 */
#ifndef ABACUS_JSONW_H
#define ABACUS_JSONW_H

#include <stddef.h>
#include <string.h>

struct ab_jsonw {
    char *buf; /* NUL-terminated when not failed; heap unless the caller's (ab_jsonw_init_in) */
    size_t len;
    size_t cap; /* len <= cap <= max; buf holds cap + 1 bytes */
    size_t max; /* the output may not grow past this many bytes */
    int failed; /* set once the output would pass max; later writes are ignored */
    int owned;  /* buf is the writer's (heap), not the caller's */
};

/* An empty writer whose output may grow to max bytes. */
void ab_jsonw_init(struct ab_jsonw *w, size_t max);

/*
 * ab_jsonw_init writing into the caller's buf[cap + 1] (stack or request memory), which saves
 * allocating for output that fits; past cap the writer moves to a heap buffer of its own.
 */
void ab_jsonw_init_in(struct ab_jsonw *w, char *buf, size_t cap, size_t max);

/* Frees the buffer (unless it is the caller's). Accepts a writer that failed. */
void ab_jsonw_dispose(struct ab_jsonw *w);

/* Makes room for n more bytes at once (up to max), for a writer that knows its size roughly. */
void ab_jsonw_reserve(struct ab_jsonw *w, size_t n);

/* ab_jsonw_raw when s[0..n) does not fit in the room left: grows the buffer or fails w. */
void ab_jsonw_raw_grow(struct ab_jsonw *w, const char *s, size_t n);

/*
 * Appends s[0..n) as is: structure, keys known to need no escaping, or serialized JSON. Inline:
 * an answer is made of a few hundred such pieces, and most fit in the room already there.
 */
static inline void ab_jsonw_raw(struct ab_jsonw *w, const char *s, size_t n)
{
    if (n <= w->cap - w->len && !w->failed) {
        memcpy(w->buf + w->len, s, n);
        w->len += n;
        w->buf[w->len] = '\0';
    } else {
        ab_jsonw_raw_grow(w, s, n);
    }
}

/* ab_jsonw_room when fewer than n bytes are left: grows the buffer, or returns 0. */
int ab_jsonw_room_grow(struct ab_jsonw *w, size_t n);

/*
 * 1 when there is room for n more bytes at the end of the output, w->buf + w->len (the buffer
 * grows up to max); 0 when w has failed or n more bytes would pass max (w is left as it was, so
 * that the caller can write piece by piece what may still fit). The caller writes at most n bytes
 * there and ends with ab_jsonw_end: for an item assembled from several pieces, one check.
 */
static inline int ab_jsonw_room(struct ab_jsonw *w, size_t n)
{
    return (n <= w->cap - w->len && !w->failed) || ab_jsonw_room_grow(w, n);
}

/* The output now ends at end, which lies in the room ab_jsonw_room gave. */
static inline void ab_jsonw_end(struct ab_jsonw *w, char *end)
{
    w->len = (size_t)(end - w->buf);
    *end = '\0';
}

extern const char ab_jsonw_pairs[201];             /* [2k], [2k + 1]: the digits of k < 100 */
extern const unsigned char ab_jsonw_trailing[100]; /* [k]: the zeros that end k as 2 digits */

/* The 4 decimals of frac / 10^4 (frac < 10^4) into d[4]; their count without trailing zeros
 * (0 for frac 0). */
static inline size_t ab_jsonw_decimals4(unsigned frac, char d[4])
{
    size_t hi = frac / 100, lo = frac % 100;
    memcpy(d, &ab_jsonw_pairs[2 * hi], 2);
    memcpy(d + 2, &ab_jsonw_pairs[2 * lo], 2);
    return lo != 0 ? 4 - (size_t)ab_jsonw_trailing[lo] : 2 - (size_t)ab_jsonw_trailing[hi];
}

/*
 * When v is k / 10^4 for an integer 0 <= k < 10^4 (every bucket a hash gives), writes its
 * shortest text ("0.0", "0.25", "0.4413": what ab_jsonw_double writes) at o, which must have 8
 * bytes of room, and returns its end; returns NULL for any other v. Inline: answers hold many.
 */
static inline char *ab_jsonw_put_bucket(char *o, double v)
{
    if (!(v >= 0 && v < 1))
        return NULL;
    unsigned k = (unsigned)(v * 10000 + 0.5);
    if (k >= 10000 || (double)k / 10000 != v)
        return NULL;
    char t[8] = {'0', '.'};
    size_t n = 2 + ab_jsonw_decimals4(k, t + 2);
    n = k == 0 ? 3 : n;
    memcpy(o, t, sizeof(t));
    return o + n;
}

/* Appends a quoted string. s[0..n) must be valid UTF-8 (jansson-parsed or checked text). */
void ab_jsonw_str(struct ab_jsonw *w, const char *s, size_t n);

void ab_jsonw_int(struct ab_jsonw *w, long long v);

/* Shortest text that reads back as the same double; NaN and infinities become null. */
void ab_jsonw_double(struct ab_jsonw *w, double v);

void ab_jsonw_bool(struct ab_jsonw *w, int v);

#endif
