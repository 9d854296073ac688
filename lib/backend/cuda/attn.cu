/*
 * attn.cu - attention: MLA_ATTN (absorbed form over the latent cache) and
 * MHA (naive form over decompressed keys and values, for testing).
 *
 * MLA_ATTN for query rows in passes of MLA_TB:
 *  1. qhat[t][h] = W_UK(h)^T q_nope[t][h]          (tiled, per head)
 *  2. for each chunk of MLA_CJ cache rows, one warp per (chunk, MLA_HB
 *     heads, query row) runs an online softmax over the chunk's rows with
 *     key [qhat ; q_rope] . [c ; k_r] and value c, and stores its partial
 *     (max, sum, sum of weighted values);
 *  3. the partials of the chunks a row can see are merged in chunk order;
 *  4. out[t][h] = W_UV(h) ctx[t][h]                (tiled, per head)
 * Chunk boundaries are multiples of MLA_CJ whatever T and pos0 are, so a
 * query's result does not depend on the other rows of the call (one token
 * at a time gives the same numbers as a prefill).
 * SPDX-License-Identifier: MIT
 */
#include "gemm.cuh"

using namespace dsv3cu;

namespace dsv3cu {
#define MLA_NPL 18                          /* cache row values per lane: r_kv + d_rope <= 576 */
#define MLA_CPL 16                          /* latent values per lane: r_kv <= 512 */
#define MLA_HB 4                            /* heads per warp */
#define MLA_CJ 256                          /* cache rows per chunk */
#define MLA_TB 64                           /* query rows per projection pass */
#define MLA_PART_BUDGET ((int64_t)64 << 20) /* bytes of partials per pass */

struct MlaArgs {
    const float *q;
    const void *cache;
    const float *wkv_b;
    float *out;
    int64_t pos0, n_h, d_n, d_r, d_v, r, ldq, ld_cache, ld_out;
    float scale;
};

/* W(m, k) = w[k * ld + m]: a matrix stored transposed. */
struct WColumns {
    const float *w;
    int64_t ld;
    __device__ __forceinline__ float operator()(int64_t m, int64_t k) const
    {
        return w[k * ld + m];
    }
};

/* MODE 0: qhat[t][h][c] = sum_i q[tb0 + t][h][i] W_UK(h)[i][c].
 * MODE 1: out[tb0 + t][h][i] = sum_c W_UV(h)[i][c] ctx[t][h][c].
 * grid (ceil(M / 64), ceil(nb / 64), n_h). */
template <int MODE>
__global__ void __launch_bounds__(TILE_THREADS)
    k_mla_proj(MlaArgs a, const float *ctx, float *qhat, int64_t tb0, int64_t nb)
{
    __shared__ tile_smem xs, ws;
    int64_t h = blockIdx.z, m0 = (int64_t)blockIdx.x * TILE_M, t0 = (int64_t)blockIdx.y * TILE_T;
    int64_t dq = a.d_n + a.d_r;
    const float *wh = a.wkv_b + h * (a.d_n + a.d_v) * a.r;
    float acc[4][4];
    int64_t M;
    if constexpr (MODE == 0) {
        M = a.r;
        tile_loop<true>(XRows{a.q + tb0 * a.ldq + h * dq, a.ldq}, WColumns{wh, a.r}, t0, m0, nb, M,
                        a.d_n, xs, ws, acc);
    } else {
        M = a.d_v;
        tile_loop<false>(XRows{ctx + h * a.r, a.n_h * a.r}, XRows{wh + a.d_n * a.r, a.r}, t0, m0,
                         nb, M, a.r, xs, ws, acc);
    }
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) {
            int64_t t = t0 + ty + 16 * i, m = m0 + tx + 16 * j;
            if (t >= nb || m >= M)
                continue;
            if constexpr (MODE == 0)
                qhat[(t * a.n_h + h) * a.r + m] = acc[i][j];
            else
                a.out[(tb0 + t) * a.ld_out + h * a.d_v + m] = acc[i][j];
        }
}

/*
 * Partial attention of one chunk for MLA_HB heads of one query row.
 * grid (n_chunks, ceil(n_h / MLA_HB), rows of the sub-pass), one warp.
 * Query row t = tb0 + ts0 + blockIdx.z of the op; its qhat row is ts0 +
 * blockIdx.z of the pass. Partial p = [max, sum, ctx[r]] at
 * part + ((blockIdx.z * n_chunks + chunk) * n_h + h) * (r + 2).
 */
template <bool BF16>
__global__ void __launch_bounds__(32) k_mla_partial(MlaArgs a, const float *qhat, float *part,
                                                    int64_t tb0, int64_t ts0, int64_t n_chunks)
{
    int lane = threadIdx.x;
    int64_t chunk = blockIdx.x, hg = blockIdx.y, tt = ts0 + blockIdx.z, t = tb0 + tt;
    int64_t last = a.pos0 + t; /* causal: cache rows 0 ... last */
    int64_t j0 = chunk * MLA_CJ;
    if (j0 > last)
        return; /* never read */
    int64_t j1 = min(j0 + (int64_t)MLA_CJ, last + 1), width = a.r + a.d_r;
    float q[MLA_HB][MLA_NPL], ctx[MLA_HB][MLA_CPL], mx[MLA_HB], l[MLA_HB];
#pragma unroll
    for (int hh = 0; hh < MLA_HB; hh++) {
        int64_t h = hg * MLA_HB + hh;
#pragma unroll
        for (int i = 0; i < MLA_NPL; i++) {
            int64_t c = lane + 32 * i;
            float v = 0.0f;
            if (h < a.n_h && c < a.r)
                v = qhat[(tt * a.n_h + h) * a.r + c];
            else if (h < a.n_h && c < width)
                v = a.q[t * a.ldq + h * (a.d_n + a.d_r) + a.d_n + (c - a.r)];
            q[hh][i] = v;
        }
#pragma unroll
        for (int i = 0; i < MLA_CPL; i++)
            ctx[hh][i] = 0.0f;
        mx[hh] = -INFINITY;
        l[hh] = 0.0f;
    }
    for (int64_t j = j0; j < j1; j++) {
        float row[MLA_NPL];
#pragma unroll
        for (int i = 0; i < MLA_NPL; i++) {
            int64_t c = lane + 32 * i;
            row[i] = c < width ? elem_load < BF16 ? DT_BF16 : DT_F32 > (a.cache, j * a.ld_cache + c)
                               : 0.0f;
        }
#pragma unroll
        for (int hh = 0; hh < MLA_HB; hh++) {
            float d = 0.0f;
#pragma unroll
            for (int i = 0; i < MLA_NPL; i++)
                d += q[hh][i] * row[i];
            float s = a.scale * warp_sum(d); /* the same in every lane */
            float corr, p;
            if (s > mx[hh]) {
                corr = expf(mx[hh] - s);
                p = 1.0f;
                mx[hh] = s;
            } else {
                corr = 1.0f;
                p = expf(s - mx[hh]);
            }
            l[hh] = l[hh] * corr + p;
#pragma unroll
            for (int i = 0; i < MLA_CPL; i++) {
                float v = lane + 32 * i < a.r ? row[i] : 0.0f;
                ctx[hh][i] = ctx[hh][i] * corr + p * v;
            }
        }
    }
#pragma unroll
    for (int hh = 0; hh < MLA_HB; hh++) {
        int64_t h = hg * MLA_HB + hh;
        if (h >= a.n_h)
            break;
        float *p = part + (((int64_t)blockIdx.z * n_chunks + chunk) * a.n_h + h) * (a.r + 2);
        if (lane == 0) {
            p[0] = mx[hh];
            p[1] = l[hh];
        }
#pragma unroll
        for (int i = 0; i < MLA_CPL; i++)
            if (lane + 32 * i < a.r)
                p[2 + lane + 32 * i] = ctx[hh][i];
    }
}

/* Merge a row's partials in chunk order: ctx[tt][h] = sum_c e^(m_c - M)
 * ctx_c / sum_c e^(m_c - M) l_c. grid (n_h, rows of the sub-pass), 128
 * threads, dynamic shared memory n_chunks floats. */
__global__ void __launch_bounds__(128) k_mla_merge(MlaArgs a, const float *part, float *ctx,
                                                   int64_t tb0, int64_t ts0, int64_t n_chunks)
{
    DSV3_DYN_SHARED(float, wts);
    __shared__ float red[4];
    int64_t h = blockIdx.x, tt = ts0 + blockIdx.y, t = tb0 + tt;
    int64_t nc = (a.pos0 + t) / MLA_CJ + 1, stride = a.n_h * (a.r + 2);
    const float *p0 = part + ((int64_t)blockIdx.y * n_chunks * a.n_h + h) * (a.r + 2);
    int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    float m = -INFINITY;
    for (int64_t c = tid; c < nc; c += 128)
        m = fmaxf(m, p0[c * stride]);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1)
        m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
    if (lane == 0)
        red[warp] = m;
    __syncthreads();
    m = fmaxf(fmaxf(red[0], red[1]), fmaxf(red[2], red[3]));
    __syncthreads();
    float l = 0.0f;
    for (int64_t c = tid; c < nc; c += 128) {
        float w = expf(p0[c * stride] - m);
        wts[c] = w;
        l += w * p0[c * stride + 1];
    }
    l = warp_sum(l);
    if (lane == 0)
        red[warp] = l;
    __syncthreads();
    float inv = 1.0f / (((red[0] + red[1]) + red[2]) + red[3]);
    float *out = ctx + (tt * a.n_h + h) * a.r;
    for (int64_t k = tid; k < a.r; k += 128) {
        float acc = 0.0f;
        for (int64_t c = 0; c < nc; c++)
            acc += wts[c] * p0[c * stride + 2 + k];
        out[k] = acc * inv;
    }
}

static int mla_check(const dsv3_op_mla_attn_args *a)
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
    return DSV3_OK;
}

/* Rows [tb0, tb0 + nb): partial attention and merge into ctx, in sub-passes
 * sized by the partials budget. */
static void mla_core(dsv3_cuda_exec *x, const MlaArgs &m, bool bf16, const float *qhat, float *part,
                     float *ctx, int64_t tb0, int64_t nb, int64_t n_chunks, int64_t ns)
{
    for (int64_t ts0 = 0; ts0 < nb; ts0 += ns) {
        int64_t rows = nb - ts0 < ns ? nb - ts0 : ns;
        dim3 grid((unsigned)n_chunks, (unsigned)ceil_div(m.n_h, MLA_HB), (unsigned)rows);
        if (bf16)
            DSV3_LAUNCH((k_mla_partial<true>), grid, 32, 0, x->stream, m, qhat, part, tb0, ts0,
                        n_chunks);
        else
            DSV3_LAUNCH((k_mla_partial<false>), grid, 32, 0, x->stream, m, qhat, part, tb0, ts0,
                        n_chunks);
        dim3 mg((unsigned)m.n_h, (unsigned)rows);
        DSV3_LAUNCH((k_mla_merge), mg, 128, (size_t)n_chunks * sizeof(float), x->stream, m, part,
                    ctx, tb0, ts0, n_chunks);
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_mla_attn(dsv3_cuda_exec *x, const dsv3_op_mla_attn_args *a)
{
    int rc = mla_check(a);
    if (rc || a->T == 0)
        return rc;
    if (a->kv_rank > 32 * MLA_CPL || a->kv_rank + a->d_rope > 32 * MLA_NPL)
        return fail(x, DSV3_E_UNSUPPORTED,
                    "mla_attn: kv_rank + d_rope above 576 or kv_rank above 512");
    MlaArgs m = {a->q,      a->cache, a->wkv_b,   a->out, a->pos0,     a->n_heads, a->d_nope,
                 a->d_rope, a->d_v,   a->kv_rank, a->ldq, a->ld_cache, a->ld_out,  a->scale};
    int64_t n_chunks = ceil_div(a->pos0 + a->T, MLA_CJ);
    int64_t tb = a->T < MLA_TB ? a->T : MLA_TB;
    int64_t row_part = n_chunks * a->n_heads * (a->kv_rank + 2) * 4;
    int64_t ns = MLA_PART_BUDGET / row_part;
    ns = ns < 1 ? 1 : ns > tb ? tb : ns;
    if (n_chunks > INT32_MAX || n_chunks * 4 > 160 * 1024)
        return fail(x, DSV3_E_UNSUPPORTED, "mla_attn: context too long");
    size_t plane = (size_t)(tb * a->n_heads * a->kv_rank) * 4;
    char *base;
    if ((rc = dsv3__cuda_scratch(x, 2 * plane + (size_t)(ns * row_part), (void **)&base)))
        return rc;
    float *qhat = (float *)base, *ctx = (float *)(base + plane),
          *part = (float *)(base + 2 * plane);
    if (n_chunks * 4 > 48 * 1024) {
        cudaError_t e = cudaFuncSetAttribute(
            k_mla_merge, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)(n_chunks * 4));
        if (e != cudaSuccess)
            return fail(x, DSV3_E_BACKEND, cudaGetErrorString(e));
    }
    for (int64_t tb0 = 0; tb0 < a->T; tb0 += tb) {
        int64_t nb = a->T - tb0 < tb ? a->T - tb0 : tb;
        dim3 g1((unsigned)ceil_div(a->kv_rank, TILE_M), (unsigned)ceil_div(nb, TILE_T),
                (unsigned)a->n_heads);
        DSV3_LAUNCH((k_mla_proj<0>), g1, TILE_THREADS, 0, x->stream, m, nullptr, qhat, tb0, nb);
        mla_core(x, m, a->cache_dtype == DSV3_DTYPE_BF16, qhat, part, ctx, tb0, nb, n_chunks, ns);
        dim3 g3((unsigned)ceil_div(a->d_v, TILE_M), (unsigned)ceil_div(nb, TILE_T),
                (unsigned)a->n_heads);
        DSV3_LAUNCH((k_mla_proj<1>), g3, TILE_THREADS, 0, x->stream, m, ctx, nullptr, tb0, nb);
        if ((rc = dsv3__cuda_check(x, "mla_attn")))
            return rc;
    }
    return DSV3_OK;
}

/* ---- MHA (naive) ------------------------------------------------------------------- */

namespace dsv3cu {
#define MHA_NPL 8 /* values per lane: d_nope + d_rope <= 256, d_v <= 256 */

/* One warp per (head, query row), online softmax over its keys. */
__global__ void __launch_bounds__(32) k_mha(dsv3_op_mha_args a)
{
    int lane = threadIdx.x;
    int64_t h = blockIdx.x, t = blockIdx.y, dq = a.d_nope + a.d_rope, dkv = a.d_nope + a.d_v;
    float q[MHA_NPL], acc[MHA_NPL], mx = -INFINITY, l = 0.0f;
#pragma unroll
    for (int i = 0; i < MHA_NPL; i++) {
        int64_t c = lane + 32 * i;
        q[i] = c < dq ? a.q[t * a.ldq + h * dq + c] : 0.0f;
        acc[i] = 0.0f;
    }
    int64_t n = a.pos0 + t + 1;
    for (int64_t j = 0; j < n; j++) {
        const float *kn = a.kv + j * a.ld_kv + h * dkv;
        float d = 0.0f;
#pragma unroll
        for (int i = 0; i < MHA_NPL; i++) {
            int64_t c = lane + 32 * i;
            float kv = c < a.d_nope ? kn[c]
                       : c < dq     ? a.k_rope[j * a.ld_kr + (c - a.d_nope)]
                                    : 0.0f;
            d += q[i] * kv;
        }
        float s = a.scale * warp_sum(d), corr, p;
        if (s > mx) {
            corr = expf(mx - s);
            p = 1.0f;
            mx = s;
        } else {
            corr = 1.0f;
            p = expf(s - mx);
        }
        l = l * corr + p;
#pragma unroll
        for (int i = 0; i < MHA_NPL; i++) {
            int64_t c = lane + 32 * i;
            float v = c < a.d_v ? kn[a.d_nope + c] : 0.0f;
            acc[i] = acc[i] * corr + p * v;
        }
    }
    float inv = 1.0f / l;
#pragma unroll
    for (int i = 0; i < MHA_NPL; i++) {
        int64_t c = lane + 32 * i;
        if (c < a.d_v)
            a.out[t * a.ld_out + h * a.d_v + c] = acc[i] * inv;
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_mha(dsv3_cuda_exec *x, const dsv3_op_mha_args *a)
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
    if (a->d_nope + a->d_rope > 32 * MHA_NPL || a->d_v > 32 * MHA_NPL || a->T > 65535 ||
        a->n_heads > INT32_MAX)
        return fail(x, DSV3_E_UNSUPPORTED, "mha: head dims above 256 or more than 65535 rows");
    dim3 grid((unsigned)a->n_heads, (unsigned)a->T);
    DSV3_LAUNCH((k_mha), grid, 32, 0, x->stream, *a);
    return dsv3__cuda_check(x, "mha");
}
