/*
 * A unit's attributes, indexed once per request, and the text an attribute value is hashed as.
 * A request evaluates many experiments for one unit, and each looks up its hash attribute and the
 * attributes of its condition: a short scan of this array by tag costs less than hashing the name
 * for jansson's table every time. Private to assign/: the POST reader (post.c) fills an index
 * without jansson, the handlers index a jansson object, the evaluation core (eval.c) and the
 * conditions (cond_eval.c) read it.
 */
#ifndef ABACUS_ASSIGN_ATTRS_H
#define ABACUS_ASSIGN_ATTRS_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

/* An object with more keys than this is not indexed; lookups then go to the object. */
#define ASSIGN_ATTRS_INDEXED 16

struct assign_attrs {
    const json_t *obj; /* the attributes object; NULL for none, or read without jansson */
    int indexed;       /* 1: items holds every key of obj */
    size_t n;
    uint64_t tags[ASSIGN_ATTRS_INDEXED]; /* tags[i]: assign_attr_tag of items[i]'s name */
    struct assign_attr {
        const char *name;
        size_t len;
        const json_t *value; /* NULL when read without jansson (assign_post_read): scalars */
        /* the value read once, since every experiment reads it again */
        json_type type;
        double num;      /* JSON_INTEGER, JSON_REAL: the number; JSON_TRUE 1; else 0 */
        const char *str; /* JSON_STRING: its bytes (str_len of them); else NULL */
        size_t str_len;
        uint64_t str_tag; /* JSON_STRING: assign_attr_tag(str, str_len), for $in */
    } items[ASSIGN_ATTRS_INDEXED];
};

/*
 * The first 7 bytes of name[0..len), zero-padded, and the length (up to 255) in the top byte, as
 * one word. Names are short: equal tags tell almost every pair apart, and prove names of up to 7
 * bytes equal, without comparing bytes. Conditions and experiments compute the tags of the names
 * they look up once.
 */
uint64_t assign_attr_tag(const char *name, size_t len);

/* Indexes obj (an object; anything else counts as none); a borrows obj, which must outlive it. */
void assign_attrs_index(struct assign_attrs *a, const json_t *obj);

/* The attribute name[0..len) of a, or NULL; tag is assign_attr_tag(name, len). */
const json_t *assign_attrs_get(const struct assign_attrs *a, const char *name, size_t len,
                               uint64_t tag);

/* assign_attrs_find for names longer than a tag holds (out of line: most names are short). */
const struct assign_attr *assign_attrs_find_long(const struct assign_attrs *a, const char *name,
                                                 size_t len, uint64_t tag);

/*
 * The item of the attribute name[0..len) of a (which must be indexed), or NULL. Inline: every
 * evaluation looks attributes up, and for short names it is a loop over tags.
 */
static inline const struct assign_attr *assign_attrs_find(const struct assign_attrs *a,
                                                          const char *name, size_t len,
                                                          uint64_t tag)
{
    if (len > 7)
        return assign_attrs_find_long(a, name, len, tag);
    for (size_t i = 0; i < a->n; i++)
        if (a->tags[i] == tag) /* equal tags: equal names of up to 7 bytes */
            return &a->items[i];
    return NULL;
}

#define ASSIGN_ATTR_TEXT_MAX 32 /* bytes of buf that the two functions below may fill */

/*
 * The string a JSON attribute value is hashed as, the way JavaScript turns it into a string
 * (123 -> "123", 1.5 -> "1.5", true -> "true"), or NULL when the value counts as empty (missing,
 * null, false, 0, ""). *len gets the length; buf (ASSIGN_ATTR_TEXT_MAX bytes) may hold the text.
 */
const char *assign_attr_text(const json_t *v, char *buf, size_t *len);

/* assign_attr_item_text for items that are not strings. */
const char *assign_attr_item_text_other(const struct assign_attr *it, char *buf, size_t *len);

/*
 * assign_attr_text of an indexed item, which may have been read without jansson. Inline for
 * strings, what units are hashed by.
 */
static inline const char *assign_attr_item_text(const struct assign_attr *it, char *buf,
                                                size_t *len)
{
    if (it->type != JSON_STRING)
        return assign_attr_item_text_other(it, buf, len);
    *len = it->str_len;
    return it->str_len > 0 ? it->str : NULL;
}

#endif
