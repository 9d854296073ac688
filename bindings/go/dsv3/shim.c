/*
 * shim.c - C side of the Go binding (see shim.h).
 * SPDX-License-Identifier: MIT
 */
#include "shim.h"
#include "_cgo_export.h"

static void log_tramp(int32_t level, const char *msg, void *ud)
{
    dsv3goLog(level, (char *)msg, ud);
}

static int progress_tramp(const dsv3_progress_event *ev, void *ud)
{
    return dsv3goProgress((dsv3_progress_event *)ev, ud);
}

static int token_tramp(const dsv3_token_event *ev, void *ud)
{
    return dsv3goToken((dsv3_token_event *)ev, ud);
}

int dsv3go_model_load(const char *path, dsv3_model_params *p, uintptr_t log_h,
                      uintptr_t progress_h, dsv3_model **out)
{
    if (log_h) {
        p->log_fn = log_tramp;
        p->log_user_data = (void *)log_h;
    }
    if (progress_h) {
        p->progress_fn = progress_tramp;
        p->progress_user_data = (void *)progress_h;
    }
    return dsv3_model_load(path, p, out);
}

int dsv3go_generate(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                    size_t n_prompt, const dsv3_generate_params *params, uintptr_t h,
                    dsv3_generate_result *result)
{
    return dsv3_generate(ctx, smp, prompt, n_prompt, params, token_tramp, (void *)h, result);
}

int dsv3go_convert(const char *hf_dir, const char *out_dir, dsv3_convert_params *p,
                   uintptr_t log_h, uintptr_t progress_h, char *errbuf, size_t errcap)
{
    if (log_h) {
        p->log_fn = log_tramp;
        p->log_user_data = (void *)log_h;
    }
    if (progress_h) {
        p->progress_fn = progress_tramp;
        p->progress_user_data = (void *)progress_h;
    }
    return dsv3_convert(hf_dir, out_dir, p, errbuf, errcap);
}
