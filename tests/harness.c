/*
 * Test harness (see harness.h). Plain POSIX; blocking sockets with a receive timeout so that a
 * misbehaving server fails a test instead of hanging it.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#ifndef ABACUS_BIN
#define ABACUS_BIN "abacus"
#endif

int http_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
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

static void send_all(int fd, const char *p, size_t len)
{
    while (len > 0) {
        ssize_t w = send(fd, p, len, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return; /* the server may answer and close before reading everything */
        p += w;
        len -= (size_t)w;
    }
}

void http_response_free(struct http_response *r)
{
    free(r->body);
    r->body = NULL;
}

const char *http_header(const struct http_response *r, const char *name, char *buf, size_t len)
{
    size_t n = strlen(name);
    const char *line = strstr(r->head, "\r\n");
    while (line != NULL && line[2] != '\0') {
        line += 2;
        if (strncasecmp(line, name, n) == 0 && line[n] == ':') {
            const char *v = line + n + 1;
            while (*v == ' ')
                v++;
            const char *end = strstr(v, "\r\n");
            size_t vlen = end != NULL ? (size_t)(end - v) : strlen(v);
            if (vlen >= len)
                vlen = len - 1;
            memcpy(buf, v, vlen);
            buf[vlen] = '\0';
            return buf;
        }
        line = strstr(line, "\r\n");
    }
    return NULL;
}

int http_read_response(int fd, struct http_response *out)
{
    memset(out, 0, sizeof(*out));
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    size_t off = 0; /* where the body starts (an offset: buf moves as it grows); 0: not yet */
    long content_length = -1;
    while (1) {
        if (len + 4096 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t r = recv(fd, buf + len, cap - len - 1, 0);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        len += (size_t)r;
        buf[len] = '\0';
        const char *head_end = off == 0 ? strstr(buf, "\r\n\r\n") : NULL;
        if (head_end != NULL) {
            size_t hl = (size_t)(head_end - buf) + 2;
            off = hl + 2;
            if (hl >= sizeof(out->head))
                hl = sizeof(out->head) - 1;
            memcpy(out->head, buf, hl);
            out->head[hl] = '\0';
            char v[32];
            if (http_header(out, "content-length", v, sizeof(v)) != NULL)
                content_length = strtol(v, NULL, 10);
        }
        if (off != 0 && content_length >= 0 && len - off >= (size_t)content_length)
            break;
    }
    if (off == 0) {
        free(buf);
        return -1;
    }
    sscanf(out->head, "HTTP/1.%*d %d", &out->status);
    out->body_len = content_length >= 0 ? (size_t)content_length : len - off;
    if (out->body_len > len - off)
        out->body_len = len - off;
    out->body = malloc(out->body_len + 1);
    memcpy(out->body, buf + off, out->body_len);
    out->body[out->body_len] = '\0';
    free(buf);
    return out->status > 0 ? 0 : -1;
}

int http_raw(uint16_t port, const char *raw, size_t len, struct http_response *out)
{
    memset(out, 0, sizeof(*out));
    int fd = http_connect(port);
    if (fd < 0)
        return -1;
    send_all(fd, raw, len);
    int rc = http_read_response(fd, out);
    close(fd);
    return rc;
}

int http_do(uint16_t port, const char *method, const char *path, const char *ctype,
            const char *body, size_t body_len, struct http_response *out)
{
    size_t cap = body_len + 1024 + strlen(path);
    char *req = malloc(cap);
    int n = snprintf(req, cap, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n",
                     method, path);
    if (ctype != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Content-Type: %s\r\n", ctype);
    if (body != NULL)
        n += snprintf(req + n, cap - (size_t)n, "Content-Length: %zu\r\n", body_len);
    n += snprintf(req + n, cap - (size_t)n, "\r\n");
    if (body != NULL) {
        memcpy(req + n, body, body_len);
        n += (int)body_len;
    }
    int rc = http_raw(port, req, (size_t)n, out);
    free(req);
    return rc;
}

int make_temp_dir(char *dir)
{
    const char *base = getenv("TMPDIR");
    snprintf(dir, 256, "%s/abacus-test-XXXXXX", base != NULL ? base : "/tmp");
    return mkdtemp(dir) != NULL ? 0 : -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void remove_tree(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

void abacus_log(const struct abacus_proc *p, char *buf, size_t len)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/log", p->dir);
    buf[0] = '\0';
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        return;
    size_t n = fread(buf, 1, len - 1, fp);
    buf[n] = '\0';
    fclose(fp);
}

int abacus_spawn(struct abacus_proc *p, const char *const *args)
{
    p->pid = 0;
    p->port = 0;
    if (p->dir[0] == '\0' && make_temp_dir(p->dir) != 0)
        return -1;
    char portfile[512], logfile[512];
    snprintf(portfile, sizeof(portfile), "%s/port", p->dir);
    snprintf(logfile, sizeof(logfile), "%s/log", p->dir);
    unlink(portfile);
    const char *argv[40] = {ABACUS_BIN};
    int argc = 1;
    for (int i = 0; args[i] != NULL && argc < 35; i++)
        argv[argc++] = args[i];
    if (strcmp(args[0], "up") == 0)
        argv[argc++] = "--no-demo"; /* tests start from an empty platform */
    argv[argc++] = "--port";
    argv[argc++] = "0";
    argv[argc++] = "--port-file";
    argv[argc++] = portfile;
    argv[argc] = NULL;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(logfile, O_WRONLY | O_CREAT | O_APPEND, 0600);
        int devnull = open("/dev/null", O_RDWR);
        dup2(devnull, 0);
        dup2(fd, 1);
        dup2(fd, 2);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    p->pid = pid;
    for (int waited = 0; waited < 20000; waited += 20) {
        FILE *fp = fopen(portfile, "r");
        if (fp != NULL) {
            unsigned port = 0;
            int got = fscanf(fp, "%u", &port);
            fclose(fp);
            if (got == 1 && port > 0) {
                p->port = (uint16_t)port;
                return 0;
            }
        }
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            p->pid = 0;
            break;
        }
        sleep_ms(20);
    }
    char log[8192];
    abacus_log(p, log, sizeof(log));
    fprintf(stderr, "abacus did not start; its log:\n%s\n", log);
    if (p->pid > 0)
        abacus_stop(p, SIGKILL, 5000);
    return -1;
}

int abacus_start(struct abacus_proc *p, const char *const *extra)
{
    memset(p, 0, sizeof(*p));
    if (make_temp_dir(p->dir) != 0)
        return -1;
    char data[512];
    snprintf(data, sizeof(data), "%s/data", p->dir);
    const char *args[32] = {"up", "--data-dir", data, "--threads", "2"};
    int n = 5;
    for (int i = 0; extra != NULL && extra[i] != NULL && n < 31; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    return abacus_spawn(p, args);
}

int abacus_stop(struct abacus_proc *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill(p->pid, sig);
    int status = 0;
    for (int waited = 0; waited <= timeout_ms; waited += 10) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid) {
            p->pid = 0;
            if (WIFEXITED(status))
                return WEXITSTATUS(status);
            return 128 + WTERMSIG(status);
        }
        sleep_ms(10);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->pid = 0;
    return -1;
}

void abacus_cleanup(struct abacus_proc *p)
{
    if (p->pid > 0)
        abacus_stop(p, SIGKILL, 5000);
    if (p->dir[0] != '\0')
        remove_tree(p->dir);
    p->dir[0] = '\0';
}

int run_command(const char *const *argv, char *out, size_t outlen)
{
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDONLY);
        dup2(devnull, 0);
        dup2(pipefd[1], 1);
        dup2(pipefd[1], 2);
        close(pipefd[0]);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t len = 0;
    ssize_t r;
    while ((r = read(pipefd[0], out + len, outlen - 1 - len)) > 0 && len + 1 < outlen)
        len += (size_t)r;
    char sink[4096];
    while (r > 0 && (r = read(pipefd[0], sink, sizeof(sink))) > 0)
        ;
    out[len] = '\0';
    close(pipefd[0]);
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
