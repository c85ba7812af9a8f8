/*
 * bench/json parse: ns per read of the usual POST /v1/assign body by each reader that may meet it,
 * rounds alternated: the assign node's own reader (assign_post_read, which builds no jansson
 * values), ab_json_parse (what every other JSON body goes through, and this body when the node's
 * reader gives up), and the baseline, the depth pre-scan plus jansson's json_loadb with the same
 * flags. Prints the median ns of each and the medians of the rounds' ratios to the baseline.
 * Usage: json_parse_bench [ITERATIONS (1000000)] [ROUNDS (5)].
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "abacus/json.h"
#include "assign_int.h"

static const char body[] =
    "{\"unit\":\"user-12345\",\"attributes\":{\"country\":\"FR\",\"age\":31,\"plan\":\"pro\"}}";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double run_fast(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        json_t *doc;
        if (ab_json_parse(body, sizeof(body) - 1, NULL, &doc, NULL) != AB_OK)
            abort();
        json_decref(doc);
    }
    return (now_s() - t0) / (double)n * 1e9;
}

static double run_post_read(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        struct assign_post post;
        if (!assign_post_read(body, sizeof(body) - 1, ASSIGN_UNIT_MAX, &post))
            abort();
        __asm__ volatile("" : : "r"(&post) : "memory"); /* the read is used */
    }
    return (now_s() - t0) / (double)n * 1e9;
}

static double run_jansson(long n)
{
    double t0 = now_s();
    for (long i = 0; i < n; i++) {
        json_error_t jerr;
        if (ab_json_depth(body, sizeof(body) - 1, 32) > 32)
            abort();
        json_t *doc =
            json_loadb(body, sizeof(body) - 1, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (doc == NULL)
            abort();
        json_decref(doc);
    }
    return (now_s() - t0) / (double)n * 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? strtol(argv[1], NULL, 10) : 1000000;
    int rounds = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (n < 1 || rounds < 1 || rounds > 100) {
        fprintf(stderr, "usage: json_parse_bench [ITERATIONS >= 1] [ROUNDS 1..100]\n");
        return 2;
    }
    double post[100], fast[100], base[100], ratio[100], post_ratio[100];
    for (int r = 0; r < rounds; r++) {
        base[r] = run_jansson(n);
        fast[r] = run_fast(n);
        post[r] = run_post_read(n);
        ratio[r] = fast[r] / base[r];
        post_ratio[r] = post[r] / base[r];
    }
    printf("body: %zu bytes, %ld reads (and json_decref) per round, %d rounds, medians\n",
           sizeof(body) - 1, n, rounds);
    printf("assign_post_read:      %7.1f ns/read\n", median(post, rounds));
    printf("ab_json_parse:         %7.1f ns/parse\n", median(fast, rounds));
    printf("pre-scan + json_loadb: %7.1f ns/parse\n", median(base, rounds));
    printf("ratio assign_post_read / jansson: %.3f\n", median(post_ratio, rounds));
    printf("ratio ab_json_parse / jansson: %.3f\n", median(ratio, rounds));
    return 0;
}
