/*
 * check_sampler.c - lib/sampler: parameters, greedy, top-k/top-p/min-p sets,
 * sampled frequencies against softmax, penalties, bias, determinism, bad
 * input, allocation failures.
 *
 * Expected values are computed here from the documented definitions (libm
 * exp in double, sorting), independently of the library's code paths.
 * SPDX-License-Identifier: MIT
 */
#include <float.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sampler/sampler.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------- */

static uint64_t trng = 88172645463325252u;

static uint64_t tnext(void)
{
    trng ^= trng << 13;
    trng ^= trng >> 7;
    trng ^= trng << 17;
    return trng;
}

static double tunif(void)
{
    return (double)(tnext() >> 11) * 0x1p-53;
}

static float tgauss(void)
{
    double u = tunif() + 1e-12, v = tunif();
    return (float)(sqrt(-2.0 * log(u)) * cos(2.0 * M_PI * v));
}

static dsv3_sampler *mk(float temp, int32_t top_k, float top_p, float min_p, uint64_t seed)
{
    dsv3_sampler_params p;
    ck_assert_int_eq(dsv3_sampler_params_init(&p, sizeof p), DSV3_OK);
    p.temperature = temp;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    dsv3_sampler *s = NULL;
    int rc = dsv3_sampler_new(&p, &s);
    ck_assert_msg(rc == DSV3_OK, "sampler_new: %s", dsv3_sampler_errmsg(s));
    return s;
}

static dsv3_sampler *mk_plain(float temp, uint64_t seed)
{
    return mk(temp, 0, 1.0f, 0.0f, seed);
}

static int32_t sample1(dsv3_sampler *s, const float *l, size_t n)
{
    int32_t t = -1;
    int rc = dsv3_sampler_sample(s, l, n, &t);
    /* no ck_assert on success: Check logs every assertion, too slow here */
    if (rc != DSV3_OK || t < 0 || (size_t)t >= n)
        ck_abort_msg("sample: rc %d token %d: %s", rc, (int)t, dsv3_sampler_errmsg(s));
    return t;
}

/* softmax(l / T) in double with libm. */
static void ref_softmax(const float *l, size_t n, double temp, double *p)
{
    double m = -INFINITY, z = 0;
    for (size_t i = 0; i < n; i++)
        if (l[i] > m)
            m = l[i];
    for (size_t i = 0; i < n; i++)
        z += (p[i] = exp((l[i] - m) / temp));
    for (size_t i = 0; i < n; i++)
        p[i] /= z;
}

/* Count draws and check every token's frequency against p within 5 sigma
 * (binomial), and that tokens with p == 0 never appear. */
static void check_freq(dsv3_sampler *s, const float *l, size_t n, const double *p, long draws)
{
    long *cnt = calloc(n, sizeof *cnt);
    for (long d = 0; d < draws; d++)
        cnt[sample1(s, l, n)]++;
    for (size_t i = 0; i < n; i++) {
        double e = draws * p[i], sd = sqrt(draws * p[i] * (1 - p[i]));
        if (p[i] == 0 && cnt[i] != 0)
            ck_abort_msg("token %zu outside the set drawn %ld times", i, cnt[i]);
        if (!(fabs(cnt[i] - e) <= 5 * sd + 1))
            ck_abort_msg("token %zu: %ld draws, expected %.1f (sd %.1f)", i, cnt[i], e, sd);
    }
    free(cnt);
}

/* ---- params --------------------------------------------------------------- */

START_TEST(params_defaults_and_null)
{
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(NULL, &s), DSV3_OK);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(dsv3_sampler_errmsg(s), "");
    dsv3_sampler_free(s);
    dsv3_sampler_free(NULL);
    ck_assert_int_eq(dsv3_sampler_new(NULL, NULL), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(dsv3_sampler_errmsg(NULL));
    float l[2] = {0, 1};
    int32_t t;
    ck_assert_int_eq(dsv3_sampler_sample(NULL, l, 2, &t), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_sampler_accept(NULL, 1), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_sampler_reset(NULL), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(NULL, 1, 1.0f), DSV3_E_INVAL);
}
END_TEST

/* One field set to a bad value must give E_INVAL, a failed handle with a
 * message naming the field, and only errmsg/free valid on it. */
static const struct bad_param {
    const char *field;
    size_t off;
    int is_int;
    double v;
} bad_params[] = {
#define BAD(f, isint, val) {#f, offsetof(dsv3_sampler_params, f), isint, val}
    BAD(temperature, 0, NAN),        BAD(temperature, 0, INFINITY),
    BAD(top_k, 1, -1),               BAD(top_p, 0, 0.0),
    BAD(top_p, 0, 1.01),             BAD(top_p, 0, NAN),
    BAD(min_p, 0, -0.01),            BAD(min_p, 0, 1.5),
    BAD(min_p, 0, NAN),              BAD(repeat_penalty, 0, 0.0),
    BAD(repeat_penalty, 0, NAN),     BAD(repeat_penalty, 0, INFINITY),
    BAD(frequency_penalty, 0, NAN),  BAD(presence_penalty, 0, -INFINITY),
    BAD(penalty_window, 1, -1),      BAD(flags, 1, 4),
#undef BAD
};

START_TEST(params_invalid)
{
    for (size_t i = 0; i < sizeof bad_params / sizeof bad_params[0]; i++) {
        const struct bad_param *b = &bad_params[i];
        dsv3_sampler_params p;
        dsv3_sampler_params_init(&p, sizeof p);
        if (b->is_int) {
            int32_t v = (int32_t)b->v;
            memcpy((char *)&p + b->off, &v, sizeof v);
        } else {
            float v = (float)b->v;
            memcpy((char *)&p + b->off, &v, sizeof v);
        }
        dsv3_sampler *s = NULL;
        ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_E_INVAL);
        ck_assert_ptr_nonnull(s);
        ck_assert_msg(strstr(dsv3_sampler_errmsg(s), b->field), "'%s' not in '%s'", b->field,
                      dsv3_sampler_errmsg(s));
        float l[2] = {0, 1};
        int32_t t;
        ck_assert_int_eq(dsv3_sampler_sample(s, l, 2, &t), DSV3_E_MISUSE);
        ck_assert_int_eq(dsv3_sampler_accept(s, 0), DSV3_E_MISUSE);
        ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_E_MISUSE);
        ck_assert_int_eq(dsv3_sampler_set_logit_bias(s, 0, 1.0f), DSV3_E_MISUSE);
        ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), b->field)); /* kept */
        dsv3_sampler_free(s);
    }
}
END_TEST

START_TEST(params_boundaries_accepted)
{
    /* edges of the valid ranges */
    dsv3_sampler *s = mk(-1.0f, 0, 1.0f, 1.0f, 0);
    dsv3_sampler_free(s);
    s = mk(1e-30f, 1, 1e-6f, 0.0f, 0);
    float l[3] = {1, 2, 3};
    ck_assert_int_eq(sample1(s, l, 3), 2);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(params_struct_size)
{
    struct {
        dsv3_sampler_params p;
        uint64_t future;
    } big;
    ck_assert_int_eq(dsv3_sampler_params_init(&big.p, sizeof big), DSV3_OK);
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&big.p, &s), DSV3_OK);
    dsv3_sampler_free(s);
    big.future = 7;
    ck_assert_int_eq(dsv3_sampler_new(&big.p, &s), DSV3_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), "struct_size"));
    dsv3_sampler_free(s);
    big.p.struct_size = 8;
    ck_assert_int_eq(dsv3_sampler_new(&big.p, &s), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), "struct_size"));
    dsv3_sampler_free(s);
    /* a malformed allocator */
    dsv3_allocator a = {0};
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.allocator = &a;
    ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), "allocator"));
    dsv3_sampler_free(s);
}
END_TEST

/* ---- greedy --------------------------------------------------------------- */

START_TEST(greedy_is_argmax)
{
    dsv3_sampler *s = mk(0.0f, 40, 0.95f, 0.05f, 1);
    dsv3_sampler *neg = mk(-2.0f, 3, 0.5f, 0.5f, 2); /* top-k/p/min-p play no part */
    float l[300];
    for (int rep = 0; rep < 500; rep++) {
        size_t n = 1 + tnext() % 300;
        size_t best = 0;
        for (size_t i = 0; i < n; i++) {
            l[i] = (float)(tnext() % 50) - 25.0f; /* many ties */
            if (l[i] > l[best])
                best = i;
        }
        ck_assert_int_eq(sample1(s, l, n), (int)best);
        ck_assert_int_eq(sample1(neg, l, n), (int)best);
    }
    float ties[4] = {1, 5, 5, 5};
    ck_assert_int_eq(sample1(s, ties, 4), 1); /* ties: lowest id */
    float one = -3;
    ck_assert_int_eq(sample1(s, &one, 1), 0);
    float odd[5] = {NAN, -INFINITY, 2, INFINITY, INFINITY};
    ck_assert_int_eq(sample1(s, odd, 5), 3);
    float huge[3] = {-FLT_MAX, FLT_MAX, FLT_MAX};
    ck_assert_int_eq(sample1(s, huge, 3), 1);
    dsv3_sampler_free(s);
    dsv3_sampler_free(neg);
}
END_TEST

START_TEST(bad_logits)
{
    dsv3_sampler *g = mk(0.0f, 0, 1.0f, 0.0f, 0);
    dsv3_sampler *r = mk(1.0f, 40, 0.9f, 0.1f, 0);
    dsv3_sampler *both[2] = {g, r};
    float ninf[4] = {-INFINITY, -INFINITY, NAN, -INFINITY};
    float ok[2] = {0, 1};
    int32_t t = 12345;
    for (int k = 0; k < 2; k++) {
        dsv3_sampler *s = both[k];
        ck_assert_int_eq(dsv3_sampler_sample(s, ninf, 4, &t), DSV3_E_INVAL);
        ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), "-inf"));
        ck_assert_int_eq(dsv3_sampler_sample(s, ok, 0, &t), DSV3_E_INVAL);
        ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(s), "n_vocab"));
        ck_assert_int_eq(dsv3_sampler_sample(s, NULL, 2, &t), DSV3_E_INVAL);
        ck_assert_int_eq(dsv3_sampler_sample(s, ok, 2, NULL), DSV3_E_INVAL);
        ck_assert_int_eq(dsv3_sampler_sample(s, ok, (size_t)INT32_MAX + 1, &t), DSV3_E_INVAL);
        ck_assert_int_eq(t, 12345);
        ck_assert_int_eq(sample1(s, ok, 2) >= 0, 1); /* still usable */
    }
    dsv3_sampler_free(g);
    dsv3_sampler_free(r);
}
END_TEST

START_TEST(odd_logits_random)
{
    /* NaN, +-inf, huge values and tiny temperatures never give a NaN,
     * banned or out-of-range token */
    const float temps[] = {1e-6f, 0.3f, 1.0f, 50.0f};
    float l[64];
    for (int rep = 0; rep < 400; rep++) {
        dsv3_sampler *s = mk(temps[rep % 4], (int32_t)(tnext() % 8), rep % 3 ? 0.9f : 1.0f,
                             rep % 5 ? 0.0f : 0.2f, (uint64_t)rep);
        size_t n = 1 + tnext() % 64;
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            switch (tnext() % 6) {
            case 0: l[i] = NAN; break;
            case 1: l[i] = -INFINITY; break;
            case 2: l[i] = (tnext() & 1) ? FLT_MAX : -FLT_MAX; break;
            case 3: l[i] = (rep % 7 == 0) ? INFINITY : 1e30f; break;
            default: l[i] = tgauss() * 10; break;
            }
            any |= !isnan(l[i]) && l[i] != -INFINITY;
        }
        int32_t t;
        int rc = dsv3_sampler_sample(s, l, n, &t);
        if (!any) {
            ck_assert_int_eq(rc, DSV3_E_INVAL);
        } else {
            ck_assert_int_eq(rc, DSV3_OK);
            ck_assert_int_lt(t, (int)n);
            ck_assert_msg(!isnan(l[t]) && l[t] != -INFINITY, "picked banned token %d", t);
            float mx = -INFINITY;
            for (size_t i = 0; i < n; i++)
                if (l[i] > mx)
                    mx = l[i];
            if (mx == INFINITY)
                ck_assert_msg(l[t] == INFINITY, "+inf present but %g picked", l[t]);
        }
        dsv3_sampler_free(s);
    }
    /* huge logits with a tiny temperature: the max wins */
    dsv3_sampler *s = mk(1e-3f, 0, 1.0f, 0.0f, 3);
    float h[3] = {FLT_MAX, -FLT_MAX, FLT_MAX / 2};
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(sample1(s, h, 3), 0);
    dsv3_sampler_free(s);
}
END_TEST

/* ---- filters ---------------------------------------------------------------- */

typedef struct {
    int id;
    double p;
} idp;

static int idp_cmp(const void *a, const void *b)
{
    const idp *x = a, *y = b;
    if (x->p != y->p)
        return x->p > y->p ? -1 : 1;
    return x->id - y->id;
}

/* Reference of steps 4-7 on plain logits: in[] marks the kept set and q[]
 * gets the final distribution. */
static void ref_chain(const float *l, size_t n, double temp, int k, double top_p, double min_p,
                      int *in, double *q)
{
    idp *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++)
        v[i] = (idp){(int)i, l[i]};
    qsort(v, n, sizeof *v, idp_cmp); /* by logit, ties lower id */
    size_t m = (k > 0 && (size_t)k < n) ? (size_t)k : n;
    double mx = v[0].p, z = 0;
    for (size_t i = 0; i < m; i++)
        z += (v[i].p = exp((v[i].p - mx) / temp));
    size_t keep = m;
    if (top_p < 1) {
        double c = 0;
        for (size_t i = 0; i < m; i++) {
            c += v[i].p / z;
            if (c >= top_p) {
                keep = i + 1;
                break;
            }
        }
    }
    for (size_t i = 0; i < keep; i++)
        if (v[i].p < min_p) { /* v[0].p == 1 is the max */
            keep = i;
            break;
        }
    memset(in, 0, n * sizeof *in);
    double s = 0;
    for (size_t i = 0; i < keep; i++)
        s += v[i].p;
    for (size_t i = 0; i < n; i++)
        q[i] = 0;
    for (size_t i = 0; i < keep; i++) {
        in[v[i].id] = 1;
        q[v[i].id] = v[i].p / s;
    }
    free(v);
}

static void filter_case(float temp, int k, float top_p, float min_p, size_t n, long draws)
{
    float *l = malloc(n * sizeof *l);
    int *in = malloc(n * sizeof *in);
    double *q = malloc(n * sizeof *q);
    for (size_t i = 0; i < n; i++)
        l[i] = tgauss() * 2;
    ref_chain(l, n, temp, k, top_p, min_p, in, q);
    dsv3_sampler *s = mk(temp, k, top_p, min_p, tnext());
    check_freq(s, l, n, q, draws);
    /* the exported distribution matches the reference */
    float *pr = malloc(n * sizeof *pr);
    ck_assert_int_eq(dsv3__sampler_probs(s, l, n, pr), DSV3_OK);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs(pr[i] - q[i]) < 1e-5) || (pr[i] > 0) != in[i])
            ck_abort_msg("probs[%zu] = %g, expected %g (in set: %d)", i, pr[i], q[i], in[i]);
        sum += pr[i];
    }
    ck_assert_double_eq_tol(sum, 1.0, 1e-5);
    dsv3_sampler_free(s);
    free(l);
    free(in);
    free(q);
    free(pr);
}

START_TEST(top_k_set)
{
    filter_case(1.0f, 5, 1.0f, 0.0f, 50, 40000);
    filter_case(0.5f, 1, 1.0f, 0.0f, 20, 2000);
    filter_case(2.0f, 40, 1.0f, 0.0f, 1000, 20000);
}
END_TEST

START_TEST(top_p_set)
{
    filter_case(1.0f, 0, 0.5f, 0.0f, 30, 40000);
    filter_case(1.5f, 0, 0.9f, 0.0f, 3000, 3000); /* quickselect path */
    filter_case(0.7f, 0, 0.01f, 0.0f, 100, 2000);
}
END_TEST

START_TEST(min_p_set)
{
    filter_case(1.0f, 0, 1.0f, 0.2f, 40, 40000);
    filter_case(1.0f, 0, 1.0f, 1.0f, 40, 2000); /* only the max */
}
END_TEST

START_TEST(combined_set)
{
    filter_case(0.8f, 40, 0.95f, 0.05f, 500, 40000); /* the defaults */
    filter_case(1.3f, 10, 0.7f, 0.1f, 64, 40000);
    filter_case(1.0f, 0, 0.6f, 0.02f, 5000, 3000);
}
END_TEST

START_TEST(top_k_ties)
{
    float l[10] = {0};
    dsv3_sampler *s = mk(1.0f, 3, 1.0f, 0.0f, 9);
    double q[10] = {1.0 / 3, 1.0 / 3, 1.0 / 3};
    check_freq(s, l, 10, q, 30000);
    dsv3_sampler_free(s);
}
END_TEST

/* ---- distribution ---------------------------------------------------------- */

START_TEST(frequencies_match_softmax)
{
    const float temps[] = {0.25f, 0.7f, 1.0f, 3.0f};
    for (int ti = 0; ti < 4; ti++) {
        float l[12];
        for (int i = 0; i < 12; i++)
            l[i] = tgauss();
        double p[12];
        ref_softmax(l, 12, temps[ti], p);
        dsv3_sampler *s = mk_plain(temps[ti], 100 + (uint64_t)ti);
        check_freq(s, l, 12, p, 100000);
        dsv3_sampler_free(s);
    }
}
END_TEST

START_TEST(plus_infinity_uniform)
{
    float l[5] = {3, INFINITY, 1e30f, INFINITY, NAN};
    double q[5] = {0, 0.5, 0, 0.5, 0};
    dsv3_sampler *s = mk_plain(1.0f, 5);
    check_freq(s, l, 5, q, 20000);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(probs_greedy_one_hot)
{
    dsv3_sampler *s = mk(0.0f, 40, 0.9f, 0.1f, 0);
    float l[6] = {1, 4, 4, -2, NAN, 0};
    float pr[6];
    ck_assert_int_eq(dsv3__sampler_probs(s, l, 6, pr), DSV3_OK);
    for (int i = 0; i < 6; i++)
        ck_assert_float_eq(pr[i], i == 1 ? 1.0f : 0.0f);
    ck_assert(dsv3__sampler_is_greedy(s));
    ck_assert_int_eq(dsv3__sampler_probs(s, l, 6, NULL), DSV3_E_INVAL);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(draw_arbitrary)
{
    dsv3_sampler *s = mk_plain(1.0f, 77);
    float w[6] = {0.5f, 0, 2.0f, 1.0f, 0, 0.5f};
    double q[6] = {0.125, 0, 0.5, 0.25, 0, 0.125};
    long cnt[6] = {0};
    const long N = 80000;
    for (long i = 0; i < N; i++) {
        int32_t t = -1;
        if (dsv3__sampler_draw(s, w, 6, &t) != DSV3_OK || t < 0 || t >= 6)
            ck_abort_msg("draw failed");
        cnt[t]++;
    }
    for (int i = 0; i < 6; i++)
        ck_assert(fabs(cnt[i] - N * q[i]) <= 5 * sqrt(N * q[i] * (1 - q[i])) + 1);
    int32_t t;
    float zero[3] = {0, 0, 0}, neg[2] = {1, -1}, nan2[2] = {NAN, 1}, inf2[2] = {1, INFINITY};
    ck_assert_int_eq(dsv3__sampler_draw(s, zero, 3, &t), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__sampler_draw(s, neg, 2, &t), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__sampler_draw(s, nan2, 2, &t), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__sampler_draw(s, inf2, 2, &t), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__sampler_draw(s, w, 0, &t), DSV3_E_INVAL);
    /* uniform numbers are in [0, 1) with a plausible mean */
    double sum = 0;
    for (int i = 0; i < 100000; i++) {
        double u = dsv3__sampler_uniform(s);
        if (!(u >= 0.0 && u < 1.0))
            ck_abort_msg("uniform %g", u);
        sum += u;
    }
    ck_assert_double_eq_tol(sum / 100000, 0.5, 5 * sqrt(1.0 / 12 / 100000));
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(exp_accuracy)
{
    for (double x = -745.0; x <= 0.0; x += 0.0137) {
        double e = exp(x), g = dsv3__exp_neg(x);
        if (e > 1e-300 && !(fabs(g - e) <= 1e-9 * e))
            ck_abort_msg("exp(%g): %.17g vs %.17g", x, g, e);
    }
    ck_assert(dsv3__exp_neg(0.0) == 1.0);
    ck_assert(dsv3__exp_neg(-INFINITY) == 0.0);
    ck_assert(dsv3__exp_neg(NAN) == 0.0);
    ck_assert(dsv3__exp_neg(-1e10) == 0.0);
}
END_TEST

/* ---- penalties ----------------------------------------------------------- */

static dsv3_sampler *mk_pen(float temp, float rep, float freq, float pres, int32_t window)
{
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.temperature = temp;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.repeat_penalty = rep;
    p.frequency_penalty = freq;
    p.presence_penalty = pres;
    p.penalty_window = window;
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_OK);
    return s;
}

/* The sampler's distribution for l equals softmax(expect). */
static void check_probs(dsv3_sampler *s, const float *l, const float *expect, size_t n)
{
    float pr[16];
    double q[16];
    ck_assert_int_eq(dsv3__sampler_probs(s, l, n, pr), DSV3_OK);
    ref_softmax(expect, n, 1.0, q);
    for (size_t i = 0; i < n; i++)
        ck_assert_msg(fabs(pr[i] - q[i]) < 1e-6, "token %zu: %g vs %g", i, pr[i], q[i]);
}

START_TEST(repetition_penalty)
{
    dsv3_sampler *s = mk_pen(1.0f, 2.0f, 0, 0, 64);
    float l[4] = {2, -2, 1, 0};
    check_probs(s, l, l, 4); /* nothing accepted yet */
    ck_assert_int_eq(dsv3_sampler_accept(s, 0), DSV3_OK);
    ck_assert_int_eq(dsv3_sampler_accept(s, 1), DSV3_OK);
    ck_assert_int_eq(dsv3_sampler_accept(s, 1), DSV3_OK); /* counted once */
    ck_assert_int_eq(dsv3_sampler_accept(s, 3), DSV3_OK); /* 0 stays 0 */
    float e[4] = {1, -4, 1, 0};
    check_probs(s, l, e, 4);
    ck_assert_int_eq(dsv3_sampler_reset(s), DSV3_OK); /* history forgotten */
    check_probs(s, l, l, 4);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(frequency_presence_penalty)
{
    dsv3_sampler *s = mk_pen(1.0f, 1.0f, 0.5f, 0.25f, 64);
    float l[4] = {1, 1, 1, 1};
    for (int i = 0; i < 3; i++)
        dsv3_sampler_accept(s, 2);
    dsv3_sampler_accept(s, 3);
    dsv3_sampler_accept(s, 99); /* outside this vocabulary: ignored */
    float e[4] = {1, 1, 1 - 1.5f - 0.25f, 1 - 0.5f - 0.25f};
    check_probs(s, l, e, 4);
    dsv3_sampler_free(s);
    /* negative penalties favour repeats */
    s = mk_pen(1.0f, 1.0f, -1.0f, 0, 64);
    dsv3_sampler_accept(s, 0);
    float e2[4] = {2, 1, 1, 1};
    check_probs(s, l, e2, 4);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(penalty_window)
{
    dsv3_sampler *s = mk_pen(1.0f, 1.0f, 1.0f, 0, 2);
    float l[4] = {0, 0, 0, 0};
    dsv3_sampler_accept(s, 0);
    dsv3_sampler_accept(s, 1);
    dsv3_sampler_accept(s, 2);
    float e[4] = {0, -1, -1, 0}; /* 0 fell out of the window */
    check_probs(s, l, e, 4);
    for (int i = 0; i < 200; i++) /* long runs wrap the ring */
        dsv3_sampler_accept(s, 3);
    dsv3_sampler_accept(s, 1);
    float e2[4] = {0, -1, 0, -1};
    check_probs(s, l, e2, 4);
    dsv3_sampler_free(s);
    /* window 0: no penalty at all */
    s = mk_pen(1.0f, 3.0f, 1.0f, 1.0f, 0);
    dsv3_sampler_accept(s, 0);
    check_probs(s, l, l, 4);
    dsv3_sampler_free(s);
}
END_TEST

START_TEST(penalty_changes_greedy)
{
    dsv3_sampler *s = mk_pen(0.0f, 2.0f, 0, 0, 64);
    float l[3] = {3.0f, 2.5f, -1.0f};
    ck_assert_int_eq(sample1(s, l, 3), 0);
    dsv3_sampler_accept(s, 0);
    ck_assert_int_eq(sample1(s, l, 3), 1); /* 3/2 < 2.5 */
    dsv3_sampler_accept(s, 1);
    ck_assert_int_eq(sample1(s, l, 3), 0); /* 1.5 > 1.25 */
    ck_assert_int_eq(dsv3_sampler_accept(s, -1), DSV3_E_RANGE);
    /* penalties on infinite logits keep them infinite (no NaN) */
    float inf[3] = {INFINITY, -INFINITY, 0};
    dsv3_sampler_accept(s, 1);
    ck_assert_int_eq(sample1(s, inf, 3), 0);
    dsv3_sampler_free(s);
}
END_TEST

/* ---- bias ------------------------------------------------------------------ */

START_TEST(logit_bias)
{
    dsv3_sampler *g = mk(0.0f, 0, 1.0f, 0.0f, 0);
    float l[5] = {5, 1, 0, 4, 2};
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 0, -INFINITY), DSV3_OK);
    ck_assert_int_eq(sample1(g, l, 5), 3);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 2, 4.5f), DSV3_OK);
    ck_assert_int_eq(sample1(g, l, 5), 2);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 2, 3.0f), DSV3_OK); /* replaced */
    ck_assert_int_eq(sample1(g, l, 5), 3);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 0, 0.0f), DSV3_OK); /* removed */
    ck_assert_int_eq(sample1(g, l, 5), 0);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, -1, 1.0f), DSV3_E_RANGE);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 1, NAN), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 1, INFINITY), DSV3_E_INVAL);
    /* a bias beyond the vocabulary is an error at sample time */
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 7, 1.0f), DSV3_OK);
    int32_t t;
    ck_assert_int_eq(dsv3_sampler_sample(g, l, 5, &t), DSV3_E_RANGE);
    ck_assert_ptr_nonnull(strstr(dsv3_sampler_errmsg(g), "token 7"));
    ck_assert_int_eq(dsv3_sampler_set_logit_bias(g, 7, 0.0f), DSV3_OK);
    ck_assert_int_eq(sample1(g, l, 5), 0);
    /* banning everything */
    for (int i = 0; i < 5; i++)
        dsv3_sampler_set_logit_bias(g, i, -INFINITY);
    ck_assert_int_eq(dsv3_sampler_sample(g, l, 5, &t), DSV3_E_INVAL);
    dsv3_sampler_free(g);
}
END_TEST

START_TEST(bias_ban_sampling)
{
    dsv3_sampler *s = mk(1.0f, 3, 1.0f, 0.0f, 42);
    float l[6] = {3, 2.9f, 2.8f, 2.7f, 0, 0};
    dsv3_sampler_set_logit_bias(s, 1, -INFINITY);
    dsv3_sampler_set_logit_bias(s, 5, 2.75f); /* 2.75 enters the top 3 */
    float b[6] = {3, -INFINITY, 2.8f, 2.7f, 0, 2.75f};
    int in[6];
    double q[6];
    ref_chain(b, 6, 1.0, 3, 1.0, 0.0, in, q);
    ck_assert_int_eq(in[1] + in[3] + in[4], 0);
    check_freq(s, l, 6, q, 30000);
    dsv3_sampler_free(s);
}
END_TEST

/* ---- determinism -------------------------------------------------------------- */

static void sequence(dsv3_sampler *s, const float *l, size_t n, int32_t *out, int len)
{
    for (int i = 0; i < len; i++) {
        out[i] = sample1(s, l, n);
        dsv3_sampler_accept(s, out[i]);
    }
}

START_TEST(same_seed_same_tokens)
{
    float l[200];
    for (int i = 0; i < 200; i++)
        l[i] = tgauss();
    int32_t a[500], b[500], c[500];
    dsv3_sampler *s1 = mk(1.0f, 50, 0.9f, 0.01f, 1234);
    dsv3_sampler *s2 = mk(1.0f, 50, 0.9f, 0.01f, 1234);
    dsv3_sampler *s3 = mk(1.0f, 50, 0.9f, 0.01f, 1235);
    sequence(s1, l, 200, a, 500);
    sequence(s2, l, 200, b, 500);
    sequence(s3, l, 200, c, 500);
    ck_assert_mem_eq(a, b, sizeof a);
    int diff = 0;
    for (int i = 0; i < 500; i++)
        diff += a[i] != c[i];
    ck_assert_int_gt(diff, 100);
    /* reset restarts the stream */
    ck_assert_int_eq(dsv3_sampler_reset(s1), DSV3_OK);
    sequence(s1, l, 200, b, 500);
    ck_assert_mem_eq(a, b, sizeof a);
    /* the stream advances: consecutive draws are not all equal */
    int changes = 0;
    for (int i = 1; i < 500; i++)
        changes += a[i] != a[i - 1];
    ck_assert_int_gt(changes, 100);
    dsv3_sampler_free(s1);
    dsv3_sampler_free(s2);
    dsv3_sampler_free(s3);
}
END_TEST

/* ---- allocation ------------------------------------------------------------ */

/* Create, bias, accept, sample; returns the first failing status (or OK). */
static int alloc_workload(tu_alloc *ta, const float *l, size_t n)
{
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.allocator = &ta->a;
    p.repeat_penalty = 1.3f;
    p.penalty_window = 300;
    p.top_k = 0;
    p.top_p = 0.9f;
    dsv3_sampler *s = NULL;
    int rc = dsv3_sampler_new(&p, &s), first = rc;
    if (rc) {
        ck_assert_int_eq(rc, DSV3_E_NOMEM);
        ck_assert_ptr_null(s);
        return rc;
    }
    for (int i = 0; i < 40; i++) {
        rc = dsv3_sampler_set_logit_bias(s, (int32_t)(i * 7 % (int)n), -1.0f);
        if (rc && !first)
            first = rc;
    }
    for (int i = 0; i < 280; i++) {
        rc = dsv3_sampler_accept(s, i);
        if (rc && !first)
            first = rc;
    }
    int32_t t;
    rc = dsv3_sampler_sample(s, l, n, &t);
    if (rc && !first)
        first = rc;
    if (rc) /* usable after a failure: the next try succeeds */
        ck_assert_int_eq(dsv3_sampler_sample(s, l, n, &t), DSV3_OK);
    if (first)
        ck_assert_int_eq(first, DSV3_E_NOMEM);
    dsv3_sampler_free(s);
    return first;
}

START_TEST(alloc_failures)
{
    float l[1000];
    for (int i = 0; i < 1000; i++)
        l[i] = tgauss();
    int completed = 0;
    for (long n = 1; n < 200 && !completed; n++) {
        tu_alloc ta;
        tu_alloc_init(&ta, n);
        int rc = alloc_workload(&ta, l, 1000);
        ck_assert_msg(ta.live == 0, "fail_at %ld: %ld blocks leaked", n, ta.live);
        if (!ta.failed) {
            ck_assert_int_eq(rc, DSV3_OK);
            completed = 1;
        } else {
            ck_assert_int_eq(rc, DSV3_E_NOMEM);
        }
    }
    ck_assert(completed);
}
END_TEST

START_TEST(no_steady_state_allocation)
{
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.allocator = &ta.a;
    p.repeat_penalty = 1.1f;
    p.penalty_window = 16;
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_OK);
    float l[5000];
    for (int i = 0; i < 5000; i++)
        l[i] = tgauss();
    for (int i = 0; i < 20; i++)
        dsv3_sampler_accept(s, sample1(s, l, 5000));
    long before = ta.n_alloc;
    for (int i = 0; i < 200; i++)
        dsv3_sampler_accept(s, sample1(s, l, 5000));
    ck_assert_int_eq(ta.n_alloc, before);
    dsv3_sampler_free(s);
    ck_assert_int_eq(ta.live, 0);
}
END_TEST

static Suite *sampler_suite(void)
{
    Suite *s = suite_create("sampler");
    struct {
        const char *name;
        const TTest *tests[8];
    } groups[] = {
        {"params", {params_defaults_and_null, params_invalid, params_boundaries_accepted,
                    params_struct_size}},
        {"greedy", {greedy_is_argmax, bad_logits, odd_logits_random}},
        {"filters", {top_k_set, top_p_set, min_p_set, combined_set, top_k_ties}},
        {"distribution", {frequencies_match_softmax, plus_infinity_uniform, probs_greedy_one_hot,
                          draw_arbitrary, exp_accuracy}},
        {"penalties", {repetition_penalty, frequency_presence_penalty, penalty_window,
                       penalty_changes_greedy}},
        {"bias", {logit_bias, bias_ban_sampling}},
        {"determinism", {same_seed_same_tokens}},
        {"alloc", {alloc_failures, no_steady_state_allocation}},
    };
    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++) {
        TCase *tc = tcase_create(groups[g].name);
        tcase_set_timeout(tc, 30);
        for (int i = 0; i < 8 && groups[g].tests[i]; i++)
            tcase_add_test(tc, groups[g].tests[i]);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    return tu_run_suite(sampler_suite());
}
