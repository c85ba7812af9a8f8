/*
 * `abacus report --date YYYY-MM-DD [--out DIR] [--data-dir DIR] [--report-webhook URL]`: writes
 * the results report of one UTC day (analyze.h) from DATA_DIR/abacus.db and events.db, and the
 * wiring that `abacus web` and `abacus up` use to run it every night (the scheduler) and to
 * announce each report on a webhook. The analysis does the work; this file opens the databases
 * and hands it the collector's rejected-event count and the control plane's publish state.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "analyze.h"
#include "cmd.h"
#include "collect.h"
#include "web.h"

static void usage(FILE *out)
{
    fputs("usage: abacus report --date YYYY-MM-DD [--out DIR] [--data-dir DIR]\n"
          "                     [--events-store clickhouse://HOST:PORT/DB]\n"
          "                     [--report-webhook URL] [--report-webhook-attempts N]\n"
          "                     [--report-webhook-backoff-ms MS]\n"
          "Writes the results report of that UTC day (every experiment whose phase ran that\n"
          "day, analysed as of the day's end) as report.html, report.json and report.csv into\n"
          "DIR (default DATA_DIR/reports/YYYY-MM-DD; DATA_DIR default ./data). With\n"
          "--report-webhook, POSTs the summary there afterwards, retrying N times (default 6)\n"
          "with backoff from MS ms (default 2000), doubling. The events come from\n"
          "DATA_DIR/events.db, or from ClickHouse with --events-store. See\n"
          "docs/operations.md.\n",
          out);
}

int cmd_report_flag(struct cmd_report_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'R':
        if (strcmp(arg, "off") == 0) {
            f->at_minute = -1;
            return 1;
        }
        if (strlen(arg) != 5 || arg[2] != ':' || arg[0] < '0' || arg[0] > '2' || arg[1] < '0' ||
            arg[1] > '9' || arg[3] < '0' || arg[3] > '5' || arg[4] < '0' || arg[4] > '9' ||
            (arg[0] - '0') * 10 + (arg[1] - '0') > 23) {
            fprintf(stderr, "abacus: --report-at must be HH:MM (UTC, 00:00 to 23:59) or off\n");
            return -1;
        }
        f->at_minute =
            ((arg[0] - '0') * 10 + (arg[1] - '0')) * 60 + (arg[3] - '0') * 10 + (arg[4] - '0');
        return 1;
    case 'W':
        if (strncmp(arg, "http://", 7) != 0 && strncmp(arg, "https://", 8) != 0) {
            fprintf(stderr, "abacus: --report-webhook must be an http:// or https:// URL\n");
            return -1;
        }
        f->webhook = arg;
        return 1;
    case 'X':
        return cmd_parse_int("report-webhook-attempts", arg, 1, 100, &f->attempts) == 0 ? 1 : -1;
    case 'Y':
        return cmd_parse_int("report-webhook-backoff-ms", arg, 1, 300000, &f->backoff_ms) == 0 ? 1
                                                                                               : -1;
    default:
        return 0;
    }
}

static enum ab_err rejected(void *data, int64_t from_ms, int64_t to_ms, int64_t *count,
                            struct ab_errinfo *ei)
{
    return collect_rejected_count(data, from_ms, to_ms, count, ei);
}

static enum ab_err unpublished(void *data, int64_t as_of_ms, int64_t *since_ms,
                               struct ab_errinfo *ei)
{
    return web_unpublished_since(data, as_of_ms, since_ms, ei);
}

enum ab_err cmd_report_run(void *data, int64_t day_ms, const char *out_dir, struct ab_errinfo *ei)
{
    const struct cmd_report *r = data;
    char control_path[4096], events_path[4096];
    snprintf(control_path, sizeof(control_path), "%s/abacus.db", r->data_dir);
    snprintf(events_path, sizeof(events_path), "%s/events.db", r->data_dir);
    struct ab_db *control = NULL, *events = NULL;
    struct ab_db_options cw = {.sync = AB_DB_SYNC_FULL}, er = {.readonly = 1}, mem = {0};
    json_t *summary = NULL;
    enum ab_err rc = ab_db_open(control_path, &cw, &control, ei);
    if (rc == AB_OK)
        rc = ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, ei);
    /* no events database yet (nothing collected): an empty one in memory */
    if (rc == AB_OK && access(events_path, F_OK) == 0)
        rc = ab_db_open(events_path, &er, &events, ei);
    else if (rc == AB_OK && (rc = ab_db_open(":memory:", &mem, &events, ei)) == AB_OK)
        rc = ab_migrate(events, collect_migrations, collect_migrations_count, NULL, NULL, ei);
    /* the events analysed: that database, or ClickHouse (rejected events stay local) */
    struct analyze_events ev = {.sqlite = events};
    if (rc == AB_OK && r->store != NULL && r->store->clickhouse) {
        struct analyze_store where = cmd_events_store_get(r->store);
        rc = analyze_events_open(&where, &ev, ei);
    }
    if (rc == AB_OK) {
        struct analyze_report_sources src = {.control = control,
                                             .events = ev,
                                             .rejected = rejected,
                                             .rejected_data = events,
                                             .unpublished = unpublished,
                                             .unpublished_data = control};
        rc = analyze_report_write(&src, day_ms, out_dir, &summary, ei);
    }
    if (rc == AB_OK && r->webhook != NULL)
        analyze_webhook_notify(r->webhook, summary);
    json_decref(summary);
    if (ev.nshards > 0)
        analyze_events_close(&ev);
    ab_db_close(events);
    ab_db_close(control);
    return rc;
}

int cmd_report_attach(const struct cmd_report_flags *f, const char *data_dir,
                      const struct cmd_events_store *store, const struct ab_log *log,
                      struct cmd_report *r)
{
    memset(r, 0, sizeof(*r));
    r->data_dir = data_dir;
    r->store = store;
    struct ab_errinfo ei;
    char reports[4096];
    snprintf(reports, sizeof(reports), "%s/reports", data_dir);
    if (f->webhook != NULL) {
        struct analyze_webhook_config wc = {.url = f->webhook,
                                            .attempts = (int)f->attempts,
                                            .backoff_ms = (int)f->backoff_ms,
                                            .log = log};
        if (analyze_webhook_new(&wc, &r->webhook, &ei) != AB_OK)
            goto Fail;
    }
    if (f->at_minute < 0)
        return 0;
    struct analyze_schedule_config sc = {.reports_dir = reports,
                                         .at_minute = (int)f->at_minute,
                                         .clock = &ab_clock_system,
                                         .log = log,
                                         .run = cmd_report_run,
                                         .run_data = r};
    if (analyze_scheduler_new(&sc, &r->scheduler, &ei) != AB_OK ||
        analyze_scheduler_start(r->scheduler, &ei) != AB_OK)
        goto Fail;
    return 0;
Fail:
    fprintf(stderr, "abacus: %s\n", ei.message);
    cmd_report_detach(r);
    return -1;
}

void cmd_report_detach(struct cmd_report *r)
{
    analyze_scheduler_free(r->scheduler); /* waits for a report being written */
    analyze_webhook_free(r->webhook);
    r->scheduler = NULL;
    r->webhook = NULL;
}

int cmd_report_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_REPORT_OPTIONS,
                                         {"events-store", required_argument, NULL, 'S'},
                                         {"date", required_argument, NULL, 'T'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_report_flags f = {.at_minute = -1};
    const char *date = NULL, *out = NULL, *data_dir = "./data", *events_store = NULL;
    int opt;
    while ((opt = getopt_long(argc, argv, CMD_REPORT_OPTSTRING "S:T:o:D:h", opts, NULL)) != -1) {
        int handled = cmd_report_flag(&f, opt, optarg);
        if (handled < 0)
            return CMD_EXIT_USAGE;
        if (handled)
            continue;
        switch (opt) {
        case 'T':
            date = optarg;
            break;
        case 'o':
            out = optarg;
            break;
        case 'S':
            events_store = optarg;
            break;
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
    struct ab_errinfo ei;
    int64_t day = 0;
    if (optind != argc || date == NULL) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (analyze_report_parse_date(date, &day, &ei) != AB_OK) {
        fprintf(stderr, "abacus: --date %s\n", ei.message);
        return CMD_EXIT_USAGE;
    }
    f.at_minute = -1; /* no scheduler here */
    char dir[4096];
    if (out == NULL) {
        snprintf(dir, sizeof(dir), "%s/reports/%s", data_dir, date);
        out = dir;
    }
    struct cmd_events_store store;
    struct cmd_report r;
    if (cmd_events_store_init(&store, events_store, data_dir, "events-store") != 0 ||
        cmd_report_attach(&f, data_dir, &store, log, &r) != 0)
        return CMD_EXIT_USAGE;
    int code = CMD_EXIT_OK;
    if (cmd_report_run(&r, day, out, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        code = CMD_EXIT_FAIL;
    } else {
        AB_LOG_I(log, "report_written", "date=%s dir=%s", date, out);
        printf("%s/report.html\n%s/report.json\n%s/report.csv\n", out, out, out);
        fflush(stdout);
    }
    if (r.webhook != NULL) {
        analyze_webhook_drain(r.webhook);
        int64_t delivered = 0, failed = 0;
        analyze_webhook_counts(r.webhook, &delivered, &failed);
        if (failed > 0)
            fprintf(stderr, "abacus: the webhook was not delivered (the report is written)\n");
    }
    cmd_report_detach(&r);
    return code;
}
