/*
 * libFuzzer target: the replication manifest parser (lib/replica.c), which reads what a control
 * plane, a mirror or anything in between answers at /v1/snapshots/latest. Checks, beyond not
 * crashing or leaking: an accepted manifest has a positive version and size, a 64-digit lowercase
 * hex SHA-256 and a non-empty URL without spaces or control characters; a refusal names a field.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <string.h>
#include "abacus/replica.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ab_replica_manifest m;
    struct ab_errinfo ei;
    enum ab_err rc = ab_replica_manifest_parse((const char *)data, size, &m, &ei);
    if (rc != AB_OK) {
        assert(rc == AB_ERR_INVALID_JSON || rc == AB_ERR_INVALID_FIELD);
        assert(ei.field[0] != '\0' && ei.message[0] != '\0');
        return 0;
    }
    assert(m.version > 0 && m.size > 0);
    assert(strlen(m.sha256) == 64 && strspn(m.sha256, "0123456789abcdef") == 64);
    size_t n = strlen(m.url);
    assert(n > 0 && n < sizeof(m.url));
    for (size_t i = 0; i < n; i++)
        assert((unsigned char)m.url[i] > 0x20 && m.url[i] != 0x7f);
    return 0;
}
