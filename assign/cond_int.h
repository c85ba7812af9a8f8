/*
 * The compiled form of GrowthBook's targeting conditions, private to the two halves of the
 * condition module: the compiler (cond_compile.c: JSON to this tree, once per snapshot) and the
 * evaluator (cond_eval.c: the tree against a unit's attributes, per request). Values under test
 * are views of jansson values or of the attribute index; literals of the condition live in the
 * condition's arena. The small helpers both halves use are inline here.
 */
#ifndef ABACUS_ASSIGN_COND_INT_H
#define ABACUS_ASSIGN_COND_INT_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include <pcre2.h>
#include "abacus/mem.h"
#include "condition.h"
#include "js.h"

#define COND_MAX_DEPTH 64 /* JSON levels accepted in a condition and followed in an attribute */
#define COND_MAX_STRING ((size_t)64 * 1024) /* bytes kept of a string built from a non-string */
#define COND_REGEX_MATCH_LIMIT 1000000 /* PCRE2 match limit; a regex that hits it is false */
#define COND_REGEX_HEAP_LIMIT 4096     /* KiB of PCRE2 backtracking memory per match */

/* Values --------------------------------------------------------------------------------------- */

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
    double num;          /* V_BOOL, V_NUM */
    struct js_str s;     /* V_STR */
    struct cval *items;  /* V_ARR elements, V_OBJ values */
    struct js_str *keys; /* V_OBJ: array-index keys ascending, then the rest in document order */
    size_t n;            /* items */
    size_t nindex;       /* V_OBJ: how many keys are array indices */
};

/* The operand of $lt, $lte, $gt, $gte after ToPrimitive. */
struct prim {
    int is_str;
    double num; /* the number, or ToNumber of the string */
    struct js_str s;
};

struct set_str {
    struct js_str s;
    uint64_t tag;           /* assign_attr_tag of s */
    const pcre2_code *fold; /* caseless sets: an anchored caseless literal; NULL compares bytes */
};

/* Sets of up to this many strings are scanned by tag rather than searched. */
#define SET_SCAN_MAX 16

/* The values of $in, $nin, $ini, $nini, $inGroup, $notInGroup. */
struct inset {
    struct set_str *strs; /* sorted by cond_cmp_set_str, unless caseless */
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
            struct js_str s;
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
        struct js_str version; /* OP_VEQ..OP_VGTE: paddedVersionString of the operand */
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
    struct js_str key;
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
    struct js_str s;               /* K_STR_EQ, K_STR_NE */
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

/* Strings built while evaluating ------------------------------------------------------------ */

/* A string under construction: inline up to 255 bytes, then on the heap. */
struct sbuf {
    char *p;
    size_t len, cap;
    size_t limit; /* bytes kept; what is appended past it is dropped */
    char inl[256];
};

static inline void sb_init(struct sbuf *b)
{
    b->p = b->inl;
    b->len = 0;
    b->cap = sizeof b->inl;
    b->limit = COND_MAX_STRING;
    b->inl[0] = '\0';
}

static inline void sb_free(struct sbuf *b)
{
    if (b->p != b->inl)
        free(b->p);
}

static inline void sb_put(struct sbuf *b, const char *s, size_t n)
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

static inline struct js_str sb_str(const struct sbuf *b)
{
    return (struct js_str){b->p, b->len};
}

/* Values under test ---------------------------------------------------------------------------- */

static inline struct val val_of(const json_t *j)
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

static inline struct val val_num(double n)
{
    struct val v = {.type = V_NUM, .num = n};
    return v;
}

static inline struct js_str val_str(struct val v)
{
    if (v.indexed)
        return (struct js_str){v.attr->str, v.attr->str_len};
    return (struct js_str){json_string_value(v.j), json_string_length(v.j)};
}

/*
 * The value of an indexed attribute (NULL: missing), from what indexing read: no call into
 * jansson, and strings need no JSON value (attributes read by assign_post_read have none).
 */
static inline struct val val_of_attr(const struct assign_attr *it)
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

static inline int truthy(struct val v)
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

/* Shared by the compiler and the evaluator (cond_eval.c) ------------------------------------- */

/* ToString(v): a view of a string attribute, else built in b. */
struct js_str cond_to_string(struct val v, struct sbuf *b);

/*
 * GrowthBook's paddedVersionString of in into out: drop a leading "v" and a "+build" suffix,
 * split at '-' and '.', add "~" when there are exactly three parts, left-pad all-digit parts with
 * spaces to 5, join with '-'.
 */
void cond_padded_version(struct js_str in, struct sbuf *out);

/* The input of paddedVersionString: numbers as strings, anything else falsy or not a string "0". */
struct js_str cond_version_input(struct val v, char num[JS_NUMBER_MAX]);

/* PCRE2's allocator: aborts on exhaustion like the rest of Abacus. */
void *cond_regex_alloc(PCRE2_SIZE size, void *data);
void cond_regex_release(void *p, void *data);

/* qsort orders of a set's numbers and strings (strings by length, then bytes). */
int cond_cmp_double(const void *a, const void *b);
int cond_cmp_set_str(const void *a, const void *b);

#endif
