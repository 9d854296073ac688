/*
 * game_loop.c - a 60 frames/s loop that receives generated tokens without
 * ever blocking on the model.
 *
 * usage: game_loop [MODEL_DIR] [PROMPT]
 *
 * Each frame: uv_run(UV_RUN_NOWAIT) once (token callbacks run there), a bit
 * of simulated frame work, then sleep until the next 16.67 ms deadline. When
 * the generation is done, the frame-time percentiles are printed; the worst
 * frame shows whether the loop ever waited for the model.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <dsv3_uv.h>

#ifndef DEFAULT_MODEL
#define DEFAULT_MODEL "models/dsv3-tiny-stories"
#endif

#define FRAME_MS (1000.0 / 60.0)
#define MAX_FRAMES (60 * 600) /* ten minutes at most */

typedef struct game {
    int done;
    int status;
    int n_tokens;
    char text[4096];
    size_t text_len;
} game;

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void sleep_until(double t_ms)
{
    double d = t_ms - now_ms();
    if (d <= 0)
        return;
    struct timespec ts;
    ts.tv_sec = (time_t)(d / 1e3);
    ts.tv_nsec = (long)((d - (double)ts.tv_sec * 1e3) * 1e6);
    nanosleep(&ts, NULL);
}

static int on_token(dsv3_uv_request *req, const dsv3_token_event *ev, void *ud)
{
    game *g = ud;
    (void)req;
    g->n_tokens++;
    if (g->text_len + ev->text_len < sizeof g->text) { /* the "speech bubble" */
        memcpy(g->text + g->text_len, ev->text, ev->text_len);
        g->text_len += ev->text_len;
    }
    return 0;
}

static void on_done(dsv3_uv_request *req, int status, const dsv3_generate_result *res, void *ud)
{
    game *g = ud;
    (void)req;
    (void)res;
    g->status = status;
    g->done = 1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double simulate_frame(int frame)
{
    /* stands in for game logic and rendering: ~1 ms of arithmetic */
    double acc = 0;
    for (int i = 0; i < 200000; i++)
        acc += (double)((i ^ frame) & 7);
    return acc;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : DEFAULT_MODEL;
    const char *prompt = argc > 2 ? argv[2] : "once upon a time, a little girl";
    dsv3_model *model = NULL;
    dsv3_context *ctx = NULL;
    dsv3_sampler *smp = NULL;
    if (dsv3_model_load(path, NULL, &model)) {
        fprintf(stderr, "game_loop: %s\n", dsv3_model_errmsg(model));
        dsv3_model_free(model);
        return 1;
    }
    int32_t toks[256];
    size_t n = 0;
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = 512;
    cp.n_threads = 1; /* leave the other cores to the frame loop */
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.seed = 42;
    int rc = dsv3_tokenize(model, prompt, strlen(prompt), DSV3_TOKENIZE_ADD_BOS, toks, 256, &n);
    if (!rc)
        rc = dsv3_context_new(model, &cp, &ctx);
    if (!rc)
        rc = dsv3_sampler_new(&sp, &smp);
    if (rc) {
        fprintf(stderr, "game_loop: setup failed: %s\n", dsv3_strerror(rc));
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    game g;
    memset(&g, 0, sizeof g);
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 64;
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_token = on_token;
    cb.on_done = on_done;
    cb.user_data = &g;
    rc = dsv3_uv_generate_start(&loop, ctx, smp, toks, n, &gp, &cb, NULL);
    if (rc) {
        fprintf(stderr, "game_loop: start failed: %s\n", dsv3_strerror(rc));
        return 1;
    }
    static double frame_ms[MAX_FRAMES];
    int frames = 0;
    double world_state = 0;
    double next = now_ms() + FRAME_MS;
    while ((!g.done || uv_loop_alive(&loop)) && frames < MAX_FRAMES) {
        double t0 = now_ms();
        uv_run(&loop, UV_RUN_NOWAIT);
        world_state += simulate_frame(frames);
        frame_ms[frames++] = now_ms() - t0;
        sleep_until(next);
        next += FRAME_MS;
    }
    uv_run(&loop, UV_RUN_DEFAULT); /* nothing left; closes the request */
    uv_loop_close(&loop);
    qsort(frame_ms, (size_t)frames, sizeof frame_ms[0], cmp_double);
    printf("%.*s\n", (int)g.text_len, g.text);
    if (world_state < 0) /* keeps the simulated work from being optimised away */
        printf("?\n");
    printf("frames %d, tokens %d: frame work p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms "
           "(budget %.2f ms)\n",
           frames, g.n_tokens, frame_ms[frames / 2], frame_ms[frames * 9 / 10],
           frame_ms[frames * 99 / 100], frame_ms[frames - 1], FRAME_MS);
    dsv3_sampler_free(smp);
    dsv3_context_free(ctx);
    dsv3_model_free(model);
    return g.done && g.status == DSV3_OK && g.n_tokens > 0 ? 0 : 1;
}
