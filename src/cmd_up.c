/*
 * `abacus up`: the whole platform in one process on one port, with its data (SQLite) under
 * --data-dir: the control plane (admin API, snapshot publisher) and an assign node that follows
 * the snapshots it publishes (DATA_DIR/snapshots/current.db, re-read at once after each publish),
 * unless --snapshot-file or --snapshot-url point the node elsewhere, and a collector storing
 * events in DATA_DIR/events.db that checks ingest keys and experiments against the same local
 * snapshot. Results are computed from those events (the admin API's results endpoints).
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include "assign.h"
#include "cmd.h"
#include "collect.h"
#include "web.h"

static void usage(FILE *out)
{
    fputs("usage: abacus up [--data-dir DIR] [--listen ADDR] [--port N] [--threads N]\n"
          "                 [--port-file PATH] [--poll-interval S]\n"
          "                 [--snapshot-file PATH | --snapshot-url URL --cache-dir DIR]\n"
          "                 [--keep-snapshots N] [--publish-debounce-ms MS] [--manifest-max-age S]\n"
          "                 [--forward clickhouse://HOST:PORT/DB [--outbox-max-events N]\n"
          "                  [--retention-days N] [--forward-batch N]]\n"
          "Runs the platform in one process: data in DIR (default ./data), HTTP on ADDR:N\n"
          "(default 127.0.0.1:8080; --port 0 picks a free port, written to --port-file).\n"
          "Serves the admin API (see abacus web --help; the first start prints an admin key)\n"
          "and assignments from the snapshots it publishes (or from --snapshot-file /\n"
          "--snapshot-url, see abacus assign --help), and collects events into\n"
          "DIR/events.db (see abacus collect --help), checking ingest keys against the\n"
          "published snapshot. Stops cleanly on SIGINT or SIGTERM.\n",
          out);
}

/* What follows local publishes; set once it exists (the publisher runs before). */
struct up_follow {
    _Atomic(struct assign_node *) node;
    _Atomic(struct collect_node *) collector;
};

static void on_publish(void *data, const char *path, int64_t version)
{
    (void)path;
    (void)version;
    struct up_follow *f = data;
    struct assign_node *node = atomic_load(&f->node);
    struct collect_node *collector = atomic_load(&f->collector);
    if (node != NULL)
        assign_node_poke(node);
    if (collector != NULL)
        collect_node_poke(collector);
}

int cmd_up_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_ASSIGN_OPTIONS, CMD_WEB_OPTIONS,
                                         CMD_COLLECT_OPTIONS,
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    const char *data_dir = "./data";
    struct cmd_assign_flags aflags = {.poll_s = 5};
    struct cmd_web_flags wflags = {0};
    struct cmd_collect_flags colflags = {.retention_days = -1};
    int opt;
    while ((opt = getopt_long(argc, argv,
                              CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING CMD_WEB_OPTSTRING
                                  CMD_COLLECT_OPTSTRING "D:h",
                              opts, NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
        if (handled == 0)
            handled = cmd_web_flag(&wflags, opt, optarg);
        if (handled == 0)
            handled = cmd_collect_flag(&colflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        switch (opt) {
        case 'D':
            data_dir = optarg;
            break;
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        default:
            usage(stderr);
            return CMD_EXIT_USAGE;
        }
    }
    if (optind != argc || (aflags.snapshot_url != NULL) != (aflags.cache_dir != NULL)) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    char current[4096], events_db[4096];
    snprintf(current, sizeof(current), "%s/snapshots/current.db", data_dir);
    snprintf(events_db, sizeof(events_db), "%s/events.db", data_dir);
    /* the collector checks keys against the local control plane's snapshot, or --snapshot-file */
    struct cmd_assign_flags cflags = aflags;
    if (cflags.snapshot_file == NULL)
        cflags.snapshot_file = current;
    if (aflags.snapshot_file == NULL && aflags.snapshot_url == NULL)
        aflags.snapshot_file = current;
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cmd_server_config(&flags, &cfg);
    cfg.log = log;
    struct ab_http_server *srv = NULL;
    struct web *web = NULL;
    struct assign_node *node = NULL;
    struct collect_node *collector = NULL;
    struct up_follow follow = {NULL, NULL};
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    if (cmd_web_attach(&wflags, data_dir, log, srv, on_publish, &follow, &web) != 0 ||
        cmd_assign_attach(&aflags, log, srv, &node) != 0 ||
        cmd_collect_attach(events_db, &colflags, &cflags, log, srv, &collector) != 0)
        goto Exit;
    atomic_store(&follow.node, node);
    atomic_store(&follow.collector, collector);
    code = cmd_serve(srv, &flags, log, "up");
Exit:
    atomic_store(&follow.node, NULL);
    atomic_store(&follow.collector, NULL);
    web_stop(web);
    assign_node_stop(node);
    collect_node_stop(collector); /* after the server: its workers waited for our answers */
    ab_http_server_free(srv);
    assign_node_free(node);
    collect_node_free(collector);
    web_free(web);
    return code;
}
