/*
 * `abacus assign --snapshot-file PATH`: an assign node serving assignments from a local snapshot
 * file, reloaded when a newer one appears (--snapshot-url, fetching from a control plane or
 * mirror, comes with replication).
 */
#include <getopt.h>
#include <stdio.h>
#include "assign.h"
#include "cmd.h"

static void usage(FILE *out)
{
    fputs("usage: abacus assign --snapshot-file PATH [--poll-interval SECONDS]\n"
          "                     [--listen ADDR] [--port N] [--threads N] [--port-file PATH]\n"
          "Serves GET/POST /v1/assign, /api/features/{clientKey} and /api/eval/{clientKey}\n"
          "from the snapshot file, checking it for a newer version every --poll-interval\n"
          "seconds (default 5). /readyz answers 503 until a valid snapshot is loaded.\n",
          out);
}

int cmd_assign_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS,
                                         {"snapshot-file", required_argument, NULL, 'f'},
                                         {"poll-interval", required_argument, NULL, 'i'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    struct assign_node_config ncfg = {.log = log, .clock = &ab_clock_system};
    long poll_s = 5;
    int opt;
    while ((opt = getopt_long(argc, argv, CMD_SERVER_OPTSTRING "f:i:h", opts, NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        switch (opt) {
        case 'f':
            ncfg.snapshot_file = optarg;
            break;
        case 'i':
            if (cmd_parse_int("poll-interval", optarg, 1, 86400, &poll_s) != 0)
                return CMD_EXIT_USAGE;
            break;
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        default:
            usage(stderr);
            return CMD_EXIT_USAGE;
        }
    }
    if (ncfg.snapshot_file == NULL || optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    ncfg.poll_interval_ms = (int)poll_s * 1000;

    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cmd_server_config(&flags, &cfg);
    cfg.log = log;
    struct ab_http_server *srv = NULL;
    struct assign_node *node = NULL;
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK ||
        assign_node_new(&ncfg, &node, &ei) != AB_OK ||
        assign_node_mount(node, srv, &ei) != AB_OK || assign_node_start(node, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    code = cmd_serve(srv, &flags, log, "assign");
Exit:
    assign_node_stop(node);
    ab_http_server_free(srv);
    assign_node_free(node);
    return code;
}
