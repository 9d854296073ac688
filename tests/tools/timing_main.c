/*
 * timing_main.c - dsv3-timing: a small prefill/decode timing of a model on
 * a chosen backend and placement, for the device checks
 * (tests/gpu/run-device-checks.sh) until `dsv3 bench` is available. Not
 * installed.
 *
 * usage: dsv3-timing MODEL [--backend cpu|cuda|auto] [--experts-on-cpu]
 *                          [-p PROMPT_TOKENS] [-n DECODE_TOKENS] [-t THREADS]
 * Prints one line: backend, placement, prefill and decode tokens/s (greedy
 * decoding, argmax on the host), and the last greedy token.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsv3.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: dsv3-timing MODEL [--backend cpu|cuda|auto] [--experts-on-cpu] "
                    "[-p N] [-n N] [-t N]\n");
    return 2;
}

static int32_t argmax(const float *l, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (l[i] > l[b])
            b = i;
    return b;
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    int32_t backend = DSV3_BACKEND_AUTO, placement = DSV3_PLACE_DEFAULT;
    long n_prompt = 128, n_decode = 64, threads = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--backend") && i + 1 < argc) {
            const char *v = argv[++i];
            backend = !strcmp(v, "cpu")    ? DSV3_BACKEND_CPU
                      : !strcmp(v, "cuda") ? DSV3_BACKEND_CUDA
                      : !strcmp(v, "auto") ? DSV3_BACKEND_AUTO
                                           : -1;
            if (backend < 0)
                return usage();
        } else if (!strcmp(a, "--experts-on-cpu")) {
            placement = DSV3_PLACE_EXPERTS_ON_CPU;
        } else if ((!strcmp(a, "-p") || !strcmp(a, "-n") || !strcmp(a, "-t")) && i + 1 < argc) {
            long v = strtol(argv[++i], NULL, 10);
            if (v < (a[1] == 't' ? 0 : 1))
                return usage();
            *(a[1] == 'p' ? &n_prompt : a[1] == 'n' ? &n_decode : &threads) = v;
        } else if (a[0] != '-' && !path) {
            path = a;
        } else {
            return usage();
        }
    }
    if (!path)
        return usage();
    dsv3_model_params mp;
    dsv3_model_params_init(&mp, sizeof mp);
    mp.backend = backend;
    mp.placement = placement;
    mp.n_threads = (int32_t)threads;
    dsv3_model *m = NULL;
    double t0 = now();
    if (dsv3_model_load(path, &mp, &m) != DSV3_OK) {
        fprintf(stderr, "dsv3-timing: %s\n", dsv3_model_errmsg(m));
        dsv3_model_free(m);
        return 1;
    }
    double t_load = now() - t0;
    dsv3_model_info info = {.struct_size = sizeof info};
    dsv3_model_info_get(m, &info);
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = (uint32_t)(n_prompt + n_decode + 1);
    cp.n_batch = (uint32_t)n_prompt;
    cp.n_threads = (int32_t)threads;
    dsv3_context *ctx = NULL;
    int rc = dsv3_context_new(m, &cp, &ctx);
    int32_t *tok = malloc((size_t)n_prompt * sizeof *tok);
    for (long i = 0; tok && i < n_prompt; i++)
        tok[i] = (int32_t)((i * 7919 + 17) % info.vocab_size);
    double t_pre = 0, t_dec = 0;
    int32_t next = -1;
    if (!rc && tok) {
        t0 = now();
        rc = dsv3_context_decode(ctx, tok, (size_t)n_prompt, 0);
        t_pre = now() - t0;
        const float *l;
        t0 = now();
        for (long i = 0; !rc && i < n_decode; i++) {
            if (!(rc = dsv3_context_logits(ctx, -1, &l))) {
                next = argmax(l, info.vocab_size);
                rc = dsv3_context_decode(ctx, &next, 1, 0);
            }
        }
        t_dec = now() - t0;
    }
    if (rc)
        fprintf(stderr, "dsv3-timing: %s\n", ctx ? dsv3_context_errmsg(ctx) : dsv3_strerror(rc));
    else
        printf("backend %s%s: load %.2f s, prefill %ld tok %.1f tok/s, decode %ld tok %.1f "
               "tok/s, last token %d\n",
               dsv3_backend_name(info.backend),
               placement == DSV3_PLACE_EXPERTS_ON_CPU ? " (experts on cpu)" : "", t_load, n_prompt,
               (double)n_prompt / t_pre, n_decode, (double)n_decode / t_dec, (int)next);
    free(tok);
    dsv3_context_free(ctx);
    dsv3_model_free(m);
    return rc ? 1 : 0;
}
