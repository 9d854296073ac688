/*
 * convert.h - Hugging Face checkpoint -> libdsv3 model directory:
 * safetensors reading, dtype conversion and FP8 block quantization, the
 * output writer (chunking, compression, shards).
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CONVERT_H
#define DSV3_CONVERT_H

#include "../core/core.h"
#include "../format/format.h"

/* ---- safetensors (safetensors.c) ----------------------------------------- */

#define DSV3__ST_MAX_DIMS 8

typedef struct dsv3__st_tensor {
    char *name;
    int32_t dtype;      /* enum dsv3_dtype (F32, F16, BF16, FP8_E4M3) or -1 */
    char dtype_name[16];
    int32_t n_dims;
    int64_t ne[DSV3__ST_MAX_DIMS];
    const unsigned char *data;
    uint64_t nbytes;
    uint32_t file;
    bool used;          /* consumed by the conversion */
} dsv3__st_tensor;

typedef struct dsv3__st_file {
    char *name;
    void *map;          /* whole file, read-only (NULL for in-memory buffers) */
    size_t size;
} dsv3__st_file;

typedef struct dsv3__stset {
    dsv3__alloc alloc;
    dsv3__vec files;    /* dsv3__st_file */
    dsv3__vec tensors;  /* dsv3__st_tensor, sorted by name after finalize */
} dsv3__stset;

void dsv3__st_init(dsv3__stset *s, const dsv3__alloc *a);
/* Parse one safetensors image (header validated: offsets in bounds, sizes
 * matching dtype and shape, no overlaps). */
int dsv3__st_add_buffer(dsv3__stset *s, const char *file_name, const void *data, size_t size,
                        dsv3__err *err);
/* All safetensors files of a checkpoint directory: the files named by
 * model.safetensors.index.json, else model.safetensors, else every
 * *.safetensors file. Files are mapped read-only. */
int dsv3__st_open_dir(dsv3__stset *s, const char *dir, dsv3__err *err);
/* Sort by name and refuse duplicates (called by st_open_dir). */
int dsv3__st_finalize(dsv3__stset *s, dsv3__err *err);
const dsv3__st_tensor *dsv3__st_find(const dsv3__stset *s, const char *name);
/* Drop the pages of a tensor from memory once it has been converted. */
void dsv3__st_release(const dsv3__stset *s, const dsv3__st_tensor *t);
void dsv3__st_close(dsv3__stset *s);
/* Read a whole (small) file, NUL-terminated, allocated with a. */
int dsv3__read_file(const dsv3__alloc *a, const char *path, char **out, size_t *len,
                    dsv3__err *err);

/* ---- element conversions (quant.c) ----------------------------------------- */

/* F32 -> FP8 e4m3 ("fn"), round to nearest even, saturating at +-448;
 * NaN -> 0x7f. */
uint8_t dsv3__fp8_from_f32(float x);
/* n elements of dtype (F32, F16, BF16, FP8 without scale) to F32 and back
 * (BF16/F16 round to nearest even; FP8 as dsv3__fp8_from_f32). */
void dsv3__to_f32(float *dst, const void *src, int32_t dtype, size_t n);
void dsv3__from_f32(void *dst, int32_t dtype, const float *src, size_t n);

/* ---- tensor producers (quant.c) ------------------------------------------ */

/*
 * Produces the raw bytes of one output tensor from one or more source
 * matrices of the same shape [R, C] (several = a stack of experts), in
 * order, converting the dtype on the way:
 *  - same dtype: bytes passed through without copying;
 *  - FP8 source with scales to F32/BF16: fp8 value x block scale;
 *  - F32/F16/BF16 source to FP8: 128x128 block quantization, the scales
 *    (amax / 448) collected in q_scales ([n_src, ceil(R/128), ceil(C/128)]);
 *  - otherwise element conversion through F32.
 */
typedef struct dsv3__prod {
    const dsv3__alloc *alloc;
    int32_t n_src;
    const unsigned char *const *src;  /* [n_src] */
    const unsigned char *const *scale;/* [n_src] F32 block scales (FP8 source to float) */
    int32_t in_dtype, out_dtype;
    int64_t R, C;
    float *q_scales;                  /* out_dtype FP8 from a float source */
    /* state */
    int64_t row;                      /* next row over all sources (e * R + r) */
    unsigned char *band;
    size_t band_cap;
    float *fbuf;                      /* C floats */
} dsv3__prod;

int dsv3__prod_init(dsv3__prod *p, const dsv3__alloc *a);
/* Next piece of output in (ptr, len); len 0 at the end. */
int dsv3__prod_next(dsv3__prod *p, const unsigned char **ptr, size_t *len);
void dsv3__prod_free(dsv3__prod *p);

/* ---- output writer (out.c) --------------------------------------------------- */

typedef struct dsv3__outw dsv3__outw;

typedef struct dsv3__out_opts {
    const char *dir;
    uint64_t shard_size;
    int level;          /* zstd level; -1 = codec raw */
    bool byte_planes;
    int n_threads;
    const dsv3__log *log;
    dsv3_progress_fn progress_fn;
    void *progress_user_data;
    uint64_t progress_total;
} dsv3__out_opts;

int dsv3__outw_open(const dsv3__alloc *a, const dsv3__out_opts *o, dsv3__outw **out,
                    dsv3__err *err);
dsv3__mbuild *dsv3__outw_manifest(dsv3__outw *w);
/* Write one tensor whose raw bytes come from p. */
int dsv3__outw_tensor(dsv3__outw *w, const char *name, int32_t dtype, int32_t n_dims,
                      const int64_t *ne, dsv3__prod *p, dsv3__err *err);
/* Write shard headers and model.dsv3. */
int dsv3__outw_finish(dsv3__outw *w, dsv3__err *err);
/* Free; with remove, delete the files written so far (after a failure). */
void dsv3__outw_free(dsv3__outw *w, bool remove);
/* Bytes of the files written (shards + manifest), after finish. */
uint64_t dsv3__outw_bytes(const dsv3__outw *w);

/* ---- the conversion (convert.c) ---------------------------------------------- */

/* Internal knobs beyond dsv3_convert_params (benchmarks, tests). */
typedef struct dsv3__convert_opts {
    bool no_byte_planes;
} dsv3__convert_opts;

int dsv3__convert(const char *hf_dir, const char *out_dir, const dsv3_convert_params *params,
                  const dsv3__convert_opts *opts, char *errbuf, size_t errcap);

#endif /* DSV3_CONVERT_H */
