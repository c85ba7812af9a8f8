/*
 * Private types and functions of the web component (the control plane): the pure validation core
 * (validate.c: request bodies to normalized JSON, no SQLite, no sockets), the control-database
 * SQL (store.c, the one module that reads and writes the control tables), admin keys (keys.c),
 * the snapshot publisher (publish.c) and the HTTP glue (api.c).
 */
#ifndef ABACUS_WEB_INT_H
#define ABACUS_WEB_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/db.h"
#include "abacus/err.h"
#include "abacus/snapshot.h"
#include "web.h"

#define WEB_KEY_MAX 200          /* longest experiment, variant, metric or layer key, bytes */
#define WEB_NAME_MAX 200         /* longest name, bytes */
#define WEB_TEXT_MAX 10000       /* longest description, bytes */
#define WEB_VARIANTS_MAX 20      /* variants in one experiment */
#define WEB_OVERRIDES_MAX 10000  /* per-unit overrides in one experiment */
#define WEB_BODY_MAX ((size_t)1024 * 1024)

/* --- validation (validate.c): pure, fuzzed by tests/fuzz/fuzz_admin.c --- */

/*
 * Checks an experiment body (the shape of DESIGN.md section 8 without the server-owned version,
 * phase and status) and returns it normalized in *out (a new reference, the caller's): every
 * field present, defaults filled in (hash_attribute "id", hash_version 2, seed = key, coverage 1,
 * payloads {}, equal weights when none are given, metric role "goal"). Errors:
 * AB_ERR_INVALID_FIELD naming the field ("variants[1].weight", "condition.$or[0]").
 * Whether layers and metrics exist is the store's business.
 */
enum ab_err web_validate_experiment(const json_t *in, json_t **out, struct ab_errinfo *ei);

/* A metric body, normalized (name "", direction "increase", nulls for the optional fields). */
enum ab_err web_validate_metric(const json_t *in, json_t **out, struct ab_errinfo *ei);

/* A layer body {"key", "name", "description"}, normalized. */
enum ab_err web_validate_layer(const json_t *in, json_t **out, struct ab_errinfo *ei);

/* A key request body {"name"} (may be empty or absent: in may be NULL), normalized. */
enum ab_err web_validate_key_request(const json_t *in, json_t **out, struct ab_errinfo *ei);

/*
 * A GrowthBook targeting condition: an object whose keys are attribute paths (a literal, or an
 * object of known operators with operands of the right type) or $and/$or/$nor (arrays of
 * conditions) and $not (a condition). Stricter than the assign node's compiler (unknown
 * operators and regular expressions that do not compile are refused), so whatever passes here
 * compiles there. path is the field name to report ("condition").
 */
enum ab_err web_validate_condition(const json_t *cond, const char *path, struct ab_errinfo *ei);

/* 1 when s is 1 to max bytes of UTF-8 without control characters. */
int web_valid_text(const char *s, size_t len, size_t max, int allow_empty);

/* --- the control database (store.c) --- */

struct web_actor {
    char name[64]; /* "key:adm_1a2b3c4d", "system" */
};

/* Filters of GET /api/v1/experiments; NULL = any. */
struct web_experiment_filter {
    const char *status;
    const char *layer;
    const char *metric;
    const char *q; /* substring of key or name */
    int64_t limit, offset;
};

/*
 * Store calls run in one transaction each (BEGIN IMMEDIATE for writes) and write the audit log
 * in the same transaction as the change. They answer with the entity rendered as the API shows
 * it in *out (a new reference). now is ms since epoch.
 */
enum ab_err web_store_experiment_get(struct ab_db *db, const char *key, json_t **out,
                                     struct ab_errinfo *ei);
enum ab_err web_store_experiment_list(struct ab_db *db, const struct web_experiment_filter *f,
                                      json_t **out, struct ab_errinfo *ei);
enum ab_err web_store_experiment_create(struct ab_db *db, const json_t *exp,
                                        const struct web_actor *who, int64_t now, json_t **out,
                                        struct ab_errinfo *ei);
/*
 * Applies patch (the fields to change, server-owned ones already checked and removed) to the
 * experiment at expected_version. AB_ERR_CONFLICT when the stored version differs; *current gets
 * the stored version then.
 */
enum ab_err web_store_experiment_update(struct ab_db *db, const char *key,
                                        int64_t expected_version, const json_t *patch,
                                        const struct web_actor *who, int64_t now, json_t **out,
                                        int64_t *current, struct ab_errinfo *ei);
/* action: "start", "pause", "stop", "archive". */
enum ab_err web_store_experiment_transition(struct ab_db *db, const char *key, const char *action,
                                            const struct web_actor *who, int64_t now,
                                            json_t **out, struct ab_errinfo *ei);

enum ab_err web_store_metric_create(struct ab_db *db, const json_t *m, const struct web_actor *who,
                                    int64_t now, json_t **out, struct ab_errinfo *ei);
enum ab_err web_store_metric_get(struct ab_db *db, const char *key, json_t **out,
                                 struct ab_errinfo *ei);
enum ab_err web_store_metric_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei);

enum ab_err web_store_layer_create(struct ab_db *db, const json_t *l, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei);
enum ab_err web_store_layer_get(struct ab_db *db, const char *key, json_t **out,
                                struct ab_errinfo *ei);
enum ab_err web_store_layer_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei);

/* kind: "admin", "client", "ingest". The secret itself is never stored: key_hash is its SHA-256. */
enum ab_err web_store_key_create(struct ab_db *db, const char *kind, const char *name,
                                 const char *prefix, const char *key_hash,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei);
/* Revokes the live key id of kind (AB_ERR_NOT_FOUND otherwise); *out gets it. */
enum ab_err web_store_key_revoke(struct ab_db *db, const char *kind, int64_t id,
                                 const struct web_actor *who, int64_t now, json_t **out,
                                 struct ab_errinfo *ei);
enum ab_err web_store_key_list(struct ab_db *db, const char *kind, json_t **out,
                               struct ab_errinfo *ei);
/* *count gets the number of live keys of kind. */
enum ab_err web_store_key_count(struct ab_db *db, const char *kind, int64_t *count,
                                struct ab_errinfo *ei);
/* 1 in *ok and the key's prefix in prefix[16] when key_hash is a live key of kind. */
enum ab_err web_store_key_check(struct ab_db *db, const char *kind, const char *key_hash, int *ok,
                                char prefix[16], struct ab_errinfo *ei);

/* entity_type / entity_key may be NULL (any); before_id 0 = newest. */
enum ab_err web_store_audit_list(struct ab_db *db, const char *entity_type,
                                 const char *entity_key, int64_t before_id, int64_t limit,
                                 json_t **out, struct ab_errinfo *ei);

/* --- snapshots (publish.c) --- */

struct web_snapshot_row {
    int64_t version;
    char sha256[65];
    int64_t size;
    char path[256]; /* relative to the data dir */
    int64_t created_at;
};

/*
 * Publishes a new snapshot: in one BEGIN IMMEDIATE transaction reads the running and paused
 * experiments with their variants and overrides and the live client and ingest keys (a consistent
 * copy), writes DATA_DIR/snapshots/<version>.db with lib/snapshot's writer (temp file, fsync,
 * rename), hashes it, and records it with version = previous + 1; then prunes files beyond the
 * newest keep. *row gets what was published.
 */
enum ab_err web_publish(struct web *w, struct ab_db *db, const struct web_actor *who,
                        struct web_snapshot_row *row, struct ab_errinfo *ei);

/* Points DATA_DIR/snapshots/current.db at row's file (a hard link, replaced atomically). */
void web_link_current(struct web *w, const struct web_snapshot_row *row);

/* The newest published snapshot; *found 0 when none. */
enum ab_err web_snapshot_latest(struct ab_db *db, struct web_snapshot_row *row, int *found,
                                struct ab_errinfo *ei);
enum ab_err web_snapshot_get(struct ab_db *db, int64_t version, struct web_snapshot_row *row,
                             int *found, struct ab_errinfo *ei);
enum ab_err web_snapshot_list(struct web *w, struct ab_db *db, json_t **out,
                              struct ab_errinfo *ei);

/* --- the component --- */

struct web {
    struct web_config cfg;
    char *data_dir;
    char *db_path;
    char *snap_dir;         /* DATA_DIR/snapshots */
    struct ab_db **dbs;     /* one connection per HTTP worker thread, opened on first use */
    int ndbs;
    pthread_mutex_t publish_lock; /* one publish at a time in this process */
    pthread_mutex_t lock;   /* guards the fields below */
    pthread_cond_t cond;
    int dirty;              /* a change is waiting to be published */
    int64_t first_change_ns; /* monotonic, first unpublished change */
    int64_t last_change_ns; /* monotonic, last unpublished change */
    int64_t retry_ns;       /* monotonic: after a failed publish, no new try before */
    int stop;
    pthread_t publisher;
    int publisher_started;
    _Atomic int64_t published_version;
    _Atomic uint64_t publishes;
    _Atomic uint64_t publish_failures;
};

/* The worker thread's connection (opened on first use), or NULL with ei set. */
struct ab_db *web_db(struct web *w, int thread, struct ab_errinfo *ei);

/* Records that the configuration changed: the publisher publishes after the debounce. */
void web_changed(struct web *w);

/* Opens a connection to the control database. */
enum ab_err web_db_open(struct web *w, struct ab_db **out, struct ab_errinfo *ei);

/* A new random key "<kind prefix>_<64 hex digits>" into key[80]; its display prefix into
 * prefix[16]; its SHA-256 (hex) into hash[65]. */
void web_key_generate(const char *kind, char key[80], char prefix[16], char hash[65]);

/* Registers the HTTP routes (api.c). */
enum ab_err web_api_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);

#endif
