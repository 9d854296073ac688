/*
 * chain.c - one pass of the sampler chain over a row of logits (the steps
 * are listed in sampler.h), the final distribution for speculative decoding,
 * and draws from arbitrary distributions.
 *
 * Cost per call: O(n_vocab) for the copy, bias, penalties and the top-k scan
 * (a k-entry heap: O(n_vocab log k) at worst), then work on the candidates
 * only; with top-k off, top-p finds its set by quickselect (expected linear).
 * The scratch buffers live in the handle, so the steady state allocates
 * nothing.
 *
 * Built with -ffp-contract=off: no fused multiply-adds, so that every
 * platform rounds alike.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sampler.h"

/* ---- exp ---------------------------------------------------------------- */

/* exp(x) for x <= 0: x = k ln2 + r with |r| <= ln2/2, e^r by its Taylor
 * polynomial to r^8 (truncation error below 2.1e-10 relative, far under the
 * float rounding of the weights), evaluated in Estrin's scheme for short
 * dependency chains, then scaled by 2^k built from its bits. */
static inline double exp_neg(double x)
{
    if (!(x > -746.0)) /* -inf, NaN, or below the smallest subnormal */
        return 0.0;
    if (x > 709.0)
        return INFINITY;
    const double LN2_HI = 6.93147180369123816490e-01; /* k * LN2_HI is exact */
    const double LN2_LO = 1.90821492927058770002e-10;
    double k = floor(x * 1.44269504088896338700 + 0.5);
    double r = (x - k * LN2_HI) - k * LN2_LO;
    double r2 = r * r, r4 = r2 * r2;
    double a = 1.0 + r;
    double b = 1.0 / 2 + r * (1.0 / 6);
    double c = 1.0 / 24 + r * (1.0 / 120);
    double d = 1.0 / 720 + r * (1.0 / 5040);
    double e = 1.0 / 40320;
    double p = (a + r2 * b) + r4 * ((c + r2 * d) + r4 * e);
    int ki = (int)k;
    if (ki < -1022) { /* subnormal result: exact first step, one rounding in the second */
        p *= 0x1p-200;
        ki += 200;
    }
    uint64_t bits = (uint64_t)(ki + 1023) << 52;
    double scale;
    memcpy(&scale, &bits, sizeof scale); /* 2^ki */
    return p * scale;
}

double dsv3__exp_neg(double x)
{
    return exp_neg(x);
}

/* ---- steps 1 and 2: bias and penalties ----------------------------------- */

static void apply_penalties(dsv3_sampler *smp, size_t n)
{
    float *w = smp->work;
    uint32_t *cnt = smp->count;
    const int32_t *h = smp->hist;
    size_t len = smp->hist_len;
    for (size_t i = 0; i < len; i++)
        if ((size_t)h[i] < n)
            cnt[h[i]]++;
    double rp = smp->p.repeat_penalty;
    double fp = smp->p.frequency_penalty;
    double pp = smp->p.presence_penalty;
    for (size_t i = 0; i < len; i++) {
        size_t t = (size_t)h[i];
        if (t >= n || cnt[t] == 0)
            continue;
        double c = cnt[t];
        cnt[t] = 0; /* once per distinct token; leaves the counts zeroed */
        double l = w[t];
        if (rp != 1.0)
            l = l > 0.0 ? l / rp : l * rp;
        l -= c * fp + pp;
        w[t] = (float)l;
    }
}

/* Point *row at the logits the rest of the chain reads: the caller's own
 * when no bias or penalty applies, else a copy in smp->work with them
 * applied. NaN logits stay NaN; every comparison below ranks NaN like -inf. */
static int prepare(dsv3_sampler *smp, const float *logits, size_t n, const float **row)
{
    const dsv3__bias *b = smp->bias.data;
    size_t nb = smp->bias.len;
    if (nb && (size_t)b[nb - 1].token >= n)
        return dsv3__seterr(&smp->err, DSV3_E_RANGE, "sample: a logit bias is set on token %d "
                            "but the vocabulary has %zu tokens", (int)b[nb - 1].token, n);
    *row = logits;
    if (nb == 0 && !smp->penalties)
        return DSV3_OK;
    float *w = smp->work;
    memcpy(w, logits, n * sizeof *w);
    for (size_t i = 0; i < nb; i++) {
        float *x = &w[b[i].token];
        *x = b[i].bias == -INFINITY ? -INFINITY : *x + b[i].bias;
    }
    if (smp->penalties)
        apply_penalties(smp, n);
    *row = w;
    return DSV3_OK;
}

/* Largest value (NaN ignored; -inf when there is none). Eight running maxima
 * break the dependency chain so that the loop vectorises. */
static float max_value(const float *w, size_t n)
{
    float m[8];
    for (int j = 0; j < 8; j++)
        m[j] = -INFINITY;
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            m[j] = w[i + j] > m[j] ? w[i + j] : m[j];
    for (; i < n; i++)
        m[0] = w[i] > m[0] ? w[i] : m[0];
    float r = m[0];
    for (int j = 1; j < 8; j++)
        r = m[j] > r ? m[j] : r;
    return r;
}

/* First index of the largest value (ties: lowest index); n if every value is
 * -inf or NaN. */
static size_t argmax(const float *w, size_t n)
{
    float m = max_value(w, n);
    if (m == -INFINITY)
        return n;
    size_t i = 0;
    while (w[i] != m)
        i++;
    return i;
}

/* ---- step 4: top-k -------------------------------------------------------- */

/* a ranks below b: smaller value, or the same value and a larger id. */
static inline bool worse(dsv3__cand a, dsv3__cand b)
{
    return a.v < b.v || (a.v == b.v && a.id > b.id);
}

static inline void swap_cand(dsv3__cand *a, dsv3__cand *b)
{
    dsv3__cand t = *a;
    *a = *b;
    *b = t;
}

static void sift_up(dsv3__cand *h, size_t i)
{
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!worse(h[i], h[p]))
            return;
        swap_cand(&h[i], &h[p]);
        i = p;
    }
}

static void sift_down(dsv3__cand *h, size_t n, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < n && worse(h[l], h[m]))
            m = l;
        if (r < n && worse(h[r], h[m]))
            m = r;
        if (m == i)
            return;
        swap_cand(&h[i], &h[m]);
        i = m;
    }
}

static void heap_put(dsv3__cand *h, size_t k, size_t i, float x)
{
    h[0].id = (int32_t)i;
    h[0].v = x;
    sift_down(h, k, 0);
}

/* The k best logits above -inf into h (a min-heap); returns how many.
 * Scanning ids upwards, an equal logit never displaces a kept lower id.
 * Blocks of 16 that cannot enter the heap are skipped with one vectorisable
 * test. */
static size_t top_k(const float *w, size_t n, size_t k, dsv3__cand *h)
{
    size_t len = 0, i = 0;
    for (; i < n && len < k; i++) {
        if (!(w[i] > -INFINITY))
            continue;
        h[len].id = (int32_t)i;
        h[len].v = w[i];
        sift_up(h, len++);
    }
    if (len < k)
        return len;
    for (; i + 16 <= n; i += 16) {
        float thr = h[0].v;
        int any = 0;
        for (int j = 0; j < 16; j++)
            any |= w[i + j] > thr;
        if (!any)
            continue;
        for (size_t j = i; j < i + 16; j++)
            if (w[j] > h[0].v)
                heap_put(h, k, j, w[j]);
    }
    for (; i < n; i++)
        if (w[i] > h[0].v)
            heap_put(h, k, i, w[i]);
    return len;
}

/* Candidates after top-k with their logits; 0 when every logit is -inf or
 * NaN. *maxv receives the largest logit (always one of the candidates). */
static size_t candidates(dsv3_sampler *smp, const float *w, size_t n, float *maxv)
{
    dsv3__cand *c = smp->cand;
    size_t k = (size_t)smp->p.top_k, len = 0;
    if (k > 0 && k < n) {
        len = top_k(w, n, k, c);
    } else {
        for (size_t i = 0; i < n; i++)
            if (w[i] > -INFINITY) {
                c[len].id = (int32_t)i;
                c[len].v = w[i];
                len++;
            }
    }
    float m = -INFINITY;
    for (size_t i = 0; i < len; i++)
        m = c[i].v > m ? c[i].v : m;
    *maxv = m;
    return len;
}

/* ---- steps 5-7: softmax, top-p, min-p -------------------------------------- */

/* Replace logits by exp((l - max) / T); returns their sum. The largest gets
 * exactly 1. When the largest is +inf (the limit of softmax), the +inf
 * tokens get 1 and the others 0. */
static double softmax(dsv3__cand *c, size_t m, float maxv, float temperature)
{
    double z = 0.0, t = temperature;
    if (maxv == INFINITY) {
        for (size_t i = 0; i < m; i++) {
            c[i].v = c[i].v == INFINITY ? 1.0f : 0.0f;
            z += c[i].v;
        }
        return z;
    }
    for (size_t i = 0; i < m; i++) {
        float e = (float)exp_neg(((double)c[i].v - maxv) / t);
        c[i].v = e;
        z += e;
    }
    return z;
}

/* a ranks above b: larger weight, or the same weight and a smaller id. */
static inline bool better(dsv3__cand a, dsv3__cand b)
{
    return a.v > b.v || (a.v == b.v && a.id < b.id);
}

static int cand_cmp(const void *pa, const void *pb)
{
    const dsv3__cand *a = pa, *b = pb;
    return better(*a, *b) ? -1 : better(*b, *a) ? 1 : 0;
}

/* Index (lo, mid or hi) of the median of three under `better`. */
static size_t median3(const dsv3__cand *c, size_t lo, size_t mid, size_t hi)
{
    if (better(c[lo], c[mid]))
        return better(c[mid], c[hi]) ? mid : better(c[lo], c[hi]) ? hi : lo;
    return better(c[lo], c[hi]) ? lo : better(c[mid], c[hi]) ? hi : mid;
}

/* Partition c[lo, hi) around a median-of-three pivot: better entries first,
 * then the pivot, whose index is returned; *mass gets the better entries'
 * weight. */
static size_t partition(dsv3__cand *c, size_t lo, size_t hi, double *mass)
{
    size_t piv = median3(c, lo, lo + (hi - lo) / 2, hi - 1);
    swap_cand(&c[piv], &c[hi - 1]);
    dsv3__cand pv = c[hi - 1];
    size_t s = lo;
    double sum = 0.0;
    for (size_t i = lo; i < hi - 1; i++)
        if (better(c[i], pv)) {
            sum += c[i].v;
            swap_cand(&c[i], &c[s++]);
        }
    swap_cand(&c[s], &c[hi - 1]);
    *mass = sum;
    return s;
}

/* Rearrange c[0, m) so that its first r entries are the smallest prefix, in
 * `better` order, whose weight reaches need; returns r. Quickselect on the
 * weight mass (expected O(m)), sorting only a short final range. */
static size_t nucleus(dsv3__cand *c, size_t m, double need)
{
    size_t lo = 0, hi = m;
    for (int rounds = 0; hi - lo > 32 && rounds < 64; rounds++) {
        double mass;
        size_t s = partition(c, lo, hi, &mass);
        if (mass >= need) { /* the prefix ends among the better ones */
            hi = s;
            continue;
        }
        need -= mass + c[s].v;
        if (need <= 0.0)
            return s + 1;
        lo = s + 1;
    }
    qsort(c + lo, hi - lo, sizeof *c, cand_cmp); /* total order: same result everywhere */
    for (size_t i = lo; i < hi; i++) {
        need -= c[i].v;
        if (need <= 0.0)
            return i + 1;
    }
    return hi; /* rounding left a sliver: everything up to hi */
}

/* Candidates above min_p times the largest weight (which is 1), in place. */
static size_t min_p_filter(dsv3__cand *c, size_t m, float min_p)
{
    size_t r = 0;
    for (size_t i = 0; i < m; i++)
        if (c[i].v >= min_p)
            c[r++] = c[i];
    return r;
}

/* ---- the chain ------------------------------------------------------------ */

/*
 * Run steps 1-7. Greedy: *greedy_tok gets the token and *n_kept is 0.
 * Otherwise smp->cand[0, *n_kept) holds the kept tokens with unnormalised
 * weights in a deterministic order.
 */
static int run_chain(dsv3_sampler *smp, const float *logits, size_t n, const void *out,
                     const char *fn, int32_t *greedy_tok, size_t *n_kept)
{
    if (!logits || !out)
        return dsv3__seterr(&smp->err, DSV3_E_INVAL, "%s: NULL %s", fn,
                            logits ? "output" : "logits");
    if (n == 0 || n > INT32_MAX)
        return dsv3__seterr(&smp->err, DSV3_E_INVAL, "%s: n_vocab %zu is outside [1, %d]", fn,
                            n, INT32_MAX);
    const float *w = NULL;
    int rc = dsv3__sampler_buffers(smp, n);
    if (!rc)
        rc = prepare(smp, logits, n, &w);
    if (rc)
        return rc;
    *n_kept = 0;
    if (dsv3__sampler_is_greedy(smp)) {
        size_t t = argmax(w, n);
        if (t == n)
            goto all_banned;
        *greedy_tok = (int32_t)t;
        return DSV3_OK;
    }
    float maxv = 0.0f;
    size_t m = candidates(smp, w, n, &maxv);
    if (m == 0)
        goto all_banned;
    double z = softmax(smp->cand, m, maxv, smp->p.temperature);
    if (smp->p.min_p > 0.0f)
        m = min_p_filter(smp->cand, m, smp->p.min_p);
    if (smp->p.top_p < 1.0f)
        m = nucleus(smp->cand, m, (double)smp->p.top_p * z);
    *n_kept = m;
    return DSV3_OK;
all_banned:
    return dsv3__seterr(&smp->err, DSV3_E_INVAL, "%s: every logit is -inf or NaN after bias "
                        "and penalties; nothing can be sampled", fn);
}

/* Sum of the kept weights, always in the same order. */
static double kept_sum(const dsv3__cand *c, size_t m)
{
    double s = 0.0;
    for (size_t i = 0; i < m; i++)
        s += c[i].v;
    return s;
}

int dsv3_sampler_sample(dsv3_sampler *smp, const float *logits, size_t n_vocab, int32_t *token)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    int32_t t = 0;
    size_t m;
    rc = run_chain(smp, logits, n_vocab, token, "sample", &t, &m);
    if (rc)
        return rc;
    if (m > 0) {
        const dsv3__cand *c = smp->cand;
        double r = dsv3__sampler_uniform(smp) * kept_sum(c, m), cum = 0.0;
        for (size_t i = 0; i < m; i++) {
            if (c[i].v == 0.0f)
                continue;
            t = c[i].id; /* the last positive weight if rounding ran past the end */
            cum += c[i].v;
            if (r < cum)
                break;
        }
    }
    *token = t;
    return DSV3_OK;
}

int dsv3__sampler_probs(dsv3_sampler *smp, const float *logits, size_t n_vocab, float *probs)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    int32_t t = 0;
    size_t m;
    rc = run_chain(smp, logits, n_vocab, probs, "probs", &t, &m);
    if (rc)
        return rc;
    memset(probs, 0, n_vocab * sizeof *probs);
    if (m == 0) {
        probs[t] = 1.0f;
        return DSV3_OK;
    }
    const dsv3__cand *c = smp->cand;
    double s = kept_sum(c, m);
    for (size_t i = 0; i < m; i++)
        probs[c[i].id] = (float)(c[i].v / s);
    return DSV3_OK;
}

int dsv3__sampler_draw(dsv3_sampler *smp, const float *w, size_t n, int32_t *token)
{
    int rc = dsv3__sampler_check(smp);
    if (rc)
        return rc;
    if (!w || !token || n == 0 || n > INT32_MAX)
        return dsv3__seterr(&smp->err, DSV3_E_INVAL, "draw: NULL arguments or n %zu outside "
                            "[1, %d]", n, INT32_MAX);
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        if (!(w[i] >= 0.0f) || w[i] == INFINITY)
            return dsv3__seterr(&smp->err, DSV3_E_INVAL, "draw: weight %zu is negative, NaN "
                                "or infinite", i);
        s += w[i];
    }
    if (s == 0.0)
        return dsv3__seterr(&smp->err, DSV3_E_INVAL, "draw: every weight is zero");
    double r = dsv3__sampler_uniform(smp) * s, cum = 0.0;
    size_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (w[i] == 0.0f)
            continue;
        last = i;
        cum += w[i];
        if (r < cum)
            break;
    }
    *token = (int32_t)last;
    return DSV3_OK;
}
