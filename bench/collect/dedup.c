/*
 * bench/collect/dedup: what dedup costs as the events table grows. Inserts N rows with random
 * UUIDv4 ids (WAL, synchronous=FULL, 1000 rows per transaction) into a fresh database for each
 * layout and prints rows/s per slice of N/5 rows:
 *   plain        the ceiling: no index at all, no dedup;
 *   unique_text  id TEXT UNIQUE (a B-tree index on the random text);
 *   hash_rowid   a separate table keyed by a 64-bit hash of the id (INTEGER PRIMARY KEY);
 *   abacus       the collector's schema (migrations/events) and its insert: the unique
 *                (client ts, id hash) index finds a duplicate during the insert (ON CONFLICT DO
 *                NOTHING); timestamps advance like events arriving at RATE per second.
 * Usage: dedup DIR [N] [RATE]   (defaults 3000000, 200000)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sqlite3.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "collect.h"
#include "collect_int.h"

static uint64_t g_rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next_rand(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}

static void uuid4(char out[37])
{
    uint64_t a = next_rand(), b = next_rand();
    a = (a & ~0xF000ULL) | 0x4000ULL;
    b = (b & ~(3ULL << 62)) | (2ULL << 62);
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012" PRIx64, (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF), (unsigned)(b >> 48),
             (uint64_t)(b & 0xFFFFFFFFFFFFULL));
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void check(int rc, sqlite3 *db, const char *what)
{
    if (rc != SQLITE_OK && rc != SQLITE_DONE && rc != SQLITE_ROW) {
        fprintf(stderr, "dedup: %s: %s\n", what, sqlite3_errmsg(db));
        exit(1);
    }
}

static void run(const char *dir, const char *layout, long n, long rate)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/dedup-%s.db", dir, layout);
    remove(path);
    char side[1100];
    snprintf(side, sizeof(side), "%s-wal", path);
    remove(side);
    struct ab_db_options opt = {.sync = AB_DB_SYNC_FULL};
    struct ab_db *adb = NULL;
    struct ab_errinfo ei;
    if (ab_db_open(path, &opt, &adb, &ei) != AB_OK) {
        fprintf(stderr, "dedup: %s\n", ei.message);
        exit(1);
    }
    sqlite3 *db = ab_db_handle(adb);
    int abacus = strcmp(layout, "abacus") == 0;
    const char *insert = NULL;
    if (abacus) {
        if (ab_migrate(adb, collect_migrations, collect_migrations_count, NULL, NULL, &ei) !=
            AB_OK) {
            fprintf(stderr, "dedup: %s\n", ei.message);
            exit(1);
        }
        check(sqlite3_exec(db, "PRAGMA cache_size=-32768", NULL, NULL, NULL), db, "pragma");
        insert = "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, "
                 "received_at, unit, metric, value, source) "
                 "VALUES (?1, ?3, 0, 'metric', ?4, ?4, ?4, 'user-1234', 'purchase', 1, "
                 "'events') ON CONFLICT (client_ts, id_hash) DO NOTHING";
    } else {
        const char *schema =
            strcmp(layout, "plain") == 0
                ? "CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT NOT NULL, ts INTEGER)"
            : strcmp(layout, "unique_text") == 0
                ? "CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, ts INTEGER)"
                : "CREATE TABLE t (h INTEGER PRIMARY KEY, id TEXT NOT NULL, ts INTEGER)";
        check(sqlite3_exec(db, schema, NULL, NULL, NULL), db, "schema");
        check(sqlite3_exec(db, "PRAGMA cache_size=-32768", NULL, NULL, NULL), db, "pragma");
        insert = strcmp(layout, "hash_rowid") == 0
                     ? "INSERT INTO t (h, id, ts) VALUES (?3, ?1, ?4)"
                     : "INSERT INTO t (id, ts) VALUES (?1, ?4)";
    }
    sqlite3_stmt *ins = NULL;
    check(sqlite3_prepare_v2(db, insert, -1, &ins, NULL), db, "prepare insert");
    printf("%-12s", layout);
    fflush(stdout);
    long slice = n / 5;
    int64_t t0_ms = (int64_t)1795000000000LL;
    double t0 = now_s(), ts = t0;
    for (long i = 0; i < n; i++) {
        if (i % 1000 == 0)
            check(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), db, "begin");
        char id[37];
        uuid4(id);
        int64_t h = collect_hash64(id, 36);
        int64_t ms = t0_ms + (int64_t)((double)i * 1000.0 / (double)rate);
        sqlite3_bind_text(ins, 1, id, 36, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 3, h);
        sqlite3_bind_int64(ins, 4, ms);
        int rc = sqlite3_step(ins);
        if (rc == SQLITE_CONSTRAINT) { /* a hash collision in hash_rowid: astronomically rare */
            sqlite3_reset(ins);
            continue;
        }
        check(rc, db, "insert");
        sqlite3_reset(ins);
        if (i % 1000 == 999 || i == n - 1)
            check(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), db, "commit");
        if ((i + 1) % slice == 0) {
            double t = now_s();
            printf(" %9.0f", (double)slice / (t - ts));
            fflush(stdout);
            ts = t;
        }
    }
    printf("   overall %9.0f rows/s\n", (double)n / (now_s() - t0));
    sqlite3_finalize(ins);
    ab_db_close(adb);
    remove(path);
    remove(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    remove(side);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: dedup DIR [N] [RATE] [LAYOUT...]\n");
        return 2;
    }
    long n = argc > 2 ? strtol(argv[2], NULL, 10) : 3000000;
    long rate = argc > 3 ? strtol(argv[3], NULL, 10) : 200000;
    if (n < 5000 || rate < 1) {
        fprintf(stderr, "dedup: N must be >= 5000 and RATE >= 1\n");
        return 2;
    }
    printf("rows/s for each fifth of %ld rows (WAL, synchronous=FULL, 1000 rows/transaction)\n",
           n);
    if (argc > 4) {
        for (int i = 4; i < argc; i++)
            run(argv[1], argv[i], n, rate);
        return 0;
    }
    const char *layouts[] = {"plain", "abacus", "hash_rowid", "unique_text"};
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
        run(argv[1], layouts[i], n, rate);
    return 0;
}
