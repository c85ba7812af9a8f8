/*
 * The ids of the most recently stored events, in memory (see collect_int.h). Two generations of
 * open-addressing tables: puts go to the current one; when it holds half the window it becomes
 * the previous one (the older previous is emptied and reused), so the map always covers at least
 * the last half-window of ids and never grows. Writer thread only: no locking.
 */
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"
#include "collect_int.h"

struct generation {
    int64_t *keys;
    int64_t *ts;
    unsigned char *used;
    size_t count;
};

struct collect_recent {
    struct generation gen[2]; /* gen[cur] takes the puts */
    int cur;
    size_t half;              /* entries per generation */
    size_t mask;              /* slots - 1; slots = power of two >= 2 * half */
};

static void generation_init(struct generation *g, size_t slots)
{
    g->keys = ab_mem_calloc(slots, sizeof(int64_t));
    g->ts = ab_mem_calloc(slots, sizeof(int64_t));
    g->used = ab_mem_calloc(slots, 1);
    g->count = 0;
}

struct collect_recent *collect_recent_new(size_t window)
{
    if (window < 2)
        return NULL;
    struct collect_recent *r = ab_mem_calloc(1, sizeof(*r));
    r->half = window / 2;
    size_t slots = 16;
    while (slots < 2 * r->half)
        slots *= 2;
    r->mask = slots - 1;
    generation_init(&r->gen[0], slots);
    generation_init(&r->gen[1], slots);
    return r;
}

void collect_recent_free(struct collect_recent *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        free(r->gen[i].keys);
        free(r->gen[i].ts);
        free(r->gen[i].used);
    }
    free(r);
}

/* The slot of key in g: where it is, or the empty slot where it would go. */
static size_t find(const struct collect_recent *r, const struct generation *g, int64_t key)
{
    size_t i = (size_t)((uint64_t)key * 0x9e3779b97f4a7c15ULL >> 17) & r->mask;
    while (g->used[i] && g->keys[i] != key)
        i = (i + 1) & r->mask;
    return i;
}

void collect_recent_put(struct collect_recent *r, int64_t hash, int64_t client_ts)
{
    if (r == NULL)
        return;
    struct generation *g = &r->gen[r->cur];
    if (g->count >= r->half) {
        r->cur = 1 - r->cur;
        g = &r->gen[r->cur];
        memset(g->used, 0, r->mask + 1);
        g->count = 0;
    }
    size_t i = find(r, g, hash);
    if (!g->used[i]) {
        g->used[i] = 1;
        g->keys[i] = hash;
        g->count++;
    }
    g->ts[i] = client_ts;
}

int collect_recent_get(const struct collect_recent *r, int64_t hash, int64_t *client_ts)
{
    if (r == NULL)
        return 0;
    for (int k = 0; k < 2; k++) {
        const struct generation *g = &r->gen[(r->cur + 2 - k) % 2]; /* current first */
        size_t i = find(r, g, hash);
        if (g->used[i]) {
            *client_ts = g->ts[i];
            return 1;
        }
    }
    return 0;
}
