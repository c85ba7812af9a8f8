/*
 * Helpers shared by the server subcommands: server flags, and serving until a signal.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd.h"

int cmd_parse_int(const char *flag, const char *text, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max) {
        fprintf(stderr, "abacus: --%s must be an integer from %ld to %ld, not '%s'\n", flag, min,
                max, text);
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_server_flag(struct cmd_server_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'L':
        f->listen = arg;
        return 1;
    case 'p':
        return cmd_parse_int("port", arg, 0, 65535, &f->port) == 0 ? 1 : -1;
    case 't':
        return cmd_parse_int("threads", arg, 0, 256, &f->threads) == 0 ? 1 : -1;
    case 'P':
        f->port_file = arg;
        return 1;
    default:
        return 0;
    }
}

void cmd_server_config(const struct cmd_server_flags *f, struct ab_http_config *cfg)
{
    if (f->listen != NULL)
        cfg->listen = f->listen;
    cfg->port = (uint16_t)f->port;
    cfg->threads = (int)f->threads;
}

static int write_port_file(const char *path, uint16_t port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "%u\n", (unsigned)port);
    if (fclose(fp) != 0 || rename(tmp, path) != 0)
        return -1;
    return 0;
}

int cmd_serve(struct ab_http_server *srv, const struct cmd_server_flags *f,
              const struct ab_log *log, const char *what)
{
    return cmd_serve_notify(srv, f, log, what, NULL, NULL);
}

int cmd_serve_notify(struct ab_http_server *srv, const struct cmd_server_flags *f,
                     const struct ab_log *log, const char *what,
                     void (*started)(void *data, uint16_t port), void *data)
{
    struct ab_errinfo ei;
    enum ab_err rc = ab_http_server_start(srv, &ei);
    if (rc != AB_OK) {
        AB_LOG_E(log, "start_failed", "error=%s message=\"%s\"", ab_err_code(rc), ei.message);
        fprintf(stderr, "abacus: %s\n", ei.message);
        return CMD_EXIT_FAIL;
    }
    uint16_t port = ab_http_server_port(srv);
    const char *host = f->listen != NULL ? f->listen : "127.0.0.1";
    AB_LOG_I(log, "listening", "component=%s addr=%s port=%u", what, host, (unsigned)port);
    printf("abacus %s is listening on http://%s:%u/ (Ctrl-C stops it)\n", what, host,
           (unsigned)port);
    fflush(stdout);
    if (f->port_file != NULL && write_port_file(f->port_file, port) != 0) {
        fprintf(stderr, "abacus: cannot write --port-file %s: %s\n", f->port_file,
                strerror(errno));
        ab_http_server_stop(srv);
        ab_http_server_wait(srv);
        return CMD_EXIT_FAIL;
    }
    if (started != NULL)
        started(data, port);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    AB_LOG_I(log, "stopping", "signal=%s", sig == SIGINT ? "SIGINT" : "SIGTERM");
    ab_http_server_stop(srv);
    ab_http_server_wait(srv);
    AB_LOG_I(log, "stopped", "component=%s", what);
    return CMD_EXIT_OK;
}
