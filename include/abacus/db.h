/*
 * SQLite helper: opens a database with Abacus's pragmas (WAL, foreign keys, busy timeout, and the
 * synchronous level the caller chooses for that database), keeps prepared statements for reuse,
 * and runs write transactions with BEGIN IMMEDIATE. A struct ab_db is one connection: use it from
 * one thread at a time (open one per thread). SQL itself lives in the module that owns each table.
 */
#ifndef ABACUS_DB_H
#define ABACUS_DB_H

#include <sqlite3.h>
#include "abacus/err.h"

struct ab_db;

enum ab_db_sync {
    AB_DB_SYNC_NORMAL, /* WAL + NORMAL: a power loss may lose the last commits; never corrupts */
    AB_DB_SYNC_FULL,   /* WAL + FULL: a commit is on disk when it returns; for acknowledged data */
};

struct ab_db_options {
    enum ab_db_sync sync;
    int readonly;        /* open read-only (no WAL switch, no writes; memory-mapped reads) */
    int busy_timeout_ms; /* how long a writer waits for the lock; 0 = 5000 */
};

/*
 * Opens (creating unless readonly) the database at path into *out (the caller's, close with
 * ab_db_close). Errors: AB_ERR_STORAGE with SQLite's message and the path.
 */
enum ab_err ab_db_open(const char *path, const struct ab_db_options *opt, struct ab_db **out,
                       struct ab_errinfo *ei);

/* Finalizes every cached statement and closes the connection. Accepts NULL. */
void ab_db_close(struct ab_db *db);

/* The underlying connection, owned by db. */
sqlite3 *ab_db_handle(struct ab_db *db);

/*
 * A prepared statement for sql, compiled on first use and cached by db for reuse; it comes back
 * reset with its bindings cleared. The statement stays owned by db: do not finalize it. sql should
 * be a string literal (the cache is keyed by its text).
 */
enum ab_err ab_db_prepare(struct ab_db *db, const char *sql, sqlite3_stmt **out,
                          struct ab_errinfo *ei);

/* Runs one or more statements without results (schema scripts). */
enum ab_err ab_db_exec(struct ab_db *db, const char *sql, struct ab_errinfo *ei);

/* Runs a statement prepared with ab_db_prepare to completion (no rows expected) and resets it. */
enum ab_err ab_db_step_done(struct ab_db *db, sqlite3_stmt *st, struct ab_errinfo *ei);

/* Maps a SQLite result code to an error (BUSY/LOCKED -> AB_ERR_UNAVAILABLE, else STORAGE). */
enum ab_err ab_db_fail(struct ab_db *db, int sqlite_rc, const char *what, struct ab_errinfo *ei);

typedef enum ab_err (*ab_db_tx_cb)(struct ab_db *db, void *arg, struct ab_errinfo *ei);

/*
 * Runs fn inside BEGIN IMMEDIATE ... COMMIT. When fn returns an error, or COMMIT fails, the
 * transaction is rolled back and that error returned: nothing of it is kept. Not reentrant.
 */
enum ab_err ab_db_transaction(struct ab_db *db, ab_db_tx_cb fn, void *arg, struct ab_errinfo *ei);

/* PRAGMA user_version of the main database. */
enum ab_err ab_db_user_version(struct ab_db *db, int *out, struct ab_errinfo *ei);

#endif
