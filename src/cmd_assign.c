/*
 * `abacus assign`: an assign node serving assignments from snapshots that it replicates from a
 * control plane or an HTTP mirror (--snapshot-url MANIFEST --cache-dir DIR), or from a local
 * snapshot file reloaded when a newer one appears (--snapshot-file PATH). Also the assign flags
 * and wiring that `abacus up` reuses.
 */
#include <getopt.h>
#include <stdio.h>
#include "assign.h"
#include "cmd.h"

static void usage(FILE *out)
{
    fputs("usage: abacus assign (--snapshot-url URL --cache-dir DIR | --snapshot-file PATH)\n"
          "                     [--poll-interval SECONDS] [--listen ADDR] [--port N]\n"
          "                     [--threads N] [--port-file PATH]\n"
          "Serves GET/POST /v1/assign, /api/features/{clientKey} and /api/eval/{clientKey}.\n"
          "With --snapshot-url (a manifest, e.g. http://mirror/v1/snapshots/latest) it serves\n"
          "the newest valid snapshot of DIR at once, then polls the manifest every\n"
          "--poll-interval seconds (default 5, +-10% jitter), downloads newer versions,\n"
          "verifies them (size, SHA-256, integrity, every experiment) and swaps them in;\n"
          "failures keep the served snapshot and are counted in /metrics. With\n"
          "--snapshot-file it re-reads that file when it changes. /readyz answers 503 until\n"
          "a valid snapshot is loaded.\n",
          out);
}

int cmd_assign_flag(struct cmd_assign_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'f':
        f->snapshot_file = arg;
        return 1;
    case 'u':
        f->snapshot_url = arg;
        return 1;
    case 'c':
        f->cache_dir = arg;
        return 1;
    case 'i':
        return cmd_parse_int("poll-interval", arg, 1, 86400, &f->poll_s) == 0 ? 1 : -1;
    default:
        return 0;
    }
}

struct ab_follower_source cmd_snapshot_source(const struct cmd_assign_flags *f)
{
    return (struct ab_follower_source){.snapshot_file = f->snapshot_file,
                                       .snapshot_url = f->snapshot_url,
                                       .cache_dir = f->cache_dir,
                                       .poll_interval_ms =
                                           (int)(f->poll_s > 0 ? f->poll_s : 5) * 1000};
}

int cmd_assign_attach(const struct cmd_assign_flags *f, const struct ab_log *log,
                      struct ab_http_server *srv, struct assign_node **out)
{
    *out = NULL;
    if (f->snapshot_file == NULL && f->snapshot_url == NULL)
        return 0;
    struct assign_node_config cfg = {
        .snapshot = cmd_snapshot_source(f), .log = log, .clock = &ab_clock_system};
    struct ab_errinfo ei;
    if (assign_node_new(&cfg, out, &ei) != AB_OK || assign_node_mount(*out, srv, &ei) != AB_OK ||
        assign_node_start(*out, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        return -1;
    }
    return 0;
}

int cmd_serve_with_assign(const struct cmd_server_flags *flags,
                          const struct cmd_assign_flags *aflags, const struct ab_log *log,
                          const char *what)
{
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cmd_server_config(flags, &cfg);
    cfg.log = log;
    struct ab_http_server *srv = NULL;
    struct assign_node *node = NULL;
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    if (cmd_assign_attach(aflags, log, srv, &node) == 0)
        code = cmd_serve(srv, flags, log, what);
Exit:
    assign_node_stop(node);
    ab_http_server_free(srv);
    assign_node_free(node);
    return code;
}

int cmd_assign_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_ASSIGN_OPTIONS,
                                         {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    struct cmd_assign_flags aflags = {.poll_s = 5};
    int opt;
    while ((opt = getopt_long(argc, argv, CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING "h", opts,
                              NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        usage(opt == 'h' ? stdout : stderr);
        return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    }
    if ((aflags.snapshot_file == NULL) == (aflags.snapshot_url == NULL) ||
        (aflags.snapshot_url != NULL) != (aflags.cache_dir != NULL) || optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    return cmd_serve_with_assign(&flags, &aflags, log, "assign");
}
