/*
 * Compiles a snapshot (lib/snapshot.c's plain data) into what an assign node serves: each Abacus
 * experiment as a GrowthBook Experiment compiled by the evaluation core, its variant keys and
 * payloads, per-unit overrides, and the GrowthBook SDK payload for /api/features, built once.
 * Runs off the request path (at load); the result is immutable and reference-counted.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "assign_int.h"

/* The GrowthBook Experiment object of an Abacus experiment. */
static json_t *gb_experiment(const struct ab_snapshot_experiment *e)
{
    json_t *vars = json_array(), *weights = json_array(), *meta = json_array();
    for (size_t i = 0; i < e->nvariants; i++) {
        json_array_append_new(vars, json_string(e->variants[i].key));
        json_array_append_new(weights, json_real(e->variants[i].weight));
        json_array_append_new(meta, json_pack("{s:s}", "key", e->variants[i].key));
    }
    json_t *x = json_pack("{s:s, s:o, s:o, s:o, s:f, s:s, s:i, s:s}", "key", e->key, "variations",
                          vars, "weights", weights, "meta", meta, "coverage", e->coverage,
                          "hashAttribute", e->hash_attribute, "hashVersion", e->hash_version,
                          "seed", e->seed);
    if (!e->running)
        json_object_set_new(x, "active", json_false());
    if (e->fallback_attribute != NULL)
        json_object_set_new(x, "fallbackAttribute", json_string(e->fallback_attribute));
    if (e->layer != NULL)
        json_object_set_new(x, "namespace",
                            json_pack("[s,f,f]", e->layer, e->layer_start, e->layer_end));
    if (e->condition != NULL)
        json_object_set(x, "condition", e->condition);
    return x;
}

/*
 * The GrowthBook Feature of an Abacus experiment, keyed by the experiment key: per-unit overrides
 * as force rules, then the experiment rule (running experiments only); the default value is the
 * control's key, so an SDK that is not in the experiment gets what /v1/assign answers.
 */
static json_t *gb_feature(const struct ab_snapshot_experiment *e, const json_t *exp)
{
    json_t *rules = json_array();
    for (size_t v = 0; v < e->nvariants; v++) {
        json_t *units = json_array();
        for (size_t i = 0; i < e->noverrides; i++)
            if (strcmp(e->overrides[i].variant, e->variants[v].key) == 0)
                json_array_append_new(units, json_string(e->overrides[i].unit));
        if (json_array_size(units) == 0) {
            json_decref(units);
            continue;
        }
        char id[64];
        snprintf(id, sizeof(id), "override-%zu", v);
        json_array_append_new(
            rules, json_pack("{s:s, s:{s:{s:o}}, s:s}", "id", id, "condition", e->hash_attribute,
                             "$in", units, "force", e->variants[v].key));
    }
    if (e->running) {
        json_t *rule = json_deep_copy(exp);
        json_object_set_new(rule, "id", json_string("experiment"));
        if (e->fallback_attribute != NULL) {
            /* SDKs use fallbackAttribute only with sticky bucketing: spell Abacus's "hash
             * attribute, else the fallback" out as a second rule for units without the first */
            json_object_del(rule, "fallbackAttribute");
            json_t *fallback = json_deep_copy(rule);
            json_object_set_new(fallback, "id", json_string("experiment-fallback"));
            json_object_set_new(fallback, "hashAttribute", json_string(e->fallback_attribute));
            json_t *empty = json_pack("{s:[{s:{s:b}}, {s:{s:[s,i,b]}}]}", "$or", e->hash_attribute,
                                      "$exists", 0, e->hash_attribute, "$in", "", 0, 0);
            json_object_set_new(fallback, "condition",
                                e->condition != NULL
                                    ? json_pack("{s:[O,o]}", "$and", e->condition, empty)
                                    : empty);
            json_array_append_new(rules, rule);
            rule = fallback;
        }
        json_array_append_new(rules, rule);
    }
    return json_pack("{s:s, s:o}", "defaultValue", e->variants[0].key, "rules", rules);
}

static int cmp_override(const void *a, const void *b)
{
    return strcmp(((const struct assign_override *)a)->unit,
                  ((const struct assign_override *)b)->unit);
}

static enum ab_err compile_entry(const struct ab_snapshot_experiment *e, int64_t version,
                                 const json_t *exp, struct assign_entry *out,
                                 struct ab_errinfo *ei)
{
    struct ab_errinfo inner;
    enum ab_err rc = assign_experiment_compile(exp, NULL, &out->exp, &inner);
    if (rc != AB_OK)
        return ab_fail(ei, rc, inner.field, "experiment %.60s: %s", e->key, inner.message);
    out->running = e->running;
    assign_answer_compile(out, e, version);
    struct assign_experiment *x = out->exp;
    x->noverrides = e->noverrides;
    x->plain = x->plain && x->noverrides == 0;
    x->overrides = ab_mem_calloc(e->noverrides, sizeof(*x->overrides));
    for (size_t i = 0; i < e->noverrides; i++) {
        x->overrides[i].unit = ab_mem_strdup(e->overrides[i].unit);
        for (size_t v = 0; v < e->nvariants; v++)
            if (strcmp(e->variants[v].key, e->overrides[i].variant) == 0)
                x->overrides[i].variation = (int)v;
    }
    qsort(x->overrides, x->noverrides, sizeof(*x->overrides), cmp_override);
    return AB_OK;
}

struct cond_text {
    char *text; /* the condition as compact JSON, keys in their order */
    struct assign_experiment *exp;
};

static int cmp_cond_text(const void *a, const void *b)
{
    return strcmp(((const struct cond_text *)a)->text, ((const struct cond_text *)b)->text);
}

/*
 * Numbers the distinct conditions of the snapshot's experiments (condition_class), so that a
 * unit is tested once against a condition that many experiments share (an audience). Equal
 * means the same JSON text, keys in the same order: object literals compare in key order.
 */
static void class_conditions(const struct ab_snapshot *s, struct assign_snap *snap)
{
    struct cond_text *t = ab_mem_calloc(snap->nentries + 1, sizeof(*t));
    size_t n = 0;
    for (size_t i = 0; i < snap->nentries; i++) {
        char *text = s->experiments[i].condition != NULL && snap->entries[i].exp->condition != NULL
                         ? json_dumps(s->experiments[i].condition, JSON_COMPACT)
                         : NULL;
        if (text != NULL)
            t[n++] = (struct cond_text){text, snap->entries[i].exp};
    }
    qsort(t, n, sizeof(*t), cmp_cond_text);
    uint32_t cls = 0;
    for (size_t i = 0; i < n; i++) {
        if (i == 0 || strcmp(t[i].text, t[i - 1].text) != 0)
            cls++;
        t[i].exp->condition_class = cls;
    }
    for (size_t i = 0; i < n; i++)
        free(t[i].text);
    free(t);
}

enum ab_err assign_snap_compile(const struct ab_snapshot *s, struct assign_snap **out,
                                struct ab_errinfo *ei)
{
    enum ab_err rc = AB_OK;
    struct assign_snap *snap = ab_mem_calloc(1, sizeof(*snap));
    atomic_init(&snap->refs, 1);
    snap->version = s->version;
    snap->created_at = s->created_at;
    snap->entries = ab_mem_calloc(s->nexperiments, sizeof(*snap->entries));
    snap->running = ab_mem_calloc(s->nexperiments, sizeof(size_t));
    snap->gb_features = json_object();
    for (size_t i = 0; i < s->nexperiments; i++) {
        const struct ab_snapshot_experiment *e = &s->experiments[i];
        json_t *exp = gb_experiment(e);
        rc = compile_entry(e, s->version, exp, &snap->entries[i], ei);
        snap->nentries = i + 1;
        if (rc == AB_OK) {
            json_object_set_new(snap->gb_features, e->key, gb_feature(e, exp));
            if (e->running)
                snap->running[snap->nrunning++] = i;
        }
        json_decref(exp);
        if (rc != AB_OK)
            goto Exit;
    }
    snap->features = assign_features_compile(snap->gb_features, NULL);
    class_conditions(s, snap);
    assign_answer_join(snap);
    snap->scalar_attributes_ok = 1;
    for (size_t i = 0; i < snap->nentries; i++)
        snap->scalar_attributes_ok &=
            snap->entries[i].exp->nparents == 0 && snap->entries[i].exp->bandit_ref == NULL;
    snap->nclient_keys = s->nclient_keys;
    snap->client_key_hashes = ab_mem_calloc(s->nclient_keys, sizeof(char *));
    for (size_t i = 0; i < s->nclient_keys; i++)
        snap->client_key_hashes[i] = ab_mem_strdup(s->client_key_hashes[i]);
    json_t *payload = json_pack("{s:i, s:O, s:[], s:I}", "status", 200, "features",
                                snap->gb_features, "experiments", "snapshotVersion",
                                (json_int_t)s->version);
    snap->features_body = json_dumps(payload, JSON_COMPACT | JSON_SORT_KEYS);
    snap->features_len = strlen(snap->features_body);
    json_decref(payload);
    snprintf(snap->etag, sizeof(snap->etag), "\"v%lld\"", (long long)s->version);
    *out = snap;
    snap = NULL;
Exit:
    assign_snap_release(snap);
    return rc;
}

struct assign_snap *assign_snap_ref(struct assign_snap *snap)
{
    atomic_fetch_add_explicit(&snap->refs, 1, memory_order_relaxed);
    return snap;
}

void assign_snap_release(struct assign_snap *snap)
{
    if (snap == NULL || atomic_fetch_sub_explicit(&snap->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < snap->nentries; i++) {
        struct assign_entry *e = &snap->entries[i];
        assign_answer_free(e, e->exp != NULL ? e->exp->nvariations : 0);
        assign_experiment_free(e->exp);
    }
    free(snap->entries);
    free(snap->running);
    for (size_t i = 0; i < snap->nclient_keys; i++)
        free(snap->client_key_hashes[i]);
    free(snap->client_key_hashes);
    assign_features_free(snap->features);
    json_decref(snap->gb_features);
    free(snap->features_body);
    free(snap);
}

static int cmp_entry(const void *key, const void *elem)
{
    return strcmp(key, ((const struct assign_entry *)elem)->exp->key);
}

const struct assign_entry *assign_snap_find(const struct assign_snap *snap, const char *key)
{
    return bsearch(key, snap->entries, snap->nentries, sizeof(*snap->entries), cmp_entry);
}

const struct assign_entry *assign_snap_findn(const struct assign_snap *snap, const char *key,
                                             size_t len)
{
    size_t lo = 0, hi = snap->nentries;
    while (lo < hi) { /* strcmp's order, for a key that holds no NUL */
        size_t mid = lo + (hi - lo) / 2;
        const char *k = snap->entries[mid].exp->key;
        size_t klen = strlen(k);
        int c = memcmp(key, k, len < klen ? len : klen);
        if (c == 0)
            c = len < klen ? -1 : len > klen;
        if (c == 0)
            return &snap->entries[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

static int cmp_str(const void *key, const void *elem)
{
    return strcmp(key, *(char *const *)elem);
}

int assign_snap_client_key_ok(const struct assign_snap *snap, const char *key)
{
    char h[65];
    ab_snapshot_key_hash(key, h);
    return bsearch(h, snap->client_key_hashes, snap->nclient_keys, sizeof(char *), cmp_str) !=
           NULL;
}
