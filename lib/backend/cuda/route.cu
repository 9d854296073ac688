/*
 * route.cu - ROUTE: router scores -> top-k experts and their weights, one
 * warp per token. Scores (sigmoid or softmax), optional bias for the
 * selection, group-limited selection (group score = max or sum of the top
 * two), then k rounds of a warp-wide "best untaken" under the same order as
 * the CPU op (larger first, lower index on ties, NaN last), so the choices
 * match the CPU op whenever the scores do.
 * SPDX-License-Identifier: MIT
 */
#include "common.cuh"

using namespace dsv3cu;

namespace dsv3cu {
struct RouteArgs {
    const float *logits, *bias;
    int32_t *idx;
    float *weight;
    int64_t ld;
    int32_t E, k, G, topk_group, scoring, groups, renorm;
    float scaling;
};

/* Group score of `per` consecutive choice scores (same code as the CPU). */
__device__ float group_score(const float *c, int32_t per, int32_t mode)
{
    float top1 = -INFINITY, top2 = -INFINITY;
    for (int32_t i = 0; i < per; i++) {
        if (c[i] > top1) {
            top2 = top1;
            top1 = c[i];
        } else if (c[i] > top2) {
            top2 = c[i];
        }
    }
    return mode == DSV3_GROUPS_TOP2 ? top1 + top2 : top1;
}

/* Scores s and choice scores c of token t into shared memory. */
__device__ void route_scores(const RouteArgs &a, int64_t t, float *s, float *c)
{
    int lane = threadIdx.x;
    const float *z = a.logits + t * a.ld;
    if (a.scoring == DSV3_ROUTE_SIGMOID) {
        for (int32_t e = lane; e < a.E; e += 32)
            s[e] = 1.0f / (1.0f + expf(-z[e]));
    } else {
        float mx = -INFINITY;
        for (int32_t e = lane; e < a.E; e += 32)
            mx = fmaxf(mx, z[e]);
#pragma unroll
        for (int o = 16; o > 0; o >>= 1)
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
        float sum = 0.0f;
        for (int32_t e = lane; e < a.E; e += 32) {
            s[e] = expf(z[e] - mx);
            sum += s[e];
        }
        sum = warp_sum(sum);
        for (int32_t e = lane; e < a.E; e += 32)
            s[e] /= sum;
    }
    for (int32_t e = lane; e < a.E; e += 32)
        c[e] = a.bias ? s[e] + a.bias[e] : s[e];
    __syncwarp();
}

/* Keep the topk_group best groups; set c to -inf elsewhere. */
__device__ void route_groups(const RouteArgs &a, float *c)
{
    int lane = threadIdx.x;
    int32_t per = a.E / a.G;
    float gs = lane < a.G ? group_score(c + lane * per, per, a.groups) : 0.0f;
    uint32_t keep = 0;
    for (int32_t r = 0; r < a.topk_group; r++) {
        float v = gs;
        int i = (lane < a.G && !((keep >> lane) & 1u)) ? lane : -1;
        warp_best(v, i);
        keep |= 1u << i;
    }
    __syncwarp();
    for (int32_t e = lane; e < a.E; e += 32)
        if (!((keep >> (e / per)) & 1u))
            c[e] = -INFINITY;
    __syncwarp();
}

/* Block = one warp = one token. Dynamic shared memory: s[E], c[E], taken[E]. */
__global__ void __launch_bounds__(32) k_route(RouteArgs a)
{
    DSV3_DYN_SHARED(float, sm);
    float *s = sm, *c = sm + a.E;
    unsigned char *taken = (unsigned char *)(c + a.E);
    int lane = threadIdx.x;
    int64_t t = blockIdx.x;
    route_scores(a, t, s, c);
    if (a.groups != DSV3_GROUPS_NONE && a.G > 1 && a.topk_group < a.G)
        route_groups(a, c);
    for (int32_t e = lane; e < a.E; e += 32)
        taken[e] = 0;
    __syncwarp();
    int32_t *idx = a.idx + t * a.k;
    float *w = a.weight + t * a.k;
    for (int32_t j = 0; j < a.k; j++) {
        float v = 0.0f;
        int i = -1;
        for (int32_t e = lane; e < a.E; e += 32)
            if (!taken[e] && beats(c[e], e, v, i)) {
                v = c[e];
                i = e;
            }
        warp_best(v, i);
        if (lane == 0) {
            taken[i] = 1;
            idx[j] = i;
            w[j] = s[i]; /* the unbiased score */
        }
        __syncwarp();
    }
    if (lane == 0) {
        float sum = 0.0f;
        for (int32_t j = 0; j < a.k; j++)
            sum += w[j];
        for (int32_t j = 0; j < a.k; j++) {
            if (a.renorm)
                w[j] /= sum;
            w[j] *= a.scaling;
        }
    }
}

} /* namespace dsv3cu */

extern "C" int dsv3__cuda_route(dsv3_cuda_exec *x, const dsv3_op_route_args *a)
{
    if (a->T < 0 || a->n_experts <= 0 || a->k <= 0 || a->k > a->n_experts || a->ld < a->n_experts)
        return DSV3_E_INVAL;
    if (a->scoring != DSV3_ROUTE_SIGMOID && a->scoring != DSV3_ROUTE_SOFTMAX)
        return DSV3_E_INVAL;
    int grouped = a->groups != DSV3_GROUPS_NONE && a->n_group > 1;
    if (grouped && (a->n_experts % a->n_group || a->topk_group < 1 ||
                    a->topk_group * (a->n_experts / a->n_group) < a->k))
        return DSV3_E_INVAL;
    if (a->T == 0)
        return DSV3_OK;
    if (!a->logits || !a->idx || !a->weight)
        return DSV3_E_INVAL;
    if (a->n_experts > 4096 || (grouped && a->topk_group < a->n_group && a->n_group > 32) ||
        a->T > INT32_MAX)
        return fail(x, DSV3_E_UNSUPPORTED, "route: more than 4096 experts or 32 groups");
    RouteArgs r = {a->logits,
                   a->bias,
                   a->idx,
                   a->weight,
                   a->ld,
                   (int32_t)a->n_experts,
                   (int32_t)a->k,
                   grouped ? (int32_t)a->n_group : 1,
                   (int32_t)a->topk_group,
                   a->scoring,
                   a->groups,
                   a->renorm,
                   a->scaling};
    size_t smem = (size_t)a->n_experts * (2 * sizeof(float) + 1);
    DSV3_LAUNCH((k_route), (unsigned)a->T, 32, smem, x->stream, r);
    return dsv3__cuda_check(x, "route");
}
