/*
 * Private types of the assignment component: a compiled experiment (GrowthBook's Experiment with
 * everything precomputed: bucket ranges, conditions, filters), the context a unit is evaluated
 * in, and the result with the reason a unit is not in an experiment. The evaluation core
 * (eval.c) is pure: no I/O, no locks, nothing allocated per evaluation. feature.c evaluates
 * GrowthBook features (rules) on top of it, for the SDK endpoints and the conformance suite.
 */
#ifndef ABACUS_ASSIGN_INT_H
#define ABACUS_ASSIGN_INT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/err.h"
#include "abacus/follower.h"
#include "abacus/holder.h"
#include "abacus/http.h"
#include "abacus/jsonw.h"
#include "abacus/log.h"
#include "abacus/snapshot.h"
#include "condition.h"
#include "hash.h"

/* Why a unit got the variation it got (or none). */
enum assign_reason {
    ASSIGN_HASHED,              /* in the experiment by its hash */
    ASSIGN_FORCED,              /* forced for this unit (override, forcedVariations) */
    ASSIGN_QUERY_OVERRIDE,      /* forced by the page URL's query string */
    ASSIGN_EXPERIMENT_FORCE,    /* the experiment forces one variation on everyone included */
    ASSIGN_TOO_FEW_VARIATIONS,  /* fewer than 2 variations */
    ASSIGN_DISABLED,            /* the context disables all experiments */
    ASSIGN_NOT_RUNNING,         /* active false (paused, stopped) */
    ASSIGN_NO_HASH_ATTRIBUTE,   /* the hash attribute (and fallback) is missing or empty */
    ASSIGN_FILTERED,            /* a filter excluded the unit */
    ASSIGN_NAMESPACE,           /* outside the experiment's range of its layer */
    ASSIGN_CONDITION,           /* the targeting condition failed */
    ASSIGN_PREREQUISITE,        /* a parent condition failed */
    ASSIGN_COVERAGE,            /* hashed outside every variation's range */
    ASSIGN_QA_MODE,             /* the context allows forced variations only */
};

/* snake_case name of a reason ("coverage"), as the HTTP API reports it. */
const char *assign_reason_name(enum assign_reason r);

struct assign_meta {
    char *key;       /* NULL: the variation's index as a string */
    char *name;      /* may be NULL */
    int passthrough; /* holdout: in the experiment, but the feature rule falls through */
};

struct assign_filter {
    char *seed;
    char *attribute; /* default "id" */
    int hash_version; /* default 2 */
    struct assign_range *ranges;
    size_t nranges;
};

struct assign_parent {
    char *id;                  /* parent feature key */
    struct assign_cond *cond;  /* evaluated against {"value": <parent's value>} */
    int gate;                  /* feature rules: a failed gate blocks the whole feature */
};

struct assign_override {
    char *unit;    /* hash attribute value */
    int variation; /* index */
};

struct assign_experiment {
    char *key;
    json_t *variations;           /* array, owned reference */
    size_t nvariations;
    double coverage;              /* [0, 1] as given (clamped when ranges are built) */
    double *weights;              /* [nweights], as given; NULL for none */
    size_t nweights;
    int explicit_ranges;          /* ranges came from the definition, not from weights */
    struct assign_range *ranges;  /* [nvariations] */
    struct assign_meta *meta;     /* [nmeta]; meta[i] describes variation i */
    size_t nmeta;
    char *seed;                   /* default: key */
    size_t seed_len;
    uint32_t seed_state;          /* FNV-1a state after the seed, for hash version 2 */
    char *hash_attribute;         /* default "id" */
    size_t hash_attribute_len;
    uint64_t hash_attribute_tag;  /* assign_attr_tag of hash_attribute */
    char *fallback_attribute;     /* NULL for none */
    size_t fallback_attribute_len;
    uint64_t fallback_attribute_tag;
    int hash_version;             /* GrowthBook default 1; Abacus experiments use 2 */
    int active;                   /* 0: everyone gets variation 0, not in the experiment */
    int has_force;
    int force;                    /* variation forced on everyone included */
    int has_namespace;
    char *ns_id;
    double ns_start, ns_end;      /* [start, end) of the namespace */
    struct assign_filter *filters;
    size_t nfilters;
    struct assign_cond *condition; /* NULL: everyone */
    uint32_t condition_class;      /* > 0: experiments of a snapshot with the same condition
                                      share it, and assign_run_many evaluates it once; 0: none */
    struct assign_parent *parents;
    size_t nparents;
    struct assign_override *overrides; /* sorted by unit (strcmp) for bsearch */
    size_t noverrides;
    char *bandit_ref;             /* contextual bandit (GrowthBook), NULL for none */
    int plain; /* hash version 2, 2+ variations, active, and no force, fallback attribute,
                  filter, namespace, parent, bandit or override (whoever sets overrides clears
                  it): only the hash attribute and the condition decide, so assign_run_many
                  takes a short way */
};

/*
 * Evaluates a parent feature for a prerequisite: *value gets its value (a new reference, the
 * caller's). Returns 0, or -1 when evaluating it would be cyclic.
 */
typedef int (*assign_parent_cb)(void *data, const char *feature_id, json_t **value);

/*
 * attributes may be NULL while index holds attributes read without jansson (assign_post_read):
 * then no experiment evaluated may have prerequisites or a contextual bandit, which need the
 * object (assign_snap's scalar_attributes_ok).
 */
struct assign_context {
    const json_t *attributes;        /* object, may be NULL */
    const struct assign_attrs *index; /* attributes indexed (assign_attrs_index), or NULL */
    const json_t *forced_variations; /* object key -> index, may be NULL */
    const char *url;                 /* page URL for query-string overrides, may be NULL */
    int qa_mode;
    int disabled;                    /* the spec's enabled == false */
    const json_t *saved_groups;      /* for conditions compiled on the fly (bandits) */
    const json_t *contextual_bandits; /* object ref -> {banditVersion, contexts}, may be NULL */
    assign_parent_cb parent_cb;      /* NULL: prerequisites fail */
    void *parent_data;
};

struct assign_result {
    int in_experiment;
    int variation;               /* always a valid index (0 when not in the experiment) */
    int hash_used;
    enum assign_reason reason;
    double bucket;               /* the unit's hash, when hash_used */
    const char *hash_attribute;  /* attribute used (borrowed from the experiment) */
    const json_t *hash_value;    /* its value (borrowed from the attributes), NULL for "" and
                                    for attributes read without jansson */
    /* contextual bandit, when one chose the weights */
    int bandit;                  /* 1 when the fields below are set */
    long long leaf_id;
    size_t nbandit_weights;
    long long bandit_version;
    double bandit_weights[16];   /* last: assign_run clears what comes before it, only */
};

/*
 * Compiles a GrowthBook Experiment object (key, variations, weights, coverage, ranges, meta,
 * seed, hashAttribute, fallbackAttribute, hashVersion, active, force, namespace, filters,
 * condition, parentConditions) into *out (the caller's; assign_experiment_free). saved_groups
 * is used by the conditions. Errors: AB_ERR_INVALID_FIELD naming the field.
 */
enum ab_err assign_experiment_compile(const json_t *def, const json_t *saved_groups,
                                      struct assign_experiment **out, struct ab_errinfo *ei);

void assign_experiment_free(struct assign_experiment *e);

/* GrowthBook Filter objects -> *out[*n] (free with assign_filters_free). */
enum ab_err assign_filters_compile(const json_t *arr, struct assign_filter **out, size_t *n,
                                   struct ab_errinfo *ei);
void assign_filters_free(struct assign_filter *filters, size_t n);

struct assign_context;

/* The spec's isFilteredOut: 1 when a filter excludes the unit ctx describes. */
int assign_filters_exclude(const struct assign_filter *filters, size_t n,
                           const struct assign_context *ctx);

/* GrowthBook's run(experiment): the variation of the unit described by ctx. */
void assign_run(const struct assign_experiment *e, const struct assign_context *ctx,
                struct assign_result *res);

/*
 * assign_run for each of exps[0..n) in one context, into res[n]: the same results, faster for
 * many experiments and one unit, since the version 2 hashes of the unit run side by side
 * (assign_hash_v2_many). What POST /v1/assign evaluates.
 */
void assign_run_many(const struct assign_experiment *const *exps, size_t n,
                     const struct assign_context *ctx, struct assign_result *res);

/* GrowthBook's getQueryStringOverride: the forced index from url, or -1. */
int assign_query_override(const char *key, const char *url, size_t nvariations);

/* --- features (feature.c) --- */

/* A GrowthBook FeatureMap, compiled. */
struct assign_features;

/*
 * Compiles the FeatureMap object map (a reference is kept) with saved_groups (for $inGroup, may
 * be NULL): every rule's conditions, filters, rollout and experiment, once. Never fails: what does
 * not compile decides as the spec's evaluation of it would (a condition that does not compile
 * fails, filters that do not compile exclude, an experiment that does not compile is skipped).
 */
struct assign_features *assign_features_compile(const json_t *map, const json_t *saved_groups);

void assign_features_free(struct assign_features *fs); /* accepts NULL */

/*
 * The answer of GrowthBook's remote evaluation (POST /api/eval/{clientKey}) to w: every feature
 * of fs evaluated for ctx, each as the FeatureDefinition an SDK evaluates to the same value
 * (default value, and a force rule tracking the experiment and its result when the unit is in
 * one), then "experiments":[] and "snapshotVersion":version.
 */
void assign_features_write_remote(struct ab_jsonw *w, const struct assign_features *fs,
                                  const struct assign_context *ctx, int64_t version);

/*
 * GrowthBook's evalFeature(key) with ctx's attributes etc.: returns the FeatureResult object (a
 * new reference: value, on, off, source, ruleId, and experiment / experimentResult when the
 * source is an experiment). ctx's saved_groups are those fs was compiled with.
 */
json_t *assign_features_eval(const struct assign_features *fs, const char *key,
                             const struct assign_context *ctx);

/* GrowthBook's ExperimentResult object for res (a new reference). feature_id may be NULL. */
json_t *assign_result_json(const struct assign_experiment *e, const struct assign_result *res,
                           const char *feature_id);

/* --- compiled snapshots (snap.c) --- */

/* Text owned by a compiled snapshot. */
struct assign_text {
    char *p;
    size_t len;
};

/*
 * One Abacus experiment of a snapshot, compiled: the evaluation core's experiment, and the
 * fragments its answer (GET /v1/assign, one item of POST) is copied together from per request,
 * written once by answer.c, which says how they join.
 */
struct assign_entry {
    struct assign_experiment *exp; /* key, ranges, condition... */
    int running;                   /* 0: paused (everyone gets the control, not_running) */
    struct assign_text head, tail;
    struct assign_text *variant, *payload; /* [exp->nvariations] */
    struct assign_text *hashed_pre, *hashed_post; /* [exp->nvariations] */
    struct assign_text *hashed_join;              /* [exp->nvariations] when running, or NULL */
};

/*
 * A snapshot compiled for serving: immutable once built, shared by every worker thread, freed
 * when its last reference is released.
 */
struct assign_snap {
    _Atomic long refs;
    int64_t version;          /* snapshot version */
    int64_t created_at;       /* ms since epoch, when the control plane wrote it */
    struct assign_entry *entries; /* sorted by key */
    size_t nentries;
    size_t *running;          /* indexes of running entries, in key order */
    size_t nrunning;
    char **client_key_hashes; /* sorted hex SHA-256 */
    size_t nclient_keys;
    json_t *gb_features;      /* GrowthBook FeatureMap of all experiments, owned */
    struct assign_features *features; /* gb_features compiled, for /api/eval */
    int scalar_attributes_ok; /* no experiment needs the attributes object (assign_context) */
    char *features_body;      /* the /api/features payload, compact JSON */
    size_t features_len;
    char etag[48];            /* strong ETag of features_body ("\"v17\"") */
};

/*
 * Compiles s into *out (one reference, the caller's). Errors: AB_ERR_INVALID_FIELD naming the
 * experiment and field when an experiment does not compile (a condition that is not valid).
 */
enum ab_err assign_snap_compile(const struct ab_snapshot *s, struct assign_snap **out,
                                struct ab_errinfo *ei);

struct assign_snap *assign_snap_ref(struct assign_snap *snap);
void assign_snap_release(struct assign_snap *snap); /* accepts NULL */

/* The entry for key, or NULL. */
const struct assign_entry *assign_snap_find(const struct assign_snap *snap, const char *key);

/* The entry for key[0..len) (which holds no NUL), or NULL. */
const struct assign_entry *assign_snap_findn(const struct assign_snap *snap, const char *key,
                                             size_t len);

/* 1 when key hashes to one of the snapshot's SDK client keys. */
int assign_snap_client_key_ok(const struct assign_snap *snap, const char *key);

/* --- the node (node.c: lifecycle, readiness, metrics; api.c: the HTTP handlers) --- */

struct assign_node {
    struct ab_follower *follower; /* hands over each verified snapshot (node.c) */
    struct ab_holder holder;      /* the current struct assign_snap; a slot per HTTP worker */
    const struct ab_log *log;
    const struct ab_clock *clock;
};

/* Registers the node's routes (GET/POST /v1/assign, /api/features, /api/eval) on srv. */
enum ab_err assign_api_mount(struct assign_node *n, struct ab_http_server *srv,
                             struct ab_errinfo *ei);

/* --- the answers of /v1/assign (answer.c) --- */

#define ASSIGN_UNIT_MAX 256 /* longest unit id, bytes */

/* Writes out's answer fragments for the snapshot experiment e of snapshot version version. */
void assign_answer_compile(struct assign_entry *out, const struct ab_snapshot_experiment *e,
                           int64_t version);

/* Each running entry's hashed_join, once every entry's fragments are written. */
void assign_answer_join(struct assign_snap *snap);

/* Frees e's fragments (of its nvariants variants; what was never written may be NULL). */
void assign_answer_free(struct assign_entry *e, size_t nvariants);

/* About the bytes of an answer of items assignments for a unit of unit_len bytes. */
size_t assign_answer_size(size_t items, size_t unit_len);

/*
 * GET /v1/assign's answer: e evaluated for the unit (unit[0..unit_len), valid UTF-8, at most
 * ASSIGN_UNIT_MAX bytes) with attributes attrs, written to w.
 */
void assign_answer_get(struct ab_jsonw *w, const struct assign_entry *e,
                       const struct assign_attrs *attrs, const char *unit, size_t unit_len);

/*
 * POST /v1/assign's answer to w, the envelope and an assignment each for the experiments
 * listed[0..n) in that order, or for every running experiment when listed is NULL.
 */
void assign_answer_post(struct ab_jsonw *w, const struct assign_snap *snap,
                        const struct assign_attrs *attrs, const char *unit, size_t unit_len,
                        const struct assign_entry *const *listed, size_t n);

/* --- POST /v1/assign bodies (post.c) --- */

#define ASSIGN_POST_KEYS_MAX 128 /* longest experiments list read without jansson */

struct assign_key {
    const char *p; /* in the body, not NUL-terminated */
    size_t len;
};

/* A POST /v1/assign body read by assign_post_read: everything points into the body. */
struct assign_post {
    const char *unit; /* not NUL-terminated */
    size_t unit_len;
    struct assign_attrs attrs; /* indexed, with the id (the unit); obj and every value NULL */
    int has_list;              /* the body lists its experiments: keys[nkeys] */
    size_t nkeys;
    struct assign_key keys[ASSIGN_POST_KEYS_MAX];
};

/*
 * Reads body[0..len) when it is a valid POST /v1/assign body of the usual shape: an object with
 * "unit" (a string of 1 to unit_max bytes), maybe "attributes" (null, or an object of at most
 * ASSIGN_ATTRS_INDEXED - 1 attributes besides id whose values are strings, numbers, booleans or
 * null) and maybe "experiments" (null, or up to ASSIGN_POST_KEYS_MAX strings), with no string
 * escapes and no integers past 15 digits. Returns 1 then; 0 for anything else, valid or not,
 * which the caller parses with jansson instead. out is filled only on 1.
 */
int assign_post_read(const char *body, size_t len, size_t unit_max, struct assign_post *out);

#endif
