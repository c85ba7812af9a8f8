/*
 * GrowthBook feature evaluation (evalFeature) over a FeatureMap, on top of the evaluation core:
 * prerequisites with cycle detection, filters, conditions, forced values with rollouts, and
 * experiment rules turned into experiments and run. Used by the remote-evaluation endpoint and
 * the conformance suite; it compiles what it needs per call, so it is not the /v1/assign hot
 * path (that one runs precompiled experiments).
 */
#include <string.h>
#include "assign_int.h"

#define MAX_DEPTH 32 /* prerequisite chains deeper than this count as cyclic */

struct eval_state {
    const json_t *features;
    const struct assign_context *ctx;
    const char *stack[MAX_DEPTH]; /* features being evaluated, for cycle detection */
    size_t depth;
};

static json_t *eval_feature(struct eval_state *st, const char *key);

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

static json_t *feature_result(const json_t *value, const char *source, const char *rule_id)
{
    json_t *r = json_object();
    json_object_set_new(r, "value", value != NULL ? json_deep_copy(value) : json_null());
    json_object_set_new(r, "on", json_boolean(value != NULL && truthy(value)));
    json_object_set_new(r, "off", json_boolean(!(value != NULL && truthy(value))));
    json_object_set_new(r, "source", json_string(source));
    json_object_set_new(r, "ruleId", json_string(rule_id != NULL ? rule_id : ""));
    return r;
}

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

static int parent_cb(void *data, const char *id, json_t **value)
{
    struct eval_state *st = data;
    json_t *r = eval_feature(st, id);
    int cyclic = strcmp(json_string_value(json_object_get(r, "source")), "cyclicPrerequisite") == 0;
    *value = json_incref(json_object_get(r, "value"));
    json_decref(r);
    return cyclic ? -1 : 0;
}

/* Spec's isIncludedInRollout. */
static int in_rollout(const struct assign_context *ctx, const char *seed, const json_t *rule)
{
    const json_t *range = json_object_get(rule, "range");
    const json_t *coverage = json_object_get(rule, "coverage");
    if (!json_is_array(range) && !json_is_number(coverage))
        return 1;
    if (!json_is_array(range) && json_number_value(coverage) == 0)
        return 0;
    const json_t *attr = json_object_get(rule, "hashAttribute");
    char buf[32];
    size_t len;
    const char *text = assign_attr_text(
        json_object_get(ctx->attributes, json_is_string(attr) ? json_string_value(attr) : "id"),
        buf, &len);
    if (text == NULL)
        return 0;
    const json_t *hv = json_object_get(rule, "hashVersion");
    double n = assign_hash(seed, strlen(seed), text, len,
                           json_is_integer(hv) ? (int)json_integer_value(hv) : 1);
    if (n < 0)
        return 0; /* unknown hash version: the spec's null, never included */
    if (json_is_array(range)) {
        struct assign_range r = {json_number_value(json_array_get(range, 0)),
                                 json_number_value(json_array_get(range, 1))};
        return assign_in_range(n, &r);
    }
    return n <= json_number_value(coverage);
}

/* Spec's isFilteredOut for a rule's filters. */
static int rule_filtered_out(const struct assign_context *ctx, const json_t *filters)
{
    struct assign_filter *f = NULL;
    size_t n = 0;
    int out =
        assign_filters_compile(filters, &f, &n, NULL) != AB_OK || assign_filters_exclude(f, n, ctx);
    assign_filters_free(f, n);
    return out;
}

static int condition_passes(const struct assign_context *ctx, const json_t *cond,
                            const json_t *attributes)
{
    struct assign_cond *c = NULL;
    if (assign_cond_compile(cond, ctx->saved_groups, &c, NULL) != AB_OK)
        return 0;
    int ok = assign_cond_eval(c, attributes);
    assign_cond_free(c);
    return ok;
}

/* 1: rule applies; 0: skip the rule; -1: *gate_result holds the feature's final result. */
static int check_parents(struct eval_state *st, const json_t *rule, json_t **gate_result)
{
    size_t i;
    const json_t *pc;
    json_array_foreach(json_object_get(rule, "parentConditions"), i, pc)
    {
        json_t *parent = eval_feature(st, json_string_value(json_object_get(pc, "id")));
        if (strcmp(json_string_value(json_object_get(parent, "source")), "cyclicPrerequisite") ==
            0) {
            json_decref(parent);
            *gate_result = feature_result(NULL, "cyclicPrerequisite", NULL);
            return -1;
        }
        json_t *obj = json_pack("{s:O}", "value", json_object_get(parent, "value"));
        int ok = condition_passes(st->ctx, json_object_get(pc, "condition"), obj);
        json_decref(obj);
        json_decref(parent);
        if (!ok) {
            if (json_is_true(json_object_get(pc, "gate"))) {
                *gate_result = feature_result(NULL, "prerequisite", NULL);
                return -1;
            }
            return 0;
        }
    }
    return 1;
}

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

/* Runs an experiment rule; returns the feature result, or NULL to go on to the next rule. */
static json_t *run_rule(struct eval_state *st, const json_t *rule, const char *key,
                        const char *rule_id)
{
    json_t *exp = rule_experiment(rule, key);
    struct assign_experiment *e = NULL;
    json_t *out = NULL;
    json_t *compile_def = json_copy(exp);
    const json_t *ref = json_object_get(rule, "contextualBanditRef");
    if (ref != NULL)
        json_object_set(compile_def, "contextualBanditRef", (json_t *)ref);
    if (assign_experiment_compile(compile_def, st->ctx->saved_groups, &e, NULL) == AB_OK) {
        struct assign_context c = *st->ctx;
        c.parent_cb = parent_cb;
        c.parent_data = st;
        struct assign_result res;
        assign_run(e, &c, &res);
        int passthrough = (size_t)res.variation < e->nmeta && e->meta[res.variation].passthrough;
        if (res.in_experiment && !passthrough) {
            if (res.bandit) {
                json_t *w = json_array();
                for (size_t i = 0; i < res.nbandit_weights; i++)
                    json_array_append_new(w, json_real(res.bandit_weights[i]));
                json_object_set(exp, "weights", w);
                json_object_set_new(exp, "contextualBandit",
                                    json_pack("{s:I, s:o, s:I}", "leafId", res.leaf_id,
                                              "variationWeights", w, "banditVersion",
                                              res.bandit_version));
            }
            out = feature_result(json_array_get(e->variations, (size_t)res.variation),
                                 "experiment", rule_id);
            json_object_set(out, "experiment", exp);
            json_object_set_new(out, "experimentResult", assign_result_json(e, &res, key));
        }
    }
    assign_experiment_free(e);
    json_decref(compile_def);
    json_decref(exp);
    return out;
}

static json_t *eval_rules(struct eval_state *st, const json_t *feature, const char *key)
{
    size_t i;
    const json_t *rule;
    json_array_foreach(json_object_get(feature, "rules"), i, rule)
    {
        const json_t *idv = json_object_get(rule, "id");
        const char *rule_id = json_is_string(idv) ? json_string_value(idv) : "";
        json_t *gate = NULL;
        int p = check_parents(st, rule, &gate);
        if (p < 0)
            return gate;
        if (p == 0)
            continue;
        const json_t *filters = json_object_get(rule, "filters");
        if (filters != NULL && rule_filtered_out(st->ctx, filters))
            continue;
        const json_t *cond = json_object_get(rule, "condition");
        if (cond != NULL && !condition_passes(st->ctx, cond, st->ctx->attributes))
            continue;
        const json_t *force = json_object_get(rule, "force");
        if (force != NULL) {
            const json_t *seed = json_object_get(rule, "seed");
            if (!in_rollout(st->ctx, json_is_string(seed) ? json_string_value(seed) : key, rule))
                continue;
            return feature_result(force, "force", rule_id);
        }
        if (json_object_get(rule, "variations") == NULL &&
            json_object_get(rule, "contextualVariations") == NULL)
            continue;
        json_t *r = run_rule(st, rule, key, rule_id);
        if (r != NULL)
            return r;
    }
    const json_t *dv = json_object_get(feature, "defaultValue");
    return feature_result(dv, "defaultValue", NULL);
}

static json_t *eval_feature(struct eval_state *st, const char *key)
{
    const json_t *feature = key != NULL ? json_object_get(st->features, key) : NULL;
    if (feature == NULL)
        return feature_result(NULL, "unknownFeature", NULL);
    for (size_t i = 0; i < st->depth; i++)
        if (strcmp(st->stack[i], key) == 0)
            return feature_result(NULL, "cyclicPrerequisite", NULL);
    if (st->depth == MAX_DEPTH)
        return feature_result(NULL, "cyclicPrerequisite", NULL);
    st->stack[st->depth++] = key;
    json_t *r = eval_rules(st, feature, key);
    st->depth--;
    return r;
}

json_t *assign_feature_eval(const json_t *features, const char *key,
                            const struct assign_context *ctx)
{
    struct eval_state st = {.features = features, .ctx = ctx};
    return eval_feature(&st, key);
}
