/* Unit tests of lib/db.c on real SQLite files: pragmas, statement reuse, transactions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/db.h"
#include "harness.h"

struct fixture {
    char dir[256];
    char path[512];
    struct ab_db *db;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    if (make_temp_dir(f.dir) != 0)
        return -1;
    snprintf(f.path, sizeof(f.path), "%s/t.db", f.dir);
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL};
    if (ab_db_open(f.path, &o, &f.db, NULL) != AB_OK)
        return -1;
    if (ab_db_exec(f.db, "CREATE TABLE t (k TEXT PRIMARY KEY, v INTEGER NOT NULL)", NULL) != AB_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    ab_db_close(f->db);
    remove_tree(f->dir);
    return 0;
}

static const char *pragma_text(struct ab_db *db, const char *sql, char *buf, size_t len)
{
    sqlite3_stmt *st;
    assert_int_equal(ab_db_prepare(db, sql, &st, NULL), AB_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_reset(st);
    return buf;
}

static void test_pragmas(void **state)
{
    struct fixture *f = *state;
    char buf[64];
    assert_string_equal(pragma_text(f->db, "PRAGMA journal_mode", buf, sizeof(buf)), "wal");
    assert_string_equal(pragma_text(f->db, "PRAGMA foreign_keys", buf, sizeof(buf)), "1");
    assert_string_equal(pragma_text(f->db, "PRAGMA synchronous", buf, sizeof(buf)), "2"); /* FULL */
    assert_string_equal(pragma_text(f->db, "PRAGMA busy_timeout", buf, sizeof(buf)), "5000");
    struct ab_db *normal;
    struct ab_db_options o = {.sync = AB_DB_SYNC_NORMAL, .busy_timeout_ms = 250};
    assert_int_equal(ab_db_open(f->path, &o, &normal, NULL), AB_OK);
    assert_string_equal(pragma_text(normal, "PRAGMA synchronous", buf, sizeof(buf)), "1");
    assert_string_equal(pragma_text(normal, "PRAGMA busy_timeout", buf, sizeof(buf)), "250");
    ab_db_close(normal);
}

static void test_statement_reuse(void **state)
{
    struct fixture *f = *state;
    static const char INSERT[] = "INSERT INTO t (k, v) VALUES (?1, ?2)";
    sqlite3_stmt *a, *b;
    assert_int_equal(ab_db_prepare(f->db, INSERT, &a, NULL), AB_OK);
    sqlite3_bind_text(a, 1, "x", -1, SQLITE_STATIC);
    sqlite3_bind_int(a, 2, 1);
    assert_int_equal(ab_db_step_done(f->db, a, NULL), AB_OK);
    /* same text from another buffer: the same compiled statement, reset and unbound */
    char copy[sizeof(INSERT)];
    memcpy(copy, INSERT, sizeof(INSERT));
    assert_int_equal(ab_db_prepare(f->db, copy, &b, NULL), AB_OK);
    assert_ptr_equal(a, b);
    assert_int_equal(sqlite3_bind_parameter_count(b), 2);
    assert_string_equal(sqlite3_sql(b), INSERT);
    /* unbound parameters are NULL again: the NOT NULL constraint proves the bindings were cleared */
    sqlite3_bind_text(b, 1, "y", -1, SQLITE_STATIC);
    struct ab_errinfo ei;
    assert_int_equal(ab_db_step_done(f->db, b, &ei), AB_ERR_STORAGE);
    assert_non_null(strstr(ei.message, "NOT NULL"));
    struct ab_errinfo perr;
    sqlite3_stmt *bad;
    assert_int_equal(ab_db_prepare(f->db, "SELECT nope FROM nowhere", &bad, &perr), AB_ERR_STORAGE);
    assert_non_null(strstr(perr.message, "no such table"));
}

static enum ab_err insert_two(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    int fail = *(int *)arg;
    sqlite3_stmt *st;
    enum ab_err rc = ab_db_prepare(db, "INSERT INTO t (k, v) VALUES (?1, 1)", &st, ei);
    if (rc != AB_OK)
        return rc;
    sqlite3_bind_text(st, 1, "first", -1, SQLITE_STATIC);
    if ((rc = ab_db_step_done(db, st, ei)) != AB_OK)
        return rc;
    if (fail)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "v", "refused half-way");
    sqlite3_bind_text(st, 1, "second", -1, SQLITE_STATIC);
    return ab_db_step_done(db, st, ei);
}

static int count_rows(struct ab_db *db)
{
    sqlite3_stmt *st;
    assert_int_equal(ab_db_prepare(db, "SELECT count(*) FROM t", &st, NULL), AB_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

static void test_transaction_commits_or_rolls_back(void **state)
{
    struct fixture *f = *state;
    int fail = 1;
    struct ab_errinfo ei;
    assert_int_equal(ab_db_transaction(f->db, insert_two, &fail, &ei), AB_ERR_INVALID_FIELD);
    assert_int_equal(count_rows(f->db), 0); /* the first insert was rolled back */
    fail = 0;
    assert_int_equal(ab_db_transaction(f->db, insert_two, &fail, &ei), AB_OK);
    assert_int_equal(count_rows(f->db), 2);
    /* committed means on disk: a second connection sees it */
    struct ab_db *other;
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL, .readonly = 1};
    assert_int_equal(ab_db_open(f->path, &o, &other, NULL), AB_OK);
    assert_int_equal(count_rows(other), 2);
    ab_db_close(other);
}

static enum ab_err hold(struct ab_db *db, void *arg, struct ab_errinfo *ei)
{
    /* while this write transaction is open, a second writer must get "unavailable", not hang */
    struct ab_db *second = arg;
    int fail = 0;
    (void)db;
    enum ab_err rc = ab_db_transaction(second, insert_two, &fail, ei);
    assert_int_equal(rc, AB_ERR_UNAVAILABLE);
    return AB_OK;
}

static void test_busy_is_unavailable(void **state)
{
    struct fixture *f = *state;
    struct ab_db *second;
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL, .busy_timeout_ms = 50};
    assert_int_equal(ab_db_open(f->path, &o, &second, NULL), AB_OK);
    assert_int_equal(ab_db_transaction(f->db, hold, second, NULL), AB_OK);
    ab_db_close(second);
}

static void test_open_errors(void **state)
{
    (void)state;
    struct ab_db *db = (struct ab_db *)1;
    struct ab_errinfo ei;
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL};
    assert_int_equal(ab_db_open("/nonexistent-dir/x/y.db", &o, &db, &ei), AB_ERR_STORAGE);
    assert_null(db);
    assert_non_null(strstr(ei.message, "/nonexistent-dir/x/y.db"));
    ab_db_close(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pragmas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_statement_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_transaction_commits_or_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_is_unavailable, setup, teardown),
        cmocka_unit_test(test_open_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
