/*
 * Hashing and bucketing (see hash.h). FNV-1a 32-bit with the reference SDK's unit of hashing,
 * the UTF-16 code unit, decoded here from UTF-8 on the fly so nothing is allocated.
 */
#include "hash.h"

#define FNV_PRIME 0x01000193u

static uint32_t step(uint32_t h, uint32_t unit)
{
    return (h ^ unit) * FNV_PRIME;
}

uint32_t assign_fnv1a(uint32_t h, const char *str, size_t len)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        uint32_t c = s[i];
        if (c < 0x80) {
            h = step(h, c);
            i++;
            continue;
        }
        uint32_t cp;
        if (c < 0xe0) {
            cp = (c & 0x1f) << 6 | (s[i + 1] & 0x3f);
            i += 2;
        } else if (c < 0xf0) {
            cp = (c & 0x0f) << 12 | (uint32_t)(s[i + 1] & 0x3f) << 6 | (s[i + 2] & 0x3f);
            i += 3;
        } else {
            cp = (c & 0x07) << 18 | (uint32_t)(s[i + 1] & 0x3f) << 12 |
                 (uint32_t)(s[i + 2] & 0x3f) << 6 | (s[i + 3] & 0x3f);
            i += 4;
        }
        if (cp < 0x10000) {
            h = step(h, cp);
        } else {
            cp -= 0x10000;
            h = step(h, 0xd800 | (cp >> 10));
            h = step(h, 0xdc00 | (cp & 0x3ff));
        }
    }
    return h;
}

double assign_hash_v2_from(uint32_t seed_state, const char *value, size_t value_len)
{
    static const char pairs[201] = "00010203040506070809101112131415161718192021222324"
                                   "25262728293031323334353637383940414243444546474849"
                                   "50515253545556575859606162636465666768697071727374"
                                   "75767778798081828384858687888990919293949596979899";
    uint32_t inner = assign_fnv1a(seed_state, value, value_len);
    char dec[10]; /* decimal of inner, written from the end two digits at a time */
    size_t at = sizeof(dec);
    while (inner >= 100) {
        size_t r = inner % 100;
        inner /= 100;
        dec[--at] = pairs[2 * r + 1];
        dec[--at] = pairs[2 * r];
    }
    if (inner >= 10) {
        dec[--at] = pairs[2 * (size_t)inner + 1];
        dec[--at] = pairs[2 * (size_t)inner];
    } else {
        dec[--at] = (char)('0' + inner);
    }
    uint32_t outer = assign_fnv1a(ASSIGN_FNV_OFFSET, dec + at, sizeof(dec) - at);
    return (double)(outer % 10000) / 10000;
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

int assign_choose_variation(double n, const struct assign_range *ranges, size_t nranges)
{
    for (size_t i = 0; i < nranges; i++)
        if (assign_in_range(n, &ranges[i]))
            return (int)i;
    return -1;
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
