/*
 * bench/assign micro: in-process cost of the evaluation core and of loading snapshots.
 * Prints ns per single-experiment evaluation (2 variants, no condition), ns for 20 experiments
 * with conditions (one unit, as POST /v1/assign evaluates them), and the time to read and compile
 * a snapshot of 10,000 experiments from its file. Usage: micro [DIR for the temp snapshot].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/mem.h"
#include "abacus/snapshot.h"
#include "assign_int.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(struct ab_snapshot_experiment *e, int i, int with_condition)
{
    char key[32];
    snprintf(key, sizeof(key), "experiment-%05d", i);
    e->key = ab_mem_strdup(key);
    e->running = 1;
    e->hash_attribute = ab_mem_strdup("id");
    e->hash_version = 2;
    e->seed = ab_mem_strdup(key);
    e->coverage = 1;
    e->phase = 1;
    e->version = 1;
    char other[16];
    snprintf(other, sizeof(other), "C%05d", i);
    if (with_condition == 1) /* one audience for all */
        e->condition = json_pack("{s:{s:[s,s,s]}, s:{s:i}, s:{s:s}}", "country", "$in", "FR",
                                 "DE", "US", "age", "$gte", 18, "plan", "$ne", "free");
    else if (with_condition == 2) /* a different condition each, as twenty-distinct.json */
        e->condition = json_pack("{s:{s:[s,s,s,s]}, s:{s:i}, s:{s:s}}", "country", "$in", "FR",
                                 "DE", "US", other, "age", "$gte", i % 20, "plan", "$ne", other);
    e->nvariants = 2;
    e->variants = ab_mem_calloc(2, sizeof(*e->variants));
    e->variants[0] = (struct ab_snapshot_variant){ab_mem_strdup("control"), 0.5, json_object()};
    e->variants[1] = (struct ab_snapshot_variant){ab_mem_strdup("treatment"), 0.5,
                                                  json_pack("{s:s}", "color", "green")};
}

static struct ab_snapshot *make(int n, int with_condition)
{
    struct ab_snapshot *s = ab_mem_calloc(1, sizeof(*s));
    s->version = 1;
    s->created_at = 1;
    s->nexperiments = (size_t)n;
    s->experiments = ab_mem_calloc((size_t)n, sizeof(*s->experiments));
    for (int i = 0; i < n; i++)
        fill(&s->experiments[i], i, with_condition);
    return s;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    struct ab_snapshot *one = make(1, 0), *twenty = make(20, 1), *distinct = make(20, 2);
    struct assign_snap *s1, *s20, *s20d;
    if (assign_snap_compile(one, &s1, NULL) != AB_OK ||
        assign_snap_compile(twenty, &s20, NULL) != AB_OK ||
        assign_snap_compile(distinct, &s20d, NULL) != AB_OK)
        return 1;
    json_t *attrs = json_pack("{s:s, s:s, s:i, s:s}", "id", "user-12345", "country", "FR", "age",
                              31, "plan", "pro");
    struct assign_context ctx = {.attributes = attrs};
    struct assign_result res;
    long n = getenv("MICRO_EVAL_ONLY") != NULL ? 1 : 2000000, in = 0;
    /* different units, as traffic has them: the hash input changes every call */
    char units[64][16];
    json_t *unit_attrs[64];
    for (int u = 0; u < 64; u++) {
        snprintf(units[u], sizeof(units[u]), "user-%d", u * 7919);
        unit_attrs[u] = json_deep_copy(attrs);
        json_object_set_new(unit_attrs[u], "id", json_string(units[u]));
    }
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        ctx.attributes = unit_attrs[i & 63];
        assign_run(s1->entries[0].exp, &ctx, &res);
        in += res.in_experiment;
    }
    double single_ns = (now_s() - t0) / (double)n * 1e9;
    long m = getenv("MICRO_EVAL_ONLY") != NULL ? 1000000 : 200000;
    t0 = now_s();
    struct assign_attrs index;
    for (long i = 0; i < m; i++) {
        /* per unit, as a request does: index its attributes, then evaluate every experiment */
        ctx.attributes = unit_attrs[i & 63];
        assign_attrs_index(&index, ctx.attributes);
        ctx.index = &index;
        for (size_t k = 0; k < s20->nentries; k++) {
            assign_run(s20->entries[k].exp, &ctx, &res);
            in += res.in_experiment;
        }
    }
    double twenty_ns = (now_s() - t0) / (double)m * 1e9;
    /* the same as POST /v1/assign evaluates them: together (assign_run_many), which tests the
     * one audience once; and 20 different conditions together */
    double together_ns[2];
    for (int d = 0; d < 2; d++) {
        const struct assign_snap *snap = d == 0 ? s20 : s20d;
        const struct assign_experiment *exps[64];
        struct assign_result many[64];
        size_t nexp = snap->nentries < 64 ? snap->nentries : 64;
        for (size_t k = 0; k < nexp; k++)
            exps[k] = snap->entries[k].exp;
        t0 = now_s();
        for (long i = 0; i < m; i++) {
            ctx.attributes = unit_attrs[i & 63];
            assign_attrs_index(&index, ctx.attributes);
            ctx.index = &index;
            assign_run_many(exps, nexp, &ctx, many);
            in += many[0].in_experiment;
        }
        together_ns[d] = (now_s() - t0) / (double)m * 1e9;
    }
    printf("evaluation, 1 experiment (2 variants):         %8.1f ns (target <= 150 ns)\n",
           single_ns);
    printf("evaluation, 20 experiments with conditions:    %8.1f ns one by one\n", twenty_ns);
    printf("  the same together, as POST /v1/assign does:  %8.1f ns (target <= 3000 ns)\n",
           together_ns[0]);
    printf("  together, 20 different conditions:           %8.1f ns (target <= 3000 ns)\n",
           together_ns[1]);

    if (getenv("MICRO_EVAL_ONLY") != NULL) /* for profiling the evaluation alone */
        return 0;
    struct ab_snapshot *big = make(10000, 1);
    char path[512];
    snprintf(path, sizeof(path), "%s/bench-10000.db", dir);
    struct ab_errinfo ei;
    if (ab_snapshot_write(big, path, &ei) != AB_OK) {
        fprintf(stderr, "write: %s\n", ei.message);
        return 1;
    }
    t0 = now_s();
    struct ab_snapshot *read = NULL;
    struct assign_snap *compiled = NULL;
    if (ab_snapshot_read(path, &read, &ei) != AB_OK) {
        fprintf(stderr, "read: %s\n", ei.message);
        return 1;
    }
    double t_read = now_s() - t0;
    if (assign_snap_compile(read, &compiled, &ei) != AB_OK)
        return 1;
    double t_total = now_s() - t0;
    printf("snapshot of 10,000 experiments: read %.3f s, read + compile %.3f s (target <= 1 s)\n",
           t_read, t_total);
    printf("(in-experiment checksum %ld)\n", in);
    remove(path);
    assign_snap_release(compiled);
    ab_snapshot_free(read);
    ab_snapshot_free(big);
    assign_snap_release(s1);
    assign_snap_release(s20);
    assign_snap_release(s20d);
    ab_snapshot_free(one);
    ab_snapshot_free(twenty);
    ab_snapshot_free(distinct);
    for (int u = 0; u < 64; u++)
        json_decref(unit_attrs[u]);
    json_decref(attrs);
    return 0;
}
