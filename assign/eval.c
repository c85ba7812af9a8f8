/*
 * The evaluation core: compiles a GrowthBook Experiment into struct assign_experiment and runs it
 * for one unit, step by step as the spec's run() (docs/lib/build-your-own.mdx): variations,
 * enabled, query-string override, forced variations (and Abacus's per-unit overrides), active,
 * hash attribute with fallback, filters or namespace, condition, prerequisites, bucketing, forced
 * variation, QA mode. Compilation allocates; running allocates nothing and takes no lock.
 */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "assign_int.h"

static const char *const REASONS[] = {
    "hashed",    "forced",    "query_override", "experiment_force", "too_few_variations",
    "disabled",  "not_running", "no_hash_attribute", "filtered",    "namespace",
    "condition", "prerequisite", "coverage",    "qa_mode",
};

const char *assign_reason_name(enum assign_reason r)
{
    return (size_t)r < sizeof(REASONS) / sizeof(REASONS[0]) ? REASONS[r] : "unknown";
}

/* ---------------------------------------------------------------- attribute text */

/* JavaScript's Number.prototype.toString for finite doubles (shortest round-trip digits). */
static size_t js_number(double d, char *buf)
{
    if (d == 0)
        return (size_t)snprintf(buf, 32, "0");
    if (d == floor(d) && fabs(d) < 1e21)
        return (size_t)snprintf(buf, 32, "%.0f", d);
    char tmp[40];
    int prec;
    for (prec = 1; prec <= 17; prec++) {
        snprintf(tmp, sizeof(tmp), "%.*e", prec - 1, d);
        if (strtod(tmp, NULL) == d)
            break;
    }
    /* tmp is "-d.ddde[+-]XX": digits and decimal exponent */
    char digits[24] = "";
    size_t nd = 0;
    const char *p = tmp;
    int neg = *p == '-';
    if (neg)
        p++;
    for (; *p != 'e'; p++)
        if (*p != '.')
            digits[nd++] = *p;
    int exp10 = (int)strtol(p + 1, NULL, 10); /* d = 0.digits * 10^(exp10 + 1) */
    int k = exp10 + 1;                        /* position of the decimal point */
    size_t o = 0;
    if (neg)
        buf[o++] = '-';
    if (k > 21 || k < -5) {
        buf[o++] = digits[0];
        if (nd > 1) {
            buf[o++] = '.';
            memcpy(buf + o, digits + 1, nd - 1);
            o += nd - 1;
        }
        o += (size_t)snprintf(buf + o, 12, "e%c%d", exp10 < 0 ? '-' : '+', abs(exp10));
    } else if (k <= 0) {
        buf[o++] = '0';
        buf[o++] = '.';
        for (int i = 0; i < -k; i++)
            buf[o++] = '0';
        memcpy(buf + o, digits, nd);
        o += nd;
    } else {
        for (int i = 0; i < k || (size_t)i < nd; i++) {
            if (i == k)
                buf[o++] = '.';
            if ((size_t)i < nd)
                buf[o++] = digits[i];
            else
                buf[o++] = '0';
        }
    }
    buf[o] = '\0';
    return o;
}

const char *assign_attr_text(const json_t *v, char *buf, size_t *len)
{
    switch (json_typeof(v != NULL ? v : json_null())) {
    case JSON_STRING:
        *len = json_string_length(v);
        return *len > 0 ? json_string_value(v) : NULL;
    case JSON_INTEGER:
        if (json_integer_value(v) == 0)
            return NULL;
        *len = (size_t)snprintf(buf, 32, "%lld", (long long)json_integer_value(v));
        return buf;
    case JSON_REAL:
        if (json_real_value(v) == 0 || isnan(json_real_value(v)))
            return NULL;
        *len = js_number(json_real_value(v), buf);
        return buf;
    case JSON_TRUE:
        *len = 4;
        return "true";
    case JSON_OBJECT:
        *len = 15;
        return "[object Object]";
    default: /* null, false, arrays (hashed by nobody in practice) */
        return NULL;
    }
}

/* ---------------------------------------------------------------- compile */

static enum ab_err bad(struct ab_errinfo *ei, const char *field, const char *what)
{
    return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "%s", what);
}

static char *opt_string(const json_t *def, const char *name)
{
    const json_t *v = json_object_get(def, name);
    return json_is_string(v) ? ab_mem_strdup(json_string_value(v)) : NULL;
}

/* Reads [[a, b], ...] into a new array of ranges. */
static enum ab_err read_ranges(const json_t *arr, const char *field, struct assign_range **out,
                               size_t *n, struct ab_errinfo *ei)
{
    if (!json_is_array(arr))
        return bad(ei, field, "must be an array of [start, end] pairs");
    *n = json_array_size(arr);
    *out = ab_mem_calloc(*n, sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        const json_t *r = json_array_get(arr, i);
        if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_number(json_array_get(r, 0)) ||
            !json_is_number(json_array_get(r, 1)))
            return bad(ei, field, "each range must be [start, end] with numbers");
        (*out)[i].start = json_number_value(json_array_get(r, 0));
        (*out)[i].end = json_number_value(json_array_get(r, 1));
    }
    return AB_OK;
}

enum ab_err assign_filters_compile(const json_t *arr, struct assign_filter **out, size_t *n,
                                   struct ab_errinfo *ei)
{
    *out = NULL;
    *n = 0;
    if (!json_is_array(arr))
        return bad(ei, "filters", "must be an array");
    *n = json_array_size(arr);
    *out = ab_mem_calloc(*n, sizeof(**out));
    for (size_t i = 0; i < *n; i++) {
        const json_t *f = json_array_get(arr, i);
        struct assign_filter *af = &(*out)[i];
        af->seed = opt_string(f, "seed");
        af->attribute = opt_string(f, "attribute");
        const json_t *hv = json_object_get(f, "hashVersion");
        af->hash_version = json_is_integer(hv) ? (int)json_integer_value(hv) : 2;
        if (af->seed == NULL)
            af->seed = ab_mem_strdup("");
        enum ab_err rc = read_ranges(json_object_get(f, "ranges"), "filters.ranges",
                                     &af->ranges, &af->nranges, ei);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

static enum ab_err compile_parents(struct assign_experiment *e, const json_t *arr,
                                   const json_t *saved_groups, struct ab_errinfo *ei)
{
    if (!json_is_array(arr))
        return bad(ei, "parentConditions", "must be an array");
    e->nparents = json_array_size(arr);
    e->parents = ab_mem_calloc(e->nparents, sizeof(*e->parents));
    for (size_t i = 0; i < e->nparents; i++) {
        const json_t *p = json_array_get(arr, i);
        e->parents[i].id = opt_string(p, "id");
        e->parents[i].gate = json_is_true(json_object_get(p, "gate"));
        if (e->parents[i].id == NULL)
            return bad(ei, "parentConditions.id", "must be a string");
        enum ab_err rc = assign_cond_compile(json_object_get(p, "condition"), saved_groups,
                                             &e->parents[i].cond, ei);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

static enum ab_err compile_meta(struct assign_experiment *e, const json_t *arr,
                                struct ab_errinfo *ei)
{
    if (!json_is_array(arr))
        return bad(ei, "meta", "must be an array");
    e->nmeta = json_array_size(arr);
    e->meta = ab_mem_calloc(e->nmeta, sizeof(*e->meta));
    for (size_t i = 0; i < e->nmeta; i++) {
        const json_t *m = json_array_get(arr, i);
        e->meta[i].key = opt_string(m, "key");
        e->meta[i].name = opt_string(m, "name");
        e->meta[i].passthrough = json_is_true(json_object_get(m, "passthrough"));
    }
    return AB_OK;
}

/* Weights, coverage and explicit ranges -> e->ranges. */
static enum ab_err compile_ranges(struct assign_experiment *e, const json_t *def,
                                  struct ab_errinfo *ei)
{
    const json_t *cov = json_object_get(def, "coverage");
    e->coverage = json_is_number(cov) ? json_number_value(cov) : 1.0;
    const json_t *w = json_object_get(def, "weights");
    if (json_is_array(w)) {
        e->nweights = json_array_size(w);
        e->weights = ab_mem_calloc(e->nweights, sizeof(double));
        for (size_t i = 0; i < e->nweights; i++) {
            if (!json_is_number(json_array_get(w, i)))
                return bad(ei, "weights", "must be numbers");
            e->weights[i] = json_number_value(json_array_get(w, i));
        }
    }
    const json_t *r = json_object_get(def, "ranges");
    if (json_is_array(r)) {
        size_t n;
        struct assign_range *given;
        enum ab_err rc = read_ranges(r, "ranges", &given, &n, ei);
        if (rc != AB_OK) {
            free(given);
            return rc;
        }
        /* one range per variation; a short list leaves the rest unreachable */
        e->ranges = ab_mem_calloc(e->nvariations, sizeof(*e->ranges));
        memcpy(e->ranges, given, (n < e->nvariations ? n : e->nvariations) * sizeof(*given));
        free(given);
        e->explicit_ranges = 1;
        return AB_OK;
    }
    e->ranges = ab_mem_calloc(e->nvariations, sizeof(*e->ranges));
    assign_bucket_ranges(e->nvariations, e->coverage, e->weights, e->nweights, e->ranges);
    return AB_OK;
}

static enum ab_err compile_namespace(struct assign_experiment *e, const json_t *ns,
                                     struct ab_errinfo *ei)
{
    if (!json_is_array(ns) || json_array_size(ns) != 3 ||
        !json_is_string(json_array_get(ns, 0)) || !json_is_number(json_array_get(ns, 1)) ||
        !json_is_number(json_array_get(ns, 2)))
        return bad(ei, "namespace", "must be [id, start, end]");
    e->has_namespace = 1;
    e->ns_id = ab_mem_strdup(json_string_value(json_array_get(ns, 0)));
    e->ns_start = json_number_value(json_array_get(ns, 1));
    e->ns_end = json_number_value(json_array_get(ns, 2));
    return AB_OK;
}

enum ab_err assign_experiment_compile(const json_t *def, const json_t *saved_groups,
                                      struct assign_experiment **out, struct ab_errinfo *ei)
{
    enum ab_err rc = AB_OK;
    struct assign_experiment *e = ab_mem_calloc(1, sizeof(*e));
    *out = NULL;
    if (!json_is_object(def)) {
        rc = bad(ei, "experiment", "must be an object");
        goto Exit;
    }
    const json_t *key = json_object_get(def, "key");
    const json_t *vars = json_object_get(def, "variations");
    if (!json_is_string(key)) {
        rc = bad(ei, "key", "must be a string");
        goto Exit;
    }
    if (!json_is_array(vars)) {
        rc = bad(ei, "variations", "must be an array");
        goto Exit;
    }
    e->key = ab_mem_strdup(json_string_value(key));
    e->variations = json_incref((json_t *)vars);
    e->nvariations = json_array_size(vars);
    e->seed = opt_string(def, "seed");
    if (e->seed == NULL)
        e->seed = ab_mem_strdup(e->key);
    e->seed_len = strlen(e->seed);
    e->seed_state = assign_fnv1a(ASSIGN_FNV_OFFSET, e->seed, e->seed_len);
    e->hash_attribute = opt_string(def, "hashAttribute");
    if (e->hash_attribute == NULL)
        e->hash_attribute = ab_mem_strdup("id");
    e->hash_attribute_len = strlen(e->hash_attribute);
    e->hash_attribute_tag = assign_attr_tag(e->hash_attribute, e->hash_attribute_len);
    e->fallback_attribute = opt_string(def, "fallbackAttribute");
    e->fallback_attribute_len = e->fallback_attribute != NULL ? strlen(e->fallback_attribute) : 0;
    e->fallback_attribute_tag = assign_attr_tag(e->fallback_attribute, e->fallback_attribute_len);
    const json_t *hv = json_object_get(def, "hashVersion");
    e->hash_version = json_is_integer(hv) ? (int)json_integer_value(hv) : 1;
    e->active = !json_is_false(json_object_get(def, "active"));
    const json_t *force = json_object_get(def, "force");
    if (json_is_integer(force)) {
        e->has_force = 1;
        e->force = (int)json_integer_value(force);
    }
    const json_t *v;
    if ((rc = compile_ranges(e, def, ei)) != AB_OK)
        goto Exit;
    if ((v = json_object_get(def, "meta")) != NULL && (rc = compile_meta(e, v, ei)) != AB_OK)
        goto Exit;
    if ((v = json_object_get(def, "namespace")) != NULL && !json_is_null(v) &&
        (rc = compile_namespace(e, v, ei)) != AB_OK)
        goto Exit;
    if ((v = json_object_get(def, "filters")) != NULL &&
        (rc = assign_filters_compile(v, &e->filters, &e->nfilters, ei)) != AB_OK)
        goto Exit;
    if ((v = json_object_get(def, "condition")) != NULL && !json_is_null(v) &&
        (rc = assign_cond_compile(v, saved_groups, &e->condition, ei)) != AB_OK)
        goto Exit;
    if ((v = json_object_get(def, "parentConditions")) != NULL &&
        (rc = compile_parents(e, v, saved_groups, ei)) != AB_OK)
        goto Exit;
    e->bandit_ref = opt_string(def, "contextualBanditRef");
    e->plain = e->hash_version == 2 && e->nvariations >= 2 && e->active && !e->has_force &&
               e->fallback_attribute == NULL && e->nfilters == 0 && !e->has_namespace &&
               e->nparents == 0 && e->bandit_ref == NULL;
    *out = e;
    e = NULL;
Exit:
    assign_experiment_free(e);
    return rc;
}

void assign_experiment_free(struct assign_experiment *e)
{
    if (e == NULL)
        return;
    free(e->key);
    json_decref(e->variations);
    free(e->weights);
    free(e->ranges);
    for (size_t i = 0; i < e->nmeta; i++) {
        free(e->meta[i].key);
        free(e->meta[i].name);
    }
    free(e->meta);
    free(e->seed);
    free(e->hash_attribute);
    free(e->fallback_attribute);
    free(e->ns_id);
    assign_filters_free(e->filters, e->nfilters);
    assign_cond_free(e->condition);
    for (size_t i = 0; i < e->nparents; i++) {
        free(e->parents[i].id);
        assign_cond_free(e->parents[i].cond);
    }
    free(e->parents);
    for (size_t i = 0; i < e->noverrides; i++)
        free(e->overrides[i].unit);
    free(e->overrides);
    free(e->bandit_ref);
    free(e);
}

/* ---------------------------------------------------------------- run */

int assign_query_override(const char *key, const char *url, size_t nvariations)
{
    const char *q = strchr(url, '?');
    if (q == NULL)
        return -1;
    size_t klen = strlen(key);
    for (const char *p = q + 1; *p != '\0' && *p != '#';) {
        const char *end = p + strcspn(p, "&#");
        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            const char *num = p + klen + 1;
            if (num == end || (size_t)(end - num) > 6)
                return -1;
            int v = 0;
            for (const char *d = num; d < end; d++) {
                if (*d < '0' || *d > '9')
                    return -1;
                v = v * 10 + (*d - '0');
            }
            return (size_t)v < nvariations ? v : -1;
        }
        p = *end == '&' ? end + 1 : end;
    }
    return -1;
}

/* Ends res as "not in the experiment" (variation 0) for reason r. Returns 0 (res is final). */
static int not_in(struct assign_result *res, enum assign_reason r)
{
    res->in_experiment = 0;
    res->variation = 0;
    res->hash_used = 0;
    res->reason = r;
    return 0;
}

/*
 * Ends res with variation v chosen without hashing; out of range means not in the experiment.
 * Returns 0 (res is final).
 */
static int forced(const struct assign_experiment *e, struct assign_result *res, long long v,
                  enum assign_reason r)
{
    if (v < 0 || (size_t)v >= e->nvariations)
        return not_in(res, r);
    res->in_experiment = 1;
    res->variation = (int)v;
    res->hash_used = 0;
    res->reason = r;
    return 0;
}

void assign_filters_free(struct assign_filter *filters, size_t n)
{
    for (size_t i = 0; i < n && filters != NULL; i++) {
        free(filters[i].seed);
        free(filters[i].attribute);
        free(filters[i].ranges);
    }
    free(filters);
}

static int override_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const struct assign_override *)elem)->unit);
}

static int prerequisites_pass(const struct assign_experiment *e, const struct assign_context *ctx)
{
    for (size_t i = 0; i < e->nparents; i++) {
        json_t *value = NULL;
        if (ctx->parent_cb == NULL || ctx->parent_cb(ctx->parent_data, e->parents[i].id, &value))
            return 0;
        json_t *obj = json_object();
        json_object_set(obj, "value", value != NULL ? value : json_null());
        int ok = assign_cond_eval(e->parents[i].cond, obj);
        json_decref(obj);
        json_decref(value);
        if (!ok)
            return 0;
    }
    return 1;
}

/*
 * Contextual bandit: the first context leaf whose condition the unit meets sets the weights
 * (leaf -1: the rule's own weights). Recomputes ranges into out. Returns 0 when e has no bandit.
 */
static int bandit_ranges(const struct assign_experiment *e, const struct assign_context *ctx,
                         struct assign_result *res, struct assign_range *out)
{
    const json_t *b = json_object_get(ctx->contextual_bandits, e->bandit_ref);
    if (b == NULL || e->nvariations > 16)
        return 0;
    res->bandit = 1;
    res->leaf_id = -1;
    res->bandit_version = json_integer_value(json_object_get(b, "banditVersion"));
    res->nbandit_weights = e->nweights < 16 ? e->nweights : 16;
    memcpy(res->bandit_weights, e->weights, res->nbandit_weights * sizeof(double));
    size_t i;
    const json_t *leaf;
    json_array_foreach(json_object_get(b, "contexts"), i, leaf)
    {
        struct assign_cond *c = NULL;
        if (assign_cond_compile(json_object_get(leaf, "condition"), ctx->saved_groups, &c, NULL) !=
            AB_OK)
            continue;
        int match = assign_cond_eval(c, ctx->attributes);
        assign_cond_free(c);
        if (!match)
            continue;
        const json_t *w = json_object_get(leaf, "weights");
        res->leaf_id = json_integer_value(json_object_get(leaf, "leafId"));
        res->nbandit_weights = json_array_size(w) < 16 ? json_array_size(w) : 16;
        for (size_t k = 0; k < res->nbandit_weights; k++)
            res->bandit_weights[k] = json_number_value(json_array_get(w, k));
        break;
    }
    assign_bucket_ranges(e->nvariations, e->coverage, res->bandit_weights, res->nbandit_weights,
                         out);
    return 1;
}

/* assign_attr_text of an indexed attribute, which may have been read without jansson. */
static const char *item_text(const struct assign_attr *it, char *buf, size_t *len)
{
    if (it->value != NULL && it->type != JSON_STRING)
        return assign_attr_text(it->value, buf, len);
    switch (it->type) {
    case JSON_STRING:
        *len = it->str_len;
        return it->str_len > 0 ? it->str : NULL;
    case JSON_INTEGER: /* read without jansson: at most 15 digits, exact */
        if (it->num == 0)
            return NULL;
        *len = (size_t)snprintf(buf, 32, "%lld", (long long)it->num);
        return buf;
    case JSON_REAL:
        if (it->num == 0 || isnan(it->num))
            return NULL;
        *len = js_number(it->num, buf);
        return buf;
    case JSON_TRUE:
        *len = 4;
        return "true";
    default:
        return NULL;
    }
}

/*
 * assign_attr_text of the attribute name[0..len) (tag: assign_attr_tag) of the unit ctx
 * describes; *value gets the attribute (NULL when missing or read without jansson).
 */
static const char *attribute_text(const struct assign_context *ctx, const char *name, size_t len,
                                  uint64_t tag, char *buf, size_t *text_len, const json_t **value)
{
    if (ctx->index != NULL && ctx->index->indexed) {
        const struct assign_attr *it = assign_attrs_find(ctx->index, name, len, tag);
        *value = it != NULL ? it->value : NULL;
        return it != NULL ? item_text(it, buf, text_len) : NULL;
    }
    *value = ctx->index != NULL ? assign_attrs_get(ctx->index, name, len, tag)
                                : json_object_getn(ctx->attributes, name, len);
    return assign_attr_text(*value, buf, text_len);
}

int assign_filters_exclude(const struct assign_filter *filters, size_t count,
                           const struct assign_context *ctx)
{
    for (size_t i = 0; i < count; i++) {
        const struct assign_filter *f = &filters[i];
        const char *name = f->attribute != NULL ? f->attribute : "id";
        char buf[32];
        size_t len;
        const json_t *value;
        size_t name_len = strlen(name);
        const char *text = attribute_text(ctx, name, name_len, assign_attr_tag(name, name_len),
                                          buf, &len, &value);
        if (text == NULL)
            return 1;
        double n = assign_hash(f->seed, strlen(f->seed), text, len, f->hash_version);
        int in = 0;
        for (size_t r = 0; r < f->nranges && !in; r++)
            in = assign_in_range(n, &f->ranges[r]);
        if (!in)
            return 1;
    }
    return 0;
}

#define COND_MEMO 64 /* conditions (classes) remembered per unit, by class modulo this */

/*
 * What the evaluations of one unit in many experiments share: the text of the hash attribute
 * last looked up (experiments mostly hash the same one), and the results of the conditions
 * tested so far by condition_class. Zeroed: nothing known yet.
 */
struct unit_memo {
    const char *name; /* of the hash attribute looked up; NULL: none yet */
    size_t name_len;
    uint64_t tag;     /* assign_attr_tag of name */
    const char *text; /* may be buf */
    size_t len;
    const json_t *value;
    char buf[32];
    uint32_t cond_class[COND_MEMO]; /* 0: empty */
    unsigned char cond_holds[COND_MEMO];
};

/* Whether the unit meets e's condition (which e has), from the memo when it has the answer. */
static int condition_holds(const struct assign_experiment *e, const struct assign_context *ctx,
                           struct unit_memo *h)
{
    size_t slot = e->condition_class % COND_MEMO;
    if (e->condition_class != 0 && h->cond_class[slot] == e->condition_class)
        return h->cond_holds[slot];
    int ok = ctx->index != NULL ? assign_cond_eval_attrs(e->condition, ctx->index)
                                : assign_cond_eval(e->condition, ctx->attributes);
    if (e->condition_class != 0) {
        h->cond_class[slot] = e->condition_class;
        h->cond_holds[slot] = (unsigned char)ok;
    }
    return ok;
}

static const char *hash_attribute_text(const struct assign_experiment *e,
                                       const struct assign_context *ctx, struct unit_memo *h,
                                       size_t *len, const json_t **value)
{
    if (h->name == NULL || h->tag != e->hash_attribute_tag ||
        (h->name_len > 7 && (h->name_len != e->hash_attribute_len ||
                             memcmp(h->name, e->hash_attribute, h->name_len) != 0))) {
        h->name = e->hash_attribute;
        h->name_len = e->hash_attribute_len;
        h->tag = e->hash_attribute_tag;
        h->text = attribute_text(ctx, e->hash_attribute, e->hash_attribute_len,
                                 e->hash_attribute_tag, h->buf, &h->len, &h->value);
    }
    *len = h->len;
    *value = h->value;
    return h->text;
}

/*
 * run() up to the hash: 1 when the unit is to be hashed (*text, *len: the text hashed, which may
 * be buf or in h, which remembers what experiments of one unit share; *ranges: the ranges chosen
 * from, bandit[16] when a contextual bandit set them, so bandit may be NULL only when e has none),
 * 0 when res is final.
 */
static int run_gates(const struct assign_experiment *e, const struct assign_context *ctx,
                     struct assign_result *res, struct unit_memo *h, char *buf,
                     const char **text_out, size_t *len_out, struct assign_range *bandit,
                     const struct assign_range **ranges)
{
    memset(res, 0, offsetof(struct assign_result, bandit_weights));
    res->hash_attribute = e->hash_attribute;
    const json_t *hv;
    size_t len = 0;
    const char *text = hash_attribute_text(e, ctx, h, &len, &hv);
    res->hash_value = text != NULL ? hv : NULL;

    if (e->nvariations < 2)
        return not_in(res, ASSIGN_TOO_FEW_VARIATIONS);
    if (ctx->disabled)
        return not_in(res, ASSIGN_DISABLED);
    if (ctx->url != NULL) {
        int qs = assign_query_override(e->key, ctx->url, e->nvariations);
        if (qs >= 0)
            return forced(e, res, qs, ASSIGN_QUERY_OVERRIDE);
    }
    const json_t *fv =
        ctx->forced_variations != NULL ? json_object_get(ctx->forced_variations, e->key) : NULL;
    if (fv != NULL)
        return forced(e, res, json_is_integer(fv) ? json_integer_value(fv) : -1, ASSIGN_FORCED);
    if (text != NULL && e->noverrides > 0) {
        char key[1024];
        if (len < sizeof(key)) {
            memcpy(key, text, len);
            key[len] = '\0';
            const struct assign_override *o =
                bsearch(key, e->overrides, e->noverrides, sizeof(*o), override_cmp);
            if (o != NULL)
                return forced(e, res, o->variation, ASSIGN_FORCED);
        }
    }
    if (!e->active)
        return not_in(res, ASSIGN_NOT_RUNNING);
    if (text == NULL && e->fallback_attribute != NULL) {
        text = attribute_text(ctx, e->fallback_attribute, e->fallback_attribute_len,
                              e->fallback_attribute_tag, buf, &len, &hv);
        if (text != NULL) {
            res->hash_attribute = e->fallback_attribute;
            res->hash_value = hv;
        }
    }
    if (text == NULL)
        return not_in(res, ASSIGN_NO_HASH_ATTRIBUTE);
    if (e->nfilters > 0) {
        if (assign_filters_exclude(e->filters, e->nfilters, ctx))
            return not_in(res, ASSIGN_FILTERED);
    } else if (e->has_namespace &&
               !assign_in_namespace(text, len, e->ns_id, strlen(e->ns_id), e->ns_start,
                                    e->ns_end)) {
        return not_in(res, ASSIGN_NAMESPACE);
    }
    if (e->condition != NULL && !condition_holds(e, ctx, h))
        return not_in(res, ASSIGN_CONDITION);
    if (e->nparents > 0 && !prerequisites_pass(e, ctx))
        return not_in(res, ASSIGN_PREREQUISITE);

    *ranges = e->ranges;
    if (e->bandit_ref != NULL && bandit_ranges(e, ctx, res, bandit))
        *ranges = bandit;
    *text_out = text;
    *len_out = len;
    return 1;
}

/* run() from the hash n on: the variation of ranges n falls in, then force and QA mode. */
static void run_bucketed(const struct assign_experiment *e, const struct assign_context *ctx,
                         struct assign_result *res, double n, const struct assign_range *ranges)
{
    int assigned = n < 0 ? -1 : assign_choose_variation(n, ranges, e->nvariations);
    if (assigned < 0) {
        not_in(res, ASSIGN_COVERAGE);
    } else if (e->has_force) {
        forced(e, res, e->force, ASSIGN_EXPERIMENT_FORCE);
    } else if (ctx->qa_mode) {
        not_in(res, ASSIGN_QA_MODE);
    } else {
        res->in_experiment = 1;
        res->variation = assigned;
        res->hash_used = 1;
        res->bucket = n;
        res->reason = ASSIGN_HASHED;
    }
}

static double unit_hash(const struct assign_experiment *e, const char *text, size_t len)
{
    return e->hash_version == 2 ? assign_hash_v2_from(e->seed_state, text, len)
                                : assign_hash(e->seed, e->seed_len, text, len, e->hash_version);
}

void assign_run(const struct assign_experiment *e, const struct assign_context *ctx,
                struct assign_result *res)
{
    char buf[32];
    struct unit_memo h = {0};
    const char *text;
    size_t len;
    struct assign_range bandit[16];
    const struct assign_range *ranges;
    if (run_gates(e, ctx, res, &h, buf, &text, &len, bandit, &ranges))
        run_bucketed(e, ctx, res, unit_hash(e, text, len), ranges);
}

/*
 * run_gates for a plain experiment (e->plain) in a context that forces and excludes nothing: 1
 * when the unit is to be hashed over *text (the memo's), 0 when res is final, -1 when the hash
 * attribute needs run_gates (missing, or a number written into the memo's buffer).
 */
static int plain_gates(const struct assign_experiment *e, const struct assign_context *ctx,
                       struct assign_result *res, struct unit_memo *h, const char **text,
                       size_t *len)
{
    const json_t *hv;
    *text = hash_attribute_text(e, ctx, h, len, &hv);
    if (*text == NULL || *text == h->buf)
        return -1;
    memset(res, 0, offsetof(struct assign_result, bandit_weights));
    res->hash_attribute = e->hash_attribute;
    res->hash_value = hv;
    if (e->condition != NULL && !condition_holds(e, ctx, h)) {
        res->reason = ASSIGN_CONDITION;
        return 0;
    }
    return 1;
}

void assign_run_many(const struct assign_experiment *const *exps, size_t n,
                     const struct assign_context *ctx, struct assign_result *res)
{
    enum { BATCH = 32 };
    struct unit_memo h = {0};
    int plain_ctx =
        !ctx->disabled && ctx->url == NULL && ctx->forced_variations == NULL && !ctx->qa_mode;
    for (size_t base = 0; base < n; base += BATCH) {
        size_t m = n - base < BATCH ? n - base : BATCH;
        uint32_t states[BATCH];
        size_t queued[BATCH], q = 0;
        const char *qtext = NULL;
        size_t qlen = 0;
        for (size_t i = base; i < base + m; i++) {
            const struct assign_experiment *e = exps[i];
            char buf[32];
            const char *text;
            size_t len;
            const struct assign_range *ranges = e->ranges;
            int gate = plain_ctx && e->plain ? plain_gates(e, ctx, &res[i], &h, &text, &len) : -1;
            if (gate == 0)
                continue;
            if (gate > 0 && (q == 0 || (text == qtext && len == qlen))) { /* the usual */
                qtext = text;
                qlen = len;
                states[q] = e->seed_state;
                queued[q++] = i;
                continue;
            }
            if (gate < 0 && (e->bandit_ref != NULL || e->hash_version != 2)) {
                assign_run(e, ctx, &res[i]);
                continue;
            }
            if (gate < 0 && !run_gates(e, ctx, &res[i], &h, buf, &text, &len, NULL, &ranges))
                continue;
            /* batched: version 2 over the one text (an attribute's string) the batch hashes;
             * texts written into buffers, which the next experiment may reuse, are hashed now */
            if (text == buf || text == h.buf || (q > 0 && (text != qtext || len != qlen))) {
                run_bucketed(e, ctx, &res[i], unit_hash(e, text, len), ranges);
                continue;
            }
            qtext = text;
            qlen = len;
            states[q] = e->seed_state;
            queued[q++] = i;
        }
        double buckets[BATCH];
        assign_hash_v2_many(states, q, qtext, qlen, buckets);
        for (size_t k = 0; k < q; k++)
            run_bucketed(exps[queued[k]], ctx, &res[queued[k]], buckets[k],
                         exps[queued[k]]->ranges);
    }
}
