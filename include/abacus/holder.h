/*
 * The holder of a component's current snapshot: one immutable object that request threads read
 * with no lock, and that one publisher thread replaces. A reader announces the object it uses in
 * its thread's hazard slot (store, then re-check that it is still current); the publisher swaps
 * in a new object with one atomic exchange and frees the old one once no slot names it. Readers
 * never wait; the publisher does, for at most one request's duration. Used by the assign node
 * (its compiled snapshot) and the collector (its snapshot's keys), both fed by lib/follower.
 */
#ifndef ABACUS_HOLDER_H
#define ABACUS_HOLDER_H

#include <stdatomic.h>
#include <stddef.h>

/* Frees a replaced object. */
typedef void (*ab_holder_free_cb)(void *obj);

struct ab_holder {
    _Atomic(void *) current;   /* NULL until the first publish */
    _Atomic(void *) *slots;    /* [nslots]: what each reader thread uses, or NULL */
    int nslots;
    ab_holder_free_cb free_cb;
};

/*
 * Initialises h (the caller's storage) for nslots reader threads (slot i: the HTTP worker
 * thread i, ab_http_thread), holding nothing; replaced objects are freed with free_cb.
 */
void ab_holder_init(struct ab_holder *h, int nslots, ab_holder_free_cb free_cb);

/*
 * The current object (NULL when none yet) for the reader of slot, until ab_holder_release of
 * that slot: it stays valid whatever is published meanwhile. One object per slot at a time.
 */
static inline void *ab_holder_acquire(struct ab_holder *h, int slot)
{
    void *p;
    do {
        p = atomic_load(&h->current);
        atomic_store(&h->slots[slot], p);
    } while (atomic_load(&h->current) != p);
    return p;
}

static inline void ab_holder_release(struct ab_holder *h, int slot)
{
    atomic_store(&h->slots[slot], NULL);
}

/*
 * Makes obj (taken over) the current object, then waits until no reader holds the previous one
 * and frees it. Called by one thread at a time (the component's follower).
 */
void ab_holder_publish(struct ab_holder *h, void *obj);

/* Frees the current object and the slots; no reader may hold one any more. Accepts an h that was
 * never initialised (zeroed). */
void ab_holder_dispose(struct ab_holder *h);

#endif
