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
#include "tinymodel.h"

extern const dsv3_backend_ops dsv3__backend_cudaemu;
/* tests/cudaemu controls: fail the Nth device allocation from now; bytes
 * of device memory in use */
void dsv3emu_fail_malloc_at(long n);
size_t dsv3emu_bytes_allocated(void);

/* Device allocations failing one after the other while a context is made
 * and decodes (its buffers, its instance's scratch): every failure is a
 * clean DSV3_E_NOMEM with a message, nothing leaks, and the same context
 * works once memory is back. */
START_TEST(device_out_of_memory)
{
    tm_model tm;
    dsv3_hparams hp = tm_tiny_hparams();
    ck_assert_int_eq(tm_model_init(&tm, &hp, DSV3_DTYPE_BF16, 0, 3, NULL), DSV3_OK);
    bc_model bm;
    bc_model_copy(tm.m, &dsv3__backend_cudaemu, 0, &bm);
    size_t base = dsv3emu_bytes_allocated();
    int32_t t[9] = {5, 17, 300, 2, 999, 41, 8, 64, 512};
    int ok = 0;
    for (long n = 1; n < 40 && !ok; n++) {
        dsv3_context_params p;
        dsv3_context_params_init(&p, sizeof p);
        p.n_ctx = 32;
        dsv3_context *ctx = NULL;
        dsv3emu_fail_malloc_at(n);
        int rc = dsv3_context_new(bm.m, &p, &ctx), made = rc == DSV3_OK;
        if (made && (rc = dsv3_context_decode(ctx, t, 9, 0)) == DSV3_OK)
            ok = 1;
        ck_assert_msg(rc == DSV3_OK || rc == DSV3_E_NOMEM, "allocation %ld: %s", n,
                      dsv3_strerror(rc));
        if (rc)
            ck_assert(strlen(dsv3_context_errmsg(ctx)) > 0);
        dsv3emu_fail_malloc_at(0);
        if (rc && made) { /* usable again once memory is back */
            ck_assert_uint_eq(dsv3_context_n_past(ctx), 0);
            rc = dsv3_context_decode(ctx, t, 9, 0);
            ck_assert_msg(rc == DSV3_OK, "after allocation %ld failed: %s", n,
                          dsv3_context_errmsg(ctx));
        }
        dsv3_context_free(ctx);
        ck_assert_uint_eq(dsv3emu_bytes_allocated(), base);
    }
    ck_assert_msg(ok, "decoding never succeeded");
    bc_model_free(&bm);
    tm_model_release(&tm);
}
END_TEST

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
    TCase *tc = tcase_create("memory");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, device_out_of_memory);
    suite_add_tcase(s, tc);
    if (!full)
        return tu_run_suite(s);
    tc = tcase_create("reference");
    tcase_set_timeout(tc, 600);
    int n = 0;
    while (rc_case_names[n])
        n++;
    tcase_add_loop_test(tc, reference_vectors, 0, n);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
