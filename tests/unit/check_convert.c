/*
 * check_convert.c - dsv3_convert + dsv3_model_load round trips on random
 * tiny checkpoints: every tensor compared bit for bit with the generator's
 * data (FP8 with partial blocks, stacked experts, MTP aliases), the
 * --weights conversions against an independent FP8 reference, parameter
 * counts against spec/TINY_CONFIGS.md, progress and cancellation.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_gen.h"
#include "model/model.h"
#include "testutil.h"
#include "tokenizer/tokenizer.h"
#include "zst_file.h"

/* ---- helpers --------------------------------------------------------------------- */

static char *make_ckpt(const cg_config *cfg, int dtype, int mtp, int files, const char *tag)
{
    char *dir = tu_mkdtemp(tag);
    ck_assert_ptr_nonnull(dir);
    char *hf = tu_path(dir, "hf");
    ck_assert_int_eq(mkdir(hf, 0755), 0);
    cg_opts o = {cfg, dtype, 7, mtp};
    ck_assert_int_eq(cg_write(hf, &o, files), 0);
    free(hf);
    return dir;
}

static int convert(const char *dir, int32_t weights, int32_t level, const char *out_name,
                   char *err)
{
    char *hf = tu_path(dir, "hf"), *out = tu_path(dir, out_name);
    dsv3_convert_params p;
    dsv3_convert_params_init(&p, sizeof p);
    p.weights = weights;
    p.level = level;
    p.n_threads = 2;
    p.log_level = DSV3_LOG_NONE;
    int rc = dsv3_convert(hf, out, &p, err, 512);
    free(hf);
    free(out);
    return rc;
}

static dsv3_model *load(const char *dir, const char *name, uint32_t flags)
{
    char *path = tu_path(dir, name);
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.backend = DSV3_BACKEND_CPU;
    p.n_threads = 2;
    p.flags = flags;
    dsv3_model *m = NULL;
    int rc = dsv3_model_load(path, &p, &m);
    ck_assert_msg(rc == DSV3_OK, "load %s: %s", path, dsv3_model_errmsg(m));
    free(path);
    return m;
}

/* The dsv3_weights field of a Hugging Face name (an independent mapping of
 * the names of ARCHITECTURE.md). *expert: index inside a stack, else -1. */
static dsv3_tensor *lookup(dsv3_model *m, const char *name, int *expert)
{
    static const struct {
        const char *suffix;
        size_t off;
    } f[] = {
        {"input_layernorm.weight", offsetof(dsv3_layer_weights, attn_norm)},
        {"self_attn.q_a_proj.weight", offsetof(dsv3_layer_weights, q_a)},
        {"self_attn.q_a_layernorm.weight", offsetof(dsv3_layer_weights, q_a_norm)},
        {"self_attn.q_b_proj.weight", offsetof(dsv3_layer_weights, q_b)},
        {"self_attn.q_proj.weight", offsetof(dsv3_layer_weights, q)},
        {"self_attn.kv_a_proj_with_mqa.weight", offsetof(dsv3_layer_weights, kv_a)},
        {"self_attn.kv_a_layernorm.weight", offsetof(dsv3_layer_weights, kv_a_norm)},
        {"self_attn.kv_b_proj.weight", offsetof(dsv3_layer_weights, kv_b)},
        {"self_attn.o_proj.weight", offsetof(dsv3_layer_weights, o)},
        {"post_attention_layernorm.weight", offsetof(dsv3_layer_weights, ffn_norm)},
        {"mlp.gate_proj.weight", offsetof(dsv3_layer_weights, mlp.gate)},
        {"mlp.up_proj.weight", offsetof(dsv3_layer_weights, mlp.up)},
        {"mlp.down_proj.weight", offsetof(dsv3_layer_weights, mlp.down)},
        {"mlp.gate.weight", offsetof(dsv3_layer_weights, router)},
        {"mlp.gate.e_score_correction_bias", offsetof(dsv3_layer_weights, router_bias)},
        {"gate_proj.weight", offsetof(dsv3_layer_weights, exp_gate)},
        {"up_proj.weight", offsetof(dsv3_layer_weights, exp_up)},
        {"down_proj.weight", offsetof(dsv3_layer_weights, exp_down)},
        {"mlp.shared_experts.gate_proj.weight", offsetof(dsv3_layer_weights, shared.gate)},
        {"mlp.shared_experts.up_proj.weight", offsetof(dsv3_layer_weights, shared.up)},
        {"mlp.shared_experts.down_proj.weight", offsetof(dsv3_layer_weights, shared.down)},
        {"enorm.weight", offsetof(dsv3_layer_weights, enorm)},
        {"hnorm.weight", offsetof(dsv3_layer_weights, hnorm)},
        {"eh_proj.weight", offsetof(dsv3_layer_weights, eh_proj)},
        {"embed_tokens.weight", offsetof(dsv3_layer_weights, embed)},
        {"shared_head.norm.weight", offsetof(dsv3_layer_weights, head_norm)},
        {"shared_head.head.weight", offsetof(dsv3_layer_weights, head)},
    };
    *expert = -1;
    if (!strcmp(name, "model.embed_tokens.weight"))
        return &m->w.embed;
    if (!strcmp(name, "model.norm.weight"))
        return &m->w.norm;
    if (!strcmp(name, "lm_head.weight"))
        return &m->w.head;
    int l, n = 0, e;
    ck_assert_int_eq(sscanf(name, "model.layers.%d.%n", &l, &n), 1);
    ck_assert_int_lt(l, m->w.n_layers);
    const char *rest = name + n;
    if (sscanf(rest, "mlp.experts.%d.%n", &e, &n) == 1) {
        *expert = e;
        rest += n;
    }
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (!strcmp(rest, f[i].suffix))
            return (dsv3_tensor *)(void *)((char *)&m->w.layers[l] + f[i].off);
    ck_abort_msg("no field for %s", name);
    return NULL;
}

static size_t elem_size(const char *dtype)
{
    return !strcmp(dtype, "F32") ? 4 : !strcmp(dtype, "F8_E4M3") ? 1 : 2;
}

/* Expected float value of element i of a source tensor (FP8: x block scale
 * from sc). */
static float src_value(const cg_tensor *sc, const cg_tensor *t, size_t i)
{
    if (!strcmp(t->dtype, "F32")) {
        float v;
        memcpy(&v, (const char *)t->data + 4 * i, 4);
        return v;
    }
    if (!strcmp(t->dtype, "BF16")) {
        uint16_t h;
        memcpy(&h, (const char *)t->data + 2 * i, 2);
        return cg_bf16_to_f32(h);
    }
    int64_t cols = t->shape[1], r = (int64_t)i / cols, c = (int64_t)i % cols;
    float scale = ((const float *)sc->data)[(r / 128) * sc->shape[1] + c / 128];
    return cg_fp8_decode(((const uint8_t *)t->data)[i]) * scale;
}

/* Compare one source tensor with the loaded model. weights: the conversion's
 * --weights (DEFAULT: as stored). */
static void check_tensor(dsv3_model *m, const cg_set *s, const cg_tensor *t, int32_t weights)
{
    int expert;
    char sname[160];
    snprintf(sname, sizeof sname, "%s_scale_inv", t->name);
    const cg_tensor *sc = cg_find(s, sname);
    ck_assert(sc || strcmp(t->dtype, "F8_E4M3"));
    size_t n = t->nbytes / elem_size(t->dtype);
    bool is_scale = strstr(t->name, "_scale_inv") != NULL;
    char wname[160];
    snprintf(wname, sizeof wname, "%.*s", (int)(strlen(t->name) - (is_scale ? 10 : 0)), t->name);
    dsv3_tensor *d = lookup(m, wname, &expert);
    ck_assert_msg(d->data, "%s not loaded", wname);
    if (is_scale) {
        ck_assert_msg(weights == DSV3_DTYPE_DEFAULT, "%s: scales remain", t->name);
        ck_assert_ptr_nonnull(d->scale);
        const float *got = d->scale + (expert >= 0 ? (size_t)expert * n : 0);
        ck_assert_msg(!memcmp(got, t->data, t->nbytes), "scales of %s differ", wname);
        return;
    }
    if (t->n_dims == 1) { /* vectors become F32 */
        ck_assert_int_eq(d->dtype, DSV3_DTYPE_F32);
        size_t bad = 0;
        for (size_t i = 0; i < n; i++)
            bad += ((float *)d->data)[i] != src_value(sc, t, i);
        ck_assert_msg(bad == 0, "%s: %zu values differ", t->name, bad);
        return;
    }
    bool fp8 = !strcmp(t->dtype, "F8_E4M3");
    bool proj = fp8 || strstr(t->name, "_proj.weight") || strstr(t->name, "experts.");
    proj = proj && !strstr(t->name, "eh_proj");
    if (weights == DSV3_DTYPE_DEFAULT || (weights == DSV3_DTYPE_FP8_E4M3 && !proj)) {
        size_t off = expert >= 0 ? (size_t)expert * t->nbytes : 0;
        ck_assert_msg(!memcmp((char *)d->data + off, t->data, t->nbytes), "%s differs", t->name);
        if (fp8)
            ck_assert_int_eq(d->dtype, DSV3_DTYPE_FP8_E4M3);
        return;
    }
    ck_assert_int_eq(d->dtype, weights);
    ck_assert_ptr_null(d->scale);
    size_t bad = 0; /* (no ck_assert per element: each one is a pipe write) */
    for (size_t i = 0; i < n; i++) {
        float want = src_value(sc, t, i);
        size_t k = (expert >= 0 ? (size_t)expert * n : 0) + i;
        if (weights == DSV3_DTYPE_F32)
            bad += ((float *)d->data)[k] != want;
        else
            bad += ((uint16_t *)d->data)[k] != cg_f32_to_bf16(want);
    }
    ck_assert_msg(bad == 0, "%s: %zu of %zu values differ", t->name, bad, n);
}

static void check_all(dsv3_model *m, const cg_set *s, int32_t weights)
{
    for (int i = 0; i < s->n; i++)
        check_tensor(m, s, &s->t[i], weights);
}

static void check_info(dsv3_model *m, uint64_t total, uint64_t active, uint64_t mtp)
{
    dsv3_model_info in = {.struct_size = sizeof in};
    ck_assert_int_eq(dsv3_model_info_get(m, &in), DSV3_OK);
    ck_assert_uint_eq(in.n_params, total);
    ck_assert_uint_eq(in.n_params_active, active);
    ck_assert_uint_eq(in.n_params_mtp, mtp);
    /* (kv_lora_rank 64 + rope 16) x 4 layers x 4 bytes */
    ck_assert_uint_eq(in.kv_bytes_per_token, 1280);
    ck_assert_int_eq(in.n_layers, 4);
    ck_assert_int_eq(in.n_dense_layers, 2);
    ck_assert_int_eq(in.n_experts, 16);
    ck_assert_int_eq(in.n_experts_used, 4);
    ck_assert_int_eq(in.n_mtp_layers, 1);
    ck_assert_int_eq(in.vocab_size, 1024);
    ck_assert(in.bytes_on_disk > 0 && in.bytes_in_memory > 0);
    ck_assert(in.bytes_per_token < in.bytes_in_memory);
}

/* ---- round trips --------------------------------------------------------------- */

START_TEST(bf16_round_trip)
{
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_COPY, 0, "conv-bf16");
    char err[512];
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_BF16, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    /* numbers of spec/TINY_CONFIGS.md section 1 */
    check_info(m, 1693472, 1103648, 527152);
    ck_assert_int_eq(m->w.n_layers, 5);
    ck_assert(m->w.layers[4].embed.data == m->w.embed.data); /* stored once */
    ck_assert(m->w.layers[4].head.data == m->w.head.data);
    ck_assert(m->w.layers[2].is_moe && !m->w.layers[1].is_moe && m->w.layers[4].is_moe);
    ck_assert_int_eq(m->w.layers[2].exp_gate.n_dims, 3);
    ck_assert_int_eq(m->w.layers[2].exp_gate.ne[0], 16);
    ck_assert_int_eq(m->w.layers[2].exp_down.ne[1], 128);
    dsv3_model_info in = {.struct_size = sizeof in};
    dsv3_model_info_get(m, &in);
    ck_assert_uint_eq(in.flags & (DSV3_INFO_HAS_MTP | DSV3_INFO_Q_LORA | DSV3_INFO_SIGMOID_ROUTER),
                      DSV3_INFO_HAS_MTP | DSV3_INFO_Q_LORA | DSV3_INFO_SIGMOID_ROUTER);
    ck_assert_int_eq(in.weight_dtype, DSV3_DTYPE_BF16);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(fp8_round_trip)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 0, "conv-fp8");
    char err[512];
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    check_info(m, 1693472, 1103648, 527152);
    /* partial blocks: kv_a has 80 rows -> one scale row; q_b 192 rows -> 2 */
    ck_assert_int_eq(m->w.layers[0].kv_a.dtype, DSV3_DTYPE_FP8_E4M3);
    ck_assert_ptr_nonnull(m->w.layers[0].q_b.scale);
    ck_assert_ptr_nonnull(m->w.layers[3].exp_up.scale);
    ck_assert_ptr_null(m->w.embed.scale);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* FP8 checkpoint converted with --weights f32 / bf16: fp8 value x block scale. */
START_TEST(fp8_dequantized)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 0, "conv-deq");
    char err[512];
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    const int32_t modes[] = {DSV3_DTYPE_F32, DSV3_DTYPE_BF16};
    for (int k = 0; k < 2; k++) {
        char name[16];
        snprintf(name, sizeof name, "out%d", k);
        ck_assert_msg(convert(dir, modes[k], 0, name, err) == DSV3_OK, "%s", err);
        dsv3_model *m = load(dir, name, 0);
        for (int i = 0; i < s.n; i++)
            if (!strstr(s.t[i].name, "_scale_inv"))
                check_tensor(m, &s, &s.t[i], modes[k]);
        dsv3_model_free(m);
    }
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* BF16 checkpoint with --weights fp8 equals the generator's reference FP8
 * quantization of the same values (bytes and scales). */
START_TEST(bf16_quantized_to_fp8)
{
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_COPY, 0, "conv-q");
    char err[512];
    ck_assert_msg(convert(dir, DSV3_DTYPE_FP8_E4M3, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    ck_assert_int_eq(m->w.layers[4].eh_proj.dtype, DSV3_DTYPE_BF16); /* not quantized */
    ck_assert_int_eq(m->w.layers[2].router.dtype, DSV3_DTYPE_BF16);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(f32_to_bf16)
{
    char *dir = make_ckpt(&cg_tiny_noq, CG_F32, CG_MTP_COPY, 0, "conv-f32");
    char err[512];
    ck_assert_msg(convert(dir, DSV3_DTYPE_BF16, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny_noq, CG_F32, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_BF16);
    /* tiny-noq numbers of spec/TINY_CONFIGS.md */
    check_info(m, 1668512, 1078688, 520912);
    ck_assert_ptr_nonnull(m->w.layers[0].q.data);
    ck_assert_ptr_null(m->w.layers[0].q_a.data);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- checkpoint layouts ------------------------------------------------------------- */

START_TEST(sharded_with_index)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 3, "conv-idx");
    char *idx = tu_path(dir, "hf/model.safetensors.index.json");
    size_t len;
    char *text = tu_read_file(idx, &len);
    ck_assert_ptr_nonnull(strstr(text, "model-00003-of-00003.safetensors"));
    free(text);
    free(idx);
    char err[512];
    ck_assert_msg(convert(dir, 0, 5, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(mtp_variants)
{
    char err[512];
    /* distinct MTP embedding/head: stored separately */
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_DISTINCT, 0, "conv-mtp");
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_BF16, 7, CG_MTP_DISTINCT};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    ck_assert(m->w.layers[4].embed.data != m->w.embed.data);
    dsv3_model_free(m);
    /* without MTP: the module is not loaded */
    m = load(dir, "out", DSV3_MODEL_NO_MTP);
    ck_assert_int_eq(m->w.n_layers, 4);
    dsv3_model_info in = {.struct_size = sizeof in};
    dsv3_model_info_get(m, &in);
    ck_assert_uint_eq(in.flags & DSV3_INFO_HAS_MTP, 0);
    ck_assert_uint_eq(in.n_params, 1693472);
    dsv3_model_free(m);
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
    /* MTP embedding/head absent: they alias the main ones */
    dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_OMIT, 0, "conv-mtp2");
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    m = load(dir, "out", 0);
    ck_assert(m->w.layers[4].head.data == m->w.head.data);
    dsv3_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* The path of non-host backends (staging buffer + buf_write). */
START_TEST(staging_path)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 0, "conv-stage");
    char err[512];
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    ck_assert_msg(convert(dir, 0, -1, "raw", err) == DSV3_OK, "%s", err);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    setenv("DSV3_DEBUG_LOAD_STAGING", "1", 1);
    dsv3_model *m = load(dir, "out", 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    dsv3_model_free(m);
    m = load(dir, "raw", 0);
    check_all(m, &s, DSV3_DTYPE_DEFAULT);
    dsv3_model_free(m);
    unsetenv("DSV3_DEBUG_LOAD_STAGING");
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(raw_codec)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 0, "conv-raw");
    char err[512];
    ck_assert_msg(convert(dir, 0, -1, "out", err) == DSV3_OK, "%s", err);
    cg_set s;
    cg_opts o = {&cg_tiny, CG_FP8, 7, CG_MTP_COPY};
    ck_assert_int_eq(cg_collect(&o, &s), 0);
    const uint32_t flags[] = {0, DSV3_MODEL_NO_MMAP, DSV3_MODEL_SKIP_CHECKSUMS};
    for (int k = 0; k < 3; k++) {
        dsv3_model *m = load(dir, "out", flags[k]);
        check_all(m, &s, DSV3_DTYPE_DEFAULT);
        ck_assert_uint_eq((uintptr_t)m->w.layers[0].o.data % 64, 0);
        dsv3_model_free(m);
    }
    cg_set_free(&s);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* DeepSeek-V3's tokenizer files travel into the manifest and back. */
START_TEST(with_tokenizer)
{
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_COPY, 0, "conv-tok");
    char *tok, *cfg, err[512];
    size_t tok_len, cfg_len;
    ck_assert_int_eq(zf_read_v3_tokenizer(tu_source_dir(), &tok, &tok_len, &cfg, &cfg_len), 0);
    char *p1 = tu_path(dir, "hf/tokenizer.json"), *p2 = tu_path(dir, "hf/tokenizer_config.json");
    ck_assert_int_eq(tu_write_file(p1, tok, tok_len), 0);
    ck_assert_int_eq(tu_write_file(p2, cfg, cfg_len), 0);
    ck_assert_msg(convert(dir, 0, 0, "out", err) == DSV3_OK, "%s", err);
    dsv3_model *m = load(dir, "out", 0);
    dsv3_model_info in = {.struct_size = sizeof in};
    dsv3_model_info_get(m, &in);
    ck_assert_uint_eq(in.flags & (DSV3_INFO_HAS_TOKENIZER | DSV3_INFO_HAS_CHAT),
                      DSV3_INFO_HAS_TOKENIZER | DSV3_INFO_HAS_CHAT);
    ck_assert_int_eq(m->chat_kind, DSV3_CHAT_DEEPSEEK_V3);
    const char *text = "Hello, world! 123";
    int32_t ids[64];
    size_t n, len;
    ck_assert_int_eq(dsv3_tokenize(m, text, strlen(text), 0, ids, 64, &n), DSV3_OK);
    char back[128];
    ck_assert_int_eq(dsv3_detokenize(m, ids, n, 0, back, sizeof back, &len), DSV3_OK);
    ck_assert_str_eq(back, text);
    /* the blob in the manifest is the one the tokenizer builds from the files */
    void *blob;
    size_t blob_len;
    int32_t kind;
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__err e;
    ck_assert_int_eq(dsv3__tokenizer_blob_from_hf(&a, tok, tok_len, cfg, cfg_len, &blob,
                                                  &blob_len, &kind, &e), DSV3_OK);
    char *man = tu_path(dir, "out/model.dsv3");
    size_t man_len;
    char *mt = tu_read_file(man, &man_len);
    ck_assert_ptr_nonnull(memmem(mt, man_len, blob, blob_len));
    free(mt);
    free(man);
    dsv3__free(&a, blob);
    dsv3_model_free(m);
    /* a malformed tokenizer.json stops the conversion */
    ck_assert_int_eq(tu_write_file(p1, "{\"model\": 5", 12), 0);
    ck_assert_int_eq(convert(dir, 0, 0, "out2", err), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(err, "tokenizer") ? err : NULL);
    free(p1);
    free(p2);
    free(tok);
    free(cfg);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- progress, cancellation, options -------------------------------------------------- */

typedef struct prog {
    int calls;
    uint64_t last_done, total;
    int cancel_at; /* cancel on this call (1-based); 0 never */
} prog;

static int on_progress(const dsv3_progress_event *ev, void *ud)
{
    prog *p = ud;
    p->calls++;
    ck_assert(ev->done >= p->last_done && ev->done <= ev->total);
    p->last_done = ev->done;
    p->total = ev->total;
    return p->cancel_at && p->calls >= p->cancel_at;
}

START_TEST(progress_and_cancel)
{
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_COPY, 0, "conv-prog");
    char err[512], *hf = tu_path(dir, "hf"), *out = tu_path(dir, "out");
    prog pc = {0};
    dsv3_convert_params cp;
    dsv3_convert_params_init(&cp, sizeof cp);
    cp.progress_fn = on_progress;
    cp.progress_user_data = &pc;
    cp.log_level = DSV3_LOG_NONE;
    ck_assert_int_eq(dsv3_convert(hf, out, &cp, err, sizeof err), DSV3_OK);
    ck_assert(pc.calls >= 1 && pc.last_done == pc.total && pc.total > 0);
    /* a second conversion into the same directory is refused */
    ck_assert_int_eq(dsv3_convert(hf, out, &cp, err, sizeof err), DSV3_E_IO);
    ck_assert_ptr_nonnull(strstr(err, "already holds a model"));
    /* canceled conversion: an error, and no files left behind */
    char *out2 = tu_path(dir, "out2");
    prog pc2 = {.cancel_at = 1};
    cp.progress_user_data = &pc2;
    ck_assert_int_eq(dsv3_convert(hf, out2, &cp, err, sizeof err), DSV3_E_CANCELED);
    char *man2 = tu_path(out2, "model.dsv3");
    size_t len;
    char *none = tu_read_file(man2, &len);
    ck_assert_ptr_null(none);
    free(man2);
    /* load progress, then a load canceled from the callback */
    prog pl = {0};
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    dsv3_model_params mp;
    dsv3_model_params_init(&mp, sizeof mp);
    mp.progress_fn = on_progress;
    mp.progress_user_data = &pl;
    mp.allocator = &ta.a;
    mp.backend = DSV3_BACKEND_CPU;
    dsv3_model *m = NULL;
    ck_assert_int_eq(dsv3_model_load(out, &mp, &m), DSV3_OK);
    ck_assert(pl.calls >= 1 && pl.last_done == pl.total);
    dsv3_model_free(m);
    ck_assert_int_eq(ta.live, 0);
    prog pl2 = {.cancel_at = 1};
    mp.progress_user_data = &pl2;
    mp.n_threads = 1;
    ck_assert_int_eq(dsv3_model_load(out, &mp, &m), DSV3_E_CANCELED);
    ck_assert_ptr_nonnull(strstr(dsv3_model_errmsg(m), "canceled"));
    ck_assert_int_eq(dsv3_model_info_get(m, &(dsv3_model_info){.struct_size = sizeof(dsv3_model_info)}),
                     DSV3_E_MISUSE);
    dsv3_model_free(m);
    ck_assert_int_eq(ta.live, 0);
    free(hf);
    free(out);
    free(out2);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(unsupported_options)
{
    char *dir = make_ckpt(&cg_tiny, CG_BF16, CG_MTP_COPY, 0, "conv-opt");
    char err[512];
    ck_assert_int_eq(convert(dir, DSV3_DTYPE_Q8_0, 0, "o1", err), DSV3_E_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(err, "q8_0"));
    ck_assert_int_eq(convert(dir, DSV3_DTYPE_Q4, 0, "o2", err), DSV3_E_UNSUPPORTED);
    ck_assert_int_eq(convert(dir, 0, 23, "o3", err), DSV3_E_INVAL);
    ck_assert_int_eq(convert(dir, 99, 0, "o4", err), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3_convert(NULL, "x", NULL, err, sizeof err), DSV3_E_INVAL);
    dsv3_convert_params p;
    ck_assert_int_eq(dsv3_convert_params_init(&p, sizeof p), DSV3_OK);
    p.flags = 1;
    ck_assert_int_eq(dsv3_convert(dir, "x", &p, err, sizeof err), DSV3_E_INVAL);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* ---- the CLI -------------------------------------------------------------------------------- */

static int run_cli(const char *args, char **out, char **err)
{
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' %s", tu_cli(), args);
    return tu_run(cmd, out, err);
}

START_TEST(cli_convert_info)
{
    char *dir = make_ckpt(&cg_tiny, CG_FP8, CG_MTP_COPY, 0, "conv-cli");
    char args[4096], *out, *err;
    snprintf(args, sizeof args, "convert '%s/hf' '%s/out' --level 1 --shard-size 1M", dir, dir);
    ck_assert_int_eq(run_cli(args, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "100%"));
    free(out);
    free(err);
    char *shard2 = tu_path(dir, "out/model-00002.dsv3s");
    size_t len;
    char *data = tu_read_file(shard2, &len); /* 2.5 MB of tensors: several shards */
    ck_assert_ptr_nonnull(data);
    free(data);
    free(shard2);
    snprintf(args, sizeof args, "info -m '%s/out' --verify", dir);
    ck_assert_int_eq(run_cli(args, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "1693472 total, 1103648 activated"));
    ck_assert_ptr_nonnull(strstr(out, "compression ratio"));
    ck_assert_ptr_nonnull(strstr(out, "1280 KV-cache bytes"));
    ck_assert_ptr_nonnull(strstr(out, "verified"));
    free(out);
    free(err);
    /* errors: one line, non-zero exit */
    snprintf(args, sizeof args, "convert '%s/hf' '%s/o2' --weights q4", dir, dir);
    ck_assert_int_ne(run_cli(args, &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "q4"));
    ck_assert_ptr_eq(strchr(err, '\n'), err + strlen(err) - 1);
    free(out);
    free(err);
    ck_assert_int_ne(run_cli("info -m /nonexistent/model", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(err, "dsv3 info: "));
    free(out);
    free(err);
    ck_assert_int_ne(run_cli("convert onlyone", &out, &err), 0);
    free(out);
    free(err);
    ck_assert_int_eq(run_cli("convert --help", &out, &err), 0);
    ck_assert_ptr_nonnull(strstr(out, "usage: dsv3 convert"));
    free(out);
    free(err);
    ck_assert_int_eq(run_cli("info --help", &out, &err), 0);
    free(out);
    free(err);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

static Suite *convert_suite(void)
{
    Suite *s = suite_create("convert");
    TCase *t = tcase_create("round_trip");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, bf16_round_trip);
    tcase_add_test(t, fp8_round_trip);
    tcase_add_test(t, fp8_dequantized);
    tcase_add_test(t, bf16_quantized_to_fp8);
    tcase_add_test(t, f32_to_bf16);
    suite_add_tcase(s, t);
    t = tcase_create("layouts");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, sharded_with_index);
    tcase_add_test(t, mtp_variants);
    tcase_add_test(t, raw_codec);
    tcase_add_test(t, staging_path);
    tcase_add_test(t, with_tokenizer);
    suite_add_tcase(s, t);
    t = tcase_create("options");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, progress_and_cancel);
    tcase_add_test(t, unsupported_options);
    suite_add_tcase(s, t);
    t = tcase_create("cli");
    tcase_set_timeout(t, 60);
    tcase_add_test(t, cli_convert_info);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(convert_suite());
}
