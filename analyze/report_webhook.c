/*
 * The report's notification (analyze.h): a thread that POSTs each report's summary as JSON to
 * --report-webhook (Slack's incoming-webhook "text" plus the structured summary) with libcurl,
 * and retries a failed delivery (no connection, timeout, or a status other than 2xx) with
 * doubling backoff up to a bounded number of attempts. The report never waits for it: notify
 * queues and returns. A stop abandons pending retries at once.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include "abacus/mem.h"
#include "analyze.h"

#define BACKOFF_MAX_MS 300000

struct item {
    json_t *summary;
    struct item *next;
};

struct analyze_webhook {
    struct analyze_webhook_config cfg;
    char *url;
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;  /* CLOCK_MONOTONIC: work queued, work done, stop */
    struct item *head, *tail;
    int busy; /* a delivery is under way */
    int stop;
    int64_t delivered, failed;
    pthread_t thread;
};

static size_t discard(char *ptr, size_t size, size_t n, void *data)
{
    (void)ptr;
    (void)data;
    return size * n;
}

/* One POST; 0 on a 2xx answer, else -1 with the reason in why. */
static int post(struct analyze_webhook *w, const char *body, char *why, size_t whylen)
{
    CURL *c = curl_easy_init();
    if (c == NULL) {
        snprintf(why, whylen, "curl_easy_init failed");
        return -1;
    }
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)w->cfg.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "abacus-report");
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(c);
    if (cc != CURLE_OK) {
        snprintf(why, whylen, "%s", err[0] != '\0' ? err : curl_easy_strerror(cc));
        return -1;
    }
    if (status < 200 || status > 299) {
        snprintf(why, whylen, "HTTP status %ld", status);
        return -1;
    }
    return 0;
}

/* Waits ms (monotonic) unless stopped; returns 1 when stopped. Called with the lock held. */
static int sleep_or_stop(struct analyze_webhook *w, int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    int64_t ns = (int64_t)ts.tv_nsec + (ms % 1000) * 1000000;
    ts.tv_sec += (time_t)(ms / 1000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    while (!w->stop && pthread_cond_timedwait(&w->cond, &w->lock, &ts) != ETIMEDOUT) {
    }
    return w->stop;
}

static void deliver(struct analyze_webhook *w, struct item *it)
{
    char *body = json_dumps(it->summary, JSON_COMPACT); /* Slack reads "text", others the rest */
    const char *date = json_string_value(json_object_get(it->summary, "date"));
    int64_t backoff = w->cfg.backoff_ms;
    int ok = 0;
    for (int attempt = 1; attempt <= w->cfg.attempts && body != NULL; attempt++) {
        char why[CURL_ERROR_SIZE + 32];
        if (post(w, body, why, sizeof(why)) == 0) {
            AB_LOG_I(w->cfg.log, "report_webhook_delivered", "date=%s attempt=%d", date, attempt);
            ok = 1;
            break;
        }
        AB_LOG_W(w->cfg.log, "report_webhook_failed", "date=%s attempt=%d of=%d error=%s", date,
                 attempt, w->cfg.attempts, why);
        if (attempt == w->cfg.attempts)
            break;
        pthread_mutex_lock(&w->lock);
        int stopped = sleep_or_stop(w, backoff);
        pthread_mutex_unlock(&w->lock);
        if (stopped)
            break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    free(body);
    pthread_mutex_lock(&w->lock);
    if (ok)
        w->delivered++;
    else
        w->failed++;
    pthread_mutex_unlock(&w->lock);
    if (!ok)
        AB_LOG_E(w->cfg.log, "report_webhook_gave_up", "date=%s", date);
}

static void *webhook_main(void *arg)
{
    struct analyze_webhook *w = arg;
    pthread_mutex_lock(&w->lock);
    for (;;) {
        while (!w->stop && w->head == NULL)
            pthread_cond_wait(&w->cond, &w->lock);
        if (w->stop)
            break;
        struct item *it = w->head;
        w->head = it->next;
        if (w->head == NULL)
            w->tail = NULL;
        w->busy = 1;
        pthread_mutex_unlock(&w->lock);
        deliver(w, it);
        json_decref(it->summary);
        free(it);
        pthread_mutex_lock(&w->lock);
        w->busy = 0;
        pthread_cond_broadcast(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return NULL;
}

enum ab_err analyze_webhook_new(const struct analyze_webhook_config *cfg,
                                struct analyze_webhook **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (cfg->url == NULL ||
        (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "report-webhook", "must be an http(s) URL");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "libcurl cannot initialize");
    struct analyze_webhook *w = ab_mem_calloc(1, sizeof(*w));
    w->cfg = *cfg;
    w->url = ab_mem_strdup(cfg->url);
    w->cfg.url = w->url;
    if (w->cfg.attempts <= 0)
        w->cfg.attempts = 6;
    if (w->cfg.backoff_ms <= 0)
        w->cfg.backoff_ms = 2000;
    if (w->cfg.timeout_ms <= 0)
        w->cfg.timeout_ms = 10000;
    pthread_mutex_init(&w->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &ca);
    pthread_condattr_destroy(&ca);
    int err = pthread_create(&w->thread, NULL, webhook_main, w);
    if (err != 0) {
        pthread_cond_destroy(&w->cond);
        pthread_mutex_destroy(&w->lock);
        free(w->url);
        free(w);
        curl_global_cleanup();
        return ab_fail(ei, AB_ERR_INTERNAL, NULL, "cannot start the webhook thread: %s",
                       strerror(err));
    }
    *out = w;
    return AB_OK;
}

void analyze_webhook_notify(struct analyze_webhook *w, json_t *summary)
{
    struct item *it = ab_mem_calloc(1, sizeof(*it));
    it->summary = json_incref(summary);
    pthread_mutex_lock(&w->lock);
    if (w->tail != NULL)
        w->tail->next = it;
    else
        w->head = it;
    w->tail = it;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

void analyze_webhook_drain(struct analyze_webhook *w)
{
    pthread_mutex_lock(&w->lock);
    while (!w->stop && (w->head != NULL || w->busy))
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
}

void analyze_webhook_counts(struct analyze_webhook *w, int64_t *delivered, int64_t *failed)
{
    pthread_mutex_lock(&w->lock);
    *delivered = w->delivered;
    *failed = w->failed;
    pthread_mutex_unlock(&w->lock);
}

void analyze_webhook_free(struct analyze_webhook *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    pthread_join(w->thread, NULL);
    while (w->head != NULL) {
        struct item *it = w->head;
        w->head = it->next;
        json_decref(it->summary);
        free(it);
    }
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w->url);
    free(w);
    curl_global_cleanup();
}
