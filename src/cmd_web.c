/*
 * `abacus web --data-dir DIR`: the control plane alone: the admin JSON API and the snapshot
 * publisher that assign nodes and collectors in every region poll (docs/design.md, "Control
 * plane" and "Snapshots and replication"). Also the control-plane flags and wiring that
 * `abacus up` reuses.
 */
#include <getopt.h>
#include <stdio.h>
#include "analyze.h"
#include "cmd.h"
#include "web.h"

static void usage(FILE *out)
{
    fputs("usage: abacus web [--data-dir DIR] [--keep-snapshots N] [--publish-debounce-ms MS]\n"
          "                  [--manifest-max-age S] [--listen ADDR] [--port N] [--threads N]\n"
          "                  [--port-file PATH] [--report-at HH:MM|off] [--report-webhook URL]\n"
          "                  [--events-store clickhouse://HOST:PORT/DB]\n"
          "                  [--analyze-every DURATION] [--results-history-days N]\n"
          "Serves the admin API under /api/v1/ (Authorization: Bearer <admin key>; the first\n"
          "start creates one, prints it and writes DIR/admin.key) and publishes snapshots at\n"
          "GET /v1/snapshots/latest and /v1/snapshots/{version}.db, automatically MS ms after\n"
          "the last change (default 300) and on POST /api/v1/snapshots. Keeps the newest N\n"
          "snapshot files (default 10). The manifest is sent with Cache-Control max-age S\n"
          "(default 0: no-cache, so mirrors revalidate every poll). Writes the results report\n"
          "of the previous UTC day into DIR/reports/ every day at --report-at (default 02:00\n"
          "UTC; a missed one at start) and POSTs its summary to --report-webhook (see\n"
          "abacus report --help and docs/operations.md). Results are computed from the events\n"
          "in DIR/events.db, or in ClickHouse with --events-store (the results API, Update\n"
          "results, the schedule and the report all read it), for every running experiment\n"
          "every --analyze-every (default 1h, spread over the interval; 0 turns it off), and\n"
          "kept as a history for --results-history-days (default 90).\n",
          out);
}

int cmd_web_flag(struct cmd_web_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'K':
        return cmd_parse_int("keep-snapshots", arg, 1, 100000, &f->keep_snapshots) == 0 ? 1 : -1;
    case 'B':
        return cmd_parse_int("publish-debounce-ms", arg, 1, 600000, &f->debounce_ms) == 0 ? 1
                                                                                           : -1;
    case 'M':
        return cmd_parse_int("manifest-max-age", arg, 0, 86400, &f->manifest_max_age) == 0 ? 1
                                                                                            : -1;
    default:
        return 0;
    }
}

/* web_results_cb over the results service (a struct cmd_results). */
static enum ab_err results_cb(void *data, const char *key, enum web_results_ask ask,
                              int64_t as_of_ms, json_t **out, struct ab_errinfo *ei)
{
    const struct cmd_results *r = data;
    switch (ask) {
    case WEB_RESULTS_RECOMPUTE:
        return analyze_refresh_now(r->refresh, key, out, ei);
    case WEB_RESULTS_HISTORY:
        return analyze_refresh_history(r->refresh, key, out, ei);
    default:
        return analyze_refresh_get(r->refresh, key, as_of_ms, out, ei);
    }
}

int cmd_web_attach(const struct cmd_web_flags *f, const char *data_dir, const struct ab_log *log,
                   struct ab_http_server *srv, void (*on_publish)(void *, const char *, int64_t),
                   void *data, struct cmd_results *results, struct web **out)
{
    struct web_config cfg = {.data_dir = data_dir,
                             .keep_snapshots = (int)f->keep_snapshots,
                             .debounce_ms = (int)f->debounce_ms,
                             .manifest_max_age_s = (int)f->manifest_max_age,
                             .log = log,
                             .clock = &ab_clock_system,
                             .on_publish = on_publish,
                             .on_publish_data = data,
                             .announce = stdout,
                             .results = results != NULL ? results_cb : NULL,
                             .results_data = results};
    struct ab_errinfo ei;
    *out = NULL;
    if (web_new(&cfg, out, &ei) != AB_OK || web_mount(*out, srv, &ei) != AB_OK ||
        web_start(*out, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        return -1;
    }
    return 0;
}

int cmd_web_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_WEB_OPTIONS, CMD_REPORT_OPTIONS,
                                         CMD_RESULTS_OPTIONS,
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    struct cmd_web_flags wflags = {0};
    struct cmd_report_flags rflags = {.at_minute = CMD_REPORT_AT_DEFAULT};
    struct cmd_results_flags resflags = {.every_s = -1};
    const char *data_dir = "./data";
    int opt;
    while ((opt = getopt_long(argc, argv,
                              CMD_SERVER_OPTSTRING CMD_WEB_OPTSTRING CMD_REPORT_OPTSTRING
                                  CMD_RESULTS_OPTSTRING "D:h",
                              opts, NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_web_flag(&wflags, opt, optarg);
        if (handled == 0)
            handled = cmd_report_flag(&rflags, opt, optarg);
        if (handled == 0)
            handled = cmd_results_flag(&resflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        if (opt == 'D') {
            data_dir = optarg;
            continue;
        }
        usage(opt == 'h' ? stdout : stderr);
        return opt == 'h' ? CMD_EXIT_OK : CMD_EXIT_USAGE;
    }
    if (optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    struct ab_http_config cfg;
    ab_http_config_defaults(&cfg);
    cmd_server_config(&flags, &cfg);
    cfg.log = log;
    struct ab_http_server *srv = NULL;
    struct web *web = NULL;
    struct cmd_report report = {0};
    struct cmd_results results = {0};
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    if (cmd_web_attach(&wflags, data_dir, log, srv, NULL, NULL, &results, &web) == 0 &&
        cmd_results_attach(&resflags, NULL, data_dir, log, srv, &results) == 0 &&
        cmd_report_attach(&rflags, data_dir, &results.store, log, &report) == 0)
        code = cmd_serve(srv, &flags, log, "web");
Exit:
    cmd_report_detach(&report);
    web_stop(web);
    cmd_results_detach(&results);
    ab_http_server_free(srv);
    web_free(web);
    return code;
}
