/*
 * moe.cu - MOE: the routed experts of one layer for T tokens, entirely on
 * the device and without a host round trip.
 *
 * Per chunk of up to MOE_CHUNK tokens:
 *  1. plan: count the (token, choice) entries per expert, an exclusive scan
 *     gives each expert a contiguous range of rows, and the list of experts
 *     that have rows (ascending); entries are scattered into their expert's
 *     range (the order inside a range is irrelevant: every row is computed
 *     independently of the others);
 *  2. gate and up projections of the gathered token rows, expert by expert
 *     (grid over the active experts only), then silu(g) * u;
 *  3. the down projection of those rows;
 *  4. combine: each token sums weight * output over its choices in
 *     ascending expert index, like the CPU op, so the sum has a fixed order.
 * SPDX-License-Identifier: MIT
 */
#include "gemm.cuh"

using namespace dsv3cu;

namespace dsv3cu {
#define MOE_CHUNK 256 /* tokens per pass (bounds the scratch) */
#define MOE_KMAX 64   /* experts per token */

/* ---- plan ----------------------------------------------------------------------- */

__global__ void k_moe_count(const int32_t *idx, int64_t n, int32_t E, int32_t *cnt)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int32_t e = idx[i];
        if (e >= 0 && e < E)
            atomicAdd(&cnt[e], 1); /* integer: the counts are exact */
    }
}

/* One warp: off = exclusive scan of cnt, cur = off, active = experts with
 * rows in ascending order, *n_active. */
__global__ void k_moe_scan(const int32_t *cnt, int32_t E, int32_t *off, int32_t *cur,
                           int32_t *active, int32_t *n_active)
{
    int lane = threadIdx.x;
    int32_t per = (E + 31) / 32, b = lane * per, end = min(E, b + per);
    int32_t s = 0, na = 0;
    for (int32_t e = b; e < end; e++) {
        s += cnt[e];
        na += cnt[e] > 0;
    }
    int32_t is = s, ina = na; /* inclusive scans over the lanes */
    for (int o = 1; o < 32; o <<= 1) {
        int32_t vs = __shfl_up_sync(0xffffffffu, is, o);
        int32_t vn = __shfl_up_sync(0xffffffffu, ina, o);
        if (lane >= o) {
            is += vs;
            ina += vn;
        }
    }
    int32_t pos = is - s, ap = ina - na;
    for (int32_t e = b; e < end; e++) {
        off[e] = pos;
        cur[e] = pos;
        if (cnt[e] > 0)
            active[ap++] = e;
        pos += cnt[e];
    }
    if (lane == 31) {
        off[E] = is;
        *n_active = ina;
    }
}

/* Entry i (token i / k) gets a row in its expert's range. */
__global__ void k_moe_fill(const int32_t *idx, int64_t n, int64_t k, int32_t E, int32_t *cur,
                           int32_t *rows, int32_t *slotpos)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        int32_t e = idx[i];
        int32_t p = -1;
        if (e >= 0 && e < E) {
            p = atomicAdd(&cur[e], 1);
            rows[p] = (int32_t)(i / k);
        }
        slotpos[i] = p;
    }
}

/* ---- grouped projections ---------------------------------------------------------- */

/* Common arguments: the stack's expert-0 view, scales per expert, the plan. */
struct Group {
    dsv3_cuda_wmat w;
    int64_t sgrid;  /* FP8 scales per expert */
    const float *x; /* activations */
    int64_t ldx;
    const int32_t *rows; /* gather: x row of list position p is rows[p]; NULL: p */
    const int32_t *off, *active, *n_active;
    float *y; /* output row p at y + p * ldy */
    int64_t ldy;
};

__device__ __forceinline__ bool group_expert(const Group &g, dsv3_cuda_wmat &we, int32_t &p0,
                                             int32_t &n)
{
    int slot = blockIdx.z;
    if (slot >= *g.n_active)
        return false;
    int32_t e = g.active[slot];
    we = g.w;
    we.row0 = (int64_t)e * g.w.M;
    if (g.w.dtype == DT_FP8)
        we.scale = g.w.scale + (int64_t)e * g.sgrid;
    p0 = g.off[e];
    n = g.off[e + 1] - p0;
    return true;
}

/* Warp per output column m of one expert; that expert's rows in passes of
 * GEMV_TMAX. grid (ceil(M / GEMV_WARPS), 1, slots). */
template <int DT, bool VEC>
__global__ void __launch_bounds__(256) k_moe_gemv(Group g)
{
    dsv3_cuda_wmat we;
    int32_t p0, n;
    if (!group_expert(g, we, p0, n))
        return;
    int64_t m = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5);
    if (m >= we.M)
        return;
    for (int32_t base = 0; base < n; base += GEMV_TMAX) {
        int nt = min(n - base, GEMV_TMAX);
        const float *xr[GEMV_TMAX];
        float acc[GEMV_TMAX];
#pragma unroll
        for (int t = 0; t < GEMV_TMAX; t++) {
            int64_t p = p0 + base + (t < nt ? t : 0);
            xr[t] = g.x + (g.rows ? (int64_t)g.rows[p] : p) * g.ldx;
            acc[t] = 0.0f;
        }
        gemv_rows<DT, VEC>(we, m, xr, nt, acc);
#pragma unroll
        for (int t = 0; t < GEMV_TMAX; t++) {
            if (t >= nt)
                break;
            float s = warp_sum(acc[t]);
            if ((threadIdx.x & 31) == 0)
                g.y[(int64_t)(p0 + base + t) * g.ldy + m] = s;
        }
    }
}

/* 64 x 64 tiles of one expert's rows. grid (ceil(M / 64), row tiles, slots);
 * a block walks row tiles blockIdx.y, blockIdx.y + gridDim.y, ... */
template <int DT>
__global__ void __launch_bounds__(TILE_THREADS) k_moe_gemm(Group g)
{
    __shared__ tile_smem xs, ws;
    dsv3_cuda_wmat we;
    int32_t p0, n;
    if (!group_expert(g, we, p0, n))
        return;
    int64_t m0 = (int64_t)blockIdx.x * TILE_M;
    int tx = threadIdx.x & 15, ty = threadIdx.x >> 4;
    for (int64_t t0 = (int64_t)blockIdx.y * TILE_T; t0 < n; t0 += (int64_t)gridDim.y * TILE_T) {
        float acc[4][4];
        if (g.rows)
            tile_loop<false>(XGather{g.x, g.ldx, g.rows + p0}, WTensor<DT>{we}, t0, m0, n, we.M,
                             we.K, xs, ws, acc);
        else
            tile_loop<false>(XRows{g.x + (int64_t)p0 * g.ldx, g.ldx}, WTensor<DT>{we}, t0, m0, n,
                             we.M, we.K, xs, ws, acc);
#pragma unroll
        for (int i = 0; i < 4; i++)
#pragma unroll
            for (int j = 0; j < 4; j++) {
                int64_t t = t0 + ty + 16 * i, m = m0 + tx + 16 * j;
                if (t < n && m < we.M)
                    g.y[(p0 + t) * g.ldy + m] = acc[i][j];
            }
    }
}

template <int DT>
static void launch_group(dsv3_cuda_exec *x, const Group &g, int64_t n_rows, unsigned slots)
{
    if (n_rows <= GEMV_TMAX) {
        dim3 grid((unsigned)ceil_div(g.w.M, GEMV_WARPS), 1, slots);
        bool vec = wmat_vec_ok(g.w) && rows_vec_ok(g.x, g.ldx);
        if (vec)
            DSV3_LAUNCH((k_moe_gemv<DT, true>), grid, 256, 0, x->stream, g);
        else
            DSV3_LAUNCH((k_moe_gemv<DT, false>), grid, 256, 0, x->stream, g);
    } else {
        dim3 grid((unsigned)ceil_div(g.w.M, TILE_M), (unsigned)ceil_div(n_rows, TILE_T), slots);
        DSV3_LAUNCH((k_moe_gemm<DT>), grid, TILE_THREADS, 0, x->stream, g);
    }
}

static void project(dsv3_cuda_exec *x, const Group &g, int64_t n_rows, unsigned slots)
{
    switch (g.w.dtype) {
    case DSV3_DTYPE_F32:
        launch_group<DT_F32>(x, g, n_rows, slots);
        break;
    case DSV3_DTYPE_F16:
        launch_group<DT_F16>(x, g, n_rows, slots);
        break;
    case DSV3_DTYPE_BF16:
        launch_group<DT_BF16>(x, g, n_rows, slots);
        break;
    default:
        launch_group<DT_FP8>(x, g, n_rows, slots);
        break;
    }
}

/* ---- activation and combine --------------------------------------------------------- */

__global__ void k_moe_swiglu(float *g, const float *u, int64_t n)
{
    int64_t step = (int64_t)gridDim.x * blockDim.x;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += step) {
        float v = g[i];
        g[i] = v / (1.0f + expf(-v)) * u[i];
    }
}

/* Block per token: y[t] = sum of weight * out over its choices, ascending
 * expert index (stable for repeated experts). */
__global__ void __launch_bounds__(256)
    k_moe_combine(const int32_t *idx, const float *wt, const int32_t *slotpos, int64_t k,
                  const float *o, int64_t d, float *y, int64_t ldy)
{
    __shared__ int32_t se[MOE_KMAX], sp[MOE_KMAX];
    __shared__ float sw[MOE_KMAX];
    __shared__ int ns;
    int64_t t = blockIdx.x;
    if (threadIdx.x == 0) {
        int c = 0;
        for (int64_t j = 0; j < k; j++) {
            int32_t p = slotpos[t * k + j];
            if (p < 0)
                continue;
            int32_t e = idx[t * k + j];
            float w = wt[t * k + j];
            int i = c++;
            while (i > 0 && se[i - 1] > e) { /* insertion sort by expert */
                se[i] = se[i - 1];
                sp[i] = sp[i - 1];
                sw[i] = sw[i - 1];
                i--;
            }
            se[i] = e;
            sp[i] = p;
            sw[i] = w;
        }
        ns = c;
    }
    __syncthreads();
    for (int64_t c = threadIdx.x; c < d; c += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < ns; j++)
            acc += sw[j] * o[(int64_t)sp[j] * d + c];
        y[t * ldy + c] = acc;
    }
}

/* ---- the op ---------------------------------------------------------------------- */

static size_t align256(size_t n)
{
    return (n + 255) & ~(size_t)255;
}

static int moe_check(const dsv3_op_moe_args *a, dsv3_cuda_wmat *wg, dsv3_cuda_wmat *wu,
                     dsv3_cuda_wmat *wd)
{
    if (!a->gate || !a->up || !a->down || a->gate->n_dims != 3 || a->up->n_dims != 3 ||
        a->down->n_dims != 3)
        return DSV3_E_INVAL;
    int rc = dsv3__cuda_wmat(a->gate, 0, wg);
    if (!rc)
        rc = dsv3__cuda_wmat(a->up, 0, wu);
    if (!rc)
        rc = dsv3__cuda_wmat(a->down, 0, wd);
    if (rc)
        return rc;
    if (wu->M != wg->M || wu->K != wg->K || wd->M != wg->K || wd->K != wg->M ||
        wu->n_experts != wg->n_experts || wd->n_experts != wg->n_experts)
        return DSV3_E_INVAL;
    if (a->T < 0 || a->k <= 0 ||
        (a->T > 0 && (!a->x || !a->idx || !a->weight || !a->y || a->ldx < wg->K || a->ldy < wg->K)))
        return DSV3_E_INVAL;
    return DSV3_OK;
}

static int64_t sgrid(const dsv3_cuda_wmat &w)
{
    return ceil_div(w.M, DSV3_FP8_BLOCK) * w.sk;
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_moe(dsv3_cuda_exec *x, const dsv3_op_moe_args *a)
{
    dsv3_cuda_wmat wg, wu, wd;
    int rc = moe_check(a, &wg, &wu, &wd);
    if (rc || a->T == 0)
        return rc;
    if (a->k > MOE_KMAX || wg.n_experts > 65535)
        return fail(x, DSV3_E_UNSUPPORTED, "moe: more than 64 experts per token or 65535 experts");
    int32_t E = wg.n_experts;
    int64_t d = wg.K, f = wg.M, k = a->k;
    int64_t tc_max = a->T < MOE_CHUNK ? a->T : MOE_CHUNK, ne_max = tc_max * k;
    size_t ints = align256((size_t)(4 * E + 2) * 4) + 2 * align256((size_t)ne_max * 4);
    size_t bytes =
        ints + 2 * align256((size_t)(ne_max * f) * 4) + align256((size_t)(ne_max * d) * 4);
    char *base;
    if ((rc = dsv3__cuda_scratch(x, bytes, (void **)&base)))
        return rc;
    int32_t *cnt = (int32_t *)base, *off = cnt + E, *cur = off + E + 1, *active = cur + E;
    int32_t *n_active = active + E;
    int32_t *rows = (int32_t *)(base + align256((size_t)(4 * E + 2) * 4));
    int32_t *slotpos = (int32_t *)((char *)rows + align256((size_t)ne_max * 4));
    float *hg = (float *)(base + ints),
          *hu = (float *)((char *)hg + align256((size_t)(ne_max * f) * 4));
    float *o = (float *)((char *)hu + align256((size_t)(ne_max * f) * 4));

    for (int64_t t0 = 0; t0 < a->T; t0 += MOE_CHUNK) {
        int64_t tc = a->T - t0 < MOE_CHUNK ? a->T - t0 : MOE_CHUNK, ne = tc * k;
        const int32_t *idx = a->idx + t0 * k;
        const float *wt = a->weight + t0 * k;
        unsigned slots = (unsigned)(ne < E ? ne : E);
        cudaError_t e = cudaMemsetAsync(cnt, 0, (size_t)E * 4, x->stream);
        if (e != cudaSuccess) {
            snprintf(x->msg, sizeof x->msg, "moe: %s", cudaGetErrorString(e));
            return DSV3_E_BACKEND;
        }
        DSV3_LAUNCH((k_moe_count), grid_for(ne, 256), 256, 0, x->stream, idx, ne, E, cnt);
        DSV3_LAUNCH((k_moe_scan), 1, 32, 0, x->stream, cnt, E, off, cur, active, n_active);
        DSV3_LAUNCH((k_moe_fill), grid_for(ne, 256), 256, 0, x->stream, idx, ne, k, E, cur, rows,
                    slotpos);
        /* an expert has at most tc rows when a token's choices are distinct
         * (the kernels still cover more) */
        Group g = {wg, sgrid(wg), a->x + t0 * a->ldx, a->ldx, rows, off, active, n_active, hg, f};
        project(x, g, tc, slots);
        g.w = wu;
        g.sgrid = sgrid(wu);
        g.y = hu;
        project(x, g, tc, slots);
        DSV3_LAUNCH((k_moe_swiglu), grid_for(ne * f, 256), 256, 0, x->stream, hg, hu, ne * f);
        g = Group{wd, sgrid(wd), hg, f, NULL, off, active, n_active, o, d};
        project(x, g, tc, slots);
        DSV3_LAUNCH((k_moe_combine), (unsigned)tc, 256, 0, x->stream, idx, wt, slotpos, k, o, d,
                    a->y + t0 * a->ldy, a->ldy);
        if ((rc = dsv3__cuda_check(x, "moe")))
            return rc;
    }
    return DSV3_OK;
}
