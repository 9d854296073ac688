/*
 * cuda.c - the CUDA backend's vtable: device probing and device buffers.
 * Kernels live in one .cu file per op family.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include <cuda_runtime.h>

#include "../backend.h"

typedef struct cuda_state {
    dsv3__alloc alloc;
    dsv3__log log;
    int device;
} cuda_state;

static int cuda_probe(dsv3_backend_caps *caps)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess || n <= 0) {
        cudaGetLastError(); /* clear the sticky error */
        return DSV3_E_NODEV;
    }
    struct cudaDeviceProp prop;
    if (cudaGetDeviceProperties(&prop, 0) != cudaSuccess)
        return DSV3_E_NODEV;
    caps->flags = DSV3_CAP_ASYNC;
    caps->dtypes = 0; /* no ops yet */
    caps->score = 10;
    caps->mem_total = prop.totalGlobalMem;
    snprintf(caps->desc, sizeof caps->desc, "cuda %.60s (sm_%d%d)", prop.name, prop.major,
             prop.minor);
    return DSV3_OK;
}

static int cuda_init(const dsv3_backend_config *cfg, void **state)
{
    dsv3__alloc a;
    if (cfg->alloc)
        a = *cfg->alloc;
    else
        dsv3__alloc_init(&a, NULL);
    if (cudaSetDevice(cfg->device) != cudaSuccess)
        return DSV3_E_NODEV;
    cuda_state *s = dsv3__calloc(&a, 1, sizeof *s);
    if (!s)
        return DSV3_E_NOMEM;
    s->alloc = a;
    if (cfg->log)
        s->log = *cfg->log;
    s->device = cfg->device;
    *state = s;
    return DSV3_OK;
}

static void cuda_fini(void *state)
{
    cuda_state *s = state;
    if (!s)
        return;
    dsv3__alloc a = s->alloc;
    dsv3__free(&a, s);
}

static int cuda_buf_alloc(void *state, size_t size, uint32_t usage, dsv3_buf **out)
{
    cuda_state *s = state;
    dsv3_buf *b = dsv3__calloc(&s->alloc, 1, sizeof *b);
    if (!b)
        return DSV3_E_NOMEM;
    if (cudaMalloc(&b->base, size ? size : 1) != cudaSuccess) {
        dsv3__free(&s->alloc, b);
        return DSV3_E_NOMEM;
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
    cudaFree(buf->base);
    dsv3__free(&s->alloc, buf);
}

static int cuda_buf_write(void *state, dsv3_buf *dst, size_t off, const void *src, size_t n)
{
    (void)state;
    if (off > dst->size || n > dst->size - off)
        return DSV3_E_RANGE;
    return cudaMemcpy((char *)dst->base + off, src, n, cudaMemcpyHostToDevice) == cudaSuccess
               ? DSV3_OK
               : DSV3_E_BACKEND;
}

static int cuda_buf_read(void *state, const dsv3_buf *src, size_t off, void *dst, size_t n)
{
    (void)state;
    if (off > src->size || n > src->size - off)
        return DSV3_E_RANGE;
    return cudaMemcpy(dst, (const char *)src->base + off, n, cudaMemcpyDeviceToHost) == cudaSuccess
               ? DSV3_OK
               : DSV3_E_BACKEND;
}

static int cuda_supports(void *state, int32_t op, int32_t dtype)
{
    (void)state, (void)op, (void)dtype;
    return 0;
}

static int cuda_run_op(void *state, const dsv3_op_job *job)
{
    (void)state, (void)job;
    return DSV3_E_UNSUPPORTED;
}

static int cuda_sync(void *state)
{
    (void)state;
    return cudaDeviceSynchronize() == cudaSuccess ? DSV3_OK : DSV3_E_BACKEND;
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
