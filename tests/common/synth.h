/*
 * synth.h - deterministic synthetic DeepSeek-style checkpoints for tests and
 * benchmarks: the C port of tests/reference/synth.py, writing byte-identical
 * files (recipe specified in tests/reference/README.md). Not part of the
 * library.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_SYNTH_H
#define DSV3_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#define SYNTH_FNV_OFFSET 0xcbf29ce484222325ULL
#define SYNTH_DEFAULT_SEED 0ULL

/* ---- recipe primitives ---- */

/* splitmix64: advance *state and return the next output. */
uint64_t synth_splitmix64(uint64_t *state);
/* FNV-1a 64 over n bytes, continuing from h (start with SYNTH_FNV_OFFSET). */
uint64_t synth_fnv1a64(uint64_t h, const void *data, size_t n);
/* float -> BF16 bits, round to nearest even (finite inputs). */
uint16_t synth_f32_to_bf16(float f);

/* ---- checkpoints ---- */

typedef struct synth_info {
    uint64_t hash;      /* weights hash (README: FNV-1a 64 over names, dtypes, shapes, data) */
    int64_t n_tensors;  /* tensors written (FP8 scales included) */
    int64_t n_params;   /* elements of all tensors except FP8 scales */
    uint64_t n_bytes;   /* bytes of tensor data */
} synth_info;

/*
 * Plan only: the tensor count and sizes a config gives (info->hash is 0).
 * variant is "bf16" or "fp8". Returns 0, or -1 with a message in err.
 */
int synth_plan(const char *config_path, const char *variant, synth_info *info, char *err,
               size_t errcap);

/*
 * Write OUT_DIR/config.json (the config text; for fp8 with a
 * quantization_config member added) and the weights: one model.safetensors
 * when n_files == 1, else model-0000K-of-0000N.safetensors files plus
 * model.safetensors.index.json. n_files <= 0 picks the default (bf16: 1,
 * fp8: 3). out_dir must exist. Returns 0, or -1 with a message in err.
 */
int synth_write(const char *config_path, const char *variant, uint64_t seed, const char *out_dir,
                int n_files, synth_info *info, char *err, size_t errcap);

/*
 * Weights hash of a checkpoint directory computed from its files as written
 * (single file or index + shards), independent of how they were made.
 * Returns 0, or -1 with a message in err.
 */
int synth_hash_dir(const char *dir, uint64_t *hash, int64_t *n_tensors, char *err, size_t errcap);

#endif
