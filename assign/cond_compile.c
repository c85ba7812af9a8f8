/*
 * The compiler of GrowthBook's targeting conditions (see condition.h): the JSON becomes the tree
 * of cond_int.h: operators as enums, literals copied into an arena, regexes compiled once with
 * PCRE2 (JavaScript's syntax translated), constant version strings padded, saved groups resolved
 * to sorted sets, and flat conditions laid out as checks. Runs when a snapshot is compiled, off
 * the request path.
 */
#include <stdarg.h>
#include <stdio.h>
#include "cond_int.h"

#define ARENA_CHUNK 1024 /* bytes */

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

static struct js_str arena_str(struct arena_chunk **head, struct js_str s)
{
    char *p = arena_alloc(head, s.len + 1, 1);
    memcpy(p, s.p, s.len);
    return (struct js_str){p, s.len};
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
    // NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): started above
    int n = vsnprintf(cc->path + mark, sizeof cc->path - mark, fmt, ap);
    va_end(ap);
    if (n > 0)
        cc->pathlen = mark + (size_t)n < sizeof cc->path ? mark + (size_t)n : sizeof cc->path - 1;
    return mark;
}

static size_t path_push_key(struct cc *cc, struct js_str key)
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

static struct js_str cc_str(struct cc *cc, struct js_str s)
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
    struct js_str key;
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
        kv[i].key = (struct js_str){json_object_iter_key(it), json_object_iter_key_len(it)};
        kv[i].value = json_object_iter_value(it);
        kv[i].index = js_array_index(kv[i].key);
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

static pcre2_code *compile_fold(struct cc *cc, struct js_str s)
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
static void js_regex_source(struct js_str in, struct sbuf *out)
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
        qsort(set->strs, set->nstr, sizeof *set->strs, cond_cmp_set_str);
    qsort(set->nums, set->nnum, sizeof *set->nums, cond_cmp_double);
}

/* savedGroups[id] || []: the key is String(id); a group that is not an array is empty. */
static const json_t *saved_group(struct cc *cc, const json_t *id)
{
    struct sbuf b;
    sb_init(&b);
    struct js_str key = cond_to_string(val_of(id), &b);
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
        out->s = cc_str(cc, cond_to_string(v, &b));
        out->num = js_string_to_number(out->s);
        sb_free(&b);
    }
}

static void compile_version(struct cc *cc, const json_t *j, struct js_str *out)
{
    char num[JS_NUMBER_MAX];
    struct sbuf pad;
    sb_init(&pad);
    cond_padded_version(cond_version_input(val_of(j), num), &pad);
    *out = cc_str(cc, sb_str(&pad));
    sb_free(&pad);
}

static void compile_type(const json_t *j, struct op *op)
{
    static const char *const type_names[] = {"null",   "boolean", "number",
                                             "string", "array",   "object"};
    op->code = OP_FALSE;
    for (size_t i = 0; i < sizeof type_names / sizeof type_names[0] && json_is_string(j); i++) {
        if (js_str_is(val_str(val_of(j)), type_names[i])) {
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

static enum opname op_lookup(struct js_str name)
{
    static const char *const names[] = {
        "$eq",        "$ne",   "$lt",   "$lte",     "$gt",         "$gte",    "$veq",
        "$vne",       "$vlt",  "$vlte", "$vgt",     "$vgte",       "$exists", "$in",
        "$nin",       "$ini",  "$nini", "$inGroup", "$notInGroup", "$all",    "$alli",
        "$elemMatch", "$size", "$not",  "$regex",   "$regexi",     "$type"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (js_str_is(name, names[i]))
            return (enum opname)i;
    return N_UNKNOWN;
}

static enum ab_err compile_op(struct cc *cc, struct js_str name, const json_t *j, struct op *op)
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
        struct js_str name = {json_object_iter_key(it), json_object_iter_key_len(it)};
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

static void compile_path(struct cc *cc, struct js_str key, struct clause *out)
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
        struct js_str part = {key.p + start, end - start};
        out->parts[k].key = cc_str(cc, part);
        out->parts[k].tag = assign_attr_tag(part.p, part.len);
        out->parts[k].index = js_array_index(part);
        out->parts[k].is_length = js_str_is(part, "length");
        start = end + 1;
    }
}

static enum ab_err compile_clause(struct cc *cc, struct js_str key, const json_t *j,
                                  struct clause *out)
{
    enum ab_err rc = AB_OK;
    out->kind = js_str_is(key, "$or")    ? CL_OR
                : js_str_is(key, "$nor") ? CL_NOR
                : js_str_is(key, "$and") ? CL_AND
                : js_str_is(key, "$not") ? CL_NOT
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
        struct js_str key = {json_object_iter_key(it), json_object_iter_key_len(it)};
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
    cc.gctx = pcre2_general_context_create(cond_regex_alloc, cond_regex_release, NULL);
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
