/*
 * Unit tests of lib/snapshot.c on real files: a written snapshot reads back field for field, and
 * every kind of bad file is refused whole, naming what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "abacus/snapshot.h"
#include "harness.h"

static char g_dir[256];

static int setup(void **state)
{
    (void)state;
    return make_temp_dir(g_dir);
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(g_dir);
    return 0;
}

/* A snapshot with two experiments; the caller frees it with ab_snapshot_free. */
static struct ab_snapshot *sample(void)
{
    struct ab_snapshot *s = calloc(1, sizeof(*s));
    s->version = 17;
    s->created_at = 1795517162123;
    s->nexperiments = 2;
    s->experiments = calloc(2, sizeof(*s->experiments));
    struct ab_snapshot_experiment *e = &s->experiments[0];
    e->key = strdup("checkout-button");
    e->running = 1;
    e->hash_attribute = strdup("id");
    e->hash_version = 2;
    e->seed = strdup("checkout-button");
    e->coverage = 0.8;
    e->condition = json_pack("{s:s}", "country", "FR");
    e->layer = strdup("checkout");
    e->layer_start = 0;
    e->layer_end = 0.5;
    e->phase = 2;
    e->version = 5;
    e->nvariants = 2;
    e->variants = calloc(2, sizeof(*e->variants));
    e->variants[0] = (struct ab_snapshot_variant){strdup("control"), 0.5, json_object()};
    e->variants[1] = (struct ab_snapshot_variant){strdup("treatment"), 0.5,
                                                  json_pack("{s:s}", "color", "green")};
    e->noverrides = 1;
    e->overrides = calloc(1, sizeof(*e->overrides));
    e->overrides[0] = (struct ab_snapshot_override){strdup("unit-42"), strdup("treatment")};
    e = &s->experiments[1];
    e->key = strdup("pricing");
    e->running = 0;
    e->hash_attribute = strdup("company");
    e->fallback_attribute = strdup("id");
    e->hash_version = 1;
    e->seed = strdup("pricing-2");
    e->coverage = 1;
    e->phase = 1;
    e->version = 1;
    e->nvariants = 3;
    e->variants = calloc(3, sizeof(*e->variants));
    e->variants[0] = (struct ab_snapshot_variant){strdup("a"), 0.2, json_integer(1)};
    e->variants[1] = (struct ab_snapshot_variant){strdup("b"), 0.3, json_string("x")};
    e->variants[2] = (struct ab_snapshot_variant){strdup("c"), 0.5, json_null()};
    s->nclient_keys = 1;
    s->client_key_hashes = calloc(1, sizeof(char *));
    s->client_key_hashes[0] = malloc(65);
    ab_snapshot_key_hash("sdk-key-1", s->client_key_hashes[0]);
    return s;
}

static void path_of(char *buf, const char *name)
{
    snprintf(buf, 512, "%s/%s", g_dir, name);
}

static void test_roundtrip(void **state)
{
    (void)state;
    char path[512];
    path_of(path, "17.db");
    struct ab_snapshot *s = sample();
    struct ab_errinfo ei;
    assert_int_equal(ab_snapshot_write(s, path, &ei), AB_OK);
    struct ab_snapshot *r;
    assert_int_equal(ab_snapshot_read(path, &r, &ei), AB_OK);
    assert_int_equal(r->version, 17);
    assert_int_equal(r->created_at, 1795517162123);
    assert_int_equal(r->nexperiments, 2);
    const struct ab_snapshot_experiment *e = &r->experiments[0];
    assert_string_equal(e->key, "checkout-button");
    assert_true(e->running);
    assert_true(e->coverage == 0.8);
    assert_string_equal(json_string_value(json_object_get(e->condition, "country")), "FR");
    assert_string_equal(e->layer, "checkout");
    assert_true(e->layer_end == 0.5);
    assert_int_equal(e->nvariants, 2);
    assert_string_equal(e->variants[1].key, "treatment");
    assert_string_equal(json_string_value(json_object_get(e->variants[1].payload, "color")),
                        "green");
    assert_int_equal(e->noverrides, 1);
    assert_string_equal(e->overrides[0].unit, "unit-42");
    e = &r->experiments[1];
    assert_false(e->running);
    assert_string_equal(e->fallback_attribute, "id");
    assert_null(e->layer);
    assert_null(e->condition);
    assert_true(json_is_null(e->variants[2].payload));
    assert_int_equal(r->nclient_keys, 1);
    char h[65];
    ab_snapshot_key_hash("sdk-key-1", h);
    assert_string_equal(r->client_key_hashes[0], h);
    /* the known SHA-256 of "abc" */
    ab_snapshot_key_hash("abc", h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    ab_snapshot_free(r);
    ab_snapshot_free(s);
}

static void expect_invalid_write(struct ab_snapshot *s, const char *field)
{
    char path[512];
    path_of(path, "bad.db");
    struct ab_errinfo ei;
    assert_int_equal(ab_snapshot_write(s, path, &ei), AB_ERR_INVALID_FIELD);
    assert_string_equal(ei.field, field);
    ab_snapshot_free(s);
}

static void test_invalid_experiments_refused(void **state)
{
    (void)state;
    struct ab_snapshot *s = sample();
    s->experiments[0].variants[1].weight = 0.6;
    expect_invalid_write(s, "variants");
    s = sample();
    s->experiments[1].hash_version = 3;
    expect_invalid_write(s, "hash_version");
    s = sample();
    s->experiments[0].coverage = 1.5;
    expect_invalid_write(s, "coverage");
    s = sample();
    free(s->experiments[0].overrides[0].variant);
    s->experiments[0].overrides[0].variant = strdup("nope");
    expect_invalid_write(s, "overrides[0]");
    s = sample();
    free(s->experiments[0].variants[1].key);
    s->experiments[0].variants[1].key = strdup("control");
    expect_invalid_write(s, "variants[1].key");
    s = sample();
    s->experiments[0].layer_start = 0.6;
    expect_invalid_write(s, "layer");
}

/* Writes raw bytes to name and expects ab_snapshot_read to refuse it with rc. */
static void expect_refused(const char *name, const void *bytes, size_t len, enum ab_err rc,
                           const char *needle)
{
    char path[512];
    path_of(path, name);
    FILE *fp = fopen(path, "wb");
    fwrite(bytes, 1, len, fp);
    fclose(fp);
    struct ab_snapshot *r = (struct ab_snapshot *)1;
    struct ab_errinfo ei;
    assert_int_equal(ab_snapshot_read(path, &r, &ei), rc);
    assert_null(r);
    if (needle != NULL && strstr(ei.message, needle) == NULL && strstr(ei.field, needle) == NULL)
        fail_msg("message '%s' (field '%s') does not mention '%s'", ei.message, ei.field, needle);
}

static char *file_bytes(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    fseek(fp, 0, SEEK_END);
    *len = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *b = malloc(*len);
    assert_int_equal(fread(b, 1, *len, fp), *len);
    fclose(fp);
    return b;
}

static void test_bad_files_refused(void **state)
{
    (void)state;
    char path[512];
    path_of(path, "good.db");
    struct ab_snapshot *s = sample();
    assert_int_equal(ab_snapshot_write(s, path, NULL), AB_OK);
    ab_snapshot_free(s);
    size_t len;
    char *good = file_bytes(path, &len);
    expect_refused("text.db", "this is not sqlite at all, just text", 36, AB_ERR_IO, NULL);
    expect_refused("truncated.db", good, len / 2, AB_ERR_IO, NULL);
    expect_refused("empty.db", good, 0, AB_ERR_INVALID_FIELD, "format");
    /* damage the b-tree structure of every page after the header page (SQLite keeps no
     * checksum of row contents: flips inside values are the sha256 check's job, which comes
     * with replication) */
    char *flipped = malloc(len);
    memcpy(flipped, good, len);
    for (size_t page = 4096; page < len; page += 4096)
        flipped[page] ^= 0x5a;
    char fpath[512];
    path_of(fpath, "flipped.db");
    FILE *fp = fopen(fpath, "wb");
    fwrite(flipped, 1, len, fp);
    fclose(fp);
    struct ab_snapshot *r = NULL;
    assert_int_not_equal(ab_snapshot_read(fpath, &r, NULL), AB_OK);
    assert_null(r);
    free(flipped);
    free(good);
    /* a valid SQLite file with another schema */
    char other[512];
    path_of(other, "other.db");
    const char *const mk[] = {"/usr/bin/sqlite3", other, "CREATE TABLE t(x); PRAGMA user_version=1;",
                              NULL};
    char out[256];
    assert_int_equal(run_command(mk, out, sizeof(out)), 0);
    assert_int_not_equal(ab_snapshot_read(other, &r, NULL), AB_OK);
    assert_null(r);
    /* a missing file */
    path_of(other, "missing.db");
    assert_int_equal(ab_snapshot_read(other, &r, NULL), AB_ERR_IO);
}

static void test_invalid_row_names_experiment(void **state)
{
    (void)state;
    char path[512];
    path_of(path, "row.db");
    struct ab_snapshot *s = sample();
    assert_int_equal(ab_snapshot_write(s, path, NULL), AB_OK);
    ab_snapshot_free(s);
    /* a writer bug or tampering: weights that no longer sum to 1 */
    char sql[600];
    snprintf(sql, sizeof(sql),
             "UPDATE variants SET weight = 0.9 WHERE experiment_key = 'pricing' AND position = 2");
    const char *const up[] = {"/usr/bin/sqlite3", path, sql, NULL};
    char out[256];
    assert_int_equal(run_command(up, out, sizeof(out)), 0);
    struct ab_snapshot *r = NULL;
    struct ab_errinfo ei;
    assert_int_equal(ab_snapshot_read(path, &r, &ei), AB_ERR_INVALID_FIELD);
    assert_null(r);
    assert_string_equal(ei.field, "experiments[pricing].variants");
    assert_non_null(strstr(ei.message, "pricing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_invalid_experiments_refused),
        cmocka_unit_test(test_bad_files_refused),
        cmocka_unit_test(test_invalid_row_names_experiment),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
