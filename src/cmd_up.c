/*
 * `abacus up`: the whole platform in one process on one port, with its data (SQLite) under
 * --data-dir. Today that is the HTTP core with /healthz, /readyz and /metrics over a migrated
 * control database, and the assign node when --snapshot-file names a snapshot (until the control
 * plane publishes them itself); each component mounts its routes here as it arrives.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include "abacus/db.h"
#include "abacus/migrate.h"
#include "cmd.h"

static void usage(FILE *out)
{
    fputs("usage: abacus up [--data-dir DIR] [--listen ADDR] [--port N] [--threads N]\n"
          "                 [--port-file PATH] [--snapshot-file PATH [--poll-interval S]]\n"
          "Runs the platform in one process: data in DIR (default ./data), HTTP on ADDR:N\n"
          "(default 127.0.0.1:8080; --port 0 picks a free port, written to --port-file).\n"
          "With --snapshot-file, also serves assignments from that snapshot (see abacus\n"
          "assign --help). Collects events into DIR/events.db (see abacus collect --help),\n"
          "checking ingest keys against the snapshot. Stops cleanly on SIGINT or SIGTERM.\n",
          out);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0750) == 0 || errno == EEXIST) {
        struct stat st;
        if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
        errno = ENOTDIR;
    }
    return -1;
}

/* Creates the data directory and brings the control database to the current schema. */
static int prepare_data(const char *dir, const struct ab_log *log)
{
    if (make_dir(dir) != 0) {
        fprintf(stderr, "abacus: cannot create data directory %s: %s\n", dir, strerror(errno));
        return -1;
    }
    char path[4096];
    snprintf(path, sizeof(path), "%s/abacus.db", dir);
    struct ab_errinfo ei;
    struct ab_db *db = NULL;
    struct ab_db_options dbo = {.sync = AB_DB_SYNC_FULL};
    int from = 0, to = 0;
    enum ab_err rc = ab_db_open(path, &dbo, &db, &ei);
    if (rc == AB_OK)
        rc = ab_migrate(db, ab_migrations, ab_migrations_count, &from, &to, &ei);
    ab_db_close(db);
    if (rc != AB_OK) {
        fprintf(stderr, "abacus: %s: %s\n", path, ei.message);
        return -1;
    }
    AB_LOG_I(log, "control_db", "path=%s schema_from=%d schema=%d", path, from, to);
    return 0;
}

int cmd_up_main(int argc, char **argv, struct ab_log *log)
{
    static const struct option opts[] = {CMD_SERVER_OPTIONS, CMD_ASSIGN_OPTIONS,
                                         {"data-dir", required_argument, NULL, 'D'},
                                         {"help", no_argument, NULL, 'h'},
                                         {0, 0, 0, 0}};
    struct cmd_server_flags flags = {.port = 8080};
    const char *data_dir = "./data";
    struct cmd_assign_flags aflags = {.poll_s = 5};
    int opt;
    while ((opt = getopt_long(argc, argv, CMD_SERVER_OPTSTRING CMD_ASSIGN_OPTSTRING "D:h", opts,
                              NULL)) != -1) {
        int handled = cmd_server_flag(&flags, opt, optarg);
        if (handled == 0)
            handled = cmd_assign_flag(&aflags, opt, optarg);
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
    if (optind != argc) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    if (prepare_data(data_dir, log) != 0)
        return CMD_EXIT_FAIL;

    char events_db[4096]; /* the collector's events database */
    snprintf(events_db, sizeof(events_db), "%s/events.db", data_dir);
    return cmd_serve_with_collect(&flags, &aflags, events_db, log, "up");
}
