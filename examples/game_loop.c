/*
 * game_loop.c - a 60 frames/s loop that receives generated tokens without
 * ever blocking on the model.
 *
 * usage: game_loop [options] [MODEL_DIR] [PROMPT]
 *   -n N              tokens to generate (default 64)
 *   --tokens IDS      the prompt as token ids (comma-separated) instead of text
 *   --max-frame-ms X  exit with status 1 if a frame's work took longer than X ms
 *
 * Each frame: uv_run(UV_RUN_NOWAIT) once (token callbacks run there), a bit
 * of simulated frame work, then sleep until the next 16.67 ms deadline. When
 * the generation is done, the percentiles of the frames' work while tokens
 * were being generated are printed; the worst frame shows whether the loop
 * ever waited for the model. A model without a tokenizer (such as the
 * synthetic test models) gets the prompt's bytes as token ids.
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
#define MAX_PROMPT 256

typedef struct game {
    int done;
    int status;
    int n_tokens;
    int frame_tokens; /* tokens received in the current frame */
    char text[4096];  /* the "speech bubble" */
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
    g->frame_tokens++;
    if (g->text_len + ev->text_len < sizeof g->text) {
        memcpy(g->text + g->text_len, ev->text, ev->text_len);
        g->text_len += ev->text_len;
    }
    return 0;
}

static void on_error(dsv3_uv_request *req, int status, const char *msg, void *ud)
{
    (void)req;
    (void)ud;
    fprintf(stderr, "game_loop: generation failed: %s: %s\n", dsv3_err_name(status), msg);
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
    /* stands in for game logic and rendering: a fraction of a millisecond */
    double acc = 0;
    for (int i = 0; i < 200000; i++)
        acc += (double)((i ^ frame) & 7);
    return acc;
}

static int parse_ids(const char *text, int32_t *ids, size_t cap, size_t *n)
{
    *n = 0;
    while (*text) {
        char *end;
        long v = strtol(text, &end, 10);
        if (end == text || v < 0 || v > INT32_MAX || *n == cap || (*end && *end != ','))
            return 0;
        ids[(*n)++] = (int32_t)v;
        text = *end ? end + 1 : end;
    }
    return *n > 0;
}

/* The prompt: given ids, else the tokenizer's, else BOS and the text's bytes. */
static int prompt_ids(dsv3_model *model, const dsv3_model_info *info, const char *text,
                      const char *ids, int32_t *toks, size_t *n)
{
    *n = 0;
    if (ids)
        return parse_ids(ids, toks, MAX_PROMPT, n) ? DSV3_OK : DSV3_E_INVAL;
    if (info->flags & DSV3_INFO_HAS_TOKENIZER)
        return dsv3_tokenize(model, text, strlen(text), DSV3_TOKENIZE_ADD_BOS, toks,
                             MAX_PROMPT, n);
    if (info->bos_token >= 0)
        toks[(*n)++] = info->bos_token;
    for (const unsigned char *p = (const unsigned char *)text; *p && *n < 64; p++)
        toks[(*n)++] = (int32_t)(*p % (unsigned)info->vocab_size);
    return DSV3_OK;
}

static double pct(const double *sorted, int n, int p)
{
    return n ? sorted[(size_t)((long)(n - 1) * p / 100)] : 0;
}

typedef struct frame_stats {
    int frames;         /* frames while generating */
    int max_per_frame;  /* most tokens received in one frame */
    int late;           /* frames that started more than one frame late */
    double seconds;     /* time spent generating */
    double *work;       /* [frames] uv_run + frame work, ms */
    double *uvt;        /* [frames] uv_run alone, ms */
    double *interval;   /* [frames] since the previous frame's start, ms */
} frame_stats;

/* Run frames until the request is closed. */
static void frame_loop(uv_loop_t *loop, game *g, frame_stats *st)
{
    int all = 0;
    double world = 0, start = now_ms(), next = start + FRAME_MS, prev = start;
    while (uv_loop_alive(loop) && all < MAX_FRAMES) {
        int generating = !g->done;
        g->frame_tokens = 0;
        double t0 = now_ms();
        uv_run(loop, UV_RUN_NOWAIT);
        double t1 = now_ms();
        world += simulate_frame(all);
        double t2 = now_ms();
        if (generating) {
            int i = st->frames++;
            st->work[i] = t2 - t0;
            st->uvt[i] = t1 - t0;
            st->interval[i] = t0 - prev;
            if (st->interval[i] > 2 * FRAME_MS)
                st->late++;
            if (g->frame_tokens > st->max_per_frame)
                st->max_per_frame = g->frame_tokens;
            st->seconds = (t2 - start) / 1e3;
        }
        prev = t0;
        all++;
        if (now_ms() > next) /* behind (the machine is busy): restart the schedule */
            next = now_ms();
        sleep_until(next);
        next += FRAME_MS;
    }
    if (world < 0) /* keeps the simulated work from being optimised away */
        printf("?\n");
}

static void report(frame_stats *st)
{
    int n = st->frames;
    qsort(st->work, (size_t)n, sizeof(double), cmp_double);
    qsort(st->uvt, (size_t)n, sizeof(double), cmp_double);
    qsort(st->interval, (size_t)n, sizeof(double), cmp_double);
    printf("frames while generating: %d in %.2f s (%.1f frames/s), %d started over a frame "
           "late; at most %d tokens in one frame\n", n, st->seconds,
           st->seconds > 0 ? n / st->seconds : 0, st->late, st->max_per_frame);
    printf("frame work (uv_run + simulated work): p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, "
           "max %.3f ms (budget %.2f ms)\n", pct(st->work, n, 50), pct(st->work, n, 90),
           pct(st->work, n, 99), pct(st->work, n, 100), FRAME_MS);
    printf("uv_run alone: p50 %.3f ms, p99 %.3f ms, max %.3f ms; frame interval: p50 %.2f ms, "
           "p99 %.2f ms, max %.2f ms\n", pct(st->uvt, n, 50), pct(st->uvt, n, 99),
           pct(st->uvt, n, 100), pct(st->interval, n, 50), pct(st->interval, n, 99),
           pct(st->interval, n, 100));
}

int main(int argc, char **argv)
{
    const char *path = DEFAULT_MODEL, *prompt = "once upon a time, a little girl", *ids = NULL;
    int32_t n_tokens = 64;
    double max_frame_ms = 0;
    int n_pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc)
            n_tokens = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--tokens") && i + 1 < argc)
            ids = argv[++i];
        else if (!strcmp(argv[i], "--max-frame-ms") && i + 1 < argc)
            max_frame_ms = atof(argv[++i]);
        else if (argv[i][0] == '-' || n_pos == 2) {
            fprintf(stderr, "usage: game_loop [-n N] [--tokens IDS] [--max-frame-ms X] "
                            "[MODEL_DIR] [PROMPT]\n");
            return 2;
        } else if (n_pos++ == 0)
            path = argv[i];
        else
            prompt = argv[i];
    }
    dsv3_model *model = NULL;
    dsv3_context *ctx = NULL;
    dsv3_sampler *smp = NULL;
    if (dsv3_model_load(path, NULL, &model)) {
        fprintf(stderr, "game_loop: %s\n", dsv3_model_errmsg(model));
        dsv3_model_free(model);
        return 1;
    }
    dsv3_model_info info;
    memset(&info, 0, sizeof info);
    info.struct_size = sizeof info;
    dsv3_model_info_get(model, &info);
    int32_t toks[MAX_PROMPT];
    size_t n = 0;
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = info.max_position > 0 && info.max_position < 1024 ? (uint32_t)info.max_position
                                                                   : 1024;
    cp.n_threads = 1; /* leave the other cores to the frame loop */
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.seed = 42;
    int rc = prompt_ids(model, &info, prompt, ids, toks, &n);
    if (!rc)
        rc = dsv3_context_new(model, &cp, &ctx);
    if (!rc)
        rc = dsv3_sampler_new(&sp, &smp);
    if (rc) {
        fprintf(stderr, "game_loop: setup failed: %s\n", dsv3_strerror(rc));
        dsv3_sampler_free(smp);
        dsv3_context_free(ctx);
        dsv3_model_free(model);
        return 1;
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    static game g;
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = n_tokens;
    dsv3_uv_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.struct_size = sizeof cb;
    cb.on_token = on_token;
    cb.on_error = on_error;
    cb.on_done = on_done;
    cb.user_data = &g;
    rc = dsv3_uv_generate_start(&loop, ctx, smp, toks, n, &gp, &cb, NULL);
    static double work[MAX_FRAMES], uvt[MAX_FRAMES], interval[MAX_FRAMES];
    frame_stats st = {0, 0, 0, 0, work, uvt, interval};
    if (rc)
        fprintf(stderr, "game_loop: start failed: %s\n", dsv3_strerror(rc));
    else
        frame_loop(&loop, &g, &st);
    uv_loop_close(&loop);
    if (!(info.flags & DSV3_INFO_HAS_TOKENIZER))
        printf("(no tokenizer: %d token ids received)\n", g.n_tokens);
    else
        printf("%.*s\n", (int)g.text_len, g.text);
    report(&st);
    double worst = pct(work, st.frames, 100);
    dsv3_sampler_free(smp);
    dsv3_context_free(ctx);
    dsv3_model_free(model);
    int ok = !rc && g.done && g.status == DSV3_OK && g.n_tokens > 0;
    if (ok && max_frame_ms > 0 && worst > max_frame_ms) {
        fprintf(stderr, "game_loop: the worst frame took %.3f ms (limit %.3f ms)\n", worst,
                max_frame_ms);
        ok = 0;
    }
    return ok ? 0 : 1;
}
