/*
 * Integration tests of the abacus command line: `abacus migrate` (idempotent, refuses a database
 * from a newer abacus), usage errors, and `abacus up` refusing a port that is already taken.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "harness.h"

static char out[16384];

static int user_version(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static int count_tables(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_prepare_v2(db, "SELECT count(*) FROM sqlite_master WHERE type='table'", -1, &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

static void test_migrate_is_idempotent(void **state)
{
    (void)state;
    char dir[256], db[512];
    assert_int_equal(make_temp_dir(dir), 0);
    snprintf(db, sizeof(db), "%s/control.db", dir);
    const char *argv[] = {ABACUS_BIN, "migrate", "--db", db, NULL};
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "schema version 0 -> "));
    int v = user_version(db);
    assert_true(v >= 1);
    int tables = count_tables(db);
    assert_true(tables >= 9);
    assert_int_equal(run_command(argv, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "up to date"));
    assert_int_equal(user_version(db), v);
    assert_int_equal(count_tables(db), tables);
    remove_tree(dir);
}

static void test_migrate_refuses_newer_database(void **state)
{
    (void)state;
    char dir[256], db[512];
    assert_int_equal(make_temp_dir(dir), 0);
    snprintf(db, sizeof(db), "%s/future.db", dir);
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h, "CREATE TABLE keep (x); PRAGMA user_version = 9999", NULL,
                                  NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);
    const char *argv[] = {ABACUS_BIN, "migrate", "--db", db, NULL};
    assert_int_equal(run_command(argv, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "schema version 9999 is newer than this abacus supports"));
    assert_int_equal(user_version(db), 9999); /* untouched */
    assert_int_equal(count_tables(db), 1);
    /* abacus up refuses such a data dir too, instead of serving on it */
    char data[512];
    snprintf(data, sizeof(data), "%s/data", dir);
    const char *mk[] = {"/bin/mkdir", "-p", data, NULL};
    run_command(mk, out, sizeof(out));
    char future[600];
    snprintf(future, sizeof(future), "%s/abacus.db", data);
    const char *cp[] = {"/bin/cp", db, future, NULL};
    assert_int_equal(run_command(cp, out, sizeof(out)), 0);
    const char *up[] = {ABACUS_BIN, "up", "--data-dir", data, "--port", "0", NULL};
    assert_int_equal(run_command(up, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "newer than this abacus supports"));
    remove_tree(dir);
}

static void test_usage_errors(void **state)
{
    (void)state;
    const char *none[] = {ABACUS_BIN, NULL};
    assert_int_equal(run_command(none, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "usage: abacus <command>"));
    const char *unknown[] = {ABACUS_BIN, "frobnicate", NULL};
    assert_int_equal(run_command(unknown, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "unknown command 'frobnicate'"));
    const char *nodb[] = {ABACUS_BIN, "migrate", NULL};
    assert_int_equal(run_command(nodb, out, sizeof(out)), 2);
    const char *badport[] = {ABACUS_BIN, "up", "--port", "70000", NULL};
    assert_int_equal(run_command(badport, out, sizeof(out)), 2);
    assert_non_null(strstr(out, "--port must be an integer from 0 to 65535"));
    const char *version[] = {ABACUS_BIN, "version", NULL};
    assert_int_equal(run_command(version, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "abacus "));
    const char *help[] = {ABACUS_BIN, "up", "--help", NULL};
    assert_int_equal(run_command(help, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "--data-dir"));
}

static void test_up_refuses_taken_port(void **state)
{
    (void)state;
    struct abacus_proc first;
    assert_int_equal(abacus_start(&first, NULL), 0);
    char port[16], data[512];
    snprintf(port, sizeof(port), "%u", (unsigned)first.port);
    snprintf(data, sizeof(data), "%s/data2", first.dir);
    const char *argv[] = {ABACUS_BIN, "up", "--data-dir", data, "--port", port, NULL};
    assert_int_equal(run_command(argv, out, sizeof(out)), 1);
    assert_non_null(strstr(out, "in use"));
    /* the first server still answers everything itself */
    struct http_response r;
    assert_int_equal(http_do(first.port, "GET", "/healthz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    assert_int_equal(abacus_stop(&first, SIGTERM, 15000), 0);
    abacus_cleanup(&first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migrate_is_idempotent),
        cmocka_unit_test(test_migrate_refuses_newer_database),
        cmocka_unit_test(test_usage_errors),
        cmocka_unit_test(test_up_refuses_taken_port),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
