/*
 * A real clickhouse-server (Debian's, 18.16) for integration tests: started with a configuration
 * written into a temp dir (loopback only, free HTTP, native and interserver ports, data under the
 * temp dir, small caches), waited for on /ping, stopped by its PID. Plus a few helpers to query it
 * over HTTP with the test harness's client.
 */
#ifndef ABACUS_TEST_CH_SERVER_H
#define ABACUS_TEST_CH_SERVER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct ch_server {
    pid_t pid;
    uint16_t http_port, tcp_port, interserver_port;
    char dir[256]; /* temp dir: config.xml, data/, logs */
    char extra[2048]; /* more configuration inside <yandex> (e.g. remote_servers), or "" */
    int configured;   /* config.xml written */
};

/* Makes the temp dir and picks the ports (ch_start does it when not done yet). */
int ch_init(struct ch_server *s);

/* Writes the configuration into a fresh temp dir (first call) and starts the server; waits up to
 * 60 s for /ping. Returns 0, or -1 (its log is printed). A restart keeps dir and ports. */
int ch_start(struct ch_server *s);

/* SIGTERM, then SIGKILL after 30 s; waits for the PID. */
void ch_stop(struct ch_server *s);

/* Stops the server and removes its temp dir. */
void ch_cleanup(struct ch_server *s);

/* Runs query (POST body) in database db (NULL: default); the answer body (malloc'd, the caller's)
 * into *out when out is not NULL. Returns the HTTP status (0 when unreachable). */
int ch_query(const struct ch_server *s, const char *db, const char *query, char **out);

/* The first number of a one-value query's answer, or -1. */
long long ch_count(const struct ch_server *s, const char *db, const char *query);

#endif
