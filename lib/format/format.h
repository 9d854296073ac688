/*
 * format.h - the libdsv3 model files: manifest (model.dsv3) and shards
 * (*.dsv3s). Reader and writer, with no knowledge of the model itself.
 *
 * The byte layout is documented in docs/format.md. Everything read from a
 * file is untrusted: the parser checks every size, offset and count with
 * overflow-safe arithmetic before anything uses it.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_FORMAT_H
#define DSV3_FORMAT_H

#include <pthread.h>

#include "../core/core.h"

/* ---- constants of the format (docs/format.md) --------------------------- */

#define DSV3__FMT_VERSION 1u         /* the version this library writes and reads */
#define DSV3__FMT_HEADER_SIZE 64u    /* manifest and shard fixed headers */
#define DSV3__FMT_ALIGN 64u          /* tensor data alignment inside shards */
#define DSV3__FMT_MAX_CHUNK (64u << 20) /* largest raw chunk a reader accepts */
#define DSV3__FMT_CHUNK (2u << 20)   /* raw chunk size the writer uses */
#define DSV3__FMT_MAX_NAME 255u
#define DSV3__FMT_MAX_DIMS 4
#define DSV3__FMT_MANIFEST_NAME "model.dsv3"
#define DSV3__FMT_SHARD_EXT ".dsv3s"

extern const unsigned char dsv3__fmt_manifest_magic[8]; /* "DSV3MODL" */
extern const unsigned char dsv3__fmt_shard_magic[8];    /* "DSV3SHRD" */

enum dsv3__fmt_section {
    DSV3__SEC_HPARAMS = 1,   /* key-value: hyper-parameters */
    DSV3__SEC_META = 2,      /* key-value: chat template kind, converter, ... */
    DSV3__SEC_CONFIG = 3,    /* bytes: the original config.json */
    DSV3__SEC_TOKENIZER = 4, /* bytes: tokenizer blob (lib/tokenizer's format) */
    DSV3__SEC_SHARDS = 5,    /* shard table */
    DSV3__SEC_TENSORS = 6    /* tensor index */
};
#define DSV3__SEC_FLAG_REQUIRED 1u /* a reader that does not know the kind must refuse */

enum dsv3__fmt_codec {
    DSV3__CODEC_RAW = 0,   /* stored bytes are the raw bytes (mappable) */
    DSV3__CODEC_ZSTD = 1,  /* each chunk one zstd frame with content checksum */
    DSV3__CODEC_ALIAS = 2  /* no data: same contents as another tensor */
};
#define DSV3__TFLAG_PLANES 1u /* zstd chunks hold byte planes (byte k of every element) */

enum dsv3__kv_type {
    DSV3__KV_I64 = 1,
    DSV3__KV_F64 = 2,
    DSV3__KV_STR = 3,
    DSV3__KV_BOOL = 4
};

/* ---- parsed manifest ---------------------------------------------------- */

typedef struct dsv3__kv {
    const char *key;  /* NUL-terminated (points into the manifest copy) */
    int32_t type;     /* enum dsv3__kv_type */
    int64_t i;        /* I64, BOOL (0/1) */
    double f;         /* F64 */
    const char *s;    /* STR, NUL-terminated copy; may contain NUL bytes */
    size_t s_len;
} dsv3__kv;

typedef struct dsv3__kvlist {
    dsv3__kv *items;
    size_t n;
} dsv3__kvlist;

typedef struct dsv3__fmt_chunk {
    uint64_t offset;  /* absolute offset in the shard file */
    uint64_t stored;  /* stored bytes */
    uint64_t raw_off; /* offset of its raw bytes inside the tensor */
    uint64_t raw;     /* raw bytes */
    uint64_t hash;    /* xxh64 (seed 0) of the stored bytes */
} dsv3__fmt_chunk;

typedef struct dsv3__fmt_tensor {
    const char *name;  /* NUL-terminated */
    int32_t dtype;     /* enum dsv3_dtype */
    int32_t codec;     /* enum dsv3__fmt_codec */
    uint32_t flags;    /* DSV3__TFLAG_* */
    int32_t n_dims;
    int64_t ne[DSV3__FMT_MAX_DIMS]; /* outermost first; unused = 1 */
    int32_t alias;     /* ALIAS: index of the tensor it repeats; else -1 */
    uint32_t shard;
    uint64_t offset;   /* first byte in the shard (64-aligned) */
    uint64_t stored_size;
    uint64_t raw_size; /* = row_bytes(dtype, ne[last]) * other dims */
    uint64_t chunk_size;
    uint32_t n_chunks;
    dsv3__fmt_chunk *chunks; /* [n_chunks] */
} dsv3__fmt_tensor;

typedef struct dsv3__fmt_shard {
    const char *name; /* file name inside the model directory */
    uint64_t size;    /* expected file size */
} dsv3__fmt_shard;

typedef struct dsv3__manifest {
    dsv3__alloc alloc;
    uint32_t version;
    uint64_t model_id;
    uint64_t file_size;
    dsv3__kvlist hparams;
    dsv3__kvlist meta;
    const char *config; /* original config.json, NULL if absent */
    size_t config_len;
    const void *tokenizer; /* tokenizer blob, NULL if absent */
    size_t tokenizer_len;
    dsv3__fmt_shard *shards;
    uint32_t n_shards;
    dsv3__fmt_tensor *tensors;
    uint32_t n_tensors;
    uint32_t *by_name; /* tensor indices sorted by name */
    /* storage */
    unsigned char *copy; /* the manifest bytes */
    char *strings;       /* NUL-terminated copies of names and strings */
    size_t strings_used, strings_cap;
    dsv3__fmt_chunk *chunk_store;
} dsv3__manifest;

/* Parse and validate a manifest held in memory (data is copied where
 * needed; the caller may free it afterwards). On failure returns
 * DSV3_E_FORMAT, DSV3_E_VERSION, DSV3_E_CHECKSUM or DSV3_E_NOMEM with a
 * message, and *m is left empty (dsv3__manifest_free is harmless). */
int dsv3__manifest_parse(const dsv3__alloc *a, const void *data, size_t len, dsv3__manifest *m,
                         dsv3__err *err);
void dsv3__manifest_free(dsv3__manifest *m);
/* Tensor by name, or NULL. */
const dsv3__fmt_tensor *dsv3__manifest_find(const dsv3__manifest *m, const char *name);
const dsv3__kv *dsv3__kv_find(const dsv3__kvlist *l, const char *key);

/* Check a shard file's 64-byte header and size against the manifest. */
int dsv3__shard_check(const dsv3__manifest *m, uint32_t shard, const void *hdr, size_t hdr_len,
                      uint64_t file_size, dsv3__err *err);

/* Element unit of a dtype: bytes of the smallest whole piece (4 for F32,
 * 34 for a Q8_0 block ...); chunk sizes are multiples of it. 0: unknown. */
uint32_t dsv3__fmt_dtype_unit(int32_t dtype);
/* Bytes of a tensor of that dtype and shape (false on overflow / bad shape). */
bool dsv3__fmt_tensor_bytes(int32_t dtype, int32_t n_dims, const int64_t *ne, uint64_t *out);

/* Decode one chunk: `src` holds the chunk's stored bytes, `dst` receives
 * its raw bytes (c->raw of them). scratch (c->raw bytes) is needed for byte
 * planes. dctx may be NULL for raw tensors. verify: check the xxh64.
 * Returns DSV3_OK, DSV3_E_CHECKSUM, DSV3_E_FORMAT or DSV3_E_NOMEM. */
int dsv3__chunk_decode(void *dctx, const dsv3__fmt_tensor *t, const dsv3__fmt_chunk *c,
                       const void *src, void *dst, void *scratch, bool verify, dsv3__err *err);

/* Byte planes: split n bytes of elements of `unit` bytes into planes, and
 * back. unit 1 is a copy. n must be a multiple of unit. */
void dsv3__planes_split(void *dst, const void *src, size_t n, uint32_t unit);
void dsv3__planes_join(void *dst, const void *src, size_t n, uint32_t unit);

/* ---- zstd contexts through the library's allocator ---------------------- */

void *dsv3__zstd_dctx_new(const dsv3__alloc *a);
void dsv3__zstd_dctx_free(void *dctx);
void *dsv3__zstd_cctx_new(const dsv3__alloc *a, int level);
void dsv3__zstd_cctx_free(void *cctx);
/* Compress src into one frame with a content checksum; *out_len receives
 * the size. cap must be >= dsv3__zstd_bound(n). */
int dsv3__zstd_compress(void *cctx, void *dst, size_t cap, const void *src, size_t n,
                        size_t *out_len);
size_t dsv3__zstd_bound(size_t n);

/* ---- writer ------------------------------------------------------------- */

/* Builds the manifest in memory. */
typedef struct dsv3__mbuild {
    dsv3__alloc alloc;
    dsv3__vec kv[2];     /* bytes of the HPARAMS / META sections */
    uint32_t n_kv[2];
    dsv3__vec blob[2];   /* CONFIG, TOKENIZER bytes */
    bool has_blob[2];
    dsv3__vec shards;    /* bytes of the shard table */
    uint32_t n_shards;
    dsv3__vec tensors;   /* bytes of the tensor index */
    uint32_t n_tensors;
    dsv3__vec names;     /* name, dtype and shape of every tensor (for aliases) */
    int rc;              /* first failure (sticky) */
} dsv3__mbuild;

void dsv3__mbuild_init(dsv3__mbuild *b, const dsv3__alloc *a);
void dsv3__mbuild_free(dsv3__mbuild *b);
/* section: DSV3__SEC_HPARAMS or DSV3__SEC_META. */
void dsv3__mbuild_kv_i64(dsv3__mbuild *b, int section, const char *key, int64_t v);
void dsv3__mbuild_kv_f64(dsv3__mbuild *b, int section, const char *key, double v);
void dsv3__mbuild_kv_str(dsv3__mbuild *b, int section, const char *key, const char *s,
                         size_t n);
void dsv3__mbuild_kv_bool(dsv3__mbuild *b, int section, const char *key, bool v);
/* section: DSV3__SEC_CONFIG or DSV3__SEC_TOKENIZER. */
void dsv3__mbuild_blob(dsv3__mbuild *b, int section, const void *data, size_t n);
void dsv3__mbuild_shard(dsv3__mbuild *b, const char *name, uint64_t size);
/* A stored tensor; chunks[i].offset/stored/raw/hash describe its frames. */
void dsv3__mbuild_tensor(dsv3__mbuild *b, const char *name, int32_t dtype, int32_t n_dims,
                         const int64_t *ne, int32_t codec, uint32_t flags, uint32_t shard,
                         uint64_t chunk_size, const dsv3__fmt_chunk *chunks,
                         uint32_t n_chunks);
/* An alias of an earlier tensor (same dtype and shape). */
void dsv3__mbuild_alias(dsv3__mbuild *b, const char *name, const char *target);
/* Serialize; *out is allocated with the builder's allocator. The model id
 * goes into the header (and must match the shard headers). */
int dsv3__mbuild_finish(dsv3__mbuild *b, uint64_t model_id, void **out, size_t *len,
                        dsv3__err *err);
/* A content-derived model id: xxh64 of the tensor index bytes. */
uint64_t dsv3__mbuild_model_id(const dsv3__mbuild *b);

/* Fill a 64-byte shard header. */
void dsv3__shard_header(unsigned char hdr[64], uint64_t file_size, uint64_t model_id,
                        uint32_t index);

/* ---- a small pool of loader / converter threads ------------------------- */

typedef struct dsv3__pool dsv3__pool;
/* Job function: returns DSV3_OK or an error (the first error stops the run). */
typedef int (*dsv3__pool_fn)(void *arg, int worker, size_t job);
/* Called by the calling thread after its first job, then between its jobs
 * and while it waits for the others, about every 50 ms; non-zero cancels
 * the run (DSV3_E_CANCELED). */
typedef int (*dsv3__pool_tick)(void *arg);

/* n_threads >= 1 workers in all, including the calling thread. Threads that
 * cannot be created are simply not used. */
int dsv3__pool_new(const dsv3__alloc *a, int n_threads, dsv3__pool **out);
int dsv3__pool_size(const dsv3__pool *p);
int dsv3__pool_run(dsv3__pool *p, dsv3__pool_fn fn, void *arg, size_t n_jobs,
                   dsv3__pool_tick tick, void *tick_arg);
void dsv3__pool_free(dsv3__pool *p);

#endif /* DSV3_FORMAT_H */
