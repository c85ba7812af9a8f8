/*
 * Test tool: writes a snapshot file from a JSON description (tests/data/assign_fixture.json).
 * Usage: write_snapshot DESCRIPTION.json OUT.db VERSION. Each experiment: key, variants
 * ([[key, weight], ...]; payloads are {"variant": key}), and optional coverage, hash_attribute,
 * fallback_attribute, hash_version (default 2), seed (default key), condition, layer
 * ([key, start, end]), overrides ({unit: variant}), running (default true). Top level:
 * experiments, client_keys and ingest_keys (plain keys; the file stores their hashes).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/mem.h"
#include "abacus/snapshot.h"

static char *str_or(const json_t *o, const char *name, const char *dflt)
{
    const json_t *v = json_object_get(o, name);
    if (json_is_string(v))
        return ab_mem_strdup(json_string_value(v));
    return dflt != NULL ? ab_mem_strdup(dflt) : NULL;
}

static void fill(struct ab_snapshot_experiment *e, const json_t *d)
{
    e->key = str_or(d, "key", NULL);
    const json_t *running = json_object_get(d, "running");
    e->running = running == NULL || json_is_true(running);
    e->hash_attribute = str_or(d, "hash_attribute", "id");
    e->fallback_attribute = str_or(d, "fallback_attribute", NULL);
    const json_t *hv = json_object_get(d, "hash_version");
    e->hash_version = json_is_integer(hv) ? (int)json_integer_value(hv) : 2;
    e->seed = str_or(d, "seed", e->key);
    const json_t *cov = json_object_get(d, "coverage");
    e->coverage = json_is_number(cov) ? json_number_value(cov) : 1.0;
    const json_t *cond = json_object_get(d, "condition");
    e->condition = cond != NULL ? json_incref((json_t *)cond) : NULL;
    const json_t *layer = json_object_get(d, "layer");
    if (json_is_array(layer)) {
        e->layer = ab_mem_strdup(json_string_value(json_array_get(layer, 0)));
        e->layer_start = json_number_value(json_array_get(layer, 1));
        e->layer_end = json_number_value(json_array_get(layer, 2));
    }
    e->phase = 1;
    e->version = 1;
    const json_t *vars = json_object_get(d, "variants");
    e->nvariants = json_array_size(vars);
    e->variants = ab_mem_calloc(e->nvariants, sizeof(*e->variants));
    for (size_t i = 0; i < e->nvariants; i++) {
        const json_t *v = json_array_get(vars, i);
        e->variants[i].key = ab_mem_strdup(json_string_value(json_array_get(v, 0)));
        e->variants[i].weight = json_number_value(json_array_get(v, 1));
        e->variants[i].payload = json_pack("{s:s}", "variant", e->variants[i].key);
    }
    const char *unit;
    const json_t *variant;
    json_object_foreach((json_t *)json_object_get(d, "overrides"), unit, variant)
    {
        e->overrides = ab_mem_realloc(e->overrides, (e->noverrides + 1) * sizeof(*e->overrides));
        e->overrides[e->noverrides].unit = ab_mem_strdup(unit);
        e->overrides[e->noverrides++].variant = ab_mem_strdup(json_string_value(variant));
    }
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: write_snapshot DESCRIPTION.json OUT.db VERSION\n");
        return 2;
    }
    json_error_t jerr;
    json_t *desc = json_load_file(argv[1], 0, &jerr);
    if (desc == NULL) {
        fprintf(stderr, "write_snapshot: %s: %s\n", argv[1], jerr.text);
        return 1;
    }
    struct ab_snapshot s = {0};
    s.version = strtoll(argv[3], NULL, 10);
    s.created_at = (int64_t)time(NULL) * 1000;
    const json_t *exps = json_object_get(desc, "experiments");
    s.nexperiments = json_array_size(exps);
    s.experiments = ab_mem_calloc(s.nexperiments, sizeof(*s.experiments));
    for (size_t i = 0; i < s.nexperiments; i++)
        fill(&s.experiments[i], json_array_get(exps, i));
    const json_t *keys = json_object_get(desc, "client_keys");
    s.nclient_keys = json_array_size(keys);
    s.client_key_hashes = ab_mem_calloc(s.nclient_keys, sizeof(char *));
    for (size_t i = 0; i < s.nclient_keys; i++) {
        s.client_key_hashes[i] = ab_mem_calloc(1, 65);
        ab_snapshot_key_hash(json_string_value(json_array_get(keys, i)), s.client_key_hashes[i]);
    }
    const json_t *ingest = json_object_get(desc, "ingest_keys");
    s.ningest_keys = json_array_size(ingest);
    s.ingest_key_hashes = ab_mem_calloc(s.ningest_keys, sizeof(char *));
    for (size_t i = 0; i < s.ningest_keys; i++) {
        s.ingest_key_hashes[i] = ab_mem_calloc(1, 65);
        ab_snapshot_key_hash(json_string_value(json_array_get(ingest, i)), s.ingest_key_hashes[i]);
    }
    struct ab_errinfo ei;
    enum ab_err rc = ab_snapshot_write(&s, argv[2], &ei);
    if (rc != AB_OK)
        fprintf(stderr, "write_snapshot: %s: %s %s\n", argv[2], ei.field, ei.message);
    /* s's arrays came from this process's heap: hand them to the library's free */
    struct ab_snapshot *heap = ab_mem_calloc(1, sizeof(*heap));
    *heap = s;
    ab_snapshot_free(heap);
    json_decref(desc);
    return rc == AB_OK ? 0 : 1;
}
