/*
 * cmd_info.c - dsv3 info: what a model directory holds.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "model/model.h"

static const char usage[] =
    "usage: dsv3 info -m MODEL [--verify] [-t THREADS]\n\n"
    "Print a model's hyper-parameters, parameter counts (total and activated per\n"
    "token), bytes on disk and in memory, the compression ratio and the KV-cache\n"
    "bytes per token. Reads the manifest only; --verify also loads every weight\n"
    "(checksums, decompression) and reports the load speed.\n";

static void print_hparams(const dsv3_hparams *hp)
{
    static const char *const scoring[] = {"softmax", "sigmoid"};
    static const char *const topk[] = {"greedy", "group_limited_greedy", "noaux_tc"};
    printf("hyper-parameters:\n");
    printf("  vocab_size %d, hidden_size %d, layers %d (%d dense first, MoE every %d), "
           "MTP modules %d\n",
           hp->vocab_size, hp->hidden_size, hp->n_layers, hp->first_k_dense, hp->moe_layer_freq,
           hp->n_mtp);
    printf("  attention: %d heads, q_lora_rank %d%s, kv_lora_rank %d, head dims nope %d / "
           "rope %d / v %d\n",
           hp->n_heads, hp->q_lora_rank, hp->q_lora_rank ? "" : " (none)", hp->kv_lora_rank,
           hp->qk_nope_dim, hp->qk_rope_dim, hp->v_head_dim);
    printf("  feed-forward: dense width %d", hp->intermediate_size);
    if (hp->n_routed_experts)
        printf(", %d routed experts of width %d (%d per token), %d shared, %d groups keep %d, "
               "%s scores, %s, renormalise %s, scale %g",
               hp->n_routed_experts, hp->moe_intermediate_size, hp->n_experts_per_tok,
               hp->n_shared_experts, hp->n_group, hp->topk_group, scoring[hp->scoring & 1],
               topk[hp->topk_method % 3], hp->norm_topk_prob ? "yes" : "no",
               (double)hp->routed_scaling);
    printf("\n  rope_theta %g", (double)hp->rope_theta);
    if (hp->rope_yarn)
        printf(", yarn factor %g (original %d, beta %g/%g, mscale %g/%g)",
               (double)hp->yarn_factor, hp->yarn_orig_ctx, (double)hp->yarn_beta_fast,
               (double)hp->yarn_beta_slow, (double)hp->yarn_mscale,
               (double)hp->yarn_mscale_all_dim);
    printf(", max positions %d, rms_norm_eps %g, bos %d, eos %d\n", hp->max_position,
           (double)hp->rms_eps, hp->bos_token, hp->eos_token);
}

static void print_summary(const dsv3__model_summary *s)
{
    const dsv3_model_info *in = &s->info;
    print_hparams(&s->hp);
    printf("parameters: %llu total, %llu activated per token, MTP %llu (without its shared "
           "embedding/head)\n",
           (unsigned long long)in->n_params, (unsigned long long)in->n_params_active,
           (unsigned long long)in->n_params_mtp);
    printf("weights: %s matrices; %u tensors in %u shard(s)\n",
           in->weight_dtype == DSV3_DTYPE_FP8_E4M3 ? "fp8"
           : in->weight_dtype == DSV3_DTYPE_BF16   ? "bf16"
           : in->weight_dtype == DSV3_DTYPE_F16    ? "f16"
                                                   : "f32",
           s->n_tensors, s->n_shards);
    double ratio = s->stored_bytes ? (double)s->raw_bytes / (double)s->stored_bytes : 1.0;
    printf("bytes: %llu on disk, %llu in memory, compression ratio %.3f (%llu raw -> %llu "
           "stored)\n",
           (unsigned long long)in->bytes_on_disk, (unsigned long long)in->bytes_in_memory, ratio,
           (unsigned long long)s->raw_bytes, (unsigned long long)s->stored_bytes);
    printf("per decoded token: %llu weight bytes read, %llu KV-cache bytes (F32 cache)\n",
           (unsigned long long)in->bytes_per_token, (unsigned long long)in->kv_bytes_per_token);
    printf("tokenizer: %s, chat template: %s\n", s->has_tokenizer ? "yes" : "no",
           s->chat_kind == 1 ? "deepseek-v3" : s->chat_kind == 2 ? "deepseek-v2" : "none");
}

static int verify(const char *path, int32_t threads)
{
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.n_threads = threads;
    p.backend = DSV3_BACKEND_CPU;
    dsv3_model *m = NULL;
    double t0 = cli_now();
    int rc = dsv3_model_load(path, &p, &m);
    double dt = cli_now() - t0;
    if (rc) {
        cli_error("info", "%s (%s)", dsv3_model_errmsg(m), dsv3_err_name(rc));
        dsv3_model_free(m);
        return 1;
    }
    dsv3_model_info in = {.struct_size = sizeof in};
    dsv3_model_info_get(m, &in);
    printf("verified: loaded %llu bytes in %.2f s (%.2f GB/s)\n",
           (unsigned long long)in.bytes_in_memory, dt, (double)in.bytes_in_memory / dt / 1e9);
    dsv3_model_free(m);
    return 0;
}

int cmd_info(int argc, char **argv)
{
    const char *model = NULL;
    bool do_verify = false;
    int64_t threads = 0;
    cli_opts o;
    cli_opts_init(&o, argc, argv);
    const char *opt;
    while ((opt = cli_next(&o, "h,help|m,model:|verify|t,threads:"))) {
        if (!strcmp(opt, "?"))
            return 1;
        if (!strcmp(opt, "help")) {
            fputs(usage, stdout);
            return 0;
        } else if (!strcmp(opt, "model")) {
            model = o.value;
        } else if (!strcmp(opt, "verify")) {
            do_verify = true;
        } else if (!strcmp(opt, "threads") &&
                   !cli_parse_i64("info", "threads", o.value, 1, 1024, &threads)) {
            return 1;
        }
    }
    if (o.n_positional)
        return cli_error("info", "unexpected argument '%s'", o.positional[0]);
    if (!model)
        return cli_error("info", "missing -m MODEL (see dsv3 info --help)");
    dsv3__model_summary s;
    char err[512];
    int rc = dsv3__model_summary_get(model, NULL, &s, err, sizeof err);
    if (rc)
        return cli_error("info", "%s (%s)", err, dsv3_err_name(rc));
    printf("model: %s\n", model);
    print_summary(&s);
    return do_verify ? verify(model, (int32_t)threads) : 0;
}
