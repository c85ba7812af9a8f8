/*
 * The nightly report end to end: a control and an events database seeded directly
 * (five days of exposures and metric events for two experiments, one that ended before the
 * report's day and one that starts after it, rejected events, a configuration change left
 * unpublished), then the real binary:
 *   - `abacus report --date` writes report.json, .csv and .html; check_report.py validates each
 *     experiment against results.schema.json and the CSV's rows against the JSON;
 *   - each experiment's results equal `abacus analyze --at <end of the day> --json`;
 *   - the summary names the winner, the guardrail regression and every data-quality problem;
 *   - a rerun gives the same bytes; the experiment name's HTML arrives escaped;
 *   - the webhook reaches a receiver that fails twice first, and a receiver that is down does
 *     not stop the report;
 *   - `abacus web` lists the report and serves it to an admin key only.
 * The browser half (tests/e2e/report.test.mjs) opens the HTML this test leaves in the build dir.
 */
#include <fcntl.h>
#include <math.h>
#include <netinet/in.h>
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include <jansson.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "harness.h"

extern const struct ab_migration collect_migrations[];
extern const size_t collect_migrations_count;

#define DAY 86400000LL
#define START 1767225600000LL        /* 2026-01-01T00:00:00Z: the phases start */
#define REPORT_DAY (START + 3 * DAY) /* 2026-01-04 */
#define REPORT_DATE "2026-01-04"
#define AS_OF "2026-01-05T00:00:00Z"
#define EVIL_NAME "<script>alert(\"x\")</script> Checkout & <b>button</b>"

static char g_dir[256], g_data[512], g_out[600];

static uint64_t g_rng = 7;
static double rnd01(void)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) / 9007199254740992.0;
}

static void exec_ok(struct ab_db *db, const char *sql)
{
    struct ab_errinfo ei;
    if (ab_db_exec(db, sql, &ei) != AB_OK)
        fail_msg("%s: %s", sql, ei.message);
}

static sqlite3_stmt *g_ins;
static int64_t g_seq;

static void event(const char *exp, const char *unit, int64_t ts, const char *variant,
                  const char *metric, double value)
{
    char id[48];
    snprintf(id, sizeof(id), "ev-%lld", (long long)g_seq);
    sqlite3_bind_text(g_ins, 1, id, -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(g_ins, 2, g_seq++);
    sqlite3_bind_text(g_ins, 3, metric == NULL ? "exposure" : "metric", -1, SQLITE_STATIC);
    sqlite3_bind_int64(g_ins, 4, ts);
    sqlite3_bind_text(g_ins, 5, unit, -1, SQLITE_TRANSIENT);
    if (metric == NULL) {
        sqlite3_bind_text(g_ins, 6, exp, -1, SQLITE_STATIC);
        sqlite3_bind_text(g_ins, 7, variant, -1, SQLITE_STATIC);
        sqlite3_bind_null(g_ins, 8);
        sqlite3_bind_null(g_ins, 9);
    } else {
        sqlite3_bind_null(g_ins, 6);
        sqlite3_bind_null(g_ins, 7);
        sqlite3_bind_text(g_ins, 8, metric, -1, SQLITE_STATIC);
        sqlite3_bind_double(g_ins, 9, value);
    }
    assert_int_equal(sqlite3_step(g_ins), SQLITE_DONE);
    sqlite3_reset(g_ins);
}

/*
 * checkout: treatment doubles purchases (goal, increase) and slows pages by 30% (latency: a
 * guardrail whose good direction is decrease). srm-exp: 70/30 units under 50/50 weights, and 3%
 * of its units saw both variants. Five days of traffic; the report's day is the fourth.
 */
static void seed_events(struct ab_db *db)
{
    exec_ok(db, "BEGIN");
    assert_int_equal(sqlite3_prepare_v2(ab_db_handle(db),
                                        "INSERT INTO events (id, id_hash, fingerprint, type, ts,"
                                        " client_ts, received_at, unit, experiment, variant,"
                                        " metric, value, source) VALUES (?1, ?2, 0, ?3, ?4, ?4,"
                                        " ?4, ?5, ?6, ?7, ?8, ?9, 'events')",
                                        -1, &g_ins, NULL),
                     SQLITE_OK);
    char unit[32];
    for (int u = 0; u < 2000; u++) {
        snprintf(unit, sizeof(unit), "c-%d", u);
        int treat = u % 2;
        int64_t t0 = START + (int64_t)(rnd01() * 5 * DAY);
        event("checkout", unit, t0, treat ? "treatment" : "control", NULL, 0);
        if (rnd01() < (treat ? 0.24 : 0.12))
            event(NULL, unit, t0 + 60000, NULL, "purchase", 1);
        double latency = (treat ? 130 : 100) + 20 * (rnd01() - 0.5);
        event(NULL, unit, t0 + 1000, NULL, "latency", latency);
    }
    for (int u = 0; u < 600; u++) {
        snprintf(unit, sizeof(unit), "s-%d", u);
        int treat = u % 10 >= 7; /* 70% control */
        int64_t t0 = START + (int64_t)(rnd01() * 5 * DAY);
        event("srm-exp", unit, t0, treat ? "treatment" : "control", NULL, 0);
        if (u % 30 == 0)
            event("srm-exp", unit, t0 + 5000, treat ? "control" : "treatment", NULL, 0);
        if (rnd01() < 0.1)
            event(NULL, unit, t0 + 60000, NULL, "signup", 1);
    }
    sqlite3_finalize(g_ins);
    /* three rejected on the day, one the day after */
    exec_ok(db, "INSERT INTO rejected_events (received_at, source, request_index, code, field,"
                " message, raw) VALUES"
                " (1767488400000, 'events', 0, 'unknown_variant', 'events[0].variant', 'x', 'a'),"
                " (1767492000000, 'events', 1, 'missing_field', 'events[1].unit', 'x', 'b'),"
                " (1767567599999, 'events', 0, 'missing_field', 'events[0].unit', 'x', 'c'),"
                " (1767571200000, 'events', 0, 'missing_field', 'events[0].unit', 'x', 'd')");
    exec_ok(db, "COMMIT");
}

static void seed_control(struct ab_db *db)
{
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "INSERT INTO experiments (id, key, name, seed, status, phase, created_at, updated_at)"
             " VALUES (1, 'checkout', '%s', 'checkout', 'running', 1, 0, 0),"
             " (2, 'srm-exp', 'SRM, with \"quotes\"', 'srm-exp', 'running', 1, 0, 0),"
             " (3, 'old-exp', 'Ended before', 'old-exp', 'stopped', 1, 0, 0),"
             " (4, 'future-exp', 'Starts after', 'future-exp', 'running', 1, 0, 0);"
             "INSERT INTO experiment_phases VALUES (1, 1, 'checkout', '[0.5,0.5]', %lld, NULL),"
             " (2, 1, 'srm-exp', '[0.5,0.5]', %lld, NULL),"
             " (3, 1, 'old-exp', '[0.5,0.5]', %lld, %lld),"
             " (4, 1, 'future-exp', '[0.5,0.5]', %lld, NULL);"
             "INSERT INTO variants (experiment_id, position, key, weight) VALUES"
             " (1, 0, 'control', 0.5), (1, 1, 'treatment', 0.5),"
             " (2, 0, 'control', 0.5), (2, 1, 'treatment', 0.5),"
             " (3, 0, 'control', 0.5), (3, 1, 'treatment', 0.5),"
             " (4, 0, 'control', 0.5), (4, 1, 'treatment', 0.5);"
             "INSERT INTO metrics (id, key, type, event, denominator_event, direction,"
             " conversion_window_hours, created_at, updated_at) VALUES"
             " (1, 'purchase', 'binomial', 'purchase', NULL, 'increase', NULL, 0, 0),"
             " (2, 'latency', 'mean', 'latency', NULL, 'decrease', NULL, 0, 0),"
             " (3, 'signup', 'binomial', 'signup', NULL, 'increase', NULL, 0, 0);"
             "INSERT INTO experiment_metrics VALUES (1, 1, 'goal'), (1, 2, 'guardrail'),"
             " (2, 3, 'goal'), (3, 1, 'goal'), (4, 1, 'goal');"
             /* published at 01:00 of the day, then changed at 10:00 and never published */
             "INSERT INTO snapshots (version, sha256, size, path, created_at, created_by)"
             " VALUES (1, 'x', 1, 'snapshots/1.db', %lld, 'system');"
             "INSERT INTO audit_log (at, actor, action, entity_type, entity_key, before_json,"
             " after_json) VALUES (%lld, 'key:adm_test', 'experiment.update', 'experiment',"
             " 'checkout', '{}', '{}');",
             EVIL_NAME, (long long)START, (long long)START, (long long)START,
             (long long)(START + DAY), (long long)(REPORT_DAY + 2 * DAY),
             (long long)(REPORT_DAY + 3600000), (long long)(REPORT_DAY + 36000000));
    exec_ok(db, sql);
}

static int setup(void **state)
{
    (void)state;
    if (make_temp_dir(g_dir) != 0)
        return -1;
    snprintf(g_data, sizeof(g_data), "%s/data", g_dir);
    snprintf(g_out, sizeof(g_out), "%s/out", g_dir);
    if (mkdir(g_data, 0755) != 0)
        return -1;
    char path[700];
    struct ab_errinfo ei;
    struct ab_db *db = NULL;
    struct ab_db_options o = {0};
    snprintf(path, sizeof(path), "%s/abacus.db", g_data);
    if (ab_db_open(path, &o, &db, &ei) != AB_OK ||
        ab_migrate(db, ab_migrations, ab_migrations_count, NULL, NULL, &ei) != AB_OK)
        return -1;
    seed_control(db);
    ab_db_close(db);
    snprintf(path, sizeof(path), "%s/events.db", g_data);
    if (ab_db_open(path, &o, &db, &ei) != AB_OK ||
        ab_migrate(db, collect_migrations, collect_migrations_count, NULL, NULL, &ei) != AB_OK)
        return -1;
    seed_events(db);
    ab_db_close(db);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    remove_tree(g_dir);
    return 0;
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 > cap) {
            cap = (n + 65536) * 2;
            buf = realloc(buf, cap + 1);
            assert_non_null(buf);
        }
        size_t r = fread(buf + n, 1, 65536, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    if (len != NULL)
        *len = n;
    return buf;
}

static char g_cmd_out[1 << 20];

static int run_report(const char *out, const char *const *extra)
{
    const char *argv[24] = {ABACUS_BIN,   "report", "--date", REPORT_DATE,
                            "--data-dir", g_data,   "--out",  out};
    size_t n = 8;
    for (size_t i = 0; extra != NULL && extra[i] != NULL && n < 23; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    return run_command(argv, g_cmd_out, sizeof(g_cmd_out));
}

static json_t *load_json(const char *path)
{
    json_error_t jerr;
    json_t *j = json_load_file(path, 0, &jerr);
    if (j == NULL)
        fail_msg("%s: %s", path, jerr.text);
    return j;
}

static const json_t *find(const json_t *arr, const char *field, const char *value)
{
    size_t i;
    const json_t *e;
    json_array_foreach(arr, i, e)
    {
        const json_t *v = json_object_get(e, field);
        if (json_is_string(v) && strcmp(json_string_value(v), value) == 0)
            return e;
    }
    return NULL;
}

/* The report is written, validates, and its experiments are the ones of the day. */
static void test_report_files(void **state)
{
    (void)state;
    assert_int_equal(run_report(g_out, NULL), 0);
    char path[700];
    snprintf(path, sizeof(path), "%s/report.json", g_out);
    json_t *r = load_json(path);
    assert_string_equal(json_string_value(json_object_get(r, "date")), REPORT_DATE);
    assert_string_equal(json_string_value(json_object_get(r, "as_of")), AS_OF);
    const json_t *exps = json_object_get(r, "experiments");
    assert_int_equal(json_array_size(exps), 2); /* old-exp ended, future-exp not started */
    assert_string_equal(json_string_value(json_object_get(json_array_get(exps, 0), "key")),
                        "checkout");
    assert_string_equal(json_string_value(json_object_get(json_array_get(exps, 0), "name")),
                        EVIL_NAME);
    assert_string_equal(json_string_value(json_object_get(json_array_get(exps, 1), "key")),
                        "srm-exp");
    json_decref(r);

    const char *argv[] = {PYTHON3, CHECK_REPORT, g_out, SCHEMA, NULL};
    int rc = run_command(argv, g_cmd_out, sizeof(g_cmd_out));
    if (rc != 0)
        fail_msg("check_report.py: %s", g_cmd_out);
    /* 2 metrics x 2 variants for checkout, 1 x 2 for srm-exp */
    assert_non_null(strstr(g_cmd_out, "ok: 2 experiments, 6 csv rows"));
}

/* Each experiment's numbers are the analysis' own as of the end of the day. */
static void test_equals_analyze(void **state)
{
    (void)state;
    char path[700];
    snprintf(path, sizeof(path), "%s/report.json", g_out);
    json_t *r = load_json(path);
    size_t i;
    const json_t *e;
    json_array_foreach(json_object_get(r, "experiments"), i, e)
    {
        const char *key = json_string_value(json_object_get(e, "key"));
        const char *argv[] = {ABACUS_BIN, "analyze", "--data-dir", g_data, "--experiment",
                              key,        "--json",  "--at",       AS_OF,  NULL};
        assert_int_equal(run_command(argv, g_cmd_out, sizeof(g_cmd_out)), 0);
        json_error_t jerr;
        json_t *a = json_loads(strchr(g_cmd_out, '{'), JSON_DISABLE_EOF_CHECK, &jerr);
        if (a == NULL)
            fail_msg("analyze output: %s", jerr.text);
        const json_t *mine = json_object_get(e, "results");
        if (!json_equal(mine, a)) {
            char *x = json_dumps(mine, JSON_COMPACT), *y = json_dumps(a, JSON_COMPACT);
            fail_msg("%s: report %s\nanalyze %s", key, x, y);
        }
        /* and the numbers are real: n per arm and a computed lift */
        const json_t *m0 = json_array_get(json_object_get(mine, "metrics"), 0);
        assert_true(json_integer_value(json_object_get(
                        json_array_get(json_object_get(m0, "variants"), 0), "n")) > 100);
        json_decref(a);
    }
    json_decref(r);
}

/* The summary: the winner, the guardrail regression, and every data-quality problem. */
static void test_summary(void **state)
{
    (void)state;
    char path[700];
    snprintf(path, sizeof(path), "%s/report.json", g_out);
    json_t *r = load_json(path);
    const json_t *s = json_object_get(r, "summary");
    assert_int_equal(json_integer_value(json_object_get(s, "experiments")), 2);
    const json_t *dec = json_object_get(s, "decisions");
    assert_int_equal(json_array_size(dec), 1);
    const json_t *d = json_array_get(dec, 0);
    assert_string_equal(json_string_value(json_object_get(d, "experiment")), "checkout");
    assert_string_equal(json_string_value(json_object_get(d, "metric")), "purchase");
    assert_string_equal(json_string_value(json_object_get(d, "outcome")), "winner");
    assert_string_equal(json_string_value(json_object_get(d, "variant")), "treatment");
    double lift = json_number_value(json_object_get(d, "lift"));
    const json_t *ci = json_object_get(d, "ci_sequential");
    assert_true(lift > 0.4 && lift < 1.6); /* seeded at +100% */
    assert_true(json_number_value(json_array_get(ci, 0)) > 0);
    assert_true(json_number_value(json_array_get(ci, 1)) > lift);

    const json_t *reg = json_object_get(s, "guardrail_regressions");
    assert_int_equal(json_array_size(reg), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reg, 0), "metric")),
                        "latency");
    assert_true(json_number_value(json_object_get(json_array_get(reg, 0), "lift")) > 0.2);

    const json_t *q = json_object_get(s, "data_quality");
    const json_t *srm = find(q, "problem", "srm");
    assert_non_null(srm);
    assert_string_equal(json_string_value(json_object_get(srm, "experiment")), "srm-exp");
    const json_t *multi = find(q, "problem", "multiple_exposures");
    assert_non_null(multi);
    assert_string_equal(json_string_value(json_object_get(multi, "experiment")), "srm-exp");
    assert_true(json_number_value(json_object_get(multi, "share")) > 0.01);
    const json_t *rej = find(q, "problem", "rejected_events");
    assert_non_null(rej);
    assert_int_equal(json_integer_value(json_object_get(rej, "count")), 3);
    assert_int_equal(json_integer_value(json_object_get(s, "rejected_events")), 3);
    const json_t *stale = find(q, "problem", "stale_snapshot");
    assert_non_null(stale);
    assert_string_equal(json_string_value(json_object_get(stale, "unpublished_since")),
                        "2026-01-04T10:00:00Z");
    /* checkout itself has no SRM or multiple-exposure problem */
    size_t i;
    const json_t *p;
    json_array_foreach(q, i, p)
    {
        const json_t *e = json_object_get(p, "experiment");
        assert_false(json_is_string(e) && strcmp(json_string_value(e), "checkout") == 0);
    }
    assert_non_null(strstr(json_string_value(json_object_get(s, "text")),
                           "checkout: treatment wins on purchase"));
    json_decref(r);
}

/* Same bytes on a rerun (after analyze stored other results meanwhile); the name escaped. */
static void test_rerun_and_escaping(void **state)
{
    (void)state;
    char again[700];
    snprintf(again, sizeof(again), "%s/again", g_dir);
    assert_int_equal(run_report(again, NULL), 0);
    static const char *const FILES[] = {"report.json", "report.csv", "report.html"};
    for (size_t i = 0; i < 3; i++) {
        char a[800], b[800];
        snprintf(a, sizeof(a), "%s/%s", g_out, FILES[i]);
        snprintf(b, sizeof(b), "%s/%s", again, FILES[i]);
        size_t la = 0, lb = 0;
        char *x = slurp(a, &la), *y = slurp(b, &lb);
        assert_non_null(x);
        assert_non_null(y);
        assert_int_equal(la, lb);
        assert_memory_equal(x, y, la);
        free(x);
        free(y);
    }
    /* no temporary file left behind: the directory holds the three files and nothing else */
    DIR *dir = opendir(again);
    assert_non_null(dir);
    int entries = 0;
    for (struct dirent *e = readdir(dir); e != NULL; e = readdir(dir))
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            entries++;
    closedir(dir);
    assert_int_equal(entries, 3);
    char path[800];
    snprintf(path, sizeof(path), "%s/report.html", g_out);
    char *html = slurp(path, NULL);
    assert_null(strstr(html, "<script>alert"));
    assert_null(strstr(html, "<b>button"));
    assert_non_null(strstr(html, "\\u003cscript\\u003ealert(\\\"x\\\")\\u003c/script\\u003e"));
    assert_null(strstr(html, "src=\"http"));
    assert_null(strstr(html, "href=\"http"));
    free(html);
    /* the CSV quotes the name (a comma-free name with quotes and an ampersand) per RFC 4180 */
    snprintf(path, sizeof(path), "%s/report.csv", g_out);
    char *csv = slurp(path, NULL);
    assert_non_null(strstr(csv, ",srm-exp,\"SRM, with \"\"quotes\"\"\",1,signup,"));
    free(csv);
    /* the browser test opens this copy */
    char copy[800];
    snprintf(copy, sizeof(copy), "%s/report-e2e", BUILD_DIR);
    assert_int_equal(run_report(copy, NULL), 0);
}

static pid_t g_receiver;

static uint16_t start_receiver(const char *log, int fail)
{
    char portfile[700], failtext[16];
    snprintf(portfile, sizeof(portfile), "%s/receiver.port", g_dir);
    unlink(portfile);
    snprintf(failtext, sizeof(failtext), "%d", fail);
    g_receiver = fork();
    assert_true(g_receiver >= 0);
    if (g_receiver == 0) {
        execlp("python3", "python3", WEBHOOK_RECEIVER, portfile, log, failtext, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 1000; i++) {
        FILE *fp = fopen(portfile, "r");
        unsigned port = 0;
        if (fp != NULL) {
            int got = fscanf(fp, "%u", &port);
            fclose(fp);
            if (got == 1 && port > 0)
                return (uint16_t)port;
        }
        usleep(10000);
    }
    fail_msg("the webhook receiver did not start");
    return 0;
}

static void stop_receiver(void)
{
    if (g_receiver <= 0)
        return;
    kill(g_receiver, SIGTERM);
    int status;
    waitpid(g_receiver, &status, 0);
    g_receiver = 0;
}

/* Two failures, then delivered on the third attempt: three POSTs, the last one answered 200. */
static void test_webhook_retried(void **state)
{
    (void)state;
    char log[700], url[128], out[700];
    snprintf(log, sizeof(log), "%s/webhook.log", g_dir);
    snprintf(out, sizeof(out), "%s/hooked", g_dir);
    uint16_t port = start_receiver(log, 2);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", port);
    const char *extra[] = {"--report-webhook",
                           url,
                           "--report-webhook-attempts",
                           "4",
                           "--report-webhook-backoff-ms",
                           "50",
                           NULL};
    int rc = run_report(out, extra);
    stop_receiver();
    assert_int_equal(rc, 0);
    char *text = slurp(log, NULL);
    assert_non_null(text);
    int lines = 0, ok = 0;
    for (char *line = text; line != NULL && *line != '\0';) {
        char *nl = strchr(line, '\n');
        if (nl != NULL)
            *nl = '\0';
        json_error_t jerr;
        json_t *j = json_loads(line, 0, &jerr);
        assert_non_null(j);
        lines++;
        const json_t *body = json_object_get(j, "body");
        assert_string_equal(json_string_value(json_object_get(j, "content_type")),
                            "application/json");
        assert_string_equal(json_string_value(json_object_get(body, "date")), REPORT_DATE);
        assert_non_null(strstr(json_string_value(json_object_get(body, "text")),
                               "Abacus results report 2026-01-04"));
        assert_int_equal(json_array_size(json_object_get(body, "decisions")), 1);
        if (json_integer_value(json_object_get(j, "status")) == 200)
            ok++;
        json_decref(j);
        line = nl != NULL ? nl + 1 : NULL;
    }
    free(text);
    assert_int_equal(lines, 3);
    assert_int_equal(ok, 1);
}

/* Nothing listens: the report is still written; three attempts are logged, then given up. */
static void test_webhook_receiver_down(void **state)
{
    (void)state;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd); /* a port nobody listens on */
    char url[128], out[700], path[800];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", ntohs(a.sin_port));
    snprintf(out, sizeof(out), "%s/unhooked", g_dir);
    const char *extra[] = {"--report-webhook",
                           url,
                           "--report-webhook-attempts",
                           "3",
                           "--report-webhook-backoff-ms",
                           "20",
                           NULL};
    assert_int_equal(run_report(out, extra), 0);
    snprintf(path, sizeof(path), "%s/report.json", out);
    assert_int_equal(access(path, F_OK), 0);
    int failures = 0;
    for (const char *p = g_cmd_out; (p = strstr(p, "report_webhook_failed")) != NULL; p++)
        failures++;
    assert_int_equal(failures, 3);
    assert_non_null(strstr(g_cmd_out, "report_webhook_gave_up"));
    assert_non_null(strstr(g_cmd_out, "the webhook was not delivered (the report is written)"));
}

/* abacus web lists the day's report and serves its files to an admin key, and only to one. */
static void test_served(void **state)
{
    (void)state;
    char reports[700], src[800];
    snprintf(reports, sizeof(reports), "%s/reports", g_data);
    assert_int_equal(mkdir(reports, 0755), 0);
    snprintf(reports, sizeof(reports), "%s/reports/" REPORT_DATE, g_data);
    assert_int_equal(rename(g_out, reports), 0);
    struct abacus_proc p;
    memset(&p, 0, sizeof(p));
    snprintf(p.dir, sizeof(p.dir), "%s", g_dir);
    const char *args[] = {"web", "--data-dir", g_data, "--report-at",
                          "off", "--threads",  "2",    NULL};
    assert_int_equal(abacus_spawn(&p, args), 0);
    snprintf(src, sizeof(src), "%s/admin.key", g_data);
    char *key = slurp(src, NULL);
    assert_non_null(key);
    key[strcspn(key, "\r\n")] = '\0';
    char raw[1024];
    struct http_response res;
    snprintf(raw, sizeof(raw),
             "GET /api/v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
             "Connection: close\r\n\r\n",
             key);
    assert_int_equal(http_raw(p.port, raw, strlen(raw), &res), 0);
    assert_int_equal(res.status, 200);
    json_t *list = json_loads(res.body, 0, NULL);
    http_response_free(&res);
    const json_t *first = json_array_get(json_object_get(list, "reports"), 0);
    assert_string_equal(json_string_value(json_object_get(first, "date")), REPORT_DATE);
    assert_string_equal(json_string_value(json_object_get(first, "html")),
                        "/reports/" REPORT_DATE "/report.html");
    json_decref(list);

    snprintf(raw, sizeof(raw),
             "GET /reports/" REPORT_DATE "/report.html HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
             key);
    assert_int_equal(http_raw(p.port, raw, strlen(raw), &res), 0);
    assert_int_equal(res.status, 200);
    snprintf(src, sizeof(src), "%s/report.html", reports);
    size_t len = 0;
    char *file = slurp(src, &len);
    assert_int_equal(res.body_len, len);
    assert_memory_equal(res.body, file, len);
    char buf[512];
    assert_non_null(http_header(&res, "content-security-policy", buf, sizeof(buf)));
    assert_non_null(strstr(buf, "sandbox"));
    free(file);
    http_response_free(&res);

    assert_int_equal(
        http_do(p.port, "GET", "/reports/" REPORT_DATE "/report.csv", NULL, NULL, 0, &res), 0);
    assert_int_equal(res.status, 401);
    http_response_free(&res);
    snprintf(raw, sizeof(raw),
             "GET /reports/" REPORT_DATE "/abacus.db HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
             key);
    assert_int_equal(http_raw(p.port, raw, strlen(raw), &res), 0);
    assert_int_equal(res.status, 404);
    http_response_free(&res);
    snprintf(raw, sizeof(raw),
             "GET /reports/2026-01-05/report.json HTTP/1.1\r\nHost: x\r\n"
             "Authorization: Bearer %s\r\nConnection: close\r\n\r\n",
             key);
    assert_int_equal(http_raw(p.port, raw, strlen(raw), &res), 0);
    assert_int_equal(res.status, 404);
    http_response_free(&res);
    free(key);

    /* a browser session (the first user, admin@localhost) reads it too */
    snprintf(src, sizeof(src), "%s/admin.password", g_data);
    char *pw = slurp(src, NULL);
    assert_non_null(pw);
    pw[strcspn(pw, "\r\n")] = '\0';
    json_t *login = json_pack("{s:s, s:s}", "email", "admin@localhost", "password", pw);
    char *body = json_dumps(login, JSON_COMPACT);
    assert_int_equal(
        http_do(p.port, "POST", "/api/v1/session", "application/json", body, strlen(body), &res),
        0);
    assert_int_equal(res.status, 201);
    char cookie[512];
    assert_non_null(http_header(&res, "set-cookie", cookie, sizeof(cookie)));
    cookie[strcspn(cookie, ";")] = '\0';
    http_response_free(&res);
    snprintf(raw, sizeof(raw),
             "GET /reports/" REPORT_DATE "/report.csv HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n"
             "Connection: close\r\n\r\n",
             cookie);
    assert_int_equal(http_raw(p.port, raw, strlen(raw), &res), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(strstr(res.body, "date,experiment,name,phase,metric"));
    http_response_free(&res);
    free(body);
    json_decref(login);
    free(pw);
    assert_int_equal(abacus_stop(&p, SIGTERM, 10000), 0);
}

/*
 * abacus up wires the scheduler and the webhook: started with --report-at 00:00 on an empty data
 * directory, it writes yesterday's report at once (the catch-up) and announces it to a receiver
 * that refuses the first POST. Waits for the receiver's second line (up to 60 s).
 */
static void test_up_schedules(void **state)
{
    (void)state;
    char log[700], url[128];
    snprintf(log, sizeof(log), "%s/up-webhook.log", g_dir);
    uint16_t port = start_receiver(log, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/hook", port);
    time_t now = time(NULL);
    time_t y = now - 86400;
    struct tm tm;
    gmtime_r(&y, &tm);
    char yesterday[16];
    strftime(yesterday, sizeof(yesterday), "%Y-%m-%d", &tm);
    struct abacus_proc p;
    const char *extra[] = {
        "--report-at", "00:00", "--report-webhook", url, "--report-webhook-backoff-ms", "50", NULL};
    assert_int_equal(abacus_start(&p, extra), 0);
    char *text = NULL;
    int lines = 0;
    for (int i = 0; i < 600 && lines < 2; i++) {
        free(text);
        text = slurp(log, NULL);
        lines = 0;
        for (const char *c = text; c != NULL && *c != '\0'; c++)
            lines += *c == '\n';
        if (lines < 2)
            usleep(100000);
    }
    int code = abacus_stop(&p, SIGTERM, 15000);
    stop_receiver();
    if (lines < 2) {
        char buf[8192];
        abacus_log(&p, buf, sizeof(buf));
        fail_msg("no delivery after the refused one; abacus log:\n%s", buf);
    }
    assert_int_equal(code, 0);
    char *second = strchr(text, '\n') + 1;
    json_t *j = json_loads(second, JSON_DISABLE_EOF_CHECK, NULL);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 200);
    const json_t *body = json_object_get(j, "body");
    const char *date = json_string_value(json_object_get(body, "date"));
    if (strcmp(date, yesterday) != 0)
        assert_true(now % 86400 < 120); /* only when the test straddled midnight */
    char path[800];
    snprintf(path, sizeof(path), "%s/data/reports/%s/report.json", p.dir, date);
    json_decref(j);
    free(text);
    assert_int_equal(access(path, F_OK), 0);
    abacus_cleanup(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_report_files),    cmocka_unit_test(test_equals_analyze),
        cmocka_unit_test(test_summary),         cmocka_unit_test(test_rerun_and_escaping),
        cmocka_unit_test(test_webhook_retried), cmocka_unit_test(test_webhook_receiver_down),
        cmocka_unit_test(test_served),          cmocka_unit_test(test_up_schedules),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
