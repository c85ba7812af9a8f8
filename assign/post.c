/*
 * The POST /v1/assign body of the usual shape, read without jansson: a unit, attributes that are
 * strings, numbers, booleans or null, and maybe a list of experiment keys. Parsing the body into
 * jansson values and indexing them cost more than the evaluations of a few experiments. Anything
 * this reader is not sure of (an escape, an array, a duplicate key, an error to report) makes it
 * give up; the caller then parses the body with jansson as before, which stays the authority on
 * what is valid and on every error. fuzz_post checks that what it accepts, jansson reads alike.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/utf8.h"
#include "assign_int.h"

struct rd {
    const char *p, *end;
};

static void skip_ws(struct rd *r)
{
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

/* Expects c after optional whitespace. */
static int eat(struct rd *r, char c)
{
    skip_ws(r);
    if (r->p == r->end || *r->p != c)
        return 0;
    r->p++;
    return 1;
}

/* Bytes a string's fast scan stops at: 1 the closing quote, 2 give up, 3 not ASCII. */
static const unsigned char STOP[256] = {
    [0 ... 0x1f] = 2,
    ['"'] = 1,
    ['\\'] = 2,
    [0x80 ... 0xff] = 3,
};

/* A string without escapes, of valid UTF-8 without control characters: its bytes. */
static int read_string(struct rd *r, const char **s, size_t *len)
{
    if (!eat(r, '"'))
        return 0;
    const char *start = r->p;
    int high = 0;
    for (;;) {
        if (r->p == r->end)
            return 0;
        unsigned char stop = STOP[(unsigned char)*r->p];
        if (stop == 1)
            break;
        if (stop == 2)
            return 0;
        high |= stop;
        r->p++;
    }
    *s = start;
    *len = (size_t)(r->p - start);
    r->p++;
    return !high || ab_utf8_valid(start, *len);
}

/* assign_attr_tag of s[0..len), which lies in the body before end: one load when it can. */
static uint64_t tag_in_body(const char *s, size_t len, const char *end)
{
    if (end - s < 8)
        return assign_attr_tag(s, len);
    uint64_t x;
    memcpy(&x, s, sizeof(x));
    uint64_t keep = len >= 7 ? 0x00ffffffffffffffull : ((uint64_t)1 << (8 * len)) - 1;
    return (x & keep) | (uint64_t)(len < 255 ? len : 255) << 56;
}

static int is_digit(const char *p, const char *end)
{
    return p < end && *p >= '0' && *p <= '9';
}

/*
 * A JSON number: integers of up to 15 digits (exact as doubles) as JSON_INTEGER, the rest with
 * a fraction or an exponent as JSON_REAL, as strtod reads them; out of range gives up.
 */
static int read_number(struct rd *r, struct assign_attr *it)
{
    const char *start = r->p, *p = r->p, *end = r->end;
    int neg = p < end && *p == '-';
    p += neg;
    if (!is_digit(p, end))
        return 0;
    long long whole = 0;
    int digits = 0;
    if (*p == '0') {
        p++;
        digits = 1;
    } else {
        for (; is_digit(p, end); p++, digits++)
            if (digits < 16)
                whole = whole * 10 + (*p - '0');
    }
    int real = 0;
    if (p < end && *p == '.') {
        real = 1;
        if (!is_digit(++p, end))
            return 0;
        while (is_digit(p, end))
            p++;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (!is_digit(p, end))
            return 0;
        while (is_digit(p, end))
            p++;
    }
    r->p = p;
    if (!real) {
        if (digits > 15)
            return 0;
        it->type = JSON_INTEGER;
        it->num = (double)(neg ? -whole : whole);
        return 1;
    }
    char buf[64];
    size_t n = (size_t)(p - start);
    if (n >= sizeof(buf))
        return 0;
    memcpy(buf, start, n);
    buf[n] = '\0';
    it->type = JSON_REAL;
    it->num = strtod(buf, NULL);
    return isfinite(it->num);
}

static int literal(struct rd *r, const char *word, size_t n)
{
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n) != 0)
        return 0;
    r->p += n;
    return 1;
}

/* A scalar attribute value into it. */
static int read_scalar(struct rd *r, struct assign_attr *it)
{
    skip_ws(r);
    if (r->p == r->end)
        return 0;
    switch (*r->p) {
    case '"':
        it->type = JSON_STRING;
        if (!read_string(r, &it->str, &it->str_len))
            return 0;
        it->str_tag = tag_in_body(it->str, it->str_len, r->end);
        return 1;
    case 't':
        it->type = JSON_TRUE;
        it->num = 1;
        return literal(r, "true", 4);
    case 'f':
        it->type = JSON_FALSE;
        return literal(r, "false", 5);
    case 'n':
        it->type = JSON_NULL;
        return literal(r, "null", 4);
    default:
        return read_number(r, it);
    }
}

/* "null" when it comes next (then *is gets 1). */
static void read_null(struct rd *r, int *is)
{
    skip_ws(r);
    *is = literal(r, "null", 4);
}

static int read_attributes(struct rd *r, struct assign_attrs *a)
{
    int null, id = 0;
    read_null(r, &null);
    if (null)
        return 1;
    if (!eat(r, '{'))
        return 0;
    if (eat(r, '}'))
        return 1;
    do {
        struct assign_attr it = {0};
        if (!read_string(r, &it.name, &it.len) || !eat(r, ':') || !read_scalar(r, &it))
            return 0;
        uint64_t tag = tag_in_body(it.name, it.len, r->end);
        if (assign_attrs_find(a, it.name, it.len, tag) != NULL)
            return 0; /* a duplicate: jansson's to refuse */
        if (it.len == 2 && memcmp(it.name, "id", 2) == 0) {
            if (id++) /* a duplicate too */
                return 0;
            continue; /* the unit is the id */
        }
        if (a->n == ASSIGN_ATTRS_INDEXED - 1) /* room for the id */
            return 0;
        a->tags[a->n] = tag;
        a->items[a->n++] = it;
    } while (eat(r, ','));
    return eat(r, '}');
}

static int read_keys(struct rd *r, struct assign_post *out)
{
    int null;
    read_null(r, &null);
    if (null)
        return 1;
    if (!eat(r, '['))
        return 0;
    out->has_list = 1;
    if (eat(r, ']'))
        return 1;
    do {
        if (out->nkeys == ASSIGN_POST_KEYS_MAX)
            return 0;
        struct assign_key *k = &out->keys[out->nkeys++];
        if (!read_string(r, &k->p, &k->len))
            return 0;
    } while (eat(r, ','));
    return eat(r, ']');
}

int assign_post_read(const char *body, size_t len, size_t unit_max, struct assign_post *out)
{
    struct rd r = {body, body + len};
    memset(out, 0, offsetof(struct assign_post, keys));
    out->attrs.indexed = 1;
    int seen[3] = {0, 0, 0}; /* unit, attributes, experiments */
    const char *id = NULL;
    if (!eat(&r, '{'))
        return 0;
    do {
        const char *key;
        size_t klen;
        if (!read_string(&r, &key, &klen) || !eat(&r, ':'))
            return 0;
        int which = klen == 4 && memcmp(key, "unit", 4) == 0            ? 0
                    : klen == 10 && memcmp(key, "attributes", 10) == 0  ? 1
                    : klen == 11 && memcmp(key, "experiments", 11) == 0 ? 2
                                                                        : -1;
        if (which < 0 || seen[which]++)
            return 0;
        int ok = which == 0   ? read_string(&r, &id, &out->unit_len)
                 : which == 1 ? read_attributes(&r, &out->attrs)
                              : read_keys(&r, out);
        if (!ok)
            return 0;
    } while (eat(&r, ','));
    if (!eat(&r, '}'))
        return 0;
    skip_ws(&r);
    if (r.p != r.end || id == NULL || out->unit_len == 0 || out->unit_len > unit_max)
        return 0;
    out->unit = id;
    struct assign_attrs *a = &out->attrs;
    a->tags[a->n] = (uint64_t)2 << 56 | 'd' << 8 | 'i'; /* assign_attr_tag("id", 2) */
    a->items[a->n++] = (struct assign_attr){.name = "id",
                                            .len = 2,
                                            .type = JSON_STRING,
                                            .str = id,
                                            .str_len = out->unit_len,
                                            .str_tag = tag_in_body(id, out->unit_len, r.end)};
    return 1;
}
