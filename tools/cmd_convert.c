/*
 * cmd_convert.c - dsv3 convert: Hugging Face checkpoint -> libdsv3 model.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "commands.h"

static const char usage[] =
    "usage: dsv3 convert HF_DIR OUT_DIR [--weights f32|bf16|fp8|q8_0|q4] [--level N]\n"
    "                    [--shard-size BYTES] [-t THREADS] [-q]\n\n"
    "Convert a Hugging Face DeepSeek checkpoint (config.json, safetensors with or\n"
    "without model.safetensors.index.json, tokenizer files) into a libdsv3 model\n"
    "directory (model.dsv3 + *.dsv3s shards).\n\n"
    "  --weights T       type of the weight matrices: as stored (default), f32 or\n"
    "                    bf16 (FP8 is dequantized), fp8 (projections quantized to\n"
    "                    e4m3 with 128x128 block scales); q8_0 and q4 are reserved\n"
    "  --level N         zstd level 1-22 (default 3); -1 stores raw data that can\n"
    "                    be memory-mapped\n"
    "  --shard-size B    bytes per shard file (default 2G; suffixes K, M, G)\n"
    "  -t, --threads N   compression threads (default: all CPUs)\n"
    "  -q, --quiet       no progress or warnings on stderr\n";

typedef struct progress_state {
    bool tty;
    int last_pct;
} progress_state;

static int on_progress(const dsv3_progress_event *ev, void *ud)
{
    progress_state *ps = ud;
    int pct = ev->total ? (int)(100.0 * (double)ev->done / (double)ev->total) : 100;
    if (ps->tty) {
        fprintf(stderr, "\rdsv3 convert: %3d%% (%.1f of %.1f MB)", pct, (double)ev->done / 1e6,
                (double)ev->total / 1e6);
        if (ev->done == ev->total)
            fputc('\n', stderr);
    } else if (pct / 10 != ps->last_pct / 10 || ev->done == ev->total) {
        fprintf(stderr, "dsv3 convert: %d%% (%.1f of %.1f MB)\n", pct, (double)ev->done / 1e6,
                (double)ev->total / 1e6);
    }
    ps->last_pct = pct;
    return 0;
}

static void on_log(int32_t level, const char *msg, void *ud)
{
    (void)ud;
    fprintf(stderr, "dsv3 convert: %s%s\n", level <= DSV3_LOG_WARN ? "warning: " : "", msg);
}

static bool parse_weights(const char *s, int32_t *out)
{
    static const struct {
        const char *name;
        int32_t dtype;
    } t[] = {{"f32", DSV3_DTYPE_F32}, {"bf16", DSV3_DTYPE_BF16}, {"fp8", DSV3_DTYPE_FP8_E4M3},
             {"q8_0", DSV3_DTYPE_Q8_0}, {"q4", DSV3_DTYPE_Q4}};
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].name)) {
            *out = t[i].dtype;
            return true;
        }
    return false;
}

static bool parse_size(const char *s, uint64_t *out)
{
    char num[32];
    size_t n = strlen(s);
    uint64_t mul = 1;
    if (n && strchr("kKmMgG", s[n - 1])) {
        char c = s[n - 1];
        mul = (c == 'k' || c == 'K') ? 1024 : (c == 'm' || c == 'M') ? 1024 * 1024 : 1u << 30;
        n--;
    }
    if (n == 0 || n >= sizeof num)
        return false;
    memcpy(num, s, n);
    num[n] = '\0';
    int64_t v;
    if (!cli_parse_i64("convert", "shard-size", num, 1, INT64_MAX / (int64_t)mul, &v))
        return false;
    *out = (uint64_t)v * mul;
    return true;
}

int cmd_convert(int argc, char **argv)
{
    dsv3_convert_params p;
    dsv3_convert_params_init(&p, sizeof p);
    progress_state ps = {isatty(2) != 0, -100};
    bool quiet = false;
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt;
    int64_t v;
    while ((opt = cli_next(&o, "h,help|weights:|level:|shard-size:|t,threads:|q,quiet"))) {
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(opt, "weights")) {
            if (!parse_weights(o.value, &p.weights))
                return cli_error("convert", "--weights: expected f32, bf16, fp8, q8_0 or q4, got "
                                 "'%s'", o.value);
        } else if (!strcmp(opt, "level")) {
            if (!cli_parse_i64("convert", "level", o.value, -1, 22, &v))
                return 1;
            p.level = (int32_t)v;
        } else if (!strcmp(opt, "shard-size")) {
            if (!parse_size(o.value, &p.shard_size))
                return 1;
        } else if (!strcmp(opt, "threads")) {
            if (!cli_parse_i64("convert", "threads", o.value, 1, 1024, &v))
                return 1;
            p.n_threads = (int32_t)v;
        } else if (!strcmp(opt, "quiet")) {
            quiet = true;
        }
    }
    if (o.n_positional != 2)
        return cli_error("convert", "expected HF_DIR and OUT_DIR (see dsv3 convert --help)");
    if (!quiet) {
        p.progress_fn = on_progress;
        p.progress_user_data = &ps;
        p.log_fn = on_log;
        p.log_level = DSV3_LOG_WARN;
    }
    char err[512];
    double t0 = cli_now();
    int rc = dsv3_convert(o.positional[0], o.positional[1], &p, err, sizeof err);
    if (rc)
        return cli_error("convert", "%s (%s)", err, dsv3_err_name(rc));
    if (!quiet)
        fprintf(stderr, "dsv3 convert: wrote %s in %.1f s\n", o.positional[1], cli_now() - t0);
    return 0;
}
