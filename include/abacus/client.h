/*
 * The Abacus C SDK: "which variant does this unit get?" from a C or C++ service, either
 * evaluated in-process from a snapshot file (the same evaluation core as the assign node, so the
 * answers are the node's) or asked of an assign node over HTTP (libcurl, with a timeout). Link
 * with libabacus_client (and what pkg-config or CMake's abacus_client target brings along).
 *
 * A remote call that fails (timeout, connection refused, an error status) never fails the caller:
 * the answer is the control (variation 0) with in_experiment 0 and reason "error". A client is
 * not thread-safe: use one per thread.
 */
#ifndef ABACUS_CLIENT_H
#define ABACUS_CLIENT_H

#include <stddef.h>

struct ab_client;

struct ab_client_options {
    const char *snapshot_file; /* evaluate locally from this snapshot file, or */
    const char *base_url;      /* ask this assign node ("http://127.0.0.1:8081") */
    long timeout_ms;           /* remote: whole-request timeout; 0 = 200 ms */
    const char *control;       /* remote: variant reported on error before the experiment's
                                  control is known; NULL = "control" */
};

struct ab_client_assignment {
    int in_experiment;    /* 1 when the unit is in the experiment */
    int variation_id;     /* 0 = control */
    char variant[208];    /* variant key */
    char reason[32];      /* "hashed", "forced", "coverage", ..., or "error" */
    double hash_value;    /* the unit's bucket in [0, 1) when hashed, else -1 */
    long long snapshot_version; /* version that answered; 0 on error */
};

/*
 * Opens a client into *out (free with ab_client_close). Exactly one of snapshot_file and base_url
 * must be set. Returns 0, or -1 with a message in err[0..errlen) (err may be NULL): an unreadable
 * or invalid snapshot file, bad options.
 */
int ab_client_open(const struct ab_client_options *opts, struct ab_client **out, char *err,
                   size_t errlen);

/*
 * Assigns unit to experiment. attrs is NULL or a NULL-terminated list of name, value pairs
 * ({"country", "FR", "plan", "pro", NULL}); the unit is the "id" attribute. Returns 0 with *out
 * set; -1 when the experiment does not exist (local mode, or a 404 from the node) or the input is
 * invalid, with *out still set to the control. Remote failures return 0 with reason "error".
 */
int ab_client_assign(struct ab_client *c, const char *experiment, const char *unit,
                     const char *const *attrs, struct ab_client_assignment *out);

/* Accepts NULL. */
void ab_client_close(struct ab_client *c);

#endif
