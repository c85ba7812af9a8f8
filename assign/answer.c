/*
 * The answers of /v1/assign, the one place their shape is written: every field of an assignment
 * ({"experiment","unit","in_experiment","variant","variation_id","hash_value","payload","reason",
 * "phase","snapshot_version"}) and of the POST's envelope ({"snapshot_version","assignments"}).
 * When a snapshot is compiled, each experiment's answer is written once around what varies per
 * request (assign_answer_compile: the fragments of struct assign_entry); per request, the unit is
 * evaluated and its answer is copied together from those fragments, the unit, the hash and the
 * reason. The HTTP handlers (api.c) only allocate the writer and send what it holds.
 *
 * The fragments of an experiment's struct assign_entry:
 *   head {"experiment":"KEY","unit":   + the unit + ,"in_experiment":B
 *   variant[v] ,"variant":"V","variation_id":v,"hash_value":   + the hash or null
 *   payload[v] ,"payload":{...},"reason":"   + the reason + tail ","phase":N,"snapshot_version":S}
 * and, for the answer most units get (in the experiment by their hash), joined further:
 *   head + the unit + hashed_pre[v] (,"in_experiment":true + variant[v]) + the hash
 *   + hashed_post[v] (payload[v] + hashed + tail)
 * A running experiment also has hashed_join[v]: hashed_post[v] followed by , and the head of the
 * next running experiment (none after the last), for the answer listing every running one.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "assign_int.h"

/* ---------------------------------------------------------------- fragments, at compile time */

/* What w holds, as text of its own; w is emptied for the next piece. */
static struct assign_text take_text(struct ab_jsonw *w)
{
    struct assign_text t = {ab_mem_calloc(w->len + 1, 1), w->len};
    memcpy(t.p, w->buf, w->len);
    t.p[w->len] = '\0';
    w->len = 0;
    return t;
}

void assign_answer_compile(struct assign_entry *out, const struct ab_snapshot_experiment *e,
                           int64_t version)
{
    size_t nv = e->nvariants;
    out->variant = ab_mem_calloc(nv, sizeof(*out->variant));
    out->payload = ab_mem_calloc(nv, sizeof(*out->payload));
    out->hashed_pre = ab_mem_calloc(nv, sizeof(*out->hashed_pre));
    out->hashed_post = ab_mem_calloc(nv, sizeof(*out->hashed_post));
    struct ab_jsonw w;
    ab_jsonw_init(&w, SIZE_MAX);
    ab_jsonw_raw(&w, "{\"experiment\":", 14);
    ab_jsonw_str(&w, e->key, strlen(e->key));
    ab_jsonw_raw(&w, ",\"unit\":", 8);
    out->head = take_text(&w);
    for (size_t i = 0; i < nv; i++) {
        ab_jsonw_raw(&w, ",\"variant\":", 11);
        ab_jsonw_str(&w, e->variants[i].key, strlen(e->variants[i].key));
        ab_jsonw_raw(&w, ",\"variation_id\":", 16);
        ab_jsonw_int(&w, (long long)i);
        ab_jsonw_raw(&w, ",\"hash_value\":", 14);
        out->variant[i] = take_text(&w);
        char *payload =
            json_dumps(e->variants[i].payload, JSON_COMPACT | JSON_ENCODE_ANY | JSON_SORT_KEYS);
        ab_jsonw_raw(&w, ",\"payload\":", 11);
        ab_jsonw_raw(&w, payload, strlen(payload));
        ab_jsonw_raw(&w, ",\"reason\":\"", 11);
        free(payload);
        out->payload[i] = take_text(&w);
    }
    ab_jsonw_raw(&w, "\",\"phase\":", 10);
    ab_jsonw_int(&w, e->phase);
    ab_jsonw_raw(&w, ",\"snapshot_version\":", 20);
    ab_jsonw_int(&w, version);
    ab_jsonw_raw(&w, "}", 1);
    out->tail = take_text(&w);
    const char *hashed = assign_reason_name(ASSIGN_HASHED);
    for (size_t i = 0; i < nv; i++) {
        ab_jsonw_raw(&w, ",\"in_experiment\":true", 21);
        ab_jsonw_raw(&w, out->variant[i].p, out->variant[i].len);
        out->hashed_pre[i] = take_text(&w);
        ab_jsonw_raw(&w, out->payload[i].p, out->payload[i].len);
        ab_jsonw_raw(&w, hashed, strlen(hashed));
        ab_jsonw_raw(&w, out->tail.p, out->tail.len);
        out->hashed_post[i] = take_text(&w);
    }
    ab_jsonw_dispose(&w);
}

void assign_answer_join(struct assign_snap *snap)
{
    for (size_t k = 0; k < snap->nrunning; k++) {
        struct assign_entry *e = &snap->entries[snap->running[k]];
        const struct assign_entry *next =
            k + 1 < snap->nrunning ? &snap->entries[snap->running[k + 1]] : NULL;
        e->hashed_join = ab_mem_calloc(e->exp->nvariations, sizeof(*e->hashed_join));
        for (size_t v = 0; v < e->exp->nvariations; v++) {
            const struct assign_text *post = &e->hashed_post[v];
            size_t len = post->len + (next != NULL ? 1 + next->head.len : 0);
            struct assign_text *t = &e->hashed_join[v];
            *t = (struct assign_text){ab_mem_calloc(len + 1, 1), len};
            memcpy(t->p, post->p, post->len);
            if (next != NULL) {
                t->p[post->len] = ',';
                memcpy(t->p + post->len + 1, next->head.p, next->head.len);
            }
        }
    }
}

void assign_answer_free(struct assign_entry *e, size_t nvariants)
{
    for (size_t v = 0; v < nvariants; v++) {
        if (e->variant != NULL)
            free(e->variant[v].p);
        if (e->payload != NULL)
            free(e->payload[v].p);
        if (e->hashed_pre != NULL)
            free(e->hashed_pre[v].p);
        if (e->hashed_post != NULL)
            free(e->hashed_post[v].p);
        if (e->hashed_join != NULL)
            free(e->hashed_join[v].p);
    }
    free(e->variant);
    free(e->payload);
    free(e->hashed_pre);
    free(e->hashed_post);
    free(e->hashed_join);
    free(e->head.p);
    free(e->tail.p);
}

/* ---------------------------------------------------------------- answers, per request */

/* Copies t to o; returns the end. */
static char *put_text(char *o, struct assign_text t)
{
    memcpy(o, t.p, t.len);
    return o + t.len;
}

/* write_after_head piece by piece: any answer, in any room. */
__attribute__((noinline)) static void write_pieces(struct ab_jsonw *w, const struct assign_entry *e,
                                                   const struct ab_jsonw *unit_json,
                                                   const struct assign_result *res,
                                                   const struct assign_text *hashed_end)
{
#define TEXT(t) ab_jsonw_raw(w, (t).p, (t).len)
#define KEY(k) ab_jsonw_raw(w, k, sizeof(k) - 1)
    ab_jsonw_raw(w, unit_json->buf, unit_json->len);
    if (res->reason == ASSIGN_HASHED) { /* in the experiment, with its hash */
        TEXT(e->hashed_pre[res->variation]);
        ab_jsonw_double(w, res->bucket);
        TEXT(hashed_end[res->variation]);
        return;
    }
    if (res->in_experiment)
        KEY(",\"in_experiment\":true");
    else
        KEY(",\"in_experiment\":false");
    TEXT(e->variant[res->variation]);
    if (res->hash_used)
        ab_jsonw_double(w, res->bucket);
    else
        KEY("null");
    TEXT(e->payload[res->variation]);
    const char *reason = assign_reason_name(res->reason); /* snake_case: nothing to escape */
    ab_jsonw_raw(w, reason, strlen(reason));
    TEXT(e->tail);
#undef KEY
#undef TEXT
}

/*
 * One assignment after its head ({"experiment":"KEY","unit":): this is the hot path, so it copies
 * the pieces the snapshot compiled for e around the unit (unit_json: the unit as a JSON string,
 * written once per request), the hash and the reason. A unit in the experiment by its hash, the
 * answer most get, ends with hashed_end[v] (e's hashed_post, or its hashed_join) and is assembled
 * inline in room made once.
 */
static inline __attribute__((always_inline)) void
write_after_head(struct ab_jsonw *w, const struct assign_entry *e, const struct ab_jsonw *unit_json,
                 const struct assign_result *res, const struct assign_text *hashed_end)
{
    if (res->reason == ASSIGN_HASHED) {
        struct assign_text pre = e->hashed_pre[res->variation];
        struct assign_text end = hashed_end[res->variation];
        if (ab_jsonw_room(w, unit_json->len + pre.len + 8 + end.len)) {
            char *o = w->buf + w->len;
            memcpy(o, unit_json->buf, unit_json->len);
            char *bucket = put_text(o + unit_json->len, pre);
            if ((o = ab_jsonw_put_bucket(bucket, res->bucket)) != NULL) {
                ab_jsonw_end(w, put_text(o, end));
                return;
            }
        }
    }
    write_pieces(w, e, unit_json, res, hashed_end);
}

/* One assignment, after a comma when comma is set. */
static void write_assignment(struct ab_jsonw *w, const struct assign_entry *e,
                             const struct ab_jsonw *unit_json, const struct assign_result *res,
                             int comma)
{
    if (comma)
        ab_jsonw_raw(w, ",", 1);
    ab_jsonw_raw(w, e->head.p, e->head.len);
    write_after_head(w, e, unit_json, res, e->hashed_post);
}

#define UNIT_JSON_MAX (6 * ASSIGN_UNIT_MAX + 2) /* every byte escaped as \u00XX, and the quotes */

/* unit[0..len) as a JSON string into *out, in buf (the caller disposes out). */
static void unit_json(struct ab_jsonw *out, char buf[UNIT_JSON_MAX + 1], const char *unit,
                      size_t len)
{
    ab_jsonw_init_in(out, buf, UNIT_JSON_MAX, UNIT_JSON_MAX);
    ab_jsonw_str(out, unit, len);
}

size_t assign_answer_size(size_t items, size_t unit_len)
{
    return 64 + items * (unit_len + 256); /* about what an item takes */
}

void assign_answer_get(struct ab_jsonw *w, const struct assign_entry *e,
                       const struct assign_attrs *attrs, const char *unit, size_t unit_len)
{
    struct assign_context ctx = {.attributes = attrs->obj, .index = attrs};
    struct assign_result res;
    assign_run(e->exp, &ctx, &res);
    struct ab_jsonw u;
    char ubuf[UNIT_JSON_MAX + 1];
    unit_json(&u, ubuf, unit, unit_len);
    write_assignment(w, e, &u, &res, 0);
    ab_jsonw_dispose(&u);
}

enum { CHUNK = 64 }; /* experiments of a POST evaluated together */

/*
 * The assignments of every running experiment: a unit in one by its hash ends its item with the
 * head of the next (hashed_join), so the next item starts after it.
 */
static void write_running(struct ab_jsonw *w, const struct assign_snap *snap,
                          const struct assign_context *ctx, const struct ab_jsonw *u)
{
    int head_written = 0; /* the next item's comma and head are already in w */
    for (size_t base = 0; base < snap->nrunning; base += CHUNK) {
        size_t m = snap->nrunning - base < CHUNK ? snap->nrunning - base : CHUNK;
        const struct assign_experiment *exps[CHUNK];
        for (size_t i = 0; i < m; i++)
            exps[i] = snap->entries[snap->running[base + i]].exp;
        struct assign_result res[CHUNK];
        assign_run_many(exps, m, ctx, res);
        for (size_t i = 0; i < m; i++) {
            const struct assign_entry *e = &snap->entries[snap->running[base + i]];
            if (!head_written) {
                if (base + i > 0)
                    ab_jsonw_raw(w, ",", 1);
                ab_jsonw_raw(w, e->head.p, e->head.len);
            }
            write_after_head(w, e, u, &res[i], e->hashed_join);
            head_written = res[i].reason == ASSIGN_HASHED;
        }
    }
}

/* The assignments of the experiments listed. */
static void write_listed(struct ab_jsonw *w, const struct assign_entry *const *listed, size_t n,
                         const struct assign_context *ctx, const struct ab_jsonw *u)
{
    for (size_t base = 0; base < n; base += CHUNK) {
        size_t m = n - base < CHUNK ? n - base : CHUNK;
        const struct assign_experiment *exps[CHUNK];
        for (size_t i = 0; i < m; i++)
            exps[i] = listed[base + i]->exp;
        struct assign_result res[CHUNK];
        assign_run_many(exps, m, ctx, res);
        for (size_t i = 0; i < m; i++)
            write_assignment(w, listed[base + i], u, &res[i], base + i > 0);
    }
}

void assign_answer_post(struct ab_jsonw *w, const struct assign_snap *snap,
                        const struct assign_attrs *attrs, const char *unit, size_t unit_len,
                        const struct assign_entry *const *listed, size_t n)
{
    struct ab_jsonw u;
    char ubuf[UNIT_JSON_MAX + 1];
    unit_json(&u, ubuf, unit, unit_len);
    ab_jsonw_raw(w, "{\"snapshot_version\":", 20);
    ab_jsonw_int(w, snap->version);
    ab_jsonw_raw(w, ",\"assignments\":[", 16);
    struct assign_context ctx = {.attributes = attrs->obj, .index = attrs};
    if (listed == NULL)
        write_running(w, snap, &ctx, &u);
    else
        write_listed(w, listed, n, &ctx, &u);
    ab_jsonw_raw(w, "]}", 2);
    ab_jsonw_dispose(&u);
}
