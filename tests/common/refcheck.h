/*
 * refcheck.h - end-to-end checks of a loaded model against the committed
 * reference vectors (tests/reference/vectors/<case>/): prompt logits at
 * every position, single-token decode logits, MTP drafts, the greedy
 * continuation and the long prompt (positions past YaRN's original
 * context), within the tolerance of tests/reference/README.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_REFCHECK_H
#define DSV3_REFCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "dsv3.h"

/* The vector cases, NULL-terminated. */
extern const char *const rc_case_names[];

typedef struct rc_case {
    char name[64], config[64], variant[16];
    int n_files;
    int64_t V;
    int32_t prompt[64], decode[16], greedy[64], mtp_next[64], long_prompt[512], long_decode[16];
    size_t n_prompt, n_decode, n_greedy, n_mtp_next, n_long, n_long_decode;
    double tol;                          /* logits, absolute */
    float *logits, *long_logits, *mtp_draft; /* mtp_draft NULL without MTP */
} rc_case;

/* Read vectors/<name>/ (meta.json and the .bin files) under the source
 * tree. Returns 0, or -1 with a message. */
int rc_case_load(const char *name, rc_case *c, char *err, size_t cap);
void rc_case_free(rc_case *c);

/* Write the case's synthetic checkpoint under dir and convert it to a
 * model directory; *model receives its path (malloc'ed). */
int rc_case_convert(const rc_case *c, const char *dir, char **model, char *err, size_t cap);

/* Compare m with the case; at most max_greedy greedy steps (the case has
 * 32); the long prompt when with_long. *maxdiff receives the largest logit
 * difference seen. Returns 0, or -1 with a message. */
int rc_check_model(dsv3_model *m, const rc_case *c, size_t max_greedy, int with_long,
                   double *maxdiff, char *err, size_t cap);

#endif
