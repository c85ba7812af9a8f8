/*
 * Limit-checked JSON parsing (see abacus/json.h). A fast path parses the body in one pass into the
 * same jansson values json_loadb would build; on anything it is not sure of it gives up, and the
 * body goes through the depth pre-scan and json_loadb, so jansson stays the authority on what is
 * an error and on its message (load.c and utf.c of jansson 2.14 are the rules followed here). The
 * pre-scan tracks only whether it is inside a string, so it costs less than the parse it guards.
 */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/json.h"
#include "abacus/utf8.h"

/* the fast path checks integers against the range of long long */
_Static_assert(sizeof(json_int_t) == sizeof(long long), "json_int_t is not long long");

const struct ab_json_limits ab_json_default_limits = {(size_t)1024 * 1024, 32};

int ab_json_depth(const char *buf, size_t len, int max_depth)
{
    int depth = 0, deepest = 0, in_string = 0;
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = 0;
            continue;
        }
        switch (c) {
        case '"':
            in_string = 1;
            break;
        case '[':
        case '{':
            if (++depth > deepest) {
                deepest = depth;
                if (deepest > max_depth)
                    return max_depth + 1;
            }
            break;
        case ']':
        case '}':
            depth--;
            break;
        default:
            break;
        }
    }
    return deepest;
}

/* Deepest nesting the fast path takes on; bounds its recursion, well below jansson's 2048. */
#define FAST_MAX_DEPTH 256
/* Longest escaped string (decoded) and longest real number (text) the fast path takes on. */
#define FAST_SCRATCH 4096

struct fast {
    const char *p;   /* next byte to read */
    const char *end; /* buf + len */
    int depth;       /* arrays and objects open at p */
    int max_depth;   /* <= FAST_MAX_DEPTH */
    /* a decoded string or a real's text, NUL-terminated, at most FAST_SCRATCH bytes; the 3 more
       take the last character of a string found too long only once it is written */
    char scratch[FAST_SCRATCH + 4];
};

static json_t *fast_value(struct fast *f);

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static void fast_skip_ws(struct fast *f)
{
    while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
        f->p++;
}

/* Value of the 4 hex digits at p, or -1. */
static int hex4(const char *p)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        if (is_digit(c))
            v = v << 4 | (c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v = v << 4 | (c - 'A' + 10);
        else
            return -1;
    }
    return v;
}

/* Writes code point cp (<= 0x10FFFF, not a surrogate) as UTF-8 at out; returns its length. */
static size_t utf8_put(int cp, char *out)
{
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xc0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xe0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        o[2] = (unsigned char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (unsigned char)(0xf0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
    o[3] = (unsigned char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * Decodes the escape whose backslash is at *pp onto f->scratch[*n] (*n <= FAST_SCRATCH), advancing
 * *pp and *n. -1 for what jansson refuses (an unknown escape, \u without 4 hex digits, \u0000
 * without JSON_ALLOW_NUL, a high surrogate not followed by a low one, a lone low surrogate) and
 * when the decoded text gets longer than FAST_SCRATCH.
 */
static int fast_escape(struct fast *f, const char **pp, size_t *n)
{
    const char *p = *pp;
    size_t left = (size_t)(f->end - p), used = 2;
    int cp;
    if (left < 2)
        return -1;
    switch (p[1]) {
    case '"':
    case '\\':
    case '/':
        cp = (unsigned char)p[1];
        break;
    case 'b':
        cp = '\b';
        break;
    case 'f':
        cp = '\f';
        break;
    case 'n':
        cp = '\n';
        break;
    case 'r':
        cp = '\r';
        break;
    case 't':
        cp = '\t';
        break;
    case 'u':
        cp = left >= 6 ? hex4(p + 2) : -1;
        used = 6;
        if (cp <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
            return -1;
        if (cp >= 0xd800 && cp <= 0xdbff) {
            int lo = left >= 12 && p[6] == '\\' && p[7] == 'u' ? hex4(p + 8) : -1;
            if (lo < 0xdc00 || lo > 0xdfff)
                return -1;
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            used = 12;
        }
        break;
    default:
        return -1;
    }
    *n += utf8_put(cp, f->scratch + *n);
    *pp = p + used;
    return *n <= FAST_SCRATCH ? 0 : -1;
}

/*
 * Reads the string whose opening quote is at f->p and leaves f->p after its closing quote. The
 * text is a view into buf when the string has no escape, else decoded into f->scratch. -1 for
 * what jansson refuses: no closing quote, a byte below 0x20, invalid UTF-8 (ab_utf8_valid follows
 * the same table as jansson's utf8_check_full), a bad escape; and for an escaped string longer
 * than FAST_SCRATCH bytes decoded.
 */
static int fast_string(struct fast *f, const char **text, size_t *len)
{
    const char *start = f->p + 1, *p = start;
    size_t n = 0; /* bytes in f->scratch, once an escape was seen */
    int escaped = 0;
    for (;;) {
        if (p == f->end)
            return -1;
        unsigned char c = (unsigned char)*p;
        size_t k = 1; /* bytes of this character */
        if (c == '"')
            break;
        if (c == '\\') {
            if (!escaped) {
                n = (size_t)(p - start);
                if (n > FAST_SCRATCH)
                    return -1;
                memcpy(f->scratch, start, n);
                escaped = 1;
            }
            if (fast_escape(f, &p, &n) != 0)
                return -1;
            continue;
        }
        if (c < 0x20)
            return -1;
        if (c >= 0x80) {
            k = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
            if ((size_t)(f->end - p) < k || !ab_utf8_valid(p, k))
                return -1;
        }
        if (escaped) {
            if (FAST_SCRATCH - n < k)
                return -1;
            memcpy(f->scratch + n, p, k);
            n += k;
        }
        p += k;
    }
    f->p = p + 1;
    if (escaped) {
        f->scratch[n] = '\0';
        *text = f->scratch;
        *len = n;
    } else {
        *text = start;
        *len = (size_t)(p - start);
    }
    return 0;
}

/* The integer of digits[0..end) (no leading zero), negated when neg; NULL past long long. */
static json_t *fast_integer(const char *digits, const char *end, int neg)
{
    unsigned long long limit = neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX, v = 0;
    for (const char *p = digits; p < end; p++) {
        unsigned d = (unsigned)(*p - '0');
        if (v > (limit - d) / 10)
            return NULL; /* strtoll's ERANGE: jansson's "too big integer" */
        v = v * 10 + d;
    }
    if (!neg || v == 0)
        return json_integer((json_int_t)v);
    return json_integer(-(json_int_t)(v - 1) - 1);
}

/*
 * The real of tok[0..len), by strtod as jansson's jsonp_strtod does; NULL on overflow (jansson's
 * "real number overflow"; underflow is accepted) and when strtod stops early, which it does in a
 * locale whose decimal point is not '.' (jansson puts the locale's point in the text first; the
 * fast path leaves that to it).
 */
static json_t *fast_real(struct fast *f, const char *tok, size_t len)
{
    char *stop;
    if (len > FAST_SCRATCH)
        return NULL;
    memcpy(f->scratch, tok, len);
    f->scratch[len] = '\0';
    double v = strtod(f->scratch, &stop);
    if (stop != f->scratch + len || isinf(v))
        return NULL;
    return json_real(v);
}

/*
 * Reads the number at f->p by jansson's grammar: '-'?, then 0 or digits without a leading zero,
 * then ('.' digits)? and ([eE] [+-]? digits)?; a real with either part, else an integer.
 */
static json_t *fast_number(struct fast *f)
{
    const char *start = f->p, *p = start, *end = f->end;
    int neg = *p == '-', real = 0;
    p += neg;
    if (p == end || !is_digit(*p))
        return NULL;
    if (*p == '0') {
        if (++p < end && is_digit(*p))
            return NULL;
    } else {
        while (p < end && is_digit(*p))
            p++;
    }
    const char *int_end = p;
    if (p < end && *p == '.') {
        if (++p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
        real = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        if (++p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return NULL;
        while (p < end && is_digit(*p))
            p++;
        real = 1;
    }
    f->p = p;
    if (real)
        return fast_real(f, start, (size_t)(p - start));
    return fast_integer(start + neg, int_end, neg);
}

/*
 * Reads the object at f->p. jansson refuses a duplicate key before reading its value. A key
 * decoded into the scratch is inserted at once (with null, replaced by its value after), since
 * reading the value may reuse the scratch; a key that is a view into buf waits for its value.
 */
static json_t *fast_object(struct fast *f)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    f->p++;
    fast_skip_ws(f);
    if (f->p < f->end && *f->p == '}') {
        f->p++;
        return obj;
    }
    for (;;) {
        const char *key;
        size_t klen;
        void *iter = NULL;
        if (f->p == f->end || *f->p != '"' || fast_string(f, &key, &klen) != 0)
            break;
        if (json_object_getn(obj, key, klen) != NULL)
            break;
        if (key == f->scratch) {
            if (json_object_setn_new_nocheck(obj, key, klen, json_null()) != 0)
                break;
            iter = json_object_iter_at(obj, key); /* the scratch is NUL-terminated, NUL-free */
            if (iter == NULL)
                break;
        }
        fast_skip_ws(f);
        if (f->p == f->end || *f->p != ':')
            break;
        f->p++;
        fast_skip_ws(f);
        json_t *v = fast_value(f);
        if ((iter != NULL ? json_object_iter_set_new(obj, iter, v)
                          : json_object_setn_new_nocheck(obj, key, klen, v)) != 0)
            break; /* both take v: they release it on failure */
        fast_skip_ws(f);
        if (f->p < f->end && *f->p == '}') {
            f->p++;
            return obj;
        }
        if (f->p == f->end || *f->p != ',')
            break;
        f->p++;
        fast_skip_ws(f);
    }
    json_decref(obj);
    return NULL;
}

static json_t *fast_array(struct fast *f)
{
    json_t *arr = json_array();
    if (arr == NULL)
        return NULL;
    f->p++;
    fast_skip_ws(f);
    if (f->p < f->end && *f->p == ']') {
        f->p++;
        return arr;
    }
    for (;;) {
        if (json_array_append_new(arr, fast_value(f)) != 0)
            break; /* a NULL value included */
        fast_skip_ws(f);
        if (f->p < f->end && *f->p == ']') {
            f->p++;
            return arr;
        }
        if (f->p == f->end || *f->p != ',')
            break;
        f->p++;
        fast_skip_ws(f);
    }
    json_decref(arr);
    return NULL;
}

/* Reads the value at f->p, which is not whitespace. */
static json_t *fast_value(struct fast *f)
{
    const char *p = f->p;
    size_t left = (size_t)(f->end - p);
    if (left == 0)
        return NULL;
    switch (*p) {
    case '{':
    case '[': {
        if (f->depth >= f->max_depth)
            return NULL; /* the pre-scan (or jansson) words the refusal */
        f->depth++;
        json_t *v = *p == '{' ? fast_object(f) : fast_array(f);
        f->depth--;
        return v;
    }
    case '"': {
        const char *text;
        size_t len;
        if (fast_string(f, &text, &len) != 0)
            return NULL;
        return json_stringn_nocheck(text, len);
    }
    case 't':
        if (left < 4 || memcmp(p, "true", 4) != 0)
            return NULL;
        f->p += 4;
        return json_true();
    case 'f':
        if (left < 5 || memcmp(p, "false", 5) != 0)
            return NULL;
        f->p += 5;
        return json_false();
    case 'n':
        if (left < 4 || memcmp(p, "null", 4) != 0)
            return NULL;
        f->p += 4;
        return json_null();
    default:
        return *p == '-' || is_digit(*p) ? fast_number(f) : NULL;
    }
}

json_t *ab_json_parse_fast(const char *buf, size_t len, int max_depth)
{
    struct fast f; /* not zeroed: the scratch is written before it is read */
    if (buf == NULL || max_depth < 0)
        return NULL;
    f.p = buf;
    f.end = buf + len;
    f.depth = 0;
    f.max_depth = max_depth < FAST_MAX_DEPTH ? max_depth : FAST_MAX_DEPTH;
    fast_skip_ws(&f);
    json_t *doc = fast_value(&f);
    if (doc == NULL)
        return NULL;
    fast_skip_ws(&f);
    if (f.p != f.end) {
        json_decref(doc);
        return NULL;
    }
    return doc;
}

enum ab_err ab_json_parse(const char *buf, size_t len, const struct ab_json_limits *limits,
                          json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (limits == NULL)
        limits = &ab_json_default_limits;
    if (len > limits->max_bytes)
        return ab_fail(ei, AB_ERR_TOO_LARGE, "body", "the body is %zu bytes, over the limit of %zu",
                       len, limits->max_bytes);
    json_t *doc = ab_json_parse_fast(buf, len, limits->max_depth);
    if (doc != NULL) {
        *out = doc;
        return AB_OK;
    }
    /* an error, or an input the fast path leaves to jansson, which decides and words the error */
    if (ab_json_depth(buf, len, limits->max_depth) > limits->max_depth)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body", "JSON nests deeper than %d levels",
                       limits->max_depth);
    json_error_t jerr;
    doc = json_loadb(buf, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (doc == NULL)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body",
                       "invalid JSON at line %d, column %d (byte %d): %s", jerr.line, jerr.column,
                       jerr.position, jerr.text);
    *out = doc;
    return AB_OK;
}
