/*
 * ckpt_gen.h - random-weight Hugging Face style checkpoints of the configs in
 * spec/TINY_CONFIGS.md (config.json + safetensors), for tests and benchmarks.
 * Not part of the library: it has its own FP8 e4m3 encoder (nearest value
 * by exhaustive search) so that it can serve as an independent reference.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CKPT_GEN_H
#define DSV3_CKPT_GEN_H

#include <stddef.h>
#include <stdint.h>

typedef struct cg_config {
    const char *name;
    int vocab, hidden, inter, moe_inter, layers, dense, heads;
    int q_lora; /* 0: null */
    int kv_lora, nope, rope, v_head;
    int experts, shared, topk, groups, topk_group, mtp, max_pos;
    double yarn_factor;
    int yarn_orig;
    double mscale;
    int bos, eos;
} cg_config;

extern const cg_config cg_tiny, cg_tiny_noq, cg_mini;

enum cg_dtype { CG_BF16 = 0, CG_FP8 = 1, CG_F32 = 2 };

enum cg_mtp_copies {
    CG_MTP_COPY = 0,     /* MTP embed/head byte-identical copies (as in V3) */
    CG_MTP_OMIT = 1,     /* MTP embed/head absent */
    CG_MTP_DISTINCT = 2  /* MTP embed/head with their own values */
};

typedef struct cg_opts {
    const cg_config *cfg;
    int dtype;      /* enum cg_dtype: projection matrices (others BF16, F32 for CG_F32) */
    uint64_t seed;
    int mtp_copies; /* enum cg_mtp_copies */
} cg_opts;

/* Called for every tensor, in checkpoint order. dtype is a safetensors dtype
 * string. Return non-zero to stop. */
typedef int (*cg_tensor_fn)(const char *name, const char *dtype, int n_dims,
                            const int64_t *shape, const void *data, size_t nbytes, void *ud);

/* Generate all tensors (deterministic for a given cfg, dtype and seed). */
int cg_generate(const cg_opts *o, cg_tensor_fn fn, void *ud);

/* config.json text (malloc'ed). */
char *cg_config_json(const cg_config *c);

/* Write dir/config.json and the safetensors (n_files 0: one model.safetensors;
 * >= 1: sharded with model.safetensors.index.json). Returns 0 or -1. */
int cg_write(const char *dir, const cg_opts *o, int n_files);

/* Reference FP8 e4m3fn: nearest representable value (ties to the even
 * code), saturating at +-448; and its decoding. */
uint8_t cg_fp8_encode(float x);
float cg_fp8_decode(uint8_t b);
float cg_bf16_to_f32(uint16_t h);
uint16_t cg_f32_to_bf16(float f);

/* A collected checkpoint: every tensor kept in memory (for comparisons). */
typedef struct cg_tensor {
    char name[128];
    char dtype[16];
    int n_dims;
    int64_t shape[4];
    void *data;
    size_t nbytes;
} cg_tensor;

typedef struct cg_set {
    cg_tensor *t;
    int n, cap;
} cg_set;

int cg_collect(const cg_opts *o, cg_set *s);
const cg_tensor *cg_find(const cg_set *s, const char *name);
void cg_set_free(cg_set *s);

#endif
