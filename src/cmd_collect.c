/*
 * `abacus collect --db PATH (--snapshot-file PATH | --snapshot-url URL --cache-dir DIR)
 * [--forward clickhouse://...]`: an event collector storing into the events database at PATH and
 * checking ingest keys, experiments and variants against a snapshot it follows as an assign node
 * does (a file, or replication from a control plane or mirror), optionally forwarding to
 * ClickHouse. Also the collector wiring that `abacus up` reuses.
 */
#include <getopt.h>
#include <stdio.h>
#include "assign.h"
#include "cmd.h"
#include "collect.h"

static void usage(FILE *out)
{
    fputs("usage: abacus collect --db PATH\n"
          "                      (--snapshot-file PATH | --snapshot-url URL --cache-dir DIR)\n"
          "                      [--poll-interval SECONDS] [--queue-events N] [--listen ADDR]\n"
          "                      [--port N] [--threads N] [--port-file PATH]\n"
          "                      [--forward clickhouse://HOST:PORT/DB] [--outbox-max-events N]\n"
          "                      [--retention-days N] [--forward-batch N]\n"
          "Takes events on POST /v1/events (JSON or NDJSON) and POST /v1/batch (Segment's\n"
          "format), checks ingest keys, experiments and variants against the snapshot, and\n"
          "stores them durably and deduplicated in the SQLite database PATH (created if\n"
          "missing) before answering. The snapshot is a file (checked for a newer version every\n"
          "--poll-interval seconds, default 5) or, as for abacus assign, the manifest URL of a\n"
          "control plane or mirror, replicated into the cache dir DIR (the newest valid snapshot\n"
          "there is used at once on start). /readyz answers 503 until a valid snapshot is\n"
          "loaded.\n"
          "--queue-events N: events waiting for the database writer before new requests get\n"
          "503 with Retry-After (default 32768).\n"
          "--forward URL: also ship every stored event to ClickHouse (database DB, table events,\n"
          "see abacus migrate --clickhouse), in order, in batches of --forward-batch events\n"
          "(default 10000); the database PATH is the durable outbox. When more than\n"
          "--outbox-max-events events (default 10000000) wait to be forwarded, POSTs get 503.\n"
          "Forwarded events received more than --retention-days days ago (default 7; 0 keeps\n"
          "them) are deleted from PATH.\n",
          out);
}

int cmd_collect_flag(struct cmd_collect_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'F':
        f->forward = arg;
        return 1;
    case 'O':
        return cmd_parse_int("outbox-max-events", arg, 1, 1000000000, &f->outbox_max) == 0 ? 1
                                                                                             : -1;
    case 'r':
        return cmd_parse_int("retention-days", arg, 0, 36500, &f->retention_days) == 0 ? 1 : -1;
    case 'b':
        return cmd_parse_int("forward-batch", arg, 1, 1000000, &f->forward_batch) == 0 ? 1 : -1;
    default:
        return 0;
    }
}

int cmd_collect_attach(const char *db, const struct cmd_collect_flags *cflags,
                       const struct cmd_assign_flags *aflags, const struct ab_log *log,
                       struct ab_http_server *srv, struct collect_node **out)
{
    *out = NULL;
    if (db == NULL)
        return 0;
    struct cmd_collect_flags none = {.retention_days = -1};
    const struct cmd_collect_flags *cf = cflags != NULL ? cflags : &none;
    long retention = cf->retention_days >= 0 ? cf->retention_days : 7;
    struct collect_node_config cfg = {
        .db_path = db,
        .snapshot = cmd_snapshot_source(aflags),
        .queue_max_events = (size_t)(cf->queue_events > 0 ? cf->queue_events : 0),
        .forward_url = cf->forward,
        .outbox_max_events = (size_t)(cf->outbox_max > 0 ? cf->outbox_max : 0),
        .retention_ms = (int64_t)retention * 86400000,
        .forward_batch = (size_t)(cf->forward_batch > 0 ? cf->forward_batch : 0),
        .log = log,
        .clock = &ab_clock_system};
    struct ab_errinfo ei;
    if (collect_node_new(&cfg, out, &ei) != AB_OK || collect_node_mount(*out, srv, &ei) != AB_OK ||
        collect_node_start(*out, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s: %s\n", db, ei.message);
        return -1;
    }
    return 0;
}

int cmd_collect_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_ASSIGN_OPTIONS,
                                         CMD_COLLECT_OPTIONS,
                                         {"db", required_argument, NULL, 'd'},
                                         {"queue-events", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    struct cmd_assign_flags aflags = {.poll_s = 5};
    struct cmd_collect_flags cflags = {.retention_days = -1};
    const char *db = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv,
                              CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING CMD_COLLECT_OPTSTRING
                              "d:q:h",
                              opts, NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
        if (handled == 0)
            handled = cmd_collect_flag(&cflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        if (opt == 'd') {
            db = optarg;
            continue;
        }
        if (opt == 'q') {
            if (cmd_parse_int("queue-events", optarg, 1, 10000000, &cflags.queue_events) != 0)
                return CMD_EXIT_USAGE;
            continue;
        }
        usage(opt == 'h' ? stdout : stderr);
        return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    }
    if (db == NULL || (aflags.snapshot_file == NULL) == (aflags.snapshot_url == NULL) ||
        (aflags.snapshot_url != NULL) != (aflags.cache_dir != NULL) || optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    /* a collector alone serves no assignments: the snapshot is only read for keys */
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cmd_server_config(&flags, &cfg);
    cfg.log = log;
    struct ab_http_server *srv = NULL;
    struct collect_node *collector = NULL;
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    if (cmd_collect_attach(db, &cflags, &aflags, log, srv, &collector) == 0)
        code = cmd_serve(srv, &flags, log, "collect");
Exit:
    collect_node_stop(collector);
    ab_http_server_free(srv);
    collect_node_free(collector);
    return code;
}
