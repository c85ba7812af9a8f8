/*
 * bench/collect/load: the three parts of bench/collect/run.
 *   load ceiling DB N        N rows shaped like collected events bulk-inserted straight into
 *                            SQLite (WAL, synchronous=FULL, 1000 rows per transaction, no index,
 *                            no HTTP); prints rows/s.
 *   load ceiling-narrow DB N the same with rows of just an id and a timestamp.
 *   load prefill DB N        N events with random UUIDv4 ids and past timestamps stored into a
 *                            collector's events database (its schema and dedup index), so the
 *                            HTTP run starts against a large table.
 *   load http PORT KEY CONNS SECONDS BATCH [RATE]
 *                            CONNS keep-alive connections (one thread each) POST /v1/events
 *                            batches of BATCH metric events with random UUIDv4 ids and the
 *                            current time for SECONDS, as fast as answers come (closed loop), or
 *                            with RATE > 0 paced to RATE events/s in all (open loop: latency is
 *                            counted from each batch's scheduled time, so falling behind shows);
 *                            prints events acknowledged, events/s, batch latency p50/p99/max and
 *                            the non-200 answers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <sqlite3.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "collect.h"
#include "collect_int.h"

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint64_t xorshift(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void uuid4(uint64_t *rng, char out[37])
{
    uint64_t a = xorshift(rng), b = xorshift(rng);
    a = (a & ~0xF000ULL) | 0x4000ULL;
    b = (b & ~(3ULL << 62)) | (2ULL << 62);
    snprintf(out, 37, "%08x-%04x-%04x-%04x-%012" PRIx64, (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xFFFF), (unsigned)(a & 0xFFFF), (unsigned)(b >> 48),
             (uint64_t)(b & 0xFFFFFFFFFFFFULL));
}

static void die_sqlite(sqlite3 *db, const char *what)
{
    fprintf(stderr, "load: %s: %s\n", what, sqlite3_errmsg(db));
    exit(1);
}

static struct ab_db *open_db(const char *path, enum ab_db_sync sync)
{
    struct ab_db_options opt = {.sync = sync};
    struct ab_db *db = NULL;
    struct ab_errinfo ei;
    if (ab_db_open(path, &opt, &db, &ei) != AB_OK) {
        fprintf(stderr, "load: %s: %s\n", path, ei.message);
        exit(1);
    }
    return db;
}

/* Inserts n event rows; with dedup, through the collector's unique index as store.c does. */
static void insert_rows(sqlite3 *db, long n, long per_tx, int64_t ts0, int dedup, uint64_t seed)
{
    sqlite3_stmt *ins = NULL;
    const char *sql = dedup ? "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, "
                              "received_at, unit, metric, value, source) VALUES (?1, ?2, ?3, "
                              "'metric', ?4, ?4, ?4, ?5, 'purchase', 12.5, 'events') "
                              "ON CONFLICT (client_ts, id_hash) DO NOTHING"
                            : "INSERT INTO events (id, id_hash, fingerprint, type, ts, client_ts, "
                              "received_at, unit, metric, value, source) VALUES (?1, ?2, ?3, "
                              "'metric', ?4, ?4, ?4, ?5, 'purchase', 12.5, 'events')";
    if (sqlite3_prepare_v2(db, sql, -1, &ins, NULL) != SQLITE_OK)
        die_sqlite(db, "prepare");
    uint64_t rng = seed;
    for (long i = 0; i < n; i++) {
        if (i % per_tx == 0 && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
            die_sqlite(db, "begin");
        char id[37], unit[32];
        uuid4(&rng, id);
        snprintf(unit, sizeof(unit), "user-%" PRIu64, xorshift(&rng) % 1000000);
        int64_t h = collect_hash64(id, 36);
        int64_t ts = ts0 + i / 100; /* 100 events per ms */
        sqlite3_bind_text(ins, 1, id, 36, SQLITE_TRANSIENT);
        sqlite3_bind_int64(ins, 2, h);
        sqlite3_bind_int64(ins, 3, (int64_t)xorshift(&rng));
        sqlite3_bind_int64(ins, 4, ts);
        sqlite3_bind_text(ins, 5, unit, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(ins) != SQLITE_DONE)
            die_sqlite(db, "insert");
        sqlite3_reset(ins);
        if ((i % per_tx == per_tx - 1 || i == n - 1) &&
            sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
            die_sqlite(db, "commit");
    }
    sqlite3_finalize(ins);
}

static int cmd_ceiling(const char *path, long n, int narrow)
{
    struct ab_db *adb = open_db(path, AB_DB_SYNC_FULL);
    sqlite3 *db = ab_db_handle(adb);
    struct ab_errinfo ei;
    double t0;
    if (narrow) {
        /* rows of an id and a timestamp, as docs' "about 1,000,000 rows/s" was measured */
        if (ab_db_exec(adb, "CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT, ts INTEGER)",
                       &ei) != AB_OK) {
            fprintf(stderr, "load: %s\n", ei.message);
            return 1;
        }
        sqlite3_stmt *ins = NULL;
        if (sqlite3_prepare_v2(db, "INSERT INTO t (id, ts) VALUES (?1, ?2)", -1, &ins, NULL) !=
            SQLITE_OK)
            die_sqlite(db, "prepare");
        uint64_t rng = 0x1234567887654321ULL;
        t0 = mono_s();
        for (long i = 0; i < n; i++) {
            if (i % 1000 == 0 && sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
                die_sqlite(db, "begin");
            char id[37];
            uuid4(&rng, id);
            sqlite3_bind_text(ins, 1, id, 36, SQLITE_TRANSIENT);
            sqlite3_bind_int64(ins, 2, i);
            if (sqlite3_step(ins) != SQLITE_DONE)
                die_sqlite(db, "insert");
            sqlite3_reset(ins);
            if ((i % 1000 == 999 || i == n - 1) &&
                sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
                die_sqlite(db, "commit");
        }
        sqlite3_finalize(ins);
    } else {
        /* the events table as migrations/events creates it, without its index */
        if (ab_db_exec(adb, collect_migrations[0].sql, &ei) != AB_OK ||
            ab_db_exec(adb, "DROP INDEX events_dedup", &ei) != AB_OK) {
            fprintf(stderr, "load: %s\n", ei.message);
            return 1;
        }
        t0 = mono_s();
        insert_rows(db, n, 1000, wall_ms(), 0, 0x1234567887654321ULL);
    }
    double dt = mono_s() - t0;
    printf("%ld %.3f %.0f\n", n, dt, (double)n / dt);
    ab_db_close(adb);
    return 0;
}

static int cmd_prefill(const char *path, long n)
{
    struct ab_db *adb = open_db(path, AB_DB_SYNC_NORMAL);
    struct ab_errinfo ei;
    if (ab_migrate(adb, collect_migrations, collect_migrations_count, NULL, NULL, &ei) != AB_OK) {
        fprintf(stderr, "load: %s\n", ei.message);
        return 1;
    }
    sqlite3_exec(ab_db_handle(adb), "PRAGMA cache_size=-65536", NULL, NULL, NULL);
    double t0 = mono_s();
    /* timestamps end an hour ago: the HTTP run's events are newer, as live traffic is */
    insert_rows(ab_db_handle(adb), n, 50000, wall_ms() - 3600000 - n / 100, 1,
                0x0DDB1A5E5BAD5EEDULL);
    printf("%ld %.3f\n", n, mono_s() - t0);
    ab_db_close(adb);
    return 0;
}

/* ---------------------------------------------------------------- HTTP load */

struct http_cfg {
    uint16_t port;
    const char *key;
    int batch;
    double end;
    double interval; /* s between one connection's batches; 0 = closed loop */
};

struct conn_result {
    long acked;      /* events acknowledged (accepted + duplicates) */
    long batches;
    long non200;
    long errors;     /* connection errors */
    double *lat;     /* seconds, per acknowledged batch */
    size_t nlat, caplat;
};

static struct http_cfg g_cfg;

static int connect_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/* Reads one response; returns its status and puts "accepted"+"duplicates" in *acked. */
static int read_response(int fd, char *buf, size_t cap, long *acked)
{
    size_t len = 0;
    char *body = NULL;
    long clen = -1;
    while (1) {
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            return -1;
        len += (size_t)r;
        buf[len] = '\0';
        if (body == NULL && (body = strstr(buf, "\r\n\r\n")) != NULL) {
            body += 4;
            const char *cl = strcasestr(buf, "content-length:");
            clen = cl != NULL ? strtol(cl + 15, NULL, 10) : 0;
        }
        if (body != NULL && (long)(len - (size_t)(body - buf)) >= clen)
            break;
        if (len + 1 >= cap)
            return -1;
    }
    int status = 0;
    sscanf(buf, "HTTP/1.%*d %d", &status);
    const char *a = strstr(body, "\"accepted\":"), *d = strstr(body, "\"duplicates\":");
    *acked = (a != NULL ? strtol(a + 11, NULL, 10) : 0) + (d != NULL ? strtol(d + 13, NULL, 10) : 0);
    return status;
}

static void *conn_main(void *arg)
{
    struct conn_result *res = arg;
    uint64_t rng = 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)arg ^ (uint64_t)wall_ms();
    size_t cap = (size_t)g_cfg.batch * 200 + 1024;
    char *body = malloc(cap), *req = malloc(cap + 512), *resp = malloc(65536);
    int fd = -1;
    double next = mono_s() + g_cfg.interval * (double)(xorshift(&rng) % 1000) / 1000.0;
    while (mono_s() < g_cfg.end) {
        double scheduled = mono_s();
        if (g_cfg.interval > 0) {
            scheduled = next;
            next += g_cfg.interval;
            double wait = scheduled - mono_s();
            if (wait > 0)
                usleep((useconds_t)(wait * 1e6));
            if (mono_s() >= g_cfg.end)
                break;
        }
        if (fd < 0 && (fd = connect_to(g_cfg.port)) < 0) {
            res->errors++;
            usleep(10000);
            continue;
        }
        int64_t ts = wall_ms();
        size_t len = (size_t)snprintf(body, cap, "{\"events\":[");
        for (int i = 0; i < g_cfg.batch; i++) {
            char id[37];
            uuid4(&rng, id);
            len += (size_t)snprintf(body + len, cap - len,
                                    "%s{\"id\":\"%s\",\"type\":\"metric\",\"ts\":%" PRId64
                                    ",\"unit\":\"user-%" PRIu64 "\",\"metric\":\"purchase\","
                                    "\"value\":12.5}",
                                    i ? "," : "", id, ts, xorshift(&rng) % 1000000);
        }
        len += (size_t)snprintf(body + len, cap - len, "]}");
        int n = snprintf(req, cap + 512,
                         "POST /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer "
                         "%s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                         g_cfg.key, len);
        memcpy(req + n, body, len);
        double t0 = g_cfg.interval > 0 ? scheduled : mono_s();
        long acked = 0;
        int status = -1;
        if (send_all(fd, req, (size_t)n + len) == 0)
            status = read_response(fd, resp, 65536, &acked);
        double dt = mono_s() - t0;
        if (status < 0) {
            res->errors++;
            close(fd);
            fd = -1;
            continue;
        }
        res->batches++;
        if (status != 200) {
            res->non200++;
            continue;
        }
        res->acked += acked;
        if (res->nlat == res->caplat) {
            res->caplat = res->caplat ? res->caplat * 2 : 4096;
            res->lat = realloc(res->lat, res->caplat * sizeof(*res->lat));
        }
        res->lat[res->nlat++] = dt;
    }
    if (fd >= 0)
        close(fd);
    free(body);
    free(req);
    free(resp);
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmd_http(uint16_t port, const char *key, int conns, double seconds, int batch,
                    double rate)
{
    double interval = rate > 0 ? (double)conns * batch / rate : 0;
    g_cfg = (struct http_cfg){port, key, batch, mono_s() + seconds, interval};
    struct conn_result *res = calloc((size_t)conns, sizeof(*res));
    pthread_t *t = calloc((size_t)conns, sizeof(*t));
    double t0 = mono_s();
    for (int i = 0; i < conns; i++)
        pthread_create(&t[i], NULL, conn_main, &res[i]);
    for (int i = 0; i < conns; i++)
        pthread_join(t[i], NULL);
    double dt = mono_s() - t0;
    long acked = 0, batches = 0, non200 = 0, errors = 0;
    size_t nlat = 0;
    for (int i = 0; i < conns; i++) {
        acked += res[i].acked;
        batches += res[i].batches;
        non200 += res[i].non200;
        errors += res[i].errors;
        nlat += res[i].nlat;
    }
    double *lat = malloc((nlat + 1) * sizeof(*lat));
    size_t k = 0;
    for (int i = 0; i < conns; i++) {
        memcpy(lat + k, res[i].lat, res[i].nlat * sizeof(*lat));
        k += res[i].nlat;
        free(res[i].lat);
    }
    qsort(lat, nlat, sizeof(*lat), cmp_double);
    double p50 = nlat ? lat[nlat / 2] : 0, p99 = nlat ? lat[(size_t)((double)nlat * 0.99)] : 0;
    double max = nlat ? lat[nlat - 1] : 0;
    /* events/s batches p50_ms p99_ms max_ms non200 errors acked seconds */
    printf("%.0f %ld %.2f %.2f %.2f %ld %ld %ld %.2f\n", (double)acked / dt, batches, p50 * 1e3,
           p99 * 1e3, max * 1e3, non200, errors, acked, dt);
    free(lat);
    free(res);
    free(t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "ceiling") == 0)
        return cmd_ceiling(argv[2], strtol(argv[3], NULL, 10), 0);
    if (argc == 4 && strcmp(argv[1], "ceiling-narrow") == 0)
        return cmd_ceiling(argv[2], strtol(argv[3], NULL, 10), 1);
    if (argc == 4 && strcmp(argv[1], "prefill") == 0)
        return cmd_prefill(argv[2], strtol(argv[3], NULL, 10));
    if ((argc == 7 || argc == 8) && strcmp(argv[1], "http") == 0)
        return cmd_http((uint16_t)strtol(argv[2], NULL, 10), argv[3],
                        (int)strtol(argv[4], NULL, 10), strtod(argv[5], NULL),
                        (int)strtol(argv[6], NULL, 10), argc == 8 ? strtod(argv[7], NULL) : 0);
    fprintf(stderr, "usage: load ceiling|ceiling-narrow DB N | load prefill DB N | "
                    "load http PORT KEY CONNS SECONDS BATCH [RATE]\n");
    return 2;
}
