/*
 * `abacus analyze [--data-dir DIR] [--experiment KEY] [--json] [--store clickhouse://...]`:
 * computes the results of one experiment (or of every running one) from the events stored so far
 * (DIR/events.db, or ClickHouse with --store), stores them in the results table, and prints them:
 * a short table, or the results JSON (an object for one experiment, an array for all).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "abacus/clickhouse.h"
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "analyze.h"
#include "cmd.h"

static void usage(FILE *out)
{
    fputs("usage: abacus analyze [--data-dir DIR] [--experiment KEY] [--json]\n"
          "                      [--alpha A] [--correction holm|bh|none] [--at RFC3339]\n"
          "                      [--store clickhouse://HOST:PORT/DB]\n"
          "Computes results from the events in DIR/events.db (default ./data) for KEY, or for\n"
          "every running experiment, stores them in DIR/abacus.db and prints them. --at analyses\n"
          "the events before that time only (default: now). --store reads the events from\n"
          "ClickHouse instead (what collectors forward there; the same aggregation and\n"
          "statistics).\n",
          out);
}

/* "2026-11-24T02:00:00Z" -> ms since epoch; -1 when malformed. */
static int64_t parse_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (end == NULL || *end != '\0')
        return -1;
    return (int64_t)timegm(&tm) * 1000;
}

static void print_table(const json_t *r)
{
    printf("%s (phase %lld)", json_string_value(json_object_get(r, "experiment")),
           (long long)json_integer_value(json_object_get(r, "phase")));
    json_t *units = json_object_get(json_object_get(r, "units"), "by_variant");
    for (void *it = json_object_iter(units); it != NULL; it = json_object_iter_next(units, it))
        printf("  %s: %lld units", json_object_iter_key(it),
               (long long)json_integer_value(json_object_iter_value(it)));
    const json_t *srm = json_object_get(r, "srm");
    printf("  SRM p=%.4g%s\n", json_number_value(json_object_get(srm, "p_value")),
           json_is_true(json_object_get(srm, "mismatch")) ? " MISMATCH" : "");
    size_t i, j;
    const json_t *m, *c;
    json_array_foreach(json_object_get(r, "metrics"), i, m)
    {
        json_array_foreach(json_object_get(m, "comparisons"), j, c)
        {
            const json_t *rel = json_object_get(c, "relative");
            const json_t *ci = json_object_get(rel, "ci_sequential");
            printf("  %-24s %-10s %-12s", json_string_value(json_object_get(m, "metric")),
                   json_string_value(json_object_get(m, "role")),
                   json_string_value(json_object_get(c, "variant")));
            if (json_is_number(json_object_get(rel, "estimate")))
                printf(" lift %+7.2f%% [%+.2f%%, %+.2f%%] p=%.4g",
                       100 * json_number_value(json_object_get(rel, "estimate")),
                       100 * json_number_value(json_array_get(ci, 0)),
                       100 * json_number_value(json_array_get(ci, 1)),
                       json_number_value(json_object_get(rel, "p_value_sequential")));
            printf("  %s\n", json_string_value(json_object_get(c, "decision")));
        }
    }
}

enum ab_err cmd_analyze_results(void *data, const char *key, int recompute, json_t **out,
                                struct ab_errinfo *ei)
{
    const char *dir = data;
    char control_path[4096], events_path[4096];
    snprintf(control_path, sizeof(control_path), "%s/abacus.db", dir);
    snprintf(events_path, sizeof(events_path), "%s/events.db", dir);
    struct ab_db *control = NULL, *events = NULL;
    struct ab_db_options cw = {.sync = AB_DB_SYNC_FULL}, er = {.readonly = 1};
    *out = NULL;
    enum ab_err rc = ab_db_open(control_path, &cw, &control, ei);
    if (rc == AB_OK && !recompute) {
        rc = analyze_stored(control, key, out, ei);
    } else if (rc == AB_OK) {
        if (access(events_path, F_OK) != 0)
            rc = ab_fail(ei, AB_ERR_UNAVAILABLE, NULL,
                         "no events database at %s (events are collected by abacus up or "
                         "abacus collect)",
                         events_path);
        else if ((rc = ab_db_open(events_path, &er, &events, ei)) == AB_OK)
            rc = analyze_experiment(control, events, key, ab_clock_now_ms(&ab_clock_system),
                                    NULL, out, ei);
    }
    ab_db_close(events);
    ab_db_close(control);
    return rc;
}

int cmd_analyze_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {{"data-dir", required_argument, NULL, 'd'},
                                         {"experiment", required_argument, NULL, 'e'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"alpha", required_argument, NULL, 'a'},
                                         {"correction", required_argument, NULL, 'c'},
                                         {"at", required_argument, NULL, 'T'},
                                         {"store", required_argument, NULL, 'S'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = "./data", *key = NULL, *store = NULL;
    int json = 0;
    struct analyze_settings settings = {0, NULL};
    int64_t now = ab_clock_now_ms(&ab_clock_system);
    int opt;
    while ((opt = getopt_long(argc, argv, "d:e:ja:c:T:S:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'S':
            store = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'e':
            key = optarg;
            break;
        case 'j':
            json = 1;
            break;
        case 'a':
            settings.alpha = strtod(optarg, NULL);
            break;
        case 'c':
            settings.correction = optarg;
            break;
        case 'T':
            if ((now = parse_time(optarg)) < 0) {
                fprintf(stderr, "abacus: --at must look like 2026-11-24T02:00:00Z\n");
                return CMD_EXIT_USAGE;
            }
            break;
        case 'h':
            usage(stdout);
            return CMD_EXIT_OK;
        default:
            usage(stderr);
            return CMD_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    char control_path[4096], events_path[4096];
    snprintf(control_path, sizeof(control_path), "%s/abacus.db", dir);
    snprintf(events_path, sizeof(events_path), "%s/events.db", dir);
    struct ab_errinfo ei;
    struct ab_db *control = NULL, *events = NULL;
    struct ab_db_options cw = {.sync = AB_DB_SYNC_FULL}, er = {.readonly = 1};
    struct ab_ch *ch = NULL;
    struct ab_ch_url url;
    char **keys = NULL;
    size_t nkeys = 0;
    json_t *all = json_array();
    int code = CMD_EXIT_FAIL;
    enum ab_err rc = AB_OK;
    if (store != NULL) {
        if (ab_ch_url_parse(store, strlen(store), &url, &ei) != AB_OK) {
            fprintf(stderr, "abacus: --store: %s\n", ei.message);
            json_decref(all);
            return CMD_EXIT_USAGE;
        }
        rc = ab_ch_new(&url, 600000, &ch, &ei);
    }
    if (rc == AB_OK)
        rc = ab_db_open(control_path, &cw, &control, &ei);
    if (rc == AB_OK)
        rc = ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei);
    if (rc == AB_OK && ch == NULL)
        rc = ab_db_open(events_path, &er, &events, &ei);
    if (rc == AB_OK && key == NULL)
        rc = analyze_running(control, &keys, &nkeys, &ei);
    if (rc != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    code = CMD_EXIT_OK;
    struct analyze_events ev = {events, ch};
    for (size_t i = 0; i < (key != NULL ? 1 : nkeys); i++) {
        const char *k = key != NULL ? key : keys[i];
        json_t *r;
        int64_t t0 = ab_clock_mono_ns(&ab_clock_system);
        rc = analyze_experiment_in(control, &ev, k, now, &settings, &r, &ei);
        if (rc != AB_OK) {
            fprintf(stderr, "abacus: %s: %s\n", k, ei.message);
            code = rc == AB_ERR_INVALID_FIELD || rc == AB_ERR_NOT_FOUND ? CMD_EXIT_USAGE
                                                                        : CMD_EXIT_FAIL;
            continue;
        }
        AB_LOG_I(log, "analyzed", "experiment=%s store=%s seconds=%.3f", k,
                 ch != NULL ? "clickhouse" : "sqlite",
                 (double)(ab_clock_mono_ns(&ab_clock_system) - t0) / 1e9);
        if (!json)
            print_table(r);
        json_array_append_new(all, r);
    }
    if (json) {
        json_t *doc = key != NULL ? json_array_get(all, 0) : all;
        if (doc != NULL) {
            json_dumpf(doc, stdout, JSON_INDENT(1));
            putchar('\n');
        }
    } else if (key == NULL && nkeys == 0) {
        printf("no running experiments\n");
    }
Exit:
    for (size_t i = 0; i < nkeys; i++)
        free(keys[i]);
    free(keys);
    json_decref(all);
    ab_db_close(events);
    ab_db_close(control);
    ab_ch_free(ch);
    return code;
}
