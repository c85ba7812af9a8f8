/*
 * UTF-8 validation (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). Used by
 * the URL decoder and by anything else that takes text from the network outside jansson.
 */
#ifndef ABACUS_UTF8_H
#define ABACUS_UTF8_H

#include <stddef.h>

/* 1 when s[0..len) is well-formed UTF-8, else 0. NUL bytes are valid UTF-8 here. */
int ab_utf8_valid(const char *s, size_t len);

#endif
