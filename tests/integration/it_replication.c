/*
 * Integration tests of replication (lib/follower) as both its users run it: an assign node
 * (`abacus assign --snapshot-url --cache-dir`) and a collector (`abacus collect --snapshot-url
 * --cache-dir`), following an origin this test controls (tests/tools/snapshot_origin.py serves
 * whatever files and manifest the test writes). Fault injection: truncated and cut-short
 * downloads, a wrong SHA-256, a flipped bit, a file that is not SQLite, a SQLite file with the
 * wrong schema, an invalid experiment, an older version, the version in use with another hash, a
 * file holding another version than announced, a broken manifest and an origin in error. Each
 * leaves both on their version, serving and ready, with the rejection counted by its reason. Then
 * a valid newer version is taken, and a restart with the origin down serves from the cache dirs.
 * Each version's snapshot has its own ingest key, so the collector's answers show the version it
 * checks against.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>
#include "abacus/snapshot.h"
#include "harness.h"

static char g_dir[256];            /* temp dir of the test */
static char g_root[512];           /* the origin's directory */
static pid_t g_origin;
static uint16_t g_origin_port;
static struct abacus_proc g_node;  /* the assign node */
static struct abacus_proc g_coll;  /* the collector */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static void start_origin(void)
{
    char portfile[600];
    snprintf(portfile, sizeof(portfile), "%s/origin.port", g_dir);
    unlink(portfile);
    g_origin = fork();
    assert_true(g_origin >= 0);
    if (g_origin == 0) {
        execlp("python3", "python3", SNAPSHOT_ORIGIN, g_root, portfile, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500; i++) {
        FILE *fp = fopen(portfile, "r");
        unsigned port = 0;
        if (fp != NULL) {
            int got = fscanf(fp, "%u", &port);
            fclose(fp);
            if (got == 1 && port > 0) {
                g_origin_port = (uint16_t)port;
                return;
            }
        }
        sleep_ms(20);
    }
    fail_msg("the test origin did not start");
}

static void stop_origin(void)
{
    if (g_origin <= 0)
        return;
    kill(g_origin, SIGTERM);
    int status;
    waitpid(g_origin, &status, 0);
    g_origin = 0;
}

static struct ab_snapshot *make_snapshot(int64_t version, int64_t created_at)
{
    struct ab_snapshot *s = calloc(1, sizeof(*s));
    s->version = version;
    s->created_at = created_at;
    s->nexperiments = 1;
    s->experiments = calloc(1, sizeof(*s->experiments));
    struct ab_snapshot_experiment *e = &s->experiments[0];
    e->key = strdup("exp");
    e->running = 1;
    e->hash_attribute = strdup("id");
    e->hash_version = 2;
    e->seed = strdup("exp");
    e->coverage = 1;
    e->phase = 1;
    e->version = 1;
    e->nvariants = 2;
    e->variants = calloc(2, sizeof(*e->variants));
    e->variants[0].key = strdup("control");
    e->variants[0].weight = 0.5;
    e->variants[0].payload = json_object();
    e->variants[1].key = strdup("treatment");
    e->variants[1].weight = 0.5;
    e->variants[1].payload = json_pack("{s:I}", "v", (json_int_t)version);
    char key[32];
    snprintf(key, sizeof(key), "ingest-v%lld", (long long)version);
    s->ningest_keys = 1;
    s->ingest_key_hashes = calloc(1, sizeof(char *));
    s->ingest_key_hashes[0] = calloc(1, 65);
    ab_snapshot_key_hash(key, s->ingest_key_hashes[0]);
    return s;
}

/* A valid snapshot file of version at path. */
static void write_valid(const char *path, int64_t version, int64_t created_at)
{
    struct ab_snapshot *s = make_snapshot(version, created_at);
    struct ab_errinfo ei;
    if (ab_snapshot_write(s, path, &ei) != AB_OK)
        fail_msg("cannot write %s: %s", path, ei.message);
    ab_snapshot_free(s);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return buf;
}

static void write_all(const char *path, const char *buf, size_t len)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(buf, 1, len, fp), len);
    assert_int_equal(fclose(fp), 0);
}

static void files_path(const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/files/%s", g_root, name);
}

/* Replaces the origin's manifest (atomically). */
static void set_manifest_text(const char *text)
{
    char path[600], tmp[620];
    snprintf(path, sizeof(path), "%s/manifest.json", g_root);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    write_all(tmp, text, strlen(text));
    assert_int_equal(rename(tmp, path), 0);
}

static void set_manifest(int64_t version, const char *sha, int64_t size, const char *name)
{
    char url[300];
    snprintf(url, sizeof(url), "/files/%s", name);
    json_t *m = json_pack("{s:I, s:s, s:I, s:s}", "version", (json_int_t)version, "sha256", sha,
                          "size", (json_int_t)size, "url", url);
    char *text = json_dumps(m, JSON_COMPACT);
    set_manifest_text(text);
    free(text);
    json_decref(m);
}

/* Publishes the origin's file name as version, with its true size and hash. */
static void publish_file(int64_t version, const char *name)
{
    char path[600], sha[65];
    int64_t size = 0;
    files_path(name, path, sizeof(path));
    assert_int_equal(ab_snapshot_file_sha256(path, sha, &size, NULL), AB_OK);
    set_manifest(version, sha, size, name);
}

/* The value of a metric line "name value" from p's /metrics, or -1. */
static double metric_of(const struct abacus_proc *p, const char *name)
{
    struct http_response r;
    if (http_do(p->port, "GET", "/metrics", NULL, NULL, 0, &r) != 0)
        return -1;
    double v = -1;
    size_t n = strlen(name);
    for (const char *line = r.body; line != NULL && *line; line = strchr(line, '\n')) {
        if (*line == '\n')
            line++;
        if (strncmp(line, name, n) == 0 && line[n] == ' ') {
            v = strtod(line + n + 1, NULL);
            break;
        }
    }
    http_response_free(&r);
    return v;
}

/* The node's metric, and the collector's of the same meaning (abacus_collect_snapshot_...). */
static double metric(const char *name)
{
    return metric_of(&g_node, name);
}

static double coll_metric(const char *name)
{
    char coll[128];
    snprintf(coll, sizeof(coll), "abacus_collect_%s", name + strlen("abacus_"));
    return metric_of(&g_coll, coll);
}

static double rejected(const char *reason)
{
    char name[96];
    snprintf(name, sizeof(name), "abacus_snapshot_rejected_total{reason=\"%s\"}", reason);
    return metric(name);
}

/* Waits (bounded) until the node's metric name, and the collector's, reach at least want. */
static void wait_metric_ge(const char *name, double want)
{
    double v = -1, c = -1;
    for (int i = 0; i < 600 && ((v = metric(name)) < want || (c = coll_metric(name)) < want); i++)
        sleep_ms(50);
    if (v < want || c < want)
        fail_msg("%s stayed at %g (the collector's at %g), want >= %g", name, v, c, want);
}

static void wait_rejected(const char *reason, double want)
{
    char name[96];
    snprintf(name, sizeof(name), "abacus_snapshot_rejected_total{reason=\"%s\"}", reason);
    wait_metric_ge(name, want);
}

/* The status of a POST /v1/events of one metric event with the ingest key of version. */
static int collect_with_key_of(int64_t version)
{
    char path[64], body[160];
    snprintf(path, sizeof(path), "/v1/events?write_key=ingest-v%lld", (long long)version);
    snprintf(body, sizeof(body),
             "{\"events\":[{\"id\":\"e%lld\",\"type\":\"metric\",\"ts\":1000,\"unit\":\"u\","
             "\"metric\":\"m\"}]}",
             (long long)version);
    struct http_response r;
    assert_int_equal(http_do(g_coll.port, "POST", path, "application/json", body, strlen(body), &r),
                     0);
    int status = r.status;
    http_response_free(&r);
    return status;
}

/* The version the node's answers carry (and that it answers 200 and is ready). */
static int64_t served_version(void)
{
    struct http_response r;
    assert_int_equal(http_do(g_node.port, "GET", "/v1/assign?experiment=exp&unit=u1", NULL, NULL,
                             0, &r),
                     0);
    assert_int_equal(r.status, 200);
    json_t *d = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    int64_t v = json_integer_value(json_object_get(d, "snapshot_version"));
    json_decref(d);
    assert_int_equal(http_do(g_node.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    return v;
}

/* Starts the node (collector 0) or the collector (1) on the origin, with a cache dir each. */
static void start_follower(int collector)
{
    char url[128], cache[600];
    struct abacus_proc *p = collector ? &g_coll : &g_node;
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/snapshots/latest", (unsigned)g_origin_port);
    snprintf(cache, sizeof(cache), "%s/cache%s", g_dir, collector ? "-collect" : "");
    p->dir[0] = '\0';
    snprintf(p->dir, sizeof(p->dir), "%.240s/%s", g_dir, collector ? "collect" : "node");
    mkdir(p->dir, 0700);
    char db[600];
    snprintf(db, sizeof(db), "%s/events.db", p->dir);
    const char *node_args[] = {"assign", "--snapshot-url", url, "--cache-dir", cache,
                               "--poll-interval", "1", "--threads", "2", NULL};
    const char *coll_args[] = {"collect", "--db", db, "--snapshot-url", url, "--cache-dir", cache,
                               "--poll-interval", "1", "--threads", "2", NULL};
    assert_int_equal(abacus_spawn(p, collector ? coll_args : node_args), 0);
}

static void start_node(void)
{
    start_follower(0);
    start_follower(1);
}

static int setup(void **state)
{
    (void)state;
    memset(&g_node, 0, sizeof(g_node));
    memset(&g_coll, 0, sizeof(g_coll));
    if (make_temp_dir(g_dir) != 0)
        return -1;
    snprintf(g_root, sizeof(g_root), "%s/origin", g_dir);
    char files[600];
    snprintf(files, sizeof(files), "%s/files", g_root);
    return mkdir(g_root, 0700) == 0 && mkdir(files, 0700) == 0 ? 0 : -1;
}

/* Stops p; 0 when it exited 0 (no leak), else its log is printed. */
static int stop_proc(struct abacus_proc *p, const char *what)
{
    int rc = p->pid > 0 ? abacus_stop(p, SIGTERM, 10000) : 0;
    if (rc != 0) {
        char log[16384];
        abacus_log(p, log, sizeof(log));
        fprintf(stderr, "the %s exited with %d; its log:\n%s\n", what, rc, log);
    }
    return rc;
}

static int teardown(void **state)
{
    (void)state;
    int rc = stop_proc(&g_node, "node");
    int rc2 = stop_proc(&g_coll, "collector");
    stop_origin();
    remove_tree(g_dir);
    return rc == 0 && rc2 == 0 ? 0 : -1;
}

static int64_t now_ms(void)
{
    return (int64_t)time(NULL) * 1000;
}

/* A valid file of version under name, returned with its bytes (for the faults built on it). */
static char *valid_bytes(int64_t version, const char *name, size_t *len)
{
    char path[600];
    files_path(name, path, sizeof(path));
    write_valid(path, version, now_ms());
    return read_all(path, len);
}

/* Both serve version: the node's answers carry it, the collector takes its ingest key. */
static void assert_still_on(int64_t version)
{
    assert_int_equal(served_version(), version);
    assert_int_equal((int64_t)metric("abacus_snapshot_version"), version);
    assert_int_equal((int64_t)coll_metric("abacus_snapshot_version"), version);
    assert_int_equal(collect_with_key_of(version), 200);
    struct http_response r;
    assert_int_equal(http_do(g_coll.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
}

static void test_faults_leave_the_node_serving(void **state)
{
    (void)state;
    start_origin();
    /* nothing published yet: the node runs, is not ready, and answers 503 */
    start_node();
    struct http_response r;
    assert_int_equal(http_do(g_node.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 503);
    http_response_free(&r);
    assert_int_equal(http_do(g_coll.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 503);
    http_response_free(&r);
    assert_int_equal(collect_with_key_of(2), 503);
    size_t len;
    char path[600], sha[65];
    free(valid_bytes(2, "v2.db", &len));
    publish_file(2, "v2.db");
    wait_metric_ge("abacus_snapshot_version", 2);
    assert_still_on(2);

    /* a truncated file: the origin sends half of it */
    char *b = valid_bytes(3, "v3.db", &len);
    files_path("v3.db", path, sizeof(path));
    int64_t size = 0;
    assert_int_equal(ab_snapshot_file_sha256(path, sha, &size, NULL), AB_OK);
    write_all(path, b, len / 2);
    set_manifest(3, sha, (int64_t)len, "v3.db");
    free(b);
    wait_rejected("size", 1);
    assert_still_on(2);

    /* a transfer cut short: Content-Length says the whole file, half arrives */
    b = valid_bytes(4, "v4.db", &len);
    files_path("v4.db", path, sizeof(path));
    assert_int_equal(ab_snapshot_file_sha256(path, sha, &size, NULL), AB_OK);
    write_all(path, b, len / 2);
    char lenpath[620], num[32];
    snprintf(lenpath, sizeof(lenpath), "%s.length", path);
    snprintf(num, sizeof(num), "%zu", len);
    write_all(lenpath, num, strlen(num));
    double before = rejected("size");
    set_manifest(4, sha, (int64_t)len, "v4.db");
    free(b);
    wait_rejected("size", before + 1);
    assert_still_on(2);

    /* a wrong SHA-256 in the manifest */
    free(valid_bytes(5, "v5.db", &len));
    files_path("v5.db", path, sizeof(path));
    assert_int_equal(ab_snapshot_file_sha256(path, sha, &size, NULL), AB_OK);
    sha[0] = sha[0] == 'a' ? 'b' : 'a';
    set_manifest(5, sha, size, "v5.db");
    wait_rejected("sha256", 1);
    assert_still_on(2);

    /* one flipped bit in the file: the manifest's hash is the original's */
    b = valid_bytes(6, "v6.db", &len);
    files_path("v6.db", path, sizeof(path));
    assert_int_equal(ab_snapshot_file_sha256(path, sha, &size, NULL), AB_OK);
    b[len / 2] ^= 0x10;
    write_all(path, b, len);
    free(b);
    before = rejected("sha256");
    set_manifest(6, sha, size, "v6.db");
    wait_rejected("sha256", before + 1);
    assert_still_on(2);

    /* not SQLite at all, announced with its true hash */
    files_path("v7.db", path, sizeof(path));
    char junk[8192];
    memset(junk, 'j', sizeof(junk));
    write_all(path, junk, sizeof(junk));
    publish_file(7, "v7.db");
    wait_rejected("io", 1);
    assert_still_on(2);

    /* a valid SQLite file with another schema */
    files_path("v8.db", path, sizeof(path));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); "
                                  "INSERT INTO users (name) VALUES ('x');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    publish_file(8, "v8.db");
    wait_rejected("invalid", 1);
    assert_still_on(2);

    /* a snapshot whose experiment is invalid (weights sum to 1.4) */
    free(valid_bytes(9, "v9.db", &len));
    files_path("v9.db", path, sizeof(path));
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE variants SET weight = 0.9 WHERE position = 0",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    before = rejected("invalid");
    publish_file(9, "v9.db");
    wait_rejected("invalid", before + 1);
    assert_still_on(2);

    /* an older version */
    free(valid_bytes(1, "v1.db", &len));
    publish_file(1, "v1.db");
    wait_rejected("older_version", 1);
    assert_still_on(2);

    /* the served version again, but another file (another hash) */
    files_path("v2b.db", path, sizeof(path));
    write_valid(path, 2, now_ms() + 12345);
    publish_file(2, "v2b.db");
    wait_rejected("hash_conflict", 1);
    assert_still_on(2);

    /* a file holding another version than the manifest announces */
    free(valid_bytes(11, "v11.db", &len));
    publish_file(10, "v11.db");
    wait_rejected("version_mismatch", 1);
    assert_still_on(2);

    /* a manifest that is not one, then an origin answering 500 */
    set_manifest_text("{\"version\":\"12\",\"sha256\":\"x\"}");
    wait_rejected("manifest", 1);
    assert_still_on(2);
    char status[600];
    snprintf(status, sizeof(status), "%s/status", g_root);
    write_all(status, "500", 3);
    wait_rejected("fetch", 1);
    assert_still_on(2);
    unlink(status);

    /* every rejection was counted once per reason it deserved, none swapped anything in */
    assert_int_equal((int64_t)metric("abacus_snapshot_loads_total"), 1);
    assert_int_equal((int64_t)coll_metric("abacus_snapshot_loads_total"), 1);
    /* the keys of the versions refused were never accepted */
    for (int64_t v = 3; v <= 11; v++)
        assert_int_equal(collect_with_key_of(v), 401);

    /* a valid newer version is taken, verified and kept in the cache dir */
    free(valid_bytes(12, "v12.db", &len));
    publish_file(12, "v12.db");
    wait_metric_ge("abacus_snapshot_version", 12);
    assert_still_on(12);
    char cached[600];
    snprintf(cached, sizeof(cached), "%s/cache/12.db", g_dir);
    struct stat st;
    assert_int_equal(stat(cached, &st), 0);
    assert_int_equal((int64_t)st.st_size, (int64_t)len);
    snprintf(cached, sizeof(cached), "%s/cache-collect/12.db", g_dir);
    assert_int_equal(stat(cached, &st), 0);
    assert_int_equal((int64_t)st.st_size, (int64_t)len);
    assert_int_equal(collect_with_key_of(2), 401); /* the collector checks against 12 now */

    /* restart with the origin down: the cache dirs are served at once */
    assert_int_equal(abacus_stop(&g_node, SIGTERM, 10000), 0);
    assert_int_equal(abacus_stop(&g_coll, SIGTERM, 10000), 0);
    stop_origin();
    start_node();
    assert_still_on(12);
    assert_int_equal((int64_t)metric("abacus_snapshot_loaded_poll"), 0);
    assert_int_equal((int64_t)coll_metric("abacus_snapshot_loaded_poll"), 0);
    double fetch_failed = rejected("fetch");
    wait_rejected("fetch", fetch_failed + 1); /* they keep asking the source, and count it */
    assert_still_on(12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_faults_leave_the_node_serving, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
