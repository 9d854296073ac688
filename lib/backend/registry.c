/*
 * registry.c - the table of compiled-in backends, probing, dtype helpers.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <string.h>

#include "backend.h"

static const dsv3_backend_ops *const all_backends[] = {
#if DSV3_HAVE_CUDA
    &dsv3__backend_cuda,
#endif
    &dsv3__backend_cpu,
};

#define N_BACKENDS DSV3__ARRAY_LEN(all_backends)

/* Probe results, computed once per process (immutable afterwards). */
static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static int probe_rc[N_BACKENDS];
static dsv3_backend_caps probe_caps[N_BACKENDS];

static void probe_all(void)
{
    for (size_t i = 0; i < N_BACKENDS; i++) {
        memset(&probe_caps[i], 0, sizeof probe_caps[i]);
        probe_caps[i].struct_size = sizeof probe_caps[i];
        probe_rc[i] = all_backends[i]->probe(&probe_caps[i]);
    }
}

int dsv3__backend_get(int32_t id, const dsv3_backend_ops **out)
{
    pthread_once(&probe_once, probe_all);
    const dsv3_backend_ops *best = NULL;
    int32_t best_score = 0;
    for (size_t i = 0; i < N_BACKENDS; i++) {
        const dsv3_backend_ops *b = all_backends[i];
        if (probe_rc[i] != DSV3_OK)
            continue;
        if (id != DSV3_BACKEND_AUTO && b->id != id)
            continue;
        /* AUTO only picks a backend that can run the forward pass (one that
         * supports some weight type). */
        if (id == DSV3_BACKEND_AUTO && probe_caps[i].dtypes == 0)
            continue;
        /* AUTO prefers a GPU backend over the CPU. */
        int32_t score = probe_caps[i].score + (id == DSV3_BACKEND_AUTO && b->id != DSV3_BACKEND_CPU ? 1000000 : 0);
        if (!best || score > best_score) {
            best = b;
            best_score = score;
        }
    }
    *out = best;
    return best ? DSV3_OK : DSV3_E_NODEV;
}

int dsv3__backend_open(int32_t id, const dsv3_backend_config *cfg, dsv3_backend *out,
                       dsv3__err *err)
{
    memset(out, 0, sizeof *out);
    const dsv3_backend_ops *ops;
    if (dsv3__backend_get(id, &ops) != DSV3_OK) {
        const char *name = dsv3_backend_name(id);
        return dsv3__seterr(err, DSV3_E_NODEV, "backend %s is not available%s",
                            name ? name : "(unknown id)",
                            id == DSV3_BACKEND_CUDA ? " (not compiled in, or no CUDA device)" : "");
    }
    if (ops->api_version != DSV3_BACKEND_API_VERSION)
        return dsv3__seterr(err, DSV3_E_VERSION, "backend %s has API version %u, expected %u",
                            ops->name, ops->api_version, DSV3_BACKEND_API_VERSION);
    out->caps.struct_size = sizeof out->caps;
    int rc = ops->probe(&out->caps);
    if (rc == DSV3_OK)
        rc = ops->init(cfg, &out->state);
    if (rc != DSV3_OK)
        return dsv3__seterr(err, rc, "backend %s failed to start: %s", ops->name,
                            dsv3_strerror(rc));
    out->ops = ops;
    return DSV3_OK;
}

int dsv3__backend_open_like(const dsv3_backend *like, const dsv3_backend_config *cfg,
                            dsv3_backend *out, dsv3__err *err)
{
    memset(out, 0, sizeof *out);
    if (!like || !like->ops)
        return dsv3__seterr(err, DSV3_E_INVAL, "no backend to open another instance of");
    const dsv3_backend_ops *ops = like->ops;
    out->caps.struct_size = sizeof out->caps;
    int rc = ops->probe(&out->caps);
    if (rc == DSV3_OK)
        rc = ops->init(cfg, &out->state);
    if (rc != DSV3_OK)
        return dsv3__seterr(err, rc, "backend %s: cannot open another instance: %s", ops->name,
                            dsv3_strerror(rc));
    out->ops = ops;
    return DSV3_OK;
}

void dsv3__backend_close(dsv3_backend *be)
{
    if (be && be->ops) {
        be->ops->fini(be->state);
        be->ops = NULL;
        be->state = NULL;
    }
}

const char *dsv3_backend_name(int32_t backend)
{
    switch (backend) {
    case DSV3_BACKEND_AUTO:
        return "auto";
    case DSV3_BACKEND_CPU:
        return "cpu";
    case DSV3_BACKEND_CUDA:
        return "cuda";
    default:
        return NULL;
    }
}

int dsv3_backend_available(int32_t backend)
{
    const dsv3_backend_ops *ops;
    if (backend == DSV3_BACKEND_AUTO)
        return 1; /* the CPU backend is always there */
    return dsv3__backend_get(backend, &ops) == DSV3_OK;
}

size_t dsv3__dtype_row_bytes(int32_t dtype, int64_t n)
{
    if (n < 0)
        return 0;
    switch (dtype) {
    case DSV3_DTYPE_F32:
        return (size_t)n * 4;
    case DSV3_DTYPE_F16:
    case DSV3_DTYPE_BF16:
        return (size_t)n * 2;
    case DSV3_DTYPE_FP8_E4M3:
        return (size_t)n;
    case DSV3_DTYPE_Q8_0: /* 32 int8 + one f16 scale */
        return n % 32 ? 0 : (size_t)(n / 32) * 34;
    case DSV3_DTYPE_Q4: /* 32 4-bit values + one f16 scale */
        return n % 32 ? 0 : (size_t)(n / 32) * 18;
    default:
        return 0;
    }
}

const char *dsv3__dtype_name(int32_t dtype)
{
    switch (dtype) {
    case DSV3_DTYPE_F32:
        return "f32";
    case DSV3_DTYPE_F16:
        return "f16";
    case DSV3_DTYPE_BF16:
        return "bf16";
    case DSV3_DTYPE_FP8_E4M3:
        return "fp8";
    case DSV3_DTYPE_Q8_0:
        return "q8_0";
    case DSV3_DTYPE_Q4:
        return "q4";
    default:
        return "?";
    }
}

int64_t dsv3__tensor_nelem(const dsv3_tensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++)
        n *= t->ne[i];
    return n;
}
