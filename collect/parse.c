/*
 * The collector's pure core: a request body in, a batch of valid events and of rejected ones out
 * (docs/design.md, "Events"; docs/collector.md). No SQLite and no sockets: node.c calls it on the
 * HTTP worker thread, store.c stores what it returns, tests/unit/test_collect_parse.c and
 * tests/fuzz/fuzz_events.c exercise it directly.
 *
 * Invalid UTF-8 rejects one event, not the request, yet jansson refuses a whole document for it:
 * so the body is first copied with every byte of an invalid sequence replaced by '?' (same
 * length, so byte offsets stay valid) and the offsets of those bytes kept; the copy is parsed,
 * and a scan of its structure gives each event's byte range, which tells which events held them.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/json.h"
#include "abacus/mem.h"
#include "abacus/utf8.h"
#include "collect_int.h"

static const char *const CODE_NAMES[COLLECT_CODE_COUNT] = {
    "missing_field",      "wrong_type",      "invalid_value", "unknown_field",
    "unknown_experiment", "unknown_variant", "invalid_utf8",  "nul_in_string",
    "event_too_large",    "ts_in_future",    "unsupported_type"};

const char *collect_code_name(enum collect_code code)
{
    return (unsigned)code < COLLECT_CODE_COUNT ? CODE_NAMES[code] : "unknown";
}

int64_t collect_hash64(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    /* splitmix64 finalizer: FNV's low bits are weak, the index sorts by all 64 */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (int64_t)h;
}

/* ---------------------------------------------------------------- timestamps */

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian; Howard Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = ((int64_t)153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_rfc3339(const char *s, size_t len, int64_t *ms)
{
    int y, mo, d, h, mi, sec, frac_ms = 0;
    if (len < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
        s[13] != ':' || s[16] != ':' || digits(s, 4, &y) || digits(s + 5, 2, &mo) ||
        digits(s + 8, 2, &d) || digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
        digits(s + 17, 2, &sec))
        return -1;
    static const int MDAYS[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (mo < 1 || mo > 12 || d < 1 || d > MDAYS[mo - 1] || h > 23 || mi > 59 || sec > 60)
        return -1;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo == 2 && d == 29 && !leap)
        return -1;
    size_t i = 19;
    if (i < len && s[i] == '.') {
        int scale = 100, n = 0;
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++, n++) {
            frac_ms += (s[i] - '0') * scale;
            scale /= 10;
        }
        if (n == 0)
            return -1;
    }
    int64_t offset_min = 0;
    if (i < len && (s[i] == 'Z' || s[i] == 'z')) {
        i++;
    } else if (i + 6 == len && (s[i] == '+' || s[i] == '-') && s[i + 3] == ':') {
        int oh, om;
        if (digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
            return -1;
        offset_min = (int64_t)(s[i] == '-' ? -1 : 1) * (oh * 60 + om);
        i += 6;
    } else {
        return -1;
    }
    if (i != len)
        return -1;
    if (sec == 60)
        sec = 59; /* a leap second counts as the last second of its minute */
    int64_t days = days_from_civil(y, mo, d);
    *ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + frac_ms -
          offset_min * 60000;
    return 0;
}

int collect_parse_ts(const json_t *v, int64_t *ms)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 0 || n > (json_int_t)253402300799999LL) /* up to 9999-12-31 */
            return -1;
        *ms = (int64_t)n;
        return 0;
    }
    if (json_is_string(v))
        return parse_rfc3339(json_string_value(v), json_string_length(v), ms);
    return -1;
}

/* ---------------------------------------------------------------- UTF-8 and structure */

/* Copy of body with invalid UTF-8 bytes replaced by '?'; *bad gets their offsets (heap). */
static char *sanitize(const char *body, size_t len, size_t **bad, size_t *nbad)
{
    char *copy = ab_mem_calloc(1, len + 1);
    memcpy(copy, body, len);
    *bad = NULL;
    *nbad = 0;
    size_t cap = 0;
    for (size_t i = 0; i < len;) {
        size_t n = ab_utf8_seq(body + i, len - i);
        if (n > 0) {
            i += n;
            continue;
        }
        if (*nbad == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            *bad = ab_mem_realloc(*bad, cap * sizeof(**bad));
        }
        (*bad)[(*nbad)++] = i;
        copy[i++] = '?';
    }
    return copy;
}

static int has_bad(const size_t *bad, size_t nbad, size_t start, size_t end)
{
    size_t lo = 0, hi = nbad; /* first offset >= start */
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (bad[mid] < start)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < nbad && bad[lo] < end;
}

static size_t skip_ws(const char *s, size_t len, size_t i)
{
    while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
        i++;
    return i;
}

/* s[i] == '"': the offset just past the closing quote. */
static size_t skip_string(const char *s, size_t len, size_t i)
{
    for (i++; i < len && s[i] != '"'; i++)
        if (s[i] == '\\')
            i++;
    return i < len ? i + 1 : len;
}

/* The offset just past the value at i, in text jansson has already accepted. */
static size_t skip_value(const char *s, size_t len, size_t i)
{
    if (i >= len)
        return len;
    if (s[i] == '"')
        return skip_string(s, len, i);
    if (s[i] != '{' && s[i] != '[') {
        while (i < len && s[i] != ',' && s[i] != ']' && s[i] != '}' && s[i] != ' ' &&
               s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            i++;
        return i;
    }
    int depth = 0;
    for (; i < len; i++) {
        if (s[i] == '"') {
            i = skip_string(s, len, i) - 1;
        } else if (s[i] == '{' || s[i] == '[') {
            depth++;
        } else if (s[i] == '}' || s[i] == ']') {
            if (--depth == 0)
                return i + 1;
        }
    }
    return len;
}

/* Whether the JSON string token s[start..end) (quotes included) decodes to name. */
static int key_is(const char *s, size_t start, size_t end, const char *name)
{
    size_t n = strlen(name);
    if (memchr(s + start, '\\', end - start) == NULL)
        return end - start == n + 2 && memcmp(s + start + 1, name, n) == 0;
    json_t *k = json_loadb(s + start, end - start, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
    int same = json_is_string(k) && json_string_length(k) == n &&
               memcmp(json_string_value(k), name, n) == 0;
    json_decref(k);
    return same;
}

/*
 * In the accepted JSON object text s, the byte ranges of the elements of the array under key
 * (count elements, ranges[2*i], ranges[2*i+1]).
 */
static void element_ranges(const char *s, size_t len, const char *key, size_t *ranges,
                           size_t count)
{
    size_t i = skip_ws(s, len, 0) + 1; /* past '{' */
    while (i < len) {
        i = skip_ws(s, len, i);
        if (i >= len || s[i] != '"')
            return;
        size_t kend = skip_string(s, len, i);
        int match = key_is(s, i, kend, key);
        i = skip_ws(s, len, kend) + 1; /* past ':' */
        i = skip_ws(s, len, i);
        if (match) {
            i++; /* past '[' */
            for (size_t e = 0; e < count; e++) {
                i = skip_ws(s, len, i);
                ranges[2 * e] = i;
                i = skip_value(s, len, i);
                ranges[2 * e + 1] = i;
                i = skip_ws(s, len, i) + 1; /* past ',' or ']' */
            }
            return;
        }
        i = skip_value(s, len, i);
        i = skip_ws(s, len, i) + 1; /* past ',' */
    }
}

/* ---------------------------------------------------------------- validation */

struct check {
    struct collect_batch *b;
    const struct ab_snapshot *snap;
    int64_t now_ms;
    const char *list; /* "events" or "batch" */
    uint32_t index;
    const char *raw;
    size_t raw_len;
};

/* Cuts s before a UTF-8 sequence that truncation left incomplete (the text was valid). */
static void utf8_trim(char *s)
{
    size_t len = strlen(s);
    for (size_t i = 0; i < len;) {
        size_t n = ab_utf8_seq(s + i, len - i);
        if (n == 0) {
            s[i] = '\0';
            return;
        }
        i += n;
    }
}

static void rejectv(struct check *c, enum collect_code code, const char *field, const char *fmt,
                    va_list ap) __attribute__((format(printf, 4, 0)));

static void rejectv(struct check *c, enum collect_code code, const char *field, const char *fmt,
                    va_list ap)
{
    struct collect_batch *b = c->b;
    if (b->rejected == NULL) /* most batches have none: allocated on the first */
        b->rejected = ab_mem_calloc(b->total, sizeof(*b->rejected));
    struct collect_rejection *r = &b->rejected[b->nrejected++];
    r->index = c->index;
    r->code = code;
    if (field != NULL && field[0] != '\0')
        snprintf(r->field, sizeof(r->field), "%s[%u].%s", c->list, (unsigned)c->index, field);
    else
        snprintf(r->field, sizeof(r->field), "%s[%u]", c->list, (unsigned)c->index);
    vsnprintf(r->message, sizeof(r->message), fmt, ap); // NOLINT(clang-analyzer-valist.Uninitialized): ap comes from va_start in reject
    utf8_trim(r->field);
    utf8_trim(r->message);
    r->raw = c->raw;
    r->raw_len = c->raw_len;
}

static void reject(struct check *c, enum collect_code code, const char *field, const char *fmt,
                   ...) __attribute__((format(printf, 4, 5)));

static void reject(struct check *c, enum collect_code code, const char *field, const char *fmt,
                   ...)
{
    va_list ap;
    va_start(ap, fmt);
    rejectv(c, code, field, fmt, ap);
    va_end(ap);
}

/* Path (relative to the event) of the first string holding a NUL, written to path; 1 if any. */
static int find_nul(const json_t *v, char *path, size_t len)
{
    if (json_is_string(v))
        return memchr(json_string_value(v), '\0', json_string_length(v)) != NULL;
    size_t used = strlen(path);
    if (json_is_object(v)) {
        const char *k;
        const json_t *x;
        json_object_foreach((json_t *)v, k, x)
        {
            snprintf(path + used, len - used, "%s%s", used > 0 ? "." : "", k);
            if (find_nul(x, path, len))
                return 1;
        }
    } else if (json_is_array(v)) {
        size_t i;
        const json_t *x;
        json_array_foreach(v, i, x)
        {
            snprintf(path + used, len - used, "[%zu]", i);
            if (find_nul(x, path, len))
                return 1;
        }
    }
    path[used] = '\0';
    return 0;
}

/* A required or optional string field of 1..max bytes; returns it, or NULL after rejecting. */
static const char *get_string(struct check *c, const json_t *obj, const char *name,
                              const char *field, size_t max, int required, int *failed)
{
    const json_t *v = json_object_get(obj, name);
    if (v == NULL || json_is_null(v)) {
        if (required) {
            reject(c, COLLECT_MISSING_FIELD, field, "is required");
            *failed = 1;
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        reject(c, COLLECT_WRONG_TYPE, field, "must be a string");
        *failed = 1;
        return NULL;
    }
    size_t n = json_string_length(v);
    if (n == 0 || n > max) {
        reject(c, COLLECT_INVALID_VALUE, field, "must be 1 to %zu bytes", max);
        *failed = 1;
        return NULL;
    }
    return json_string_value(v);
}

static const struct ab_snapshot_experiment *find_experiment(const struct ab_snapshot *snap,
                                                            const char *key)
{
    if (snap == NULL)
        return NULL;
    size_t lo = 0, hi = snap->nexperiments;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int cmp = strcmp(snap->experiments[mid].key, key);
        if (cmp == 0)
            return &snap->experiments[mid];
        if (cmp < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/*
 * Checks experiment and variant against the snapshot; a variant given as an integer (GrowthBook's
 * variationId) is the variant at that position. Returns the variant key, or NULL after rejecting.
 */
static const char *check_exposure(struct check *c, const char *experiment, const json_t *variant,
                                  const char *efield, const char *vfield)
{
    const struct ab_snapshot_experiment *e = find_experiment(c->snap, experiment);
    if (e == NULL) {
        reject(c, COLLECT_UNKNOWN_EXPERIMENT, efield, "no experiment %.100s", experiment);
        return NULL;
    }
    if (json_is_integer(variant)) {
        json_int_t i = json_integer_value(variant);
        if (i < 0 || (size_t)i >= e->nvariants) {
            reject(c, COLLECT_UNKNOWN_VARIANT, vfield, "experiment %.100s has no variant %lld",
                   experiment, (long long)i);
            return NULL;
        }
        /* a copy the batch owns: the snapshot may be replaced before the batch is stored */
        json_t *key = json_string(e->variants[i].key);
        json_array_append_new(c->b->strings, key);
        return json_string_value(key);
    }
    const char *key = json_string_value(variant);
    for (size_t i = 0; i < e->nvariants; i++)
        if (strcmp(e->variants[i].key, key) == 0)
            return key; /* the request's own text, owned by the batch */
    reject(c, COLLECT_UNKNOWN_VARIANT, vfield, "experiment %.100s has no variant %.100s",
           experiment, key);
    return NULL;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
    h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
    return h;
}

static int64_t fingerprint(const struct collect_event *ev)
{
    uint64_t bits;
    memcpy(&bits, &ev->value, sizeof(bits));
    uint64_t h = mix(mix(mix(0, (uint64_t)ev->type), (uint64_t)ev->client_ts), bits);
    const char *parts[] = {ev->unit, ev->experiment, ev->variant, ev->metric, ev->attributes};
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
        h = mix(h, parts[i] != NULL ? (uint64_t)collect_hash64(parts[i], strlen(parts[i])) : i);
    return (int64_t)h;
}

/* The timestamp fields of an event: client ts, optional sent_at, skew correction, future check. */
static int check_time(struct check *c, struct collect_event *ev, const json_t *ts,
                      const char *tsfield, const json_t *sent, const char *sentfield)
{
    if (ts == NULL || json_is_null(ts)) {
        reject(c, COLLECT_MISSING_FIELD, tsfield, "is required");
        return -1;
    }
    if (!json_is_integer(ts) && !json_is_string(ts)) {
        reject(c, COLLECT_WRONG_TYPE, tsfield, "must be ms since the epoch or an RFC 3339 string");
        return -1;
    }
    if (collect_parse_ts(ts, &ev->client_ts) != 0) {
        reject(c, COLLECT_INVALID_VALUE, tsfield, "is not a valid timestamp");
        return -1;
    }
    ev->ts = ev->client_ts;
    if (sent != NULL && !json_is_null(sent)) {
        if (!json_is_integer(sent) && !json_is_string(sent)) {
            reject(c, COLLECT_WRONG_TYPE, sentfield,
                   "must be ms since the epoch or an RFC 3339 string");
            return -1;
        }
        if (collect_parse_ts(sent, &ev->sent_at) != 0) {
            reject(c, COLLECT_INVALID_VALUE, sentfield, "is not a valid timestamp");
            return -1;
        }
        ev->has_sent_at = 1;
        ev->ts = ev->client_ts + (c->now_ms - ev->sent_at);
    }
    if (ev->ts > c->now_ms + COLLECT_FUTURE_MS) {
        reject(c, COLLECT_TS_IN_FUTURE, tsfield,
               "is %lld s ahead of the server clock after skew correction",
               (long long)((ev->ts - c->now_ms) / 1000));
        return -1;
    }
    if (ev->ts < 0)
        ev->ts = 0;
    return 0;
}

static void finish_event(struct check *c, struct collect_event *ev, const json_t *attrs)
{
    ev->index = c->index;
    if (attrs != NULL)
        ev->attributes = json_dumps(attrs, JSON_COMPACT);
    ev->id_hash = collect_hash64(ev->id, strlen(ev->id));
    ev->fingerprint = fingerprint(ev);
    c->b->nevents++;
}

static const char *const EVENT_FIELDS[] = {"id",     "type",  "ts",      "unit",      "experiment",
                                           "variant", "metric", "value", "sent_at", "attributes"};

static void check_event(struct check *c, const json_t *o)
{
    struct collect_event *ev = &c->b->events[c->b->nevents];
    memset(ev, 0, sizeof(*ev));
    const char *k;
    const json_t *v;
    json_object_foreach((json_t *)o, k, v)
    {
        size_t i = 0;
        while (i < sizeof(EVENT_FIELDS) / sizeof(EVENT_FIELDS[0]) && strcmp(k, EVENT_FIELDS[i]) != 0)
            i++;
        if (i == sizeof(EVENT_FIELDS) / sizeof(EVENT_FIELDS[0])) {
            reject(c, COLLECT_UNKNOWN_FIELD, k, "unknown field");
            return;
        }
    }
    int failed = 0;
    if ((ev->id = get_string(c, o, "id", "id", COLLECT_ID_MAX, 1, &failed)) == NULL)
        return;
    const char *type = get_string(c, o, "type", "type", 16, 1, &failed);
    if (failed)
        return;
    if (strcmp(type, "exposure") == 0) {
        ev->type = COLLECT_EXPOSURE;
    } else if (strcmp(type, "metric") == 0) {
        ev->type = COLLECT_METRIC;
    } else {
        reject(c, COLLECT_INVALID_VALUE, "type", "must be \"exposure\" or \"metric\"");
        return;
    }
    if (check_time(c, ev, json_object_get(o, "ts"), "ts", json_object_get(o, "sent_at"),
                   "sent_at") != 0)
        return;
    if ((ev->unit = get_string(c, o, "unit", "unit", COLLECT_UNIT_MAX, 1, &failed)) == NULL)
        return;
    const json_t *attrs = json_object_get(o, "attributes");
    if (attrs != NULL && !json_is_null(attrs) && !json_is_object(attrs)) {
        reject(c, COLLECT_WRONG_TYPE, "attributes", "must be an object");
        return;
    }
    if (json_is_null(attrs))
        attrs = NULL;
    if (ev->type == COLLECT_EXPOSURE) {
        const char *exp = get_string(c, o, "experiment", "experiment", AB_SNAPSHOT_KEY_MAX, 1,
                                     &failed);
        if (failed)
            return;
        get_string(c, o, "variant", "variant", AB_SNAPSHOT_KEY_MAX, 1, &failed);
        if (failed)
            return;
        ev->variant = check_exposure(c, exp, json_object_get(o, "variant"), "experiment",
                                     "variant");
        if (ev->variant == NULL)
            return;
        ev->experiment = exp;
    } else {
        if ((ev->metric = get_string(c, o, "metric", "metric", COLLECT_NAME_MAX, 1, &failed)) ==
            NULL)
            return;
        const json_t *value = json_object_get(o, "value");
        ev->value = 1;
        if (value != NULL && !json_is_null(value)) {
            if (!json_is_number(value)) {
                reject(c, COLLECT_WRONG_TYPE, "value", "must be a number");
                return;
            }
            ev->value = json_number_value(value);
        }
    }
    finish_event(c, ev, attrs);
}

/* A Segment message; "Experiment Viewed" tracks become exposures, other tracks metric events. */
static void check_segment(struct check *c, const json_t *o, const json_t *batch_sent_at)
{
    struct collect_event *ev = &c->b->events[c->b->nevents];
    memset(ev, 0, sizeof(*ev));
    int failed = 0;
    const char *type = get_string(c, o, "type", "type", 32, 1, &failed);
    if (failed)
        return;
    if (strcmp(type, "track") != 0) {
        reject(c, COLLECT_UNSUPPORTED_TYPE, "type", "only track messages are collected, not %.32s",
               type);
        return;
    }
    if ((ev->id = get_string(c, o, "messageId", "messageId", COLLECT_ID_MAX, 1, &failed)) == NULL)
        return;
    const json_t *user = json_object_get(o, "userId");
    const char *ufield = "userId";
    if (user == NULL || json_is_null(user)) {
        ufield = "anonymousId";
        user = json_object_get(o, "anonymousId");
    }
    if (user == NULL || json_is_null(user)) {
        reject(c, COLLECT_MISSING_FIELD, "userId", "userId or anonymousId is required");
        return;
    }
    if ((ev->unit = get_string(c, o, ufield, ufield, COLLECT_UNIT_MAX, 1, &failed)) == NULL)
        return;
    const char *name = get_string(c, o, "event", "event", COLLECT_NAME_MAX, 1, &failed);
    if (failed)
        return;
    const json_t *sent = json_object_get(o, "sentAt");
    if (sent == NULL || json_is_null(sent))
        sent = batch_sent_at;
    if (check_time(c, ev, json_object_get(o, "timestamp"), "timestamp", sent, "sentAt") != 0)
        return;
    const json_t *props = json_object_get(o, "properties");
    if (props != NULL && !json_is_null(props) && !json_is_object(props)) {
        reject(c, COLLECT_WRONG_TYPE, "properties", "must be an object");
        return;
    }
    if (json_is_null(props))
        props = NULL;
    if (strcmp(name, "Experiment Viewed") == 0) {
        ev->type = COLLECT_EXPOSURE;
        const char *ek = json_object_get(props, "experiment_id") != NULL ? "experiment_id"
                                                                          : "experimentId";
        const char *vk = json_object_get(props, "variation_id") != NULL ? "variation_id"
                                                                         : "variationId";
        char efield[48], vfield[48];
        snprintf(efield, sizeof(efield), "properties.%s", ek);
        snprintf(vfield, sizeof(vfield), "properties.%s", vk);
        const char *exp =
            get_string(c, props, ek, efield, AB_SNAPSHOT_KEY_MAX, 1, &failed);
        if (failed)
            return;
        const json_t *var = json_object_get(props, vk);
        if (var == NULL || json_is_null(var)) {
            reject(c, COLLECT_MISSING_FIELD, vfield, "is required");
            return;
        }
        if (!json_is_string(var) && !json_is_integer(var)) {
            reject(c, COLLECT_WRONG_TYPE, vfield, "must be a variant key or index");
            return;
        }
        if ((ev->variant = check_exposure(c, exp, var, efield, vfield)) == NULL)
            return;
        ev->experiment = exp;
    } else {
        ev->type = COLLECT_METRIC;
        ev->metric = name;
        ev->value = 1;
        const char *vk = json_object_get(props, "value") != NULL ? "value" : "revenue";
        const json_t *value = json_object_get(props, vk);
        if (value != NULL && !json_is_null(value)) {
            if (!json_is_number(value)) {
                char field[32];
                snprintf(field, sizeof(field), "properties.%s", vk);
                reject(c, COLLECT_WRONG_TYPE, field, "must be a number");
                return;
            }
            ev->value = json_number_value(value);
        }
    }
    finish_event(c, ev, props);
}

/* Validates element v (its bytes s[start..end)) as event c->index. */
static void check_element(struct check *c, const json_t *v, const char *body, size_t start,
                          size_t end, const size_t *bad, size_t nbad, const json_t *batch_sent_at)
{
    c->raw = body + start;
    c->raw_len = end - start;
    if (end - start > COLLECT_EVENT_MAX) {
        reject(c, COLLECT_EVENT_TOO_LARGE, NULL, "the event is %zu bytes, over %zu", end - start,
               COLLECT_EVENT_MAX);
        return;
    }
    if (has_bad(bad, nbad, start, end)) {
        reject(c, COLLECT_INVALID_UTF8, NULL, "the event holds invalid UTF-8");
        return;
    }
    if (!json_is_object(v)) {
        reject(c, COLLECT_WRONG_TYPE, NULL, "an event must be a JSON object");
        return;
    }
    char path[128] = "";
    if (find_nul(v, path, sizeof(path))) {
        reject(c, COLLECT_NUL_IN_STRING, path, "a string holds a NUL character");
        return;
    }
    if (c->b->format == COLLECT_FORMAT_SEGMENT)
        check_segment(c, v, batch_sent_at);
    else
        check_event(c, v);
}

/* ---------------------------------------------------------------- entry points */

static struct collect_batch *batch_new(enum collect_format format, size_t n, int64_t now_ms)
{
    struct collect_batch *b = ab_mem_calloc(1, sizeof(*b));
    b->format = format;
    b->received_at = now_ms;
    b->total = n;
    b->events = ab_mem_calloc(n, sizeof(*b->events));
    b->strings = json_array();
    return b;
}

static enum ab_err too_many(struct ab_errinfo *ei, const char *field, size_t n)
{
    return ab_fail(ei, AB_ERR_INVALID_FIELD, field, "%zu events, over the limit of %d per request",
                   n, COLLECT_EVENTS_MAX);
}

static enum ab_err json_error(struct ab_errinfo *ei, const json_error_t *jerr, size_t line_no)
{
    if (line_no > 0)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body",
                       "invalid JSON on line %zu, column %d (byte %d of the line): %s", line_no,
                       jerr->column, jerr->position, jerr->text);
    return ab_fail(ei, AB_ERR_INVALID_JSON, "body",
                   "invalid JSON at line %d, column %d (byte %d): %s", jerr->line, jerr->column,
                   jerr->position, jerr->text);
}

static enum ab_err parse_document(const char *body, const char *clean, size_t len,
                                  enum collect_format format, const struct ab_snapshot *snap,
                                  int64_t now_ms, const size_t *bad, size_t nbad,
                                  struct collect_batch **out, struct ab_errinfo *ei)
{
    json_error_t jerr;
    json_t *doc = json_loadb(clean, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (doc == NULL)
        return json_error(ei, &jerr, 0);
    const char *key = format == COLLECT_FORMAT_SEGMENT ? "batch" : "events";
    const json_t *list = json_object_get(doc, key);
    if (!json_is_array(list)) {
        json_decref(doc);
        return ab_fail(ei, AB_ERR_INVALID_FIELD, key, "the body must be an object with an array "
                                                      "\"%s\"", key);
    }
    size_t n = json_array_size(list);
    if (n > COLLECT_EVENTS_MAX) {
        json_decref(doc);
        return too_many(ei, key, n);
    }
    size_t *ranges = ab_mem_calloc(2 * n + 1, sizeof(*ranges));
    element_ranges(clean, len, key, ranges, n);
    struct collect_batch *b = batch_new(format, n, now_ms);
    b->doc = doc;
    const json_t *sent = json_object_get(doc, "sentAt");
    struct check c = {.b = b, .snap = snap, .now_ms = now_ms, .list = key};
    for (size_t i = 0; i < n; i++) {
        c.index = (uint32_t)i;
        check_element(&c, json_array_get(list, i), body, ranges[2 * i], ranges[2 * i + 1], bad,
                      nbad, sent);
    }
    free(ranges);
    *out = b;
    return AB_OK;
}

static enum ab_err parse_ndjson(const char *body, const char *clean, size_t len,
                                const struct ab_snapshot *snap, int64_t now_ms, const size_t *bad,
                                size_t nbad, struct collect_batch **out, struct ab_errinfo *ei)
{
    size_t n = 0;
    for (size_t i = 0; i < len;) { /* count non-blank lines */
        const char *nl = memchr(clean + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - clean) : len;
        if (skip_ws(clean, end, i) < end)
            n++;
        i = end + 1;
    }
    if (n > COLLECT_EVENTS_MAX)
        return too_many(ei, "body", n);
    if (n == 0)
        return ab_fail(ei, AB_ERR_INVALID_FIELD, "body", "no events: send one JSON object a line");
    struct collect_batch *b = batch_new(COLLECT_FORMAT_NDJSON, n, now_ms);
    b->lines = ab_mem_calloc(n, sizeof(json_t *));
    struct check c = {.b = b, .snap = snap, .now_ms = now_ms, .list = "events"};
    size_t line_no = 0;
    for (size_t i = 0; i < len;) {
        const char *nl = memchr(clean + i, '\n', len - i);
        size_t end = nl != NULL ? (size_t)(nl - clean) : len;
        size_t start = skip_ws(clean, end, i);
        line_no++;
        i = end + 1;
        if (start == end)
            continue;
        while (end > start && (clean[end - 1] == '\r' || clean[end - 1] == ' ' ||
                               clean[end - 1] == '\t'))
            end--;
        json_error_t jerr;
        json_t *v = json_loadb(clean + start, end - start,
                               JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL | JSON_DECODE_ANY, &jerr);
        if (v == NULL) {
            collect_batch_free(b);
            return json_error(ei, &jerr, line_no);
        }
        b->lines[b->nlines++] = v;
        c.index = (uint32_t)(b->nlines - 1);
        check_element(&c, v, body, start, end, bad, nbad, NULL);
    }
    *out = b;
    return AB_OK;
}

enum ab_err collect_parse(const char *body, size_t len, enum collect_format format,
                          const struct ab_snapshot *snap, int64_t now_ms,
                          struct collect_batch **out, struct ab_errinfo *ei)
{
    *out = NULL;
    if (len > COLLECT_BODY_MAX)
        return ab_fail(ei, AB_ERR_TOO_LARGE, "body", "the body is %zu bytes, over the limit of %zu",
                       len, COLLECT_BODY_MAX);
    if (ab_json_depth(body, len, COLLECT_DEPTH_MAX) > COLLECT_DEPTH_MAX)
        return ab_fail(ei, AB_ERR_INVALID_JSON, "body", "JSON nests deeper than %d levels",
                       COLLECT_DEPTH_MAX);
    size_t *bad, nbad;
    char *clean = sanitize(body, len, &bad, &nbad);
    enum ab_err rc;
    if (format == COLLECT_FORMAT_NDJSON)
        rc = parse_ndjson(body, clean, len, snap, now_ms, bad, nbad, out, ei);
    else
        rc = parse_document(body, clean, len, format, snap, now_ms, bad, nbad, out, ei);
    free(clean);
    free(bad);
    return rc;
}

void collect_batch_free(struct collect_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; i < b->nevents; i++)
        free(b->events[i].attributes);
    for (size_t i = 0; i < b->nlines; i++)
        json_decref(b->lines[i]);
    free(b->lines);
    json_decref(b->doc);
    json_decref(b->strings);
    free(b->events);
    free(b->rejected);
    free(b);
}
