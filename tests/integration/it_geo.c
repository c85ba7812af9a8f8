/*
 * The geo test: one control plane (`abacus web`), two regional mirrors that are real HTTP caches
 * (Debian's nginx as a caching reverse proxy, each with its own prefix and config under the
 * test's temp dir), three assign nodes and a regional collector (`abacus collect --snapshot-url`)
 * that poll the mirrors, never the control plane. A publish reaches every node and the collector
 * within 2 of their polls, each node's answers carry one consistent, never decreasing version,
 * and nodes on the same version answer identically; the collector takes the ingest key that
 * version brought. With the control plane killed, the nodes keep answering and the collector
 * keeps storing from their snapshot while its age grows, the mirrors keep serving the cached
 * file, and a restarted node and a restarted collector serve from their cache dirs.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
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
#include "abacus/snapshot.h"
#include "harness.h"

#define NGINX "/usr/sbin/nginx"
#define NNODES 3

struct mirror {
    pid_t pid;
    uint16_t port;
    char prefix[600];
};

static char g_dir[256];
static char g_key[128];
static struct abacus_proc g_cp;
static struct mirror g_mirror[2];
static struct abacus_proc g_nodes[NNODES];
static struct abacus_proc g_coll; /* the regional collector, behind the second mirror */

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void start_mirror(struct mirror *m, int index, uint16_t origin)
{
    snprintf(m->prefix, sizeof(m->prefix), "%s/nginx%d", g_dir, index);
    char sub[700];
    mkdir(m->prefix, 0700);
    snprintf(sub, sizeof(sub), "%s/tmp", m->prefix);
    mkdir(sub, 0700);
    snprintf(sub, sizeof(sub), "%s/cache", m->prefix);
    mkdir(sub, 0700);
    m->port = free_port();
    char conf[700];
    snprintf(conf, sizeof(conf), "%s/nginx.conf", m->prefix);
    FILE *fp = fopen(conf, "w");
    assert_non_null(fp);
    const char *p = m->prefix;
    fprintf(fp,
            "daemon off;\nmaster_process on;\nworker_processes 1;\npid %s/nginx.pid;\n"
            "error_log %s/error.log warn;\n%s"
            "events { worker_connections 256; }\n"
            "http {\n"
            "  access_log %s/access.log;\n"
            "  client_body_temp_path %s/tmp/body;\n  proxy_temp_path %s/tmp/proxy;\n"
            "  fastcgi_temp_path %s/tmp/fastcgi;\n  uwsgi_temp_path %s/tmp/uwsgi;\n"
            "  scgi_temp_path %s/tmp/scgi;\n"
            "  proxy_cache_path %s/cache levels=1:2 keys_zone=snapshots:1m max_size=256m "
            "inactive=7d use_temp_path=off;\n"
            "  server {\n"
            "    listen 127.0.0.1:%u;\n"
            "    location /v1/snapshots/ {\n"
            "      proxy_pass http://127.0.0.1:%u;\n"
            "      proxy_http_version 1.1;\n      proxy_set_header Connection \"\";\n"
            "      proxy_connect_timeout 2s;\n"
            "      proxy_cache snapshots;\n      proxy_cache_revalidate on;\n"
            "      proxy_cache_lock on;\n"
            "      proxy_cache_use_stale error timeout updating http_500 http_502 http_503 "
            "http_504;\n"
            "      add_header X-Cache-Status $upstream_cache_status always;\n"
            "    }\n  }\n}\n",
            p, p, geteuid() == 0 ? "user root;\n" : "", p, p, p, p, p, p, p, (unsigned)m->port,
            (unsigned)origin);
    fclose(fp);
    char errlog[700];
    snprintf(errlog, sizeof(errlog), "%s/error.log", p);
    m->pid = fork();
    assert_true(m->pid >= 0);
    if (m->pid == 0) {
        execl(NGINX, NGINX, "-p", p, "-c", conf, "-e", errlog, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 250; i++) {
        int fd = http_connect(m->port);
        if (fd >= 0) {
            close(fd);
            return;
        }
        int status;
        if (waitpid(m->pid, &status, WNOHANG) == m->pid)
            break;
        sleep_ms(20);
    }
    fail_msg("nginx did not start (is it installed? scripts/common.sh installs it); see %s",
             errlog);
}

static void stop_mirror(struct mirror *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGTERM);
    int status;
    waitpid(m->pid, &status, 0);
    m->pid = 0;
}

static int api(uint16_t port, const char *method, const char *path, const char *body,
               struct http_response *r)
{
    char req[4096];
    size_t blen = body != NULL ? strlen(body) : 0;
    int n = snprintf(req, sizeof(req),
                     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     "Authorization: Bearer %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     method, path, g_key, blen, body != NULL ? body : "");
    return http_raw(port, req, (size_t)n, r);
}

static json_t *api_ok(const char *method, const char *path, const char *body, int want)
{
    struct http_response r;
    assert_int_equal(api(g_cp.port, method, path, body, &r), 0);
    if (r.status != want)
        fail_msg("%s %s: %d %s", method, path, r.status, r.body);
    json_t *doc = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    assert_non_null(doc);
    return doc;
}

static double metric(const struct abacus_proc *p, const char *name)
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

/* GET /v1/assign for unit on node i: the body (malloc'd) and the version it carries. */
static char *assign(int i, const char *unit, int64_t *version)
{
    char path[128];
    snprintf(path, sizeof(path), "/v1/assign?experiment=geo-exp&unit=%s", unit);
    struct http_response r;
    assert_int_equal(http_do(g_nodes[i].port, "GET", path, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    json_t *d = json_loads(r.body, 0, NULL);
    assert_non_null(d);
    *version = json_integer_value(json_object_get(d, "snapshot_version"));
    json_decref(d);
    char *body = r.body;
    r.body = NULL;
    return body;
}

/* POST /v1/assign on node i: every assignment carries the answer's one version. */
static int64_t assign_all(int i)
{
    const char *b = "{\"unit\":\"u-consistent\"}";
    struct http_response r;
    assert_int_equal(http_do(g_nodes[i].port, "POST", "/v1/assign", "application/json", b,
                             strlen(b), &r),
                     0);
    assert_int_equal(r.status, 200);
    json_t *d = json_loads(r.body, 0, NULL);
    http_response_free(&r);
    int64_t v = json_integer_value(json_object_get(d, "snapshot_version"));
    size_t k;
    json_t *a;
    json_array_foreach(json_object_get(d, "assignments"), k, a)
        assert_int_equal(json_integer_value(json_object_get(a, "snapshot_version")), v);
    json_decref(d);
    return v;
}

static void start_node(int i, int mirror)
{
    struct abacus_proc *p = &g_nodes[i];
    char url[128], cache[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/snapshots/latest",
             (unsigned)g_mirror[mirror].port);
    snprintf(p->dir, sizeof(p->dir), "%.200s/node%d", g_dir, i);
    mkdir(p->dir, 0700);
    snprintf(cache, sizeof(cache), "%s/cache", p->dir);
    const char *args[] = {"assign", "--snapshot-url", url, "--cache-dir", cache,
                          "--poll-interval", "1", "--threads", "2", NULL};
    assert_int_equal(abacus_spawn(p, args), 0);
}

static void start_collector(int mirror)
{
    char url[128], cache[600], db[600];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/snapshots/latest",
             (unsigned)g_mirror[mirror].port);
    snprintf(g_coll.dir, sizeof(g_coll.dir), "%.200s/collect", g_dir);
    mkdir(g_coll.dir, 0700);
    snprintf(cache, sizeof(cache), "%s/cache", g_coll.dir);
    snprintf(db, sizeof(db), "%s/events.db", g_coll.dir);
    const char *args[] = {"collect", "--db", db, "--snapshot-url", url, "--cache-dir", cache,
                          "--poll-interval", "1", "--threads", "2", NULL};
    assert_int_equal(abacus_spawn(&g_coll, args), 0);
}

/* The status of an exposure of unit sent to the collector with ingest key key. */
static int collect(const char *key, const char *unit)
{
    char path[256], body[256];
    snprintf(path, sizeof(path), "/v1/events?write_key=%s", key);
    snprintf(body, sizeof(body),
             "{\"events\":[{\"id\":\"x-%s\",\"type\":\"exposure\",\"ts\":1000,"
             "\"unit\":\"%s\",\"experiment\":\"geo-exp\",\"variant\":\"treatment\"}]}",
             unit, unit);
    struct http_response r;
    assert_int_equal(http_do(g_coll.port, "POST", path, "application/json", body, strlen(body), &r),
                     0);
    int status = r.status;
    http_response_free(&r);
    return status;
}

/* A new ingest key of the control plane into key (128 bytes). */
static void new_ingest_key(char *key)
{
    json_t *k = api_ok("POST", "/api/v1/ingest-keys", "{\"name\":\"geo\"}", 201);
    snprintf(key, 128, "%s", json_string_value(json_object_get(k, "key")));
    json_decref(k);
    assert_true(key[0] != '\0');
}

static void wait_collector_on(int64_t version)
{
    double v = -1;
    for (int k = 0; k < 600 && (v = metric(&g_coll, "abacus_collect_snapshot_version")) <
                                   (double)version;
         k++)
        sleep_ms(50);
    if (v < (double)version)
        fail_msg("the collector stays on version %g, want %lld", v, (long long)version);
}

static void wait_all_on(int64_t version)
{
    for (int i = 0; i < NNODES; i++) {
        double v = -1;
        for (int k = 0; k < 600 && (v = metric(&g_nodes[i], "abacus_snapshot_version")) <
                                       (double)version;
             k++)
            sleep_ms(50);
        if (v < (double)version)
            fail_msg("node %d stays on version %g, want %lld", i, v, (long long)version);
    }
}

static int setup(void **state)
{
    (void)state;
    memset(&g_cp, 0, sizeof(g_cp));
    memset(g_mirror, 0, sizeof(g_mirror));
    memset(g_nodes, 0, sizeof(g_nodes));
    memset(&g_coll, 0, sizeof(g_coll));
    return make_temp_dir(g_dir);
}

static int teardown(void **state)
{
    (void)state;
    int failed = 0;
    for (int i = 0; i < NNODES; i++)
        if (g_nodes[i].pid > 0 && abacus_stop(&g_nodes[i], SIGTERM, 10000) != 0) {
            fprintf(stderr, "node %d did not exit cleanly\n", i); /* a leak under ASan */
            failed = 1;
        }
    if (g_coll.pid > 0 && abacus_stop(&g_coll, SIGTERM, 10000) != 0) {
        fprintf(stderr, "the collector did not exit cleanly\n");
        failed = 1;
    }
    stop_mirror(&g_mirror[0]);
    stop_mirror(&g_mirror[1]);
    if (g_cp.pid > 0)
        abacus_stop(&g_cp, SIGKILL, 5000);
    remove_tree(g_dir);
    return failed ? -1 : 0;
}

static void test_geo(void **state)
{
    (void)state;
    /* the control plane; automatic publishing is pushed far out so the test publishes itself */
    snprintf(g_cp.dir, sizeof(g_cp.dir), "%.200s/cp", g_dir);
    mkdir(g_cp.dir, 0700);
    char data[600], path[700];
    snprintf(data, sizeof(data), "%s/data", g_cp.dir);
    const char *args[] = {"web", "--data-dir", data, "--threads", "2", "--publish-debounce-ms",
                          "600000", NULL};
    assert_int_equal(abacus_spawn(&g_cp, args), 0);
    snprintf(path, sizeof(path), "%s/admin.key", data);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    assert_non_null(fgets(g_key, sizeof(g_key), fp));
    fclose(fp);
    g_key[strcspn(g_key, "\n")] = '\0';
    json_decref(api_ok("POST", "/api/v1/experiments",
                       "{\"key\":\"geo-exp\",\"variants\":[{\"key\":\"control\"},"
                       "{\"key\":\"treatment\",\"payload\":{\"color\":\"green\"}}]}",
                       201));
    json_decref(api_ok("POST", "/api/v1/experiments/geo-exp/start", NULL, 200));
    char key1[128], key2[128];
    new_ingest_key(key1);
    json_t *p = api_ok("POST", "/api/v1/snapshots", NULL, 201);
    int64_t n = json_integer_value(json_object_get(p, "version"));
    json_decref(p);

    /* two regions, each a caching nginx; nodes 0 and 1 behind the first, node 2 the second */
    start_mirror(&g_mirror[0], 0, g_cp.port);
    start_mirror(&g_mirror[1], 1, g_cp.port);
    start_node(0, 0);
    start_node(1, 0);
    start_node(2, 1);
    start_collector(1);
    wait_all_on(n);
    wait_collector_on(n);
    assert_int_equal(collect(key1, "c1"), 200);

    /* publish N+1 (coverage 0.5 changes answers): every node within 2 of its polls */
    json_decref(api_ok("PUT", "/api/v1/experiments/geo-exp", "{\"version\":2,\"coverage\":0.5}",
                       200));
    new_ingest_key(key2); /* the collector takes it once N+1 reaches it */
    assert_int_equal(collect(key2, "c2"), 401);
    double coll_polls_before = metric(&g_coll, "abacus_collect_snapshot_polls_total");
    double polls_before[NNODES];
    for (int i = 0; i < NNODES; i++)
        polls_before[i] = metric(&g_nodes[i], "abacus_snapshot_polls_total");
    int64_t t0 = mono_ms();
    p = api_ok("POST", "/api/v1/snapshots", NULL, 201);
    assert_int_equal(json_integer_value(json_object_get(p, "version")), n + 1);
    json_decref(p);
    int64_t last[NNODES] = {0}, delay[NNODES] = {0};
    int done = 0;
    for (int k = 0; k < 1200 && done < NNODES; k++) {
        done = 0;
        for (int i = 0; i < NNODES; i++) {
            int64_t v;
            free(assign(i, "u-1", &v));
            assert_true(v == n || v == n + 1); /* one of the two, never older */
            assert_true(v >= last[i]);          /* never backwards */
            assert_int_equal(assign_all(i) >= v, 1);
            if (v == n + 1 && last[i] != n + 1)
                delay[i] = mono_ms() - t0;
            last[i] = v;
            done += v == n + 1;
        }
        sleep_ms(20);
    }
    assert_int_equal(done, NNODES);
    for (int i = 0; i < NNODES; i++) {
        double loaded = metric(&g_nodes[i], "abacus_snapshot_loaded_poll");
        print_message("node %d: version %lld after %lld ms, poll %g (polls before publish: %g)\n",
                      i, (long long)(n + 1), (long long)delay[i], loaded, polls_before[i]);
        assert_true(loaded > 0 && loaded <= polls_before[i] + 2);
    }
    wait_collector_on(n + 1);
    double coll_loaded = metric(&g_coll, "abacus_collect_snapshot_loaded_poll");
    print_message("collector: version %lld at poll %g (polls before publish: %g)\n",
                  (long long)(n + 1), coll_loaded, coll_polls_before);
    assert_true(coll_loaded > 0 && coll_loaded <= coll_polls_before + 2);
    assert_int_equal(collect(key2, "c2"), 200);
    /* the same version answers identically in every region */
    for (int u = 0; u < 40; u++) {
        char unit[16];
        snprintf(unit, sizeof(unit), "u%d", u);
        int64_t v0, v1, v2;
        char *a0 = assign(0, unit, &v0), *a1 = assign(1, unit, &v1), *a2 = assign(2, unit, &v2);
        assert_string_equal(a0, a1);
        assert_string_equal(a0, a2);
        free(a0);
        free(a1);
        free(a2);
    }
    /* the mirrors cached the file: a HIT, the manifest's bytes */
    char file[64];
    snprintf(file, sizeof(file), "/v1/snapshots/%lld.db", (long long)(n + 1));
    struct http_response r;
    assert_int_equal(http_do(g_mirror[0].port, "GET", file, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    char status[32];
    assert_non_null(http_header(&r, "x-cache-status", status, sizeof(status)));
    assert_string_equal(status, "HIT");
    http_response_free(&r);

    /* the control plane dies: nodes answer on, the age of what they serve grows */
    assert_true(abacus_stop(&g_cp, SIGKILL, 5000) >= 0);
    double age[NNODES];
    for (int i = 0; i < NNODES; i++)
        age[i] = metric(&g_nodes[i], "abacus_snapshot_age_seconds");
    for (int i = 0; i < NNODES; i++) {
        double a = age[i];
        for (int k = 0; k < 200 && (a = metric(&g_nodes[i], "abacus_snapshot_age_seconds")) <=
                                       age[i] + 1.0;
             k++)
            sleep_ms(50);
        assert_true(a > age[i] + 1.0);
        int64_t v;
        free(assign(i, "u-2", &v));
        assert_int_equal(v, n + 1);
    }
    for (int i = 0; i < NNODES; i++) {
        double f = -1;
        for (int k = 0; k < 200 &&
                        (f = metric(&g_nodes[i],
                                    "abacus_snapshot_rejected_total{reason=\"fetch\"}")) < 1;
             k++)
            sleep_ms(50);
        assert_true(f >= 1); /* the mirror cannot reach the origin: counted, nothing changes */
    }
    /* the collector stores on, checking against what it has; its snapshot's age grows too */
    double coll_age = metric(&g_coll, "abacus_collect_snapshot_age_seconds");
    assert_int_equal(collect(key2, "c3"), 200);
    double f = -1;
    for (int k = 0; k < 200 &&
                    (f = metric(&g_coll,
                                "abacus_collect_snapshot_rejected_total{reason=\"fetch\"}")) < 1;
         k++)
        sleep_ms(50);
    assert_true(f >= 1);
    assert_true(metric(&g_coll, "abacus_collect_snapshot_age_seconds") > coll_age);
    assert_int_equal((int64_t)metric(&g_coll, "abacus_collect_snapshot_version"), n + 1);
    /* a mirror still serves the immutable file from its cache with the origin gone */
    assert_int_equal(http_do(g_mirror[1].port, "GET", file, NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);

    /* a node restarted while the control plane is down serves from its cache dir at once */
    assert_int_equal(abacus_stop(&g_nodes[2], SIGTERM, 10000), 0);
    start_node(2, 1);
    assert_int_equal(http_do(g_nodes[2].port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    int64_t v;
    free(assign(2, "u-3", &v));
    assert_int_equal(v, n + 1);
    assert_int_equal((int64_t)metric(&g_nodes[2], "abacus_snapshot_loaded_poll"), 0);
    /* so does a collector: ready at once, on N+1, taking the key N+1 brought */
    assert_int_equal(abacus_stop(&g_coll, SIGTERM, 10000), 0);
    start_collector(1);
    assert_int_equal(http_do(g_coll.port, "GET", "/readyz", NULL, NULL, 0, &r), 0);
    assert_int_equal(r.status, 200);
    http_response_free(&r);
    assert_int_equal((int64_t)metric(&g_coll, "abacus_collect_snapshot_version"), n + 1);
    assert_int_equal((int64_t)metric(&g_coll, "abacus_collect_snapshot_loaded_poll"), 0);
    assert_int_equal(collect(key2, "c4"), 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_geo, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
