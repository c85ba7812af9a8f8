/*
 * Integration tests of browser authentication: the control plane (web/) in this process on an
 * HTTP server on 127.0.0.1 port 0, with a fixed clock the tests move (web_config.clock), and real
 * HTTP requests over loopback. Login (cookie flags, generic errors, the session id stored only as
 * a hash), CSRF on every change, the role matrix, idle and absolute timeouts, logout, throttled
 * logins, disabled users, and the first admin user.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>
#include <jansson.h>
#include <sqlite3.h>
#include "harness.h"
#include "web.h"

#define IDLE_S 600
#define MAX_S 3600
#define LIMIT_EMAIL 3
#define LIMIT_IP 6

struct fixture {
    char dir[256];
    char data[300];
    struct ab_clock_fixed clock;
    struct ab_log log;
    struct ab_http_server *srv;
    struct web *web;
    uint16_t port;
    char key[128];      /* the admin API key */
    char password[64];  /* admin@localhost's */
};

static struct fixture *F;

static void read_file(const char *path, char *buf, size_t len)
{
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(buf, (int)len, fp));
    fclose(fp);
    buf[strcspn(buf, "\n")] = '\0';
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
}

static int setup(void **state)
{
    (void)state;
    F = calloc(1, sizeof(*F));
    if (make_temp_dir(F->dir) != 0)
        return -1;
    snprintf(F->data, sizeof(F->data), "%s/data", F->dir);
    ab_clock_fixed_init(&F->clock, 1790000000000);
    ab_log_init(&F->log, AB_LOG_ERROR, 2, &ab_clock_system);
    struct ab_http_config hc;
    ab_http_config_defaults(&hc);
    hc.port = 0;
    hc.threads = 2;
    hc.log = &F->log;
    struct web_config wc = {.data_dir = F->data,
                            .log = &F->log,
                            .clock = &F->clock.clock,
                            .session_idle_s = IDLE_S,
                            .session_max_s = MAX_S,
                            .login_limit_email = LIMIT_EMAIL,
                            .login_limit_ip = LIMIT_IP};
    struct ab_errinfo ei;
    if (ab_http_server_new(&hc, &F->srv, &ei) != AB_OK || web_new(&wc, &F->web, &ei) != AB_OK ||
        web_mount(F->web, F->srv, &ei) != AB_OK || web_start(F->web, &ei) != AB_OK ||
        ab_http_server_start(F->srv, &ei) != AB_OK) {
        fprintf(stderr, "setup: %s\n", ei.message);
        return -1;
    }
    F->port = ab_http_server_port(F->srv);
    char path[512];
    snprintf(path, sizeof(path), "%s/admin.key", F->data);
    read_file(path, F->key, sizeof(F->key));
    snprintf(path, sizeof(path), "%s/admin.password", F->data);
    read_file(path, F->password, sizeof(F->password));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    ab_http_server_stop(F->srv);
    ab_http_server_wait(F->srv);
    web_stop(F->web);
    ab_http_server_free(F->srv);
    web_free(F->web);
    remove_tree(F->dir);
    free(F);
    return 0;
}

/* A request; auth is a full header line ("Cookie: ...\r\n", "Authorization: ...\r\n") or NULL. */
static int req(const char *method, const char *path, const char *headers, const char *body,
               struct http_response *r)
{
    size_t blen = body != NULL ? strlen(body) : 0;
    size_t cap = blen + 2048 + strlen(path) + (headers != NULL ? strlen(headers) : 0);
    char *raw = malloc(cap);
    int n = snprintf(raw, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n%s",
                     method, path, headers != NULL ? headers : "");
    if (body != NULL)
        n += snprintf(raw + n, cap - (size_t)n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", blen,
                      body);
    else
        n += snprintf(raw + n, cap - (size_t)n, "\r\n");
    assert_int_equal(http_raw(F->port, raw, (size_t)n, r), 0);
    free(raw);
    return r->status;
}

static int status_of(const char *method, const char *path, const char *headers, const char *body)
{
    struct http_response r;
    int st = req(method, path, headers, body, &r);
    http_response_free(&r);
    return st;
}

struct session {
    char cookie[200];  /* "Cookie: abacus_session=...\r\n" */
    char token[80];    /* the cookie's value */
    char csrf[80];
    char both[400];    /* cookie + "X-CSRF-Token: ...\r\n" */
};

/* Logs in; returns the status, fills s on 201. */
static int login(const char *email, const char *password, struct session *s,
                 struct http_response *out)
{
    char body[512];
    json_t *b = json_pack("{s:s, s:s}", "email", email, "password", password);
    char *t = json_dumps(b, JSON_COMPACT);
    snprintf(body, sizeof(body), "%s", t);
    free(t);
    json_decref(b);
    struct http_response r;
    int st = req("POST", "/api/v1/session", NULL, body, &r);
    if (st == 201) {
        char sc[512];
        assert_non_null(http_header(&r, "set-cookie", sc, sizeof(sc)));
        assert_int_equal(strncmp(sc, "abacus_session=", 15), 0);
        size_t n = strcspn(sc + 15, ";");
        assert_true(n > 0 && n < sizeof(s->token));
        memcpy(s->token, sc + 15, n);
        s->token[n] = '\0';
        json_t *doc = json_loads(r.body, 0, NULL);
        assert_non_null(doc);
        snprintf(s->csrf, sizeof(s->csrf), "%s",
                 json_string_value(json_object_get(doc, "csrf_token")));
        json_decref(doc);
        snprintf(s->cookie, sizeof(s->cookie), "Cookie: theme=x; abacus_session=%s\r\n",
                 s->token);
        snprintf(s->both, sizeof(s->both), "%sX-CSRF-Token: %s\r\n", s->cookie, s->csrf);
    }
    if (out != NULL)
        *out = r;
    else
        http_response_free(&r);
    return st;
}

static void bearer(char *buf, size_t len)
{
    snprintf(buf, len, "Authorization: Bearer %s\r\n", F->key);
}

static void create_user(const char *email, const char *role)
{
    char auth[256], body[256];
    bearer(auth, sizeof(auth));
    snprintf(body, sizeof(body),
             "{\"email\":\"%s\",\"password\":\"password-of-%s\",\"role\":\"%s\"}", email, role,
             role);
    assert_int_equal(status_of("POST", "/api/v1/users", auth, body), 201);
}

static void test_login_and_cookie(void **state)
{
    (void)state;
    struct http_response r;
    struct session s;
    assert_int_equal(login("admin@localhost", F->password, &s, &r), 201);
    char sc[512];
    assert_non_null(http_header(&r, "set-cookie", sc, sizeof(sc)));
    assert_non_null(strstr(sc, "; HttpOnly"));
    assert_non_null(strstr(sc, "; SameSite=Strict"));
    assert_non_null(strstr(sc, "; Path=/"));
    assert_int_equal(strlen(s.token), 64);
    assert_int_equal(strlen(s.csrf), 64);
    assert_string_not_equal(s.token, s.csrf);
    json_t *doc = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "role")), "admin");
    json_decref(doc);
    http_response_free(&r);

    /* GET /api/v1/session tells who is logged in */
    assert_int_equal(req("GET", "/api/v1/session", s.cookie, NULL, &r), 200);
    doc = json_loads(r.body, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(doc, "email")), "admin@localhost");
    assert_string_equal(json_string_value(json_object_get(doc, "csrf_token")), s.csrf);
    json_decref(doc);
    http_response_free(&r);

    /* a second login is a new session id */
    struct session s2;
    assert_int_equal(login("ADMIN@localhost", F->password, &s2, NULL), 201);
    assert_string_not_equal(s.token, s2.token);

    /* the database holds the id's hash, never the id */
    char db[512];
    snprintf(db, sizeof(db), "%s/abacus.db", F->data);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT token_hash FROM sessions", -1, &st, NULL),
                     SQLITE_OK);
    int rows = 0;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *th = (const char *)sqlite3_column_text(st, 0);
        assert_string_not_equal(th, s.token);
        assert_string_not_equal(th, s2.token);
        assert_int_equal(strlen(th), 64);
        rows++;
    }
    assert_int_equal(rows, 2);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(h, "SELECT password_hash FROM users", -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(strncmp((const char *)sqlite3_column_text(st, 0), "$argon2id$", 10), 0);
    sqlite3_finalize(st);
    sqlite3_close(h);

    /* wrong password and unknown email: the same status and message */
    char m1[256], m2[256];
    assert_int_equal(login("admin@localhost", "wrong", &s2, &r), 401);
    snprintf(m1, sizeof(m1), "%s", r.body);
    http_response_free(&r);
    assert_int_equal(login("nobody@localhost", "wrong", &s2, &r), 401);
    snprintf(m2, sizeof(m2), "%s", r.body);
    http_response_free(&r);
    assert_string_equal(m1, m2);
    assert_null(strstr(m1, "nobody"));

    /* a made-up cookie is nobody */
    assert_int_equal(status_of("GET", "/api/v1/experiments",
                               "Cookie: abacus_session=0000000000000000000000000000000000000000"
                               "000000000000000000000000\r\n",
                               NULL),
                     401);
    assert_int_equal(status_of("GET", "/api/v1/experiments", NULL, NULL), 401);
    assert_int_equal(status_of("GET", "/api/v1/session", NULL, NULL), 401);
}

static void test_csrf(void **state)
{
    (void)state;
    struct session s;
    assert_int_equal(login("admin@localhost", F->password, &s, NULL), 201);
    const char *metric = "{\"key\":\"m1\",\"type\":\"binomial\",\"event\":\"e\"}";
    assert_int_equal(status_of("GET", "/api/v1/experiments", s.cookie, NULL), 200);
    assert_int_equal(status_of("POST", "/api/v1/metrics", s.cookie, metric), 403);
    char wrong[400], flipped[80];
    snprintf(flipped, sizeof(flipped), "%s", s.csrf);
    flipped[63] = flipped[63] == '0' ? '1' : '0'; /* one digit off */
    snprintf(wrong, sizeof(wrong), "%sX-CSRF-Token: %s\r\n", s.cookie, flipped);
    assert_int_equal(status_of("POST", "/api/v1/metrics", wrong, metric), 403);
    char shortt[300];
    snprintf(shortt, sizeof(shortt), "%sX-CSRF-Token: %.10s\r\n", s.cookie, s.csrf);
    assert_int_equal(status_of("POST", "/api/v1/metrics", shortt, metric), 403);
    /* another session's token does not fit this session */
    struct session other;
    assert_int_equal(login("admin@localhost", F->password, &other, NULL), 201);
    char mixed[400];
    snprintf(mixed, sizeof(mixed), "%sX-CSRF-Token: %s\r\n", s.cookie, other.csrf);
    assert_int_equal(status_of("POST", "/api/v1/metrics", mixed, metric), 403);
    assert_int_equal(status_of("DELETE", "/api/v1/session", s.cookie, NULL), 403);
    assert_int_equal(status_of("POST", "/api/v1/metrics", s.both, metric), 201);
    /* the audit log names the user */
    struct http_response r;
    char auth[256];
    bearer(auth, sizeof(auth));
    assert_int_equal(req("GET", "/api/v1/audit?entity_type=metric", auth, NULL, &r), 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    json_t *e = json_array_get(json_object_get(doc, "entries"), 0);
    assert_string_equal(json_string_value(json_object_get(e, "actor")), "user:admin@localhost");
    assert_string_equal(json_string_value(json_object_get(e, "action")), "metric.create");
    json_decref(doc);
    http_response_free(&r);
}

static void test_roles(void **state)
{
    (void)state;
    create_user("ed@example.com", "editor");
    create_user("vi@example.com", "viewer");
    struct session ad, ed, vi;
    assert_int_equal(login("admin@localhost", F->password, &ad, NULL), 201);
    assert_int_equal(login("ed@example.com", "password-of-editor", &ed, NULL), 201);
    assert_int_equal(login("vi@example.com", "password-of-viewer", &vi, NULL), 201);
#define METRIC_BODY "{\"key\":\"m-%s\",\"type\":\"binomial\",\"event\":\"e\"}"
    char body[128];
    const char *exp = "{\"key\":\"e1\",\"variants\":[{\"key\":\"a\"},{\"key\":\"b\"}],"
                      "\"metrics\":[{\"key\":\"m-ed\"}]}";
    /* viewer: reads everything but users and keys, changes nothing */
    assert_int_equal(status_of("GET", "/api/v1/experiments", vi.cookie, NULL), 200);
    assert_int_equal(status_of("GET", "/api/v1/audit", vi.cookie, NULL), 200);
    snprintf(body, sizeof(body), METRIC_BODY, "vi");
    assert_int_equal(status_of("POST", "/api/v1/metrics", vi.both, body), 403);
    assert_int_equal(status_of("POST", "/api/v1/layers", vi.both, "{\"key\":\"l\"}"), 403);
    assert_int_equal(status_of("POST", "/api/v1/snapshots", vi.both, NULL), 403);
    assert_int_equal(status_of("GET", "/api/v1/users", vi.cookie, NULL), 403);
    assert_int_equal(status_of("GET", "/api/v1/client-keys", vi.cookie, NULL), 403);
    /* editor: experiments, metrics, layers, publishing; not users or keys */
    snprintf(body, sizeof(body), METRIC_BODY, "ed");
    assert_int_equal(status_of("POST", "/api/v1/metrics", ed.both, body), 201);
    assert_int_equal(status_of("POST", "/api/v1/experiments", ed.both, exp), 201);
    assert_int_equal(status_of("PUT", "/api/v1/experiments/e1", vi.both,
                               "{\"version\":1,\"name\":\"x\"}"),
                     403);
    assert_int_equal(status_of("POST", "/api/v1/experiments/e1/start", vi.both, NULL), 403);
    assert_int_equal(status_of("POST", "/api/v1/experiments/e1/start", ed.both, NULL), 200);
    assert_int_equal(status_of("POST", "/api/v1/snapshots", ed.both, NULL), 201);
    assert_int_equal(status_of("GET", "/api/v1/users", ed.cookie, NULL), 403);
    assert_int_equal(status_of("POST", "/api/v1/users", ed.both,
                               "{\"email\":\"x@y.z\",\"password\":\"long enough pw\"}"),
                     403);
    assert_int_equal(status_of("POST", "/api/v1/client-keys", ed.both, NULL), 403);
    /* admin: users and keys */
    assert_int_equal(status_of("POST", "/api/v1/client-keys", ad.both, NULL), 201);
    assert_int_equal(status_of("POST", "/api/v1/users", ad.both,
                               "{\"email\":\"x@y.z\",\"password\":\"long enough pw\"}"),
                     201);
    assert_int_equal(status_of("POST", "/api/v1/users", ad.both,
                               "{\"email\":\"X@Y.Z\",\"password\":\"long enough pw\"}"),
                     409);
    struct http_response r;
    assert_int_equal(req("GET", "/api/v1/users", ad.cookie, NULL, &r), 200);
    assert_null(strstr(r.body, "argon2"));
    assert_null(strstr(r.body, "password"));
    assert_non_null(strstr(r.body, "\"x@y.z\""));
    http_response_free(&r);
    /* the Bearer admin key still works and acts as an admin */
    char auth[256];
    bearer(auth, sizeof(auth));
    assert_int_equal(status_of("GET", "/api/v1/users", auth, NULL), 200);
}

static void test_timeouts(void **state)
{
    (void)state;
    struct session s;
    /* idle: unused for the idle time, the session ends */
    assert_int_equal(login("admin@localhost", F->password, &s, NULL), 201);
    ab_clock_fixed_advance_ms(&F->clock, (IDLE_S - 1) * 1000);
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 200);
    ab_clock_fixed_advance_ms(&F->clock, (IDLE_S - 1) * 1000); /* used 1 s before: alive */
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 200);
    ab_clock_fixed_advance_ms(&F->clock, IDLE_S * 1000);
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 401);
    ab_clock_fixed_advance_ms(&F->clock, -IDLE_S * 1000); /* ended stays ended */
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 401);
    ab_clock_fixed_advance_ms(&F->clock, IDLE_S * 1000);
    /* absolute: used all the time, it still ends MAX_S after login */
    assert_int_equal(login("admin@localhost", F->password, &s, NULL), 201);
    int64_t used = 0;
    while (used + IDLE_S / 2 < MAX_S) {
        ab_clock_fixed_advance_ms(&F->clock, IDLE_S / 2 * 1000);
        used += IDLE_S / 2;
        assert_int_equal(status_of("GET", "/api/v1/experiments", s.cookie, NULL), 200);
    }
    ab_clock_fixed_advance_ms(&F->clock, (MAX_S - used) * 1000);
    assert_int_equal(status_of("GET", "/api/v1/experiments", s.cookie, NULL), 401);
}

static void test_logout(void **state)
{
    (void)state;
    struct session s;
    assert_int_equal(login("admin@localhost", F->password, &s, NULL), 201);
    struct http_response r;
    assert_int_equal(req("DELETE", "/api/v1/session", s.both, NULL, &r), 200);
    char sc[256];
    assert_non_null(http_header(&r, "set-cookie", sc, sizeof(sc)));
    assert_non_null(strstr(sc, "Max-Age=0"));
    http_response_free(&r);
    /* the server forgot it: replaying the old cookie is refused */
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 401);
    assert_int_equal(status_of("POST", "/api/v1/layers", s.both, "{\"key\":\"l2\"}"), 401);
}

static void test_throttle(void **state)
{
    (void)state;
    struct session s;
    struct http_response r;
    for (int i = 0; i < LIMIT_EMAIL; i++)
        assert_int_equal(login("admin@localhost", "wrong", &s, NULL), 401);
    /* over the limit: even the right password waits */
    assert_int_equal(login("admin@localhost", F->password, &s, &r), 429);
    char ra[32];
    assert_non_null(http_header(&r, "retry-after", ra, sizeof(ra)));
    assert_string_equal(ra, "900");
    http_response_free(&r);
    /* another account from the same address still may, until the address's limit */
    create_user("other@example.com", "viewer");
    assert_int_equal(login("other@example.com", "password-of-viewer", &s, NULL), 201);
    ab_clock_fixed_advance_ms(&F->clock, 15 * 60 * 1000);
    assert_int_equal(login("admin@localhost", F->password, &s, NULL), 201);
    /* the address: failures spread over many emails */
    char email[64];
    for (int i = 0; i < LIMIT_IP; i++) {
        snprintf(email, sizeof(email), "probe%d@example.com", i);
        assert_int_equal(login(email, "wrong", &s, NULL), 401);
    }
    assert_int_equal(login("other@example.com", "password-of-viewer", &s, NULL), 429);
    ab_clock_fixed_advance_ms(&F->clock, 15 * 60 * 1000);
    assert_int_equal(login("other@example.com", "password-of-viewer", &s, NULL), 201);
}

static void test_disabled_user(void **state)
{
    (void)state;
    create_user("gone@example.com", "editor");
    struct session s;
    assert_int_equal(login("gone@example.com", "password-of-editor", &s, NULL), 201);
    char auth[256];
    bearer(auth, sizeof(auth));
    struct http_response r;
    assert_int_equal(req("GET", "/api/v1/users", auth, NULL, &r), 200);
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    json_int_t id = 0;
    size_t i;
    json_t *u;
    json_array_foreach(json_object_get(doc, "users"), i, u)
    {
        if (strcmp(json_string_value(json_object_get(u, "email")), "gone@example.com") == 0)
            id = json_integer_value(json_object_get(u, "id"));
    }
    json_decref(doc);
    assert_true(id > 0);
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/users/%lld", (long long)id);
    assert_int_equal(status_of("DELETE", path, auth, NULL), 200);
    assert_int_equal(status_of("GET", "/api/v1/session", s.cookie, NULL), 401);
    assert_int_equal(login("gone@example.com", "password-of-editor", &s, NULL), 401);
}

static void test_user_validation(void **state)
{
    (void)state;
    char auth[256];
    bearer(auth, sizeof(auth));
    assert_int_equal(status_of("POST", "/api/v1/users", auth,
                               "{\"email\":\"a@b.c\",\"password\":\"short\"}"),
                     400);
    assert_int_equal(status_of("POST", "/api/v1/users", auth,
                               "{\"email\":\"a@b.c\",\"password\":\"long enough pw\",\"role\":"
                               "\"owner\"}"),
                     400);
    assert_int_equal(status_of("POST", "/api/v1/session", NULL, "{\"email\":\"a@b.c\"}"), 400);
    assert_int_equal(status_of("POST", "/api/v1/session", NULL, "[1]"), 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_login_and_cookie, setup, teardown),
        cmocka_unit_test_setup_teardown(test_csrf, setup, teardown),
        cmocka_unit_test_setup_teardown(test_roles, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeouts, setup, teardown),
        cmocka_unit_test_setup_teardown(test_logout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_throttle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disabled_user, setup, teardown),
        cmocka_unit_test_setup_teardown(test_user_validation, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
