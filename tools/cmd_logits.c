/*
 * cmd_logits.c - dsv3 logits: raw logits of a token sequence (prefill, then
 * one-token decode steps through the cache), and the MTP module's drafts.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "model/model.h"

static const char usage[] =
    "usage: dsv3 logits -m MODEL --tokens ID,ID,... [--decode-tokens ID,...]\n"
    "                   [--all-positions] [--mtp-draft FILE] -o FILE\n"
    "                   [-t THREADS] [--backend cpu|cuda] [--naive] [--kv-bf16] [--batch N]\n\n"
    "Prefill --tokens in one call, then feed each --decode-tokens id one at a time\n"
    "through the KV cache. FILE receives little-endian float32 rows of vocab_size\n"
    "values: the last prefill position's logits (every prefill position with\n"
    "--all-positions), then one row per decode token.\n"
    "--mtp-draft FILE also writes the MTP module's draft logits for every prefill\n"
    "position i, from the main model's final-normed hidden state at i and the token\n"
    "at i+1 (for the last position: the main model's argmax there).\n"
    "--naive uses the naive (decompressed) attention, --kv-bf16 a BF16 cache,\n"
    "--batch the tokens per internal forward chunk.\n";

/* Parse "1,2,3" into a malloc'ed array. */
static bool parse_ids(const char *opt, const char *s, int32_t **out, size_t *n)
{
    size_t cap = 1;
    for (const char *p = s; *p; p++)
        cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) {
        cli_error("logits", "out of memory");
        return false;
    }
    size_t k = 0;
    const char *p = s;
    for (;;) {
        char *end;
        errno = 0;
        long long x = strtoll(p, &end, 10);
        if (end == p || errno || x < 0 || x > INT32_MAX || (*end && *end != ',') ||
            !(*p >= '0' && *p <= '9')) {
            cli_error("logits", "--%s: '%s' is not a list of token ids", opt, s);
            free(v);
            return false;
        }
        v[k++] = (int32_t)x;
        if (!*end)
            break;
        p = end + 1;
    }
    *out = v;
    *n = k;
    return true;
}

static int32_t argmax(const float *x, int32_t n)
{
    int32_t b = 0;
    for (int32_t i = 1; i < n; i++)
        if (x[i] > x[b])
            b = i;
    return b;
}

typedef struct job {
    const char *model, *out, *mtp_out;
    int32_t *tok, *dec;
    size_t n_tok, n_dec;
    bool all, naive, kv_bf16;
    int64_t threads, batch;
    int32_t backend;
} job;

static int fail_ctx(dsv3_context *c, int rc)
{
    return cli_error("logits", "%s (%s)", dsv3_context_errmsg(c), dsv3_err_name(rc));
}

static int write_rows(FILE *f, const char *path, const float *rows, size_t n)
{
    if (fwrite(rows, sizeof(float), n, f) != n)
        return cli_error("logits", "%s: %s", path, strerror(errno));
    return 0;
}

/* Draft logits for every prefill position (the MTP module). */
static int mtp_drafts(const job *j, dsv3_context *c, int32_t V)
{
    const float *last;
    int rc = dsv3_context_logits(c, -1, &last);
    if (rc)
        return fail_ctx(c, rc);
    int32_t *next = malloc(j->n_tok * sizeof *next);
    if (!next)
        return cli_error("logits", "out of memory");
    memcpy(next, j->tok + 1, (j->n_tok - 1) * sizeof *next);
    next[j->n_tok - 1] = argmax(last, V);
    rc = dsv3__context_mtp_eval(c, next, j->n_tok, DSV3_DECODE_ALL_LOGITS);
    free(next);
    if (rc)
        return fail_ctx(c, rc);
    FILE *f = fopen(j->mtp_out, "wb");
    if (!f)
        return cli_error("logits", "%s: %s", j->mtp_out, strerror(errno));
    int err = 0;
    for (size_t i = 0; !err && i < j->n_tok; i++) {
        const float *row;
        if ((rc = dsv3__context_mtp_logits(c, (int32_t)i, &row)))
            err = fail_ctx(c, rc);
        else
            err = write_rows(f, j->mtp_out, row, (size_t)V);
    }
    if (fclose(f) && !err)
        err = cli_error("logits", "%s: %s", j->mtp_out, strerror(errno));
    return err;
}

static int evaluate(const job *j, dsv3_context *c, int32_t V, FILE *f)
{
    int rc = dsv3_context_decode(c, j->tok, j->n_tok, j->all ? DSV3_DECODE_ALL_LOGITS : 0);
    if (rc)
        return fail_ctx(c, rc);
    size_t first = j->all ? 0 : j->n_tok - 1;
    for (size_t i = first; i < j->n_tok; i++) {
        const float *row;
        if ((rc = dsv3_context_logits(c, (int32_t)i, &row)))
            return fail_ctx(c, rc);
        if (write_rows(f, j->out, row, (size_t)V))
            return 1;
    }
    if (j->mtp_out && mtp_drafts(j, c, V))
        return 1;
    for (size_t i = 0; i < j->n_dec; i++) {
        const float *row;
        if ((rc = dsv3_context_decode(c, j->dec + i, 1, 0)) ||
            (rc = dsv3_context_logits(c, -1, &row)))
            return fail_ctx(c, rc);
        if (write_rows(f, j->out, row, (size_t)V))
            return 1;
    }
    return 0;
}

static int run(const job *j)
{
    dsv3_model_params mp;
    dsv3_model_params_init(&mp, sizeof mp);
    mp.backend = j->backend;
    mp.n_threads = (int32_t)j->threads;
    if (!j->mtp_out)
        mp.flags |= DSV3_MODEL_NO_MTP;
    dsv3_model *m = NULL;
    int rc = dsv3_model_load(j->model, &mp, &m);
    if (rc) {
        cli_error("logits", "%s (%s)", dsv3_model_errmsg(m), dsv3_err_name(rc));
        dsv3_model_free(m);
        return 1;
    }
    dsv3_model_info info = {.struct_size = sizeof info};
    dsv3_model_info_get(m, &info);
    dsv3_context_params cp;
    dsv3_context_params_init(&cp, sizeof cp);
    cp.n_ctx = (uint32_t)(j->n_tok + j->n_dec);
    cp.n_threads = (int32_t)j->threads;
    cp.n_batch = (uint32_t)j->batch;
    cp.flags = (j->mtp_out ? DSV3_CONTEXT_MTP : 0) | (j->naive ? DSV3_CONTEXT_NAIVE_ATTN : 0);
    cp.kv_dtype = j->kv_bf16 ? DSV3_DTYPE_BF16 : DSV3_DTYPE_F32;
    dsv3_context *c = NULL;
    int err;
    if ((rc = dsv3_context_new(m, &cp, &c))) {
        err = fail_ctx(c, rc);
    } else {
        FILE *f = fopen(j->out, "wb");
        if (!f) {
            err = cli_error("logits", "%s: %s", j->out, strerror(errno));
        } else {
            err = evaluate(j, c, info.vocab_size, f);
            if (fclose(f) && !err)
                err = cli_error("logits", "%s: %s", j->out, strerror(errno));
        }
    }
    dsv3_context_free(c);
    dsv3_model_free(m);
    return err;
}

static int parse(int argc, char **argv, job *j)
{
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt;
    const char *spec = "h,help|m,model:|tokens:|decode-tokens:|all-positions|mtp-draft:|"
                       "o,output:|t,threads:|backend:|naive|kv-bf16|batch:";
    while ((opt = cli_next(&o, spec))) {
        bool ok = true;
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            fputs(usage, stdout);
            return -1;
        }
        if (!strcmp(opt, "model"))
            j->model = o.value;
        else if (!strcmp(opt, "output"))
            j->out = o.value;
        else if (!strcmp(opt, "mtp-draft"))
            j->mtp_out = o.value;
        else if (!strcmp(opt, "all-positions"))
            j->all = true;
        else if (!strcmp(opt, "naive"))
            j->naive = true;
        else if (!strcmp(opt, "kv-bf16"))
            j->kv_bf16 = true;
        else if (!strcmp(opt, "tokens") || !strcmp(opt, "decode-tokens")) {
            int32_t **ids = !strcmp(opt, "tokens") ? &j->tok : &j->dec;
            if (*ids)
                return cli_error("logits", "--%s given twice", opt);
            ok = parse_ids(opt, o.value, ids, ids == &j->tok ? &j->n_tok : &j->n_dec);
        }
        else if (!strcmp(opt, "threads"))
            ok = cli_parse_i64("logits", opt, o.value, 1, 1024, &j->threads);
        else if (!strcmp(opt, "batch"))
            ok = cli_parse_i64("logits", opt, o.value, 1, 65536, &j->batch);
        else if (!strcmp(opt, "backend")) {
            j->backend = !strcmp(o.value, "cpu") ? DSV3_BACKEND_CPU
                         : !strcmp(o.value, "cuda") ? DSV3_BACKEND_CUDA
                                                    : -1;
            if (j->backend < 0)
                return cli_error("logits", "--backend: '%s' is not cpu or cuda", o.value);
        }
        if (!ok)
            return 1;
    }
    if (o.n_positional)
        return cli_error("logits", "unexpected argument '%s'", o.positional[0]);
    if (!j->model || !j->out || !j->tok)
        return cli_error("logits", "need -m MODEL, --tokens IDS and -o FILE (see --help)");
    return 0;
}

int cmd_logits(int argc, char **argv)
{
    job j = {.backend = DSV3_BACKEND_CPU};
    int rc = parse(argc, argv, &j);
    if (rc == 0)
        rc = run(&j);
    free(j.tok);
    free(j.dec);
    return rc < 0 ? 0 : rc;
}
