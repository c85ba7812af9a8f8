/*
 * GrowthBook's targeting conditions (see condition.h). assign_cond_compile turns the JSON into a
 * tree of nodes: operators as enums, literals copied into an arena, regexes compiled once with
 * PCRE2, constant version strings padded, saved groups resolved to sorted sets. assign_cond_eval
 * walks that tree against the attributes with the JavaScript conversions that the reference
 * (mongrule.ts) relies on: ToString, ToNumber, ToPrimitive, strict and SameValueZero equality,
 * JSON.stringify equality and UTF-16 string order. It is not a JavaScript engine: it emulates
 * only what the reference does to JSON values. Called by assign/'s evaluation core.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pcre2.h>
#include "abacus/mem.h"
#include "condition.h"

#define COND_MAX_DEPTH 64 /* JSON levels accepted in a condition and followed in an attribute */
#define COND_MAX_STRING ((size_t)64 * 1024) /* bytes kept of a string built from a non-string */
#define REGEX_MATCH_LIMIT 1000000           /* PCRE2 match limit; a regex that hits it is false */
#define REGEX_HEAP_LIMIT 4096               /* KiB of PCRE2 backtracking memory per match */
#define ARENA_CHUNK 1024                    /* bytes */

/* Values --------------------------------------------------------------------------------------- */

struct str {
    const char *p; /* not NUL-terminated in general */
    size_t len;
};

/* The JSON types; the order is that of the names $type knows (type_names). */
enum vtype { V_NULL, V_BOOL, V_NUM, V_STR, V_ARR, V_OBJ };

/*
 * A value under test. A missing attribute is V_NULL, as the reference's getPath returns null.
 * 16 bytes, so that it is passed in registers. The root of an evaluation over indexed attributes
 * is a V_OBJ with indexed set: only getPath reads it (every clause looks up at least one key).
 */
struct val {
    enum vtype type;
    int indexed; /* V_OBJ: attrs, not j; V_STR: attr, not j */
    union {
        double num;                        /* V_NULL (0), V_BOOL (0 or 1), V_NUM */
        const json_t *j;                   /* V_STR, V_ARR, V_OBJ */
        const struct assign_attrs *attrs;  /* V_OBJ when indexed */
        const struct assign_attr *attr;    /* V_STR when indexed: the string indexing read */
    };
};

/* A literal of the condition, compared as JSON.stringify compares. */
struct cval {
    enum vtype type;
    double num;         /* V_BOOL, V_NUM */
    struct str s;       /* V_STR */
    struct cval *items; /* V_ARR elements, V_OBJ values */
    struct str *keys;   /* V_OBJ: array-index keys ascending, then the others in document order */
    size_t n;           /* items */
    size_t nindex;      /* V_OBJ: how many keys are array indices */
};

/* The operand of $lt, $lte, $gt, $gte after ToPrimitive. */
struct prim {
    int is_str;
    double num; /* the number, or ToNumber of the string */
    struct str s;
};

struct set_str {
    struct str s;
    uint64_t tag;           /* assign_attr_tag of s */
    const pcre2_code *fold; /* caseless sets: an anchored caseless literal; NULL compares bytes */
};

/* Sets of up to this many strings are scanned by tag rather than searched. */
#define SET_SCAN_MAX 16

/* The values of $in, $nin, $ini, $nini, $inGroup, $notInGroup. */
struct inset {
    struct set_str *strs; /* sorted by cmp_set_str, unless caseless */
    size_t nstr;
    double *nums; /* sorted */
    size_t nnum;
    int caseless, has_null, has_true, has_false;
};

enum vt_kind { VT_STR, VT_STR_I, VT_NUM, VT_BOOL, VT_NULL, VT_DEEP, VT_OPS };

struct op;
struct cnode;

/* evalConditionValue(conditionValue, value, insensitive) with its condition value compiled. */
struct vtest {
    enum vt_kind kind;
    union {
        struct {
            struct str s;
            pcre2_code *fold; /* VT_STR_I; NULL compares bytes */
        } str;
        double num; /* VT_NUM; VT_BOOL 0 or 1 */
        struct cval deep;
        struct {
            struct op *ops;
            size_t n;
        } ops;
    } u;
};

enum opcode {
    OP_FALSE, /* unknown operator, or an operand the reference cannot use */
    OP_EQ,
    OP_NE,
    OP_LT, /* OP_LT..OP_GTE and OP_VEQ..OP_VGTE are in the order of their enum opname */
    OP_LTE,
    OP_GT,
    OP_GTE,
    OP_VEQ,
    OP_VNE,
    OP_VLT,
    OP_VLTE,
    OP_VGT,
    OP_VGTE,
    OP_EXISTS,
    OP_IN,
    OP_NIN,
    OP_ALL,
    OP_ELEM_VALUE, /* $elemMatch with an operator object */
    OP_ELEM_COND,  /* $elemMatch with a condition */
    OP_SIZE,
    OP_NOT,
    OP_REGEX,
    OP_TYPE,
};

struct op {
    enum opcode code;
    union {
        struct cval val;    /* OP_EQ, OP_NE */
        struct prim prim;   /* OP_LT..OP_GTE */
        struct str version; /* OP_VEQ..OP_VGTE: paddedVersionString of the operand */
        int exists;         /* OP_EXISTS: the operand's truthiness */
        struct inset set;   /* OP_IN, OP_NIN */
        struct {
            struct vtest *tests;
            size_t n;
        } all;                /* OP_ALL */
        struct vtest *test;   /* OP_ELEM_VALUE, OP_SIZE, OP_NOT */
        struct cnode *cond;   /* OP_ELEM_COND */
        const pcre2_code *re; /* OP_REGEX */
        enum vtype type;      /* OP_TYPE */
    } u;
};

struct path_part {
    struct str key;
    uint64_t tag;  /* assign_attr_tag of key */
    int64_t index; /* the array index the key spells canonically, or -1 */
    int is_length; /* the key is "length", which arrays have too */
};

enum cl_kind { CL_PATH, CL_AND, CL_OR, CL_NOR, CL_NOT };

/*
 * A clause of a flat condition, laid out for the test it most likely is: the attribute's tag,
 * and for the commonest tests their operand, decided here when the attribute has the type they
 * expect; anything else goes to the clause's general evaluation.
 */
enum check_kind { K_CLAUSE, K_STR_EQ, K_STR_NE, K_STR_IN, K_STR_NIN, K_NUM_ORDER };

struct check {
    enum check_kind kind;
    uint64_t tag;               /* assign_attr_tag of the attribute's name */
    const struct clause *cl;    /* the clause */
    enum opcode code;           /* K_NUM_ORDER: OP_LT..OP_GTE */
    double num;                 /* K_NUM_ORDER */
    struct str s;               /* K_STR_EQ, K_STR_NE */
    const struct set_str *strs; /* K_STR_IN, K_STR_NIN */
    size_t nstr;
};

/* One key of a condition object. */
struct clause {
    enum cl_kind kind;
    const struct op *op; /* CL_PATH of the root: the test's only operator, if it has one alone */
    struct cnode *subs; /* CL_AND, CL_OR, CL_NOR: nsubs conditions; CL_NOT: one */
    size_t nsubs;
    struct path_part *parts; /* CL_PATH: the dot-separated attribute path */
    size_t nparts;
    struct vtest test; /* CL_PATH */
};

/* A condition object: all its clauses must hold. */
struct cnode {
    struct clause *clauses;
    size_t n;
};

struct arena_chunk {
    struct arena_chunk *next;
    size_t used, cap; /* bytes of data */
    max_align_t data[];
};

/* A compiled regex, on the list of those freed with the condition. */
struct kept_code {
    struct kept_code *next;
    pcre2_code *re;
};

struct assign_cond {
    struct arena_chunk *arena; /* every node, literal and string */
    struct kept_code *codes;   /* every compiled regex */
    struct cnode root;
    int flat; /* every clause of root tests one top-level attribute (no $and, no dots) */
    struct check *checks; /* flat: root's clauses as checks, in the arena */
};

/* Memory --------------------------------------------------------------------------------------- */

/* Zeroed, max_align_t-aligned memory that lives as long as the arena. */
static void *arena_alloc(struct arena_chunk **head, size_t n, size_t size)
{
    const size_t align = sizeof(max_align_t);
    size_t bytes;
    if (__builtin_mul_overflow(n, size, &bytes) || bytes > SIZE_MAX / 2) {
        fprintf(stderr, "abacus: condition too large (%zu x %zu bytes)\n", n, size);
        abort();
    }
    bytes = (bytes + align - 1) / align * align;
    struct arena_chunk *c = *head;
    if (c != NULL && c->cap - c->used >= bytes) {
        void *p = (char *)c->data + c->used;
        c->used += bytes;
        return p;
    }
    size_t cap = bytes > ARENA_CHUNK / 4 ? bytes : ARENA_CHUNK;
    struct arena_chunk *fresh = ab_mem_calloc(1, sizeof *fresh + cap);
    fresh->cap = cap;
    fresh->used = bytes;
    if (c != NULL && bytes > ARENA_CHUNK / 4) { /* a large block: the current chunk stays current */
        fresh->next = c->next;
        c->next = fresh;
    } else {
        fresh->next = c;
        *head = fresh;
    }
    return fresh->data;
}

static struct str arena_str(struct arena_chunk **head, struct str s)
{
    char *p = arena_alloc(head, s.len + 1, 1);
    memcpy(p, s.p, s.len);
    return (struct str){p, s.len};
}

/* A string under construction: inline up to 255 bytes, then on the heap. */
struct sbuf {
    char *p;
    size_t len, cap;
    size_t limit; /* bytes kept; what is appended past it is dropped */
    char inl[256];
};

static void sb_init(struct sbuf *b)
{
    b->p = b->inl;
    b->len = 0;
    b->cap = sizeof b->inl;
    b->limit = COND_MAX_STRING;
    b->inl[0] = '\0';
}

static void sb_free(struct sbuf *b)
{
    if (b->p != b->inl)
        free(b->p);
}

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
    if (n > b->limit - b->len)
        n = b->limit - b->len;
    if (b->len + n >= b->cap) {
        size_t cap = b->cap * 2 > b->len + n + 1 ? b->cap * 2 : b->len + n + 1;
        if (b->p == b->inl)
            b->p = memcpy(ab_mem_calloc(1, cap), b->inl, b->len);
        else
            b->p = ab_mem_realloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static struct str sb_str(const struct sbuf *b)
{
    return (struct str){b->p, b->len};
}

/* JavaScript strings and numbers --------------------------------------------------------------- */

/*
 * memcmp for the short texts attribute names and values are: below a few dozen bytes a loop costs
 * less than the call, and every evaluation makes several.
 */
static int bytes_cmp(const char *a, const char *b, size_t n)
{
    if (n > 32)
        return memcmp(a, b, n);
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return (unsigned char)a[i] < (unsigned char)b[i] ? -1 : 1;
    return 0;
}

static int str_eq(struct str a, struct str b)
{
    return a.len == b.len && bytes_cmp(a.p, b.p, a.len) == 0;
}

static int str_is(struct str a, const char *lit)
{
    return a.len == strlen(lit) && memcmp(a.p, lit, a.len) == 0;
}

/* Decodes the UTF-8 code point at s; returns its length, 0 when the bytes are not valid UTF-8. */
static size_t utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    size_t n;
    uint32_t v, min;
    if (len == 0)
        return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if ((s[0] & 0xE0) == 0xC0) {
        n = 2, v = s[0] & 0x1Fu, min = 0x80;
    } else if ((s[0] & 0xF0) == 0xE0) {
        n = 3, v = s[0] & 0x0Fu, min = 0x800;
    } else if ((s[0] & 0xF8) == 0xF0) {
        n = 4, v = s[0] & 0x07u, min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        v = v << 6 | (s[i] & 0x3Fu);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        return 0;
    *cp = v;
    return n;
}

/* The first UTF-16 code unit of a code point: what JavaScript compares strings by. */
static uint32_t utf16_lead(uint32_t cp)
{
    return cp < 0x10000 ? cp : 0xD800 + ((cp - 0x10000) >> 10);
}

/*
 * JavaScript's string order (by UTF-16 code units) of two UTF-8 strings: <0, 0 or >0. It equals
 * the byte order except between U+E000..U+FFFF and the code points above U+FFFF.
 */
static int js_strcmp(struct str a, struct str b)
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
    if (utf8_decode(pa + start, a.len - start, &ca) == 0 ||
        utf8_decode(pb + start, b.len - start, &cb) == 0)
        return pa[i] < pb[i] ? -1 : 1;
    if (utf16_lead(ca) != utf16_lead(cb))
        return utf16_lead(ca) < utf16_lead(cb) ? -1 : 1;
    return ca < cb ? -1 : 1;
}

/* Number::toString (ECMA-262 6.1.6.1.20): the shortest digits that read back as x. */
static size_t js_number_format(double x, char out[40])
{
    char e[32], digits[20] = "";
    size_t o = 0, k = 0;
    if (isnan(x) || isinf(x) || x == 0) {
        const char *s = isnan(x) ? "NaN" : x == 0 ? "0" : x < 0 ? "-Infinity" : "Infinity";
        memcpy(out, s, strlen(s) + 1);
        return strlen(s);
    }
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
        o += (size_t)snprintf(out + o, 40 - o, "e%c%ld", n - 1 < 0 ? '-' : '+', labs(n - 1));
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

static struct str js_trim(struct str s)
{
    const unsigned char *p = (const unsigned char *)s.p;
    size_t len = s.len, n;
    uint32_t c;
    while ((n = utf8_decode(p, len, &c)) != 0 && js_space(c))
        p += n, len -= n;
    while (len > 0) {
        size_t start = len - 1;
        while (start > 0 && len - start < 4 && (p[start] & 0xC0) == 0x80)
            start--;
        if (utf8_decode(p + start, len - start, &c) != len - start || !js_space(c))
            break;
        len = start;
    }
    return (struct str){(const char *)p, len};
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
static double js_string_to_number(struct str in)
{
    struct str s = js_trim(in);
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
static int64_t array_index(struct str s)
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

static struct val val_of(const json_t *j)
{
    struct val v = {.type = V_NULL, .num = 0};
    if (j == NULL)
        return v;
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v.type = V_OBJ;
        v.j = j;
        break;
    case JSON_ARRAY:
        v.type = V_ARR;
        v.j = j;
        break;
    case JSON_STRING:
        v.type = V_STR;
        v.j = j;
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        v.type = V_NUM;
        v.num = json_number_value(j);
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v.type = V_BOOL;
        v.num = json_is_true(j);
        break;
    case JSON_NULL:
        break;
    }
    return v;
}

static struct val val_num(double n)
{
    struct val v = {.type = V_NUM, .num = n};
    return v;
}

static struct str val_str(struct val v)
{
    if (v.indexed)
        return (struct str){v.attr->str, v.attr->str_len};
    return (struct str){json_string_value(v.j), json_string_length(v.j)};
}

/*
 * The value of an indexed attribute (NULL: missing), from what indexing read: no call into
 * jansson, and strings need no JSON value (attributes read by assign_post_read have none).
 */
static struct val val_of_attr(const struct assign_attr *it)
{
    static const enum vtype types[] = {
        [JSON_OBJECT] = V_OBJ, [JSON_ARRAY] = V_ARR, [JSON_STRING] = V_STR, [JSON_INTEGER] = V_NUM,
        [JSON_REAL] = V_NUM,   [JSON_TRUE] = V_BOOL, [JSON_FALSE] = V_BOOL, [JSON_NULL] = V_NULL,
    };
    struct val v = {.type = V_NULL, .num = 0};
    if (it == NULL)
        return v;
    v.type = types[it->type];
    if (v.type == V_NUM || v.type == V_BOOL) {
        v.num = it->num;
    } else if (v.type == V_STR) {
        v.indexed = 1;
        v.attr = it;
    } else if (v.type != V_NULL) {
        v.j = it->value;
    }
    return v;
}

static int truthy(struct val v)
{
    switch (v.type) {
    case V_NULL:
        return 0;
    case V_BOOL:
    case V_NUM:
        return v.num != 0 && !isnan(v.num);
    case V_STR:
        return val_str(v).len > 0;
    case V_ARR:
    case V_OBJ:
        return 1;
    }
    return 0;
}

/* Appends ToString of a JSON value; in an array's join, null is the empty string. */
static void sb_put_json(struct sbuf *b, const json_t *j, int in_array, int depth)
{
    char num[40];
    switch (json_typeof(j)) {
    case JSON_NULL:
        if (!in_array)
            sb_put(b, "null", 4);
        break;
    case JSON_TRUE:
        sb_put(b, "true", 4);
        break;
    case JSON_FALSE:
        sb_put(b, "false", 5);
        break;
    case JSON_INTEGER:
    case JSON_REAL:
        sb_put(b, num, js_number_format(json_number_value(j), num));
        break;
    case JSON_STRING:
        sb_put(b, json_string_value(j), json_string_length(j));
        break;
    case JSON_OBJECT:
        sb_put(b, "[object Object]", 15);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(j) && depth < COND_MAX_DEPTH; i++) {
            if (i > 0)
                sb_put(b, ",", 1);
            sb_put_json(b, json_array_get(j, i), 1, depth + 1);
        }
        break;
    }
}

/* ToString(v): a view of a string attribute, else built in b. */
static struct str to_string(struct val v, struct sbuf *b)
{
    char num[40];
    switch (v.type) {
    case V_STR:
        return val_str(v);
    case V_NUM:
        sb_put(b, num, js_number_format(v.num, num));
        break;
    case V_NULL:
        sb_put(b, "null", 4);
        break;
    case V_BOOL:
        sb_put(b, v.num != 0 ? "true" : "false", v.num != 0 ? 4 : 5);
        break;
    case V_ARR:
    case V_OBJ:
        sb_put_json(b, v.j, 0, 0);
        break;
    }
    return sb_str(b);
}

static double to_number(struct val v)
{
    struct sbuf b;
    double d;
    switch (v.type) {
    case V_NULL:
    case V_BOOL:
    case V_NUM:
        return v.num;
    case V_STR:
        return js_string_to_number(val_str(v));
    case V_ARR:
        sb_init(&b);
        d = js_string_to_number(to_string(v, &b));
        sb_free(&b);
        return d;
    case V_OBJ:
        break;
    }
    return NAN;
}

/*
 * paddedVersionString: drop a leading "v" and a "+build" suffix, split at '-' and '.', add "~"
 * when there are exactly three parts, left-pad all-digit parts with spaces to 5, join with '-'.
 */
static void padded_version(struct str in, struct sbuf *out)
{
    const char *s = in.p;
    size_t start = in.len > 0 && s[0] == 'v', end = in.len, from = start;
    for (size_t i = start; i < in.len; i++) { /* /\+.*$/: '.' stops at line terminators */
        if (s[i] == '\n' || s[i] == '\r')
            from = i + 1;
        else if (s[i] == '\xE2' && i + 2 < in.len && s[i + 1] == '\x80' &&
                 (s[i + 2] == '\xA8' || s[i + 2] == '\xA9'))
            from = i + 3;
    }
    const char *plus = memchr(s + from, '+', in.len - from);
    if (plus != NULL)
        end = (size_t)(plus - s);
    size_t parts = 0;
    for (size_t i = start; i <= end; parts++) {
        size_t j = i;
        while (j < end && s[j] != '-' && s[j] != '.')
            j++;
        if (parts > 0)
            sb_put(out, "-", 1);
        if (j > i && skip_digits(s, i, j) == j && j - i < 5)
            sb_put(out, "    ", 5 - (j - i));
        sb_put(out, s + i, j - i);
        i = j + 1;
    }
    if (parts == 3)
        sb_put(out, "-~", 2);
}

/* The input of paddedVersionString: numbers as strings, anything else falsy or not a string "0". */
static struct str version_input(struct val v, char num[40])
{
    if (v.type == V_STR && val_str(v).len > 0)
        return val_str(v);
    if (v.type == V_NUM)
        return (struct str){num, js_number_format(v.num, num)};
    return (struct str){"0", 1};
}

/* Regular expressions -------------------------------------------------------------------------- */

/* PCRE2's allocations abort on exhaustion like the rest of Abacus. */
static void *regex_alloc(PCRE2_SIZE size, void *data)
{
    (void)data;
    return ab_mem_calloc(1, size);
}

static void regex_release(void *p, void *data)
{
    (void)data;
    free(p);
}

/* What one thread needs to match: reused, so a match allocates nothing after a thread's first. */
struct regex_scratch {
    pcre2_general_context *gctx;
    pcre2_match_data *md;      /* one ovector pair: only whether there is a match is read */
    pcre2_match_context *mctx; /* the limits above, and jit */
    pcre2_jit_stack *jit;      /* NULL when PCRE2 has no JIT */
};

/*
 * The one piece of process-wide state: a key to each thread's scratch, created once and never
 * changed, whose destructor frees the scratch when the thread exits.
 */
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static pthread_key_t scratch_key;

static void scratch_free(void *p)
{
    struct regex_scratch *s = p;
    pcre2_match_data_free(s->md);
    pcre2_match_context_free(s->mctx);
    pcre2_jit_stack_free(s->jit);
    pcre2_general_context_free(s->gctx);
    free(s);
}

static void scratch_key_create(void)
{
    if (pthread_key_create(&scratch_key, scratch_free) != 0) {
        fputs("abacus: pthread_key_create failed\n", stderr);
        abort();
    }
}

static struct regex_scratch *scratch_get(void)
{
    pthread_once(&scratch_once, scratch_key_create);
    struct regex_scratch *s = pthread_getspecific(scratch_key);
    if (s != NULL)
        return s;
    s = ab_mem_calloc(1, sizeof *s);
    s->gctx = pcre2_general_context_create(regex_alloc, regex_release, NULL);
    s->md = pcre2_match_data_create(1, s->gctx);
    s->mctx = pcre2_match_context_create(s->gctx);
    pcre2_set_match_limit(s->mctx, REGEX_MATCH_LIMIT);
    pcre2_set_heap_limit(s->mctx, REGEX_HEAP_LIMIT);
    s->jit = pcre2_jit_stack_create((size_t)32 * 1024, (size_t)1024 * 1024, s->gctx);
    if (s->jit != NULL)
        pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    pthread_setspecific(scratch_key, s);
    return s;
}

/* A match anywhere in s; errors (limits hit, invalid UTF-8) count as no match. */
static int regex_test(const pcre2_code *re, struct str s)
{
    struct regex_scratch *sc = scratch_get();
    return pcre2_match(re, (PCRE2_SPTR)s.p, s.len, 0, 0, sc->md, sc->mctx) >= 0;
}

/* Evaluation ----------------------------------------------------------------------------------- */

static int eval_cond(const struct cnode *c, struct val obj);
static int eval_vtest(const struct vtest *t, struct val v);

/* getPath: objects by key, arrays by canonical index or "length"; anything else ends in null. */
static struct val get_path(struct val cur, const struct path_part *parts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct path_part *pp = &parts[i];
        if (cur.type == V_OBJ && cur.indexed && cur.attrs->indexed)
            cur = val_of_attr(assign_attrs_find(cur.attrs, pp->key.p, pp->key.len, pp->tag));
        else if (cur.type == V_OBJ && cur.indexed)
            cur = val_of(json_object_getn(cur.attrs->obj, pp->key.p, pp->key.len));
        else if (cur.type == V_OBJ)
            cur = val_of(json_object_getn(cur.j, pp->key.p, pp->key.len));
        else if (cur.type == V_ARR && pp->index >= 0 &&
                 (uint64_t)pp->index < json_array_size(cur.j))
            cur = val_of(json_array_get(cur.j, (size_t)pp->index));
        else if (cur.type == V_ARR && pp->is_length)
            cur = val_num((double)json_array_size(cur.j));
        else
            return val_of(NULL);
    }
    return cur;
}

static int deep_equal(struct val v, const struct cval *c);

/* JSON.stringify equality of objects: the same keys with equal values, in the same order. */
static int object_equal(const json_t *j, const struct cval *c)
{
    if (json_object_size(j) != c->n)
        return 0;
    for (size_t i = 0; i < c->n; i++) {
        const json_t *m = json_object_getn(j, c->keys[i].p, c->keys[i].len);
        if (m == NULL || !deep_equal(val_of(m), &c->items[i]))
            return 0;
    }
    /* The key sets are equal, so the sorted index keys come out alike: compare the others. */
    size_t k = c->nindex;
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it)) {
        struct str key = {json_object_iter_key(it), json_object_iter_key_len(it)};
        if (array_index(key) < 0 && !str_eq(key, c->keys[k++]))
            return 0;
    }
    return 1;
}

static int deep_equal(struct val v, const struct cval *c)
{
    if (v.type != c->type)
        return 0;
    switch (c->type) {
    case V_NULL:
        return 1;
    case V_BOOL:
    case V_NUM:
        return v.num == c->num;
    case V_STR:
        return str_eq(val_str(v), c->s);
    case V_ARR:
        if (json_array_size(v.j) != c->n)
            return 0;
        for (size_t i = 0; i < c->n; i++)
            if (!deep_equal(val_of(json_array_get(v.j, i)), &c->items[i]))
                return 0;
        return 1;
    case V_OBJ:
        return object_equal(v.j, c);
    }
    return 0;
}

/* ===: arrays and objects of the condition are never the attribute's. */
static int strict_equal(struct val v, const struct cval *c)
{
    if (v.type != c->type)
        return 0;
    switch (v.type) {
    case V_NULL:
        return 1;
    case V_BOOL:
    case V_NUM:
        return v.num == c->num;
    case V_STR:
        return str_eq(val_str(v), c->s);
    case V_ARR:
    case V_OBJ:
        break;
    }
    return 0;
}

static int string_equals(struct val v, struct str s, const pcre2_code *fold)
{
    struct sbuf b;
    sb_init(&b);
    struct str a = to_string(v, &b);
    int rc = fold != NULL ? regex_test(fold, a) : str_eq(a, s);
    sb_free(&b);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The order of a set's strings: by length, then bytewise. It serves membership only. */
static int cmp_str_len_first(struct str x, struct str y)
{
    if (x.len != y.len)
        return x.len < y.len ? -1 : 1;
    return bytes_cmp(x.p, y.p, x.len);
}

static int cmp_set_str(const void *a, const void *b)
{
    return cmp_str_len_first(((const struct set_str *)a)->s, ((const struct set_str *)b)->s);
}

static int in_sorted_strs(const struct set_str *strs, size_t n, struct str key)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = cmp_str_len_first(key, strs[mid].s);
        if (c == 0)
            return 1;
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return 0;
}

/* in_sorted_strs for s whose assign_attr_tag is tag: small sets compare tags first. */
static inline __attribute__((always_inline)) int
in_strs_tagged(const struct set_str *strs, size_t n, struct str s, uint64_t tag)
{
    if (n > SET_SCAN_MAX)
        return in_sorted_strs(strs, n, s);
    for (size_t i = 0; i < n; i++)
        if (strs[i].tag == tag &&
            (s.len <= 7 ||
             (strs[i].s.len == s.len && bytes_cmp(strs[i].s.p + 7, s.p + 7, s.len - 7) == 0)))
            return 1;
    return 0;
}

/* SameValueZero membership; caseless compares strings as toLowerCase does (PCRE2 folding). */
static int in_set_scalar(const struct inset *set, struct val v)
{
    struct str key;
    switch (v.type) {
    case V_NULL:
        return set->has_null;
    case V_BOOL:
        return v.num != 0 ? set->has_true : set->has_false;
    case V_NUM:
        return bsearch(&v.num, set->nums, set->nnum, sizeof *set->nums, cmp_double) != NULL;
    case V_STR:
        key = val_str(v);
        if (!set->caseless)
            return in_sorted_strs(set->strs, set->nstr, key);
        for (size_t i = 0; i < set->nstr; i++) {
            const struct set_str *e = &set->strs[i];
            if (e->fold != NULL ? regex_test(e->fold, key) : str_eq(e->s, key))
                return 1;
        }
        return 0;
    case V_ARR:
    case V_OBJ:
        break;
    }
    return 0;
}

/* isIn: an array attribute is in the set when one of its elements is. */
static int in_set(const struct inset *set, struct val v)
{
    if (v.type != V_ARR)
        return in_set_scalar(set, v);
    for (size_t i = 0; i < json_array_size(v.j); i++)
        if (in_set_scalar(set, val_of(json_array_get(v.j, i))))
            return 1;
    return 0;
}

static int order_holds(enum opcode code, int cmp)
{
    switch (code) {
    case OP_LT:
    case OP_VLT:
        return cmp < 0;
    case OP_LTE:
    case OP_VLTE:
        return cmp <= 0;
    case OP_GT:
    case OP_VGT:
        return cmp > 0;
    case OP_GTE:
    case OP_VGTE:
        return cmp >= 0;
    case OP_VEQ:
        return cmp == 0;
    case OP_VNE:
        return cmp != 0;
    default:
        return 0;
    }
}

/* x code y for code OP_LT..OP_GTE: C's comparisons are false with NaN, as JavaScript's are. */
static inline int numbers_ordered(enum opcode code, double x, double y)
{
    return code == OP_LT ? x < y : code == OP_LTE ? x <= y : code == OP_GT ? x > y : x >= y;
}

/* JavaScript's <, <=, >, >=: two strings by code units, else as numbers. */
static int eval_relational(enum opcode code, struct val a, const struct prim *b)
{
    struct sbuf sb;
    if (a.type == V_NULL || a.type == V_BOOL || a.type == V_NUM) /* ToPrimitive is a no-op */
        return numbers_ordered(code, a.num, b->num);
    sb_init(&sb);
    struct str s = to_string(a, &sb);
    int rc = b->is_str ? order_holds(code, js_strcmp(s, b->s))
                       : numbers_ordered(code, js_string_to_number(s), b->num);
    sb_free(&sb);
    return rc;
}

static int eval_version(enum opcode code, struct val v, struct str expected)
{
    char num[40];
    struct sbuf pad;
    sb_init(&pad);
    padded_version(version_input(v, num), &pad);
    int rc = order_holds(code, js_strcmp(sb_str(&pad), expected));
    sb_free(&pad);
    return rc;
}

static int eval_elem_match(const struct op *op, struct val v)
{
    if (v.type != V_ARR)
        return 0;
    for (size_t i = 0; i < json_array_size(v.j); i++) {
        struct val e = val_of(json_array_get(v.j, i));
        if (truthy(e) &&
            (op->code == OP_ELEM_VALUE ? eval_vtest(op->u.test, e) : eval_cond(op->u.cond, e)))
            return 1;
    }
    return 0;
}

/* isInAll: every test passes for some element. */
static int eval_all(const struct vtest *tests, size_t n, struct val v)
{
    if (v.type != V_ARR)
        return 0;
    for (size_t t = 0; t < n; t++) {
        size_t i = 0;
        while (i < json_array_size(v.j) && !eval_vtest(&tests[t], val_of(json_array_get(v.j, i))))
            i++;
        if (i == json_array_size(v.j))
            return 0;
    }
    return 1;
}

static int eval_regex(const pcre2_code *re, struct val v)
{
    struct sbuf b;
    sb_init(&b);
    int rc = regex_test(re, to_string(v, &b));
    sb_free(&b);
    return rc;
}

static int eval_op(const struct op *op, struct val v)
{
    switch (op->code) {
    case OP_FALSE:
        return 0;
    case OP_EQ:
        return strict_equal(v, &op->u.val);
    case OP_NE:
        return !strict_equal(v, &op->u.val);
    case OP_LT:
    case OP_LTE:
    case OP_GT:
    case OP_GTE:
        return eval_relational(op->code, v, &op->u.prim);
    case OP_VEQ:
    case OP_VNE:
    case OP_VLT:
    case OP_VLTE:
    case OP_VGT:
    case OP_VGTE:
        return eval_version(op->code, v, op->u.version);
    case OP_EXISTS:
        return op->u.exists ? v.type != V_NULL : v.type == V_NULL;
    case OP_IN:
        return in_set(&op->u.set, v);
    case OP_NIN:
        return !in_set(&op->u.set, v);
    case OP_ALL:
        return eval_all(op->u.all.tests, op->u.all.n, v);
    case OP_ELEM_VALUE:
    case OP_ELEM_COND:
        return eval_elem_match(op, v);
    case OP_SIZE:
        return v.type == V_ARR && eval_vtest(op->u.test, val_num((double)json_array_size(v.j)));
    case OP_NOT:
        return !eval_vtest(op->u.test, v);
    case OP_REGEX:
        return eval_regex(op->u.re, v);
    case OP_TYPE:
        return v.type == op->u.type;
    }
    return 0;
}

static int eval_vtest(const struct vtest *t, struct val v)
{
    switch (t->kind) {
    case VT_STR:
        if (v.type == V_STR)
            return str_eq(val_str(v), t->u.str.s);
        return string_equals(v, t->u.str.s, NULL);
    case VT_STR_I:
        return string_equals(v, t->u.str.s, t->u.str.fold);
    case VT_NUM:
        return to_number(v) == t->u.num;
    case VT_BOOL:
        return v.type != V_NULL && truthy(v) == (t->u.num != 0);
    case VT_NULL:
        return v.type == V_NULL;
    case VT_DEEP:
        return deep_equal(v, &t->u.deep);
    case VT_OPS:
        for (size_t i = 0; i < t->u.ops.n; i++)
            if (!eval_op(&t->u.ops.ops[i], v))
                return 0;
        return 1;
    }
    return 0;
}

/* evalOr: true for an empty list. */
static int eval_any(const struct cnode *subs, size_t n, struct val obj)
{
    if (n == 0)
        return 1;
    for (size_t i = 0; i < n; i++)
        if (eval_cond(&subs[i], obj))
            return 1;
    return 0;
}

static int eval_clause(const struct clause *cl, struct val obj)
{
    switch (cl->kind) {
    case CL_PATH:
        return eval_vtest(&cl->test, get_path(obj, cl->parts, cl->nparts));
    case CL_AND:
        for (size_t i = 0; i < cl->nsubs; i++)
            if (!eval_cond(&cl->subs[i], obj))
                return 0;
        return 1;
    case CL_OR:
        return eval_any(cl->subs, cl->nsubs, obj);
    case CL_NOR:
        return !eval_any(cl->subs, cl->nsubs, obj);
    case CL_NOT:
        return !eval_cond(cl->subs, obj);
    }
    return 0;
}

static int eval_cond(const struct cnode *c, struct val obj)
{
    for (size_t i = 0; i < c->n; i++)
        if (!eval_clause(&c->clauses[i], obj))
            return 0;
    return 1;
}

int assign_cond_eval(const struct assign_cond *cond, const json_t *attributes)
{
    return eval_cond(&cond->root, val_of(attributes));
}

uint64_t assign_attr_tag(const char *name, size_t len)
{
    uint64_t tag = (uint64_t)(len < 255 ? len : 255) << 56;
    for (size_t i = 0; i < len && i < 7; i++)
        tag |= (uint64_t)(unsigned char)name[i] << (8 * i);
    return tag;
}

void assign_attrs_index(struct assign_attrs *a, const json_t *obj)
{
    a->obj = json_is_object(obj) ? obj : NULL;
    a->n = 0;
    a->indexed = json_object_size(a->obj) <= ASSIGN_ATTRS_INDEXED;
    if (!a->indexed || a->obj == NULL)
        return;
    const char *name;
    size_t len;
    const json_t *value;
    json_object_keylen_foreach((json_t *)a->obj, name, len, value)
    {
        a->tags[a->n] = assign_attr_tag(name, len);
        struct assign_attr *it = &a->items[a->n++];
        *it = (struct assign_attr){
            .name = name, .len = len, .value = value, .type = json_typeof(value)};
        if (it->type == JSON_STRING) {
            it->str = json_string_value(value);
            it->str_len = json_string_length(value);
            it->str_tag = assign_attr_tag(it->str, it->str_len);
        } else {
            it->num = json_is_number(value) ? json_number_value(value) : json_is_true(value);
        }
    }
}

/* assign_attrs_find for names longer than a tag holds: out of line, so that the scan for
 * short names (most) is a loop over tags that needs no registers saved. */
__attribute__((noinline)) static const struct assign_attr *
find_long(const struct assign_attrs *a, const char *name, size_t len, uint64_t tag)
{
    for (size_t i = 0; i < a->n; i++) {
        const struct assign_attr *it = &a->items[i];
        if (a->tags[i] == tag && it->len == len && bytes_cmp(it->name + 7, name + 7, len - 7) == 0)
            return it;
    }
    return NULL;
}

const struct assign_attr *assign_attrs_find(const struct assign_attrs *a, const char *name,
                                            size_t len, uint64_t tag)
{
    if (len > 7)
        return find_long(a, name, len, tag);
    for (size_t i = 0; i < a->n; i++)
        if (a->tags[i] == tag) /* equal tags: equal names of up to 7 bytes */
            return &a->items[i];
    return NULL;
}

const json_t *assign_attrs_get(const struct assign_attrs *a, const char *name, size_t len,
                               uint64_t tag)
{
    if (!a->indexed)
        return json_object_getn(a->obj, name, len);
    const struct assign_attr *it = assign_attrs_find(a, name, len, tag);
    return it != NULL ? it->value : NULL;
}

/*
 * eval_op for an attribute that is a string (s its bytes, tag their assign_attr_tag) or a
 * number: the operators conditions use most, without reading the string from jansson again. The
 * others go to eval_op.
 */
static int eval_op_scalar(const struct op *op, struct val v, struct str s, uint64_t tag)
{
    const int str = v.type == V_STR;
    switch (op->code) {
    case OP_EQ:
    case OP_NE:
        if (op->u.val.type != v.type)
            return op->code == OP_NE;
        return (str ? str_eq(s, op->u.val.s) : v.num == op->u.val.num) == (op->code == OP_EQ);
    case OP_IN:
    case OP_NIN:
        if (!str || op->u.set.caseless)
            break;
        return in_strs_tagged(op->u.set.strs, op->u.set.nstr, s, tag) == (op->code == OP_IN);
    case OP_LT:
    case OP_LTE:
    case OP_GT:
    case OP_GTE:
        if (str && op->u.prim.is_str)
            return order_holds(op->code, js_strcmp(s, op->u.prim.s));
        if (str)
            break;
        return numbers_ordered(op->code, v.num, op->u.prim.num);
    default:
        break;
    }
    return eval_op(op, v);
}

/* eval_vtest of cl's test on the attribute it (NULL: missing), read as indexing left it. */
static int eval_clause_attr(const struct clause *cl, const struct assign_attr *it)
{
    const struct vtest *t = &cl->test;
    struct val v = val_of_attr(it);
    if (v.type != V_STR && v.type != V_NUM)
        return eval_vtest(t, v);
    struct str s = {it->str, it->str_len};
    if (cl->op != NULL)
        return eval_op_scalar(cl->op, v, s, it->str_tag);
    if (t->kind == VT_STR && v.type == V_STR)
        return str_eq(s, t->u.str.s);
    if (t->kind != VT_OPS)
        return eval_vtest(t, v);
    for (size_t i = 0; i < t->u.ops.n; i++)
        if (!eval_op_scalar(&t->u.ops.ops[i], v, s, it->str_tag))
            return 0;
    return 1;
}

int assign_cond_eval_attrs(const struct assign_cond *cond, const struct assign_attrs *attrs)
{
    if (!cond->flat || !attrs->indexed) {
        struct val root = {.type = V_OBJ, .indexed = 1, .attrs = attrs};
        return eval_cond(&cond->root, root);
    }
    /* every clause tests one attribute by name: look each up, test what indexing read */
    for (size_t i = 0; i < cond->root.n; i++) {
        const struct check *c = &cond->checks[i];
        const struct path_part *pp = c->cl->parts;
        const struct assign_attr *it = assign_attrs_find(attrs, pp->key.p, pp->key.len, c->tag);
        int ok = -1; /* -1: for the general evaluation */
        if (it != NULL && it->type == JSON_STRING) {
            struct str v = {it->str, it->str_len};
            if (c->kind == K_STR_EQ || c->kind == K_STR_NE)
                ok = str_eq(v, c->s) == (c->kind == K_STR_EQ);
            else if (c->kind == K_STR_IN || c->kind == K_STR_NIN)
                ok = in_strs_tagged(c->strs, c->nstr, v, it->str_tag) == (c->kind == K_STR_IN);
        } else if (it != NULL && (it->type == JSON_INTEGER || it->type == JSON_REAL)) {
            if (c->kind == K_NUM_ORDER)
                ok = numbers_ordered(c->code, it->num, c->num);
        }
        if (ok < 0)
            ok = eval_clause_attr(c->cl, it);
        if (!ok)
            return 0;
    }
    return 1;
}

/* Compilation ---------------------------------------------------------------------------------- */

struct cc {
    struct assign_cond *cond;
    const json_t *groups; /* saved groups, or NULL */
    pcre2_general_context *gctx;
    pcre2_compile_context *pctx;
    struct ab_errinfo *ei;
    char path[128]; /* where in the condition the compiler is, for errors */
    size_t pathlen;
    int depth; /* JSON levels entered */
};

__attribute__((format(printf, 2, 3))) static enum ab_err fail(struct cc *cc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum ab_err rc = ab_failv(cc->ei, AB_ERR_INVALID_FIELD, cc->path, fmt, ap);
    va_end(ap);
    return rc;
}

/* Appends to the path; returns the mark that path_pop restores. */
__attribute__((format(printf, 2, 3))) static size_t path_push(struct cc *cc, const char *fmt, ...)
{
    size_t mark = cc->pathlen;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cc->path + mark, sizeof cc->path - mark, fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): started above
    va_end(ap);
    if (n > 0)
        cc->pathlen = mark + (size_t)n < sizeof cc->path ? mark + (size_t)n : sizeof cc->path - 1;
    return mark;
}

static size_t path_push_key(struct cc *cc, struct str key)
{
    return path_push(cc, ".%.*s", (int)(key.len < 128 ? key.len : 128), key.p);
}

static void path_pop(struct cc *cc, size_t mark)
{
    cc->pathlen = mark;
    cc->path[mark] = '\0';
}

static void *cc_alloc(struct cc *cc, size_t n, size_t size)
{
    return arena_alloc(&cc->cond->arena, n, size);
}

static struct str cc_str(struct cc *cc, struct str s)
{
    return arena_str(&cc->cond->arena, s);
}

static void keep_code(struct cc *cc, pcre2_code *re)
{
    struct kept_code *k = cc_alloc(cc, 1, sizeof *k);
    k->re = re;
    k->next = cc->cond->codes;
    cc->cond->codes = k;
}

static int is_operator_object(const json_t *j)
{
    if (json_object_size(j) == 0)
        return 0;
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it))
        if (json_object_iter_key_len(it) == 0 || json_object_iter_key(it)[0] != '$')
            return 0;
    return 1;
}

static enum ab_err compile_cond(struct cc *cc, const json_t *j, struct cnode *out);
static enum ab_err compile_vtest(struct cc *cc, const json_t *j, int caseless, struct vtest *out);

struct keyed {
    struct str key;
    const json_t *value;
    int64_t index; /* array index, or -1 */
    size_t pos;    /* in the document */
};

/* JavaScript's property order: array indices ascending, then the other keys as written. */
static int cmp_keyed(const void *a, const void *b)
{
    const struct keyed *x = a, *y = b;
    if ((x->index >= 0) != (y->index >= 0))
        return x->index >= 0 ? -1 : 1;
    if (x->index >= 0)
        return (x->index > y->index) - (x->index < y->index);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

static enum ab_err compile_cval(struct cc *cc, const json_t *j, struct cval *out);

static enum ab_err compile_cval_object(struct cc *cc, const json_t *j, struct cval *out)
{
    enum ab_err rc = AB_OK;
    size_t n = json_object_size(j), i = 0;
    struct keyed *kv = ab_mem_calloc(n, sizeof *kv);
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it), i++) {
        kv[i].key = (struct str){json_object_iter_key(it), json_object_iter_key_len(it)};
        kv[i].value = json_object_iter_value(it);
        kv[i].index = array_index(kv[i].key);
        kv[i].pos = i;
    }
    qsort(kv, n, sizeof *kv, cmp_keyed);
    out->n = n;
    out->keys = cc_alloc(cc, n, sizeof *out->keys);
    out->items = cc_alloc(cc, n, sizeof *out->items);
    for (i = 0; i < n; i++) {
        out->keys[i] = cc_str(cc, kv[i].key);
        out->nindex += kv[i].index >= 0;
        size_t mark = path_push_key(cc, kv[i].key);
        rc = compile_cval(cc, kv[i].value, &out->items[i]);
        path_pop(cc, mark);
        if (rc != AB_OK)
            goto Exit;
    }
Exit:
    free(kv);
    return rc;
}

/* A literal of the condition, for JSON.stringify and === comparisons. */
static enum ab_err compile_cval(struct cc *cc, const json_t *j, struct cval *out)
{
    enum ab_err rc = AB_OK;
    struct val v = val_of(j);
    out->type = v.type;
    out->num = v.type == V_BOOL || v.type == V_NUM ? v.num : 0;
    cc->depth++;
    if (cc->depth > COND_MAX_DEPTH) {
        rc = fail(cc, "nests deeper than %d levels", COND_MAX_DEPTH);
        goto Exit;
    }
    if (v.type == V_STR) {
        out->s = cc_str(cc, val_str(v));
    } else if (v.type == V_OBJ) {
        rc = compile_cval_object(cc, j, out);
    } else if (v.type == V_ARR) {
        out->n = json_array_size(j);
        out->items = cc_alloc(cc, out->n, sizeof *out->items);
        for (size_t i = 0; i < out->n && rc == AB_OK; i++) {
            size_t mark = path_push(cc, "[%zu]", i);
            rc = compile_cval(cc, json_array_get(j, i), &out->items[i]);
            path_pop(cc, mark);
        }
    }
Exit:
    cc->depth--;
    return rc;
}

static pcre2_code *compile_fold(struct cc *cc, struct str s)
{
    int err;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)s.p, s.len,
                                   PCRE2_LITERAL | PCRE2_CASELESS | PCRE2_UTF | PCRE2_ANCHORED |
                                       PCRE2_ENDANCHORED,
                                   &err, &off, cc->pctx);
    if (re != NULL)
        keep_code(cc, re);
    return re;
}

/* JavaScript's \s: ASCII and Unicode spaces, in PCRE2 syntax with PCRE2_ALT_BSUX. */
#define JS_SPACES                                                                                  \
    "\\t\\n\\x0b\\f\\r \\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"

/*
 * The pattern with \s and \S spelt out: without PCRE2_UCP they match only ASCII spaces, and UCP
 * would widen \d and \w beyond ASCII too. \S inside a class is left to PCRE2.
 */
static void js_regex_source(struct str in, struct sbuf *out)
{
    int in_class = 0;
    for (size_t i = 0; i < in.len; i++) {
        if (in.p[i] == '\\' && i + 1 < in.len) {
            i++;
            if (in.p[i] == 's' && in_class)
                sb_put(out, JS_SPACES, strlen(JS_SPACES));
            else if (in.p[i] == 's')
                sb_put(out, "[" JS_SPACES "]", strlen("[" JS_SPACES "]"));
            else if (in.p[i] == 'S' && !in_class)
                sb_put(out, "[^" JS_SPACES "]", strlen("[^" JS_SPACES "]"));
            else
                sb_put(out, in.p + i - 1, 2);
            continue;
        }
        sb_put(out, in.p + i, 1);
        if (in.p[i] == '[' && !in_class) {
            in_class = 1;
            if (i + 1 < in.len && in.p[i + 1] == '^')
                sb_put(out, in.p + ++i, 1);
            if (i + 1 < in.len && in.p[i + 1] == ']') /* [] and [^] are complete classes */
                sb_put(out, in.p + ++i, 1), in_class = 0;
        } else if (in.p[i] == ']') {
            in_class = 0;
        }
    }
}

/*
 * new RegExp(pattern, caseless ? "i" : "") as PCRE2 options: $ only at the end, '.' stops at \r
 * and \n, \uXXXX escapes, [^] and unset back-references as in JavaScript.
 */
static void compile_regex(struct cc *cc, const json_t *v, int caseless, struct op *op)
{
    int err;
    PCRE2_SIZE off;
    op->code = OP_FALSE; /* as when the reference's RegExp throws */
    if (!json_is_string(v))
        return;
    uint32_t opts = PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_ALLOW_EMPTY_CLASS |
                    PCRE2_MATCH_UNSET_BACKREF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C |
                    (caseless ? PCRE2_CASELESS : 0);
    struct sbuf src;
    sb_init(&src);
    src.limit = SIZE_MAX / 4;
    js_regex_source(val_str(val_of(v)), &src);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)src.p, src.len, opts, &err, &off, cc->pctx);
    sb_free(&src);
    if (re == NULL)
        return;
    keep_code(cc, re);
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT, pcre2_match interprets */
    op->code = OP_REGEX;
    op->u.re = re;
}

static void compile_inset(struct cc *cc, const json_t *arr, int caseless, struct inset *set)
{
    size_t n = json_array_size(arr);
    set->caseless = caseless;
    set->strs = cc_alloc(cc, n, sizeof *set->strs);
    set->nums = cc_alloc(cc, n, sizeof *set->nums);
    for (size_t i = 0; i < n; i++) {
        struct val e = val_of(json_array_get(arr, i));
        if (e.type == V_STR) {
            set->strs[set->nstr].s = cc_str(cc, val_str(e));
            set->strs[set->nstr].tag =
                assign_attr_tag(set->strs[set->nstr].s.p, set->strs[set->nstr].s.len);
            if (caseless)
                set->strs[set->nstr].fold = compile_fold(cc, set->strs[set->nstr].s);
            set->nstr++;
        } else if (e.type == V_NUM) {
            set->nums[set->nnum++] = e.num;
        } else if (e.type == V_BOOL) {
            *(e.num != 0 ? &set->has_true : &set->has_false) = 1;
        } else if (e.type == V_NULL) {
            set->has_null = 1;
        } /* arrays and objects are compared by identity: never equal */
    }
    if (!caseless)
        qsort(set->strs, set->nstr, sizeof *set->strs, cmp_set_str);
    qsort(set->nums, set->nnum, sizeof *set->nums, cmp_double);
}

/* savedGroups[id] || []: the key is String(id); a group that is not an array is empty. */
static const json_t *saved_group(struct cc *cc, const json_t *id)
{
    struct sbuf b;
    sb_init(&b);
    struct str key = to_string(val_of(id), &b);
    const json_t *g =
        json_is_object(cc->groups) ? json_object_getn(cc->groups, key.p, key.len) : NULL;
    sb_free(&b);
    return json_is_array(g) ? g : NULL;
}

static void compile_prim(struct cc *cc, const json_t *j, struct prim *out)
{
    struct val v = val_of(j);
    out->num = v.num;
    if (v.type == V_STR || v.type == V_ARR || v.type == V_OBJ) {
        struct sbuf b;
        sb_init(&b);
        out->is_str = 1;
        out->s = cc_str(cc, to_string(v, &b));
        out->num = js_string_to_number(out->s);
        sb_free(&b);
    }
}

static void compile_version(struct cc *cc, const json_t *j, struct str *out)
{
    char num[40];
    struct sbuf pad;
    sb_init(&pad);
    padded_version(version_input(val_of(j), num), &pad);
    *out = cc_str(cc, sb_str(&pad));
    sb_free(&pad);
}

static void compile_type(const json_t *j, struct op *op)
{
    static const char *const type_names[] = {"null",   "boolean", "number",
                                             "string", "array",   "object"};
    op->code = OP_FALSE;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0] && json_is_string(j); i++) {
        if (str_is(val_str(val_of(j)), type_names[i])) {
            op->code = OP_TYPE;
            op->u.type = (enum vtype)i;
        }
    }
}

static enum ab_err compile_all(struct cc *cc, const json_t *j, int caseless, struct op *op)
{
    enum ab_err rc = AB_OK;
    op->code = OP_FALSE;
    if (!json_is_array(j))
        return AB_OK;
    op->code = OP_ALL;
    op->u.all.n = json_array_size(j);
    op->u.all.tests = cc_alloc(cc, op->u.all.n, sizeof *op->u.all.tests);
    cc->depth++;
    if (cc->depth > COND_MAX_DEPTH)
        rc = fail(cc, "nests deeper than %d levels", COND_MAX_DEPTH);
    for (size_t i = 0; i < op->u.all.n && rc == AB_OK; i++) {
        size_t mark = path_push(cc, "[%zu]", i);
        rc = compile_vtest(cc, json_array_get(j, i), caseless, &op->u.all.tests[i]);
        path_pop(cc, mark);
    }
    cc->depth--;
    return rc;
}

static enum ab_err compile_elem_match(struct cc *cc, const json_t *j, struct op *op)
{
    if (!json_is_object(j))
        return fail(cc, "$elemMatch takes an object");
    if (is_operator_object(j)) {
        op->code = OP_ELEM_VALUE;
        op->u.test = cc_alloc(cc, 1, sizeof *op->u.test);
        return compile_vtest(cc, j, 0, op->u.test);
    }
    op->code = OP_ELEM_COND;
    op->u.cond = cc_alloc(cc, 1, sizeof *op->u.cond);
    return compile_cond(cc, j, op->u.cond);
}

/* The operator names, in the order of op_lookup's table. */
enum opname {
    N_EQ,
    N_NE,
    N_LT,
    N_LTE,
    N_GT,
    N_GTE,
    N_VEQ,
    N_VNE,
    N_VLT,
    N_VLTE,
    N_VGT,
    N_VGTE,
    N_EXISTS,
    N_IN,
    N_NIN,
    N_INI,
    N_NINI,
    N_INGROUP,
    N_NOTINGROUP,
    N_ALL,
    N_ALLI,
    N_ELEMMATCH,
    N_SIZE,
    N_NOT,
    N_REGEX,
    N_REGEXI,
    N_TYPE,
    N_UNKNOWN
};

static enum opname op_lookup(struct str name)
{
    static const char *const names[] = {
        "$eq",        "$ne",   "$lt",   "$lte",     "$gt",         "$gte",    "$veq",
        "$vne",       "$vlt",  "$vlte", "$vgt",     "$vgte",       "$exists", "$in",
        "$nin",       "$ini",  "$nini", "$inGroup", "$notInGroup", "$all",    "$alli",
        "$elemMatch", "$size", "$not",  "$regex",   "$regexi",     "$type"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (str_is(name, names[i]))
            return (enum opname)i;
    return N_UNKNOWN;
}

static enum ab_err compile_op(struct cc *cc, struct str name, const json_t *j, struct op *op)
{
    enum opname nm = op_lookup(name);
    switch (nm) {
    case N_EQ:
    case N_NE:
        op->code = nm == N_EQ ? OP_EQ : OP_NE;
        return compile_cval(cc, j, &op->u.val);
    case N_LT:
    case N_LTE:
    case N_GT:
    case N_GTE:
        op->code = (enum opcode)(OP_LT + (nm - N_LT));
        compile_prim(cc, j, &op->u.prim);
        return AB_OK;
    case N_VEQ:
    case N_VNE:
    case N_VLT:
    case N_VLTE:
    case N_VGT:
    case N_VGTE:
        op->code = (enum opcode)(OP_VEQ + (nm - N_VEQ));
        compile_version(cc, j, &op->u.version);
        return AB_OK;
    case N_EXISTS:
        op->code = OP_EXISTS;
        op->u.exists = truthy(val_of(j));
        return AB_OK;
    case N_IN:
    case N_NIN:
    case N_INI:
    case N_NINI:
        op->code = !json_is_array(j) ? OP_FALSE : nm == N_IN || nm == N_INI ? OP_IN : OP_NIN;
        compile_inset(cc, j, nm == N_INI || nm == N_NINI, &op->u.set);
        return AB_OK;
    case N_INGROUP:
    case N_NOTINGROUP:
        op->code = nm == N_INGROUP ? OP_IN : OP_NIN;
        compile_inset(cc, saved_group(cc, j), 0, &op->u.set);
        return AB_OK;
    case N_ALL:
    case N_ALLI:
        return compile_all(cc, j, nm == N_ALLI, op);
    case N_ELEMMATCH:
        return compile_elem_match(cc, j, op);
    case N_SIZE:
    case N_NOT:
        op->code = nm == N_SIZE ? OP_SIZE : OP_NOT;
        op->u.test = cc_alloc(cc, 1, sizeof *op->u.test);
        return compile_vtest(cc, j, 0, op->u.test);
    case N_REGEX:
    case N_REGEXI:
        compile_regex(cc, j, nm == N_REGEXI, op);
        return AB_OK;
    case N_TYPE:
        compile_type(j, op);
        return AB_OK;
    case N_UNKNOWN:
        break;
    }
    op->code = OP_FALSE;
    return AB_OK;
}

static enum ab_err compile_ops(struct cc *cc, const json_t *j, struct vtest *out)
{
    enum ab_err rc = AB_OK;
    size_t i = 0;
    out->kind = VT_OPS;
    out->u.ops.n = json_object_size(j);
    out->u.ops.ops = cc_alloc(cc, out->u.ops.n, sizeof *out->u.ops.ops);
    cc->depth++;
    if (cc->depth > COND_MAX_DEPTH) {
        rc = fail(cc, "nests deeper than %d levels", COND_MAX_DEPTH);
        goto Exit;
    }
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it), i++) {
        struct str name = {json_object_iter_key(it), json_object_iter_key_len(it)};
        size_t mark = path_push_key(cc, name);
        rc = compile_op(cc, name, json_object_iter_value(it), &out->u.ops.ops[i]);
        path_pop(cc, mark);
        if (rc != AB_OK)
            goto Exit;
    }
Exit:
    cc->depth--;
    return rc;
}

static enum ab_err compile_vtest(struct cc *cc, const json_t *j, int caseless, struct vtest *out)
{
    struct val v = val_of(j);
    switch (v.type) {
    case V_STR:
        out->kind = caseless ? VT_STR_I : VT_STR;
        out->u.str.s = cc_str(cc, val_str(v));
        if (caseless)
            out->u.str.fold = compile_fold(cc, out->u.str.s);
        return AB_OK;
    case V_NUM:
    case V_BOOL:
        out->kind = v.type == V_NUM ? VT_NUM : VT_BOOL;
        out->u.num = v.num;
        return AB_OK;
    case V_NULL:
        out->kind = VT_NULL;
        return AB_OK;
    case V_OBJ:
        if (is_operator_object(j))
            return compile_ops(cc, j, out);
        break;
    case V_ARR:
        break;
    }
    out->kind = VT_DEEP;
    return compile_cval(cc, j, &out->u.deep);
}

static void compile_path(struct cc *cc, struct str key, struct clause *out)
{
    out->nparts = 1;
    for (size_t i = 0; i < key.len; i++)
        out->nparts += key.p[i] == '.';
    out->parts = cc_alloc(cc, out->nparts, sizeof *out->parts);
    size_t start = 0;
    for (size_t k = 0; k < out->nparts; k++) {
        size_t end = start;
        while (end < key.len && key.p[end] != '.')
            end++;
        struct str part = {key.p + start, end - start};
        out->parts[k].key = cc_str(cc, part);
        out->parts[k].tag = assign_attr_tag(part.p, part.len);
        out->parts[k].index = array_index(part);
        out->parts[k].is_length = str_is(part, "length");
        start = end + 1;
    }
}

static enum ab_err compile_clause(struct cc *cc, struct str key, const json_t *j,
                                  struct clause *out)
{
    enum ab_err rc = AB_OK;
    out->kind = str_is(key, "$or")    ? CL_OR
                : str_is(key, "$nor") ? CL_NOR
                : str_is(key, "$and") ? CL_AND
                : str_is(key, "$not") ? CL_NOT
                                      : CL_PATH;
    if (out->kind == CL_PATH) {
        compile_path(cc, key, out);
        return compile_vtest(cc, j, 0, &out->test);
    }
    if (out->kind == CL_NOT) {
        out->nsubs = 1;
        out->subs = cc_alloc(cc, 1, sizeof *out->subs);
        return compile_cond(cc, j, out->subs);
    }
    if (!json_is_array(j))
        return fail(cc, "%.*s takes an array of conditions", (int)key.len, key.p);
    out->nsubs = json_array_size(j);
    out->subs = cc_alloc(cc, out->nsubs, sizeof *out->subs);
    cc->depth++;
    for (size_t i = 0; i < out->nsubs && rc == AB_OK; i++) {
        size_t mark = path_push(cc, "[%zu]", i);
        rc = compile_cond(cc, json_array_get(j, i), &out->subs[i]);
        path_pop(cc, mark);
    }
    cc->depth--;
    return rc;
}

static enum ab_err compile_cond(struct cc *cc, const json_t *j, struct cnode *out)
{
    enum ab_err rc = AB_OK;
    size_t i = 0;
    cc->depth++;
    if (!json_is_object(j)) {
        rc = fail(cc, "a condition must be a JSON object");
        goto Exit;
    }
    if (cc->depth > COND_MAX_DEPTH) {
        rc = fail(cc, "nests deeper than %d levels", COND_MAX_DEPTH);
        goto Exit;
    }
    out->n = json_object_size(j);
    out->clauses = cc_alloc(cc, out->n, sizeof *out->clauses);
    for (void *it = json_object_iter((json_t *)j); it != NULL;
         it = json_object_iter_next((json_t *)j, it), i++) {
        struct str key = {json_object_iter_key(it), json_object_iter_key_len(it)};
        size_t mark = path_push_key(cc, key);
        rc = compile_clause(cc, key, json_object_iter_value(it), &out->clauses[i]);
        path_pop(cc, mark);
        if (rc != AB_OK)
            goto Exit;
    }
Exit:
    cc->depth--;
    return rc;
}

/* The check of a flat condition's clause cl. */
static void compile_check(const struct clause *cl, struct check *c)
{
    *c = (struct check){.kind = K_CLAUSE, .tag = cl->parts[0].tag, .cl = cl};
    const struct op *op = cl->op;
    if (cl->test.kind == VT_STR && cl->test.u.str.fold == NULL) {
        c->kind = K_STR_EQ;
        c->s = cl->test.u.str.s;
    } else if (op == NULL) {
        return;
    } else if ((op->code == OP_EQ || op->code == OP_NE) && op->u.val.type == V_STR) {
        c->kind = op->code == OP_EQ ? K_STR_EQ : K_STR_NE;
        c->s = op->u.val.s;
    } else if ((op->code == OP_IN || op->code == OP_NIN) && !op->u.set.caseless) {
        c->kind = op->code == OP_IN ? K_STR_IN : K_STR_NIN;
        c->strs = op->u.set.strs;
        c->nstr = op->u.set.nstr;
    } else if (op->code >= OP_LT && op->code <= OP_GTE && !op->u.prim.is_str) {
        c->kind = K_NUM_ORDER;
        c->code = op->code;
        c->num = op->u.prim.num;
    }
}

enum ab_err assign_cond_compile(const json_t *condition, const json_t *saved_groups,
                                struct assign_cond **out, struct ab_errinfo *ei)
{
    struct cc cc;
    memset(&cc, 0, sizeof cc);
    cc.cond = ab_mem_calloc(1, sizeof *cc.cond);
    cc.groups = saved_groups;
    cc.ei = ei;
    cc.gctx = pcre2_general_context_create(regex_alloc, regex_release, NULL);
    cc.pctx = pcre2_compile_context_create(cc.gctx);
    pcre2_set_newline(cc.pctx, PCRE2_NEWLINE_ANYCRLF);
    path_push(&cc, "condition");
    *out = NULL;
    enum ab_err rc = compile_cond(&cc, condition, &cc.cond->root);
    if (rc == AB_OK) {
        struct cnode *root = &cc.cond->root;
        cc.cond->flat = 1;
        for (size_t i = 0; i < root->n; i++) {
            cc.cond->flat &= root->clauses[i].kind == CL_PATH && root->clauses[i].nparts == 1;
            struct clause *cl = &root->clauses[i];
            if (cl->kind == CL_PATH && cl->test.kind == VT_OPS && cl->test.u.ops.n == 1)
                cl->op = &cl->test.u.ops.ops[0];
        }
        if (cc.cond->flat) {
            cc.cond->checks = cc_alloc(&cc, root->n, sizeof(struct check));
            for (size_t i = 0; i < root->n; i++)
                compile_check(&root->clauses[i], &cc.cond->checks[i]);
        }
        *out = cc.cond;
        cc.cond = NULL;
    }
    pcre2_compile_context_free(cc.pctx);
    pcre2_general_context_free(cc.gctx);
    assign_cond_free(cc.cond);
    return rc;
}

void assign_cond_free(struct assign_cond *cond)
{
    if (cond == NULL)
        return;
    for (struct kept_code *k = cond->codes; k != NULL; k = k->next)
        pcre2_code_free(k->re);
    while (cond->arena != NULL) {
        struct arena_chunk *next = cond->arena->next;
        free(cond->arena);
        cond->arena = next;
    }
    free(cond);
}
