/*
 * Private types and functions of the web component (the control plane). Pure cores without SQLite
 * or sockets: validation (validate.c, request bodies to normalized JSON) and authentication
 * (auth.c). Then one store part (the SQL, store.h) and one API part (the HTTP glue, api.h) per
 * entity: experiments, metrics and layers, keys, users and sessions, the audit log, snapshots;
 * the reports and the embedded UI have an API part only. web.c holds the component's lifecycle
 * and the publisher thread; demo.c the demo data of `abacus up --demo`.
 *
 * Adding an entity: its validator here and in validate.c, <entity>_store.c, <entity>_api.c with
 * a web_<entity>_mount, and that mount in api.c's list.
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
 * Checks an experiment body (the shape of docs/admin-api.md without the server-owned version,
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

/* --- authentication (auth.c): pure, no SQLite, no sockets; fuzzed by fuzz_admin.c --- */

enum web_role { WEB_ROLE_NONE = 0, WEB_ROLE_VIEWER = 1, WEB_ROLE_EDITOR = 2, WEB_ROLE_ADMIN = 3 };

#define WEB_EMAIL_MAX 254
#define WEB_PASSWORD_MIN 12      /* bytes, for new users */
#define WEB_PASSWORD_MAX 1024    /* bytes */
#define WEB_SESSION_COOKIE "abacus_session"
#define WEB_HASH_MAX 128         /* crypto_pwhash_STRBYTES */

/* "admin", "editor", "viewer" to the role; WEB_ROLE_NONE for anything else. */
enum web_role web_role_parse(const char *s);
const char *web_role_name(enum web_role r);

/*
 * A login body {"email", "password"}: *email and *password point into in (owned by it).
 * AB_ERR_INVALID_FIELD naming the field when missing, not a string, empty or too long.
 */
enum ab_err web_validate_login(const json_t *in, const char **email, const char **password,
                               struct ab_errinfo *ei);

/* A user body {"email", "password", "role"}, normalized (email trimmed, role "viewer" when
 * absent); the password is checked (WEB_PASSWORD_MIN..MAX bytes) and kept as given. */
enum ab_err web_validate_user(const json_t *in, json_t **out, struct ab_errinfo *ei);

/*
 * argon2id (libsodium crypto_pwhash_str, OPSLIMIT/MEMLIMIT_INTERACTIVE) of password into
 * out[WEB_HASH_MAX]. AB_ERR_INTERNAL when out of memory.
 */
enum ab_err web_password_hash(const char *password, char out[WEB_HASH_MAX], struct ab_errinfo *ei);
/* 1 when password matches hash (an encoded crypto_pwhash_str string); 0 otherwise. */
int web_password_verify(const char *hash, const char *password);

/*
 * The value of cookie name in a Cookie header (header[0..len)) copied into out[0..outlen),
 * NUL-terminated. Returns 0, or -1 when absent, empty, longer than outlen - 1 or not made of
 * RFC 6265 cookie-octets (printable ASCII but space, '"', ',', ';', '\\').
 */
int web_cookie_get(const char *header, size_t len, const char *name, char *out, size_t outlen);

/* A new random token: 32 bytes from randombytes as 64 hex digits into out[65]. */
void web_token_new(char out[65]);

/*
 * Login throttling: failed attempts are counted per key ("email:a@b.c", "ip:127.0.0.1") in a
 * fixed table; when a key reaches its limit within the window, further attempts wait until the
 * window of its oldest counted failure ends. Thread-safe. Times are ms since the epoch.
 */
#define WEB_THROTTLE_SLOTS 4096
struct web_throttle_slot {
    char key[280];
    int64_t window_start; /* ms since epoch; 0 = free slot */
    int failures;
};
struct web_throttle {
    pthread_mutex_t lock;
    int64_t window_ms;  /* e.g. 15 minutes */
    struct web_throttle_slot slots[WEB_THROTTLE_SLOTS];
};
void web_throttle_init(struct web_throttle *t, int64_t window_ms);
void web_throttle_dispose(struct web_throttle *t);
/* Seconds to wait before key may try again (0: go ahead) given limit failures per window. */
int64_t web_throttle_wait_s(struct web_throttle *t, const char *key, int limit, int64_t now);
void web_throttle_fail(struct web_throttle *t, const char *key, int64_t now);
void web_throttle_clear(struct web_throttle *t, const char *key);

/* --- the control database: one store part per entity --- */

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
 * Store calls run in one transaction each (BEGIN IMMEDIATE for writes) and write the audit log in
 * the same transaction as the change. They answer with the entity rendered as the API shows it in
 * *out (a new reference). now is ms since epoch. Experiments: experiment_store.c.
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

/* metric_store.c */
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

/* key_store.c. kind: "admin", "client", "ingest". The secret itself is never stored: key_hash is
 * its SHA-256. */
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

/* --- users and sessions (user_store.c) --- */

/* Creates a user from a validated body (see web_validate_user) with password_hash. AB_ERR_CONFLICT
 * when the email exists. *out: the user as the API shows it (no hash). */
enum ab_err web_store_user_create(struct ab_db *db, const json_t *user, const char *password_hash,
                                  const struct web_actor *who, int64_t now, json_t **out,
                                  struct ab_errinfo *ei);
enum ab_err web_store_user_list(struct ab_db *db, json_t **out, struct ab_errinfo *ei);
/* Disables user id and ends its sessions. AB_ERR_NOT_FOUND when no live user has it. */
enum ab_err web_store_user_disable(struct ab_db *db, int64_t id, const struct web_actor *who,
                                   int64_t now, json_t **out, struct ab_errinfo *ei);
enum ab_err web_store_user_count(struct ab_db *db, int64_t *count, struct ab_errinfo *ei);

struct web_user {
    int64_t id;
    char email[WEB_EMAIL_MAX + 1];
    enum web_role role;
    char password_hash[WEB_HASH_MAX];
};
/* The live (not disabled) user with email (case-insensitive); *found 0 when none. */
enum ab_err web_store_user_find(struct ab_db *db, const char *email, struct web_user *u,
                                int *found, struct ab_errinfo *ei);

/* Records a new session of user_id: token_hash is the hex SHA-256 of the cookie value. */
enum ab_err web_store_session_create(struct ab_db *db, int64_t user_id, const char *token_hash,
                                     const char *csrf, int64_t now, struct ab_errinfo *ei);

struct web_session {
    int64_t id;
    struct web_user user;  /* password_hash left empty */
    char csrf[65];
    int64_t created_at, last_seen_at; /* ms since epoch */
};
/*
 * The live session whose cookie hashes to token_hash, when neither idle_ms since its last use nor
 * max_ms since its creation have passed at now and its user is live; *found 0 otherwise (an
 * expired session is ended then). A found session's last use is moved to now (written at most
 * once every 10 s).
 */
enum ab_err web_store_session_check(struct ab_db *db, const char *token_hash, int64_t now,
                                    int64_t idle_ms, int64_t max_ms, struct web_session *s,
                                    int *found, struct ab_errinfo *ei);
/* Ends session id (logout). */
enum ab_err web_store_session_end(struct ab_db *db, int64_t id, int64_t now,
                                  struct ab_errinfo *ei);

/* audit_store.c. entity_type / entity_key may be NULL (any); before_id 0 = newest. */
enum ab_err web_store_audit_list(struct ab_db *db, const char *entity_type,
                                 const char *entity_key, int64_t before_id, int64_t limit,
                                 json_t **out, struct ab_errinfo *ei);

/* --- snapshots (snapshot_store.c) --- */

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
    struct web_throttle *throttle; /* failed logins */
    char dummy_hash[WEB_HASH_MAX]; /* verified against for unknown emails (same work) */
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

/* One file of the UI, compiled in from web/static/ by cmake/embed_static.cmake. */
struct web_static_file {
    const char *path;         /* "/static/js/app.js" */
    const char *content_type; /* "text/javascript; charset=utf-8" */
    const char *data;
    size_t len;               /* bytes */
    const char *etag;         /* "\"<16 hex digits of its SHA-256>\"" */
};
extern const struct web_static_file web_static_files[];
extern const size_t web_static_files_count;

/*
 * The API parts: each registers its routes (and /metrics sections) on srv with w as their data.
 * web_mount (api.c) runs them all.
 */
enum ab_err web_experiment_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
enum ab_err web_metric_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
enum ab_err web_key_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
enum ab_err web_user_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
enum ab_err web_audit_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
/* GET /api/v1/snapshots, POST /api/v1/snapshots, GET /v1/snapshots/latest and /{version}.db. */
enum ab_err web_snapshot_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
/* GET /api/v1/reports and /reports/{date}/{file}: the nightly reports under DATA_DIR/reports. */
enum ab_err web_report_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);
/* GET / (index.html) and GET <path> of every static file. */
enum ab_err web_static_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);

#endif
