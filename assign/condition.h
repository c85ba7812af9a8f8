/*
 * GrowthBook's targeting-condition language (MongoDB-style), compiled once and evaluated many
 * times against a unit's attributes. Private to assign/: the evaluation core (eval.c) compiles
 * each experiment's condition when a snapshot is compiled, and evaluates it per request. Pure:
 * no I/O, no locks; a compiled condition is immutable and may be evaluated from any thread.
 * Semantics: GrowthBook's SDK spec (docs/lib/build-your-own.mdx, "evalCondition") and its
 * reference implementation (packages/sdk-js/src/mongrule.ts), checked by the evalCondition
 * section of tests/data/growthbook-cases.json.
 */
#ifndef ABACUS_ASSIGN_CONDITION_H
#define ABACUS_ASSIGN_CONDITION_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/err.h"

struct assign_cond;

/*
 * Compiles condition (a JSON object; not stolen, not kept: everything needed is copied) into
 * *out, the caller's, freed with assign_cond_free. saved_groups (an object mapping group id to
 * an array of values, or NULL) is resolved now for $inGroup / $notInGroup. Regular expressions
 * ($regex, $regexi) are compiled here with PCRE2, once; one that does not compile makes that
 * operator evaluate to false, as in the reference SDK. Errors: AB_ERR_INVALID_FIELD when condition
 * is not an object, with the path of the offending part in ei->field.
 */
enum ab_err assign_cond_compile(const json_t *condition, const json_t *saved_groups,
                                struct assign_cond **out, struct ab_errinfo *ei);

/* 1 when attributes (a JSON object, or NULL for none) satisfy the condition, else 0. */
int assign_cond_eval(const struct assign_cond *cond, const json_t *attributes);

/*
 * A unit's attributes, indexed once per request: a request evaluates many experiments for one
 * unit, and each looks up its hash attribute and the attributes of its condition. A short linear
 * scan of this array is cheaper than hashing the name for jansson's table every time. An object
 * with more keys than fit is not indexed; lookups then go to the object.
 */
#define ASSIGN_ATTRS_INDEXED 16
struct assign_attrs {
    const json_t *obj; /* the attributes object; NULL for none, or read without jansson */
    int indexed;       /* 1: items holds every key of obj */
    size_t n;
    uint64_t tags[ASSIGN_ATTRS_INDEXED]; /* tags[i]: assign_attr_tag of items[i]'s name */
    struct assign_attr {
        const char *name;
        size_t len;
        const json_t *value; /* NULL when read without jansson (assign_post_read): scalars */
        /* the value read once, since every experiment reads it again */
        json_type type;
        double num;      /* JSON_INTEGER, JSON_REAL: the number; JSON_TRUE 1; else 0 */
        const char *str; /* JSON_STRING: its bytes (str_len of them); else NULL */
        size_t str_len;
        uint64_t str_tag; /* JSON_STRING: assign_attr_tag(str, str_len), for $in */
    } items[ASSIGN_ATTRS_INDEXED];
};

/*
 * The first 7 bytes of name[0..len), zero-padded, and the length (up to 255) in the top byte, as
 * one word. Names are short: equal tags tell almost every pair apart, and prove names of up to 7
 * bytes equal, without comparing bytes. Conditions and experiments compute the tags of the names
 * they look up once.
 */
uint64_t assign_attr_tag(const char *name, size_t len);

/* Indexes obj (an object; anything else counts as none); a borrows obj, which must outlive it. */
void assign_attrs_index(struct assign_attrs *a, const json_t *obj);

/* The attribute name[0..len) of a, or NULL; tag is assign_attr_tag(name, len). */
const json_t *assign_attrs_get(const struct assign_attrs *a, const char *name, size_t len,
                               uint64_t tag);

/* The item of the attribute name[0..len) of a (which must be indexed), or NULL. */
const struct assign_attr *assign_attrs_find(const struct assign_attrs *a, const char *name,
                                            size_t len, uint64_t tag);

/* assign_cond_eval over indexed attributes: the same answer, fewer lookups. */
int assign_cond_eval_attrs(const struct assign_cond *cond, const struct assign_attrs *attrs);

/* Accepts NULL. */
void assign_cond_free(struct assign_cond *cond);

#endif
