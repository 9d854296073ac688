/*
 * ops.c - the CPU backend's scalar ops: dispatch, work split, weight
 * decoding, matmul and the element-wise ops. Plain, readable C: this is the
 * oracle every faster kernel (SIMD, CUDA) is checked against.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <pthread.h>
#include <string.h>

#include "cpu.h"

/* ---- work split ----------------------------------------------------------- */

#define MAX_WORKERS 256

typedef struct range_job {
    dsv3_cpu_range_fn fn;
    void *arg;
    int worker;
    int64_t i0, i1;
} range_job;

static void *range_main(void *p)
{
    range_job *j = p;
    j->fn(j->arg, j->worker, j->i0, j->i1);
    return NULL;
}

void dsv3__cpu_parallel(int workers, int64_t n, dsv3_cpu_range_fn fn, void *arg)
{
    if (n <= 0)
        return;
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;
    if (workers > n)
        workers = (int)n;
    if (workers <= 1) {
        fn(arg, 0, 0, n);
        return;
    }
    range_job jobs[MAX_WORKERS];
    pthread_t tids[MAX_WORKERS];
    int started[MAX_WORKERS];
    for (int w = 0; w < workers; w++) {
        jobs[w] = (range_job){fn, arg, w, n * w / workers, n * (w + 1) / workers};
        started[w] = 0;
    }
    for (int w = 1; w < workers; w++)
        started[w] = pthread_create(&tids[w], NULL, range_main, &jobs[w]) == 0;
    fn(arg, 0, jobs[0].i0, jobs[0].i1);
    for (int w = 1; w < workers; w++) {
        if (started[w])
            pthread_join(tids[w], NULL);
        else /* no thread: do the range here (same result) */
            fn(arg, w, jobs[w].i0, jobs[w].i1);
    }
}

int dsv3__cpu_workers(int n_threads, int64_t n, double cost)
{
    /* Starting a thread costs roughly 20k scalar operations' time. */
    double total = (double)n * cost;
    int w = (int)(total / 200000.0);
    if (w > n_threads)
        w = n_threads;
    if (w > MAX_WORKERS)
        w = MAX_WORKERS;
    return w < 1 ? 1 : w;
}

/* ---- weights ---------------------------------------------------------------- */

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

int dsv3__cpu_weight_dims(const dsv3_tensor *w, int64_t expert, int64_t *M, int64_t *K)
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
    int64_t n_exp;
    if (w->n_dims == 1) { /* a vector is a 1 x K matrix */
        n_exp = 1;
        *M = 1;
        *K = w->ne[0];
    } else if (w->n_dims == 2) {
        n_exp = 1;
        *M = w->ne[0];
        *K = w->ne[1];
    } else if (w->n_dims == 3) {
        n_exp = w->ne[0];
        *M = w->ne[1];
        *K = w->ne[2];
    } else {
        return DSV3_E_INVAL;
    }
    if (expert < 0 || expert >= n_exp || *M <= 0 || *K <= 0)
        return DSV3_E_INVAL;
    return DSV3_OK;
}

void dsv3__cpu_weight_row(const dsv3_tensor *w, int64_t expert, int64_t m, int64_t M, int64_t K,
                          float *out)
{
    int64_t row = expert * M + m; /* row index within the whole stack */
    switch (w->dtype) {
    case DSV3_DTYPE_F32:
        memcpy(out, (const float *)w->data + row * K, (size_t)K * sizeof(float));
        break;
    case DSV3_DTYPE_BF16: {
        const uint16_t *p = (const uint16_t *)w->data + row * K;
        for (int64_t k = 0; k < K; k++)
            out[k] = dsv3__bf16_to_f32(p[k]);
        break;
    }
    case DSV3_DTYPE_F16: {
        const uint16_t *p = (const uint16_t *)w->data + row * K;
        for (int64_t k = 0; k < K; k++)
            out[k] = dsv3__f16_to_f32(p[k]);
        break;
    }
    case DSV3_DTYPE_FP8_E4M3: {
        /* scale grid per expert: [ceil(M/128), ceil(K/128)] */
        const uint8_t *p = (const uint8_t *)w->data + row * K;
        int64_t sk = ceil_div(K, DSV3_FP8_BLOCK), sm = ceil_div(M, DSV3_FP8_BLOCK);
        const float *srow = w->scale + expert * sm * sk + (m / DSV3_FP8_BLOCK) * sk;
        for (int64_t k = 0; k < K; k++)
            out[k] = dsv3__fp8_e4m3_table[p[k]] * srow[k / DSV3_FP8_BLOCK];
        break;
    }
    default:
        memset(out, 0, (size_t)K * sizeof(float));
        break;
    }
}

/* ---- matmul --------------------------------------------------------------- */

typedef struct matmul_work {
    const dsv3_op_matmul_args *a;
    int64_t M, K;
    float *rows; /* [workers][K] decoded weight row per worker */
} matmul_work;

static void matmul_range(void *arg, int worker, int64_t m0, int64_t m1)
{
    matmul_work *mw = arg;
    const dsv3_op_matmul_args *a = mw->a;
    float *wrow = mw->rows + (size_t)worker * (size_t)mw->K;
    for (int64_t m = m0; m < m1; m++) {
        dsv3__cpu_weight_row(a->w, a->expert, m, mw->M, mw->K, wrow);
        for (int64_t t = 0; t < a->T; t++) {
            const float *x = a->x + t * a->ldx;
            float acc = 0.0f;
            for (int64_t k = 0; k < mw->K; k++)
                acc += x[k] * wrow[k];
            float *y = a->y + t * a->ldy + m;
            *y = a->accumulate ? *y + acc : acc;
        }
    }
}

int dsv3__cpu_matmul(dsv3_cpu_state *s, int n_threads, const dsv3_op_matmul_args *a)
{
    matmul_work mw = {.a = a};
    int rc = dsv3__cpu_weight_dims(a->w, a->expert, &mw.M, &mw.K);
    if (rc)
        return rc;
    int workers = dsv3__cpu_workers(n_threads, mw.M, (double)mw.K * (double)(a->T + 1));
    mw.rows = dsv3__malloc(&s->alloc, (size_t)workers * (size_t)mw.K * sizeof(float));
    if (!mw.rows)
        return DSV3_E_NOMEM;
    dsv3__cpu_parallel(workers, mw.M, matmul_range, &mw);
    dsv3__free(&s->alloc, mw.rows);
    return DSV3_OK;
}

static int op_matmul(dsv3_cpu_state *s, int n_threads, const dsv3_op_matmul_args *a)
{
    int64_t M, K;
    int rc = dsv3__cpu_weight_dims(a->w, a->expert, &M, &K);
    if (rc)
        return rc;
    if (a->T < 0 || (a->T > 0 && (!a->x || !a->y || a->ldx < K || a->ldy < M)))
        return DSV3_E_INVAL;
    return a->T ? dsv3__cpu_matmul(s, n_threads, a) : DSV3_OK;
}

static int op_dequant(const dsv3_op_dequant_args *a)
{
    int64_t M, K;
    int rc = dsv3__cpu_weight_dims(a->w, a->expert, &M, &K);
    if (rc)
        return rc;
    if (!a->y || a->row0 < 0 || a->rows < 0 || a->row0 + a->rows > M)
        return DSV3_E_INVAL;
    for (int64_t r = 0; r < a->rows; r++)
        dsv3__cpu_weight_row(a->w, a->expert, a->row0 + r, M, K, a->y + r * K);
    return DSV3_OK;
}

static int op_embed(const dsv3_op_embed_args *a)
{
    int64_t V, d;
    int rc = dsv3__cpu_weight_dims(a->table, 0, &V, &d);
    if (rc)
        return rc;
    if (a->n < 0 || (a->n > 0 && (!a->tokens || !a->out || a->ld_out < d)))
        return DSV3_E_INVAL;
    for (int64_t t = 0; t < a->n; t++)
        if (a->tokens[t] < 0 || a->tokens[t] >= V)
            return DSV3_E_RANGE;
    for (int64_t t = 0; t < a->n; t++)
        dsv3__cpu_weight_row(a->table, 0, a->tokens[t], V, d, a->out + t * a->ld_out);
    return DSV3_OK;
}

/* ---- element-wise ops ------------------------------------------------------ */

static int op_rmsnorm(const dsv3_op_rmsnorm_args *a)
{
    if (a->rows < 0 || a->n <= 0 || !a->x || !a->y || !a->weight || a->ldx < a->n ||
        a->ldy < a->n)
        return DSV3_E_INVAL;
    for (int64_t r = 0; r < a->rows; r++) {
        const float *x = a->x + r * a->ldx;
        float *y = a->y + r * a->ldy;
        float ss = 0.0f;
        for (int64_t i = 0; i < a->n; i++)
            ss += x[i] * x[i];
        float inv = 1.0f / sqrtf(ss / (float)a->n + a->eps);
        for (int64_t i = 0; i < a->n; i++)
            y[i] = a->weight[i] * (x[i] * inv);
    }
    return DSV3_OK;
}

static int elem_size(int32_t dtype)
{
    switch (dtype) {
    case DSV3_DTYPE_F32:
        return 4;
    case DSV3_DTYPE_BF16:
    case DSV3_DTYPE_F16:
        return 2;
    default:
        return 0;
    }
}

static float load_elem(const void *p, int32_t dtype, int64_t i)
{
    switch (dtype) {
    case DSV3_DTYPE_BF16:
        return dsv3__bf16_to_f32(((const uint16_t *)p)[i]);
    case DSV3_DTYPE_F16:
        return dsv3__f16_to_f32(((const uint16_t *)p)[i]);
    default:
        return ((const float *)p)[i];
    }
}

static void store_elem(void *p, int32_t dtype, int64_t i, float v)
{
    switch (dtype) {
    case DSV3_DTYPE_BF16:
        ((uint16_t *)p)[i] = dsv3__f32_to_bf16(v);
        break;
    case DSV3_DTYPE_F16:
        ((uint16_t *)p)[i] = dsv3__f32_to_f16(v);
        break;
    default:
        ((float *)p)[i] = v;
        break;
    }
}

static int op_copy(const dsv3_op_copy_args *a)
{
    int ss = elem_size(a->src_dtype), ds = elem_size(a->dst_dtype);
    if (!ss || !ds)
        return DSV3_E_UNSUPPORTED;
    if (a->rows < 0 || a->cols < 0 || a->ld_src < a->cols || a->ld_dst < a->cols)
        return DSV3_E_INVAL;
    if (a->rows > 0 && a->cols > 0 && (!a->src || !a->dst))
        return DSV3_E_INVAL;
    for (int64_t r = 0; r < a->rows; r++) {
        const char *src = (const char *)a->src + (size_t)(r * a->ld_src) * (size_t)ss;
        char *dst = (char *)a->dst + (size_t)(r * a->ld_dst) * (size_t)ds;
        if (a->src_dtype == a->dst_dtype) {
            memmove(dst, src, (size_t)a->cols * (size_t)ss);
            continue;
        }
        for (int64_t c = 0; c < a->cols; c++)
            store_elem(dst, a->dst_dtype, c, load_elem(src, a->src_dtype, c));
    }
    return DSV3_OK;
}

static int op_rope(const dsv3_op_rope_args *a)
{
    if (a->T < 0 || a->dim <= 0 || a->dim % 2 || a->n_heads < 0 || a->pos0 < 0 || !a->x ||
        !a->freqs || a->offset < 0)
        return DSV3_E_INVAL;
    if (a->n_heads > 0 && a->offset + (a->n_heads - 1) * a->head_stride + a->dim > a->ldx)
        return DSV3_E_INVAL;
    for (int64_t t = 0; t < a->T; t++) {
        double pos = (double)(a->pos0 + t);
        for (int64_t i = 0; i < a->dim / 2; i++) {
            double phi = pos * (double)a->freqs[i];
            float c = (float)cos(phi) * a->scale, sn = (float)sin(phi) * a->scale;
            for (int64_t h = 0; h < a->n_heads; h++) {
                float *v = a->x + t * a->ldx + a->offset + h * a->head_stride + 2 * i;
                float x0 = v[0], x1 = v[1];
                v[0] = x0 * c - x1 * sn;
                v[1] = x0 * sn + x1 * c;
            }
        }
    }
    return DSV3_OK;
}

static int op_swiglu(const dsv3_op_swiglu_args *a)
{
    if (a->n < 0 || (a->n > 0 && (!a->g || !a->u || !a->y)))
        return DSV3_E_INVAL;
    for (int64_t i = 0; i < a->n; i++) {
        float g = a->g[i];
        a->y[i] = g / (1.0f + expf(-g)) * a->u[i];
    }
    return DSV3_OK;
}

static int op_add(const dsv3_op_add_args *a)
{
    if (a->n < 0 || (a->n > 0 && (!a->a || !a->b || !a->y)))
        return DSV3_E_INVAL;
    for (int64_t i = 0; i < a->n; i++)
        a->y[i] = a->a[i] + a->b[i];
    return DSV3_OK;
}

static int op_argmax(const dsv3_op_argmax_args *a)
{
    if (a->rows < 0 || a->n <= 0 || a->ld < a->n || (a->rows > 0 && (!a->x || !a->out)))
        return DSV3_E_INVAL;
    for (int64_t r = 0; r < a->rows; r++) {
        const float *x = a->x + r * a->ld;
        int64_t best = 0;
        for (int64_t i = 1; i < a->n; i++)
            if (x[i] > x[best] || (isnan(x[best]) && !isnan(x[i])))
                best = i;
        a->out[r] = (int32_t)best;
    }
    return DSV3_OK;
}

/* ---- dispatch --------------------------------------------------------------- */

int dsv3__cpu_run_op(dsv3_cpu_state *s, const dsv3_op_job *job)
{
    if (!job || !job->args)
        return DSV3_E_INVAL;
    int nt = job->n_threads > 0 ? job->n_threads : s->n_threads;
    if (nt < 1)
        nt = 1;
    switch (job->op) {
    case DSV3_OP_EMBED:
        return op_embed(job->args);
    case DSV3_OP_RMSNORM:
        return op_rmsnorm(job->args);
    case DSV3_OP_MATMUL:
        return op_matmul(s, nt, job->args);
    case DSV3_OP_DEQUANT:
        return op_dequant(job->args);
    case DSV3_OP_COPY:
        return op_copy(job->args);
    case DSV3_OP_ROPE:
        return op_rope(job->args);
    case DSV3_OP_MLA_ATTN:
        return dsv3__cpu_mla_attn(s, nt, job->args);
    case DSV3_OP_MHA:
        return dsv3__cpu_mha(s, nt, job->args);
    case DSV3_OP_ROUTE:
        return dsv3__cpu_route(s, job->args);
    case DSV3_OP_MOE:
        return dsv3__cpu_moe(s, nt, job->args);
    case DSV3_OP_SWIGLU:
        return op_swiglu(job->args);
    case DSV3_OP_ADD:
        return op_add(job->args);
    case DSV3_OP_ARGMAX:
        return op_argmax(job->args);
    default:
        return DSV3_E_UNSUPPORTED;
    }
}
