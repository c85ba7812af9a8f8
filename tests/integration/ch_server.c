/*
 * A clickhouse-server per test (see ch_server.h). The binary is CLICKHOUSE_SERVER (found by
 * cmake). Ports: three distinct free loopback ports, picked by binding port 0.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "ch_server.h"
#include "harness.h"

#ifndef CLICKHOUSE_SERVER
#define CLICKHOUSE_SERVER "/usr/sbin/clickhouse-server"
#endif

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* Three different free ports (held open together while picked, so they differ). */
static int free_ports(uint16_t *a, uint16_t *b, uint16_t *c)
{
    int fds[3];
    uint16_t ports[3];
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {0};
        sa.sin_family = AF_INET;
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sa);
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
            getsockname(fds[i], (struct sockaddr *)&sa, &len) != 0)
            return -1;
        ports[i] = ntohs(sa.sin_port);
    }
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    *a = ports[0];
    *b = ports[1];
    *c = ports[2];
    return 0;
}

static int write_config(struct ch_server *s)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/config.xml", s->dir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp,
            "<?xml version=\"1.0\"?>\n<yandex>\n"
            "  <logger><level>warning</level><log>%s/server.log</log>"
            "<errorlog>%s/error.log</errorlog><console>0</console></logger>\n"
            "  <listen_host>127.0.0.1</listen_host>\n"
            "  <http_port>%u</http_port>\n  <tcp_port>%u</tcp_port>\n"
            "  <interserver_http_port>%u</interserver_http_port>\n"
            "  <path>%s/data/</path>\n  <tmp_path>%s/tmp/</tmp_path>\n"
            "  <user_files_path>%s/user_files/</user_files_path>\n"
            "  <format_schema_path>%s/format_schemas/</format_schema_path>\n"
            "  <mark_cache_size>67108864</mark_cache_size>\n"
            "  <uncompressed_cache_size>67108864</uncompressed_cache_size>\n"
            "  <max_concurrent_queries>16</max_concurrent_queries>\n"
            "  <users><default><password></password><networks><ip>127.0.0.1</ip></networks>"
            "<profile>default</profile><quota>default</quota></default></users>\n"
            "  <profiles><default><max_memory_usage>1000000000</max_memory_usage>"
            "<max_threads>2</max_threads><log_queries>1</log_queries></default></profiles>\n"
            "  <query_log><database>system</database><table>query_log</table>"
            "<flush_interval_milliseconds>500</flush_interval_milliseconds></query_log>\n"
            "  <quotas><default></default></quotas>\n%s\n"
            "</yandex>\n",
            s->dir, s->dir, (unsigned)s->http_port, (unsigned)s->tcp_port,
            (unsigned)s->interserver_port, s->dir, s->dir, s->dir, s->dir, s->extra);
    return fclose(fp) == 0 ? 0 : -1;
}

int ch_init(struct ch_server *s)
{
    if (s->dir[0] != '\0')
        return 0;
    return make_temp_dir(s->dir) == 0 &&
                   free_ports(&s->http_port, &s->tcp_port, &s->interserver_port) == 0
               ? 0
               : -1;
}

int ch_start(struct ch_server *s)
{
    if (ch_init(s) != 0)
        return -1;
    if (!s->configured) {
        if (write_config(s) != 0)
            return -1;
        s->configured = 1;
    }
    char cfg[600], out[600];
    snprintf(cfg, sizeof(cfg), "--config-file=%s/config.xml", s->dir);
    snprintf(out, sizeof(out), "%s/stdout.log", s->dir);
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(out, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execl(CLICKHOUSE_SERVER, "clickhouse-server", cfg, (char *)NULL);
        _exit(127);
    }
    s->pid = pid;
    for (int waited = 0; waited < 60000; waited += 100) {
        struct http_response r;
        if (http_do(s->http_port, "GET", "/ping", NULL, NULL, 0, &r) == 0 && r.status == 200) {
            http_response_free(&r);
            return 0;
        }
        http_response_free(&r);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            s->pid = 0;
            break;
        }
        sleep_ms(100);
    }
    fprintf(stderr, "clickhouse-server did not start (see %s/error.log)\n", s->dir);
    ch_stop(s);
    return -1;
}

void ch_stop(struct ch_server *s)
{
    if (s->pid <= 0)
        return;
    kill(s->pid, SIGTERM);
    int status;
    for (int waited = 0; waited < 30000; waited += 50) {
        if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
            s->pid = 0;
            return;
        }
        sleep_ms(50);
    }
    kill(s->pid, SIGKILL);
    waitpid(s->pid, &status, 0);
    s->pid = 0;
}

void ch_cleanup(struct ch_server *s)
{
    ch_stop(s);
    if (s->dir[0] != '\0')
        remove_tree(s->dir);
    s->dir[0] = '\0';
    s->configured = 0;
}

int ch_query(const struct ch_server *s, const char *db, const char *query, char **out)
{
    char path[200];
    snprintf(path, sizeof(path), "/?database=%s", db != NULL ? db : "default");
    struct http_response r;
    if (out != NULL)
        *out = NULL;
    /* HTTP/1.0: ClickHouse then answers unchunked and closes, which the harness reads */
    size_t qlen = strlen(query), cap = qlen + 512;
    char *req = malloc(cap);
    int n = snprintf(req, cap,
                     "POST %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                     "Content-Length: %zu\r\n\r\n%s",
                     path, qlen, query);
    int rc = http_raw(s->http_port, req, (size_t)n, &r);
    free(req);
    if (rc != 0) {
        http_response_free(&r);
        return 0;
    }
    if (out != NULL) {
        *out = r.body;
        r.body = NULL;
    } else if (r.status != 200) {
        fprintf(stderr, "ClickHouse %d: %s\n", r.status, r.body);
    }
    http_response_free(&r);
    return r.status;
}

long long ch_count(const struct ch_server *s, const char *db, const char *query)
{
    char *body = NULL;
    long long v = -1;
    if (ch_query(s, db, query, &body) == 200 && body != NULL)
        v = strtoll(body, NULL, 10);
    else if (body != NULL)
        fprintf(stderr, "ClickHouse: %s: %s\n", query, body);
    free(body);
    return v;
}
