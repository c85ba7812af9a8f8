/*
 * The per-request attribute index and the hashed text of attribute values (see attrs.h).
 */
#include <math.h>
#include <string.h>
#include "attrs.h"
#include "js.h"

uint64_t assign_attr_tag(const char *name, size_t len)
{
    uint64_t tag = (uint64_t)(len < 255 ? len : 255) << 56;
    for (size_t i = 0; i < len && i < 7; i++)
        tag |= (uint64_t)(unsigned char)name[i] << (8 * i);
    return tag;
}

void assign_attrs_index(struct assign_attrs *a, const json_t *obj)
{
    a->obj = json_is_object(obj) ? obj : NULL;
    a->n = 0;
    a->indexed = json_object_size(a->obj) <= ASSIGN_ATTRS_INDEXED;
    if (!a->indexed || a->obj == NULL)
        return;
    const char *name;
    size_t len;
    const json_t *value;
    json_object_keylen_foreach((json_t *)a->obj, name, len, value)
    {
        a->tags[a->n] = assign_attr_tag(name, len);
        struct assign_attr *it = &a->items[a->n++];
        *it = (struct assign_attr){
            .name = name, .len = len, .value = value, .type = json_typeof(value)};
        if (it->type == JSON_STRING) {
            it->str = json_string_value(value);
            it->str_len = json_string_length(value);
            it->str_tag = assign_attr_tag(it->str, it->str_len);
        } else {
            it->num = json_is_number(value) ? json_number_value(value) : json_is_true(value);
        }
    }
}

const struct assign_attr *assign_attrs_find_long(const struct assign_attrs *a, const char *name,
                                                 size_t len, uint64_t tag)
{
    for (size_t i = 0; i < a->n; i++) {
        const struct assign_attr *it = &a->items[i];
        if (a->tags[i] == tag && it->len == len &&
            js_bytes_cmp(it->name + 7, name + 7, len - 7) == 0)
            return it;
    }
    return NULL;
}

const json_t *assign_attrs_get(const struct assign_attrs *a, const char *name, size_t len,
                               uint64_t tag)
{
    if (!a->indexed)
        return json_object_getn(a->obj, name, len);
    const struct assign_attr *it = assign_attrs_find(a, name, len, tag);
    return it != NULL ? it->value : NULL;
}

const char *assign_attr_text(const json_t *v, char *buf, size_t *len)
{
    switch (json_typeof(v != NULL ? v : json_null())) {
    case JSON_STRING:
        *len = json_string_length(v);
        return *len > 0 ? json_string_value(v) : NULL;
    case JSON_INTEGER:
        if (json_integer_value(v) == 0)
            return NULL;
        *len = js_number_format((double)json_integer_value(v), buf);
        return buf;
    case JSON_REAL:
        if (json_real_value(v) == 0 || isnan(json_real_value(v)))
            return NULL;
        *len = js_number_format(json_real_value(v), buf);
        return buf;
    case JSON_TRUE:
        *len = 4;
        return "true";
    case JSON_OBJECT:
        *len = 15;
        return "[object Object]";
    default: /* null, false, arrays (hashed by nobody in practice) */
        return NULL;
    }
}

const char *assign_attr_item_text_other(const struct assign_attr *it, char *buf, size_t *len)
{
    if (it->value != NULL)
        return assign_attr_text(it->value, buf, len);
    switch (it->type) {
    case JSON_INTEGER: /* read without jansson: a double, as JavaScript reads it */
    case JSON_REAL:
        if (it->num == 0 || isnan(it->num))
            return NULL;
        *len = js_number_format(it->num, buf);
        return buf;
    case JSON_TRUE:
        *len = 4;
        return "true";
    default:
        return NULL;
    }
}
