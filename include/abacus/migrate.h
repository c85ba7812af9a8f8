/*
 * Schema migrations. Every schema lives in migrations/NNNN_<what>.sql; the build compiles those
 * files into the binary (ab_migrations), so a binary always knows the newest schema it supports.
 * Each migration runs in its own BEGIN IMMEDIATE transaction together with the PRAGMA user_version
 * bump, so a database is always at exactly one version, and two processes migrating at once do
 * not apply a step twice. A database whose version is above the binary's is refused.
 */
#ifndef ABACUS_MIGRATE_H
#define ABACUS_MIGRATE_H

#include <stddef.h>
#include "abacus/db.h"

struct ab_migration {
    int version;      /* NNNN of the file name; the list is 1, 2, 3... without gaps */
    const char *name; /* file name, e.g. "0001_control.sql" */
    const char *sql;  /* the file's contents */
};

/* The migrations compiled into this binary, in version order (generated from migrations/). */
extern const struct ab_migration ab_migrations[];
extern const size_t ab_migrations_count;

/*
 * Applies the migrations of set[0..n) that db does not have yet, in order. *from and *to (either
 * may be NULL) get the versions before and after. Errors: AB_ERR_SCHEMA_TOO_NEW when db's version
 * is above the newest in set (nothing is touched); AB_ERR_STORAGE naming the failing migration
 * (that migration is rolled back, earlier ones stay applied); AB_ERR_INTERNAL for a set that is
 * not numbered 1..n.
 */
enum ab_err ab_migrate(struct ab_db *db, const struct ab_migration *set, size_t n, int *from,
                       int *to, struct ab_errinfo *ei);

#endif
