/*
 * The assignment component's one public header: an assign node that serves experiment
 * assignments from a compiled snapshot (docs/design.md, "Assignment"). main.c creates a node,
 * mounts its routes on an HTTP server and starts it; the node follows its snapshot source and
 * swaps in each newer verified snapshot. The request path takes no lock and makes no SQLite call.
 */
#ifndef ABACUS_ASSIGN_H
#define ABACUS_ASSIGN_H

#include <stdint.h>
#include "abacus/clock.h"
#include "abacus/err.h"
#include "abacus/follower.h"
#include "abacus/http.h"
#include "abacus/log.h"

struct assign_node;

struct assign_node_config {
    struct ab_follower_source snapshot; /* a file, or replication from a manifest URL */
    const struct ab_log *log;
    const struct ab_clock *clock;
};

/* Creates a node; nothing is loaded until assign_node_start. */
enum ab_err assign_node_new(const struct assign_node_config *cfg, struct assign_node **out,
                            struct ab_errinfo *ei);

/*
 * Registers the node's routes on srv (GET/POST /v1/assign, GET /api/features/{clientKey},
 * POST /api/eval/{clientKey}), its readiness check (ready once a snapshot is loaded) and its
 * metrics (snapshot version, age, reloads and rejections by reason).
 */
enum ab_err assign_node_mount(struct assign_node *node, struct ab_http_server *srv,
                              struct ab_errinfo *ei);

/*
 * File mode: loads the snapshot file now (a missing or invalid file is logged and retried; the
 * node is then not ready) and starts the thread that watches it. Replication mode
 * (snapshot_url): serves the newest valid snapshot of the cache dir at once, then starts the
 * thread that polls the manifest (with jitter), downloads newer versions, verifies them (size,
 * SHA-256, quick_check, format, every experiment), moves them into the cache dir and swaps them
 * in. Any failure keeps the served snapshot, is counted by reason in /metrics and retried with
 * backoff (docs/replication.md).
 */
enum ab_err assign_node_start(struct assign_node *node, struct ab_errinfo *ei);

/* Asks the watcher to check the file or the source now (any thread). */
void assign_node_poke(struct assign_node *node);

/* Stops the watcher thread. */
void assign_node_stop(struct assign_node *node);

/* Frees a stopped node (after the HTTP server has stopped). Accepts NULL. */
void assign_node_free(struct assign_node *node);

#endif
