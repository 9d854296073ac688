/*
 * ops_moe.c - scalar router (sigmoid + bias + group-limited top-k, softmax,
 * greedy) and the routed-expert FFN.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <string.h>

#include "cpu.h"

/* ---- router ----------------------------------------------------------------- */

/* Index of the largest v[i] not yet taken (lowest index on ties; -inf and NaN
 * entries are still taken when nothing better is left). */
static int64_t pick_max(const float *v, const unsigned char *taken, int64_t n)
{
    int64_t best = -1;
    for (int64_t i = 0; i < n; i++) {
        if (taken[i])
            continue;
        if (best < 0 || v[i] > v[best] || (isnan(v[best]) && !isnan(v[i])))
            best = i;
    }
    return best;
}

/* Group score of `per` consecutive choice scores. */
static float group_score(const float *c, int64_t per, int32_t mode)
{
    float top1 = -INFINITY, top2 = -INFINITY;
    for (int64_t i = 0; i < per; i++) {
        if (c[i] > top1) {
            top2 = top1;
            top1 = c[i];
        } else if (c[i] > top2) {
            top2 = c[i];
        }
    }
    return mode == DSV3_GROUPS_TOP2 ? top1 + top2 : top1;
}

typedef struct route_scratch {
    float *s, *c, *gs;
    unsigned char *taken, *gkeep;
} route_scratch;

static void route_token(const dsv3_op_route_args *a, const route_scratch *r, int64_t t)
{
    int64_t E = a->n_experts;
    const float *z = a->logits + t * a->ld;
    float *s = r->s, *c = r->c;
    if (a->scoring == DSV3_ROUTE_SIGMOID) {
        for (int64_t e = 0; e < E; e++)
            s[e] = 1.0f / (1.0f + expf(-z[e]));
    } else {
        float mx = z[0], sum = 0.0f;
        for (int64_t e = 1; e < E; e++)
            mx = z[e] > mx ? z[e] : mx;
        for (int64_t e = 0; e < E; e++) {
            s[e] = expf(z[e] - mx);
            sum += s[e];
        }
        for (int64_t e = 0; e < E; e++)
            s[e] /= sum;
    }
    for (int64_t e = 0; e < E; e++)
        c[e] = a->bias ? s[e] + a->bias[e] : s[e];

    if (a->groups != DSV3_GROUPS_NONE && a->n_group > 1 && a->topk_group < a->n_group) {
        int64_t G = a->n_group, per = E / G;
        for (int64_t g = 0; g < G; g++) {
            r->gs[g] = group_score(c + g * per, per, a->groups);
            r->gkeep[g] = 0;
        }
        for (int64_t i = 0; i < a->topk_group; i++) {
            int64_t g = pick_max(r->gs, r->gkeep, G);
            r->gkeep[g] = 1;
        }
        for (int64_t g = 0; g < G; g++)
            if (!r->gkeep[g])
                for (int64_t i = 0; i < per; i++)
                    c[g * per + i] = -INFINITY;
    }

    memset(r->taken, 0, (size_t)E);
    int32_t *idx = a->idx + t * a->k;
    float *w = a->weight + t * a->k;
    float sum = 0.0f;
    for (int64_t j = 0; j < a->k; j++) {
        int64_t e = pick_max(c, r->taken, E);
        r->taken[e] = 1;
        idx[j] = (int32_t)e;
        w[j] = s[e]; /* the unbiased score */
        sum += s[e];
    }
    for (int64_t j = 0; j < a->k; j++) {
        if (a->renorm)
            w[j] /= sum;
        w[j] *= a->scaling;
    }
}

int dsv3__cpu_route(dsv3_cpu_state *s, const dsv3_op_route_args *a)
{
    if (a->T < 0 || a->n_experts <= 0 || a->k <= 0 || a->k > a->n_experts ||
        a->ld < a->n_experts)
        return DSV3_E_INVAL;
    if (a->scoring != DSV3_ROUTE_SIGMOID && a->scoring != DSV3_ROUTE_SOFTMAX)
        return DSV3_E_INVAL;
    if (a->groups != DSV3_GROUPS_NONE && a->n_group > 1 &&
        (a->n_experts % a->n_group || a->topk_group < 1 ||
         a->topk_group * (a->n_experts / a->n_group) < a->k))
        return DSV3_E_INVAL;
    if (a->T == 0)
        return DSV3_OK;
    if (!a->logits || !a->idx || !a->weight)
        return DSV3_E_INVAL;
    int64_t E = a->n_experts, G = a->n_group > 0 ? a->n_group : 1;
    size_t nf = (size_t)(2 * E + G);
    float *buf = dsv3__malloc(&s->alloc, nf * sizeof(float) + (size_t)(E + G));
    if (!buf)
        return DSV3_E_NOMEM;
    route_scratch r = {.s = buf, .c = buf + E, .gs = buf + 2 * E};
    r.taken = (unsigned char *)(buf + nf);
    r.gkeep = r.taken + E;
    for (int64_t t = 0; t < a->T; t++)
        route_token(a, &r, t);
    dsv3__free(&s->alloc, buf);
    return DSV3_OK;
}

/* ---- routed experts ----------------------------------------------------------- */

typedef struct moe_buf {
    float *x, *g, *u, *o; /* [T][d], [T][f], [T][f], [T][d] */
    int64_t *tok;         /* [T] tokens routed to the current expert */
    float *w;             /* [T] their weights */
} moe_buf;

/* Run expert e on the n gathered tokens and add weight * output to y. */
static int moe_expert(dsv3_cpu_state *s, int nt, const dsv3_op_moe_args *a, const moe_buf *b,
                      int64_t e, int64_t n, int64_t d, int64_t f)
{
    for (int64_t i = 0; i < n; i++)
        memcpy(b->x + i * d, a->x + b->tok[i] * a->ldx, (size_t)d * sizeof(float));
    dsv3_op_matmul_args mg = {.w = a->gate, .expert = e, .x = b->x, .y = b->g, .T = n, .ldx = d,
                              .ldy = f};
    dsv3_op_matmul_args mu = mg;
    mu.w = a->up;
    mu.y = b->u;
    int rc = dsv3__cpu_matmul(s, nt, &mg);
    if (!rc)
        rc = dsv3__cpu_matmul(s, nt, &mu);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n * f; i++)
        b->g[i] = b->g[i] / (1.0f + expf(-b->g[i])) * b->u[i];
    dsv3_op_matmul_args md = {.w = a->down, .expert = e, .x = b->g, .y = b->o, .T = n, .ldx = f,
                              .ldy = d};
    rc = dsv3__cpu_matmul(s, nt, &md);
    if (rc)
        return rc;
    for (int64_t i = 0; i < n; i++) {
        float *y = a->y + b->tok[i] * a->ldy;
        const float *o = b->o + i * d;
        for (int64_t c = 0; c < d; c++)
            y[c] += b->w[i] * o[c];
    }
    return DSV3_OK;
}

static int moe_check(const dsv3_op_moe_args *a, int64_t *E, int64_t *d, int64_t *f)
{
    int64_t M, K;
    if (!a->gate || !a->up || !a->down || a->gate->n_dims != 3 || a->up->n_dims != 3 ||
        a->down->n_dims != 3)
        return DSV3_E_INVAL;
    int rc = dsv3__cpu_weight_dims(a->gate, 0, f, d);
    if (!rc)
        rc = dsv3__cpu_weight_dims(a->up, 0, &M, &K);
    if (!rc && (M != *f || K != *d))
        rc = DSV3_E_INVAL;
    if (!rc)
        rc = dsv3__cpu_weight_dims(a->down, 0, &M, &K);
    if (!rc && (M != *d || K != *f))
        rc = DSV3_E_INVAL;
    if (rc)
        return rc;
    *E = a->gate->ne[0];
    if (a->up->ne[0] != *E || a->down->ne[0] != *E)
        return DSV3_E_INVAL;
    if (a->T < 0 || a->k <= 0 || (a->T > 0 && (!a->x || !a->idx || !a->weight || !a->y ||
                                                a->ldx < *d || a->ldy < *d)))
        return DSV3_E_INVAL;
    for (int64_t i = 0; i < a->T * a->k; i++)
        if (a->idx[i] < 0 || a->idx[i] >= *E)
            return DSV3_E_INVAL;
    return DSV3_OK;
}

int dsv3__cpu_moe(dsv3_cpu_state *s, int n_threads, const dsv3_op_moe_args *a)
{
    int64_t E, d, f;
    int rc = moe_check(a, &E, &d, &f);
    if (rc || a->T == 0)
        return rc;
    size_t T = (size_t)(a->T * a->k); /* rows of one expert: a token may repeat it */
    size_t nf = T * (size_t)(2 * d + 2 * f + 1);
    int64_t *buf = dsv3__malloc(&s->alloc, T * sizeof(int64_t) + nf * sizeof(float));
    if (!buf)
        return DSV3_E_NOMEM;
    moe_buf b = {.tok = buf, .x = (float *)(buf + T)};
    b.g = b.x + T * (size_t)d;
    b.u = b.g + T * (size_t)f;
    b.o = b.u + T * (size_t)f;
    b.w = b.o + T * (size_t)d;
    for (int64_t t = 0; t < a->T; t++)
        memset(a->y + t * a->ldy, 0, (size_t)d * sizeof(float));
    /* ascending expert index: every token's sum has a fixed order */
    for (int64_t e = 0; e < E && !rc; e++) {
        int64_t n = 0;
        for (int64_t t = 0; t < a->T; t++)
            for (int64_t j = 0; j < a->k; j++)
                if (a->idx[t * a->k + j] == e) {
                    b.tok[n] = t;
                    b.w[n++] = a->weight[t * a->k + j];
                }
        if (n)
            rc = moe_expert(s, n_threads, a, &b, e, n, d, f);
    }
    dsv3__free(&s->alloc, buf);
    return rc;
}
