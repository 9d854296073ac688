/*
 * ops_attn.c - scalar MLA attention: the absorbed form over the latent cache
 * and the naive form over decompressed keys and values.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

/* Softmax of s[0 .. n) in place (F32, max subtracted). */
static void softmax_inplace(float *s, int64_t n)
{
    float mx = s[0];
    for (int64_t j = 1; j < n; j++)
        if (s[j] > mx)
            mx = s[j];
    float sum = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        s[j] = expf(s[j] - mx);
        sum += s[j];
    }
    float inv = 1.0f / sum;
    for (int64_t j = 0; j < n; j++)
        s[j] *= inv;
}

static float dot(const float *a, const float *b, int64_t n)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n; i++)
        acc += a[i] * b[i];
    return acc;
}

/* ---- absorbed form -------------------------------------------------------- */

typedef struct mla_work {
    const dsv3_op_mla_attn_args *a;
    int64_t n_kv;    /* keys the last query sees */
    int64_t scratch; /* floats per worker */
    float *buf;
} mla_work;

/* Cache row j as F32 into out[0 .. r_kv + d_r). */
static void cache_row(const dsv3_op_mla_attn_args *a, int64_t j, float *out)
{
    int64_t n = a->kv_rank + a->d_rope;
    if (a->cache_dtype == DSV3_DTYPE_BF16) {
        const uint16_t *p = (const uint16_t *)a->cache + j * a->ld_cache;
        for (int64_t i = 0; i < n; i++)
            out[i] = dsv3__bf16_to_f32(p[i]);
    } else {
        memcpy(out, (const float *)a->cache + j * a->ld_cache, (size_t)n * sizeof(float));
    }
}

/* One (query row, head) pair; item = t * n_heads + h. */
static void mla_item(const mla_work *mw, float *scr, int64_t item)
{
    const dsv3_op_mla_attn_args *a = mw->a;
    int64_t t = item / a->n_heads, h = item % a->n_heads;
    int64_t r = a->kv_rank, dq = a->d_nope + a->d_rope;
    float *qhat = scr;               /* [r] */
    float *ctx = qhat + r;           /* [r] */
    float *row = ctx + r;            /* [r + d_r] */
    float *sc = row + r + a->d_rope; /* [n_kv] */
    const float *qn = a->q + t * a->ldq + h * dq, *qr = qn + a->d_nope;
    const float *wh = a->wkv_b + h * (a->d_nope + a->d_v) * r;

    /* qhat = W_UK^T q_n, summed over the key rows in order */
    memset(qhat, 0, (size_t)r * sizeof(float));
    for (int64_t i = 0; i < a->d_nope; i++)
        for (int64_t c = 0; c < r; c++)
            qhat[c] += qn[i] * wh[i * r + c];

    int64_t n = a->pos0 + t + 1; /* causal: keys 0 ... pos0 + t */
    for (int64_t j = 0; j < n; j++) {
        cache_row(a, j, row);
        sc[j] = a->scale * (dot(qhat, row, r) + dot(qr, row + r, a->d_rope));
    }
    softmax_inplace(sc, n);

    memset(ctx, 0, (size_t)r * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
        cache_row(a, j, row);
        for (int64_t c = 0; c < r; c++)
            ctx[c] += sc[j] * row[c];
    }
    float *out = a->out + t * a->ld_out + h * a->d_v;
    for (int64_t i = 0; i < a->d_v; i++)
        out[i] = dot(wh + (a->d_nope + i) * r, ctx, r);
}

static void mla_range(void *arg, int worker, int64_t i0, int64_t i1)
{
    mla_work *mw = arg;
    float *scr = mw->buf + (size_t)worker * (size_t)mw->scratch;
    for (int64_t i = i0; i < i1; i++)
        mla_item(mw, scr, i);
}

int dsv3__cpu_mla_attn(dsv3_cpu_state *s, int n_threads, const dsv3_op_mla_attn_args *a)
{
    if (a->T < 0 || a->pos0 < 0 || a->n_heads <= 0 || a->d_nope <= 0 || a->d_rope < 0 ||
        a->d_v <= 0 || a->kv_rank <= 0)
        return DSV3_E_INVAL;
    if (a->cache_dtype != DSV3_DTYPE_F32 && a->cache_dtype != DSV3_DTYPE_BF16)
        return DSV3_E_UNSUPPORTED;
    if (a->T == 0)
        return DSV3_OK;
    if (!a->q || !a->cache || !a->wkv_b || !a->out ||
        a->ldq < a->n_heads * (a->d_nope + a->d_rope) || a->ld_cache < a->kv_rank + a->d_rope ||
        a->ld_out < a->n_heads * a->d_v)
        return DSV3_E_INVAL;
    mla_work mw = {.a = a, .n_kv = a->pos0 + a->T};
    mw.scratch = 3 * a->kv_rank + a->d_rope + mw.n_kv;
    int64_t items = a->T * a->n_heads;
    double cost = (double)mw.n_kv * (double)(2 * a->kv_rank + a->d_rope) +
                  (double)a->kv_rank * (double)(a->d_nope + a->d_v);
    int workers = dsv3__cpu_workers(n_threads, items, cost);
    mw.buf = dsv3__malloc(&s->alloc, (size_t)workers * (size_t)mw.scratch * sizeof(float));
    if (!mw.buf)
        return DSV3_E_NOMEM;
    dsv3__cpu_parallel(workers, items, mla_range, &mw);
    dsv3__free(&s->alloc, mw.buf);
    return DSV3_OK;
}

/* ---- naive form --------------------------------------------------------------- */

typedef struct mha_work {
    const dsv3_op_mha_args *a;
    int64_t n_kv;
    float *buf; /* [workers][n_kv] scores */
} mha_work;

static void mha_item(const mha_work *mw, float *sc, int64_t item)
{
    const dsv3_op_mha_args *a = mw->a;
    int64_t t = item / a->n_heads, h = item % a->n_heads;
    int64_t dq = a->d_nope + a->d_rope, dkv = a->d_nope + a->d_v;
    const float *qn = a->q + t * a->ldq + h * dq, *qr = qn + a->d_nope;
    int64_t n = a->pos0 + t + 1;
    for (int64_t j = 0; j < n; j++) {
        const float *kn = a->kv + j * a->ld_kv + h * dkv;
        const float *kr = a->k_rope + j * a->ld_kr;
        sc[j] = a->scale * (dot(qn, kn, a->d_nope) + dot(qr, kr, a->d_rope));
    }
    softmax_inplace(sc, n);
    float *out = a->out + t * a->ld_out + h * a->d_v;
    memset(out, 0, (size_t)a->d_v * sizeof(float));
    for (int64_t j = 0; j < n; j++) {
        const float *v = a->kv + j * a->ld_kv + h * dkv + a->d_nope;
        for (int64_t i = 0; i < a->d_v; i++)
            out[i] += sc[j] * v[i];
    }
}

static void mha_range(void *arg, int worker, int64_t i0, int64_t i1)
{
    mha_work *mw = arg;
    float *sc = mw->buf + (size_t)worker * (size_t)mw->n_kv;
    for (int64_t i = i0; i < i1; i++)
        mha_item(mw, sc, i);
}

int dsv3__cpu_mha(dsv3_cpu_state *s, int n_threads, const dsv3_op_mha_args *a)
{
    if (a->T < 0 || a->pos0 < 0 || a->n_heads <= 0 || a->d_nope <= 0 || a->d_rope < 0 ||
        a->d_v <= 0)
        return DSV3_E_INVAL;
    if (a->T == 0)
        return DSV3_OK;
    if (!a->q || !a->kv || (a->d_rope && !a->k_rope) || !a->out ||
        a->ldq < a->n_heads * (a->d_nope + a->d_rope) ||
        a->ld_kv < a->n_heads * (a->d_nope + a->d_v) || a->ld_kr < a->d_rope ||
        a->ld_out < a->n_heads * a->d_v)
        return DSV3_E_INVAL;
    mha_work mw = {.a = a, .n_kv = a->pos0 + a->T};
    int64_t items = a->T * a->n_heads;
    double cost = (double)mw.n_kv * (double)(a->d_nope + a->d_rope + a->d_v);
    int workers = dsv3__cpu_workers(n_threads, items, cost);
    mw.buf = dsv3__malloc(&s->alloc, (size_t)workers * (size_t)mw.n_kv * sizeof(float));
    if (!mw.buf)
        return DSV3_E_NOMEM;
    dsv3__cpu_parallel(workers, items, mha_range, &mw);
    dsv3__free(&s->alloc, mw.buf);
    return DSV3_OK;
}
