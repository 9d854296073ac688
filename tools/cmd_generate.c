/*
 * cmd_generate.c - dsv3 generate: stream a completion of a prompt.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

#define CMD "generate"

/* Defaults of the options (the sampling ones are the library's). */
#define DEF_N 256
#define DEF_TEMP 0.8f
#define DEF_TOP_K 40
#define DEF_TOP_P 0.95f
#define DEF_MIN_P 0.05f

static const char SPEC[] = "h,help|m,model:|p,prompt:|n,max-tokens:|temp:|top-k:|top-p:|"
                           "min-p:|seed:|mtp|chat|t,threads:|backend:";

typedef struct gen_opts {
    const char *model;
    const char *prompt;
    int64_t n;
    float temp, top_p, min_p;
    int64_t top_k;
    uint64_t seed;
    bool have_seed, mtp, chat;
    int64_t threads;
    int32_t backend;
} gen_opts;

static void usage(void)
{
    printf("usage: dsv3 generate -m MODEL -p PROMPT [-n N] [--temp T] [--top-k K] [--top-p P]\n"
           "                     [--min-p P] [--seed S] [--mtp] [--chat] [-t THREADS]\n"
           "                     [--backend cpu|cuda]\n\n"
           "Stream a completion of PROMPT to stdout; speed goes to stderr.\n\n"
           "  -m, --model MODEL     model directory (or its model.dsv3)\n"
           "  -p, --prompt PROMPT   the text to complete (BOS is added when the model has one)\n"
           "  -n, --max-tokens N    tokens to generate, 0 = until the context is full "
           "(default %d)\n"
           "      --temp T          temperature, 0 = greedy (default %.2f)\n"
           "      --top-k K         keep the K most likely tokens, 0 = off (default %d)\n"
           "      --top-p P         nucleus sampling in (0, 1], 1 = off (default %.2f)\n"
           "      --min-p P         drop tokens below P times the most likely, in [0, 1],\n"
           "                        0 = off (default %.2f)\n"
           "      --seed S          random seed, 0 ... 2^64-1 (default: from the clock,\n"
           "                        printed on stderr)\n"
           "      --mtp             speculative decoding with the model's MTP module\n"
           "                        (prints the draft acceptance on stderr)\n"
           "      --chat            wrap PROMPT in the model's chat template as a user turn\n"
           "  -t, --threads N       compute threads, 1 ... 1024 (default: all CPUs)\n"
           "      --backend NAME    cpu or cuda (default: cuda when a device exists)\n",
           DEF_N, DEF_TEMP, DEF_TOP_K, DEF_TOP_P, DEF_MIN_P);
}

static bool parse_u64(const char *opt, const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || s[0] == ' ') {
        cli_error(CMD, "--%s: expected an integer in [0, 18446744073709551615], got '%s'", opt,
                  s);
        return false;
    }
    *out = v;
    return true;
}

/* A float option in [lo, hi] (lo excluded when lo_open). */
static bool parse_prob(const char *opt, const char *s, float lo, bool lo_open, float hi,
                       float *out)
{
    float v;
    if (!cli_parse_f32(CMD, opt, s, &v))
        return false;
    if ((lo_open ? v <= lo : v < lo) || v > hi) {
        cli_error(CMD, "--%s: expected a number in %c%g, %g], got '%s'", opt, lo_open ? '(' : '[',
                  lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

/* One option; false after printing an error. */
static bool take_option(gen_opts *g, const char *opt, const char *v)
{
    if (!strcmp(opt, "model"))
        g->model = v;
    else if (!strcmp(opt, "prompt"))
        g->prompt = v;
    else if (!strcmp(opt, "max-tokens"))
        return cli_parse_i64(CMD, opt, v, 0, INT32_MAX, &g->n);
    else if (!strcmp(opt, "temp")) {
        if (!cli_parse_f32(CMD, opt, v, &g->temp))
            return false;
        if (g->temp < 0)
            return !cli_error(CMD, "--temp: expected a number >= 0 (0 is greedy), got '%s'", v);
    } else if (!strcmp(opt, "top-k"))
        return cli_parse_i64(CMD, opt, v, 0, INT32_MAX, &g->top_k);
    else if (!strcmp(opt, "top-p"))
        return parse_prob(opt, v, 0.0f, true, 1.0f, &g->top_p);
    else if (!strcmp(opt, "min-p"))
        return parse_prob(opt, v, 0.0f, false, 1.0f, &g->min_p);
    else if (!strcmp(opt, "seed"))
        return (g->have_seed = parse_u64(opt, v, &g->seed));
    else if (!strcmp(opt, "mtp"))
        g->mtp = true;
    else if (!strcmp(opt, "chat"))
        g->chat = true;
    else if (!strcmp(opt, "threads"))
        return cli_parse_i64(CMD, opt, v, 1, 1024, &g->threads);
    else if (!strcmp(opt, "backend")) {
        if (!strcmp(v, "cpu"))
            g->backend = DSV3_BACKEND_CPU;
        else if (!strcmp(v, "cuda"))
            g->backend = DSV3_BACKEND_CUDA;
        else
            return !cli_error(CMD, "--backend: expected cpu or cuda, got '%s'", v);
    }
    return true;
}

/* Parse the command line: 0 to go on, otherwise the exit status + 1. */
static int parse(int argc, char **argv, gen_opts *g)
{
    memset(g, 0, sizeof *g);
    g->n = DEF_N;
    g->temp = DEF_TEMP;
    g->top_k = DEF_TOP_K;
    g->top_p = DEF_TOP_P;
    g->min_p = DEF_MIN_P;
    g->backend = DSV3_BACKEND_AUTO;
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt;
    while ((opt = cli_next(&o, SPEC))) {
        if (!strcmp(opt, "?"))
            return 2;
        if (!strcmp(opt, "help")) {
            usage();
            return 1;
        }
        if (!take_option(g, opt, o.value))
            return 2;
    }
    if (o.n_positional)
        return 1 + cli_error(CMD, "unexpected argument '%s' (the prompt goes after -p)",
                             o.positional[0]);
    if (!g->model)
        return 1 + cli_error(CMD, "missing -m MODEL (see dsv3 generate --help)");
    if (!g->prompt)
        return 1 + cli_error(CMD, "missing -p PROMPT (see dsv3 generate --help)");
    if (!g->have_seed)
        g->seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);
    return 0;
}

static int make_sampler(const gen_opts *g, dsv3_sampler **smp)
{
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.temperature = g->temp;
    sp.top_k = (int32_t)g->top_k;
    sp.top_p = g->top_p;
    sp.min_p = g->min_p;
    sp.seed = g->seed;
    int rc = dsv3_sampler_new(&sp, smp);
    if (rc)
        cli_error(CMD, "sampler: %s", *smp ? dsv3_sampler_errmsg(*smp) : dsv3_strerror(rc));
    return rc;
}

/* The prompt as tokens (malloc'ed): raw text with BOS, or a chat turn. */
static int prompt_tokens(const gen_opts *g, dsv3_model *m, int32_t **toks, size_t *n)
{
    char *chat = NULL;
    const char *text = g->prompt;
    uint32_t flags = 0;
    int rc;
    if (g->chat) {
        dsv3_chat_message msg = {"user", g->prompt};
        size_t len = 0;
        rc = dsv3_chat_apply(m, &msg, 1, DSV3_CHAT_ADD_GENERATION_PROMPT, NULL, 0, &len);
        if (rc == DSV3_E_NOSPC && (chat = malloc(len + 1)))
            rc = dsv3_chat_apply(m, &msg, 1, DSV3_CHAT_ADD_GENERATION_PROMPT, chat, len + 1,
                                 &len);
        if (rc)
            goto fail;
        text = chat; /* the template already starts with BOS */
    } else {
        dsv3_model_info info = {.struct_size = sizeof info};
        if (dsv3_model_info_get(m, &info) == DSV3_OK && info.bos_token >= 0)
            flags |= DSV3_TOKENIZE_ADD_BOS;
    }
    size_t need = 0;
    rc = dsv3_tokenize(m, text, strlen(text), flags, NULL, 0, &need);
    if (rc == DSV3_E_NOSPC && (*toks = malloc((need ? need : 1) * sizeof **toks)))
        rc = dsv3_tokenize(m, text, strlen(text), flags, *toks, need, n);
fail:
    free(chat);
    if (rc)
        cli_error(CMD, "%s: %s", g->chat ? "chat template" : "tokenize",
                  rc == DSV3_E_NOSPC ? dsv3_strerror(DSV3_E_NOMEM) : dsv3_model_errmsg(m));
    return rc;
}

static int on_token(const dsv3_token_event *ev, void *user_data)
{
    (void)user_data;
    if (ev->text_len) {
        fwrite(ev->text, 1, ev->text_len, stdout);
        fflush(stdout);
    }
    return 0;
}

static const char *stop_name(int32_t r)
{
    static const char *const names[] = {"none", "end of sequence", "stop string", "max tokens",
                                        "context full", "callback", "canceled", "error"};
    return r >= 0 && r < 8 ? names[r] : "?";
}

static void report(const gen_opts *g, const dsv3_generate_result *r)
{
    if (isatty(STDOUT_FILENO))
        fputc('\n', stdout);
    fflush(stdout);
    fprintf(stderr, "prompt: %u tokens in %.3f s (%.2f tok/s)\n", r->n_prompt,
            r->prompt_seconds, r->prompt_seconds > 0 ? r->n_prompt / r->prompt_seconds : 0.0);
    fprintf(stderr, "generation: %u tokens in %.3f s (%.2f tok/s); stop: %s; seed %" PRIu64
            "\n", r->n_generated, r->generate_seconds,
            r->generate_seconds > 0 ? r->n_generated / r->generate_seconds : 0.0,
            stop_name(r->stop_reason), g->seed);
    if (g->mtp)
        fprintf(stderr, "mtp: %" PRIu64 " drafted, %" PRIu64 " accepted (%.1f%%)\n",
                r->n_drafted, r->n_accepted,
                r->n_drafted ? 100.0 * (double)r->n_accepted / (double)r->n_drafted : 0.0);
}

static int run(const gen_opts *g, dsv3_sampler *smp)
{
    dsv3_model_params mp;
    dsv3_model_params_init(&mp, sizeof mp);
    mp.backend = g->backend;
    mp.n_threads = (int32_t)g->threads;
    dsv3_model *m = NULL;
    dsv3_context *ctx = NULL;
    int32_t *toks = NULL;
    size_t n_toks = 0;
    int rc = dsv3_model_load(g->model, &mp, &m);
    if (rc) {
        cli_error(CMD, "cannot load model '%s': %s", g->model,
                  m ? dsv3_model_errmsg(m) : dsv3_strerror(rc));
        goto out;
    }
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.flags = g->mtp ? DSV3_CONTEXT_MTP : 0;
    cp.n_threads = (int32_t)g->threads;
    if ((rc = dsv3_context_new(m, &cp, &ctx))) {
        cli_error(CMD, "cannot create a context: %s",
                  ctx ? dsv3_context_errmsg(ctx) : dsv3_model_errmsg(m));
        goto out;
    }
    if ((rc = prompt_tokens(g, m, &toks, &n_toks)))
        goto out;
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = (int32_t)g->n;
    dsv3_generate_result res = {.struct_size = sizeof res};
    rc = dsv3_generate(ctx, smp, toks, n_toks, &gp, on_token, NULL, &res);
    if (rc) {
        fflush(stdout);
        cli_error(CMD, "%s", dsv3_context_errmsg(ctx));
    } else {
        report(g, &res);
    }
out:
    free(toks);
    dsv3_context_free(ctx);
    dsv3_model_free(m);
    return rc ? 1 : 0;
}

int cmd_generate(int argc, char **argv)
{
    gen_opts g;
    int st = parse(argc, argv, &g);
    if (st)
        return st - 1;
    dsv3_sampler *smp = NULL;
    if (make_sampler(&g, &smp)) {
        dsv3_sampler_free(smp);
        return 1;
    }
    int rc = run(&g, smp);
    dsv3_sampler_free(smp);
    return rc;
}
