/*
 * The evaluation core: runs a compiled experiment (experiment.c) for one unit, step by step as
 * the spec's run() (docs/lib/build-your-own.mdx): variations, enabled, query-string override,
 * forced variations (and Abacus's per-unit overrides), active, hash attribute with fallback,
 * filters or namespace, condition, prerequisites, bucketing, forced variation, QA mode; and many
 * experiments for one unit together (assign_run_many, what POST /v1/assign runs). Running
 * allocates nothing and takes no lock.
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
        return it != NULL ? assign_attr_item_text(it, buf, text_len) : NULL;
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
