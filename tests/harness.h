/*
 * Test harness shared by unit and integration tests: a minimal HTTP/1.1 client over loopback
 * sockets (raw bytes in, parsed status/headers/body out), and helpers to run the real abacus
 * binary in a temporary data directory and stop it by its PID.
 */
#ifndef ABACUS_TEST_HARNESS_H
#define ABACUS_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct http_response {
    int status;        /* 0 when no response was read */
    char head[32768];  /* status line and headers, NUL-terminated */
    char *body;        /* malloc'd, NUL-terminated; free with http_response_free */
    size_t body_len;
};

/*
 * Sends raw[0..len) to 127.0.0.1:port, half-closes nothing, and reads one response (the body by
 * Content-Length, or until the server closes). Returns 0 when a status line was read.
 */
int http_raw(uint16_t port, const char *raw, size_t len, struct http_response *out);

/* "METHOD path" with Connection: close and an optional body (Content-Type when ctype). */
int http_do(uint16_t port, const char *method, const char *path, const char *ctype,
            const char *body, size_t body_len, struct http_response *out);

/* Value of response header name (case-insensitive) copied into buf, or NULL. */
const char *http_header(const struct http_response *r, const char *name, char *buf, size_t len);

void http_response_free(struct http_response *r);

/* A connected socket to 127.0.0.1:port, or -1. */
int http_connect(uint16_t port);

/* Reads one response from fd (keep-alive aware: stops after Content-Length bytes). */
int http_read_response(int fd, struct http_response *out);

struct abacus_proc {
    pid_t pid;
    uint16_t port;
    char dir[256];     /* temp dir: data/, port, log */
};

/* Makes a fresh temp directory into dir (at least 256 bytes). */
int make_temp_dir(char *dir);

/* Removes a directory tree. */
void remove_tree(const char *dir);

/*
 * Starts `abacus up --data-dir DIR/data --port 0 --port-file DIR/port --threads 2` plus extra
 * (NULL-terminated, may be NULL) in a fresh temp dir, stderr to DIR/log; waits until it listens.
 * Returns 0, or -1 (the log is printed).
 */
int abacus_start(struct abacus_proc *p, const char *const *extra);

/*
 * Starts `abacus ARGS... --port 0 --port-file DIR/port` (plus --no-demo for "up": tests start
 * from an empty platform) in p->dir (which the caller made with
 * make_temp_dir, or "" for a fresh one), stderr to DIR/log; waits until it listens.
 */
int abacus_spawn(struct abacus_proc *p, const char *const *args);

/*
 * Sends sig to the process and waits up to timeout_ms for it to exit. Returns its exit code,
 * 128+signal when killed by one, or -1 when it did not exit in time (it is then SIGKILLed).
 */
int abacus_stop(struct abacus_proc *p, int sig, int timeout_ms);

/* The process's log (stderr) into buf. */
void abacus_log(const struct abacus_proc *p, char *buf, size_t len);

/* Removes the temp dir. */
void abacus_cleanup(struct abacus_proc *p);

/*
 * Runs argv (argv[0] a path) to completion with stdout+stderr captured into out; returns the exit
 * code (128+signal when killed), -1 when it could not run.
 */
int run_command(const char *const *argv, char *out, size_t outlen);

#endif
