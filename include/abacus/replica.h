/*
 * The replication transport (docs/replication.md): the manifest of the snapshot an origin or a
 * mirror announces, and the two HTTP transfers a follower makes. Used by lib/follower.c; the
 * manifest parser is exposed for its fuzz target.
 */
#ifndef ABACUS_REPLICA_H
#define ABACUS_REPLICA_H

#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include "abacus/err.h"

#define AB_REPLICA_MANIFEST_MAX 4096 /* largest manifest accepted, bytes */
#define AB_REPLICA_ETAG_MAX 128

/* GET /v1/snapshots/latest, checked. */
struct ab_replica_manifest {
    int64_t version; /* > 0 */
    char sha256[65]; /* 64 lowercase hex digits */
    int64_t size;    /* bytes, > 0 */
    char url[1024];  /* of the file, relative to the manifest's URL or absolute */
};

/*
 * Parses and checks a manifest (unknown fields are ignored). Errors: AB_ERR_INVALID_JSON,
 * AB_ERR_INVALID_FIELD naming the field.
 */
enum ab_err ab_replica_manifest_parse(const char *buf, size_t len,
                                      struct ab_replica_manifest *out, struct ab_errinfo *ei);

enum ab_replica_fetch_result {
    AB_REPLICA_FETCH_OK,
    AB_REPLICA_FETCH_NOT_MODIFIED, /* 304: the manifest's ETag still holds */
    AB_REPLICA_FETCH_FAILED,       /* network error, timeout, status other than 200 (and 304) */
    AB_REPLICA_FETCH_TOO_LARGE,    /* more bytes than the cap */
};

/*
 * Fetches the manifest at url (If-None-Match: etag unless NULL or "") into body[0..cap); *len
 * gets its size and new_etag the response's ETag ("" when none). err gets the reason on failure.
 */
enum ab_replica_fetch_result ab_replica_fetch_manifest(CURL *c, const char *url, const char *etag,
                                                       char *body, size_t cap, size_t *len,
                                                       char new_etag[AB_REPLICA_ETAG_MAX],
                                                       char *err, size_t errlen);

/*
 * Downloads url into the file path (created or truncated, fsynced), aborting past cap bytes;
 * sha256 gets the hex SHA-256 and *size the bytes of what arrived (also when it is cut short,
 * which returns OK so that the caller's size check names the problem).
 */
enum ab_replica_fetch_result ab_replica_fetch_file(CURL *c, const char *url, const char *path,
                                                   int64_t cap, char sha256[65], int64_t *size,
                                                   char *err, size_t errlen);

/* Resolves ref (absolute, or relative like "/v1/snapshots/17.db") against base into out. */
enum ab_err ab_replica_resolve_url(const char *base, const char *ref, char *out, size_t len,
                                   struct ab_errinfo *ei);

#endif
