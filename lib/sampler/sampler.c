/*
 * sampler.c - the sampler chain: handle, parameters, bias, penalty history,
 * random stream. The per-call chain is in chain.c; sampler.h documents it.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "sampler.h"

static const dsv3_sampler_params sampler_defaults = {
    .struct_size = sizeof(dsv3_sampler_params),
    .temperature = 0.8f,
    .top_k = 40,
    .top_p = 0.95f,
    .min_p = 0.05f,
    .repeat_penalty = 1.0f,
    .penalty_window = 64,
};

int dsv3_sampler_params_init(dsv3_sampler_params *p, size_t size)
{
    return dsv3__params_init(p, size, &sampler_defaults, sizeof sampler_defaults,
                             sizeof(dsv3_sampler_params));
}

/* ---- random stream: xoshiro256** seeded by splitmix64 ------------------- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void rng_seed(uint64_t st[4], uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        st[i] = splitmix64(&x);
}

static uint64_t rng_next(uint64_t st[4])
{
    uint64_t result = rotl(st[1] * 5, 7) * 9;
    uint64_t t = st[1] << 17;
    st[2] ^= st[0];
    st[3] ^= st[1];
    st[1] ^= st[2];
    st[0] ^= st[3];
    st[2] ^= t;
    st[3] = rotl(st[3], 45);
    return result;
}

double dsv3__sampler_uniform(dsv3_sampler *smp)
{
    return (double)(rng_next(smp->rng) >> 11) * 0x1p-53;
}

/* ---- handle ------------------------------------------------------------- */

int dsv3__sampler_check(const dsv3_sampler *smp)
{
    if (!smp)
        return DSV3_E_INVAL;
    if (smp->magic != DSV3__MAGIC_SAMPLER)
        return DSV3_E_MISUSE;
    return DSV3_OK;
}

bool dsv3__sampler_is_greedy(const dsv3_sampler *smp)
{
    return !(smp->p.temperature > 0.0f);
}

static int validate(const dsv3_sampler_params *p, dsv3__err *err)
{
    const char *bad = NULL;
    if (p->flags)
        bad = "flags: no flags are defined; must be 0";
    else if (isnan(p->temperature) || isinf(p->temperature))
        bad = "temperature must be a finite number (<= 0 for greedy)";
    else if (p->top_k < 0)
        bad = "top_k must be >= 0 (0 turns it off)";
    else if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        bad = "top_p must be in (0, 1] (1 turns it off)";
    else if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
        bad = "min_p must be in [0, 1] (0 turns it off)";
    else if (!(p->repeat_penalty > 0.0f) || isinf(p->repeat_penalty))
        bad = "repeat_penalty must be finite and > 0 (1 turns it off)";
    else if (!isfinite(p->frequency_penalty))
        bad = "frequency_penalty must be finite";
    else if (!isfinite(p->presence_penalty))
        bad = "presence_penalty must be finite";
    else if (p->penalty_window < 0)
        bad = "penalty_window must be >= 0";
    if (!bad)
        return DSV3_OK;
    return dsv3__seterr(err, DSV3_E_INVAL, "sampler params: %s", bad);
}

/* Read the caller's params (NULL: defaults) and the allocator to use. */
static int read_params(const dsv3_sampler_params *params, dsv3_sampler_params *p,
                       dsv3__alloc *a, dsv3__err *err)
{
    *p = sampler_defaults;
    dsv3__alloc_init(a, NULL);
    if (!params)
        return DSV3_OK;
    int rc = dsv3__params_copy(p, sizeof *p, params, sizeof(dsv3_sampler_params));
    if (rc == DSV3_E_INVAL)
        return dsv3__seterr(err, rc, "sampler params: struct_size %u is too small (expected "
                            "%zu; use dsv3_sampler_params_init)",
                            (unsigned)params->struct_size, sizeof(dsv3_sampler_params));
    if (rc)
        return dsv3__seterr(err, rc, "sampler params: struct_size %u is larger than this "
                            "library's and the unknown fields are not zero",
                            (unsigned)params->struct_size);
    if (dsv3__alloc_init(a, p->allocator))
        return dsv3__seterr(err, DSV3_E_INVAL, "sampler params: malformed allocator (needs "
                            "struct_size, alloc, free and flags 0)");
    return validate(p, err);
}

int dsv3_sampler_new(const dsv3_sampler_params *params, dsv3_sampler **out)
{
    if (!out)
        return DSV3_E_INVAL;
    *out = NULL;
    dsv3_sampler_params p;
    dsv3__alloc a;
    dsv3__err err;
    err.msg[0] = '\0';
    int rc = read_params(params, &p, &a, &err);
    dsv3_sampler *smp = dsv3__calloc(&a, 1, sizeof *smp);
    if (!smp)
        return DSV3_E_NOMEM;
    smp->alloc = a;
    memcpy(smp->err.msg, err.msg, sizeof err.msg);
    if (rc) {
        smp->magic = DSV3__MAGIC_FAILED;
        *out = smp;
        return rc;
    }
    p.allocator = NULL; /* copied into smp->alloc; the caller's struct is not kept */
    smp->p = p;
    smp->penalties = p.penalty_window > 0 &&
                     (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f ||
                      p.presence_penalty != 0.0f);
    dsv3__vec_init(&smp->bias, sizeof(dsv3__bias));
    rng_seed(smp->rng, p.seed);
    smp->magic = DSV3__MAGIC_SAMPLER;
    *out = smp;
    return DSV3_OK;
}

void dsv3_sampler_free(dsv3_sampler *smp)
{
    if (!smp || (smp->magic != DSV3__MAGIC_SAMPLER && smp->magic != DSV3__MAGIC_FAILED))
        return;
    dsv3__alloc a = smp->alloc;
    dsv3__vec_free(&smp->bias, &a);
    dsv3__free(&a, smp->hist);
    dsv3__free(&a, smp->work);
    dsv3__free(&a, smp->cand);
    dsv3__free(&a, smp->count);
    smp->magic = DSV3__MAGIC_DEAD;
    dsv3__free(&a, smp);
}

const char *dsv3_sampler_errmsg(const dsv3_sampler *smp)
{
    if (!smp)
        return "no sampler (NULL handle)";
    if (smp->magic != DSV3__MAGIC_SAMPLER && smp->magic != DSV3__MAGIC_FAILED)
        return "not a sampler handle (freed or corrupt)";
    return smp->err.msg;
}

/* ---- logit bias (sorted by token) --------------------------------------- */

/* Index of the first entry with token >= t. */
static size_t bias_find(const dsv3__vec *v, int32_t t)
{
    const dsv3__bias *b = v->data;
    size_t lo = 0, hi = v->len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid].token < t)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int dsv3_sampler_set_logit_bias(dsv3_sampler *smp, int32_t token, float bias)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    if (token < 0)
        return dsv3__seterr(&smp->err, DSV3_E_RANGE, "set_logit_bias: token %d is negative",
                            (int)token);
    if (isnan(bias) || bias == INFINITY)
        return dsv3__seterr(&smp->err, DSV3_E_INVAL, "set_logit_bias: bias of token %d must "
                            "be finite or -INFINITY", (int)token);
    size_t i = bias_find(&smp->bias, token);
    dsv3__bias *b = smp->bias.data;
    bool found = i < smp->bias.len && b[i].token == token;
    if (bias == 0.0f) {
        if (found) {
            memmove(b + i, b + i + 1, (smp->bias.len - i - 1) * sizeof *b);
            smp->bias.len--;
        }
        return DSV3_OK;
    }
    if (found) {
        b[i].bias = bias;
        return DSV3_OK;
    }
    if (dsv3__vec_reserve(&smp->bias, &smp->alloc, smp->bias.len + 1))
        return dsv3__seterr(&smp->err, DSV3_E_NOMEM, "set_logit_bias: out of memory");
    b = smp->bias.data;
    memmove(b + i + 1, b + i, (smp->bias.len - i) * sizeof *b);
    b[i].token = token;
    b[i].bias = bias;
    smp->bias.len++;
    return DSV3_OK;
}

/* ---- history ------------------------------------------------------------ */

int dsv3_sampler_accept(dsv3_sampler *smp, int32_t token)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    if (token < 0)
        return dsv3__seterr(&smp->err, DSV3_E_RANGE, "accept: token %d is negative", (int)token);
    if (!smp->penalties)
        return DSV3_OK;
    size_t window = (size_t)smp->p.penalty_window;
    if (smp->hist_len == window) { /* full: overwrite the oldest */
        smp->hist[smp->hist_head] = token;
        smp->hist_head = (smp->hist_head + 1) % window;
        return DSV3_OK;
    }
    if (smp->hist_len == smp->hist_cap) { /* still filling: grow towards window */
        size_t cap = smp->hist_cap ? smp->hist_cap * 2 : 64;
        if (cap > window)
            cap = window;
        int32_t *h = dsv3__realloc(&smp->alloc, smp->hist, cap * sizeof *h);
        if (!h)
            return dsv3__seterr(&smp->err, DSV3_E_NOMEM, "accept: out of memory");
        smp->hist = h;
        smp->hist_cap = cap;
    }
    smp->hist[smp->hist_len++] = token;
    return DSV3_OK;
}

int dsv3_sampler_reset(dsv3_sampler *smp)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    smp->hist_len = 0;
    smp->hist_head = 0;
    rng_seed(smp->rng, smp->p.seed);
    return DSV3_OK;
}

/* ---- scratch buffers ---------------------------------------------------- */

/* Grow *buf to at least n elements of size elem (contents not kept unless
 * zero is set, in which case new memory is zeroed). */
static int grow(dsv3_sampler *smp, void **buf, size_t *cap, size_t n, size_t elem, bool zero)
{
    if (*cap >= n)
        return DSV3_OK;
    size_t bytes;
    void *p = NULL;
    if (dsv3__mul_size(n, elem, &bytes))
        p = zero ? dsv3__calloc(&smp->alloc, n, elem) : dsv3__malloc(&smp->alloc, bytes);
    if (!p)
        return dsv3__seterr(&smp->err, DSV3_E_NOMEM, "sampler: out of memory for a vocabulary "
                            "of %zu tokens", n);
    dsv3__free(&smp->alloc, *buf);
    *buf = p;
    *cap = n;
    return DSV3_OK;
}

int dsv3__sampler_buffers(dsv3_sampler *smp, size_t n_vocab)
{
    int rc = grow(smp, (void **)&smp->work, &smp->work_cap, n_vocab, sizeof(float), false);
    if (!rc && smp->penalties)
        rc = grow(smp, (void **)&smp->count, &smp->count_cap, n_vocab, sizeof(uint32_t), true);
    if (!rc && !dsv3__sampler_is_greedy(smp))
        rc = grow(smp, (void **)&smp->cand, &smp->cand_cap, n_vocab, sizeof(dsv3__cand), false);
    return rc;
}
