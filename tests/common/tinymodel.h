/*
 * tinymodel.h - builds a small DeepSeek-V3-shaped model directly in memory
 * (random weights, CPU backend) for tests of the forward pass and the
 * context API that must not depend on the file format.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_TINYMODEL_H
#define DSV3_TINYMODEL_H

#include "model/model.h"

typedef struct tm_model {
    dsv3_model *m;
    void **blocks; /* weight memory, released after the model */
    size_t n_blocks, cap;
    uint32_t rng;
} tm_model;

/* The "tiny" configuration of spec/TINY_CONFIGS.md (q_lora on, sigmoid +
 * bias + 4 groups keep 2, one MTP module). */
dsv3_hparams tm_tiny_hparams(void);

/*
 * Build a model: hp as given, matrices of wdtype (F32, BF16 or FP8_E4M3
 * with 128x128 block scales), the MTP module when hp.n_mtp > 0 and
 * with_mtp. alloc may be NULL. Returns DSV3_OK or the error of
 * dsv3__fwd_model_init (the model is still built and must be released).
 */
int tm_model_init(tm_model *t, const dsv3_hparams *hp, int32_t wdtype, int with_mtp,
                  uint32_t seed, const dsv3_allocator *alloc);
/* dsv3_model_free, then the weights (free the contexts first, or keep the
 * weights alive until they are gone). */
void tm_model_release(tm_model *t);

/* Encode a float as FP8 e4m3 (round to nearest, saturating at 448). */
uint8_t tm_f32_to_e4m3(float v);

#endif
