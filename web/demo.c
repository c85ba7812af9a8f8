/*
 * The demo (`abacus up` on an empty data dir, or --demo): seeds demo metrics and three demo
 * experiments (a clear winner, an inconclusive one, one with a guardrail metric that gets worse),
 * started 14 days ago, and an ingest key; then a thread drives simulated users through the
 * platform's own HTTP APIs on loopback (GET /v1/assign for the variant, POST /v1/events for the
 * exposure and metric events, with timestamps spread over the 14 past days) and finally runs the
 * analysis of each demo experiment, so the UI shows real results within a minute. The simulation
 * is seeded, so every demo tells the same story. Not a test double: it uses the same code paths
 * as any client.
 */
#include <curl/curl.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/mem.h"
#include "web_int.h"

#define DAY_MS ((int64_t)24 * 3600 * 1000)
#define DEMO_DAYS 14
#define UNITS_PER_EXPERIMENT 8000
#define BATCH 400 /* events per POST /v1/events (at most 500; a unit adds up to 3) */

struct demo_metric {
    const char *key, *name, *type, *event, *direction;
};

static const struct demo_metric METRICS[] = {
    {"demo-purchase", "Purchase (demo)", "binomial", "demo_purchase", "increase"},
    {"demo-revenue", "Revenue per user (demo)", "mean", "demo_purchase", "increase"},
    {"demo-signup", "Sign-up (demo)", "binomial", "demo_signup", "increase"},
    {"demo-page-load", "Page load time, ms (demo)", "mean", "demo_page_load", "decrease"},
};

/* What a simulated unit in a variant does: conversion probabilities and the page load time. */
struct demo_behaviour {
    double purchase;   /* P(purchase) */
    double signup;     /* P(sign-up) */
    double load_ms;    /* mean page load, ms (0: no page_load event) */
};

struct demo_experiment {
    const char *key, *name, *description;
    int nvariants;
    const char *variants[3];
    struct demo_behaviour does[3];
    int nmetrics;
    const char *metrics[3], *roles[3];
};

static const struct demo_experiment EXPERIMENTS[] = {
    {"demo-checkout-button", "Green checkout button (demo)",
     "Demo: a green checkout button against the grey one. Expect a clear winner.",
     2,
     {"control", "green"},
     {{0.10, 0, 0}, {0.14, 0, 0}},
     2,
     {"demo-purchase", "demo-revenue"},
     {"goal", "secondary"}},
    {"demo-search-ranking", "New search ranking (demo)",
     "Demo: a new search ranking that changes nothing measurable. Expect an inconclusive result.",
     2,
     {"control", "new-ranking"},
     {{0.10, 0, 0}, {0.10, 0, 0}},
     2,
     {"demo-purchase", "demo-revenue"},
     {"goal", "secondary"}},
    {"demo-onboarding-flow", "Onboarding flow (demo)",
     "Demo: two new onboarding flows. Both raise sign-ups; the guided one slows pages down (the "
     "guardrail metric).",
     3,
     {"control", "short", "guided"},
     {{0, 0.20, 800}, {0, 0.26, 805}, {0, 0.27, 920}},
     2,
     {"demo-signup", "demo-page-load"},
     {"goal", "guardrail"}},
};

#define NEXP (sizeof(EXPERIMENTS) / sizeof(EXPERIMENTS[0]))

struct web_demo {
    struct web *w;
    int64_t start_ms;      /* the demo experiments' phase start, ms since epoch */
    int64_t now_ms;        /* when the demo began */
    char ingest_key[80];
    uint16_t port;
    pthread_t thread;
    int started;
    atomic_int stop;
    uint64_t rng;          /* splitmix64 state */
    CURL *curl;
    char *resp;            /* the last response body */
    size_t resp_len, resp_cap;
    void (*on_ready)(void *data); /* after the demo's results exist (web_demo_on_ready) */
    void *on_ready_data;
};

/* ---------------------------------------------------------------- seeding */

static enum ab_err seed_metric(struct ab_db *db, const struct demo_metric *m,
                               const struct web_actor *who, int64_t now, struct ab_errinfo *ei)
{
    json_t *found = NULL;
    if (web_store_metric_get(db, m->key, &found, ei) == AB_OK) {
        json_decref(found);
        return AB_OK; /* a demo that ran before */
    }
    json_t *in = json_pack("{s:s, s:s, s:s, s:s, s:s}", "key", m->key, "name", m->name, "type",
                           m->type, "event", m->event, "direction", m->direction);
    json_t *norm = NULL, *out = NULL;
    enum ab_err rc = web_validate_metric(in, &norm, ei);
    if (rc == AB_OK)
        rc = web_store_metric_create(db, norm, who, now, &out, ei);
    json_decref(in);
    json_decref(norm);
    json_decref(out);
    return rc;
}

static enum ab_err seed_experiment(struct ab_db *db, const struct demo_experiment *x,
                                   const struct web_actor *who, int64_t start,
                                   struct ab_errinfo *ei)
{
    json_t *found = NULL;
    if (web_store_experiment_get(db, x->key, &found, ei) == AB_OK) {
        json_decref(found);
        return AB_OK;
    }
    json_t *variants = json_array(), *metrics = json_array();
    for (int i = 0; i < x->nvariants; i++)
        json_array_append_new(variants, json_pack("{s:s, s:f}", "key", x->variants[i], "weight",
                                                  1.0 / x->nvariants));
    for (int i = 0; i < x->nmetrics; i++)
        json_array_append_new(metrics,
                              json_pack("{s:s, s:s}", "key", x->metrics[i], "role", x->roles[i]));
    json_t *in = json_pack("{s:s, s:s, s:s, s:o, s:o, s:I}", "key", x->key, "name", x->name,
                           "description", x->description, "variants", variants, "metrics",
                           metrics, "planned_sample_size", (json_int_t)UNITS_PER_EXPERIMENT);
    json_t *norm = NULL, *out = NULL;
    enum ab_err rc = web_validate_experiment(in, &norm, ei);
    if (rc == AB_OK)
        rc = web_store_experiment_create(db, norm, who, start - (int64_t)3600 * 1000, &out, ei);
    json_decref(out);
    out = NULL;
    if (rc == AB_OK)
        rc = web_store_experiment_transition(db, x->key, "start", who, start, &out, ei);
    json_decref(in);
    json_decref(norm);
    json_decref(out);
    return rc;
}

enum ab_err web_demo_new(struct web *w, struct web_demo **out, struct ab_errinfo *ei)
{
    *out = NULL;
    struct web_demo *d = ab_mem_calloc(1, sizeof(*d));
    d->w = w;
    d->now_ms = ab_clock_now_ms(w->cfg.clock);
    d->start_ms = d->now_ms - DEMO_DAYS * DAY_MS;
    d->rng = 0x5eed0abac05ULL; /* a fixed seed: every demo tells the same story */
    struct web_actor who = {"system:demo"};
    struct ab_db *db = NULL;
    enum ab_err rc = web_db_open(w, &db, ei);
    for (size_t i = 0; rc == AB_OK && i < sizeof(METRICS) / sizeof(METRICS[0]); i++)
        rc = seed_metric(db, &METRICS[i], &who, d->start_ms - (int64_t)7200 * 1000, ei);
    for (size_t i = 0; rc == AB_OK && i < NEXP; i++)
        rc = seed_experiment(db, &EXPERIMENTS[i], &who, d->start_ms, ei);
    if (rc == AB_OK) {
        /* last, so the first snapshot with this key also has every demo experiment */
        char prefix[16], hash[65];
        json_t *row = NULL;
        web_key_generate("ingest", d->ingest_key, prefix, hash);
        rc = web_store_key_create(db, "ingest", "demo traffic", prefix, hash, &who, d->now_ms,
                                  &row, ei);
        json_decref(row);
    }
    ab_db_close(db);
    if (rc != AB_OK) {
        free(d);
        return rc;
    }
    web_changed(w);
    AB_LOG_I(w->cfg.log, "demo_seeded", "experiments=%zu start_ms=%lld", NEXP,
             (long long)d->start_ms);
    *out = d;
    return AB_OK;
}

/* ---------------------------------------------------------------- simulation */

static uint64_t next_u64(struct web_demo *d)
{
    uint64_t z = (d->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static double uniform(struct web_demo *d)
{
    return (double)(next_u64(d) >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(struct web_demo *d)
{
    double u = uniform(d), v = uniform(d);
    return sqrt(-2.0 * log(u > 0 ? u : 1e-300)) * cos(2 * M_PI * v);
}

static size_t on_body(char *ptr, size_t size, size_t n, void *data)
{
    struct web_demo *d = data;
    size_t len = size * n;
    if (d->resp_len + len + 1 > d->resp_cap) {
        d->resp_cap = (d->resp_len + len + 1) * 2;
        d->resp = ab_mem_realloc(d->resp, d->resp_cap);
    }
    memcpy(d->resp + d->resp_len, ptr, len);
    d->resp_len += len;
    d->resp[d->resp_len] = '\0';
    return len;
}

/* One request to this server; returns the status (0: no answer). The body is in d->resp. */
static long http(struct web_demo *d, const char *method, const char *path, const char *body)
{
    char url[2048];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)d->port, path);
    d->resp_len = 0;
    if (d->resp != NULL)
        d->resp[0] = '\0';
    struct curl_slist *h = NULL;
    char auth[128];
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", d->ingest_key);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, auth);
    curl_easy_setopt(d->curl, CURLOPT_URL, url);
    curl_easy_setopt(d->curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(d->curl, CURLOPT_HTTPGET, body == NULL ? 1L : 0L);
    if (body != NULL) {
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    long status = 0;
    if (curl_easy_perform(d->curl) == CURLE_OK)
        curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    return status;
}

static void pause_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* The variant the assign node gives unit in experiment, into out[64]; 0 on success. */
static int assign(struct web_demo *d, const char *experiment, const char *unit, char out[64])
{
    char path[512];
    snprintf(path, sizeof(path), "/v1/assign?experiment=%s&unit=%s", experiment, unit);
    if (http(d, "GET", path, NULL) != 200)
        return -1;
    json_t *doc = json_loads(d->resp, 0, NULL);
    const char *v = json_string_value(json_object_get(doc, "variant"));
    int ok = v != NULL && json_is_true(json_object_get(doc, "in_experiment"));
    if (ok)
        snprintf(out, 64, "%s", v);
    json_decref(doc);
    return ok ? 0 : -1;
}

/* Sends the batch of events; retries while the collector is not ready. 0 when stored. */
static int send_events(struct web_demo *d, json_t *events)
{
    json_t *body = json_pack("{s:O}", "events", events);
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    long st = 0;
    for (int tries = 0; tries < 300 && !atomic_load(&d->stop); tries++) {
        st = http(d, "POST", "/v1/events", text);
        if (st != 401 && st != 429 && st != 503)
            break;
        pause_ms(100); /* the collector has not loaded the snapshot with the key yet, or is busy */
    }
    if (st != 200)
        AB_LOG_W(d->w->cfg.log, "demo_events_refused", "status=%ld", st);
    free(text);
    json_array_clear(events);
    return st == 200 ? 0 : -1;
}

static void add_event(json_t *events, const char *id, const char *type, int64_t ts,
                      const char *unit, const char *k1, const char *v1, const char *k2,
                      const char *v2, double value)
{
    json_t *e = json_pack("{s:s, s:s, s:I, s:s, s:s}", "id", id, "type", type, "ts",
                          (json_int_t)ts, "unit", unit, k1, v1);
    if (k2 != NULL)
        json_object_set_new(e, k2, json_string(v2));
    else
        json_object_set_new(e, "value", json_real(value));
    json_array_append_new(events, e);
}

/* Simulates one experiment's units: assignment, exposure, and what each unit then does. */
static int simulate(struct web_demo *d, const struct demo_experiment *x, json_t *events)
{
    int64_t span = d->now_ms - (int64_t)3600 * 1000 - d->start_ms;
    for (int i = 0; i < UNITS_PER_EXPERIMENT && !atomic_load(&d->stop); i++) {
        char unit[96], variant[64], id[200];
        snprintf(unit, sizeof(unit), "%s-u%05d", x->key + 5, i);
        if (assign(d, x->key, unit, variant) != 0)
            return -1;
        int v = 0;
        while (v < x->nvariants && strcmp(x->variants[v], variant) != 0)
            v++;
        if (v == x->nvariants)
            return -1;
        const struct demo_behaviour *b = &x->does[v];
        int64_t seen = d->start_ms + (int64_t)(uniform(d) * (double)span);
        int64_t latest = d->now_ms - (int64_t)60 * 1000;
        snprintf(id, sizeof(id), "demo:%s:exposure", unit);
        add_event(events, id, "exposure", seen, unit, "experiment", x->key, "variant", variant,
                  0);
        if (b->purchase > 0 && uniform(d) < b->purchase) {
            int64_t at = seen + (int64_t)(uniform(d) * 2 * DAY_MS);
            snprintf(id, sizeof(id), "demo:%s:purchase", unit);
            add_event(events, id, "metric", at < latest ? at : latest, unit, "metric",
                      "demo_purchase", NULL, NULL, 20 + 60 * uniform(d));
        }
        if (b->signup > 0 && uniform(d) < b->signup) {
            int64_t at = seen + (int64_t)(uniform(d) * 3600 * 1000);
            snprintf(id, sizeof(id), "demo:%s:signup", unit);
            add_event(events, id, "metric", at < latest ? at : latest, unit, "metric",
                      "demo_signup", NULL, NULL, 1);
        }
        if (b->load_ms > 0) {
            snprintf(id, sizeof(id), "demo:%s:page_load", unit);
            double ms = b->load_ms + 250 * normal(d);
            add_event(events, id, "metric", seen + 1000, unit, "metric", "demo_page_load", NULL,
                      NULL, ms > 50 ? ms : 50);
        }
        if (json_array_size(events) >= BATCH && send_events(d, events) != 0)
            return -1;
    }
    return json_array_size(events) > 0 ? send_events(d, events) : 0;
}

static void *demo_main(void *arg)
{
    struct web_demo *d = arg;
    const struct ab_log *log = d->w->cfg.log;
    json_t *events = json_array();
    /* wait until the node serves the demo experiments (the first publish after seeding) */
    char variant[64];
    int ready = 0;
    for (int i = 0; i < 600 && !ready && !atomic_load(&d->stop); i++) {
        ready = assign(d, EXPERIMENTS[NEXP - 1].key, "demo-probe", variant) == 0;
        if (!ready)
            pause_ms(50);
    }
    int ok = ready;
    for (size_t i = 0; ok && i < NEXP && !atomic_load(&d->stop); i++) {
        ok = simulate(d, &EXPERIMENTS[i], events) == 0;
        AB_LOG_I(log, "demo_traffic", "experiment=%s ok=%d", EXPERIMENTS[i].key, ok);
    }
    json_decref(events);
    for (size_t i = 0; ok && i < NEXP && !atomic_load(&d->stop); i++) {
        struct ab_errinfo ei;
        json_t *out = NULL;
        if (d->w->cfg.results == NULL ||
            d->w->cfg.results(d->w->cfg.results_data, EXPERIMENTS[i].key, WEB_RESULTS_RECOMPUTE, 0,
                              &out, &ei) != AB_OK) {
            AB_LOG_W(log, "demo_analysis_failed", "experiment=%s", EXPERIMENTS[i].key);
            ok = 0;
        }
        json_decref(out);
    }
    if (atomic_load(&d->stop))
        return NULL;
    if (ok) {
        AB_LOG_I(log, "demo_ready", "experiments=%zu", NEXP);
        if (d->on_ready != NULL)
            d->on_ready(d->on_ready_data);
        if (d->w->cfg.announce != NULL) {
            fprintf(d->w->cfg.announce,
                    "abacus: the demo is ready: %zu experiments with 14 days of simulated "
                    "traffic and results (experiments named demo-*)\n",
                    NEXP);
            fflush(d->w->cfg.announce);
        }
    } else {
        AB_LOG_E(log, "demo_failed", "status=%s", ready ? "traffic" : "node_not_ready");
    }
    return NULL;
}

void web_demo_on_ready(struct web_demo *d, void (*cb)(void *data), void *data)
{
    d->on_ready = cb;
    d->on_ready_data = data;
}

enum ab_err web_demo_start(struct web_demo *d, uint16_t port, struct ab_errinfo *ei)
{
    d->port = port;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "libcurl cannot initialize");
    d->curl = curl_easy_init();
    if (d->curl == NULL) {
        curl_global_cleanup();
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot create a curl handle for the demo");
    }
    curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, d);
    curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(d->curl, CURLOPT_TIMEOUT, 30L);
    if (pthread_create(&d->thread, NULL, demo_main, d) != 0)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the demo thread");
    d->started = 1;
    return AB_OK;
}

void web_demo_free(struct web_demo *d)
{
    if (d == NULL)
        return;
    atomic_store(&d->stop, 1);
    if (d->started)
        pthread_join(d->thread, NULL);
    if (d->curl != NULL) {
        curl_easy_cleanup(d->curl);
        curl_global_cleanup();
    }
    free(d->resp);
    free(d);
}
