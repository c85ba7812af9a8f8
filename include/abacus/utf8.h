/*
 * UTF-8, the one decoder of the code base (RFC 3629 section 4: no overlong forms, no surrogates,
 * nothing above U+10FFFF). Used by the URL decoder, the POST /v1/assign reader, the targeting
 * conditions (JavaScript's string semantics), the FNV hash over UTF-16 code units and the
 * collector's per-event UTF-8 check: by anything that reads text from the network outside
 * jansson, which validates what it parses itself.
 */
#ifndef ABACUS_UTF8_H
#define ABACUS_UTF8_H

#include <stddef.h>
#include <stdint.h>

/*
 * Length (1 to 4) of the well-formed UTF-8 sequence that starts s[0..len), or 0 when the bytes
 * there are not one (or len is 0). A NUL byte is a well-formed sequence of length 1.
 */
size_t ab_utf8_seq(const char *s, size_t len);

/* ab_utf8_seq, with the sequence's code point in *cp when it is well-formed. */
size_t ab_utf8_decode(const char *s, size_t len, uint32_t *cp);

/* 1 when s[0..len) is well-formed UTF-8, else 0. NUL bytes are valid UTF-8 here. */
int ab_utf8_valid(const char *s, size_t len);

/*
 * The code point of the sequence of 2 to 4 bytes at s, which the caller knows is well-formed
 * (text ab_utf8_valid accepted); its length into *n. Inline and unchecked: the hash of every unit
 * id decodes with it.
 */
static inline uint32_t ab_utf8_decode_valid(const unsigned char *s, size_t *n)
{
    if (s[0] < 0xe0) {
        *n = 2;
        return (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f);
    }
    if (s[0] < 0xf0) {
        *n = 3;
        return (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f);
    }
    *n = 4;
    return (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
           (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f);
}

#endif
