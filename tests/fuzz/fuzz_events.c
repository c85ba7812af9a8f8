/*
 * libFuzzer target: the collector's event parsing and validation (collect/parse.c). The first
 * byte picks the format (events JSON, NDJSON, Segment batch), the rest is the body. Checks that
 * an accepted body accounts for every event exactly once (valid or rejected), that valid events
 * hold only NUL-free UTF-8 strings, that rejections point into the body and name a field of the
 * right list, and that refusals return no batch and carry a field and a message.
 */
#undef NDEBUG /* the checks below are the point of the target */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/utf8.h"
#include "collect_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ab_snapshot *snapshot(void)
{
    static struct ab_snapshot_variant variants[2] = {{.key = (char *)"control"},
                                                     {.key = (char *)"treatment"}};
    static struct ab_snapshot_experiment exp = {.key = (char *)"checkout",
                                                .variants = variants,
                                                .nvariants = 2};
    static struct ab_snapshot snap = {.version = 1, .experiments = &exp, .nexperiments = 1};
    return &snap;
}

static void check_string(const char *s)
{
    if (s != NULL)
        assert(ab_utf8_valid(s, strlen(s)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    enum collect_format format = (enum collect_format)(data[0] % 3);
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    struct collect_batch *b = NULL;
    struct ab_errinfo ei;
    enum ab_err rc = collect_parse(body, len, format, snapshot(), 1795524362123LL, &b, &ei);
    if (rc != AB_OK) {
        assert(b == NULL);
        assert(rc == AB_ERR_INVALID_JSON || rc == AB_ERR_INVALID_FIELD ||
               rc == AB_ERR_TOO_LARGE);
        assert(ei.field[0] != '\0' && ei.message[0] != '\0');
        return 0;
    }
    assert(b != NULL);
    assert(b->nevents + b->nrejected == b->total);
    assert(b->total <= COLLECT_EVENTS_MAX);
    const char *list = format == COLLECT_FORMAT_SEGMENT ? "batch[" : "events[";
    for (size_t i = 0; i < b->nevents; i++) {
        const struct collect_event *e = &b->events[i];
        assert(e->index < b->total);
        assert(e->id != NULL && e->unit != NULL);
        assert(strlen(e->id) >= 1 && strlen(e->id) <= COLLECT_ID_MAX);
        check_string(e->id);
        check_string(e->unit);
        check_string(e->metric);
        check_string(e->attributes);
        assert((e->type == COLLECT_EXPOSURE) == (e->experiment != NULL && e->variant != NULL));
        assert(e->ts <= 1795524362123LL + COLLECT_FUTURE_MS);
    }
    for (size_t i = 0; i < b->nrejected; i++) {
        const struct collect_rejection *r = &b->rejected[i];
        assert(r->index < b->total);
        assert(strncmp(r->field, list, strlen(list)) == 0);
        assert(r->message[0] != '\0');
        /* both go into the JSON answer */
        assert(ab_utf8_valid(r->field, strlen(r->field)));
        assert(ab_utf8_valid(r->message, strlen(r->message)));
        assert(r->raw >= body && r->raw + r->raw_len <= body + len);
        assert((unsigned)r->code < COLLECT_CODE_COUNT);
    }
    collect_batch_free(b);
    return 0;
}
