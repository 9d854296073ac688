/*
 * context.c - the context handle (one sequence: KV cache, scratch, position).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "model.h"

static const dsv3_context_params context_defaults = {
    .struct_size = sizeof(dsv3_context_params),
};

int dsv3_context_params_init(dsv3_context_params *p, size_t size)
{
    return dsv3__params_init(p, size, &context_defaults, sizeof context_defaults,
                             sizeof(dsv3_context_params));
}

int dsv3_context_new(dsv3_model *model, const dsv3_context_params *params, dsv3_context **out)
{
    (void)params;
    if (!out)
        return DSV3_E_INVAL;
    *out = NULL;
    int rc = dsv3__model_check(model);
    if (rc)
        return rc;
    return dsv3__model_seterr(model, DSV3_E_UNSUPPORTED, "contexts are not implemented in this build");
}

void dsv3_context_free(dsv3_context *ctx)
{
    (void)ctx;
}

const char *dsv3_context_errmsg(const dsv3_context *ctx)
{
    return ctx ? "" : "no context (NULL handle)";
}

int dsv3_context_decode(dsv3_context *ctx, const int32_t *tokens, size_t n_tokens, uint32_t flags)
{
    (void)ctx, (void)tokens, (void)n_tokens, (void)flags;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_logits(dsv3_context *ctx, int32_t row, const float **logits)
{
    (void)ctx, (void)row, (void)logits;
    return DSV3_E_UNSUPPORTED;
}

uint32_t dsv3_context_n_past(const dsv3_context *ctx)
{
    (void)ctx;
    return 0;
}

int dsv3_context_truncate(dsv3_context *ctx, uint32_t n_keep)
{
    (void)ctx, (void)n_keep;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_clear(dsv3_context *ctx)
{
    (void)ctx;
    return DSV3_E_UNSUPPORTED;
}

void dsv3_context_cancel(dsv3_context *ctx)
{
    (void)ctx;
}

int dsv3_context_set_param(dsv3_context *ctx, int32_t key, int64_t value)
{
    (void)ctx, (void)key, (void)value;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_get_param(const dsv3_context *ctx, int32_t key, int64_t *value)
{
    (void)ctx, (void)key, (void)value;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_param_bounds(int32_t key, int64_t *min, int64_t *max)
{
    (void)key, (void)min, (void)max;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_state_save(dsv3_context *ctx, void *buf, size_t cap, size_t *needed)
{
    (void)ctx, (void)buf, (void)cap, (void)needed;
    return DSV3_E_UNSUPPORTED;
}

int dsv3_context_state_load(dsv3_context *ctx, const void *buf, size_t size)
{
    (void)ctx, (void)buf, (void)size;
    return DSV3_E_UNSUPPORTED;
}

/* ---- services to dsv3_generate (model.h) ---------------------------------
 * Contexts cannot be created in this build yet (dsv3_context_new fails), so
 * no valid handle ever reaches these. */

int dsv3__context_check(const dsv3_context *ctx)
{
    return ctx ? DSV3_E_MISUSE : DSV3_E_INVAL;
}

int dsv3__context_begin(dsv3_context *ctx)
{
    (void)ctx;
    return DSV3_E_UNSUPPORTED;
}

void dsv3__context_end(dsv3_context *ctx)
{
    (void)ctx;
}

int dsv3__context_decode(dsv3_context *ctx, const int32_t *tokens, size_t n_tokens,
                         uint32_t flags)
{
    (void)ctx, (void)tokens, (void)n_tokens, (void)flags;
    return DSV3_E_UNSUPPORTED;
}

const float *dsv3__context_last_logits(dsv3_context *ctx)
{
    (void)ctx;
    return NULL;
}

int dsv3__context_cancel_requested(const dsv3_context *ctx)
{
    (void)ctx;
    return 0;
}

dsv3_model *dsv3__context_model(const dsv3_context *ctx)
{
    (void)ctx;
    return NULL;
}

uint32_t dsv3__context_n_ctx(const dsv3_context *ctx)
{
    (void)ctx;
    return 0;
}

dsv3__err *dsv3__context_err(dsv3_context *ctx)
{
    (void)ctx;
    return NULL;
}

const dsv3__alloc *dsv3__context_allocator(const dsv3_context *ctx)
{
    (void)ctx;
    return NULL;
}

int dsv3__context_async_claim(dsv3_context *ctx)
{
    (void)ctx;
    return DSV3_E_UNSUPPORTED;
}

void dsv3__context_async_release(dsv3_context *ctx)
{
    (void)ctx;
}
