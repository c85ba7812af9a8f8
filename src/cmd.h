/*
 * The subcommands of the abacus binary and the few helpers they share (flag parsing, serving until
 * a signal). Each cmd_*.c parses its flags and wires library and component pieces together; none
 * holds logic of its own.
 */
#ifndef ABACUS_CMD_H
#define ABACUS_CMD_H

#include <stdint.h>
#include <jansson.h>
#include "abacus/clickhouse.h"
#include "abacus/err.h"
#include "abacus/follower.h"
#include "abacus/http.h"
#include "abacus/log.h"

/* Exit codes of every subcommand. */
#define CMD_EXIT_OK 0
#define CMD_EXIT_FAIL 1  /* the command ran and failed */
#define CMD_EXIT_USAGE 2 /* bad flags or arguments */

int cmd_up_main(int argc, char **argv, struct ab_log *log);
int cmd_migrate_main(int argc, char **argv, struct ab_log *log);
int cmd_assign_main(int argc, char **argv, struct ab_log *log);
int cmd_analyze_main(int argc, char **argv, struct ab_log *log);

/*
 * The events store the analysis reads (cmd_analyze.c): ClickHouse when a clickhouse:// URL is
 * given (`--events-store`, `abacus analyze --store`, or the `--forward` target of `abacus up`),
 * else DATA_DIR/events.db. clickhouse://HOST:PORT,HOST:PORT.../DB names the shards of a cluster
 * sharded by unit: each is aggregated where it is (its events_local table).
 */
struct cmd_events_store {
    int clickhouse;            /* 1: urls, 0: events_db */
    struct ab_ch_url urls[16]; /* one server, or every shard (ANALYZE_SHARDS_MAX) */
    size_t nurls;
    char events_db[4096];
};

/* Fills s for data_dir and url (may be NULL). Returns 0, or -1 with the reason printed. */
int cmd_events_store_init(struct cmd_events_store *s, const char *url, const char *data_dir,
                          const char *flag);

/* The analysis' view of s (pointers into s). */
struct analyze_store cmd_events_store_get(const struct cmd_events_store *s);

/* Flags of the results service, which `abacus web` and `abacus up` take. */
struct cmd_results_flags {
    const char *events_store; /* --events-store clickhouse://HOST:PORT/DB, or NULL */
    long every_s;             /* --analyze-every DURATION in seconds; -1: default (1 h); 0: off */
    long history_days;        /* --results-history-days N; 0: default (90) */
};
#define CMD_RESULTS_OPTIONS                                                                        \
    {"events-store", required_argument, NULL, 'S'},                                                \
        {"analyze-every", required_argument, NULL, 'A'},                                           \
        {"results-history-days", required_argument, NULL, 'H'}
#define CMD_RESULTS_OPTSTRING "S:A:H:"

/* Like cmd_server_flag, for the results flags. */
int cmd_results_flag(struct cmd_results_flags *f, int opt, const char *arg);

struct analyze_refresh;

/* The results service of a control plane (analyze.h) and the events store it reads. */
struct cmd_results {
    struct cmd_events_store store;
    struct analyze_refresh *refresh;
};

/*
 * Creates and starts the results service for data_dir into *r: its events store is
 * f->events_store, else fallback (the --forward target of `abacus up`; may be NULL), else
 * DATA_DIR/events.db; its /metrics go to srv. Returns 0, or -1 with the reason printed.
 */
int cmd_results_attach(const struct cmd_results_flags *f, const char *fallback,
                       const char *data_dir, const struct ab_log *log, struct ab_http_server *srv,
                       struct cmd_results *r);
void cmd_results_detach(struct cmd_results *r); /* stops the schedule, waits for an analysis */
int cmd_report_main(int argc, char **argv, struct ab_log *log);

/* Flags of the nightly report, which `abacus web` and `abacus up` take too. */
struct cmd_report_flags {
    long at_minute;      /* --report-at HH:MM UTC as minutes after midnight; -1: off */
    const char *webhook; /* --report-webhook URL, or NULL */
    long attempts;       /* --report-webhook-attempts N; 0 = the default (6) */
    long backoff_ms;     /* --report-webhook-backoff-ms MS; 0 = the default (2000) */
};
#define CMD_REPORT_OPTIONS                                                                         \
    {"report-at", required_argument, NULL, 'R'}, {"report-webhook", required_argument, NULL, 'W'}, \
        {"report-webhook-attempts", required_argument, NULL, 'X'},                                 \
        {"report-webhook-backoff-ms", required_argument, NULL, 'Y'}
#define CMD_REPORT_OPTSTRING "R:W:X:Y:"
#define CMD_REPORT_AT_DEFAULT 120L /* 02:00 UTC, in minutes */

/* Like cmd_server_flag, for the report flags. */
int cmd_report_flag(struct cmd_report_flags *f, int opt, const char *arg);

struct analyze_scheduler;
struct analyze_webhook;

/*
 * The report's wiring: where the data is (the control database and the collector's rejected
 * events under data_dir, the events in store), the scheduler and the webhook (both may be NULL).
 */
struct cmd_report {
    const char *data_dir;
    const struct cmd_events_store *store;
    struct analyze_scheduler *scheduler;
    struct analyze_webhook *webhook;
};

/*
 * analyze_report_run_cb over r (a struct cmd_report): opens DATA_DIR's databases, writes the
 * report of day_ms into out_dir, and queues its summary on r's webhook.
 */
enum ab_err cmd_report_run(void *r, int64_t day_ms, const char *out_dir, struct ab_errinfo *ei);

/*
 * Starts the webhook thread (with f->webhook) and the scheduler thread (unless at_minute is -1)
 * for data_dir into *r. Returns 0, or -1 with the reason printed. cmd_report_detach stops both.
 */
int cmd_report_attach(const struct cmd_report_flags *f, const char *data_dir,
                      const struct cmd_events_store *store, const struct ab_log *log,
                      struct cmd_report *r);
void cmd_report_detach(struct cmd_report *r);

int cmd_web_main(int argc, char **argv, struct ab_log *log);
int cmd_collect_main(int argc, char **argv, struct ab_log *log);

/* Parses a decimal integer in [min, max]; returns 0, or -1 with a message on stderr naming flag. */
int cmd_parse_int(const char *flag, const char *text, long min, long max, long *out);

/* Server flags every server subcommand takes (docs/design.md, "Components"). */
struct cmd_server_flags {
    const char *listen;    /* --listen ADDR, default 127.0.0.1 */
    long port;             /* --port N, default 8080; 0 = any free port */
    long threads;          /* --threads N, default 0 = number of cores */
    const char *port_file; /* --port-file PATH: write the bound port there once listening */
};

/*
 * Handles one server flag (getopt_long's opt and optarg) if it is one; returns 1 when handled, 0
 * when opt is not a server flag, -1 on a bad value (message printed).
 */
int cmd_server_flag(struct cmd_server_flags *f, int opt, const char *arg);

/* getopt_long option letters and long names of the server flags, for a subcommand's tables. */
#define CMD_SERVER_OPTIONS                                                                         \
    {"listen", required_argument, NULL, 'L'}, {"port", required_argument, NULL, 'p'},              \
        {"threads", required_argument, NULL, 't'}, {"port-file", required_argument, NULL, 'P'}
#define CMD_SERVER_OPTSTRING "L:p:t:P:"

/* Flags of the assign node, which `abacus up` accepts too and passes on. */
struct cmd_assign_flags {
    const char *snapshot_file; /* --snapshot-file PATH */
    const char *snapshot_url;  /* --snapshot-url URL (the manifest) */
    const char *cache_dir;     /* --cache-dir DIR, with --snapshot-url */
    long poll_s;               /* --poll-interval S, default 5 */
};
#define CMD_ASSIGN_OPTIONS                                                                         \
    {"snapshot-file", required_argument, NULL, 'f'},                                               \
        {"poll-interval", required_argument, NULL, 'i'},                                           \
        {"snapshot-url", required_argument, NULL, 'u'},                                            \
        {"cache-dir", required_argument, NULL, 'c'}
#define CMD_ASSIGN_OPTSTRING "f:i:u:c:"

/* Flags of the control plane, which `abacus up` accepts too. */
struct cmd_web_flags {
    long keep_snapshots;   /* --keep-snapshots N, default 10 */
    long debounce_ms;      /* --publish-debounce-ms MS, default 300 */
    long manifest_max_age; /* --manifest-max-age S, default 0 (no-cache) */
};
#define CMD_WEB_OPTIONS                                                                            \
    {"keep-snapshots", required_argument, NULL, 'K'},                                              \
        {"publish-debounce-ms", required_argument, NULL, 'B'},                                     \
        {"manifest-max-age", required_argument, NULL, 'M'}
#define CMD_WEB_OPTSTRING "K:B:M:"

/* Like cmd_server_flag, for the control-plane flags. */
int cmd_web_flag(struct cmd_web_flags *f, int opt, const char *arg);

struct web;

/*
 * Creates the control plane over data_dir (migrating it, creating the first admin key), mounts it
 * on srv and starts its publisher (*out; stop and free it after the server). on_publish (may be
 * NULL) is called with each new snapshot file. results (may be NULL: the results routes answer
 * 503) answers the results routes. Returns 0, or -1 with the reason printed.
 */
int cmd_web_attach(const struct cmd_web_flags *f, const char *data_dir, const struct ab_log *log,
                   struct ab_http_server *srv, void (*on_publish)(void *, const char *, int64_t),
                   void *data, struct cmd_results *results, struct web **out);

/* Like cmd_server_flag, for the assign flags. */
int cmd_assign_flag(struct cmd_assign_flags *f, int opt, const char *arg);

/* The snapshot source the flags name (for an assign node, or a collector). */
struct ab_follower_source cmd_snapshot_source(const struct cmd_assign_flags *f);

struct assign_node;

/*
 * When f names a snapshot file or URL, creates an assign node, mounts it on srv and starts it
 * (*out; stop and free it after the server). Returns 0 (also when there is nothing to attach),
 * or -1 with the reason printed.
 */
int cmd_assign_attach(const struct cmd_assign_flags *f, const struct ab_log *log,
                      struct ab_http_server *srv, struct assign_node **out);

/*
 * Creates the HTTP server of flags, attaches the assign node of aflags (if it names a snapshot),
 * serves until SIGINT/SIGTERM (cmd_serve) and cleans up. Returns an exit code.
 */
int cmd_serve_with_assign(const struct cmd_server_flags *flags,
                          const struct cmd_assign_flags *aflags, const struct ab_log *log,
                          const char *what);

struct collect_node;

/* Flags of the collector that `abacus up` accepts too (forwarding to ClickHouse). */
struct cmd_collect_flags {
    long queue_events;     /* --queue-events N, 0 = default */
    const char *forward;   /* --forward clickhouse://HOST:PORT/DB */
    long outbox_max;       /* --outbox-max-events N, 0 = default */
    long retention_days;   /* --retention-days N, -1 = default (7 with --forward), 0 = keep */
    long forward_batch;    /* --forward-batch N, 0 = default */
};
#define CMD_COLLECT_OPTIONS                                                                        \
    {"forward", required_argument, NULL, 'F'},                                                     \
        {"outbox-max-events", required_argument, NULL, 'O'},                                       \
        {"retention-days", required_argument, NULL, 'r'},                                          \
        {"forward-batch", required_argument, NULL, 'b'}
#define CMD_COLLECT_OPTSTRING "F:O:r:b:"

/* Like cmd_server_flag, for the forwarding flags. */
int cmd_collect_flag(struct cmd_collect_flags *f, int opt, const char *arg);

/*
 * When db is not NULL, creates a collector storing into db (cflags: queue bound and forwarding,
 * may be NULL for the defaults) and checking keys against the snapshot of aflags, mounts it on srv
 * and starts it (*out; stop and free it after the server). Returns 0, or -1 with the reason
 * printed.
 */
int cmd_collect_attach(const char *db, const struct cmd_collect_flags *cflags,
                       const struct cmd_assign_flags *aflags, const struct ab_log *log,
                       struct ab_http_server *srv, struct collect_node **out);

/* Applies the flags to a server configuration. */
void cmd_server_config(const struct cmd_server_flags *f, struct ab_http_config *cfg);

/*
 * Starts srv, writes the port file if asked, logs where it listens, and runs until SIGINT or
 * SIGTERM (which main() blocks in every thread); then stops gracefully. Returns an exit code.
 */
int cmd_serve(struct ab_http_server *srv, const struct cmd_server_flags *f,
              const struct ab_log *log, const char *what);

/* cmd_serve that calls started(data, port) once the server listens (data is the caller's). */
int cmd_serve_notify(struct ab_http_server *srv, const struct cmd_server_flags *f,
                     const struct ab_log *log, const char *what,
                     void (*started)(void *data, uint16_t port), void *data);

#endif
