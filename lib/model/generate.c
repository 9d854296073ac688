/*
 * generate.c - streaming generation on a context.
 * SPDX-License-Identifier: MIT
 */
#include "model.h"

static const dsv3_generate_params generate_defaults = {
    .struct_size = sizeof(dsv3_generate_params),
};

int dsv3_generate_params_init(dsv3_generate_params *p, size_t size)
{
    return dsv3__params_init(p, size, &generate_defaults, sizeof generate_defaults,
                             sizeof(dsv3_generate_params));
}

int dsv3_generate(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt, size_t n_prompt,
                  const dsv3_generate_params *params, dsv3_token_fn cb, void *user_data,
                  dsv3_generate_result *result)
{
    (void)ctx, (void)smp, (void)prompt, (void)n_prompt, (void)params, (void)cb, (void)user_data,
        (void)result;
    return DSV3_E_UNSUPPORTED;
}
