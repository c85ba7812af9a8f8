/*
 * Migration runner (see abacus/migrate.h).
 */
#include <stdio.h>
#include "abacus/migrate.h"

struct step {
    const struct ab_migration *m;
    int applied; /* set when the step ran (0 when another process had already applied it) */
};

static enum ab_err apply_step(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    struct step *s = arg;
    int current;
    enum ab_err rc = ab_db_user_version(db, &current, ei);
    if (rc != AB_OK)
        return rc;
    if (current >= s->m->version)
        return AB_OK; /* a concurrent migrator got here first */
    rc = ab_db_exec(db, s->m->sql, ei);
    if (rc != AB_OK) {
        char reason[sizeof(ei->message)];
        snprintf(reason, sizeof(reason), "%s", ei != NULL ? ei->message : "");
        return ab_fail(ei, rc, NULL, "migration %s failed: %s", s->m->name, reason);
    }
    char bump[64];
    snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", s->m->version);
    rc = ab_db_exec(db, bump, ei);
    s->applied = rc == AB_OK;
    return rc;
}

enum ab_err ab_migrate(struct ab_db *db, const struct ab_migration *set, size_t n, int *from,
                       int *to, struct ab_errinfo *ei)
{
    for (size_t i = 0; i < n; i++)
        if (set[i].version != (int)i + 1)
            return ab_fail(ei, AB_ERR_INTERNAL, NULL,
                           "migration %s is out of sequence (expected version %zu)", set[i].name,
                           i + 1);
    int version;
    enum ab_err rc = ab_db_user_version(db, &version, ei);
    if (rc != AB_OK)
        return rc;
    if (from != NULL)
        *from = version;
    if (to != NULL)
        *to = version;
    if (version > (int)n)
        return ab_fail(ei, AB_ERR_SCHEMA_TOO_NEW, NULL,
                       "database schema version %d is newer than this abacus supports (%zu): "
                       "it was written by a newer abacus; upgrade abacus instead",
                       version, n);
    for (size_t i = (size_t)version; i < n; i++) {
        struct step s = {&set[i], 0};
        rc = ab_db_transaction(db, apply_step, &s, ei);
        if (rc != AB_OK)
            return rc;
        if (to != NULL)
            *to = set[i].version;
    }
    return AB_OK;
}
