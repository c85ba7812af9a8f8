/*
 * Strict equality of two jansson documents, for the tests of lib/json.c's fast path against
 * json_loadb (tests/unit/test_json.c, tests/fuzz/fuzz_json.c). json_equal ignores object key order
 * and takes -0.0 for 0.0; this also compares types, the key order of objects (jansson 2.14
 * iterates them in insertion order), the bytes of strings and keys, and the bits of reals.
 */
#ifndef ABACUS_TEST_JSON_STRICT_H
#define ABACUS_TEST_JSON_STRICT_H

#include <string.h>
#include <jansson.h>

static inline int json_strict_equal(json_t *a, json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        void *ia = json_object_iter(a), *ib = json_object_iter(b);
        for (; ia != NULL && ib != NULL;
             ia = json_object_iter_next(a, ia), ib = json_object_iter_next(b, ib)) {
            size_t len = json_object_iter_key_len(ia);
            if (len != json_object_iter_key_len(ib) ||
                memcmp(json_object_iter_key(ia), json_object_iter_key(ib), len) != 0 ||
                !json_strict_equal(json_object_iter_value(ia), json_object_iter_value(ib)))
                return 0;
        }
        return ia == NULL && ib == NULL;
    }
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!json_strict_equal(json_array_get(a, i), json_array_get(b, i)))
                return 0;
        return 1;
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_REAL: {
        double x = json_real_value(a), y = json_real_value(b);
        return memcmp(&x, &y, sizeof(x)) == 0;
    }
    default: /* true, false, null */
        return 1;
    }
}

#endif
