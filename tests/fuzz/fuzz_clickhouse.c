/*
 * libFuzzer target: the ClickHouse client's parsers of untrusted bytes, the clickhouse:// URL
 * (operators' flags) and the JSONEachRow answers read back from the server, plus the literal
 * quoting of text that goes into query strings. Checks, beyond not crashing: a parsed URL has a
 * host, a port and a database name of [A-Za-z0-9_]; parsed rows are all objects; a quoted literal
 * holds no raw control byte and no quote that is not escaped.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/clickhouse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct ab_ch_url url;
    struct ab_errinfo ei;
    if (ab_ch_url_parse(s, size, &url, &ei) == AB_OK) {
        assert(url.host[0] != '\0' && url.port >= 1 && url.db[0] != '\0');
        for (const char *p = url.db; *p != '\0'; p++)
            assert((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                   (*p >= '0' && *p <= '9') || *p == '_');
        for (const char *p = url.host; *p != '\0'; p++)
            assert((unsigned char)*p > 0x20);
    }
    json_t *rows = NULL;
    if (ab_ch_rows_parse(s, size, &rows, &ei) == AB_OK) {
        for (size_t i = 0; i < json_array_size(rows); i++)
            assert(json_is_object(json_array_get(rows, i)));
    } else {
        assert(rows == NULL);
    }
    json_decref(rows);

    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = '\0'; /* quoting takes C strings: up to the first NUL */
    char *q = NULL;
    size_t qlen = 0;
    ab_ch_append_quoted(&q, &qlen, text);
    assert(qlen >= 2 && q[0] == '\'' && q[qlen - 1] == '\'' && strlen(q) == qlen);
    for (size_t i = 1; i + 1 < qlen; i++) {
        assert((unsigned char)q[i] >= 0x20 && q[i] != 0x7f);
        if (q[i] == '\\')
            i++; /* an escape and what it escapes */
        else
            assert(q[i] != '\'');
    }
    free(q);
    free(text);
    return 0;
}
