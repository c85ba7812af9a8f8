/*
 * `abacus collect --db PATH --snapshot-file PATH`: an event collector storing into the events
 * database at PATH and checking ingest keys, experiments and variants against the snapshot file
 * (reloaded when a newer one appears). Also the collector wiring that `abacus up` reuses.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include "assign.h"
#include "cmd.h"
#include "collect.h"

static void usage(FILE *out)
{
    fputs("usage: abacus collect --db PATH --snapshot-file PATH [--poll-interval SECONDS]\n"
          "                      [--queue-events N] [--listen ADDR] [--port N] [--threads N]\n"
          "                      [--port-file PATH]\n"
          "Takes events on POST /v1/events (JSON or NDJSON) and POST /v1/batch (Segment's\n"
          "format), checks ingest keys, experiments and variants against the snapshot file\n"
          "(checked for a newer version every --poll-interval seconds, default 5), and stores\n"
          "them durably and deduplicated in the SQLite database PATH (created if missing)\n"
          "before answering. /readyz answers 503 until a valid snapshot is loaded.\n"
          "--queue-events N: events waiting for the database writer before new requests get\n"
          "503 with Retry-After (default 32768).\n"
          "Tests only: ABACUS_COLLECT_TEST_MAX_PAGES_FILE=FILE applies the number in FILE as\n"
          "PRAGMA max_page_count before each commit (simulates a full disk).\n",
          out);
}

int cmd_collect_attach(const char *db, long queue_events, const struct cmd_assign_flags *aflags,
                       const struct ab_log *log, struct ab_http_server *srv,
                       struct collect_node **out)
{
    *out = NULL;
    if (db == NULL)
        return 0;
    struct collect_node_config cfg = {
        .db_path = db,
        .snapshot_file = aflags->snapshot_file,
        .poll_interval_ms = (int)(aflags->poll_s > 0 ? aflags->poll_s : 5) * 1000,
        .queue_max_events = (size_t)(queue_events > 0 ? queue_events : 0),
        .test_max_pages_file = getenv("ABACUS_COLLECT_TEST_MAX_PAGES_FILE"),
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
                                         {"db", required_argument, NULL, 'd'},
                                         {"queue-events", required_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    struct cmd_assign_flags aflags = {.poll_s = 5};
    const char *db = NULL;
    long queue_events = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING "d:q:h", opts,
                              NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        if (opt == 'd') {
            db = optarg;
            continue;
        }
        if (opt == 'q') {
            if (cmd_parse_int("queue-events", optarg, 1, 10000000, &queue_events) != 0)
                return CMD_EXIT_USAGE;
            continue;
        }
        usage(opt == 'h' ? stdout : stderr);
        return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    }
    if (db == NULL || aflags.snapshot_file == NULL || optind != argc) {
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
    if (cmd_collect_attach(db, queue_events, &aflags, log, srv, &collector) == 0)
        code = cmd_serve(srv, &flags, log, "collect");
Exit:
    collect_node_stop(collector);
    ab_http_server_free(srv);
    collect_node_free(collector);
    return code;
}
