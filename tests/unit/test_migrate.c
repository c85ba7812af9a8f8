/* Unit tests of lib/migrate.c: order, idempotence, rollback of a failing step, newer DB refused,
 * and the real migrations of this tree applied to a fresh file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/migrate.h"
#include "harness.h"

struct fixture {
    char dir[256];
    struct ab_db *db;
};

static int setup(void **state)
{
    static struct fixture f;
    memset(&f, 0, sizeof(f));
    if (make_temp_dir(f.dir) != 0)
        return -1;
    char path[512];
    snprintf(path, sizeof(path), "%s/m.db", f.dir);
    struct ab_db_options o = {.sync = AB_DB_SYNC_FULL};
    if (ab_db_open(path, &o, &f.db, NULL) != AB_OK)
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

static const struct ab_migration SET[] = {
    {1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"},
    {2, "0002_b.sql", "CREATE TABLE b (y INTEGER); INSERT INTO a VALUES (1);"},
};

static int table_exists(struct ab_db *db, const char *name)
{
    sqlite3_stmt *st;
    assert_int_equal(
        ab_db_prepare(db, "SELECT count(*) FROM sqlite_master WHERE type='table' AND name=?1", &st,
                      NULL),
        AB_OK);
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int n = sqlite3_column_int(st, 0);
    sqlite3_reset(st);
    return n;
}

static void test_applies_in_order_once(void **state)
{
    struct fixture *f = *state;
    int from, to, v;
    assert_int_equal(ab_migrate(f->db, SET, 1, &from, &to, NULL), AB_OK);
    assert_int_equal(from, 0);
    assert_int_equal(to, 1);
    assert_int_equal(ab_migrate(f->db, SET, 2, &from, &to, NULL), AB_OK);
    assert_int_equal(from, 1);
    assert_int_equal(to, 2);
    assert_true(table_exists(f->db, "b"));
    /* again: nothing to do, and the INSERT of step 2 did not run twice */
    assert_int_equal(ab_migrate(f->db, SET, 2, &from, &to, NULL), AB_OK);
    assert_int_equal(from, 2);
    assert_int_equal(to, 2);
    assert_int_equal(ab_db_user_version(f->db, &v, NULL), AB_OK);
    assert_int_equal(v, 2);
    sqlite3_stmt *st;
    ab_db_prepare(f->db, "SELECT count(*) FROM a", &st, NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    sqlite3_reset(st);
}

static void test_failing_step_rolls_back(void **state)
{
    struct fixture *f = *state;
    static const struct ab_migration BAD[] = {
        {1, "0001_a.sql", "CREATE TABLE a (x INTEGER);"},
        {2, "0002_bad.sql", "CREATE TABLE c (z INTEGER); SELECT * FROM missing_table;"},
    };
    struct ab_errinfo ei;
    int to;
    assert_int_equal(ab_migrate(f->db, BAD, 2, NULL, &to, &ei), AB_ERR_STORAGE);
    assert_int_equal(to, 1);
    assert_non_null(strstr(ei.message, "0002_bad.sql"));
    assert_non_null(strstr(ei.message, "missing_table"));
    assert_false(table_exists(f->db, "c")); /* the failing step left nothing behind */
    int v;
    ab_db_user_version(f->db, &v, NULL);
    assert_int_equal(v, 1);
}

static void test_newer_database_refused(void **state)
{
    struct fixture *f = *state;
    assert_int_equal(ab_db_exec(f->db, "PRAGMA user_version = 7", NULL), AB_OK);
    struct ab_errinfo ei;
    assert_int_equal(ab_migrate(f->db, SET, 2, NULL, NULL, &ei), AB_ERR_SCHEMA_TOO_NEW);
    assert_non_null(strstr(ei.message, "version 7 is newer"));
    assert_false(table_exists(f->db, "a"));
}

static void test_gap_refused(void **state)
{
    struct fixture *f = *state;
    static const struct ab_migration GAP[] = {{1, "0001_a.sql", ""}, {3, "0003_c.sql", ""}};
    assert_int_equal(ab_migrate(f->db, GAP, 2, NULL, NULL, NULL), AB_ERR_INTERNAL);
}

static void test_embedded_migrations(void **state)
{
    struct fixture *f = *state;
    assert_true(ab_migrations_count >= 1);
    assert_string_equal(ab_migrations[0].name, "0001_control.sql");
    int to;
    assert_int_equal(ab_migrate(f->db, ab_migrations, ab_migrations_count, NULL, &to, NULL), AB_OK);
    assert_int_equal(to, (int)ab_migrations_count);
    const char *tables[] = {"experiments", "variants", "overrides", "layers", "metrics",
                            "snapshots", "audit_log", "users", "api_keys", "experiment_phases",
                            "experiment_metrics"};
    for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++)
        assert_true(table_exists(f->db, tables[i]));
    /* the schema enforces what it says: a variant of a missing experiment is refused */
    assert_int_equal(ab_db_exec(f->db,
                                "INSERT INTO variants (experiment_id, position, key, weight) "
                                "VALUES (999, 0, 'control', 0.5)",
                                NULL),
                     AB_ERR_STORAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_applies_in_order_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failing_step_rolls_back, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gap_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_embedded_migrations, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
