/*
 * libFuzzer target: admin API body parsing and validation (web/validate.c behind the limit-checked
 * JSON parser), the code every POST and PUT of /api/v1/ runs on untrusted bytes. The input's first
 * byte picks the validator (experiment, metric, layer, key request, condition), the rest is the
 * body. Checks, beyond not crashing or leaking: a refusal yields no document and names a field; an
 * accepted body is normalized idempotently (validating the output gives the output again), and an
 * accepted experiment satisfies what lib/snapshot will check when it is published (weights sum
 * to 1, variant keys unique, overrides name a variant).
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "abacus/json.h"
#include "web_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef enum ab_err (*validate_fn)(const json_t *in, json_t **out, struct ab_errinfo *ei);

static void check_experiment(const json_t *e)
{
    const json_t *vars = json_object_get(e, "variants");
    double sum = 0;
    for (size_t i = 0; i < json_array_size(vars); i++) {
        const json_t *v = json_array_get(vars, i);
        sum += json_real_value(json_object_get(v, "weight"));
        for (size_t j = 0; j < i; j++)
            assert(!json_equal(json_object_get(json_array_get(vars, j), "key"),
                               json_object_get(v, "key")));
    }
    assert(json_array_size(vars) >= 2 && fabs(sum - 1) <= 1e-6);
    const char *unit;
    const json_t *variant;
    json_object_foreach((json_t *)json_object_get(e, "overrides"), unit, variant)
    {
        int found = 0;
        for (size_t i = 0; i < json_array_size(vars); i++)
            found |= json_equal(json_object_get(json_array_get(vars, i), "key"), variant);
        assert(found);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const validate_fn FNS[] = {web_validate_experiment, web_validate_metric,
                                      web_validate_layer, web_validate_key_request};
    unsigned pick = data[0] % 5;
    json_t *doc = NULL;
    struct ab_errinfo ei;
    struct ab_json_limits lim = {WEB_BODY_MAX, 32};
    if (ab_json_parse((const char *)data + 1, size - 1, &lim, &doc, &ei) != AB_OK) {
        assert(doc == NULL && ei.field[0] != '\0');
        return 0;
    }
    if (pick == 4) {
        enum ab_err rc = web_validate_condition(doc, "condition", &ei);
        assert(rc == AB_OK || (rc == AB_ERR_INVALID_FIELD &&
                               strncmp(ei.field, "condition", 9) == 0 && ei.message[0] != '\0'));
        json_decref(doc);
        return 0;
    }
    json_t *out = (json_t *)1;
    enum ab_err rc = FNS[pick](doc, &out, &ei);
    if (rc != AB_OK) {
        assert(rc == AB_ERR_INVALID_FIELD && out == NULL && ei.field[0] != '\0' &&
               ei.message[0] != '\0');
    } else {
        assert(json_is_object(out));
        json_t *again = NULL;
        assert(FNS[pick](out, &again, &ei) == AB_OK);
        assert(json_equal(out, again));
        if (pick == 0)
            check_experiment(out);
        json_decref(again);
        json_decref(out);
    }
    json_decref(doc);
    return 0;
}
