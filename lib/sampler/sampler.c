/*
 * sampler.c - the sampler chain.
 * SPDX-License-Identifier: MIT
 */
#include "../core/core.h"

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

int dsv3_sampler_new(const dsv3_sampler_params *params, dsv3_sampler **out)
{
    (void)params;
    if (out)
        *out = NULL;
    return DSV3_E_UNSUPPORTED;
}

void dsv3_sampler_free(dsv3_sampler *smp)
{
    (void)smp;
}

const char *dsv3_sampler_errmsg(const dsv3_sampler *smp)
{
    return smp ? "" : "no sampler (NULL handle)";
}

int dsv3_sampler_set_logit_bias(dsv3_sampler *smp, int32_t token, float bias)
{
    (void)smp, (void)token, (void)bias;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_sampler_sample(dsv3_sampler *smp, const float *logits, size_t n_vocab, int32_t *token)
{
    (void)smp, (void)logits, (void)n_vocab, (void)token;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_sampler_accept(dsv3_sampler *smp, int32_t token)
{
    (void)smp, (void)token;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_sampler_reset(dsv3_sampler *smp)
{
    (void)smp;
    return DSV3_E_UNSUPPORTED;
}
