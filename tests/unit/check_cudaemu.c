/*
 * check_cudaemu.c - the CUDA backend's own sources (vtable and kernels),
 * built as C/C++ over the CPU implementation of the CUDA runtime in
 * tests/cudaemu, against the CPU backend: every op, buffers, and forward
 * passes with the whole model or all but the routed experts on it, plus
 * the reference vectors through models loaded on the CPU and copied over.
 * Runs on any machine; the gpu suite (check_cuda.c) runs the same checks
 * on a real device.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "backend_check.h"
#include "refcheck.h"

extern const dsv3_backend_ops dsv3__backend_cudaemu;

/* Each case: loaded on the CPU (checked itself, as the baseline), then
 * copied onto the emulated backend, whole and (V3 and V2 routing) experts
 * apart. To keep the run short here, greedy continuations stop after 2
 * steps and only the first case runs its 200-token prompt (the gpu suite
 * runs everything). */
START_TEST(reference_vectors)
{
    const char *name = rc_case_names[_i];
    char err[512] = "";
    rc_case c;
    ck_assert_msg(rc_case_load(name, &c, err, sizeof err) == 0, "%s", err);
    char *dir = tu_mkdtemp("cudaemu-ref"), *model = NULL;
    ck_assert(dir != NULL);
    ck_assert_msg(rc_case_convert(&c, dir, &model, err, sizeof err) == 0, "%s: %s", name, err);
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.backend = DSV3_BACKEND_CPU;
    p.n_threads = 2;
    dsv3_model *m = NULL;
    ck_assert_msg(dsv3_model_load(model, &p, &m) == DSV3_OK, "%s", dsv3_model_errmsg(m));
    double d;
    ck_assert_msg(rc_check_model(m, &c, 32, 1, &d, err, sizeof err) == 0, "%s on the CPU: %s", name,
                  err);
    for (int apart = 0; apart < (_i == 0 || _i == 3 ? 2 : 1); apart++) {
        bc_model bm;
        bc_model_copy(m, &dsv3__backend_cudaemu, apart, &bm);
        int rc = rc_check_model(bm.m, &c, 2, _i == 0 && !apart, &d, err, sizeof err);
        ck_assert_msg(rc == 0, "%s%s: %s", name, apart ? " (experts apart)" : "", err);
        bc_model_free(&bm);
    }
    dsv3_model_free(m);
    tu_rmtree(dir);
    free(dir);
    free(model);
    rc_case_free(&c);
}
END_TEST

int main(void)
{
    /* sanitizer builds (DSV3_CUDAEMU_OPS_ONLY, set by meson): the op and
     * buffer checks only, which is where the memory checking pays; the
     * forward passes take tens of minutes there */
    const char *quick = getenv("DSV3_CUDAEMU_OPS_ONLY");
    int full = !(quick && *quick && strcmp(quick, "0"));
    bc_set_backend(&dsv3__backend_cudaemu);
    Suite *s = suite_create("cudaemu");
    bc_add_tcases(s, full);
    if (!full)
        return tu_run_suite(s);
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 600);
    int n = 0;
    while (rc_case_names[n])
        n++;
    tcase_add_loop_test(tc, reference_vectors, 0, n);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
