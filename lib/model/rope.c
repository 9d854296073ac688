/*
 * rope.c - RoPE frequencies with the YaRN correction, the softmax scale and
 * the cos/sin factor (ARCHITECTURE.md 3.4, 3.5).
 * SPDX-License-Identifier: MIT
 */
#include <math.h>

#include "model.h"

static int yarn_on(const dsv3_hparams *hp)
{
    return hp->rope_yarn && hp->yarn_factor > 0.0f && hp->yarn_orig_ctx > 0;
}

/* m(s, a) = 1 if s <= 1, else 0.1 a ln(s) + 1 */
static double yarn_m(double s, double a)
{
    return s <= 1.0 ? 1.0 : 0.1 * a * log(s) + 1.0;
}

/* dim(beta) = d_r ln(L0 / (2 pi beta)) / (2 ln base) */
static double correction_dim(const dsv3_hparams *hp, double beta)
{
    const double pi = 3.14159265358979323846;
    return (double)hp->qk_rope_dim * log((double)hp->yarn_orig_ctx / (2.0 * pi * beta)) /
           (2.0 * log((double)hp->rope_theta));
}

void dsv3__rope_freqs(const dsv3_hparams *hp, float *out)
{
    int32_t half = hp->qk_rope_dim / 2;
    double base = hp->rope_theta;
    double lo = 0, hi = 1, s = 1;
    int yarn = yarn_on(hp);
    if (yarn) {
        s = hp->yarn_factor;
        lo = floor(correction_dim(hp, hp->yarn_beta_fast));
        hi = ceil(correction_dim(hp, hp->yarn_beta_slow));
        if (lo < 0)
            lo = 0;
        if (hi > hp->qk_rope_dim - 1)
            hi = hp->qk_rope_dim - 1;
        if (lo == hi)
            hi += 0.001;
    }
    for (int32_t i = 0; i < half; i++) {
        double theta = pow(base, -2.0 * i / (double)hp->qk_rope_dim);
        if (yarn) {
            double r = (i - lo) / (hi - lo);
            r = r < 0 ? 0 : r > 1 ? 1 : r;
            theta = theta * (1.0 - r) + theta / s * r;
        }
        out[i] = (float)theta;
    }
}

float dsv3__attn_scale(const dsv3_hparams *hp)
{
    double tau = 1.0 / sqrt((double)dsv3__hp_qk_head_dim(hp));
    if (yarn_on(hp)) {
        double m = yarn_m(hp->yarn_factor, hp->yarn_mscale_all_dim);
        tau *= m * m;
    }
    return (float)tau;
}

float dsv3__rope_scale(const dsv3_hparams *hp)
{
    if (!yarn_on(hp))
        return 1.0f;
    return (float)(yarn_m(hp->yarn_factor, hp->yarn_mscale) /
                   yarn_m(hp->yarn_factor, hp->yarn_mscale_all_dim));
}
