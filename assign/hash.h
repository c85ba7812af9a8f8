/*
 * Hashing and bucketing of GrowthBook's SDK specification: FNV-1a over UTF-16 code units (as the
 * reference JavaScript SDK hashes strings), hash versions 1 and 2, bucket ranges from coverage and
 * weights, choosing a variation, namespaces. Private to assign/; pure functions, no allocation.
 * Checked bit for bit by the hash, getBucketRange, chooseVariation, inNamespace and
 * getEqualWeights sections of tests/data/growthbook-cases.json.
 */
#ifndef ABACUS_ASSIGN_HASH_H
#define ABACUS_ASSIGN_HASH_H

#include <stddef.h>
#include <stdint.h>

#define ASSIGN_FNV_OFFSET 0x811c9dc5u

struct assign_range {
    double start; /* inclusive */
    double end;   /* exclusive */
};

/*
 * Continues a 32-bit FNV-1a hash h over the UTF-16 code units of the UTF-8 text s[0..len): each
 * code point below U+10000 is one unit, others a surrogate pair. s must be valid UTF-8.
 */
uint32_t assign_fnv1a(uint32_t h, const char *s, size_t len);

/*
 * GrowthBook's hash(seed, value, version) in [0, 1): version 1 is (fnv(value + seed) % 1000) /
 * 1000, version 2 is (fnv(decimal(fnv(seed + value))) % 10000) / 10000. Returns -1 for any other
 * version (the spec's null: the unit is not in the experiment).
 */
double assign_hash(const char *seed, size_t seed_len, const char *value, size_t value_len,
                   int version);

/*
 * hash() version 2 with the FNV state after the seed precomputed (seed_state =
 * assign_fnv1a(ASSIGN_FNV_OFFSET, seed, seed_len)): the same value, without rehashing the seed
 * for every unit. Version 1 hashes value + seed, so it has no such shortcut.
 */
double assign_hash_v2_from(uint32_t seed_state, const char *value, size_t value_len);

/*
 * assign_hash_v2_from for n seed states and one value: out[k] gets the hash under states[k]. The
 * value's UTF-16 code units are decoded once; the chains of different seeds are independent, so
 * the processor runs several at once.
 */
void assign_hash_v2_many(const uint32_t *states, size_t n, const char *value, size_t value_len,
                         double *out);

/* 1 when start <= n < end. */
static inline int assign_in_range(double n, const struct assign_range *r)
{
    return n >= r->start && n < r->end;
}

/* n equal weights 1/n into out (nothing for n < 1). */
void assign_equal_weights(size_t n, double *out);

/*
 * Bucket ranges of n variations into out[n]: coverage clamped to [0, 1]; weights (may be NULL,
 * or nweights != n, or not summing to 1 +- 0.01) replaced by equal weights; range i is
 * [c_i, c_i + coverage * w_i) with c_i the cumulative weight before i.
 */
void assign_bucket_ranges(size_t n, double coverage, const double *weights, size_t nweights,
                          struct assign_range *out);

/* Index of the first range containing n, or -1. Inline: every hashed unit takes it. */
static inline int assign_choose_variation(double n, const struct assign_range *ranges,
                                          size_t nranges)
{
    for (size_t i = 0; i < nranges; i++)
        if (assign_in_range(n, &ranges[i]))
            return (int)i;
    return -1;
}

/* GrowthBook's inNamespace: start <= hash("__" + id, unit, 1) < end. */
int assign_in_namespace(const char *unit, size_t unit_len, const char *ns_id, size_t ns_len,
                        double start, double end);

#endif
