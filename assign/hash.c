/*
 * Hashing and bucketing (see hash.h). FNV-1a 32-bit with the reference SDK's unit of hashing,
 * the UTF-16 code unit, decoded here from UTF-8 on the fly so nothing is allocated.
 */
#include "abacus/utf8.h"
#include "hash.h"

#define FNV_PRIME 0x01000193u

static uint32_t step(uint32_t h, uint32_t unit)
{
    return (h ^ unit) * FNV_PRIME;
}

/* The UTF-16 code units of code point cp into out; returns their count (1, or 2: a pair). */
static size_t utf16_of(uint32_t cp, uint16_t *out)
{
    if (cp < 0x10000) {
        out[0] = (uint16_t)cp;
        return 1;
    }
    cp -= 0x10000;
    out[0] = (uint16_t)(0xd800 | (cp >> 10));
    out[1] = (uint16_t)(0xdc00 | (cp & 0x3ff));
    return 2;
}

uint32_t assign_fnv1a(uint32_t h, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            h = step(h, s[i++]);
            continue;
        }
        size_t n;
        uint16_t units[2];
        size_t m = utf16_of(ab_utf8_decode_valid(s + i, &n), units);
        i += n;
        for (size_t k = 0; k < m; k++)
            h = step(h, units[k]);
    }
    return h;
}

/* The UTF-16 code units of the valid UTF-8 text s[0..len) into out[len]; returns their count. */
static size_t utf16_units(const char *str, size_t len, uint16_t *out)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, k = 0;
    while (i < len) {
        if (s[i] < 0x80) {
            out[k++] = s[i++];
            continue;
        }
        size_t n;
        k += utf16_of(ab_utf8_decode_valid(s + i, &n), out + k);
        i += n;
    }
    return k;
}

/* PAIRS[2k], PAIRS[2k + 1]: the two digits of k < 100. */
static const char PAIRS[201] = "00010203040506070809101112131415161718192021222324"
                               "25262728293031323334353637383940414243444546474849"
                               "50515253545556575859606162636465666768697071727374"
                               "75767778798081828384858687888990919293949596979899";

/* Writes v in decimal so that the digits end at end; returns where they start. */
static char *decimal(uint32_t v, char *end)
{
    while (v >= 100) {
        size_t r = v % 100;
        v /= 100;
        *--end = PAIRS[2 * r + 1];
        *--end = PAIRS[2 * r];
    }
    if (v >= 10) {
        *--end = PAIRS[2 * (size_t)v + 1];
        *--end = PAIRS[2 * (size_t)v];
    } else {
        *--end = (char)('0' + v);
    }
    return end;
}

/*
 * FNV-1a from the offset basis over the decimal digits of v (its toString(), as the reference SDK
 * hashes the inner hash), without writing them out. Numbers of 9 and 10 digits, 97.7 % of hashes,
 * read their last 8 digits off one fixed-point product, two at a time: x / 2^56 is r / 10^6 plus
 * less than r / 2^56 < 1.4e-9, far below the 1e-6 that could move a digit, so each pair is the
 * integer part as the fraction is scaled by 100 (checked for every r < 10^8 when written; the
 * conformance test compares with the digits written out, at every boundary and over a sweep).
 */
__attribute__((noinline)) static uint32_t fnv_decimal_short(uint32_t v)
{
    char dec[10];
    char *p = decimal(v, dec + sizeof(dec));
    return assign_fnv1a(ASSIGN_FNV_OFFSET, p, (size_t)(dec + sizeof(dec) - p));
}

static inline __attribute__((always_inline)) uint32_t fnv_decimal(uint32_t v)
{
    if (__builtin_expect(v < 100000000u, 0)) /* 8 digits or fewer */
        return fnv_decimal_short(v);
    size_t top = v / 100000000u; /* 1 to 42: the first one or two digits */
    uint32_t r = v - (uint32_t)top * 100000000u;
    uint32_t g =
        top >= 10 ? step(ASSIGN_FNV_OFFSET, (unsigned char)PAIRS[2 * top]) : ASSIGN_FNV_OFFSET;
    g = step(g, (unsigned char)PAIRS[2 * top + 1]);
    enum { SHIFT = 56 };
    const uint64_t mask = ((uint64_t)1 << SHIFT) - 1;
    uint64_t x = (uint64_t)r * ((((uint64_t)1 << SHIFT) + 999999) / 1000000); /* ceil */
    for (int i = 0; i < 4; i++) {
        const char *pair = &PAIRS[2 * (x >> SHIFT)];
        g = step(step(g, (unsigned char)pair[0]), (unsigned char)pair[1]);
        x = (x & mask) * 100;
    }
    return g;
}

double assign_hash_v2_from(uint32_t seed_state, const char *value, size_t value_len)
{
    uint32_t outer = fnv_decimal(assign_fnv1a(seed_state, value, value_len));
    return (double)(outer % 10000) / 10000;
}

void assign_hash_v2_many(const uint32_t *states, size_t n, const char *value, size_t value_len,
                         double *out)
{
    enum { UNITS = 256 };
    if (value_len > UNITS) { /* rare: hashed one by one */
        for (size_t k = 0; k < n; k++)
            out[k] = assign_hash_v2_from(states[k], value, value_len);
        return;
    }
    uint16_t units[UNITS]; /* a UTF-8 text has at most as many UTF-16 code units as bytes */
    size_t nunits = utf16_units(value, value_len, units);
    /* the chains of different seeds are independent: four run side by side */
    size_t k = 0;
    for (; k + 4 <= n; k += 4) {
        uint32_t h0 = states[k], h1 = states[k + 1], h2 = states[k + 2], h3 = states[k + 3];
        for (size_t i = 0; i < nunits; i++) {
            h0 = step(h0, units[i]);
            h1 = step(h1, units[i]);
            h2 = step(h2, units[i]);
            h3 = step(h3, units[i]);
        }
        out[k] = (double)(fnv_decimal(h0) % 10000) / 10000;
        out[k + 1] = (double)(fnv_decimal(h1) % 10000) / 10000;
        out[k + 2] = (double)(fnv_decimal(h2) % 10000) / 10000;
        out[k + 3] = (double)(fnv_decimal(h3) % 10000) / 10000;
    }
    for (; k < n; k++) {
        uint32_t h = states[k];
        for (size_t i = 0; i < nunits; i++)
            h = step(h, units[i]);
        out[k] = (double)(fnv_decimal(h) % 10000) / 10000;
    }
}

double assign_hash(const char *seed, size_t seed_len, const char *value, size_t value_len,
                   int version)
{
    if (version == 2)
        return assign_hash_v2_from(assign_fnv1a(ASSIGN_FNV_OFFSET, seed, seed_len), value,
                                   value_len);
    if (version == 1) {
        uint32_t h = assign_fnv1a(assign_fnv1a(ASSIGN_FNV_OFFSET, value, value_len), seed,
                                  seed_len);
        return (double)(h % 1000) / 1000;
    }
    return -1;
}

void assign_equal_weights(size_t n, double *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = 1.0 / (double)n;
}

void assign_bucket_ranges(size_t n, double coverage, const double *weights, size_t nweights,
                          struct assign_range *out)
{
    if (coverage < 0)
        coverage = 0;
    if (coverage > 1)
        coverage = 1;
    int equal = weights == NULL || nweights != n;
    if (!equal) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += weights[i];
        equal = sum < 0.99 || sum > 1.01;
    }
    double cumulative = 0;
    for (size_t i = 0; i < n; i++) {
        double w = equal ? 1.0 / (double)n : weights[i];
        double start = cumulative;
        cumulative += w;
        out[i].start = start;
        out[i].end = start + coverage * w;
    }
}

int assign_in_namespace(const char *unit, size_t unit_len, const char *ns_id, size_t ns_len,
                        double start, double end)
{
    /* hash("__" + id, unit, 1) = fnv(unit + "__" + id) */
    uint32_t h = assign_fnv1a(ASSIGN_FNV_OFFSET, unit, unit_len);
    h = assign_fnv1a(h, "__", 2);
    h = assign_fnv1a(h, ns_id, ns_len);
    double n = (double)(h % 1000) / 1000;
    return n >= start && n < end;
}
