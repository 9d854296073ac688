/*
 * cuda.c - the CUDA backend's vtable: device probing, one stream per
 * instance, device buffers, op dispatch to the kernels (one .cu file per op
 * family, see cuda_ops.h) and the instance's scratch memory.
 *
 * Instances and streams: every init() creates its own CUDA stream, and the
 * ops of an instance run on it in call order. Device memory belongs to the
 * process (one CUDA context per device), so memory allocated through one
 * instance can be used by ops of any other instance of the same device:
 * the model's instance holds the weights, and each dsv3_context opens its
 * own instance (its own stream) for its computation. buf_write and
 * buf_read run on the instance's stream and return when the copy is done,
 * so they also wait for the ops queued before them; sync() waits for the
 * stream. An instance is used by one thread at a time for ops (its scratch
 * is shared by its ops); buf_write may be called from several threads.
 *
 * The CUDA runtime is linked statically and loads the driver on first use,
 * so probing on a machine without a driver or device just reports
 * DSV3_E_NODEV.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda_ops.h"

typedef struct cuda_state {
    dsv3__alloc alloc;
    dsv3__log log;
    int device;
    int sync_each;     /* DSV3_CUDA_SYNC set: wait after every op (debugging) */
    dsv3_cuda_exec x;  /* stream, device facts, last failure */
    void *scratch;     /* device scratch shared by the instance's ops */
    size_t scratch_size;
} cuda_state;

/* Log a failed CUDA call and clear the (non-sticky) error state. */
static int cuda_fail(cuda_state *s, cudaError_t e, int rc, const char *what)
{
    cudaGetLastError();
    if (s)
        dsv3__logf(&s->log, DSV3_LOG_ERROR, "cuda: %s: %s", what, cudaGetErrorString(e));
    return rc;
}

static int cuda_enter(cuda_state *s)
{
    cudaError_t e = cudaSetDevice(s->device);
    return e == cudaSuccess ? DSV3_OK : cuda_fail(s, e, DSV3_E_BACKEND, "cudaSetDevice");
}

/* ---- probing, instances -------------------------------------------------------- */

/* Can this build run on compute capability major.minor? It holds code for
 * each of DSV3_CUDA_ARCHS (a cubin runs on its major version with an equal
 * or higher minor) and PTX of the last one (compiled at run time on any
 * newer device). */
static int arch_ok(int major, int minor)
{
    const char *p = DSV3_CUDA_ARCHS;
    long last = 0;
    int ok = 0;
    while (*p) {
        char *end;
        long a = strtol(p, &end, 10);
        if (end == p)
            break;
        if (a / 10 == major && a % 10 <= minor)
            ok = 1;
        last = a;
        p = end;
        while (*p && *p != ',')
            p++;
        if (*p == ',')
            p++;
    }
    return ok || (last > 0 && last <= major * 10 + minor);
}

static int cuda_probe(dsv3_backend_caps *caps)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        cudaGetLastError();
        return DSV3_E_NODEV;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess) {
        cudaGetLastError();
        return DSV3_E_NODEV;
    }
    if (!arch_ok(prop.major, prop.minor))
        return DSV3_E_NODEV; /* no code for this GPU in the build */
    caps->flags = DSV3_CAP_ASYNC;
    caps->dtypes = (1u << DSV3_DTYPE_F32) | (1u << DSV3_DTYPE_F16) | (1u << DSV3_DTYPE_BF16) |
                   (1u << DSV3_DTYPE_FP8_E4M3);
    caps->score = 10;
    caps->mem_total = prop.totalGlobalMem;
    caps->mem_free = 0; /* would need a CUDA context; reported by init's log */
    snprintf(caps->desc, sizeof caps->desc, "cuda %.60s (sm_%d%d)%s", prop.name, prop.major,
             prop.minor, n > 1 ? " +more" : "");
    return DSV3_OK;
}

static int cuda_open_device(cuda_state *s)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return cuda_fail(s, e, DSV3_E_NODEV, "cudaGetDeviceCount");
    if (s->device < 0 || s->device >= n) {
        dsv3__logf(&s->log, DSV3_LOG_ERROR, "cuda: no device %d (%d present)", s->device, n);
        return DSV3_E_NODEV;
    }
    if ((e = cudaSetDevice(s->device)) != cudaSuccess)
        return cuda_fail(s, e, DSV3_E_NODEV, "cudaSetDevice");
    int sm = 0;
    if ((e = cudaDeviceGetAttribute(&sm, cudaDevAttrMultiProcessorCount, s->device)) != cudaSuccess)
        return cuda_fail(s, e, DSV3_E_NODEV, "cudaDeviceGetAttribute");
    s->x.n_sm = sm;
    char msg[128];
    if (dsv3__cuda_kernels_ok(msg, sizeof msg) != DSV3_OK) {
        dsv3__logf(&s->log, DSV3_LOG_ERROR,
                   "cuda: device %d cannot run this build's kernels (%s); rebuild with its "
                   "architecture in -Dgpu_archs",
                   s->device, msg);
        return DSV3_E_NODEV;
    }
    if ((e = cudaStreamCreateWithFlags(&s->x.stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cuda_fail(s, e, DSV3_E_BACKEND, "cudaStreamCreate");
    size_t fr = 0, tot = 0;
    if (cudaMemGetInfo(&fr, &tot) == cudaSuccess)
        dsv3__logf(&s->log, DSV3_LOG_INFO, "cuda: device %d, %d SMs, %zu of %zu MiB free",
                   s->device, sm, fr >> 20, tot >> 20);
    cudaGetLastError();
    return DSV3_OK;
}

static int cuda_init(const dsv3_backend_config *cfg, void **state)
{
    dsv3__alloc a;
    if (cfg->alloc)
        a = *cfg->alloc;
    else
        dsv3__alloc_init(&a, NULL);
    cuda_state *s = dsv3__calloc(&a, 1, sizeof *s);
    if (!s)
        return DSV3_E_NOMEM;
    s->alloc = a;
    if (cfg->log)
        s->log = *cfg->log;
    s->device = cfg->device;
    s->x.state = s;
    const char *env = getenv("DSV3_CUDA_SYNC");
    s->sync_each = env && *env && strcmp(env, "0") != 0;
    int rc = cuda_open_device(s);
    if (rc) {
        dsv3__free(&a, s);
        return rc;
    }
    *state = s;
    return DSV3_OK;
}

static void cuda_fini(void *state)
{
    cuda_state *s = state;
    if (!s)
        return;
    if (cudaSetDevice(s->device) == cudaSuccess) {
        cudaStreamSynchronize(s->x.stream);
        if (s->scratch)
            cudaFree(s->scratch);
        cudaStreamDestroy(s->x.stream);
    }
    cudaGetLastError();
    dsv3__alloc a = s->alloc;
    dsv3__free(&a, s);
}

/* ---- buffers -------------------------------------------------------------------- */

static int cuda_buf_alloc(void *state, size_t size, uint32_t usage, dsv3_buf **out)
{
    cuda_state *s = state;
    int rc = cuda_enter(s);
    if (rc)
        return rc;
    dsv3_buf *b = dsv3__calloc(&s->alloc, 1, sizeof *b);
    if (!b)
        return DSV3_E_NOMEM;
    cudaError_t e = cudaMalloc(&b->base, size ? size : 1);
    if (e != cudaSuccess) {
        dsv3__free(&s->alloc, b);
        cudaGetLastError();
        dsv3__logf(&s->log, DSV3_LOG_ERROR, "cuda: cannot allocate %zu bytes on device %d: %s",
                   size, s->device, cudaGetErrorString(e));
        return e == cudaErrorMemoryAllocation ? DSV3_E_NOMEM : DSV3_E_BACKEND;
    }
    b->size = size;
    b->usage = usage;
    *out = b;
    return DSV3_OK;
}

static void cuda_buf_free(void *state, dsv3_buf *buf)
{
    cuda_state *s = state;
    if (!buf)
        return;
    cudaError_t e = cudaSetDevice(s->device);
    if (e == cudaSuccess)
        e = cudaFree(buf->base); /* waits for work still using it */
    if (e != cudaSuccess)
        cuda_fail(s, e, DSV3_E_BACKEND, "cudaFree");
    dsv3__free(&s->alloc, buf);
}

static int cuda_copy(cuda_state *s, void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                     const char *what)
{
    int rc = cuda_enter(s);
    if (rc || n == 0)
        return rc;
    cudaError_t e = cudaMemcpyAsync(dst, src, n, k, s->x.stream);
    if (e == cudaSuccess)
        e = cudaStreamSynchronize(s->x.stream);
    return e == cudaSuccess ? DSV3_OK : cuda_fail(s, e, DSV3_E_BACKEND, what);
}

static int cuda_buf_write(void *state, dsv3_buf *dst, size_t off, const void *src, size_t n)
{
    if (off > dst->size || n > dst->size - off)
        return DSV3_E_RANGE;
    return cuda_copy(state, (char *)dst->base + off, src, n, cudaMemcpyHostToDevice,
                     "buf_write");
}

static int cuda_buf_read(void *state, const dsv3_buf *src, size_t off, void *dst, size_t n)
{
    if (off > src->size || n > src->size - off)
        return DSV3_E_RANGE;
    return cuda_copy(state, dst, (const char *)src->base + off, n, cudaMemcpyDeviceToHost,
                     "buf_read");
}

/* ---- scratch and launch checks (used by the .cu launchers) -------------------------- */

int dsv3__cuda_scratch(dsv3_cuda_exec *x, size_t bytes, void **out)
{
    cuda_state *s = x->state;
    *out = NULL;
    if (bytes <= s->scratch_size && s->scratch) {
        *out = s->scratch;
        return DSV3_OK;
    }
    size_t want = bytes + bytes / 4;
    want = (want + ((size_t)1 << 20) - 1) & ~(((size_t)1 << 20) - 1);
    cudaError_t e = cudaSuccess;
    if (s->scratch) { /* the queued ops may still use the old block */
        e = cudaStreamSynchronize(x->stream);
        if (e == cudaSuccess)
            e = cudaFree(s->scratch);
        s->scratch = NULL;
        s->scratch_size = 0;
        if (e != cudaSuccess) {
            cudaGetLastError();
            snprintf(x->msg, sizeof x->msg, "releasing scratch: %s", cudaGetErrorString(e));
            return DSV3_E_BACKEND;
        }
    }
    e = cudaMalloc(&s->scratch, want);
    if (e != cudaSuccess) {
        cudaGetLastError();
        s->scratch = NULL;
        snprintf(x->msg, sizeof x->msg, "cannot allocate %zu bytes of scratch: %s", want,
                 cudaGetErrorString(e));
        return e == cudaErrorMemoryAllocation ? DSV3_E_NOMEM : DSV3_E_BACKEND;
    }
    s->scratch_size = want;
    *out = s->scratch;
    return DSV3_OK;
}

int dsv3__cuda_check(dsv3_cuda_exec *x, const char *what)
{
    cudaError_t e = cudaGetLastError();
    if (e == cudaSuccess)
        return DSV3_OK;
    snprintf(x->msg, sizeof x->msg, "%s: %s", what, cudaGetErrorString(e));
    return DSV3_E_BACKEND;
}

int dsv3__cuda_wmat(const dsv3_tensor *w, int64_t expert, dsv3_cuda_wmat *o)
{
    if (!w || !w->data)
        return DSV3_E_INVAL;
    switch (w->dtype) {
    case DSV3_DTYPE_F32:
    case DSV3_DTYPE_F16:
    case DSV3_DTYPE_BF16:
        break;
    case DSV3_DTYPE_FP8_E4M3:
        if (!w->scale)
            return DSV3_E_INVAL;
        break;
    default:
        return DSV3_E_UNSUPPORTED;
    }
    int64_t n_exp = 1, M, K;
    if (w->n_dims == 1) {
        M = 1;
        K = w->ne[0];
    } else if (w->n_dims == 2) {
        M = w->ne[0];
        K = w->ne[1];
    } else if (w->n_dims == 3) {
        n_exp = w->ne[0];
        M = w->ne[1];
        K = w->ne[2];
    } else {
        return DSV3_E_INVAL;
    }
    if (expert < 0 || expert >= n_exp || M <= 0 || K <= 0 || n_exp > INT32_MAX)
        return DSV3_E_INVAL;
    int64_t sm = (M + DSV3_FP8_BLOCK - 1) / DSV3_FP8_BLOCK;
    int64_t sk = (K + DSV3_FP8_BLOCK - 1) / DSV3_FP8_BLOCK;
    o->data = w->data;
    o->scale = w->dtype == DSV3_DTYPE_FP8_E4M3 ? w->scale + expert * sm * sk : NULL;
    o->row0 = expert * M;
    o->M = M;
    o->K = K;
    o->sk = sk;
    o->dtype = w->dtype;
    o->n_experts = (int32_t)n_exp;
    return DSV3_OK;
}

/* ---- ops -------------------------------------------------------------------------- */

static int cuda_supports(void *state, int32_t op, int32_t dtype)
{
    (void)state;
    switch (op) {
    case DSV3_OP_EMBED:
    case DSV3_OP_MATMUL:
    case DSV3_OP_DEQUANT:
    case DSV3_OP_MOE:
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_F16 || dtype == DSV3_DTYPE_BF16 ||
               dtype == DSV3_DTYPE_FP8_E4M3;
    case DSV3_OP_COPY:
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_BF16 || dtype == DSV3_DTYPE_F16;
    case DSV3_OP_MLA_ATTN:
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_BF16;
    case DSV3_OP_RMSNORM:
    case DSV3_OP_ROPE:
    case DSV3_OP_MHA:
    case DSV3_OP_ROUTE:
    case DSV3_OP_SWIGLU:
    case DSV3_OP_ADD:
    case DSV3_OP_ARGMAX:
        return dtype == DSV3_DTYPE_F32 || dtype == DSV3_DTYPE_DEFAULT;
    default:
        return 0;
    }
}

static int dispatch(dsv3_cuda_exec *x, int32_t op, const void *args)
{
    switch (op) {
    case DSV3_OP_EMBED:
        return dsv3__cuda_embed(x, args);
    case DSV3_OP_RMSNORM:
        return dsv3__cuda_rmsnorm(x, args);
    case DSV3_OP_MATMUL:
        return dsv3__cuda_matmul(x, args);
    case DSV3_OP_DEQUANT:
        return dsv3__cuda_dequant(x, args);
    case DSV3_OP_COPY:
        return dsv3__cuda_copy(x, args);
    case DSV3_OP_ROPE:
        return dsv3__cuda_rope(x, args);
    case DSV3_OP_MLA_ATTN:
        return dsv3__cuda_mla_attn(x, args);
    case DSV3_OP_MHA:
        return dsv3__cuda_mha(x, args);
    case DSV3_OP_ROUTE:
        return dsv3__cuda_route(x, args);
    case DSV3_OP_MOE:
        return dsv3__cuda_moe(x, args);
    case DSV3_OP_SWIGLU:
        return dsv3__cuda_swiglu(x, args);
    case DSV3_OP_ADD:
        return dsv3__cuda_add(x, args);
    case DSV3_OP_ARGMAX:
        return dsv3__cuda_argmax(x, args);
    default:
        return DSV3_E_UNSUPPORTED;
    }
}

static int cuda_run_op(void *state, const dsv3_op_job *job)
{
    cuda_state *s = state;
    if (!job || !job->args)
        return DSV3_E_INVAL;
    int rc = cuda_enter(s);
    if (rc)
        return rc;
    s->x.msg[0] = '\0';
    rc = dispatch(&s->x, job->op, job->args);
    if (rc == DSV3_OK && s->sync_each) {
        cudaError_t e = cudaStreamSynchronize(s->x.stream);
        if (e != cudaSuccess) {
            cudaGetLastError();
            snprintf(s->x.msg, sizeof s->x.msg, "after the op: %s", cudaGetErrorString(e));
            rc = DSV3_E_BACKEND;
        }
    }
    if (rc && s->x.msg[0])
        dsv3__logf(&s->log, DSV3_LOG_ERROR, "cuda: op %d: %s", (int)job->op, s->x.msg);
    return rc;
}

static int cuda_sync(void *state)
{
    cuda_state *s = state;
    int rc = cuda_enter(s);
    if (rc)
        return rc;
    cudaError_t e = cudaStreamSynchronize(s->x.stream);
    return e == cudaSuccess ? DSV3_OK : cuda_fail(s, e, DSV3_E_BACKEND, "sync");
}

const dsv3_backend_ops dsv3__backend_cuda = {
    .struct_size = sizeof(dsv3_backend_ops),
    .api_version = DSV3_BACKEND_API_VERSION,
    .id = DSV3_BACKEND_CUDA,
    .name = "cuda",
    .probe = cuda_probe,
    .init = cuda_init,
    .fini = cuda_fini,
    .buf_alloc = cuda_buf_alloc,
    .buf_free = cuda_buf_free,
    .buf_from_host = NULL,
    .buf_write = cuda_buf_write,
    .buf_read = cuda_buf_read,
    .supports = cuda_supports,
    .run_op = cuda_run_op,
    .run_layer = NULL,
    .sync = cuda_sync,
    .set_threads = NULL,
};
