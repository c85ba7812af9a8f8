/*
 * `abacus analyze [--data-dir DIR] [--experiment KEY] [--json] [--store clickhouse://...]`:
 * computes the results of one experiment (or of every running one) from the events stored so far
 * (DIR/events.db, or ClickHouse with --store), stores them in the results table, and prints them:
 * a short table, or the results JSON (an object for one experiment, an array for all).
 */
#include <errno.h>
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
          "                      [--events-store clickhouse://HOST:PORT/DB]\n"
          "Computes results from the events in DIR/events.db (default ./data) for KEY, or for\n"
          "every running experiment, stores them in DIR/abacus.db and prints them. --at analyses\n"
          "the events before that time only (default: now). --events-store (or --store) reads\n"
          "the events from ClickHouse instead (what collectors forward there; the same\n"
          "aggregation and statistics).\n",
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

int cmd_events_store_init(struct cmd_events_store *s, const char *url, const char *data_dir,
                          const char *flag)
{
    memset(s, 0, sizeof(*s));
    snprintf(s->events_db, sizeof(s->events_db), "%s/events.db", data_dir);
    if (url == NULL)
        return 0;
    /* clickhouse://[USER[:PASSWORD]@]HOST[:PORT][,HOST[:PORT]...][/DB]: one URL per host */
    const char *scheme = "clickhouse://";
    size_t sl = strlen(scheme);
    const char *auth = strncmp(url, scheme, sl) == 0 ? url + sl : url;
    const char *end = auth + strcspn(auth, "/?#");
    const char *at = memchr(auth, '@', (size_t)(end - auth));
    const char *hosts = at != NULL ? at + 1 : auth;
    struct ab_errinfo ei;
    for (const char *h = hosts; h <= end;) {
        const char *comma = memchr(h, ',', (size_t)(end - h));
        const char *stop = comma != NULL ? comma : end;
        if (s->nurls == sizeof(s->urls) / sizeof(s->urls[0])) {
            fprintf(stderr, "abacus: --%s: at most %zu shards\n", flag,
                    sizeof(s->urls) / sizeof(s->urls[0]));
            return -1;
        }
        char one[1024];
        int n = snprintf(one, sizeof(one), "%.*s%.*s%.*s%s", (int)(auth - url), url,
                         (int)(hosts - auth), auth, (int)(stop - h), h, end);
        if (n < 0 || (size_t)n >= sizeof(one) ||
            ab_ch_url_parse(one, (size_t)n, &s->urls[s->nurls], &ei) != AB_OK) {
            fprintf(stderr, "abacus: --%s: %s\n", flag,
                    n >= 0 && (size_t)n < sizeof(one) ? ei.message : "too long");
            return -1;
        }
        s->nurls++;
        h = stop + 1;
    }
    s->clickhouse = 1;
    return 0;
}

struct analyze_store cmd_events_store_get(const struct cmd_events_store *s)
{
    struct analyze_store st = {.events_db = s->events_db,
                               .clickhouse = s->clickhouse ? s->urls : NULL,
                               .nclickhouse = s->clickhouse ? s->nurls : 0};
    return st;
}

/* "90", "90s", "15m", "1h", "2d" -> seconds; -1 when malformed. */
static long parse_duration(const char *text)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || end == text || v < 0)
        return -1;
    long unit = 1;
    if (*end == 'm')
        unit = 60;
    else if (*end == 'h')
        unit = 3600;
    else if (*end == 'd')
        unit = 86400;
    else if (*end != 's' && *end != '\0')
        return -1;
    if (*end != '\0' && end[1] != '\0')
        return -1;
    return v > 366L * 86400 / unit ? -1 : v * unit;
}

int cmd_results_flag(struct cmd_results_flags *f, int opt, const char *arg)
{
    switch (opt) {
    case 'S':
        f->events_store = arg;
        return 1;
    case 'A':
        if ((f->every_s = parse_duration(arg)) < 0) {
            fprintf(stderr, "abacus: --analyze-every must be a duration such as 1h, 15m, 90s "
                            "or 0 (off), at most 366d\n");
            return -1;
        }
        return 1;
    case 'H':
        return cmd_parse_int("results-history-days", arg, 1, 3650, &f->history_days) == 0 ? 1
                                                                                            : -1;
    default:
        return 0;
    }
}

int cmd_results_attach(const struct cmd_results_flags *f, const char *fallback,
                       const char *data_dir, const struct ab_log *log, struct ab_http_server *srv,
                       struct cmd_results *r)
{
    memset(r, 0, sizeof(*r));
    const char *url = f->events_store != NULL ? f->events_store : fallback;
    if (cmd_events_store_init(&r->store, url, data_dir,
                              f->events_store != NULL ? "events-store" : "forward") != 0)
        return -1;
    char control[4096];
    snprintf(control, sizeof(control), "%s/abacus.db", data_dir);
    struct analyze_refresh_config cfg = {
        .control_db = control,
        .store = cmd_events_store_get(&r->store),
        .every_ms = (f->every_s < 0 ? 3600 : f->every_s) * 1000LL,
        .history_ms = f->history_days * 86400000LL,
        .clock = &ab_clock_system,
        .log = log,
    };
    struct ab_errinfo ei;
    if (analyze_refresh_new(&cfg, &r->refresh, &ei) != AB_OK ||
        analyze_refresh_start(r->refresh, &ei) != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        cmd_results_detach(r);
        return -1;
    }
    ab_http_add_metrics(srv, analyze_refresh_metrics, r->refresh);
    AB_LOG_I(log, "results_service", "store=%s every_s=%lld",
             r->store.clickhouse ? "clickhouse" : "sqlite", (long long)(cfg.every_ms / 1000));
    return 0;
}

void cmd_results_detach(struct cmd_results *r)
{
    analyze_refresh_free(r->refresh);
    r->refresh = NULL;
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
                                         {"events-store", required_argument, NULL, 'S'},
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
    char control_path[4096];
    snprintf(control_path, sizeof(control_path), "%s/abacus.db", dir);
    struct cmd_events_store store_of;
    if (cmd_events_store_init(&store_of, store, dir, "events-store") != 0)
        return CMD_EXIT_USAGE;
    struct analyze_store where = cmd_events_store_get(&store_of);
    struct ab_errinfo ei;
    struct ab_db *control = NULL;
    struct ab_db_options cw = {.sync = AB_DB_SYNC_FULL};
    struct analyze_events ev = {0};
    char **keys = NULL;
    size_t nkeys = 0;
    json_t *all = json_array();
    int code = CMD_EXIT_FAIL;
    enum ab_err rc = ab_db_open(control_path, &cw, &control, &ei);
    if (rc == AB_OK)
        rc = ab_migrate(control, ab_migrations, ab_migrations_count, NULL, NULL, &ei);
    if (rc == AB_OK)
        rc = analyze_events_open(&where, &ev, &ei);
    if (rc == AB_OK && key == NULL)
        rc = analyze_running(control, &keys, &nkeys, &ei);
    if (rc != AB_OK) {
        fprintf(stderr, "abacus: %s\n", ei.message);
        goto Exit;
    }
    code = CMD_EXIT_OK;
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
                 ev.nshards > 0 ? "clickhouse" : "sqlite",
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
    analyze_events_close(&ev);
    ab_db_close(control);
    return code;
}
