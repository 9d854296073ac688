/*
 * check_cuda.c - the CUDA backend on a real device (suite gpu): every op
 * and dtype against the CPU backend, buffers, forward passes of in-memory
 * models (whole, and routed experts on the CPU), contexts on several
 * threads, and the reference vectors through models loaded straight into
 * the device by dsv3_model_load, whole and with DSV3_PLACE_EXPERTS_ON_CPU.
 *
 * Check does not fork here (CUDA must not be used between fork and exec),
 * and the first CUDA call is the availability probe in main. Without a
 * device the suite reports "1..0 # SKIP no CUDA device".
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_check.h"
#include "refcheck.h"

#if DSV3_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif

/* Why there is no device, for the skip line. */
static const char *no_device_reason(void)
{
#if DSV3_HAVE_CUDA
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess)
        return cudaGetErrorString(e);
    return n > 0 ? "no device this build has code for (see -Dgpu_archs)" : "no device";
#else
    return "the CUDA backend is not compiled in";
#endif
}

/* ---- reference vectors through the loader ------------------------------------------- */

static void check_case(const char *name, int32_t placement)
{
    char err[512] = "";
    rc_case c;
    ck_assert_msg(rc_case_load(name, &c, err, sizeof err) == 0, "%s", err);
    char *dir = tu_mkdtemp("cuda-ref"), *model = NULL;
    ck_assert(dir != NULL);
    ck_assert_msg(rc_case_convert(&c, dir, &model, err, sizeof err) == 0, "%s: %s", name, err);
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.backend = DSV3_BACKEND_CUDA;
    p.placement = placement;
    p.n_threads = 4;
    dsv3_model *m = NULL;
    ck_assert_msg(dsv3_model_load(model, &p, &m) == DSV3_OK, "%s: %s", name, dsv3_model_errmsg(m));
    dsv3_model_info info = {.struct_size = sizeof info};
    ck_assert_int_eq(dsv3_model_info_get(m, &info), DSV3_OK);
    ck_assert_int_eq(info.backend, DSV3_BACKEND_CUDA);
    const dsv3_layer_weights *w = &m->w.layers[m->hp.n_layers - 1];
    ck_assert_int_eq(w->q_a.data ? w->q_a.backend : w->q.backend, DSV3_BACKEND_CUDA);
    ck_assert_int_eq(w->exp_gate.backend,
                     placement == DSV3_PLACE_EXPERTS_ON_CPU ? DSV3_BACKEND_CPU : DSV3_BACKEND_CUDA);
    double d;
    int rc = rc_check_model(m, &c, 32, 1, &d, err, sizeof err);
    ck_assert_msg(rc == 0, "%s%s: %s", name,
                  placement == DSV3_PLACE_EXPERTS_ON_CPU ? " (experts on the CPU)" : "", err);
    printf("# %s%s: largest logit difference %.3g\n", name,
           placement == DSV3_PLACE_EXPERTS_ON_CPU ? " (experts on the CPU)" : "", d);
    dsv3_model_free(m);
    tu_rmtree(dir);
    free(dir);
    free(model);
    rc_case_free(&c);
}

START_TEST(reference_whole)
{
    check_case(rc_case_names[_i], DSV3_PLACE_DEFAULT);
}
END_TEST

START_TEST(reference_experts_on_cpu)
{
    check_case(rc_case_names[_i], DSV3_PLACE_EXPERTS_ON_CPU);
}
END_TEST

/* AUTO picks the device. */
START_TEST(auto_picks_cuda)
{
    const dsv3_backend_ops *ops;
    ck_assert_int_eq(dsv3__backend_get(DSV3_BACKEND_AUTO, &ops), DSV3_OK);
    ck_assert_int_eq(ops->id, DSV3_BACKEND_CUDA);
    ck_assert_int_eq(dsv3_backend_available(DSV3_BACKEND_CUDA), 1);
}
END_TEST

/* ---- contexts on several threads -------------------------------------------------------- */

typedef struct job {
    dsv3_model *m;
    float out[1024];
    int rc;
} job;

static void *decode_thread(void *arg)
{
    job *j = arg;
    dsv3_context_params p;
    dsv3_context_params_init(&p, sizeof p);
    p.n_ctx = 64;
    dsv3_context *ctx = NULL;
    j->rc = dsv3_context_new(j->m, &p, &ctx);
    int32_t t[20];
    for (int i = 0; i < 20; i++)
        t[i] = (i * 37 + 11) % 1024;
    for (int i = 0; !j->rc && i < 20; i++)
        j->rc = dsv3_context_decode(ctx, t + i, 1, 0);
    const float *l;
    if (!j->rc && !(j->rc = dsv3_context_logits(ctx, -1, &l)))
        memcpy(j->out, l, sizeof j->out);
    dsv3_context_free(ctx);
    return NULL;
}

START_TEST(contexts_on_threads)
{
    char err[512] = "";
    rc_case c;
    ck_assert_msg(rc_case_load("tiny-bf16", &c, err, sizeof err) == 0, "%s", err);
    char *dir = tu_mkdtemp("cuda-threads"), *model = NULL;
    ck_assert_msg(rc_case_convert(&c, dir, &model, err, sizeof err) == 0, "%s", err);
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.backend = DSV3_BACKEND_CUDA;
    dsv3_model *m = NULL;
    ck_assert_msg(dsv3_model_load(model, &p, &m) == DSV3_OK, "%s", dsv3_model_errmsg(m));
    static job jobs[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        jobs[i].m = m;
        ck_assert_int_eq(pthread_create(&th[i], NULL, decode_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        ck_assert_msg(jobs[i].rc == DSV3_OK, "thread %d: %s", i, dsv3_strerror(jobs[i].rc));
        ck_assert_msg(!memcmp(jobs[i].out, jobs[0].out, sizeof jobs[0].out),
                      "thread %d's logits differ", i);
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
    const dsv3_backend_ops *ops = NULL;
    if (!dsv3_backend_available(DSV3_BACKEND_CUDA) ||
        dsv3__backend_get(DSV3_BACKEND_CUDA, &ops) != DSV3_OK) {
        printf("# %s\n1..0 # SKIP no CUDA device\n", no_device_reason());
        return 0;
    }
    bc_set_backend(ops);
    Suite *s = suite_create("cuda");
    bc_add_tcases(s, 1);
    int n = 0;
    while (rc_case_names[n])
        n++;
    TCase *tc = tcase_create("reference");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, reference_whole, 0, n);
    tcase_add_loop_test(tc, reference_experts_on_cpu, 0, n);
    tcase_add_test(tc, auto_picks_cuda);
    tcase_add_test(tc, contexts_on_threads);
    suite_add_tcase(s, tc);

    SRunner *sr = srunner_create(s);
    srunner_set_fork_status(sr, CK_NOFORK);
    srunner_set_tap(sr, "-");
    srunner_run_all(sr, CK_SILENT);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
