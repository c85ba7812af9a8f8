/*
 * Heap allocation that never returns NULL: out of memory prints a message and aborts, as h2o's
 * h2o_mem_alloc and Redis's zmalloc do, so callers carry no allocation-failure paths. Buffers fed
 * by input are capped by their callers before they grow, so this is never reached by a request.
 */
#ifndef ABACUS_MEM_H
#define ABACUS_MEM_H

#include <stddef.h>

/* Zeroed memory for n objects of size bytes (n may be 0); the caller frees it with free(). */
void *ab_mem_calloc(size_t n, size_t size);

/* realloc() that aborts instead of failing. */
void *ab_mem_realloc(void *p, size_t size);

/* A heap copy of the NUL-terminated s. */
char *ab_mem_strdup(const char *s);

#endif
