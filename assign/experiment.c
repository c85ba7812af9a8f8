/*
 * Compiles a GrowthBook Experiment object into struct assign_experiment (assign_int.h), once per
 * snapshot: variations, weights and coverage into bucket ranges, meta, seed (with its FNV state),
 * hash and fallback attributes (with their tags), namespace, filters, condition, parent
 * conditions and a contextual bandit's reference; and says whether the experiment is "plain",
 * which lets assign_run_many take its short way. Off the request path; eval.c runs the result.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "assign_int.h"

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


void assign_filters_free(struct assign_filter *filters, size_t n)
{
    for (size_t i = 0; i < n && filters != NULL; i++) {
        free(filters[i].seed);
        free(filters[i].attribute);
        free(filters[i].ranges);
    }
    free(filters);
}
