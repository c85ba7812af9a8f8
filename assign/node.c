/*
 * The assign node's lifecycle: a snapshot follower (lib/follower: a watched file, or replication
 * from a control plane or mirror) hands each verified snapshot to node_ready, which compiles it
 * off the request path and publishes it in the holder (lib/holder) that the HTTP handlers
 * (api.c) read without a lock. Also the node's readiness and metrics.
 */
#include <stdio.h>
#include <stdlib.h>
#include "abacus/mem.h"
#include "assign.h"
#include "assign_int.h"

/* The follower's callback: compiles s and makes it current. */
static enum ab_err node_ready(void *data, struct ab_snapshot *s, struct ab_errinfo *ei)
{
    struct assign_node *n = data;
    int64_t t0 = ab_clock_mono_ns(n->clock);
    struct assign_snap *snap = NULL;
    enum ab_err rc = assign_snap_compile(s, &snap, ei);
    if (rc == AB_OK) {
        AB_LOG_D(n->log, "snapshot_compiled", "version=%lld experiments=%zu compile_ms=%.1f",
                 (long long)s->version, s->nexperiments,
                 (double)(ab_clock_mono_ns(n->clock) - t0) / 1e6);
        ab_holder_publish(&n->holder, snap);
    }
    ab_snapshot_free(s);
    return rc;
}

static void snap_free(void *snap)
{
    assign_snap_release(snap);
}

static int ready_cb(void *data, char *reason, size_t len)
{
    struct assign_node *n = data;
    if (ab_follower_version(n->follower) > 0)
        return 1;
    snprintf(reason, len, "no valid snapshot loaded yet from %s",
             ab_follower_source(n->follower));
    return 0;
}

static void metrics_cb(void *data, FILE *out)
{
    struct assign_node *n = data;
    ab_follower_metrics(n->follower, out);
}

enum ab_err assign_node_new(const struct assign_node_config *cfg, struct assign_node **out,
                            struct ab_errinfo *ei)
{
    *out = NULL;
    struct assign_node *n = ab_mem_calloc(1, sizeof(*n));
    n->log = cfg->log;
    n->clock = cfg->clock != NULL ? cfg->clock : &ab_clock_system;
    struct ab_follower_config fc = {.source = cfg->snapshot,
                                    .metrics_prefix = "abacus_snapshot",
                                    .component = "assign",
                                    .ready = node_ready,
                                    .data = n,
                                    .log = cfg->log,
                                    .clock = n->clock};
    enum ab_err rc = ab_follower_new(&fc, &n->follower, ei);
    if (rc != AB_OK) {
        free(n);
        return rc;
    }
    *out = n;
    return AB_OK;
}

enum ab_err assign_node_mount(struct assign_node *n, struct ab_http_server *srv,
                              struct ab_errinfo *ei)
{
    ab_holder_init(&n->holder, ab_http_server_threads(srv), snap_free);
    enum ab_err rc = assign_api_mount(n, srv, ei);
    if (rc != AB_OK)
        return rc;
    ab_http_add_ready_check(srv, ready_cb, n);
    ab_http_add_metrics(srv, metrics_cb, n);
    return AB_OK;
}

enum ab_err assign_node_start(struct assign_node *n, struct ab_errinfo *ei)
{
    return ab_follower_start(n->follower, ei);
}

void assign_node_poke(struct assign_node *n)
{
    ab_follower_poke(n->follower);
}

void assign_node_stop(struct assign_node *n)
{
    if (n != NULL)
        ab_follower_stop(n->follower);
}

void assign_node_free(struct assign_node *n)
{
    if (n == NULL)
        return;
    ab_follower_free(n->follower);
    ab_holder_dispose(&n->holder);
    free(n);
}
