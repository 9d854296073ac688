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
 * Operations. Each is one coarse architecture step so that GPU backends can
 * fuse inside it; the CPU backend's scalar implementation is the
 * conformance oracle for every other implementation.
 *
 * Common rules:
 *  - Activations are F32 in the backend's memory (COMPUTE or KV buffers).
 *    Matrices are row-major; "ld" arguments are row strides in elements.
 *  - Weights are dsv3_tensor (F32, BF16, F16 or FP8_E4M3 with 128x128 block
 *    scales, edge blocks partial). A stacked tensor [E, M, K] is addressed
 *    by an expert index; a 2-D tensor [M, K] uses expert 0.
 *  - Accumulation is F32 in a fixed order, so results never depend on the
 *    number of threads.
 *  - Outputs never alias inputs unless an op says so.
 *  - Ties in top-k / argmax go to the lower index.
 * Numbers are fixed for the life of the library (private, but keep them).
 */
enum dsv3_op {
    DSV3_OP_NONE = 0,
    DSV3_OP_EMBED = 1,    /* dsv3_op_embed_args: rows of a table by token id */
    DSV3_OP_RMSNORM = 2,  /* dsv3_op_rmsnorm_args */
    DSV3_OP_MATMUL = 3,   /* dsv3_op_matmul_args: y[T][M] (+)= x[T][K] W[M][K]^T */
    DSV3_OP_DEQUANT = 4,  /* dsv3_op_dequant_args: weight rows to F32 */
    DSV3_OP_COPY = 5,     /* dsv3_op_copy_args: 2-D copy with dtype conversion */
    DSV3_OP_ROPE = 6,     /* dsv3_op_rope_args: interleaved-pair rotation in place */
    DSV3_OP_MLA_ATTN = 7, /* dsv3_op_mla_attn_args: absorbed MLA over the latent cache */
    DSV3_OP_MHA = 8,      /* dsv3_op_mha_args: naive MLA (decompressed keys/values) */
    DSV3_OP_ROUTE = 9,    /* dsv3_op_route_args: router scores -> top-k experts, weights */
    DSV3_OP_MOE = 10,     /* dsv3_op_moe_args: routed experts, weighted sum */
    DSV3_OP_SWIGLU = 11,  /* dsv3_op_swiglu_args: y = silu(g) * u */
    DSV3_OP_ADD = 12,     /* dsv3_op_add_args: y = a + b */
    DSV3_OP_ARGMAX = 13,  /* dsv3_op_argmax_args: per-row argmax */
    DSV3_OP__COUNT
};

/* EMBED: out[t][0..d) = F32(table[tokens[t]]) for t < n. The caller checks
 * that every token is in [0, V). table: [V, d] of any weight dtype. */
typedef struct dsv3_op_embed_args {
    const dsv3_tensor *table; /* [V, d] */
    const int32_t *tokens;    /* [n], backend memory */
    float *out;               /* [n][ld_out] */
    int64_t n, ld_out;
} dsv3_op_embed_args;

/* RMSNORM: y[r][i] = weight[i] * x[r][i] / sqrt(mean_i(x[r][i]^2) + eps),
 * i < n. y may equal x (in place). */
typedef struct dsv3_op_rmsnorm_args {
    const float *x;      /* [rows][ldx] */
    float *y;            /* [rows][ldy] */
    const float *weight; /* [n] */
    int64_t rows, n, ldx, ldy;
    float eps;
    int32_t reserved;
} dsv3_op_rmsnorm_args;

/* MATMUL: y[t][m] = sum_k x[t][k] * W[m][k] (accumulate: y[t][m] += that),
 * t < T, m < M, k < K, with W = w (2-D [M, K]) or w[expert] (stacked
 * [E, M, K]). FP8 weights are W = fp8(q) * scale[m/128][k/128]. */
typedef struct dsv3_op_matmul_args {
    const dsv3_tensor *w;
    int64_t expert;     /* 0 for a 2-D tensor */
    const float *x;     /* [T][ldx], ldx >= K */
    float *y;           /* [T][ldy], ldy >= M */
    int64_t T, ldx, ldy;
    int32_t accumulate; /* 0: y = x W^T; 1: y += x W^T */
    int32_t reserved;
} dsv3_op_matmul_args;

/* DEQUANT: y[r][k] = W[row0 + r][k] as F32 for r < rows (W as in MATMUL). */
typedef struct dsv3_op_dequant_args {
    const dsv3_tensor *w;
    int64_t expert;
    int64_t row0, rows;
    float *y;           /* [rows][K] */
} dsv3_op_dequant_args;

/* COPY: dst[r][c] = src[r][c] for r < rows, c < cols, converting between
 * F32, BF16 and F16 (round to nearest even). */
typedef struct dsv3_op_copy_args {
    const void *src;
    void *dst;
    int32_t src_dtype, dst_dtype; /* enum dsv3_dtype: F32, BF16, F16 */
    int64_t rows, cols, ld_src, ld_dst;
} dsv3_op_copy_args;

/* ROPE: rotate, in place, n_heads vectors of dim values in each of T rows:
 * the vector of head h in row t starts at x + t*ldx + offset + h*head_stride.
 * Row t is at position pos0 + t. Pairs are interleaved: for i < dim/2,
 * phi = (pos0 + t) * freqs[i],
 *   y[2i]   = scale * (x[2i] cos(phi) - x[2i+1] sin(phi)),
 *   y[2i+1] = scale * (x[2i] sin(phi) + x[2i+1] cos(phi)). */
typedef struct dsv3_op_rope_args {
    float *x;
    const float *freqs; /* [dim/2], backend memory (YaRN-corrected frequencies) */
    int64_t T, ldx, offset, head_stride, n_heads, dim, pos0;
    float scale;        /* 1, or YaRN's m(s, mscale) / m(s, mscale_all_dim) */
    int32_t reserved;
} dsv3_op_rope_args;

/*
 * MLA_ATTN (absorbed form). Query row t (position pos0 + t) attends to cache
 * rows 0 ... pos0 + t (the cache must already hold rows up to pos0 + T - 1).
 * Per head h, with q_n = q[t][h*d_q .. +d_n), q_r = q[t][h*d_q+d_n .. +d_r)
 * (already rotated), W_UK = wkv_b[h][0 .. d_n), W_UV = wkv_b[h][d_n .. d_n+d_v):
 *   qhat = W_UK^T q_n                                    [r_kv]
 *   s(j) = scale * (qhat . c(j) + q_r . k_r(j)),  P = softmax_j(s)
 *   out[t][h*d_v .. +d_v) = W_UV (sum_j P(j) c(j))
 * where cache row j = [c(j) (r_kv values) ; k_r(j) (d_r values)].
 */
typedef struct dsv3_op_mla_attn_args {
    const float *q;      /* [T][ldq], ldq >= n_heads*(d_nope+d_rope) */
    const void *cache;   /* [>= pos0+T][ld_cache] of cache_dtype (F32, BF16) */
    const float *wkv_b;  /* [n_heads][d_nope+d_v][kv_rank], F32 */
    float *out;          /* [T][ld_out], ld_out >= n_heads*d_v */
    int32_t cache_dtype, reserved;
    int64_t T, pos0, n_heads, d_nope, d_rope, d_v, kv_rank;
    int64_t ldq, ld_cache, ld_out;
    float scale;         /* softmax scale tau */
    int32_t reserved2;
} dsv3_op_mla_attn_args;

/*
 * MHA (naive form over decompressed keys and values). Query row t (position
 * pos0 + t) attends to key rows 0 ... pos0 + t. Per head h, key row j is
 * [kv[j][h*(d_n+d_v) .. +d_n) ; k_rope[j][0 .. d_r)] and its value
 * kv[j][h*(d_n+d_v)+d_n .. +d_v); scores are scale * q_h . k_h(j).
 */
typedef struct dsv3_op_mha_args {
    const float *q;      /* [T][ldq] per head [nope ; rope] */
    const float *kv;     /* [>= pos0+T][ld_kv] per head [k_nope ; v] */
    const float *k_rope; /* [>= pos0+T][ld_kr] shared rotated key */
    float *out;          /* [T][ld_out] */
    int64_t T, pos0, n_heads, d_nope, d_rope, d_v;
    int64_t ldq, ld_kv, ld_kr, ld_out;
    float scale;
    int32_t reserved;
} dsv3_op_mha_args;

enum dsv3_route_scoring {
    DSV3_ROUTE_SOFTMAX = 0, /* s = softmax(z) over all experts */
    DSV3_ROUTE_SIGMOID = 1  /* s = sigmoid(z) */
};

enum dsv3_route_groups {
    DSV3_GROUPS_NONE = 0,  /* plain top-k */
    DSV3_GROUPS_MAX = 1,   /* group score = max of the choice scores in the group */
    DSV3_GROUPS_TOP2 = 2   /* group score = sum of the two largest choice scores */
};

/*
 * ROUTE, per token t: s = scoring(z[t]); choice scores c = s + bias (bias
 * only when not NULL); with groups: keep the topk_group groups (n_group
 * groups of consecutive experts) with the largest group score and set c to
 * -inf outside them; idx = the k experts with the largest c, in descending
 * order of c; weight = s[idx] (unbiased), divided by their sum when renorm,
 * times scaling.
 */
typedef struct dsv3_op_route_args {
    const float *logits; /* [T][ld] router logits z */
    const float *bias;   /* [n_experts] or NULL */
    int32_t *idx;        /* [T][k] */
    float *weight;       /* [T][k] */
    int64_t T, ld, n_experts, k, n_group, topk_group;
    int32_t scoring;     /* enum dsv3_route_scoring */
    int32_t groups;      /* enum dsv3_route_groups */
    int32_t renorm;
    float scaling;
} dsv3_op_route_args;

/*
 * MOE: y[t] = sum over the k experts e = idx[t][j] of weight[t][j] *
 * down_e(silu(gate_e x[t]) * up_e x[t]), summed in ascending expert index.
 * gate/up are stacked [E, f, d], down [E, d, f].
 */
typedef struct dsv3_op_moe_args {
    const dsv3_tensor *gate, *up, *down;
    const float *x;          /* [T][ldx] */
    const int32_t *idx;      /* [T][k], each in [0, E) */
    const float *weight;     /* [T][k] */
    float *y;                /* [T][ldy] */
    int64_t T, k, ldx, ldy;
} dsv3_op_moe_args;

/* SWIGLU: y[i] = silu(g[i]) * u[i], silu(z) = z / (1 + exp(-z)), i < n.
 * y may equal g or u. */
typedef struct dsv3_op_swiglu_args {
    const float *g, *u;
    float *y;
    int64_t n;
} dsv3_op_swiglu_args;

/* ADD: y[i] = a[i] + b[i], i < n; y may equal a or b. */
typedef struct dsv3_op_add_args {
    const float *a, *b;
    float *y;
    int64_t n;
} dsv3_op_add_args;

/* ARGMAX: out[r] = index of the largest x[r][0 .. n) (lowest on ties; NaN
 * never wins). */
typedef struct dsv3_op_argmax_args {
    const float *x;  /* [rows][ld] */
    int32_t *out;    /* [rows], backend memory */
    int64_t rows, n, ld;
} dsv3_op_argmax_args;

/* One op invocation; `args` points at the struct matching `op`. */
typedef struct dsv3_op_job {
    int32_t op;        /* enum dsv3_op */
    int32_t n_threads; /* worker threads for this op; <= 0: the backend's default */
    const void *args;
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

/*
 * Instances. Each init() makes an independent instance (a queued backend
 * gives each its own queue, e.g. a CUDA stream). Memory belongs to the
 * backend and device, not to the instance: a buffer allocated through one
 * instance may be used by the ops of every instance of the same backend
 * and device, and must be freed through the instance that allocated it.
 * Ops of one instance run in call order, one calling thread at a time;
 * buf_write and buf_read return when the copy is complete and are ordered
 * after the ops queued on that instance before them; sync (when present)
 * waits for them. lib/model keeps the weights in the model's instance and
 * gives each context its own instance of a queued (DSV3_CAP_ASYNC) backend.
 */

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
/* Another instance of the implementation `like` runs on (same vtable). */
int dsv3__backend_open_like(const dsv3_backend *like, const dsv3_backend_config *cfg,
                            dsv3_backend *out, dsv3__err *err);
void dsv3__backend_close(dsv3_backend *be);

/* Backends compiled in. */
extern const dsv3_backend_ops dsv3__backend_cpu;
#if DSV3_HAVE_CUDA
extern const dsv3_backend_ops dsv3__backend_cuda;
#endif

#endif /* DSV3_BACKEND_H */
