/*
 * The snapshot holder (see abacus/holder.h): hazard slots, one per reader thread.
 */
#include <stdlib.h>
#include <time.h>
#include "abacus/holder.h"
#include "abacus/mem.h"

void ab_holder_init(struct ab_holder *h, int nslots, ab_holder_free_cb free_cb)
{
    atomic_init(&h->current, NULL);
    h->nslots = nslots;
    h->slots = ab_mem_calloc((size_t)(nslots > 0 ? nslots : 1), sizeof(*h->slots));
    for (int i = 0; i < nslots; i++)
        atomic_init(&h->slots[i], NULL);
    h->free_cb = free_cb;
}

void ab_holder_publish(struct ab_holder *h, void *obj)
{
    void *old = atomic_exchange(&h->current, obj);
    if (old == NULL)
        return;
    for (int i = 0; i < h->nslots; i++)
        while (atomic_load(&h->slots[i]) == old) {
            struct timespec ts = {0, 100000};
            nanosleep(&ts, NULL);
        }
    h->free_cb(old);
}

void ab_holder_dispose(struct ab_holder *h)
{
    void *cur = atomic_load(&h->current);
    if (cur != NULL && h->free_cb != NULL)
        h->free_cb(cur);
    atomic_store(&h->current, NULL);
    free(h->slots);
    h->slots = NULL;
    h->nslots = 0;
}
