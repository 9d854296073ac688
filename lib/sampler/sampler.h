/*
 * sampler.h - internal interface of the sampler chain (lib/sampler).
 *
 * The public functions (dsv3_sampler_*) are declared in dsv3.h. The chain, in
 * the order documented there:
 *
 *   1. logit bias: l[t] += bias[t]; a bias of -INFINITY bans t. NaN logits are
 *      treated as -INFINITY (never chosen).
 *   2. penalties over the last penalty_window accepted tokens, once per
 *      distinct token t seen c > 0 times in that window:
 *        repetition: l = l > 0 ? l / repeat_penalty : l * repeat_penalty
 *        then:       l -= c * frequency_penalty + presence_penalty
 *   3. temperature <= 0: the token with the largest logit; ties go to the
 *      lowest id. No randomness is used.
 *   4. top-k (top_k > 0): the k largest logits; ties go to the lower id.
 *   5. softmax of l / temperature over the remaining tokens. If any logit is
 *      +INFINITY the distribution is uniform over those tokens.
 *   6. top-p (top_p < 1): the smallest set of most probable tokens whose
 *      probability sum reaches top_p (ties in probability: lower id first).
 *   7. min-p (min_p > 0): drop tokens whose probability is below min_p times
 *      the largest probability.
 *   8. one draw from the remaining (renormalised) distribution, using one
 *      number of the sampler's random stream.
 *
 * The random stream is xoshiro256** seeded through splitmix64 from
 * params.seed, and every floating-point step (including exp) is done by our
 * own code in a fixed order, so a seed and the same inputs give the same
 * tokens on every IEEE-754 platform.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_SAMPLER_H
#define DSV3_SAMPLER_H

#include <stdbool.h>

#include "../core/core.h"

/* One logit bias entry; the handle keeps them sorted by token. */
typedef struct dsv3__bias {
    int32_t token;
    float bias;
} dsv3__bias;

/* A candidate token: its logit, later its unnormalised probability. */
typedef struct dsv3__cand {
    int32_t id;
    float v;
} dsv3__cand;

struct dsv3_sampler {
    uint32_t magic;           /* DSV3__MAGIC_SAMPLER, or _FAILED */
    dsv3__alloc alloc;
    dsv3__err err;
    dsv3_sampler_params p;    /* validated copy (allocator pointer cleared) */
    bool penalties;           /* any penalty active with a window > 0 */
    uint64_t rng[4];          /* xoshiro256** state */
    dsv3__vec bias;           /* dsv3__bias, sorted by token */
    /* last accepted tokens: a ring of up to penalty_window entries */
    int32_t *hist;
    size_t hist_len, hist_cap, hist_head;
    /* per-call scratch, grown to the vocabulary size and then reused */
    float *work;              /* [n_vocab] biased and penalised logits */
    size_t work_cap;
    dsv3__cand *cand;         /* [n_vocab] candidates */
    size_t cand_cap;
    uint32_t *count;          /* [n_vocab] zero between calls */
    size_t count_cap;
};

/* Make sure the scratch buffers hold n_vocab entries (DSV3_E_NOMEM with a
 * message otherwise). */
int dsv3__sampler_buffers(dsv3_sampler *smp, size_t n_vocab);

/*
 * The final distribution the chain draws from for these logits (steps 1-7):
 * probs[0 ... n_vocab-1] receives probabilities that sum to 1 (0 for every
 * token outside the kept set); greedy samplers give a one-hot vector at the
 * argmax. Uses no randomness and does not record anything.
 * Errors are those of dsv3_sampler_sample (message in the handle).
 * Drawing from probs with dsv3__sampler_draw has the same distribution as
 * dsv3_sampler_sample (not the same token for the same random number).
 */
int dsv3__sampler_probs(dsv3_sampler *smp, const float *logits, size_t n_vocab,
                        float *probs);

/*
 * Draw a token from arbitrary non-negative weights w[0 ... n-1] (need not sum
 * to 1) with the sampler's random stream (one number). DSV3_E_INVAL for NULL
 * arguments, n == 0 or > INT32_MAX, negative/NaN/infinite weights, or all
 * weights zero.
 */
int dsv3__sampler_draw(dsv3_sampler *smp, const float *w, size_t n, int32_t *token);

/* The next number of the sampler's random stream, uniform in [0, 1) with 53
 * random bits. smp must be a valid sampler. */
double dsv3__sampler_uniform(dsv3_sampler *smp);

/* Whether the sampler picks the argmax (temperature <= 0). */
bool dsv3__sampler_is_greedy(const dsv3_sampler *smp);

/* Validate a public sampler handle: DSV3_OK, DSV3_E_INVAL (NULL) or
 * DSV3_E_MISUSE (failed or freed handle). */
int dsv3__sampler_check(const dsv3_sampler *smp);

/* exp(x) for x <= 0 computed with our own polynomial (relative error below
 * 1e-9), identical on every IEEE-754 platform; 0 for -INFINITY and NaN. */
double dsv3__exp_neg(double x);

#endif /* DSV3_SAMPLER_H */
