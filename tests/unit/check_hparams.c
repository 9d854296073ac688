/*
 * check_hparams.c - lib/model/hparams.c: config.json of the V3 and V2
 * families (every key used, validated or ignorable), unsupported and
 * malformed values, the rules of ARCHITECTURE.md 1.3, the manifest's
 * key-value form; lib/model/tensors.c's tensor table.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_gen.h"
#include "format/format.h"
#include "model/model.h"
#include "testutil.h"

static dsv3__alloc A;

typedef struct logs {
    int warnings;
    char last[512];
} logs;

static void on_log(int32_t level, const char *msg, void *ud)
{
    logs *l = ud;
    if (level <= DSV3_LOG_WARN) {
        l->warnings++;
        snprintf(l->last, sizeof l->last, "%s", msg);
    }
}

static int parse(const char *json, dsv3_hparams *hp, logs *l, dsv3__err *e)
{
    static logs dummy;
    dsv3__log log = {on_log, l ? l : &dummy, DSV3_LOG_DEBUG};
    if (l)
        memset(l, 0, sizeof *l);
    return dsv3__hparams_from_config(&A, json, strlen(json), hp, &log, e);
}

/* The tiny config with the first `from` replaced by `to`. */
static char *tiny_with(const char *from, const char *to)
{
    char *s = cg_config_json(&cg_tiny);
    if (!from)
        return s;
    char *p = strstr(s, from);
    ck_assert_msg(p, "'%s' not in the config", from);
    char *r = NULL;
    ck_assert_int_ge(asprintf(&r, "%.*s%s%s", (int)(p - s), s, to, p + strlen(from)), 0);
    free(s);
    return r;
}

static int parse_tiny_with(const char *from, const char *to, dsv3__err *e)
{
    char *s = tiny_with(from, to);
    dsv3_hparams hp;
    int rc = parse(s, &hp, NULL, e);
    free(s);
    return rc;
}

START_TEST(tiny_values)
{
    char *s = tiny_with(NULL, NULL);
    dsv3_hparams hp;
    logs l;
    dsv3__err e;
    ck_assert_msg(parse(s, &hp, &l, &e) == DSV3_OK, "%s", e.msg);
    ck_assert_int_eq(l.warnings, 0);
    ck_assert_int_eq(hp.vocab_size, 1024);
    ck_assert_int_eq(hp.hidden_size, 128);
    ck_assert_int_eq(hp.intermediate_size, 384);
    ck_assert_int_eq(hp.moe_intermediate_size, 64);
    ck_assert_int_eq(hp.n_layers, 4);
    ck_assert_int_eq(hp.first_k_dense, 2);
    ck_assert_int_eq(hp.n_heads, 4);
    ck_assert_int_eq(hp.q_lora_rank, 96);
    ck_assert_int_eq(hp.kv_lora_rank, 64);
    ck_assert_int_eq(hp.qk_nope_dim, 32);
    ck_assert_int_eq(hp.qk_rope_dim, 16);
    ck_assert_int_eq(hp.v_head_dim, 32);
    ck_assert_int_eq(hp.n_routed_experts, 16);
    ck_assert_int_eq(hp.n_shared_experts, 1);
    ck_assert_int_eq(hp.n_experts_per_tok, 4);
    ck_assert_int_eq(hp.n_group, 4);
    ck_assert_int_eq(hp.topk_group, 2);
    ck_assert_int_eq(hp.scoring, DSV3_SCORING_SIGMOID);
    ck_assert_int_eq(hp.topk_method, DSV3_TOPK_NOAUX_TC);
    ck_assert_int_eq(hp.norm_topk_prob, 1);
    ck_assert_int_eq(hp.n_mtp, 1);
    ck_assert_int_eq(hp.max_position, 256);
    ck_assert_int_eq(hp.bos_token, 0);
    ck_assert_int_eq(hp.eos_token, 1);
    ck_assert(hp.routed_scaling == 2.5f && hp.rms_eps == 1e-6f && hp.rope_theta == 10000.0f);
    ck_assert_int_eq(hp.rope_yarn, 1);
    ck_assert_int_eq(hp.yarn_orig_ctx, 64);
    ck_assert(hp.yarn_factor == 4.0f && hp.yarn_beta_fast == 32.0f && hp.yarn_beta_slow == 1.0f);
    ck_assert(hp.yarn_mscale == 1.0f && hp.yarn_mscale_all_dim == 1.0f);
    ck_assert(dsv3__hp_layer_is_moe(&hp, 2) && !dsv3__hp_layer_is_moe(&hp, 1));
    ck_assert(dsv3__hp_layer_is_moe(&hp, 4)); /* the MTP layer */
    free(s);
}
END_TEST

/* DeepSeek-V2-Lite's published config.json: no warning, V2 routing. */
static const char v2_lite[] =
    "{\"architectures\": [\"DeepseekV2ForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"auto_map\": {\"AutoConfig\": \"configuration_deepseek."
    "DeepseekV2Config\"}, \"aux_loss_alpha\": 0.001, \"bos_token_id\": 100000,"
    " \"eos_token_id\": 100001, \"first_k_dense_replace\": 1, \"hidden_act\": \"silu\","
    " \"hidden_size\": 2048, \"initializer_range\": 0.02, \"intermediate_size\": 10944,"
    " \"kv_lora_rank\": 512, \"max_position_embeddings\": 163840, \"model_type\": "
    "\"deepseek_v2\", \"moe_intermediate_size\": 1408, \"moe_layer_freq\": 1, \"n_group\": 1,"
    " \"n_routed_experts\": 64, \"n_shared_experts\": 2, \"norm_topk_prob\": false,"
    " \"num_attention_heads\": 16, \"num_experts_per_tok\": 6, \"num_hidden_layers\": 27,"
    " \"num_key_value_heads\": 16, \"pretraining_tp\": 1, \"q_lora_rank\": null,"
    " \"qk_nope_head_dim\": 128, \"qk_rope_head_dim\": 64, \"rms_norm_eps\": 1e-06,"
    " \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40, \"mscale\": 0.707,"
    " \"mscale_all_dim\": 0.707, \"original_max_position_embeddings\": 4096, \"type\": \"yarn\"},"
    " \"rope_theta\": 10000, \"routed_scaling_factor\": 1.0, \"scoring_func\": \"softmax\","
    " \"seq_aux\": true, \"tie_word_embeddings\": false, \"topk_group\": 1, \"topk_method\":"
    " \"greedy\", \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.39.3\","
    " \"use_cache\": true, \"v_head_dim\": 128, \"vocab_size\": 102400}";

/* DeepSeek-V3's (values of ARCHITECTURE.md 1.2), with quantization_config. */
static const char v3[] =
    "{\"architectures\": [\"DeepseekV3ForCausalLM\"], \"attention_bias\": false,"
    " \"attention_dropout\": 0.0, \"aux_loss_alpha\": 0.001, \"bos_token_id\": 0,"
    " \"eos_token_id\": 1, \"ep_size\": 1, \"first_k_dense_replace\": 3, \"hidden_act\": \"silu\","
    " \"hidden_size\": 7168, \"initializer_range\": 0.02, \"intermediate_size\": 18432,"
    " \"kv_lora_rank\": 512, \"max_position_embeddings\": 163840, \"model_type\": "
    "\"deepseek_v3\", \"moe_intermediate_size\": 2048, \"moe_layer_freq\": 1, \"n_group\": 8,"
    " \"n_routed_experts\": 256, \"n_shared_experts\": 1, \"norm_topk_prob\": true,"
    " \"num_attention_heads\": 128, \"num_experts_per_tok\": 8, \"num_hidden_layers\": 61,"
    " \"num_key_value_heads\": 128, \"num_nextn_predict_layers\": 1, \"pretraining_tp\": 1,"
    " \"q_lora_rank\": 1536, \"qk_nope_head_dim\": 128, \"qk_rope_head_dim\": 64,"
    " \"quantization_config\": {\"activation_scheme\": \"dynamic\", \"fmt\": \"e4m3\","
    " \"quant_method\": \"fp8\", \"weight_block_size\": [128, 128]}, \"rms_norm_eps\": 1e-06,"
    " \"rope_scaling\": {\"beta_fast\": 32, \"beta_slow\": 1, \"factor\": 40, \"mscale\": 1.0,"
    " \"mscale_all_dim\": 1.0, \"original_max_position_embeddings\": 4096, \"type\": \"yarn\"},"
    " \"rope_theta\": 10000, \"routed_scaling_factor\": 2.5, \"scoring_func\": \"sigmoid\","
    " \"seq_aux\": true, \"tie_word_embeddings\": false, \"topk_group\": 4, \"topk_method\":"
    " \"noaux_tc\", \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.33.1\","
    " \"use_cache\": true, \"v_head_dim\": 128, \"vocab_size\": 129280}";

START_TEST(released_configs)
{
    dsv3_hparams hp;
    logs l;
    dsv3__err e;
    ck_assert_msg(parse(v2_lite, &hp, &l, &e) == DSV3_OK, "%s", e.msg);
    ck_assert_msg(l.warnings == 0, "%s", l.last);
    ck_assert_int_eq(hp.q_lora_rank, 0);
    ck_assert_int_eq(hp.scoring, DSV3_SCORING_SOFTMAX);
    ck_assert_int_eq(hp.topk_method, DSV3_TOPK_GREEDY);
    ck_assert_int_eq(hp.norm_topk_prob, 0);
    ck_assert_int_eq(hp.n_mtp, 0);
    ck_assert_int_eq(hp.bos_token, 100000);
    ck_assert(fabsf(hp.yarn_mscale_all_dim - 0.707f) < 1e-7f && hp.routed_scaling == 1.0f);
    ck_assert_msg(parse(v3, &hp, &l, &e) == DSV3_OK, "%s", e.msg);
    ck_assert_msg(l.warnings == 0, "%s", l.last);
    ck_assert_int_eq(hp.n_layers, 61);
    ck_assert_int_eq(hp.n_routed_experts, 256);
    ck_assert_int_eq(hp.first_k_dense, 3);
    ck_assert_int_eq(hp.q_lora_rank, 1536);
    /* parameter counts of ARCHITECTURE.md 8.1 from the tensor table */
    dsv3__tspec *sp;
    size_t n;
    ck_assert_int_eq(dsv3__tensor_specs(&A, &hp, 1, NULL, &sp, &n), DSV3_OK);
    uint64_t main_p = 0, mtp = 0, copies = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t k = 1;
        for (int d = 0; d < sp[i].n_dims; d++)
            k *= (uint64_t)sp[i].ne[d];
        if (!(sp[i].flags & DSV3__TS_MTP))
            main_p += k;
        else if (sp[i].flags & DSV3__TS_ALIASABLE)
            copies += k;
        else
            mtp += k;
    }
    ck_assert_uint_eq(main_p, 671026419200ull);
    ck_assert_uint_eq(mtp, 11610068224ull);
    ck_assert_uint_eq(mtp + copies, 13463426304ull);
    dsv3__free(&A, sp);
}
END_TEST

START_TEST(unknown_keys_warn)
{
    char *s = tiny_with("\"vocab_size\"", "\"shiny_new_key\": 3, \"vocab_size\"");
    dsv3_hparams hp;
    logs l;
    dsv3__err e;
    ck_assert_int_eq(parse(s, &hp, &l, &e), DSV3_OK);
    ck_assert_int_eq(l.warnings, 1);
    ck_assert_ptr_nonnull(strstr(l.last, "shiny_new_key"));
    free(s);
    s = tiny_with("\"type\": \"yarn\"", "\"type\": \"yarn\", \"extra\": 1");
    ck_assert_int_eq(parse(s, &hp, &l, &e), DSV3_OK);
    ck_assert_ptr_nonnull(strstr(l.last, "rope_scaling.extra"));
    free(s);
}
END_TEST

START_TEST(unsupported_values)
{
    static const struct {
        const char *from, *to, *needle;
    } t[] = {
        {"\"scoring_func\": \"sigmoid\"", "\"scoring_func\": \"tanh\"", "tanh"},
        {"\"topk_method\": \"noaux_tc\"", "\"topk_method\": \"random\"", "random"},
        {"\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"", "gelu"},
        {"\"attention_bias\": false", "\"attention_bias\": true", "attention_bias"},
        {"\"tie_word_embeddings\": false", "\"tie_word_embeddings\": true", "tie_word"},
        {"\"type\": \"yarn\"", "\"type\": \"linear\"", "linear"},
        {"\"vocab_size\"", "\"rope_interleave\": false, \"vocab_size\"", "rope_interleave"},
        {"\"vocab_size\"", "\"quantization_config\": {\"quant_method\": \"int4\"}, \"vocab_size\"",
         "quant_method"},
        {"\"vocab_size\"",
         "\"quantization_config\": {\"weight_block_size\": [64, 64]}, \"vocab_size\"",
         "weight_block_size"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        dsv3__err e;
        int rc = parse_tiny_with(t[i].from, t[i].to, &e);
        ck_assert_msg(rc == DSV3_E_UNSUPPORTED, "#%zu: %s", i, dsv3_err_name(rc));
        ck_assert_msg(strstr(e.msg, t[i].needle), "#%zu: '%s'", i, e.msg);
    }
}
END_TEST

START_TEST(malformed_values)
{
    static const struct {
        const char *from, *to;
    } t[] = {
        {"\"vocab_size\": 1024", "\"vocab_size\": \"1024\""},
        {"\"hidden_size\": 128", "\"hidden_size\": 128.5"},
        {"\"hidden_size\": 128", "\"hidden_size\": -128"},
        {"\"hidden_size\": 128", "\"hidden_size\": null"},
        {"\"hidden_size\": 128", "\"hidden_sighs\": 128"}, /* missing */
        {"\"norm_topk_prob\": true", "\"norm_topk_prob\": 1"},
        {"\"rope_scaling\": {", "\"rope_scaling\": 5, \"x\": {"},
        {"\"type\": \"yarn\",", ""},                        /* rope_scaling without type */
        {"\"factor\": 4", "\"factor\": -4"},
        {"\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 0"},
        {"\"rope_theta\": 10000", "\"rope_theta\": \"big\""},
        {"\"eos_token_id\": 1", "\"eos_token_id\": 5000"}, /* beyond the vocabulary */
        {"\"num_key_value_heads\": 4", "\"num_key_value_heads\": 0"},
        {"{", "["},
        {"\"torch_dtype\": \"bfloat16\"\n}", "\"torch_dtype\": \"bfloat16\""}, /* cut */
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        dsv3__err e;
        int rc = parse_tiny_with(t[i].from, t[i].to, &e);
        ck_assert_msg(rc == DSV3_E_FORMAT, "#%zu: %s (%s)", i, dsv3_err_name(rc), e.msg);
        ck_assert_ptr_nonnull(strstr(e.msg, "config.json") ? e.msg : strstr(e.msg, "hyper"));
    }
}
END_TEST

/* ARCHITECTURE.md 1.3 rule 6 and consistency limits. */
START_TEST(architecture_rules)
{
    static const struct {
        const char *from, *to, *needle;
    } t[] = {
        {"\"n_group\": 4", "\"n_group\": 3", "multiple of n_group"},           /* E mod G */
        {"\"n_group\": 4", "\"n_group\": 16", "top-2"},                        /* E/G >= 2 */
        {"\"num_experts_per_tok\": 4", "\"num_experts_per_tok\": 9", "cannot hold"}, /* G_k E/G */
        {"\"qk_rope_head_dim\": 16", "\"qk_rope_head_dim\": 15", "even"},
        {"\"first_k_dense_replace\": 2", "\"first_k_dense_replace\": 5", "first_k_dense"},
        {"\"topk_group\": 2", "\"topk_group\": 5", "topk_group"},
        {"\"num_experts_per_tok\": 4", "\"num_experts_per_tok\": 17", "num_experts_per_tok"},
        {"\"moe_layer_freq\": 1", "\"moe_layer_freq\": 0", "moe_layer_freq"},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        dsv3__err e;
        int rc = parse_tiny_with(t[i].from, t[i].to, &e);
        ck_assert_msg(rc == DSV3_E_FORMAT, "#%zu: %s", i, dsv3_err_name(rc));
        ck_assert_msg(strstr(e.msg, t[i].needle), "#%zu: '%s'", i, e.msg);
    }
    dsv3__err e; /* without bias routing one expert per group is fine */
    char *s = tiny_with("\"topk_method\": \"noaux_tc\"", "\"topk_method\": \"group_limited_greedy\"");
    char *s2 = NULL;
    char *p = strstr(s, "\"n_group\": 4");
    ck_assert_int_ge(asprintf(&s2, "%.*s\"n_group\": 16%s", (int)(p - s), s, p + 12), 0);
    p = strstr(s2, "\"topk_group\": 2");
    p[14] = '8'; /* 8 groups of one expert hold the 4 chosen */
    dsv3_hparams hp;
    ck_assert_msg(parse(s2, &hp, NULL, &e) == DSV3_OK, "%s", e.msg);
    free(s);
    free(s2);
}
END_TEST

START_TEST(variants)
{
    dsv3__err e;
    dsv3_hparams hp;
    char *s = tiny_with("\"q_lora_rank\": 96", "\"q_lora_rank\": 0");
    ck_assert_int_eq(parse(s, &hp, NULL, &e), DSV3_OK);
    ck_assert_int_eq(hp.q_lora_rank, 0);
    free(s);
    s = tiny_with("\"eos_token_id\": 1", "\"eos_token_id\": [1, 2]");
    ck_assert_int_eq(parse(s, &hp, NULL, &e), DSV3_OK);
    ck_assert_int_eq(hp.eos_token, 1);
    free(s);
    s = tiny_with("\"type\": \"yarn\"", "\"rope_type\": \"yarn\"");
    ck_assert_int_eq(parse(s, &hp, NULL, &e), DSV3_OK);
    ck_assert_int_eq(hp.rope_yarn, 1);
    free(s);
    s = tiny_with("\"rope_scaling\": {", "\"rope_scaling\": {\"rope_type\": \"default\"}, \"x\": {");
    ck_assert_int_eq(parse(s, &hp, NULL, &e), DSV3_OK);
    ck_assert_int_eq(hp.rope_yarn, 0);
    free(s);
    s = tiny_with("\"rope_scaling\": {", "\"rope_scaling\": null, \"x_unused\": {");
    logs l;
    ck_assert_int_eq(parse(s, &hp, &l, &e), DSV3_OK);
    ck_assert_int_eq(hp.rope_yarn, 0);
    free(s);
}
END_TEST

START_TEST(kv_round_trip)
{
    dsv3_hparams hp, back;
    dsv3__err e;
    ck_assert_int_eq(parse(v3, &hp, NULL, &e), DSV3_OK);
    dsv3__mbuild b;
    dsv3__mbuild_init(&b, &A);
    dsv3__hparams_to_kv(&hp, &b);
    dsv3__mbuild_shard(&b, "a.dsv3s", 64);
    void *bytes;
    size_t len;
    ck_assert_int_eq(dsv3__mbuild_finish(&b, 1, &bytes, &len, &e), DSV3_OK);
    dsv3__manifest m;
    ck_assert_msg(dsv3__manifest_parse(&A, bytes, len, &m, &e) == DSV3_OK, "%s", e.msg);
    memset(&back, 0x55, sizeof back);
    ck_assert_int_eq(dsv3__hparams_from_kv(&m.hparams, &back, NULL, &e), DSV3_OK);
    ck_assert(!memcmp(&hp, &back, sizeof hp));
    /* a missing key */
    m.hparams.n--;
    ck_assert_int_eq(dsv3__hparams_from_kv(&m.hparams, &back, NULL, &e), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "missing"));
    dsv3__manifest_free(&m);
    dsv3__free(&A, bytes);
    dsv3__mbuild_free(&b);
}
END_TEST

static Suite *hparams_suite(void)
{
    dsv3__alloc_init(&A, NULL);
    Suite *s = suite_create("hparams");
    TCase *t = tcase_create("config");
    tcase_add_test(t, tiny_values);
    tcase_add_test(t, released_configs);
    tcase_add_test(t, unknown_keys_warn);
    tcase_add_test(t, variants);
    suite_add_tcase(s, t);
    t = tcase_create("errors");
    tcase_add_test(t, unsupported_values);
    tcase_add_test(t, malformed_values);
    tcase_add_test(t, architecture_rules);
    suite_add_tcase(s, t);
    t = tcase_create("manifest");
    tcase_add_test(t, kv_round_trip);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(hparams_suite());
}
