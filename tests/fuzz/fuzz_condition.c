/*
 * libFuzzer target: the condition compiler and evaluator (assign/condition.c), which see
 * conditions from the admin API and attributes from every assignment request. The input is a
 * condition JSON, a newline, an attributes JSON and, optionally, a newline and saved groups JSON.
 * Checks, beyond not crashing or leaking: a refused condition yields no object, and evaluation
 * gives 0 or 1, the same answer twice, and the same answer over the attributes indexed as a
 * request indexes them (assign_cond_eval_attrs, with its own path for flat conditions).
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include "condition.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *parse(const uint8_t *p, size_t n)
{
    return json_loadb((const char *)p, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl == NULL)
        return 0;
    const uint8_t *attrs = nl + 1, *end = data + size;
    const uint8_t *nl2 = memchr(attrs, '\n', (size_t)(end - attrs));
    json_t *cond = parse(data, (size_t)(nl - data));
    json_t *attr = parse(attrs, (size_t)((nl2 != NULL ? nl2 : end) - attrs));
    json_t *groups = nl2 != NULL ? parse(nl2 + 1, (size_t)(end - nl2 - 1)) : NULL;
    if (cond != NULL && attr != NULL) {
        struct assign_cond *c;
        struct ab_errinfo ei;
        enum ab_err rc = assign_cond_compile(cond, groups, &c, &ei);
        if (rc == AB_OK) {
            int r = assign_cond_eval(c, attr);
            assert(r == 0 || r == 1);
            assert(assign_cond_eval(c, attr) == r);
            if (json_is_object(attr)) {
                struct assign_attrs index;
                assign_attrs_index(&index, attr);
                assert(assign_cond_eval_attrs(c, &index) == r);
            }
            r = assign_cond_eval(c, NULL);
            assert(r == 0 || r == 1);
        } else {
            assert(rc == AB_ERR_INVALID_FIELD);
            assert(c == NULL);
            assert(strncmp(ei.field, "condition", 9) == 0);
        }
        assign_cond_free(c);
    }
    json_decref(cond);
    json_decref(attr);
    json_decref(groups);
    return 0;
}
