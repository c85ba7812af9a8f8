/*
 * `abacus migrate --db PATH` / `--clickhouse URL`: brings a SQLite database, or a ClickHouse
 * database, to the schema this binary carries. Idempotent: a database already current is left
 * alone. Refuses a database from a newer abacus.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include "abacus/clickhouse.h"
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "cmd.h"
#include "collect.h"

static void usage(FILE *out)
{
    fputs("usage: abacus migrate --db PATH [--schema control|events]\n"
          "       abacus migrate --clickhouse clickhouse://HOST:PORT/DB\n"
          "Applies the schema migrations this abacus carries to the SQLite database at PATH\n"
          "(created if missing): the control database's (default), or with --schema events\n"
          "a collector's events database's. Safe to run again: applied migrations are skipped.\n"
          "With --clickhouse: creates DB if missing and applies migrations/clickhouse/ (the\n"
          "events table of a single ClickHouse server), recorded in DB.schema_migrations.\n",
          out);
}

static int migrate_clickhouse(const char *text, const struct ab_log *log)
{
    struct ab_ch_url url;
    struct ab_ch *ch = NULL;
    struct ab_errinfo ei;
    int from = 0, to = 0;
    enum ab_err rc = ab_ch_url_parse(text, strlen(text), &url, &ei);
    if (rc == AB_OK)
        rc = ab_ch_new(&url, 60000, &ch, &ei);
    if (rc == AB_OK)
        rc = ab_ch_migrate(ch, ab_clickhouse_migrations, ab_clickhouse_migrations_count, &from,
                           &to, &ei);
    ab_ch_free(ch);
    if (rc != AB_OK) {
        fprintf(stderr, "abacus: %s: %s\n", text, ei.message);
        return rc == AB_ERR_INVALID_FIELD ? CMD_EXIT_USAGE : CMD_EXIT_FAIL;
    }
    AB_LOG_I(log, "migrated", "clickhouse=%s from=%d to=%d", text, from, to);
    if (from == to)
        printf("%s: schema version %d, up to date\n", text, to);
    else
        printf("%s: schema version %d -> %d (%d migration%s applied)\n", text, from, to,
               to - from, to - from == 1 ? "" : "s");
    return CMD_EXIT_OK;
}

int cmd_migrate_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {
        {"db", required_argument, NULL, 'd'}, {"schema", required_argument, NULL, 's'},
        {"clickhouse", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'}, {0, 0, 0, 0}};
    const char *path = NULL, *ch_url = NULL;
    const struct ab_migration *set = ab_migrations;
    size_t nset = ab_migrations_count;
    int opt;
    while ((opt = getopt_long(argc, argv, "d:s:C:h", opts, NULL)) != -1) {
        switch (opt) {
        case 'C':
            ch_url = optarg;
            break;
        case 'd':
            path = optarg;
            break;
        case 's':
            if (strcmp(optarg, "events") == 0) {
                set = collect_migrations;
                nset = collect_migrations_count;
            } else if (strcmp(optarg, "control") != 0) {
                usage(stderr);
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
    if ((path == NULL) == (ch_url == NULL) || optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    struct ab_errinfo ei;
    if (ch_url != NULL)
        return migrate_clickhouse(ch_url, log);
    struct ab_db *db = NULL;
    struct ab_db_options dbo = {.sync = AB_DB_SYNC_FULL};
    int from = 0, to = 0;
    enum ab_err rc = ab_db_open(path, &dbo, &db, &ei);
    if (rc == AB_OK)
        rc = ab_migrate(db, set, nset, &from, &to, &ei);
    ab_db_close(db);
    if (rc != AB_OK) {
        fprintf(stderr, "abacus: %s: %s\n", path, ei.message);
        return CMD_EXIT_FAIL;
    }
    AB_LOG_I(log, "migrated", "db=%s from=%d to=%d", path, from, to);
    if (from == to)
        printf("%s: schema version %d, up to date\n", path, to);
    else
        printf("%s: schema version %d -> %d (%d migration%s applied)\n", path, from, to,
               to - from, to - from == 1 ? "" : "s");
    return CMD_EXIT_OK;
}
