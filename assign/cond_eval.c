/*
 * The evaluator of targeting conditions: a compiled condition (cond_int.h) against a unit's
 * attributes, with the JavaScript conversions that the reference (mongrule.ts) relies on:
 * ToString, ToNumber, ToPrimitive, strict and SameValueZero equality, JSON.stringify equality
 * and UTF-16 string order. It is not a JavaScript engine: it emulates only what the reference
 * does to JSON values. Runs on the request path: nothing allocated but for strings built from
 * non-strings and PCRE2's per-thread match data (created on a thread's first match).
 */
#include <pthread.h>
#include <stdio.h>
#include "cond_int.h"

/* Conversions ---------------------------------------------------------------------------------- */

/* Appends ToString of a JSON value; in an array's join, null is the empty string. */
static void sb_put_json(struct sbuf *b, const json_t *j, int in_array, int depth)
{
    char num[JS_NUMBER_MAX];
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
struct js_str cond_to_string(struct val v, struct sbuf *b)
{
    char num[JS_NUMBER_MAX];
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
        d = js_string_to_number(cond_to_string(v, &b));
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
static int all_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

void cond_padded_version(struct js_str in, struct sbuf *out)
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
        if (j > i && all_digits(s + i, j - i) && j - i < 5)
            sb_put(out, "    ", 5 - (j - i));
        sb_put(out, s + i, j - i);
        i = j + 1;
    }
    if (parts == 3)
        sb_put(out, "-~", 2);
}

/* The input of paddedVersionString: numbers as strings, anything else falsy or not a string "0". */
struct js_str cond_version_input(struct val v, char num[JS_NUMBER_MAX])
{
    if (v.type == V_STR && val_str(v).len > 0)
        return val_str(v);
    if (v.type == V_NUM)
        return (struct js_str){num, js_number_format(v.num, num)};
    return (struct js_str){"0", 1};
}

/* Regular expressions -------------------------------------------------------------------------- */

/* PCRE2's allocations abort on exhaustion like the rest of Abacus. */
void *cond_regex_alloc(PCRE2_SIZE size, void *data)
{
    (void)data;
    return ab_mem_calloc(1, size);
}

void cond_regex_release(void *p, void *data)
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
    s->gctx = pcre2_general_context_create(cond_regex_alloc, cond_regex_release, NULL);
    s->md = pcre2_match_data_create(1, s->gctx);
    s->mctx = pcre2_match_context_create(s->gctx);
    pcre2_set_match_limit(s->mctx, COND_REGEX_MATCH_LIMIT);
    pcre2_set_heap_limit(s->mctx, COND_REGEX_HEAP_LIMIT);
    s->jit = pcre2_jit_stack_create((size_t)32 * 1024, (size_t)1024 * 1024, s->gctx);
    if (s->jit != NULL)
        pcre2_jit_stack_assign(s->mctx, NULL, s->jit);
    pthread_setspecific(scratch_key, s);
    return s;
}

/* A match anywhere in s; errors (limits hit, invalid UTF-8) count as no match. */
static int regex_test(const pcre2_code *re, struct js_str s)
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
        struct js_str key = {json_object_iter_key(it), json_object_iter_key_len(it)};
        if (js_array_index(key) < 0 && !js_str_eq(key, c->keys[k++]))
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
        return js_str_eq(val_str(v), c->s);
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
        return js_str_eq(val_str(v), c->s);
    case V_ARR:
    case V_OBJ:
        break;
    }
    return 0;
}

static int string_equals(struct val v, struct js_str s, const pcre2_code *fold)
{
    struct sbuf b;
    sb_init(&b);
    struct js_str a = cond_to_string(v, &b);
    int rc = fold != NULL ? regex_test(fold, a) : js_str_eq(a, s);
    sb_free(&b);
    return rc;
}

int cond_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The order of a set's strings: by length, then bytewise. It serves membership only. */
static int cmp_str_len_first(struct js_str x, struct js_str y)
{
    if (x.len != y.len)
        return x.len < y.len ? -1 : 1;
    return js_bytes_cmp(x.p, y.p, x.len);
}

int cond_cmp_set_str(const void *a, const void *b)
{
    return cmp_str_len_first(((const struct set_str *)a)->s, ((const struct set_str *)b)->s);
}

static int in_sorted_strs(const struct set_str *strs, size_t n, struct js_str key)
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
in_strs_tagged(const struct set_str *strs, size_t n, struct js_str s, uint64_t tag)
{
    if (n > SET_SCAN_MAX)
        return in_sorted_strs(strs, n, s);
    for (size_t i = 0; i < n; i++)
        if (strs[i].tag == tag &&
            (s.len <= 7 ||
             (strs[i].s.len == s.len && js_bytes_cmp(strs[i].s.p + 7, s.p + 7, s.len - 7) == 0)))
            return 1;
    return 0;
}

/* SameValueZero membership; caseless compares strings as toLowerCase does (PCRE2 folding). */
static int in_set_scalar(const struct inset *set, struct val v)
{
    struct js_str key;
    switch (v.type) {
    case V_NULL:
        return set->has_null;
    case V_BOOL:
        return v.num != 0 ? set->has_true : set->has_false;
    case V_NUM:
        return bsearch(&v.num, set->nums, set->nnum, sizeof *set->nums, cond_cmp_double) != NULL;
    case V_STR:
        key = val_str(v);
        if (!set->caseless)
            return in_sorted_strs(set->strs, set->nstr, key);
        for (size_t i = 0; i < set->nstr; i++) {
            const struct set_str *e = &set->strs[i];
            if (e->fold != NULL ? regex_test(e->fold, key) : js_str_eq(e->s, key))
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
    struct js_str s = cond_to_string(a, &sb);
    int rc = b->is_str ? order_holds(code, js_strcmp(s, b->s))
                       : numbers_ordered(code, js_string_to_number(s), b->num);
    sb_free(&sb);
    return rc;
}

static int eval_version(enum opcode code, struct val v, struct js_str expected)
{
    char num[JS_NUMBER_MAX];
    struct sbuf pad;
    sb_init(&pad);
    cond_padded_version(cond_version_input(v, num), &pad);
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
    int rc = regex_test(re, cond_to_string(v, &b));
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
            return js_str_eq(val_str(v), t->u.str.s);
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

/*
 * eval_op for an attribute that is a string (s its bytes, tag their assign_attr_tag) or a
 * number: the operators conditions use most, without reading the string from jansson again. The
 * others go to eval_op.
 */
static int eval_op_scalar(const struct op *op, struct val v, struct js_str s, uint64_t tag)
{
    const int str = v.type == V_STR;
    switch (op->code) {
    case OP_EQ:
    case OP_NE:
        if (op->u.val.type != v.type)
            return op->code == OP_NE;
        return (str ? js_str_eq(s, op->u.val.s) : v.num == op->u.val.num) == (op->code == OP_EQ);
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
    struct js_str s = {it->str, it->str_len};
    if (cl->op != NULL)
        return eval_op_scalar(cl->op, v, s, it->str_tag);
    if (t->kind == VT_STR && v.type == V_STR)
        return js_str_eq(s, t->u.str.s);
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
            struct js_str v = {it->str, it->str_len};
            if (c->kind == K_STR_EQ || c->kind == K_STR_NE)
                ok = js_str_eq(v, c->s) == (c->kind == K_STR_EQ);
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

