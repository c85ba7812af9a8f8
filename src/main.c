/*
 * `abacus` subcommand dispatch. Sets up what is process-wide (the logger, SIGPIPE ignored,
 * SIGINT/SIGTERM blocked in every thread so cmd_serve can sigwait for them) and hands over to
 * the subcommand. Nothing else lives here.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/version.h"
#include "cmd.h"

struct subcommand {
    const char *name;
    int (*main)(int argc, char **argv, struct ab_log *log);
    const char *summary;
};

static const struct subcommand SUBCOMMANDS[] = {
    {"up", cmd_up_main, "run the platform in one process (data in ./data, port 8080)"},
    {"migrate", cmd_migrate_main, "apply the schema migrations to a database (--db PATH)"},
    {"assign", cmd_assign_main,
     "run an assign node (--snapshot-url URL --cache-dir DIR, or --snapshot-file PATH)"},
    {"web", cmd_web_main, "run the control plane: admin API and snapshot publisher"},
    {"analyze", cmd_analyze_main, "compute and store experiment results (--experiment KEY)"},
    {"report", cmd_report_main, "write the results report of a day (--date YYYY-MM-DD)"},
    {"collect", cmd_collect_main, "run an event collector (--db PATH --snapshot-file PATH)"},
};

static struct ab_log g_log;

static void usage(FILE *out)
{
    fprintf(out, "abacus %s: A/B testing assignment and metrics platform\n\n"
                 "usage: abacus <command> [flags]   (abacus <command> --help for its flags)\n\n",
            AB_VERSION);
    for (size_t i = 0; i < sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]); i++)
        fprintf(out, "  %-9s %s\n", SUBCOMMANDS[i].name, SUBCOMMANDS[i].summary);
    fputs("  version   print the version\n\n"
          "Environment: ABACUS_LOG_LEVEL=debug|info|warn|error (default info; logs go to "
          "stderr).\n",
          out);
}

int main(int argc, char **argv)
{
    enum ab_log_level level = AB_LOG_INFO;
    const char *env = getenv("ABACUS_LOG_LEVEL");
    if (env != NULL && ab_log_level_parse(env, &level) != 0) {
        fprintf(stderr, "abacus: ABACUS_LOG_LEVEL must be debug, info, warn or error\n");
        return CMD_EXIT_USAGE;
    }
    ab_log_init(&g_log, level, 2, &ab_clock_system);

    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    if (argc < 2) {
        usage(stderr);
        return CMD_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "help") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        usage(stdout);
        return CMD_EXIT_OK;
    }
    if (strcmp(name, "version") == 0 || strcmp(name, "--version") == 0) {
        printf("abacus %s\n", AB_VERSION);
        return CMD_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(SUBCOMMANDS) / sizeof(SUBCOMMANDS[0]); i++)
        if (strcmp(name, SUBCOMMANDS[i].name) == 0)
            return SUBCOMMANDS[i].main(argc - 1, argv + 1, &g_log);
    fprintf(stderr, "abacus: unknown command '%s'\n\n", name);
    usage(stderr);
    return CMD_EXIT_USAGE;
}
