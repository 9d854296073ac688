/*
 * backend.h - the backend vtable: how lib/model reaches hardware.
 *
 * A backend owns memory (buffers) and runs coarse operations (ops) on tensors
 * that live in its buffers. lib/model builds the forward pass out of these ops
 * and never touches hardware itself; backends never include lib/model.
 *
 * The vtable is private in 0.x; struct_size and api_version keep a plugin ABI
 * possible later. NULL optional slots get registry defaults.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_BACKEND_H
#define DSV3_BACKEND_H

#include "../core/core.h"

#define DSV3_BACKEND_API_VERSION 1

/* ---- tensors ------------------------------------------------------------ */

/* Block size of FP8 weight scales (DeepSeek's 128x128 blocks). */
#define DSV3_FP8_BLOCK 128

/*
 * A tensor in backend memory. Shapes follow PyTorch / safetensors order:
 * ne[0] is the outermost (slowest) dimension, ne[n_dims-1] the innermost
 * (contiguous) one. A linear weight is [out, in] (row-major), applied as
 * y = W x. Routed-expert stacks are [n_experts, out, in].
 */
typedef struct dsv3_tensor {
    int32_t dtype;   /* enum dsv3_dtype */
    int32_t n_dims;  /* 1 ... 4 */
    int64_t ne[4];   /* shape, outermost first; unused dims are 1 */
    void *data;      /* backend address of the first element */
    /* FP8_E4M3 only: F32 block scales [.., ceil(out/128), ceil(in/128)] in the
     * same backend's memory (DeepSeek's weight_scale_inv: multiplied). */
    float *scale;
    size_t nbytes;   /* bytes of data (not counting scale) */
    int32_t backend; /* enum dsv3_backend_id of the memory holding it */
    int32_t reserved;
} dsv3_tensor;

/* Bytes of a row of n elements of a dtype (0 for an unknown dtype or a
 * length that is not a whole number of blocks). */
size_t dsv3__dtype_row_bytes(int32_t dtype, int64_t n);
/* Human-readable dtype name ("f32", "bf16", "fp8", "q8_0", "q4"). */
const char *dsv3__dtype_name(int32_t dtype);
/* Elements of a tensor. */
int64_t dsv3__tensor_nelem(const dsv3_tensor *t);

/* ---- buffers ------------------------------------------------------------ */

/* A block of backend memory. base is the backend address (a host pointer for
 * host-memory backends, a device pointer otherwise). */
typedef struct dsv3_buf {
    void *base;
    size_t size;
    uint32_t usage;  /* enum dsv3_buf_usage */
    uint32_t flags;  /* backend private */
    void *priv;      /* backend private */
} dsv3_buf;

enum dsv3_buf_usage {
    DSV3_BUF_WEIGHTS = 1, /* written once at load, then read-only */
    DSV3_BUF_COMPUTE = 2, /* activations, scratch */
    DSV3_BUF_KV = 3       /* KV cache */
};

/* ---- capabilities and configuration ------------------------------------- */

enum dsv3_backend_cap_flags {
    DSV3_CAP_HOST_MEMORY = 1u << 0, /* buffers are plain host memory */
    DSV3_CAP_ASYNC = 1u << 1        /* ops are queued; sync() waits */
};

typedef struct dsv3_backend_caps {
    uint32_t struct_size;
    uint32_t flags;      /* enum dsv3_backend_cap_flags */
    uint32_t dtypes;     /* bit (1u << dtype) per supported weight dtype */
    int32_t score;       /* higher wins among usable variants of one backend id */
    uint64_t mem_total;  /* bytes; 0 if unknown */
    uint64_t mem_free;
    char desc[96];       /* e.g. "cpu avx2+fma, 2 threads" or the GPU's name */
} dsv3_backend_caps;

typedef struct dsv3_backend_config {
    uint32_t struct_size;
    int32_t device;          /* device ordinal */
    int32_t n_threads;       /* worker threads (CPU backend) */
    int32_t reserved;
    const dsv3__alloc *alloc; /* host allocations */
    const dsv3__log *log;
} dsv3_backend_config;

/* ---- ops ---------------------------------------------------------------- */

/*
 * Operations. Each is coarse enough for one architecture step so that GPU
 * backends can fuse; every op is tested against the scalar reference. The
 * argument struct of each op is declared with the forward pass (see
 * dsv3_op_job); the op numbers are private to the library.
 */
enum dsv3_op {
    DSV3_OP_NONE = 0,
    DSV3_OP__COUNT
};

/* One op invocation. The per-op argument structs are added by the forward
 * pass; `args` points at the one matching `op`. */
typedef struct dsv3_op_job {
    int32_t op;
    int32_t reserved;
    const void *args;
    const volatile int *cancel; /* non-zero: stop early and return DSV3_E_CANCELED */
} dsv3_op_job;

/* Optional fused layer job (MLA + FFN of one decoder layer); backends that do
 * not implement run_layer get the op-by-op path. */
typedef struct dsv3_layer_job dsv3_layer_job;

/* ---- the vtable --------------------------------------------------------- */

typedef struct dsv3_backend_ops {
    uint32_t struct_size;
    uint32_t api_version; /* DSV3_BACKEND_API_VERSION */
    int32_t id;           /* enum dsv3_backend_id */
    int32_t reserved;
    const char *name;     /* "cpu", "cuda" */

    /* Is this backend usable here; fill caps. DSV3_E_NODEV when not. */
    int (*probe)(dsv3_backend_caps *caps);
    int (*init)(const dsv3_backend_config *cfg, void **state);
    void (*fini)(void *state);

    int (*buf_alloc)(void *state, size_t size, uint32_t usage, dsv3_buf **out);
    void (*buf_free)(void *state, dsv3_buf *buf);
    /* optional: wrap host memory (e.g. an mmap of a raw shard) without copying */
    int (*buf_from_host)(void *state, void *ptr, size_t size, dsv3_buf **out);
    int (*buf_write)(void *state, dsv3_buf *dst, size_t off, const void *src, size_t n);
    int (*buf_read)(void *state, const dsv3_buf *src, size_t off, void *dst, size_t n);

    /* Can this backend run op on weights of dtype: 1 yes, 0 no. */
    int (*supports)(void *state, int32_t op, int32_t dtype);
    int (*run_op)(void *state, const dsv3_op_job *job);
    int (*run_layer)(void *state, const dsv3_layer_job *job); /* optional */
    int (*sync)(void *state);                                 /* optional */
    /* optional: change the number of worker threads */
    int (*set_threads)(void *state, int32_t n_threads);
} dsv3_backend_ops;

/* ---- registry ----------------------------------------------------------- */

/* The best usable implementation of a backend id (DSV3_BACKEND_AUTO picks the
 * best id), or NULL with DSV3_E_NODEV. Probing happens once per process. */
int dsv3__backend_get(int32_t id, const dsv3_backend_ops **out);

/* An initialised backend instance. */
typedef struct dsv3_backend {
    const dsv3_backend_ops *ops;
    void *state;
    dsv3_backend_caps caps;
} dsv3_backend;

int dsv3__backend_open(int32_t id, const dsv3_backend_config *cfg, dsv3_backend *out,
                       dsv3__err *err);
void dsv3__backend_close(dsv3_backend *be);

/* Backends compiled in. */
extern const dsv3_backend_ops dsv3__backend_cpu;
#if DSV3_HAVE_CUDA
extern const dsv3_backend_ops dsv3__backend_cuda;
#endif

#endif /* DSV3_BACKEND_H */
