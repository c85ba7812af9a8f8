/*
 * libFuzzer target: assign_post_read (assign/post.c), which reads every POST /v1/assign body
 * without jansson. The input is a body. Checks, beyond not crashing: whatever the reader accepts
 * is valid for jansson too (ab_json_parse, as the node parses bodies it does not read itself),
 * with the same unit, the same list of experiment keys, and the same attributes as the node
 * indexes them from jansson's values (with the unit as id): names, types, numbers and strings.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include <jansson.h>
#include "abacus/json.h"
#include "assign_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void same_attr(const struct assign_attr *a, const struct assign_attrs *index)
{
    const struct assign_attr *b =
        assign_attrs_find(index, a->name, a->len, assign_attr_tag(a->name, a->len));
    assert(b != NULL);
    assert(a->value == NULL);
    assert(a->type == b->type);
    if (a->type == JSON_STRING) {
        assert(a->str_len == b->str_len && memcmp(a->str, b->str, a->str_len) == 0);
        assert(a->str_tag == b->str_tag);
    } else if (a->type == JSON_INTEGER) {
        assert(a->num == b->num && (long long)a->num == json_integer_value(b->value));
    } else {
        assert(a->num == b->num || (a->num != a->num && b->num != b->num));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct assign_post post; /* large: not on the stack */
    const char *body = (const char *)data;
    if (!assign_post_read(body, size, 256, &post))
        return 0;
    json_t *doc;
    struct ab_errinfo ei;
    struct ab_json_limits lim = {64 * 1024, 16};
    assert(ab_json_parse(body, size, &lim, &doc, &ei) == AB_OK);
    assert(json_is_object(doc));
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        assert(strcmp(key, "unit") == 0 || strcmp(key, "attributes") == 0 ||
               strcmp(key, "experiments") == 0);
    }
    const json_t *unit = json_object_get(doc, "unit");
    assert(json_is_string(unit) && json_string_length(unit) == post.unit_len);
    assert(post.unit_len >= 1 && post.unit_len <= 256);
    assert(memcmp(json_string_value(unit), post.unit, post.unit_len) == 0);

    const json_t *list = json_object_get(doc, "experiments");
    assert(post.has_list == json_is_array(list));
    assert(post.has_list || list == NULL || json_is_null(list));
    assert(post.nkeys == json_array_size(list));
    for (size_t i = 0; i < post.nkeys; i++) {
        const json_t *k = json_array_get(list, i);
        assert(json_is_string(k) && json_string_length(k) == post.keys[i].len);
        assert(memcmp(json_string_value(k), post.keys[i].p, post.keys[i].len) == 0);
    }

    /* the attributes as the node builds them from jansson: the object, with id = the unit */
    json_t *a = json_object_get(doc, "attributes");
    assert(a == NULL || json_is_null(a) || json_is_object(a));
    json_t *attrs = json_is_object(a) ? json_deep_copy(a) : json_object();
    json_object_set(attrs, "id", (json_t *)unit);
    struct assign_attrs index;
    assign_attrs_index(&index, attrs);
    assert(index.indexed && post.attrs.indexed && post.attrs.obj == NULL);
    assert(index.n == post.attrs.n);
    for (size_t i = 0; i < post.attrs.n; i++) {
        assert(post.attrs.tags[i] ==
               assign_attr_tag(post.attrs.items[i].name, post.attrs.items[i].len));
        same_attr(&post.attrs.items[i], &index);
    }
    json_decref(attrs);
    json_decref(doc);
    return 0;
}
