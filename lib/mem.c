/*
 * Aborting allocation wrappers (see abacus/mem.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "abacus/mem.h"

static void out_of_memory(size_t size)
{
    fprintf(stderr, "abacus: out of memory (%zu bytes)\n", size);
    abort();
}

void *ab_mem_calloc(size_t n, size_t size)
{
    void *p = calloc(n == 0 ? 1 : n, size == 0 ? 1 : size);
    if (p == NULL)
        out_of_memory(n * size);
    return p;
}

void *ab_mem_realloc(void *p, size_t size)
{
    void *q = realloc(p, size == 0 ? 1 : size);
    if (q == NULL)
        out_of_memory(size);
    return q;
}

char *ab_mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    return memcpy(ab_mem_calloc(1, n), s, n);
}
