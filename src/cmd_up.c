/*
 * `abacus up`: the whole platform in one process on one port, with its data (SQLite) under
 * --data-dir: the control plane (admin API, snapshot publisher) and an assign node that follows
 * the snapshots it publishes (DATA_DIR/snapshots/current.db, re-read at once after each publish),
 * unless --snapshot-file or --snapshot-url point the node elsewhere, and a collector storing
 * events in DATA_DIR/events.db that checks ingest keys and experiments against the same local
 * snapshot. Results are computed from those events, or from the ClickHouse they are forwarded
 * to (the admin API's results endpoints, the schedule, the report).
 */
#include <getopt.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>
#include <unistd.h>
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
          "                 [--report-at HH:MM|off] [--report-webhook URL]\n"
          "                 [--demo | --no-demo]\n"
          "                 [--forward clickhouse://HOST:PORT/DB [--outbox-max-events N]\n"
          "                  [--retention-days N] [--forward-batch N]]\n"
          "                 [--events-store clickhouse://HOST:PORT/DB]\n"
          "                 [--analyze-every DURATION]\n"
          "                 [--results-history-days N]\n"
          "Runs the platform in one process: data in DIR (default ./data), HTTP on ADDR:N\n"
          "(default 127.0.0.1:8080; --port 0 picks a free port, written to --port-file).\n"
          "Serves the admin API (see abacus web --help; the first start prints an admin key)\n"
          "and assignments from the snapshots it publishes (or from --snapshot-file /\n"
          "--snapshot-url, see abacus assign --help), and collects events into\n"
          "DIR/events.db (see abacus collect --help), checking ingest keys against the\n"
          "published snapshot. The browser UI is at the printed URL (the first start creates\n"
          "the user admin@localhost and prints its password). On a first start (no DIR/abacus.db)\n"
          "or with --demo, demo experiments get 14 days of simulated traffic through the assign\n"
          "and collect APIs, then results; --no-demo never does. Writes the previous UTC day's\n"
          "results report into DIR/reports/ daily at --report-at (default 02:00 UTC; see abacus\n"
          "web --help). Results are computed from DIR/events.db, or with --forward from the\n"
          "ClickHouse events are forwarded to (--events-store names another), every\n"
          "--analyze-every (default 1h; see abacus web --help). Stops cleanly on SIGINT or\n"
          "SIGTERM.\n",
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

/*
 * Once the demo's events exist: the previous day's report, which the scheduler's catch-up wrote
 * at start before there was any traffic, is written again, so a newcomer's first report shows
 * the demo (a report for a date is a pure function of the stored data: rewriting it is safe).
 */
static void demo_ready(void *data)
{
    struct cmd_report *report = data;
    if (report->scheduler == NULL)
        return;
    int64_t today = ab_clock_now_ms(&ab_clock_system) / 86400000 * 86400000;
    time_t t = (time_t)((today - 86400000) / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char dir[4200], date[16];
    strftime(date, sizeof(date), "%Y-%m-%d", &tm);
    snprintf(dir, sizeof(dir), "%s/reports/%s", report->data_dir, date);
    struct ab_errinfo ei;
    if (cmd_report_run(report, today - 86400000, dir, &ei) != AB_OK)
        fprintf(stderr, "abacus: the report of %s after the demo: %s\n", date, ei.message);
}

/* Once the server listens: the demo's simulated users start. */
static void start_demo(void *data, uint16_t port)
{
    struct ab_errinfo ei;
    if (web_demo_start(data, port, &ei) != AB_OK)
        fprintf(stderr, "abacus: the demo cannot start: %s\n", ei.message);
    else
        printf("abacus: creating the demo (3 experiments, 14 days of simulated traffic); its "
               "results appear in the UI in under a minute\n");
    fflush(stdout);
}

int cmd_up_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_ASSIGN_OPTIONS, CMD_WEB_OPTIONS,
                                         CMD_REPORT_OPTIONS, CMD_COLLECT_OPTIONS,
                                         CMD_RESULTS_OPTIONS,
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"demo", no_argument, NULL, 'E'},
                                         {"no-demo", no_argument, NULL, 'N'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    const char *data_dir = "./data";
    struct cmd_assign_flags aflags = {.poll_s = 5};
    struct cmd_web_flags wflags = {0};
    struct cmd_report_flags rflags = {.at_minute = CMD_REPORT_AT_DEFAULT};
    struct cmd_collect_flags colflags = {.retention_days = -1};
    struct cmd_results_flags resflags = {.every_s = -1};
    int demo = 0; /* 1: --demo, -1: --no-demo, 0: only on a first start */
    int opt;
    while ((opt = getopt_long(argc, argv,
                              CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING CMD_WEB_OPTSTRING
                                  CMD_REPORT_OPTSTRING CMD_COLLECT_OPTSTRING
                                      CMD_RESULTS_OPTSTRING "D:ENh",
                              opts, NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
        if (handled == 0)
            handled = cmd_web_flag(&wflags, opt, optarg);
        if (handled == 0)
            handled = cmd_report_flag(&rflags, opt, optarg);
        if (handled == 0)
            handled = cmd_collect_flag(&colflags, opt, optarg);
        if (handled == 0)
            handled = cmd_results_flag(&resflags, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        switch (opt) {
        case 'D':
            data_dir = optarg;
            break;
        case 'E':
            demo = 1;
            break;
        case 'N':
            demo = -1;
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
    char current[4096], events_db[4096], control_db[4096];
    snprintf(control_db, sizeof(control_db), "%s/abacus.db", data_dir);
    if (demo == 0)
        demo = access(control_db, F_OK) != 0 ? 1 : -1; /* an empty data dir: show the demo */
    if (demo > 0 && (aflags.snapshot_file != NULL || aflags.snapshot_url != NULL)) {
        fprintf(stderr, "abacus: no demo: the node serves another control plane's snapshots\n");
        demo = -1;
    }
    snprintf(current, sizeof(current), "%s/snapshots/current.db", data_dir);
    snprintf(events_db, sizeof(events_db), "%s/events.db", data_dir);
    /* the collector checks keys against the local control plane's snapshot, or --snapshot-file */
    struct cmd_assign_flags cflags = aflags;
    cflags.snapshot_url = cflags.cache_dir = NULL;
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
    struct cmd_report report = {0};
    struct cmd_results results = {0};
    struct web_demo *wdemo = NULL;
    struct ab_errinfo ei;
    int code = CMD_EXIT_FAIL;
    if (ab_http_server_new(&cfg, &srv, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    if (cmd_web_attach(&wflags, data_dir, log, srv, on_publish, &follow, &results, &web) != 0 ||
        cmd_results_attach(&resflags, colflags.forward, data_dir, log, srv, &results) != 0 ||
        cmd_assign_attach(&aflags, log, srv, &node) != 0 ||
        cmd_collect_attach(events_db, &colflags, &cflags, log, srv, &collector) != 0 ||
        cmd_report_attach(&rflags, data_dir, &results.store, log, &report) != 0)
        goto Exit;
    atomic_store(&follow.node, node);
    atomic_store(&follow.collector, collector);
    if (demo > 0 && web_demo_new(web, &wdemo, &ei) != AB_OK) {
        fprintf(stderr, "abacus: cannot create the demo: %s\n", ei.message);
        goto Exit;
    }
    if (wdemo != NULL)
        web_demo_on_ready(wdemo, demo_ready, &report);
    code = cmd_serve_notify(srv, &flags, log, "up", wdemo != NULL ? start_demo : NULL, wdemo);
Exit:
    cmd_report_detach(&report);
    cmd_results_detach(&results);
    web_demo_free(wdemo); /* its requests fail fast now that the server is gone */
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
