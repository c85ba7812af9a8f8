/*
 * Validation of admin API bodies: a parsed JSON document in, a normalized document out (every
 * field present, defaults filled), or a field-level error. Pure: no SQLite, no sockets, no clock;
 * what needs the database (does the layer exist, do ranges overlap, is a key taken) is checked by
 * the store parts. Fuzzed by tests/fuzz/fuzz_admin.c, unit-tested by
 * tests/unit/test_web_validate.c.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "abacus/utf8.h"
#include "web_int.h"

#define COND_DEPTH_MAX 32 /* nesting of a condition (the body's JSON limit is 32 as well) */

int web_valid_text(const char *s, size_t len, size_t max, int allow_empty)
{
    if (s == NULL || len > max || (len == 0 && !allow_empty) || !ab_utf8_valid(s, len))
        return 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

/* The fields an object may have; anything else is refused, naming it. */
static enum ab_err only_fields(const json_t *obj, const char *prefix, const char *const *allowed,
                               struct ab_errinfo *ei)
{
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        (void)v;
        size_t i = 0;
        while (allowed[i] != NULL && strcmp(allowed[i], k) != 0)
            i++;
        if (allowed[i] == NULL) {
            char field[128];
            /* an empty name still gets a field to point at: "" */
            snprintf(field, sizeof(field), "%s%.100s", prefix, k[0] != '\0' ? k : "\"\"");
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "unknown field");
        }
    }
    return AB_OK;
}

/* A string field: required (no default) or defaulted; empty allowed or not; max bytes. */
static enum ab_err text_field(const json_t *in, const char *name, const char *field,
                              const char *dflt, size_t max, int allow_empty, json_t *out,
                              struct ab_errinfo *ei)
{
    const json_t *v = json_object_get(in, name);
    if (v == NULL || (json_is_null(v) && dflt != NULL)) {
        if (dflt == NULL)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "is required");
        json_object_set_new(out, name, json_string(dflt));
        return AB_OK;
    }
    if (!json_is_string(v))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be a string");
    if (!web_valid_text(json_string_value(v), json_string_length(v), max, allow_empty))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, field,
                       "must be %s%zu bytes of text without control characters",
                       allow_empty ? "at most " : "1 to ", max);
    json_object_set(out, name, (json_t *)v);
    return AB_OK;
}

/* A string field that may be null (absent = null). */
static enum ab_err nullable_text(const json_t *in, const char *name, size_t max, json_t *out,
                                 struct ab_errinfo *ei)
{
    const json_t *v = json_object_get(in, name);
    if (v == NULL || json_is_null(v)) {
        json_object_set_new(out, name, json_null());
        return AB_OK;
    }
    return text_field(in, name, name, NULL, max, 0, out, ei);
}

/* One of a fixed set of strings. */
static enum ab_err enum_field(const json_t *in, const char *name, const char *field,
                              const char *const *values, const char *dflt, json_t *out,
                              struct ab_errinfo *ei)
{
    const json_t *v = json_object_get(in, name);
    if (v == NULL && dflt != NULL) {
        json_object_set_new(out, name, json_string(dflt));
        return AB_OK;
    }
    if (json_is_string(v))
        for (size_t i = 0; values[i] != NULL; i++)
            if (strcmp(values[i], json_string_value(v)) == 0) {
                json_object_set(out, name, (json_t *)v);
                return AB_OK;
            }
    char list[128] = "";
    size_t pos = 0;
    for (size_t i = 0; values[i] != NULL && pos < sizeof(list); i++) {
        int n = snprintf(list + pos, sizeof(list) - pos, "%s%s", i ? ", " : "", values[i]);
        if (n > 0)
            pos += (size_t)n;
    }
    return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be one of %s", list);
}

/* ---------------------------------------------------------------- conditions */

static const char *const OPERATORS[] = {
    "$eq",    "$ne",     "$lt",      "$lte",        "$gt",  "$gte",  "$veq",       "$vne",
    "$vlt",   "$vlte",   "$vgt",     "$vgte",       "$exists", "$in", "$nin",      "$ini",
    "$nini",  "$inGroup", "$notInGroup", "$all",    "$alli", "$elemMatch", "$size", "$not",
    "$regex", "$regexi", "$type",    NULL};

static int is_operator_object(const json_t *j)
{
    if (!json_is_object(j) || json_object_size(j) == 0)
        return 0;
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)j, k, v)
    {
        (void)v;
        if (k[0] != '$')
            return 0;
    }
    return 1;
}

static enum ab_err check_cond(const json_t *c, char *path, size_t plen, int depth,
                              struct ab_errinfo *ei);

/* Appends ".key" or "[i]" to path (in place, bounded); returns the old length to restore. */
static size_t push(char *path, size_t plen, const char *key, size_t index)
{
    size_t cap = 128;
    if (plen < cap) {
        if (key != NULL)
            snprintf(path + plen, cap - plen, ".%.60s", key);
        else
            snprintf(path + plen, cap - plen, "[%zu]", index);
    }
    return plen;
}

static enum ab_err check_value_test(const json_t *v, char *path, size_t plen, int depth,
                                    struct ab_errinfo *ei);

static enum ab_err check_operator(const char *op, const json_t *v, char *path, size_t plen,
                                  int depth, struct ab_errinfo *ei)
{
    size_t i = 0;
    while (OPERATORS[i] != NULL && strcmp(OPERATORS[i], op) != 0)
        i++;
    if (OPERATORS[i] == NULL)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "unknown operator %.40s", op);
    size_t len = plen;
    if (!strcmp(op, "$in") || !strcmp(op, "$nin") || !strcmp(op, "$ini") ||
        !strcmp(op, "$nini") || !strcmp(op, "$all") || !strcmp(op, "$alli")) {
        if (!json_is_array(v))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "%s takes an array", op);
        if (!strcmp(op, "$all") || !strcmp(op, "$alli")) {
            size_t idx;
            const json_t *x;
            json_array_foreach(v, idx, x)
            {
                push(path, len, NULL, idx);
                enum ab_err rc = check_value_test(x, path, strlen(path), depth + 1, ei);
                path[len] = '\0';
                if (rc != AB_OK)
                    return rc;
            }
        }
        return AB_OK;
    }
    if (!strcmp(op, "$exists"))
        return json_is_boolean(v) ? AB_OK
                                  : ab_fail(ei, AB_ERR_INVALID_FIELD, path, "$exists takes a boolean");
    if (!strcmp(op, "$regex") || !strcmp(op, "$regexi") || !strcmp(op, "$type") ||
        !strcmp(op, "$inGroup") || !strcmp(op, "$notInGroup"))
        return json_is_string(v) ? AB_OK
                                 : ab_fail(ei, AB_ERR_INVALID_FIELD, path, "%s takes a string", op);
    if (!strcmp(op, "$veq") || !strcmp(op, "$vne") || !strcmp(op, "$vlt") ||
        !strcmp(op, "$vlte") || !strcmp(op, "$vgt") || !strcmp(op, "$vgte"))
        return json_is_string(v) ? AB_OK
                                 : ab_fail(ei, AB_ERR_INVALID_FIELD, path,
                                           "%s takes a version string", op);
    if (!strcmp(op, "$lt") || !strcmp(op, "$lte") || !strcmp(op, "$gt") || !strcmp(op, "$gte"))
        return json_is_string(v) || json_is_number(v)
                   ? AB_OK
                   : ab_fail(ei, AB_ERR_INVALID_FIELD, path, "%s takes a string or a number", op);
    if (!strcmp(op, "$elemMatch")) {
        if (!json_is_object(v))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "$elemMatch takes an object");
        return is_operator_object(v) ? check_value_test(v, path, len, depth + 1, ei)
                                     : check_cond(v, path, len, depth + 1, ei);
    }
    if (!strcmp(op, "$size") || !strcmp(op, "$not"))
        return check_value_test(v, path, len, depth + 1, ei);
    return AB_OK; /* $eq, $ne: any literal */
}

/* The value of an attribute path: a literal, or an object of operators. */
static enum ab_err check_value_test(const json_t *v, char *path, size_t plen, int depth,
                                    struct ab_errinfo *ei)
{
    if (depth > COND_DEPTH_MAX)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "nests deeper than %d levels",
                       COND_DEPTH_MAX);
    if (!is_operator_object(v))
        return AB_OK; /* a literal compared as JSON */
    const char *k;
    const json_t *x;
    json_object_foreach((json_t *)v, k, x)
    {
        push(path, plen, k, 0);
        enum ab_err rc = check_operator(k, x, path, strlen(path), depth + 1, ei);
        path[plen] = '\0';
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

static enum ab_err check_cond(const json_t *c, char *path, size_t plen, int depth,
                              struct ab_errinfo *ei)
{
    if (!json_is_object(c))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "a condition must be a JSON object");
    if (depth > COND_DEPTH_MAX)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, path, "nests deeper than %d levels",
                       COND_DEPTH_MAX);
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)c, k, v)
    {
        push(path, plen, k, 0);
        size_t len = strlen(path);
        enum ab_err rc = AB_OK;
        if (!strcmp(k, "$and") || !strcmp(k, "$or") || !strcmp(k, "$nor")) {
            if (!json_is_array(v)) {
                rc = ab_fail(ei, AB_ERR_INVALID_FIELD, path, "%s takes an array of conditions", k);
            } else {
                size_t i;
                const json_t *sub;
                json_array_foreach(v, i, sub)
                {
                    push(path, len, NULL, i);
                    rc = check_cond(sub, path, strlen(path), depth + 1, ei);
                    path[len] = '\0';
                    if (rc != AB_OK)
                        break;
                }
            }
        } else if (!strcmp(k, "$not")) {
            rc = check_cond(v, path, len, depth + 1, ei);
        } else if (k[0] == '$') {
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, path,
                         "unknown operator %.40s at the top of a condition", k);
        } else if (k[0] == '\0') {
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, path, "an attribute path must not be empty");
        } else {
            rc = check_value_test(v, path, len, depth + 1, ei);
        }
        path[plen] = '\0';
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

enum ab_err web_validate_condition(const json_t *cond, const char *path, struct ab_errinfo *ei)
{
    char buf[160];
    snprintf(buf, sizeof(buf), "%.60s", path);
    return check_cond(cond, buf, strlen(buf), 1, ei);
}

/* ---------------------------------------------------------------- experiments */

static enum ab_err check_variants(const json_t *in, json_t *out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"key", "weight", "payload", NULL};
    const json_t *vars = json_object_get(in, "variants");
    if (!json_is_array(vars) || json_array_size(vars) < 2 ||
        json_array_size(vars) > WEB_VARIANTS_MAX)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants",
                       "must be an array of 2 to %d variants", WEB_VARIANTS_MAX);
    size_t n = json_array_size(vars), nweights = 0;
    json_t *list = json_array();
    json_object_set_new(out, "variants", list);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        const json_t *v = json_array_get(vars, i);
        char prefix[32], field[64];
        snprintf(prefix, sizeof(prefix), "variants[%zu].", i);
        if (!json_is_object(v))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants", "variant %zu is not an object",
                           i);
        enum ab_err rc = only_fields(v, prefix, FIELDS, ei);
        json_t *nv = json_object();
        json_array_append_new(list, nv);
        snprintf(field, sizeof(field), "%skey", prefix);
        if (rc == AB_OK)
            rc = text_field(v, "key", field, NULL, WEB_KEY_MAX, 0, nv, ei);
        if (rc != AB_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_object_get(json_array_get(list, j), "key"),
                           json_object_get(nv, "key"))) {
                snprintf(field, sizeof(field), "%skey", prefix);
                return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "duplicate variant key %.100s",
                               json_string_value(json_object_get(nv, "key")));
            }
        const json_t *w = json_object_get(v, "weight");
        if (w != NULL) {
            snprintf(field, sizeof(field), "%sweight", prefix);
            if (!json_is_number(w) || !(json_number_value(w) >= 0 && json_number_value(w) <= 1))
                return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "must be a number within [0, 1]");
            sum += json_number_value(w);
            nweights++;
            json_object_set_new(nv, "weight", json_real(json_number_value(w)));
        }
        const json_t *p = json_object_get(v, "payload");
        json_object_set_new(nv, "payload", p != NULL ? json_deep_copy(p) : json_object());
    }
    if (nweights != 0 && nweights != n)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants",
                       "give every variant a weight, or none (equal weights)");
    if (nweights == 0)
        for (size_t i = 0; i < n; i++)
            json_object_set_new(json_array_get(list, i), "weight", json_real(1.0 / (double)n));
    else if (fabs(sum - 1) > 1e-6)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "variants", "weights sum to %.9g, not 1", sum);
    return AB_OK;
}

static enum ab_err check_layer(const json_t *in, json_t *out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"key", "range", NULL};
    const json_t *l = json_object_get(in, "layer");
    if (l == NULL || json_is_null(l)) {
        json_object_set_new(out, "layer", json_null());
        return AB_OK;
    }
    if (!json_is_object(l))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "layer", "must be an object or null");
    json_t *nl = json_object();
    json_object_set_new(out, "layer", nl);
    enum ab_err rc = only_fields(l, "layer.", FIELDS, ei);
    if (rc == AB_OK)
        rc = text_field(l, "key", "layer.key", NULL, WEB_KEY_MAX, 0, nl, ei);
    if (rc != AB_OK)
        return rc;
    const json_t *r = json_object_get(l, "range");
    const json_t *a = json_array_get(r, 0), *b = json_array_get(r, 1);
    if (!json_is_array(r) || json_array_size(r) != 2 || !json_is_number(a) ||
        !json_is_number(b) || !(json_number_value(a) >= 0) ||
        !(json_number_value(a) < json_number_value(b)) || !(json_number_value(b) <= 1))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "layer.range",
                       "must be [start, end] with 0 <= start < end <= 1");
    json_object_set_new(nl, "range",
                        json_pack("[f,f]", json_number_value(a), json_number_value(b)));
    return AB_OK;
}

static enum ab_err check_overrides(const json_t *in, json_t *out, struct ab_errinfo *ei)
{
    const json_t *o = json_object_get(in, "overrides");
    json_t *no = json_object();
    json_object_set_new(out, "overrides", no);
    if (o == NULL || json_is_null(o))
        return AB_OK;
    if (!json_is_object(o) || json_object_size(o) > WEB_OVERRIDES_MAX)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "overrides",
                       "must be an object of at most %d unit: variant pairs", WEB_OVERRIDES_MAX);
    const json_t *vars = json_object_get(out, "variants");
    const char *unit;
    const json_t *v;
    json_object_foreach((json_t *)o, unit, v)
    {
        char field[128];
        snprintf(field, sizeof(field), "overrides.%.100s", unit);
        if (!web_valid_text(unit, strlen(unit), 256, 0))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field,
                           "a unit must be 1 to 256 bytes of text");
        size_t i;
        const json_t *var;
        int found = 0;
        json_array_foreach(vars, i, var)
        {
            found |= json_equal(json_object_get(var, "key"), v);
        }
        if (!json_is_string(v) || !found)
            return ab_fail(ei, AB_ERR_INVALID_FIELD, field,
                           "must name one of the experiment's variants");
        json_object_set(no, unit, (json_t *)v);
    }
    return AB_OK;
}

static enum ab_err check_metrics(const json_t *in, json_t *out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"key", "role", NULL};
    static const char *const ROLES[] = {"goal", "guardrail", "secondary", NULL};
    const json_t *m = json_object_get(in, "metrics");
    json_t *list = json_array();
    json_object_set_new(out, "metrics", list);
    if (m == NULL || json_is_null(m))
        return AB_OK;
    if (!json_is_array(m) || json_array_size(m) > 100)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "metrics", "must be an array of at most 100");
    size_t i;
    const json_t *x;
    json_array_foreach(m, i, x)
    {
        char prefix[32], field[64];
        snprintf(prefix, sizeof(prefix), "metrics[%zu].", i);
        if (!json_is_object(x))
            return ab_fail(ei, AB_ERR_INVALID_FIELD, "metrics", "metric %zu is not an object", i);
        json_t *nm = json_object();
        json_array_append_new(list, nm);
        enum ab_err rc = only_fields(x, prefix, FIELDS, ei);
        snprintf(field, sizeof(field), "%skey", prefix);
        if (rc == AB_OK)
            rc = text_field(x, "key", field, NULL, WEB_KEY_MAX, 0, nm, ei);
        snprintf(field, sizeof(field), "%srole", prefix);
        if (rc == AB_OK)
            rc = enum_field(x, "role", field, ROLES, "goal", nm, ei);
        if (rc != AB_OK)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (json_equal(json_object_get(json_array_get(list, j), "key"),
                           json_object_get(nm, "key"))) {
                snprintf(field, sizeof(field), "%skey", prefix);
                return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "metric listed twice");
            }
    }
    return AB_OK;
}

static enum ab_err check_experiment(const json_t *in, json_t *out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {
        "key",      "name",      "description", "hash_attribute",      "fallback_attribute",
        "hash_version", "seed",  "coverage",    "variants",            "condition",
        "layer",    "overrides", "metrics",     "planned_sample_size", NULL};
    if (!json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    enum ab_err rc = only_fields(in, "", FIELDS, ei);
    if (rc == AB_OK)
        rc = text_field(in, "key", "key", NULL, WEB_KEY_MAX, 0, out, ei);
    if (rc == AB_OK)
        rc = text_field(in, "name", "name", "", WEB_NAME_MAX, 1, out, ei);
    if (rc == AB_OK)
        rc = text_field(in, "description", "description", "", WEB_TEXT_MAX, 1, out, ei);
    if (rc == AB_OK)
        rc = text_field(in, "hash_attribute", "hash_attribute", "id", WEB_KEY_MAX, 0, out, ei);
    if (rc == AB_OK)
        rc = nullable_text(in, "fallback_attribute", WEB_KEY_MAX, out, ei);
    if (rc == AB_OK) {
        const json_t *key = json_object_get(out, "key");
        rc = text_field(in, "seed", "seed", json_string_value(key), WEB_KEY_MAX + 40, 0, out, ei);
    }
    if (rc != AB_OK)
        return rc;
    const json_t *hv = json_object_get(in, "hash_version");
    if (hv != NULL && !(json_is_integer(hv) && (json_integer_value(hv) == 1 ||
                                                json_integer_value(hv) == 2)))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "hash_version", "must be 1 or 2");
    json_object_set_new(out, "hash_version", json_integer(hv != NULL ? json_integer_value(hv) : 2));
    const json_t *cov = json_object_get(in, "coverage");
    if (cov != NULL &&
        !(json_is_number(cov) && json_number_value(cov) >= 0 && json_number_value(cov) <= 1))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "coverage", "must be a number within [0, 1]");
    json_object_set_new(out, "coverage", json_real(cov != NULL ? json_number_value(cov) : 1.0));
    if ((rc = check_variants(in, out, ei)) != AB_OK)
        return rc;
    const json_t *cond = json_object_get(in, "condition");
    if (cond != NULL && !json_is_null(cond)) {
        if ((rc = web_validate_condition(cond, "condition", ei)) != AB_OK)
            return rc;
        json_object_set_new(out, "condition", json_deep_copy(cond));
    } else {
        json_object_set_new(out, "condition", json_null());
    }
    if ((rc = check_layer(in, out, ei)) != AB_OK || (rc = check_overrides(in, out, ei)) != AB_OK ||
        (rc = check_metrics(in, out, ei)) != AB_OK)
        return rc;
    const json_t *pss = json_object_get(in, "planned_sample_size");
    if (pss != NULL && !json_is_null(pss) &&
        !(json_is_integer(pss) && json_integer_value(pss) > 0))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "planned_sample_size",
                       "must be a positive integer or null");
    json_object_set_new(out, "planned_sample_size",
                        pss != NULL && !json_is_null(pss) ? json_integer(json_integer_value(pss))
                                                          : json_null());
    return AB_OK;
}

enum ab_err web_validate_experiment(const json_t *in, json_t **out, struct ab_errinfo *ei)
{
    *out = NULL;
    json_t *doc = json_object();
    enum ab_err rc = check_experiment(in, doc, ei);
    if (rc != AB_OK) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return AB_OK;
}

/* ---------------------------------------------------------------- metrics, layers, keys */

enum ab_err web_validate_metric(const json_t *in, json_t **out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"key",       "name",      "description",
                                         "type",      "event",     "denominator_event",
                                         "direction", "conversion_window_hours", NULL};
    static const char *const TYPES[] = {"binomial", "mean", "ratio", NULL};
    static const char *const DIRECTIONS[] = {"increase", "decrease", NULL};
    *out = NULL;
    if (!json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    json_t *doc = json_object();
    enum ab_err rc = only_fields(in, "", FIELDS, ei);
    if (rc == AB_OK)
        rc = text_field(in, "key", "key", NULL, WEB_KEY_MAX, 0, doc, ei);
    if (rc == AB_OK)
        rc = text_field(in, "name", "name", "", WEB_NAME_MAX, 1, doc, ei);
    if (rc == AB_OK)
        rc = text_field(in, "description", "description", "", WEB_TEXT_MAX, 1, doc, ei);
    if (rc == AB_OK)
        rc = enum_field(in, "type", "type", TYPES, NULL, doc, ei);
    if (rc == AB_OK)
        rc = text_field(in, "event", "event", NULL, WEB_KEY_MAX, 0, doc, ei);
    if (rc == AB_OK)
        rc = nullable_text(in, "denominator_event", WEB_KEY_MAX, doc, ei);
    if (rc == AB_OK)
        rc = enum_field(in, "direction", "direction", DIRECTIONS, "increase", doc, ei);
    if (rc == AB_OK) {
        int ratio = strcmp(json_string_value(json_object_get(doc, "type")), "ratio") == 0;
        int has_den = !json_is_null(json_object_get(doc, "denominator_event"));
        if (ratio != has_den)
            rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "denominator_event",
                         ratio ? "is required for a ratio metric"
                               : "is only for ratio metrics (must be null)");
    }
    const json_t *cw = json_object_get(in, "conversion_window_hours");
    if (rc == AB_OK && cw != NULL && !json_is_null(cw) &&
        !(json_is_number(cw) && json_number_value(cw) > 0 && json_number_value(cw) <= 1e6))
        rc = ab_fail(ei, AB_ERR_INVALID_FIELD, "conversion_window_hours",
                     "must be a positive number of hours or null");
    if (rc != AB_OK) {
        json_decref(doc);
        return rc;
    }
    json_object_set_new(doc, "conversion_window_hours",
                        cw != NULL && !json_is_null(cw) ? json_real(json_number_value(cw))
                                                        : json_null());
    *out = doc;
    return AB_OK;
}

enum ab_err web_validate_layer(const json_t *in, json_t **out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"key", "name", "description", NULL};
    *out = NULL;
    if (!json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    json_t *doc = json_object();
    enum ab_err rc = only_fields(in, "", FIELDS, ei);
    if (rc == AB_OK)
        rc = text_field(in, "key", "key", NULL, WEB_KEY_MAX, 0, doc, ei);
    if (rc == AB_OK)
        rc = text_field(in, "name", "name", "", WEB_NAME_MAX, 1, doc, ei);
    if (rc == AB_OK)
        rc = text_field(in, "description", "description", "", WEB_TEXT_MAX, 1, doc, ei);
    if (rc != AB_OK) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return AB_OK;
}

enum ab_err web_validate_key_request(const json_t *in, json_t **out, struct ab_errinfo *ei)
{
    static const char *const FIELDS[] = {"name", NULL};
    *out = NULL;
    if (in != NULL && !json_is_object(in))
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "must be a JSON object");
    json_t *empty = json_object();
    const json_t *src = in != NULL ? in : empty;
    json_t *doc = json_object();
    enum ab_err rc = only_fields(src, "", FIELDS, ei);
    if (rc == AB_OK)
        rc = text_field(src, "name", "name", "", WEB_NAME_MAX, 1, doc, ei);
    json_decref(empty);
    if (rc != AB_OK) {
        json_decref(doc);
        return rc;
    }
    *out = doc;
    return AB_OK;
}
