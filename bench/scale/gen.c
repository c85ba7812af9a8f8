/*
 * bench/scale: writes an analysis workload. `gen DIR N` creates DIR/abacus.db (the control
 * schema with one running experiment "exp", phase start 2026-01-01, two variants and three
 * metrics: binomial purchase, mean revenue with a 48 h window, ratio revenue per session) and
 * DIR/events.db (the collector's schema) holding N events: N / 10 units, each with one or two
 * exposures (2 % to both variants) and metric events around them, over 14 days. Seeded, so
 * every run writes the same events.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "collect.h"

#define DAY 86400000LL
#define START 1767225600000LL

static uint64_t g_rng = 20261124;
static uint64_t rnd(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void check(enum ab_err rc, const struct ab_errinfo *ei)
{
    if (rc != AB_OK) {
        fprintf(stderr, "gen: %s\n", ei->message);
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen DIR N\n");
        return 2;
    }
    long n = strtol(argv[2], NULL, 10);
    char path[4096];
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL};
    struct ab_db *control, *events;
    struct ab_errinfo ei;
    snprintf(path, sizeof(path), "%s/abacus.db", argv[1]);
    check(ab_db_open(path, &o, &control, &ei), &ei);
    check(ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei), &ei);
    check(ab_db_exec(control,
                     "INSERT INTO experiments (id, key, seed, status, phase, created_at,"
                     " updated_at) VALUES (1, 'exp', 'exp', 'running', 1, 0, 0);"
                     "INSERT INTO experiment_phases VALUES (1, 1, 'exp', '[0.5,0.5]',"
                     " 1767225600000, NULL);"
                     "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
                     " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5);"
                     "INSERT INTO metrics (id, key, type, event, denominator_event, direction,"
                     " conversion_window_hours, created_at, updated_at) VALUES"
                     " (1, 'purchase', 'binomial', 'purchase', NULL, 'increase', NULL, 0, 0),"
                     " (2, 'revenue', 'mean', 'revenue', NULL, 'increase', 48, 0, 0),"
                     " (3, 'revenue_per_session', 'ratio', 'revenue', 'session', 'increase',"
                     " NULL, 0, 0);"
                     "INSERT INTO experiment_metrics VALUES (1, 1, 'goal'), (1, 2, 'goal'),"
                     " (1, 3, 'secondary');",
                     &ei),
          &ei);
    ab_db_close(control);
    snprintf(path, sizeof(path), "%s/events.db", argv[1]);
    check(ab_db_open(path, &o, &events, &ei), &ei);
    check(ab_migrate(events, collect_migrations, collect_migrations_count, NULL, NULL, &ei), &ei);
    /* a fixture written once: a page cache that holds the indexes (2 GiB) keeps 100 M inserts
     * from rereading index pages through the kernel */
    check(ab_db_exec(events, "PRAGMA cache_size=-2097152", &ei), &ei);
    sqlite3 *h = ab_db_handle(events);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(h,
                           "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts,"
                           " received_at, unit, experiment, variant, metric, value, source)"
                           " VALUES (?1, ?2, 0, ?3, ?4, ?4, ?4, ?5, ?6, ?7, ?8, ?9, 'events')",
                           -1, &st, NULL) != SQLITE_OK)
        return 1;
    static const char *const metrics[] = {"purchase", "revenue", "session", "session"};
    check(ab_db_exec(events, "BEGIN", &ei), &ei);
    long written = 0;
    for (long u = 0; written < n; u++) {
        char unit[32];
        snprintf(unit, sizeof(unit), "unit-%ld", u);
        int variant = (int)(rnd() % 2);
        int64_t t0 = START + (int64_t)(rnd() % (uint64_t)(13 * DAY));
        int nexp = 1 + (int)(rnd() % 2);
        for (int k = 0; k < 10 && written < n; k++, written++) {
            int exposure = k < nexp;
            char id[32];
            snprintf(id, sizeof(id), "e%ld", written);
            sqlite3_bind_text(st, 1, id, -1, SQLITE_TRANSIENT);
            sqlite3_bind_int64(st, 2, written);
            sqlite3_bind_text(st, 3, exposure ? "exposure" : "metric", -1, SQLITE_STATIC);
            int64_t ts = exposure ? t0 + k * (int64_t)(rnd() % DAY)
                                  : t0 - 3 * DAY + (int64_t)(rnd() % (uint64_t)(6 * DAY));
            sqlite3_bind_int64(st, 4, ts);
            sqlite3_bind_text(st, 5, unit, -1, SQLITE_TRANSIENT);
            if (exposure) {
                int v = (u % 50 == 0 && k == 1) ? 1 - variant : variant;
                sqlite3_bind_text(st, 6, "exp", -1, SQLITE_STATIC);
                sqlite3_bind_text(st, 7, v ? "treatment" : "control", -1, SQLITE_STATIC);
                sqlite3_bind_null(st, 8);
                sqlite3_bind_null(st, 9);
            } else {
                const char *m = metrics[rnd() % 4];
                sqlite3_bind_null(st, 6);
                sqlite3_bind_null(st, 7);
                sqlite3_bind_text(st, 8, m, -1, SQLITE_STATIC);
                sqlite3_bind_double(st, 9, m == metrics[1] ? (double)(rnd() % 10000) / 100.0
                                                           : 1.0);
            }
            if (sqlite3_step(st) != SQLITE_DONE)
                return 1;
            sqlite3_reset(st);
            if (written % 100000 == 99999) {
                check(ab_db_exec(events, "COMMIT", &ei), &ei);
                check(ab_db_exec(events, "BEGIN", &ei), &ei);
            }
        }
    }
    check(ab_db_exec(events, "COMMIT", &ei), &ei);
    sqlite3_finalize(st);
    ab_db_close(events);
    printf("%ld\n", written);
    return 0;
}
