/*
 * The web component's one public header: the control plane (docs/design.md, "Control plane").
 * It owns the control database under DATA_DIR, answers the admin JSON API under /api/v1/
 * (experiments, layers, metrics, API keys, audit log, snapshots; admin API keys as Bearer
 * tokens), and publishes immutable, versioned snapshot files that assign nodes and collectors
 * fetch through GET /v1/snapshots/latest and /v1/snapshots/{version}.db. main.c creates it,
 * mounts it on an HTTP server and starts it.
 * It also serves the browser UI (web/static/, compiled into the binary) and its sessions: users
 * with roles, argon2id passwords, session cookies with CSRF tokens (docs/admin-api.md).
 */
#ifndef ABACUS_WEB_H
#define ABACUS_WEB_H

#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "abacus/clock.h"
#include "abacus/db.h"
#include "abacus/err.h"
#include "abacus/http.h"
#include "abacus/log.h"

struct web;

/* What a results request asks the analysis for. */
enum web_results_ask {
    WEB_RESULTS_STORED,    /* the stored results (as_of_ms 0), or those kept at as_of_ms */
    WEB_RESULTS_RECOMPUTE, /* computed now from the events store, stored, answered */
    WEB_RESULTS_HISTORY,   /* the list of kept computations */
};

/*
 * The analysis, wired in by main (components do not include each other): experiment key's
 * results as ask says. *out is a new reference. Errors as analyze.h's (AB_ERR_NOT_FOUND: no
 * experiment or no results yet; AB_ERR_UNAVAILABLE: the events store cannot be reached).
 */
typedef enum ab_err (*web_results_cb)(void *data, const char *key, enum web_results_ask ask,
                                      int64_t as_of_ms, json_t **out, struct ab_errinfo *ei);

/* Called after each publish with the path of the new snapshot file (for `abacus up`). */
typedef void (*web_publish_cb)(void *data, const char *path, int64_t version);

struct web_config {
    const char *data_dir;       /* required: abacus.db, admin.key and snapshots/ live here */
    int keep_snapshots;         /* snapshot files kept (newest first); 0 = 10 */
    int debounce_ms;            /* quiet time after a change before the automatic publish;
                                   0 = 300; a steady stream of changes publishes at least
                                   every 10 debounce periods */
    int manifest_max_age_s;     /* Cache-Control max-age of the manifest; 0 = no-cache */
    const struct ab_log *log;
    const struct ab_clock *clock;
    web_publish_cb on_publish;  /* may be NULL */
    void *on_publish_data;
    FILE *announce;             /* where a generated admin key is printed (stdout); NULL: none */
    web_results_cb results;     /* GET .../results and POST .../analyze; NULL: they answer 503 */
    void *results_data;
    int64_t session_idle_s;     /* a session unused this long ends; 0 = 1800 */
    int64_t session_max_s;      /* a session ends this long after login; 0 = 43200 (12 h) */
    int login_limit_email;      /* failed logins per email per 15 min before 429; 0 = 5 */
    int login_limit_ip;         /* failed logins per client address per 15 min; 0 = 20 */
};

/*
 * Creates the component: makes DATA_DIR and DATA_DIR/snapshots, migrates the control database,
 * and when no admin key exists creates one, prints it to cfg->announce and writes it to
 * DATA_DIR/admin.key (mode 0600); when no user exists creates admin@localhost with a random
 * password, printed to cfg->announce and written to DATA_DIR/admin.password (mode 0600).
 * Errors: AB_ERR_IO, AB_ERR_STORAGE, AB_ERR_SCHEMA_TOO_NEW.
 */
enum ab_err web_new(const struct web_config *cfg, struct web **out, struct ab_errinfo *ei);

/* Registers the admin API and the snapshot routes on srv, and the publisher's metrics. */
enum ab_err web_mount(struct web *w, struct ab_http_server *srv, struct ab_errinfo *ei);

/*
 * Publishes a first snapshot when none exists yet (so a node following this control plane has
 * something valid to serve) and starts the publisher thread.
 */
enum ab_err web_start(struct web *w, struct ab_errinfo *ei);

/* Stops the publisher thread (a pending change is published first). */
void web_stop(struct web *w);

/*
 * The demo (web/demo.c). web_demo_new seeds, after web_start, demo metrics and experiments (keys
 * "demo-*", started 14 days ago; kept when they exist already) and an ingest key for the demo
 * traffic. web_demo_start then runs, on its own thread, simulated users through GET /v1/assign
 * and POST /v1/events of the server on 127.0.0.1:port (which must serve the snapshots this
 * component publishes, and collect events), and finally the analysis of each demo experiment
 * (cfg.results). web_demo_free stops and joins the thread (call it before web_free); accepts NULL.
 */
struct web_demo;
enum ab_err web_demo_new(struct web *w, struct web_demo **out, struct ab_errinfo *ei);
enum ab_err web_demo_start(struct web_demo *d, uint16_t port, struct ab_errinfo *ei);
/* cb(data) runs on the demo's thread once its traffic and results exist (set before start). */
void web_demo_on_ready(struct web_demo *d, void (*cb)(void *data), void *data);
void web_demo_free(struct web_demo *d);

/*
 * For the nightly report's stale-snapshot check, on a connection to the control database
 * (DATA_DIR/abacus.db): *since_ms gets the time of the oldest change to what snapshots carry
 * (experiments, layers, client and ingest keys) made before as_of_ms and after the newest
 * snapshot published before as_of_ms; 0 when there is none.
 */
enum ab_err web_unpublished_since(struct ab_db *control, int64_t as_of_ms, int64_t *since_ms,
                                  struct ab_errinfo *ei);

/* Frees a stopped component after the HTTP server has stopped. Accepts NULL. */
void web_free(struct web *w);

#endif
