/*
 * Snapshot files: the immutable SQLite file through which the control plane hands experiment
 * configuration to assign nodes and regional collectors (docs/design.md, "Snapshots and
 * replication"; format in docs/snapshot.md, schema in migrations/snapshot/). This module reads a file into plain data,
 * checking everything a node must not serve (integrity, format version, every experiment's
 * fields), and writes one (temp file, fsync, rename). What a component builds from the data (the
 * compiled assignment structure) is the component's business.
 */
#ifndef ABACUS_SNAPSHOT_H
#define ABACUS_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/err.h"
#include "abacus/migrate.h"

#define AB_SNAPSHOT_FORMAT 1 /* the format this binary reads and writes */
#define AB_SNAPSHOT_KEY_MAX 200 /* longest experiment or variant key, bytes */

/* The schema of the snapshot format (generated from migrations/snapshot/). */
extern const struct ab_migration ab_snapshot_migrations[];
extern const size_t ab_snapshot_migrations_count;

struct ab_snapshot_variant {
    char *key;
    double weight;   /* >= 0; an experiment's weights sum to 1 (+- 1e-6) */
    json_t *payload; /* any JSON value, owned */
};

struct ab_snapshot_override {
    char *unit;    /* hash-attribute value */
    char *variant; /* key of one of the experiment's variants */
};

struct ab_snapshot_experiment {
    char *key;
    int running;              /* 1 running, 0 paused */
    char *hash_attribute;     /* non-empty */
    char *fallback_attribute; /* NULL for none */
    int hash_version;         /* 1 or 2 */
    char *seed;               /* non-empty */
    double coverage;          /* [0, 1] */
    json_t *condition;        /* object, or NULL for everyone; owned */
    char *layer;              /* namespace id, NULL for none */
    double layer_start;       /* [start, end) within [0, 1] */
    double layer_end;
    int64_t phase;
    int64_t version;
    struct ab_snapshot_variant *variants; /* [nvariants], by position; at least 2 */
    size_t nvariants;
    struct ab_snapshot_override *overrides;
    size_t noverrides;
};

struct ab_snapshot {
    int64_t version;    /* > 0 */
    int64_t created_at; /* ms since epoch */
    struct ab_snapshot_experiment *experiments; /* sorted by key */
    size_t nexperiments;
    char **client_key_hashes; /* hex SHA-256, sorted */
    size_t nclient_keys;
    char **ingest_key_hashes; /* hex SHA-256, sorted */
    size_t ningest_keys;
};

/*
 * Reads the snapshot file at path into *out (the caller's; ab_snapshot_free). The file is opened
 * read-only and must pass PRAGMA quick_check, carry format AB_SNAPSHOT_FORMAT, and every
 * experiment must be valid; on any failure nothing is returned and ei names the experiment and
 * field ("experiments[checkout].variants[1].weight"). Errors: AB_ERR_IO (unreadable, not SQLite,
 * corrupt), AB_ERR_INVALID_FIELD (wrong format or an invalid row).
 */
enum ab_err ab_snapshot_read(const char *path, struct ab_snapshot **out, struct ab_errinfo *ei);

/*
 * Writes snap to path atomically: a temp file next to it with the schema and rows, fsynced, then
 * renamed over path, and the directory fsynced. Validates snap as ab_snapshot_read would.
 */
enum ab_err ab_snapshot_write(const struct ab_snapshot *snap, const char *path,
                              struct ab_errinfo *ei);

/* Checks one experiment; ei->field is relative ("variants[1].weight"). */
enum ab_err ab_snapshot_validate_experiment(const struct ab_snapshot_experiment *e,
                                            struct ab_errinfo *ei);

/* Accepts NULL. */
void ab_snapshot_free(struct ab_snapshot *snap);

/*
 * Hex SHA-256 of the whole file at path into out (65 bytes), as the replication manifest
 * announces it; *size gets the file's size in bytes. Errors: AB_ERR_IO.
 */
enum ab_err ab_snapshot_file_sha256(const char *path, char out[65], int64_t *size,
                                    struct ab_errinfo *ei);

/* Hex SHA-256 of key into out (65 bytes), as api_keys.key_hash stores it. */
void ab_snapshot_key_hash(const char *key, char out[65]);

#endif
