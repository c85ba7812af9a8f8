/*
 * A small client for ClickHouse's HTTP interface (Debian's clickhouse-server 18.16): the
 * clickhouse://HOST:PORT/DB URL, one query per POST (libcurl, a kept-alive connection per
 * client), string literals quoted for query text (18.16 has no bound query parameters), answers
 * read as JSONEachRow, and the migrations of migrations/clickhouse/ applied once each. Used by the
 * collector's forwarder (collect/forward.c), the ClickHouse analysis (analyze/clickhouse.c) and
 * `abacus migrate --clickhouse`. The URL parser and the answer parser take untrusted bytes and
 * are fuzzed (tests/fuzz/fuzz_clickhouse.c).
 */
#ifndef ABACUS_CLICKHOUSE_H
#define ABACUS_CLICKHOUSE_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/err.h"
#include "abacus/migrate.h"

#define AB_CH_ANSWER_MAX ((size_t)256 * 1024 * 1024) /* largest answer read, bytes */

/* The migrations of migrations/clickhouse/ (generated at build time). */
extern const struct ab_migration ab_clickhouse_migrations[];
extern const size_t ab_clickhouse_migrations_count;

/* A parsed clickhouse://[USER[:PASSWORD]@]HOST[:PORT][/DB] URL. */
struct ab_ch_url {
    char host[256];     /* name, IPv4, or IPv6 without brackets */
    uint16_t port;      /* default 8123 (the HTTP interface) */
    char db[64];        /* [A-Za-z0-9_]+, default "default" */
    char user[64];      /* "" = ClickHouse's default user */
    char password[128];
};

/*
 * Parses s[0..len) into *out. AB_ERR_INVALID_FIELD (field "url") for anything else: another
 * scheme, an empty or over-long host, a port outside 1..65535, a database name with other
 * characters, a query or fragment, percent signs or control bytes.
 */
enum ab_err ab_ch_url_parse(const char *s, size_t len, struct ab_ch_url *out,
                            struct ab_errinfo *ei);

struct ab_ch;

/*
 * A client for url (timeout_ms per request, 0 = 30000). Nothing is connected yet. The caller owns
 * *out (ab_ch_free). Use one client from one thread at a time.
 */
enum ab_err ab_ch_new(const struct ab_ch_url *url, long timeout_ms, struct ab_ch **out,
                      struct ab_errinfo *ei);

void ab_ch_free(struct ab_ch *ch); /* accepts NULL */

/*
 * Sets ClickHouse's max_memory_usage for every query of the client (bytes; 0: the server's
 * setting), and max_bytes_before_external_group_by to half of it, so that a large GROUP BY spills
 * to disk. A query that still needs more fails with ClickHouse's "Memory limit exceeded" message
 * (AB_ERR_STORAGE) instead of taking the server's memory.
 */
void ab_ch_set_max_memory(struct ab_ch *ch, int64_t bytes);

/* The database the client's URL names. */
const char *ab_ch_db(const struct ab_ch *ch);

/*
 * Runs one statement. query goes in the URL's query string when body is not NULL (an INSERT whose
 * data is body[0..body_len)), else as the POST body. query_id, when not NULL, is sent as
 * ClickHouse's query_id (a second query with the same id is refused while the first runs). The
 * answer (NUL-terminated, the caller's, free()) goes to *answer when answer is not NULL.
 * Errors: AB_ERR_UNAVAILABLE when ClickHouse cannot be reached, times out or answers 5xx with a
 * network-level fault; AB_ERR_STORAGE with ClickHouse's message for an error it reports;
 * AB_ERR_TOO_LARGE for an answer over AB_CH_ANSWER_MAX.
 */
enum ab_err ab_ch_exec(struct ab_ch *ch, const char *query, const char *query_id,
                       const char *body, size_t body_len, char **answer, struct ab_errinfo *ei);

/*
 * Parses a JSONEachRow answer (one JSON object a line, blank lines skipped) into *rows, a new
 * JSON array of the objects (the caller's reference). AB_ERR_INVALID_JSON for a line that is not
 * a JSON object (the message names the line).
 */
enum ab_err ab_ch_rows_parse(const char *s, size_t len, json_t **rows, struct ab_errinfo *ei);

/* Runs query (which must end in FORMAT JSONEachRow) and parses its rows (ab_ch_rows_parse). */
enum ab_err ab_ch_query_rows(struct ab_ch *ch, const char *query, json_t **rows,
                             struct ab_errinfo *ei);

/*
 * Appends s as a ClickHouse string literal ('...' with \\, \' and control bytes as \xHH) to the
 * text buffer *buf of *len bytes (heap, grown as needed, NUL-terminated).
 */
void ab_ch_append_quoted(char **buf, size_t *len, const char *s);

/* Appends printf-formatted text to *buf (as ab_ch_append_quoted). */
void ab_ch_appendf(char **buf, size_t *len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Creates the URL's database if missing and applies the migrations not yet recorded in its
 * schema_migrations table, in order, each statement of a file as its own request; *from and *to
 * (may be NULL) get the highest version before and after. Idempotent. AB_ERR_SCHEMA_TOO_NEW when
 * the database records a version this binary does not carry.
 */
enum ab_err ab_ch_migrate(struct ab_ch *ch, const struct ab_migration *set, size_t n, int *from,
                          int *to, struct ab_errinfo *ei);

#endif
