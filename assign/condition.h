/*
 * GrowthBook's targeting-condition language (MongoDB-style), compiled once and evaluated many
 * times against a unit's attributes. Private to assign/: experiment.c compiles each experiment's
 * condition when a snapshot is compiled, eval.c evaluates it per request. The compiler is
 * cond_compile.c, the evaluator cond_eval.c, their shared types cond_int.h. Pure:
 * no I/O, no locks; a compiled condition is immutable and may be evaluated from any thread.
 * Semantics: GrowthBook's SDK spec (docs/lib/build-your-own.mdx, "evalCondition") and its
 * reference implementation (packages/sdk-js/src/mongrule.ts), checked by the evalCondition
 * section of tests/data/growthbook-cases.json.
 */
#ifndef ABACUS_ASSIGN_CONDITION_H
#define ABACUS_ASSIGN_CONDITION_H

#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "abacus/err.h"
#include "attrs.h"

struct assign_cond;

/*
 * Compiles condition (a JSON object; not stolen, not kept: everything needed is copied) into
 * *out, the caller's, freed with assign_cond_free. saved_groups (an object mapping group id to
 * an array of values, or NULL) is resolved now for $inGroup / $notInGroup. Regular expressions
 * ($regex, $regexi) are compiled here with PCRE2, once; one that does not compile makes that
 * operator evaluate to false, as in the reference SDK. Errors: AB_ERR_INVALID_FIELD when condition
 * is not an object, with the path of the offending part in ei->field.
 */
enum ab_err assign_cond_compile(const json_t *condition, const json_t *saved_groups,
                                struct assign_cond **out, struct ab_errinfo *ei);

/* 1 when attributes (a JSON object, or NULL for none) satisfy the condition, else 0. */
int assign_cond_eval(const struct assign_cond *cond, const json_t *attributes);

/* assign_cond_eval over indexed attributes: the same answer, fewer lookups. */
int assign_cond_eval_attrs(const struct assign_cond *cond, const struct assign_attrs *attrs);

/* Accepts NULL. */
void assign_cond_free(struct assign_cond *cond);

#endif
