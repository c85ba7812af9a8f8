/*
 * GrowthBook features: a FeatureMap compiled once (assign_features_compile, when a snapshot is
 * compiled, or per case by the conformance suite) and evaluated per request (evalFeature of the
 * spec): prerequisites with cycle detection, filters, conditions, forced values with rollouts,
 * and experiment rules run as compiled experiments. An evaluation's outcome borrows its value
 * from the compiled map; it becomes a FeatureResult object (assign_features_eval), or the answer
 * of /api/eval/{clientKey} (assign_features_write_remote), written from texts dumped once at
 * compile time. The /v1/assign hot path does not come here.
 */
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "assign_int.h"

#define MAX_DEPTH 32 /* prerequisite chains deeper than this count as cyclic */

enum rollout { ROLLOUT_ALL, ROLLOUT_NONE, ROLLOUT_RANGE, ROLLOUT_COVERAGE };

/* A rule of a feature, compiled. What did not compile decides as the spec's evaluation of it. */
struct rule {
    const char *id;                /* "" for none; in the FeatureMap */
    struct assign_parent *parents; /* parentConditions; cond NULL: did not compile (fails) */
    size_t nparents;
    int has_filters;               /* filters given: excluded when they do not compile */
    int filters_ok;
    struct assign_filter *filters;
    size_t nfilters;
    int has_condition;             /* condition given: the rule is skipped when it fails */
    struct assign_cond *condition; /* NULL with has_condition: did not compile (fails) */
    const json_t *force;           /* a force rule's value (in the FeatureMap), or NULL */
    enum rollout rollout;          /* a force rule's isIncludedInRollout */
    struct assign_range range;     /* ROLLOUT_RANGE */
    double coverage;               /* ROLLOUT_COVERAGE */
    char *seed;                    /* the rule's seed, or the feature key */
    const char *hash_attribute;    /* default "id" */
    int hash_version;              /* default 1 */
    json_t *exp;                   /* an experiment rule's Experiment object, owned, or NULL */
    struct assign_experiment *compiled; /* NULL when exp does not compile (the rule is skipped) */
    /* what /api/eval writes of the rule, as compact JSON: */
    char *force_text;              /* the force value */
    char *exp_text;                /* exp */
    char **variation_text;         /* [compiled->nvariations]: the variations' values */
};

struct feature {
    const char *key;            /* in the FeatureMap */
    const json_t *default_value; /* NULL: none */
    char *default_text;         /* default_value as compact JSON ("null" for none) */
    struct rule *rules;
    size_t nrules;
};

struct assign_features {
    json_t *map;              /* the FeatureMap, a reference */
    struct feature *items;    /* in the map's order */
    size_t n;
    struct feature **by_key;  /* sorted by key */
};

struct eval_state {
    const struct assign_features *fs;
    const struct assign_context *ctx;
    const char *stack[MAX_DEPTH]; /* features being evaluated, for cycle detection */
    size_t depth;
};

/* ---------------------------------------------------------------- compiling */

/* The spec's rule -> Experiment conversion. */
static json_t *rule_experiment(const json_t *rule, const char *feature_key)
{
    static const char *const COPIED[] = {
        "coverage",  "weights", "hashAttribute", "fallbackAttribute", "disableStickyBucketing",
        "bucketVersion", "minBucketVersion", "namespace", "meta", "ranges", "name", "phase",
        "seed", "hashVersion", "filters", "condition", "parentConditions"};
    const json_t *vars = json_object_get(rule, "variations");
    if (vars == NULL)
        vars = json_object_get(rule, "contextualVariations");
    const json_t *key = json_object_get(rule, "key");
    json_t *exp = json_pack("{s:O, s:s}", "variations", vars, "key",
                            json_is_string(key) ? json_string_value(key) : feature_key);
    for (size_t i = 0; i < sizeof(COPIED) / sizeof(COPIED[0]); i++) {
        const json_t *v = json_object_get(rule, COPIED[i]);
        if (v != NULL)
            json_object_set(exp, COPIED[i], (json_t *)v);
    }
    return exp;
}

static void compile_parents(const json_t *arr, const json_t *saved_groups, struct rule *r)
{
    r->nparents = json_array_size(arr);
    r->parents = ab_mem_calloc(r->nparents > 0 ? r->nparents : 1, sizeof(*r->parents));
    for (size_t i = 0; i < r->nparents; i++) {
        const json_t *pc = json_array_get(arr, i);
        struct assign_parent *p = &r->parents[i];
        const char *id = json_string_value(json_object_get(pc, "id"));
        p->id = id != NULL ? ab_mem_strdup(id) : NULL;
        p->gate = json_is_true(json_object_get(pc, "gate"));
        if (assign_cond_compile(json_object_get(pc, "condition"), saved_groups, &p->cond, NULL) !=
            AB_OK)
            p->cond = NULL;
    }
}

/* A force rule's isIncludedInRollout, decided as far as the rule alone decides it. */
static void compile_rollout(const json_t *rule, const char *feature_key, struct rule *r)
{
    const json_t *range = json_object_get(rule, "range");
    const json_t *coverage = json_object_get(rule, "coverage");
    const json_t *seed = json_object_get(rule, "seed");
    const json_t *attr = json_object_get(rule, "hashAttribute");
    const json_t *hv = json_object_get(rule, "hashVersion");
    r->seed = ab_mem_strdup(json_is_string(seed) ? json_string_value(seed) : feature_key);
    r->hash_attribute = json_is_string(attr) ? json_string_value(attr) : "id";
    r->hash_version = json_is_integer(hv) ? (int)json_integer_value(hv) : 1;
    if (json_is_array(range)) {
        r->rollout = ROLLOUT_RANGE;
        r->range = (struct assign_range){json_number_value(json_array_get(range, 0)),
                                         json_number_value(json_array_get(range, 1))};
    } else if (!json_is_number(coverage)) {
        r->rollout = ROLLOUT_ALL;
    } else if (json_number_value(coverage) == 0) {
        r->rollout = ROLLOUT_NONE;
    } else {
        r->rollout = ROLLOUT_COVERAGE;
        r->coverage = json_number_value(coverage);
    }
}

static void compile_rule(const json_t *rule, const char *feature_key, const json_t *saved_groups,
                         struct rule *r)
{
    const json_t *id = json_object_get(rule, "id");
    r->id = json_is_string(id) ? json_string_value(id) : "";
    compile_parents(json_object_get(rule, "parentConditions"), saved_groups, r);
    const json_t *filters = json_object_get(rule, "filters");
    r->has_filters = filters != NULL;
    r->filters_ok = r->has_filters &&
                    assign_filters_compile(filters, &r->filters, &r->nfilters, NULL) == AB_OK;
    const json_t *cond = json_object_get(rule, "condition");
    r->has_condition = cond != NULL;
    if (r->has_condition &&
        assign_cond_compile(cond, saved_groups, &r->condition, NULL) != AB_OK)
        r->condition = NULL;
    r->force = json_object_get(rule, "force");
    if (r->force != NULL) {
        compile_rollout(rule, feature_key, r);
        return;
    }
    if (json_object_get(rule, "variations") == NULL &&
        json_object_get(rule, "contextualVariations") == NULL)
        return;
    r->exp = rule_experiment(rule, feature_key);
    json_t *def = json_copy(r->exp);
    const json_t *ref = json_object_get(rule, "contextualBanditRef");
    if (ref != NULL)
        json_object_set(def, "contextualBanditRef", (json_t *)ref);
    /* eval_rules has decided these before it runs the experiment: compiled once, above */
    json_object_del(def, "condition");
    json_object_del(def, "filters");
    json_object_del(def, "parentConditions");
    if (assign_experiment_compile(def, saved_groups, &r->compiled, NULL) != AB_OK)
        r->compiled = NULL;
    json_decref(def);
}

/* v as compact JSON (malloc'd); "null" for NULL. */
static char *dump(const json_t *v)
{
    return json_dumps(v != NULL ? v : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
}

/* The texts /api/eval writes of r. */
static void dump_rule(struct rule *r)
{
    if (r->force != NULL)
        r->force_text = dump(r->force);
    if (r->compiled == NULL)
        return;
    r->exp_text = dump(r->exp);
    size_t n = r->compiled->nvariations;
    r->variation_text = ab_mem_calloc(n > 0 ? n : 1, sizeof(char *));
    for (size_t v = 0; v < n; v++)
        r->variation_text[v] = dump(json_array_get(r->compiled->variations, v));
}

static int cmp_feature(const void *a, const void *b)
{
    return strcmp((*(struct feature *const *)a)->key, (*(struct feature *const *)b)->key);
}

struct assign_features *assign_features_compile(const json_t *map, const json_t *saved_groups)
{
    struct assign_features *fs = ab_mem_calloc(1, sizeof(*fs));
    fs->map = json_incref((json_t *)map);
    size_t n = json_is_object(map) ? json_object_size(map) : 0;
    fs->items = ab_mem_calloc(n > 0 ? n : 1, sizeof(*fs->items));
    fs->by_key = ab_mem_calloc(n > 0 ? n : 1, sizeof(struct feature *));
    const char *key;
    const json_t *def;
    json_object_foreach((json_t *)map, key, def)
    {
        struct feature *f = &fs->items[fs->n];
        f->key = key;
        f->default_value = json_object_get(def, "defaultValue");
        const json_t *rules = json_object_get(def, "rules");
        f->nrules = json_array_size(rules);
        f->rules = ab_mem_calloc(f->nrules > 0 ? f->nrules : 1, sizeof(*f->rules));
        f->default_text = dump(f->default_value);
        for (size_t i = 0; i < f->nrules; i++) {
            compile_rule(json_array_get(rules, i), key, saved_groups, &f->rules[i]);
            dump_rule(&f->rules[i]);
        }
        fs->by_key[fs->n++] = f;
    }
    qsort(fs->by_key, fs->n, sizeof(struct feature *), cmp_feature);
    return fs;
}

void assign_features_free(struct assign_features *fs)
{
    if (fs == NULL)
        return;
    for (size_t i = 0; i < fs->n; i++) {
        struct feature *f = &fs->items[i];
        for (size_t k = 0; k < f->nrules; k++) {
            struct rule *r = &f->rules[k];
            for (size_t p = 0; p < r->nparents; p++) {
                free(r->parents[p].id);
                assign_cond_free(r->parents[p].cond);
            }
            free(r->parents);
            assign_filters_free(r->filters, r->nfilters);
            assign_cond_free(r->condition);
            free(r->seed);
            free(r->force_text);
            free(r->exp_text);
            for (size_t v = 0; r->variation_text != NULL && v < r->compiled->nvariations; v++)
                free(r->variation_text[v]);
            free(r->variation_text);
            json_decref(r->exp);
            assign_experiment_free(r->compiled);
        }
        free(f->rules);
        free(f->default_text);
    }
    free(fs->items);
    free(fs->by_key);
    json_decref(fs->map);
    free(fs);
}

/* ---------------------------------------------------------------- evaluating */

enum source { SRC_UNKNOWN, SRC_CYCLIC, SRC_PREREQUISITE, SRC_DEFAULT, SRC_FORCE, SRC_EXPERIMENT };

static const char *const SOURCE_NAMES[] = {"unknownFeature", "cyclicPrerequisite", "prerequisite",
                                           "defaultValue",   "force",              "experiment"};

/* How a feature evaluated: everything it points to is the compiled map's. */
struct outcome {
    enum source src;
    const struct feature *f; /* SRC_DEFAULT, SRC_FORCE, SRC_EXPERIMENT */
    const struct rule *r;    /* SRC_FORCE, SRC_EXPERIMENT */
    struct assign_result res; /* SRC_EXPERIMENT */
};

/* The outcome's value, borrowed; NULL for none (null). */
static const json_t *outcome_value(const struct outcome *o)
{
    switch (o->src) {
    case SRC_DEFAULT:
        return o->f->default_value;
    case SRC_FORCE:
        return o->r->force;
    case SRC_EXPERIMENT:
        return json_array_get(o->r->compiled->variations, (size_t)o->res.variation);
    default:
        return NULL;
    }
}

static void eval_feature(struct eval_state *st, const char *key, struct outcome *out);

static int truthy(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_NULL:
    case JSON_FALSE:
        return 0;
    case JSON_STRING:
        return json_string_length(v) > 0;
    case JSON_INTEGER:
    case JSON_REAL:
        return json_number_value(v) != 0;
    default:
        return 1;
    }
}

static int parent_cb(void *data, const char *id, json_t **value)
{
    struct eval_state *st = data;
    struct outcome o;
    eval_feature(st, id, &o);
    const json_t *v = outcome_value(&o);
    *value = v != NULL ? json_incref((json_t *)v) : json_null();
    return o.src == SRC_CYCLIC ? -1 : 0;
}

/* The spec's isIncludedInRollout of a force rule. */
static int in_rollout(const struct assign_context *ctx, const struct rule *r)
{
    if (r->rollout == ROLLOUT_ALL || r->rollout == ROLLOUT_NONE)
        return r->rollout == ROLLOUT_ALL;
    char buf[ASSIGN_ATTR_TEXT_MAX];
    size_t len;
    const char *text =
        assign_attr_text(json_object_get(ctx->attributes, r->hash_attribute), buf, &len);
    if (text == NULL)
        return 0;
    double n = assign_hash(r->seed, strlen(r->seed), text, len, r->hash_version);
    if (n < 0)
        return 0; /* unknown hash version: the spec's null, never included */
    return r->rollout == ROLLOUT_RANGE ? assign_in_range(n, &r->range) : n <= r->coverage;
}

/* 1: rule applies; 0: skip the rule; -1: out holds the feature's final outcome. */
static int check_parents(struct eval_state *st, const struct rule *r, struct outcome *out)
{
    for (size_t i = 0; i < r->nparents; i++) {
        const struct assign_parent *p = &r->parents[i];
        struct outcome parent;
        eval_feature(st, p->id, &parent);
        if (parent.src == SRC_CYCLIC) {
            out->src = SRC_CYCLIC;
            return -1;
        }
        const json_t *v = outcome_value(&parent);
        json_t *obj = json_pack("{s:O}", "value", v != NULL ? v : json_null());
        int ok = p->cond != NULL && assign_cond_eval(p->cond, obj);
        json_decref(obj);
        if (!ok) {
            if (p->gate) {
                out->src = SRC_PREREQUISITE;
                return -1;
            }
            return 0;
        }
    }
    return 1;
}

/* Runs an experiment rule: 1 when the unit is in it (out holds the outcome), 0 to go on. */
static int run_rule(struct eval_state *st, const struct rule *r, struct outcome *out)
{
    const struct assign_experiment *e = r->compiled;
    struct assign_context c = *st->ctx;
    c.parent_cb = parent_cb;
    c.parent_data = st;
    assign_run(e, &c, &out->res);
    int v = out->res.variation;
    if (!out->res.in_experiment || ((size_t)v < e->nmeta && e->meta[v].passthrough))
        return 0;
    out->src = SRC_EXPERIMENT;
    out->r = r;
    return 1;
}

static void eval_rules(struct eval_state *st, const struct feature *f, struct outcome *out)
{
    const struct assign_context *ctx = st->ctx;
    out->f = f;
    for (size_t i = 0; i < f->nrules; i++) {
        const struct rule *r = &f->rules[i];
        int p = check_parents(st, r, out);
        if (p < 0)
            return;
        if (p == 0)
            continue;
        if (r->has_filters &&
            (!r->filters_ok || assign_filters_exclude(r->filters, r->nfilters, ctx)))
            continue;
        if (r->has_condition &&
            (r->condition == NULL || !assign_cond_eval(r->condition, ctx->attributes)))
            continue;
        if (r->force != NULL) {
            if (!in_rollout(ctx, r))
                continue;
            out->src = SRC_FORCE;
            out->r = r;
            return;
        }
        if (r->compiled != NULL && run_rule(st, r, out))
            return;
    }
    out->src = SRC_DEFAULT;
}

static int cmp_key(const void *key, const void *elem)
{
    return strcmp(key, (*(struct feature *const *)elem)->key);
}

static void eval_feature(struct eval_state *st, const char *key, struct outcome *out)
{
    out->f = NULL;
    out->r = NULL;
    struct feature *const *found =
        key != NULL ? bsearch(key, st->fs->by_key, st->fs->n, sizeof(struct feature *), cmp_key)
                    : NULL;
    out->src = SRC_UNKNOWN;
    if (found == NULL)
        return;
    out->src = SRC_CYCLIC;
    for (size_t i = 0; i < st->depth; i++)
        if (strcmp(st->stack[i], key) == 0)
            return;
    if (st->depth == MAX_DEPTH)
        return;
    st->stack[st->depth++] = (*found)->key;
    eval_rules(st, *found, out);
    st->depth--;
}

/* ---------------------------------------------------------------- outcomes as JSON */

json_t *assign_result_json(const struct assign_experiment *e, const struct assign_result *res,
                           const char *feature_id)
{
    json_t *r = json_object();
    const struct assign_meta *meta =
        (size_t)res->variation < e->nmeta ? &e->meta[res->variation] : NULL;
    char idx[16];
    snprintf(idx, sizeof(idx), "%d", res->variation);
    json_object_set_new(r, "key", json_string(meta != NULL && meta->key ? meta->key : idx));
    json_object_set_new(r, "featureId", feature_id != NULL ? json_string(feature_id) : json_null());
    json_object_set_new(r, "inExperiment", json_boolean(res->in_experiment));
    json_object_set_new(r, "hashUsed", json_boolean(res->hash_used));
    json_object_set_new(r, "variationId", json_integer(res->variation));
    json_t *value = json_array_get(e->variations, (size_t)res->variation);
    json_object_set_new(r, "value", value != NULL ? json_deep_copy(value) : json_null());
    json_object_set_new(r, "hashAttribute", json_string(res->hash_attribute));
    json_object_set_new(r, "hashValue", res->hash_value != NULL
                                            ? json_deep_copy(res->hash_value)
                                            : json_string(""));
    json_object_set_new(r, "stickyBucketUsed", json_false());
    if (meta != NULL && meta->name != NULL)
        json_object_set_new(r, "name", json_string(meta->name));
    if (meta != NULL && meta->passthrough)
        json_object_set_new(r, "passthrough", json_true());
    if (res->hash_used)
        json_object_set_new(r, "bucket", json_real(res->bucket));
    if (res->bandit) {
        json_t *w = json_array();
        for (size_t i = 0; i < res->nbandit_weights; i++)
            json_array_append_new(w, json_real(res->bandit_weights[i]));
        json_object_set_new(r, "leafId", json_integer(res->leaf_id));
        json_object_set_new(r, "variationWeights", w);
        json_object_set_new(r, "banditVersion", json_integer(res->bandit_version));
    }
    return r;
}

/* The Experiment object an outcome from an experiment rule reports (a new reference): the rule's,
 * or for a contextual bandit a copy with the weights the bandit chose. */
static json_t *outcome_experiment(const struct outcome *o)
{
    if (!o->res.bandit)
        return json_incref(o->r->exp);
    json_t *exp = json_copy(o->r->exp);
    json_t *w = json_array();
    for (size_t i = 0; i < o->res.nbandit_weights; i++)
        json_array_append_new(w, json_real(o->res.bandit_weights[i]));
    json_object_set(exp, "weights", w);
    json_object_set_new(exp, "contextualBandit",
                        json_pack("{s:I, s:o, s:I}", "leafId", o->res.leaf_id, "variationWeights",
                                  w, "banditVersion", o->res.bandit_version));
    return exp;
}

json_t *assign_features_eval(const struct assign_features *fs, const char *key,
                             const struct assign_context *ctx)
{
    struct eval_state st = {.fs = fs, .ctx = ctx};
    struct outcome o;
    eval_feature(&st, key, &o);
    const json_t *value = outcome_value(&o);
    int on = value != NULL && truthy(value);
    json_t *r = json_object();
    json_object_set_new(r, "value", value != NULL ? json_deep_copy(value) : json_null());
    json_object_set_new(r, "on", json_boolean(on));
    json_object_set_new(r, "off", json_boolean(!on));
    json_object_set_new(r, "source", json_string(SOURCE_NAMES[o.src]));
    json_object_set_new(r, "ruleId", json_string(o.r != NULL ? o.r->id : ""));
    if (o.src == SRC_EXPERIMENT) {
        json_object_set_new(r, "experiment", outcome_experiment(&o));
        json_object_set_new(r, "experimentResult",
                            assign_result_json(o.r->compiled, &o.res, o.f->key));
    }
    return r;
}

/* ---------------------------------------------------------------- the /api/eval answer */

#define RAW(w, lit) ab_jsonw_raw(w, lit, sizeof(lit) - 1)

static void put_text(struct ab_jsonw *w, const char *text)
{
    ab_jsonw_raw(w, text, strlen(text));
}

/* A JSON value of the request (a hashed attribute value), as compact JSON. */
static void put_json(struct ab_jsonw *w, const json_t *v)
{
    if (json_is_string(v)) {
        ab_jsonw_str(w, json_string_value(v), json_string_length(v));
        return;
    }
    char *text = dump(v);
    put_text(w, text);
    free(text);
}

/* assign_result_json's object, written. */
static void write_result(struct ab_jsonw *w, const struct outcome *o)
{
    const struct assign_experiment *e = o->r->compiled;
    const struct assign_result *res = &o->res;
    const struct assign_meta *meta =
        (size_t)res->variation < e->nmeta ? &e->meta[res->variation] : NULL;
    RAW(w, "{\"key\":");
    if (meta != NULL && meta->key != NULL) {
        ab_jsonw_str(w, meta->key, strlen(meta->key));
    } else {
        RAW(w, "\"");
        ab_jsonw_int(w, res->variation);
        RAW(w, "\"");
    }
    RAW(w, ",\"featureId\":");
    ab_jsonw_str(w, o->f->key, strlen(o->f->key));
    RAW(w, ",\"inExperiment\":");
    ab_jsonw_bool(w, res->in_experiment);
    RAW(w, ",\"hashUsed\":");
    ab_jsonw_bool(w, res->hash_used);
    RAW(w, ",\"variationId\":");
    ab_jsonw_int(w, res->variation);
    RAW(w, ",\"value\":");
    put_text(w, o->r->variation_text[res->variation]);
    RAW(w, ",\"hashAttribute\":");
    ab_jsonw_str(w, res->hash_attribute, strlen(res->hash_attribute));
    RAW(w, ",\"hashValue\":");
    if (res->hash_value != NULL)
        put_json(w, res->hash_value);
    else
        RAW(w, "\"\"");
    RAW(w, ",\"stickyBucketUsed\":false");
    if (meta != NULL && meta->name != NULL) {
        RAW(w, ",\"name\":");
        ab_jsonw_str(w, meta->name, strlen(meta->name));
    }
    if (meta != NULL && meta->passthrough)
        RAW(w, ",\"passthrough\":true");
    if (res->hash_used) {
        RAW(w, ",\"bucket\":");
        ab_jsonw_double(w, res->bucket);
    }
    if (res->bandit) {
        RAW(w, ",\"leafId\":");
        ab_jsonw_int(w, res->leaf_id);
        RAW(w, ",\"variationWeights\":[");
        for (size_t i = 0; i < res->nbandit_weights; i++) {
            if (i > 0)
                RAW(w, ",");
            ab_jsonw_double(w, res->bandit_weights[i]);
        }
        RAW(w, "],\"banditVersion\":");
        ab_jsonw_int(w, res->bandit_version);
    }
    RAW(w, "}");
}

/*
 * The outcome as the FeatureDefinition an SDK evaluates to the same: its value as the default,
 * and for an experiment a force rule that tracks the experiment and its result.
 */
static void write_definition(struct ab_jsonw *w, const struct outcome *o)
{
    const char *value = o->src == SRC_DEFAULT      ? o->f->default_text
                        : o->src == SRC_FORCE      ? o->r->force_text
                        : o->src == SRC_EXPERIMENT ? o->r->variation_text[o->res.variation]
                                                   : "null";
    RAW(w, "{\"defaultValue\":");
    put_text(w, value);
    RAW(w, ",\"rules\":[");
    if (o->src == SRC_EXPERIMENT) {
        RAW(w, "{\"force\":");
        put_text(w, value);
        RAW(w, ",\"tracks\":[{\"experiment\":");
        if (o->res.bandit) {
            json_t *exp = outcome_experiment(o);
            put_json(w, exp);
            json_decref(exp);
        } else {
            put_text(w, o->r->exp_text);
        }
        RAW(w, ",\"result\":");
        write_result(w, o);
        RAW(w, "}]}");
    }
    RAW(w, "]}");
}

void assign_features_write_remote(struct ab_jsonw *w, const struct assign_features *fs,
                                  const struct assign_context *ctx, int64_t version)
{
    RAW(w, "{\"features\":{");
    for (size_t i = 0; i < fs->n; i++) {
        const struct feature *f = &fs->items[i];
        struct eval_state st = {.fs = fs, .ctx = ctx};
        struct outcome o;
        eval_feature(&st, f->key, &o);
        if (i > 0)
            RAW(w, ",");
        ab_jsonw_str(w, f->key, strlen(f->key));
        RAW(w, ":");
        write_definition(w, &o);
    }
    RAW(w, "},\"experiments\":[],\"snapshotVersion\":");
    ab_jsonw_int(w, version);
    RAW(w, "}");
}
