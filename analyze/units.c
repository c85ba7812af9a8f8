/*
 * The per-unit join of the analysis (docs/design.md, "Analysis"), pure: no SQLite, no I/O. sql.c
 * streams two scans of the events table into it, the experiment's exposures first and then the
 * metric events, and it turns them into the sufficient statistics per (metric, variant, day).
 *
 * Why C and not a SQL join: in SQLite the join of every metric event to its unit's first exposure
 * is a B-tree probe per event, and each metric needed two more passes over the table; at 1 M
 * events that took 24 x the bare GROUP BY scan. Here each scan is read once and each event costs
 * one lookup in a hash table of the exposed units (bench/analyze, docs/benchmarks.md).
 *
 * Memory layout, for a table far larger than the caches: a unit is one record in an arena (its
 * first exposure, its key, and per metric its covariate and the day being summed), found through
 * 8-byte slots that hold a 24-bit hash tag and the record's offset. Metric events go through a
 * short pipeline: an event's slot is prefetched when it arrives, its record a few events later,
 * and it is applied a few events after that, so the cache misses of consecutive events overlap
 * instead of adding up. The large arrays ask for transparent huge pages (fewer TLB misses).
 *
 * A unit's value as of day D is the running sum of its daily increments, and what a day adds to
 * sum(y), sum(y^2) and the cross sums is after - before. Each (unit, metric) sums the day its
 * events are on in its record; when an event of a later day comes, the day closes: its change
 * goes into the day's cell at once and its sums to a chain of (day, numerator, denominator)
 * records (appended, linked newest first). The chain is read again only when the events were not
 * in day order or the covariate changed after a day closed (start_replay). analyze_agg_accumulate
 * turns the daily changes into each day's cumulative statistics, without one row per unit and
 * day.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include "abacus/mem.h"
#include "analyze_int.h"

/* Per (unit, metric): the covariate, the day being summed and the days before it. */
struct unit_metric {
    double x;        /* pre-exposure covariate */
    double num, den; /* sums of the open day */
    double cn, cd;   /* sums through the closed days (while not replayed) */
    int32_t day;     /* the open day, -1 when none */
    uint32_t head : 31; /* closed days: chain record index + 1, newest first; 0 when none */
    uint32_t replay : 1; /* the days are summed at the end, from the chain */
};

/* A unit's record: this header, its key padded to 8 bytes, then nmetrics unit_metric. */
struct unit {
    uint64_t hash;
    int64_t t0, t1;        /* first and last exposure */
    uint64_t variant_hash; /* of the first exposure's variant key: another one marks multi */
    int32_t variant;       /* index in the definition, -1 for a key the phase does not have */
    uint32_t multi;
    uint32_t key_len;
    uint32_t pad;
};

/* One closed day of one (unit, metric). */
struct increment {
    uint32_t next; /* older record + 1, 0 at the end */
    int32_t day;
    double num, den;
};

/* A metric an event name feeds: as its numerator, its denominator, or both (a ratio of an event
 * over itself). */
struct metric_use {
    size_t m;
    int is_num, is_den;
};

/* An event name the experiment's metrics use, with the metrics it feeds (each once). */
struct event_name {
    const char *name;
    struct metric_use *uses;
    size_t nuses;
};

#define SLOT_TAG(h) ((h) & 0xffffff0000000000ULL) /* top 24 bits of the hash */
#define SLOT_OFF(s) ((s) & 0x000000ffffffffffULL) /* record offset + 1 (40 bits) */
#define PIPE 32                                   /* metric events in flight, a power of 2 */
#define KEY_MAX 256                               /* longer unit ids are hashed as they are */

/* A metric event in the pipeline, with its own copy of the unit id. */
struct pending {
    uint64_t hash;
    const struct event_name *name;
    double value;
    int64_t ts;
    size_t len;
    uint64_t slot_or_record; /* after stage 2: the candidate record's offset + 1, or 0 */
    char key[KEY_MAX];
    char *long_key;          /* ids over KEY_MAX bytes: a heap copy */
};

struct analyze_units {
    const struct analyze_experiment_def *def;
    struct analyze_agg *agg;
    int64_t through;
    size_t nmetrics;
    uint64_t *slots; /* 0 empty, else SLOT_TAG(hash) | record offset + 1 */
    size_t mask, slots_cap;
    size_t nunits;
    unsigned char *arena; /* the unit records */
    size_t arena_len, arena_cap;
    struct increment *inc;
    size_t ninc, inc_cap, inc_bytes; /* records, room for records, size of the mapping */
    struct event_name *names;
    size_t nnames;
    struct increment *buf; /* scratch: one (unit, metric)'s days */
    size_t buf_cap;
    int exposures_done;
    struct pending pipe[PIPE];
    size_t pipe_in; /* events that entered the pipeline */
};

/*
 * The join's large arrays (slots, records, closed days) live in their own mappings: growing one
 * is mremap, which moves page tables instead of copying, and they ask for transparent huge pages
 * (fewer TLB misses on random access). *cap is the mapping's size; aborts when memory runs out.
 */
static void *big_grow(void *p, size_t *cap, size_t size)
{
    enum { HUGE = 2 << 20 };
    size = (size + HUGE - 1) & ~(size_t)(HUGE - 1);
    void *q = p == NULL ? mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
                        : mremap(p, *cap, size, MREMAP_MAYMOVE);
    if (q == MAP_FAILED) {
        fprintf(stderr, "abacus: out of memory (%zu bytes for the analysis)\n", size);
        abort();
    }
#ifdef MADV_HUGEPAGE
    (void)madvise(q, size, MADV_HUGEPAGE); /* a hint: failure is harmless */
#endif
    *cap = size;
    return q;
}

static void big_free(void *p, size_t cap)
{
    if (p != NULL)
        munmap(p, cap);
}

static uint64_t hash_bytes(const char *s, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (len * 0xff51afd7ed558ccdULL);
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x100000001b3ULL;
        h ^= h >> 29;
    }
    uint64_t w = 0;
    memcpy(&w, s + i, len - i);
    h = (h ^ w) * 0x100000001b3ULL;
    /* splitmix64's finalizer: the slot index takes the low bits, the tag the high ones */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

static size_t key_space(size_t len)
{
    return (len + 7) & ~(size_t)7;
}

static struct unit *record(const struct analyze_units *j, uint64_t off1)
{
    return (struct unit *)(void *)(j->arena + off1 - 1);
}

static const char *record_key(const struct unit *u)
{
    return (const char *)(u + 1);
}

static struct unit_metric *record_metrics(const struct unit *u)
{
    return (struct unit_metric *)(void *)((unsigned char *)(u + 1) + key_space(u->key_len));
}

static size_t record_size(const struct analyze_units *j, size_t len)
{
    return sizeof(struct unit) + key_space(len) + j->nmetrics * sizeof(struct unit_metric);
}

static struct event_name *name_of(struct analyze_units *j, const char *name)
{
    for (size_t i = 0; i < j->nnames; i++)
        if (strcmp(j->names[i].name, name) == 0)
            return &j->names[i];
    struct event_name *n = &j->names[j->nnames++];
    n->name = name;
    return n;
}

/* Records that event name feeds metric m as numerator and/or denominator. */
static void add_use(struct analyze_units *j, const char *name, size_t m, int is_num, int is_den)
{
    struct event_name *n = name_of(j, name);
    for (size_t i = 0; i < n->nuses; i++) {
        if (n->uses[i].m == m) {
            n->uses[i].is_num |= is_num;
            n->uses[i].is_den |= is_den;
            return;
        }
    }
    n->uses = ab_mem_realloc(n->uses, (n->nuses + 1) * sizeof(*n->uses));
    n->uses[n->nuses++] = (struct metric_use){m, is_num, is_den};
}

struct analyze_units *analyze_units_new(const struct analyze_experiment_def *def,
                                        struct analyze_agg *agg, int64_t through_ms)
{
    struct analyze_units *j = ab_mem_calloc(1, sizeof(*j));
    j->def = def;
    j->agg = agg;
    j->through = through_ms;
    j->nmetrics = def->nmetrics;
    j->mask = 1023; /* in a mapping of one huge page; mappings are zeroed */
    j->slots = big_grow(NULL, &j->slots_cap, (j->mask + 1) * sizeof(*j->slots));
    j->names = ab_mem_calloc(2 * def->nmetrics + 1, sizeof(*j->names));
    for (size_t m = 0; m < def->nmetrics; m++) {
        add_use(j, def->metrics[m].event, m, 1, 0);
        if (def->metrics[m].type == ANALYZE_RATIO && def->metrics[m].denominator_event != NULL)
            add_use(j, def->metrics[m].denominator_event, m, 0, 1);
    }
    return j;
}

void analyze_units_free(struct analyze_units *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->nnames; i++)
        free(j->names[i].uses);
    for (size_t i = 0; i < PIPE; i++)
        free(j->pipe[i].long_key);
    free(j->names);
    free(j->buf);
    big_free(j->slots, j->slots_cap);
    big_free(j->arena, j->arena_cap);
    big_free(j->inc, j->inc_bytes);
    free(j);
}

/* The record of unit (hash h) found by probing from its slot, or 0 with *empty the free slot. */
static uint64_t probe(const struct analyze_units *j, const char *key, size_t len, uint64_t h,
                      size_t *empty)
{
    for (size_t i = (size_t)h & j->mask;; i = (i + 1) & j->mask) {
        uint64_t s = j->slots[i];
        if (s == 0) {
            *empty = i;
            return 0;
        }
        if (SLOT_TAG(s) == SLOT_TAG(h)) {
            const struct unit *u = record(j, SLOT_OFF(s));
            if (u->hash == h && u->key_len == len && memcmp(record_key(u), key, len) == 0)
                return SLOT_OFF(s);
        }
    }
}

static void grow_slots(struct analyze_units *j)
{
    size_t mask = j->mask * 2 + 1, cap = 0;
    uint64_t *slots = big_grow(NULL, &cap, (mask + 1) * sizeof(*slots));
    for (size_t off = 0; off < j->arena_len;) {
        const struct unit *u = record(j, off + 1);
        size_t i = (size_t)u->hash & mask;
        while (slots[i] != 0)
            i = (i + 1) & mask;
        slots[i] = SLOT_TAG(u->hash) | (off + 1);
        off += record_size(j, u->key_len);
    }
    big_free(j->slots, j->slots_cap);
    j->slots = slots;
    j->slots_cap = cap;
    j->mask = mask;
}

enum ab_err analyze_units_exposure(struct analyze_units *j, const char *unit, size_t len,
                                   const char *variant, size_t vlen, int64_t ts)
{
    assert(!j->exposures_done);
    if (ts < j->def->phase_start_ms || ts >= j->through || variant == NULL)
        return AB_OK;
    uint64_t h = hash_bytes(unit, len), vh = hash_bytes(variant, vlen);
    size_t empty = 0;
    uint64_t off1 = probe(j, unit, len, h, &empty);
    if (off1 != 0) {
        struct unit *u = record(j, off1);
        u->multi |= u->variant_hash != vh;
        if (ts < u->t0)
            u->t0 = ts;
        if (ts > u->t1)
            u->t1 = ts;
        return AB_OK;
    }
    size_t size = record_size(j, len);
    if (len > UINT32_MAX || j->arena_len + size >= SLOT_OFF(~0ULL))
        return AB_ERR_TOO_LARGE; /* a slot holds a 40-bit offset */
    if (j->arena_len + size > j->arena_cap)
        j->arena = big_grow(j->arena, &j->arena_cap, (j->arena_len + size) * 2);
    struct unit *u = (struct unit *)(void *)(j->arena + j->arena_len);
    int32_t v = -1;
    for (size_t i = 0; i < j->def->nvariants; i++)
        if (strlen(j->def->variants[i]) == vlen && memcmp(j->def->variants[i], variant, vlen) == 0)
            v = (int32_t)i;
    *u = (struct unit){h, ts, ts, vh, v, 0, (uint32_t)len, 0};
    memset((char *)(u + 1), 0, key_space(len));
    memcpy((char *)(u + 1), unit, len);
    struct unit_metric *um = record_metrics(u);
    for (size_t m = 0; m < j->nmetrics; m++)
        um[m] = (struct unit_metric){0, 0, 0, 0, 0, -1, 0, 0};
    j->slots[empty] = SLOT_TAG(h) | (j->arena_len + 1);
    j->arena_len += size;
    if (++j->nunits * 2 > j->mask)
        grow_slots(j);
    return AB_OK;
}

int64_t analyze_units_end_exposures(struct analyze_units *j)
{
    j->exposures_done = 1;
    int64_t first = INT64_MAX;
    for (size_t off = 0; off < j->arena_len;) {
        const struct unit *u = record(j, off + 1);
        if (u->t0 < first)
            first = u->t0;
        off += record_size(j, u->key_len);
    }
    return first;
}

/*
 * What one day adds to metric m's sums of u's variant, the unit's running sums going from
 * (pn, pd) to (cn, cd) on that day (sign -1 takes it back): the change of y and y^2, and of the
 * denominator's sums and the cross sum (ratio) or of the covariate cross sum.
 */
static void add_day(struct analyze_units *j, const struct unit *u, const struct unit_metric *um,
                    size_t m, int32_t day, double pn, double pd, double cn, double cd, double sign)
{
    enum analyze_metric_type type = j->def->metrics[m].type;
    double y = type == ANALYZE_BINOMIAL ? (double)(cn > 0) : cn;
    double py = type == ANALYZE_BINOMIAL ? (double)(pn > 0) : pn;
    struct analyze_sums *c = &analyze_agg_cell(j->agg, m, (size_t)u->variant, (size_t)day)->sums;
    c->sum_y += sign * (y - py);
    c->sum_yy += sign * (y * y - py * py);
    if (type == ANALYZE_RATIO) {
        c->sum_x += sign * (cd - pd);
        c->sum_xx += sign * (cd * cd - pd * pd);
        c->sum_xy += sign * (y * cd - py * pd);
    } else {
        c->sum_xy += sign * um->x * (y - py);
    }
}

/* Adds (sign 1) or takes back (-1) the days of buf[0..n), sorted, as one running sum. */
static void add_days(struct analyze_units *j, const struct unit *u, const struct unit_metric *um,
                     size_t m, const struct increment *buf, size_t n, double sign)
{
    double cn = 0, cd = 0;
    for (size_t i = 0; i < n; i++) {
        double pn = cn, pd = cd;
        cn += buf[i].num;
        cd += buf[i].den;
        add_day(j, u, um, m, buf[i].day, pn, pd, cn, cd, sign);
    }
}

static size_t read_days(struct analyze_units *j, const struct unit_metric *um, int open);

/*
 * Closed days are added as they close while they close in day order and the covariate stays as
 * it was: the common case of events stored in time order, which then never reads its chain
 * again. An event of an earlier day, or a covariate that changes after a day was added, takes
 * those days back (the same sums with sign -1) and leaves um's days to be summed at the end.
 */
static void start_replay(struct analyze_units *j, const struct unit *u, struct unit_metric *um,
                         size_t m)
{
    if (um->replay)
        return;
    um->replay = 1;
    if (u->variant >= 0 && um->head != 0) {
        size_t n = read_days(j, um, 0); /* may move j->buf */
        add_days(j, u, um, m, j->buf, n, -1);
    }
}

/* Closes the open day of um into its chain. */
static enum ab_err close_day(struct analyze_units *j, const struct unit *u,
                             struct unit_metric *um, size_t m)
{
    if (!um->replay && u->variant >= 0)
        add_day(j, u, um, m, um->day, um->cn, um->cd, um->cn + um->num, um->cd + um->den, 1);
    um->cn += um->num;
    um->cd += um->den;
    if (j->ninc >= (1U << 31) - 2)
        return AB_ERR_TOO_LARGE; /* chains link by 31-bit index */
    if (j->ninc == j->inc_cap) {
        j->inc = big_grow(j->inc, &j->inc_bytes, (j->inc_cap + 1) * 2 * sizeof(*j->inc));
        j->inc_cap = j->inc_bytes / sizeof(*j->inc);
    }
    j->inc[j->ninc] = (struct increment){um->head, um->day, um->num, um->den};
    um->head = (uint32_t)++j->ninc & 0x7fffffffU;
    return AB_OK;
}

/* What one metric event adds to metric m of unit u: the covariate before the exposure, or the
 * day's increment after it. */
static enum ab_err metric_event(struct analyze_units *j, const struct unit *u,
                                struct unit_metric *um, size_t m, int is_num, int is_den,
                                double value, int64_t ts)
{
    const struct analyze_metric_def *md = &j->def->metrics[m];
    if (ts < u->t0) {
        if (is_num && j->agg->has_covariate[m] && ts >= u->t0 - ANALYZE_CUPED_LOOKBACK_MS) {
            double x = md->type == ANALYZE_BINOMIAL ? 1.0 : um->x + value;
            if (x != um->x && um->head != 0)
                start_replay(j, u, um, m);
            um->x = x;
        }
        return AB_OK;
    }
    if (ts >= j->through || (md->window_ms > 0 && ts >= u->t0 + md->window_ms))
        return AB_OK;
    if (u->variant >= 0 && ts > j->agg->data_through_ms)
        j->agg->data_through_ms = ts;
    int32_t day = (int32_t)((ts - j->def->phase_start_ms) / ANALYZE_DAY_MS);
    if (um->day != day) {
        if (day < um->day)
            start_replay(j, u, um, m);
        enum ab_err rc = um->day >= 0 ? close_day(j, u, um, m) : AB_OK;
        if (rc != AB_OK)
            return rc;
        um->num = um->den = 0;
        um->day = day;
    }
    um->num += is_num ? (md->type == ANALYZE_BINOMIAL ? 1.0 : value) : 0.0;
    um->den += is_den ? value : 0.0;
    return AB_OK;
}

/* Stage 3: applies a pipelined event to its unit's record, if the unit was exposed. */
static enum ab_err apply(struct analyze_units *j, const struct pending *p)
{
    if (p->slot_or_record == 0)
        return AB_OK;
    const char *key = p->long_key != NULL ? p->long_key : p->key;
    const struct unit *u = record(j, p->slot_or_record);
    if (u->hash != p->hash || u->key_len != p->len || memcmp(record_key(u), key, p->len) != 0) {
        size_t empty; /* another unit with the same tag: the full probe */
        uint64_t off1 = probe(j, key, p->len, p->hash, &empty);
        if (off1 == 0)
            return AB_OK;
        u = record(j, off1);
    }
    if (u->multi)
        return AB_OK;
    struct unit_metric *um = record_metrics(u);
    const struct event_name *n = p->name;
    for (size_t i = 0; i < n->nuses; i++) {
        const struct metric_use *use = &n->uses[i];
        enum ab_err rc = metric_event(j, u, &um[use->m], use->m, use->is_num, use->is_den,
                                      p->value, p->ts);
        if (rc != AB_OK)
            return rc;
    }
    return AB_OK;
}

/* Stage 2 of the pipeline: p's first slot with its hash tag (the slot's line was prefetched),
 * whose record is prefetched for stage 3; none, and the unit was never exposed. */
static void locate(struct analyze_units *j, struct pending *p)
{
    p->slot_or_record = 0;
    for (size_t i = (size_t)p->hash & j->mask; j->slots[i] != 0; i = (i + 1) & j->mask) {
        if (SLOT_TAG(j->slots[i]) == SLOT_TAG(p->hash)) {
            p->slot_or_record = SLOT_OFF(j->slots[i]);
            /* the header and key, and the (unit, metric) state the event updates first */
            const unsigned char *r = j->arena + p->slot_or_record - 1;
            size_t m = p->name->uses[0].m;
            const unsigned char *um =
                r + sizeof(struct unit) + key_space(p->len) + m * sizeof(struct unit_metric);
            __builtin_prefetch(r);
            if (((uintptr_t)r & 63) + sizeof(struct unit) + p->len > 64)
                __builtin_prefetch(r + sizeof(struct unit) + p->len - 1);
            __builtin_prefetch(um);
            if (((uintptr_t)um & 63) + sizeof(struct unit_metric) > 64)
                __builtin_prefetch(um + sizeof(struct unit_metric) - 1);
            return;
        }
    }
}

#define STAGE2_LAG 10 /* events between the slot prefetch and the probe */
#define STAGE3_LAG 20 /* events between the slot prefetch and the update */

enum ab_err analyze_units_metric(struct analyze_units *j, const char *unit, size_t len,
                                 const char *metric, double value, int64_t ts)
{
    assert(j->exposures_done);
    if (metric == NULL)
        return AB_OK;
    const struct event_name *n = NULL;
    for (size_t i = 0; i < j->nnames && n == NULL; i++)
        if (strcmp(j->names[i].name, metric) == 0)
            n = &j->names[i];
    if (n == NULL)
        return AB_OK;
    enum ab_err rc = AB_OK;
    size_t i = j->pipe_in++;
    if (i >= STAGE3_LAG)
        rc = apply(j, &j->pipe[(i - STAGE3_LAG) & (PIPE - 1)]);
    struct pending *p = &j->pipe[i & (PIPE - 1)];
    free(p->long_key);
    p->long_key = NULL;
    if (len > KEY_MAX)
        p->long_key = memcpy(ab_mem_calloc(1, len), unit, len);
    else
        memcpy(p->key, unit, len);
    p->hash = hash_bytes(unit, len);
    p->name = n;
    p->value = value;
    p->ts = ts;
    p->len = len;
    __builtin_prefetch(&j->slots[(size_t)p->hash & j->mask]);
    if (i >= STAGE2_LAG)
        locate(j, &j->pipe[(i - STAGE2_LAG) & (PIPE - 1)]);
    return rc;
}

/* Drains the pipeline. */
static enum ab_err flush(struct analyze_units *j)
{
    size_t in = j->pipe_in;
    size_t from2 = in > STAGE2_LAG ? in - STAGE2_LAG : 0;
    for (size_t i = from2; i < in; i++)
        locate(j, &j->pipe[i & (PIPE - 1)]);
    size_t from3 = in > STAGE3_LAG ? in - STAGE3_LAG : 0;
    enum ab_err rc = AB_OK;
    for (size_t i = from3; i < in && rc == AB_OK; i++)
        rc = apply(j, &j->pipe[i & (PIPE - 1)]);
    j->pipe_in = 0;
    return rc;
}

static int by_day(const void *a, const void *b)
{
    const struct increment *x = a, *y = b;
    return (x->day > y->day) - (x->day < y->day);
}

/* Room for n records in the scratch buffer. */
static void reserve(struct analyze_units *j, size_t n)
{
    if (n > j->buf_cap) {
        j->buf_cap = n * 2;
        j->buf = ab_mem_realloc(j->buf, j->buf_cap * sizeof(*j->buf));
    }
}

/* um's days (the open one too when open) into j->buf, sorted, one record per day; returns how
 * many. */
static size_t read_days(struct analyze_units *j, const struct unit_metric *um, int open)
{
    size_t n = 0;
    if (open && um->day >= 0) {
        reserve(j, 1);
        j->buf[n++] = (struct increment){0, um->day, um->num, um->den};
    }
    int sorted = 1; /* read newest first: sorted when each day is before the one read before */
    for (uint32_t i = um->head; i != 0; i = j->inc[i - 1].next) {
        reserve(j, n + 1);
        j->buf[n] = j->inc[i - 1];
        sorted &= n == 0 || j->buf[n - 1].day > j->buf[n].day;
        n++;
    }
    if (sorted) {
        for (size_t a = 0, b = n; a + 1 < b; a++, b--) {
            struct increment t = j->buf[a];
            j->buf[a] = j->buf[b - 1];
            j->buf[b - 1] = t;
        }
        return n;
    }
    qsort(j->buf, n, sizeof(*j->buf), by_day);
    size_t w = 0;
    for (size_t r = 0; r < n; r++) {
        if (w > 0 && j->buf[w - 1].day == j->buf[r].day) {
            j->buf[w - 1].num += j->buf[r].num;
            j->buf[w - 1].den += j->buf[r].den;
        } else {
            j->buf[w++] = j->buf[r];
        }
    }
    return w;
}

/* Unit u's entry and the days of metric m not added yet into the aggregation. */
static void finish_metric(struct analyze_units *j, const struct unit *u,
                          const struct unit_metric *um, size_t m)
{
    struct analyze_sums *entry =
        &analyze_agg_cell(j->agg, m, (size_t)u->variant,
                          (size_t)((u->t0 - j->def->phase_start_ms) / ANALYZE_DAY_MS))
             ->sums;
    entry->n += 1;
    entry->sum_x += um->x;
    entry->sum_xx += um->x * um->x;
    if (um->replay) {
        size_t n = read_days(j, um, 1); /* may move j->buf */
        add_days(j, u, um, m, j->buf, n, 1);
    }
    else if (um->day >= 0)
        add_day(j, u, um, m, um->day, um->cn, um->cd, um->cn + um->num, um->cd + um->den, 1);
}

enum ab_err analyze_units_finish(struct analyze_units *j)
{
    if (!j->exposures_done)
        (void)analyze_units_end_exposures(j);
    enum ab_err rc = flush(j);
    if (rc != AB_OK)
        return rc;
    struct analyze_agg *a = j->agg;
    for (size_t off = 0; off < j->arena_len;) {
        const struct unit *u = record(j, off + 1);
        off += record_size(j, u->key_len);
        if (u->t1 > a->data_through_ms)
            a->data_through_ms = u->t1;
        if (u->multi) {
            a->multiple_exposures++;
            continue;
        }
        if (u->variant < 0) {
            a->unknown_variant++;
            continue;
        }
        a->units[u->variant]++;
        const struct unit_metric *um = record_metrics(u);
        for (size_t m = 0; m < j->nmetrics; m++)
            finish_metric(j, u, &um[m], m);
    }
    for (size_t m = 0; m < j->nmetrics; m++)
        analyze_agg_accumulate(a, m);
    return AB_OK;
}
