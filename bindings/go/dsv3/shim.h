/*
 * shim.h - C side of the Go binding: installs the exported Go trampolines
 * as libdsv3 callbacks. Handles travel as uintptr_t (runtime/cgo.Handle)
 * and are turned into user_data pointers here, in C.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3GO_SHIM_H
#define DSV3GO_SHIM_H

#include <stdint.h>
#include <stdlib.h>

#include "dsv3.h"

#if DSV3_ABI_VERSION != 0
#error "this Go binding is written for libdsv3 ABI 0 (libdsv3.so.0); the dsv3.h found is another ABI"
#endif

int dsv3go_model_load(const char *path, dsv3_model_params *p, uintptr_t log_h,
                      uintptr_t progress_h, dsv3_model **out);
int dsv3go_generate(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                    size_t n_prompt, const dsv3_generate_params *params, uintptr_t h,
                    dsv3_generate_result *result);
int dsv3go_convert(const char *hf_dir, const char *out_dir, dsv3_convert_params *p,
                   uintptr_t log_h, uintptr_t progress_h, char *errbuf, size_t errcap);

#endif
