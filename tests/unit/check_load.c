/*
 * check_load.c - bad input for dsv3_convert and dsv3_model_load: truncated,
 * corrupted, foreign, newer and missing files, shapes contradicting the
 * hyper-parameters, lying safetensors headers, malformed config.json; each
 * a clear error code and message and no leak. Allocation failures injected
 * over the whole load.
 * SPDX-License-Identifier: MIT
 */
#define _GNU_SOURCE /* memmem */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ckpt_gen.h"
#include "convert/convert.h"
#include "format/format.h"
#include "model/model.h"
#include "testutil.h"

/* One converted model per kind, made once by the unchecked fixture. */
static char *g_dir;

static int do_convert(const char *hf, const char *out, int32_t level, char *err)
{
    dsv3_convert_params p;
    dsv3_convert_params_init(&p, sizeof p);
    p.level = level;
    p.n_threads = 2;
    p.log_level = DSV3_LOG_NONE;
    return dsv3_convert(hf, out, &p, err, 512);
}

static void setup(void)
{
    g_dir = tu_mkdtemp("load");
    char *hf = tu_path(g_dir, "hf"), *out = tu_path(g_dir, "zstd"), *raw = tu_path(g_dir, "raw");
    char err[512];
    mkdir(hf, 0755);
    cg_opts o = {&cg_tiny, CG_FP8, 3, CG_MTP_COPY};
    if (cg_write(hf, &o, 0) || do_convert(hf, out, 0, err) || do_convert(hf, raw, -1, err))
        fprintf(stderr, "# fixture failed: %s\n", err);
    free(hf);
    free(out);
    free(raw);
}

static void teardown(void)
{
    tu_rmtree(g_dir);
    free(g_dir);
}

/* A fresh copy of a fixture directory. */
static char *copy_of(const char *kind)
{
    char *dst = tu_mkdtemp("loadcopy"), cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s/%s/.' '%s/'", g_dir, kind, dst);
    ck_assert_int_eq(system(cmd), 0);
    return dst;
}

/* Load with a counting allocator; checks the failure code, message and that
 * nothing leaks. Returns the message (static). */
static const char *load_fails(const char *dir, uint32_t flags, int want)
{
    static char msg[DSV3__ERRMSG_CAP];
    tu_alloc ta;
    tu_alloc_init(&ta, 0);
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    p.allocator = &ta.a;
    p.backend = DSV3_BACKEND_CPU;
    p.n_threads = 2;
    p.flags = flags;
    dsv3_model *m = NULL;
    int rc = dsv3_model_load(dir, &p, &m);
    snprintf(msg, sizeof msg, "%s", dsv3_model_errmsg(m));
    ck_assert_msg(rc == want, "%s: got %s (%s), want %s", dir, dsv3_err_name(rc), msg,
                  dsv3_err_name(want));
    ck_assert_msg(want == DSV3_OK || msg[0], "empty message");
    dsv3_model_free(m);
    ck_assert_int_eq(ta.live, 0);
    return msg;
}

static void patch(const char *dir, const char *file, long off, const void *bytes, size_t n)
{
    char *path = tu_path(dir, file);
    FILE *f = fopen(path, "r+b");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fseek(f, off, off < 0 ? SEEK_END : SEEK_SET), 0);
    ck_assert_uint_eq(fwrite(bytes, 1, n, f), n);
    fclose(f);
    free(path);
}

static void flip(const char *dir, const char *file, long off)
{
    char *path = tu_path(dir, file);
    size_t len;
    unsigned char *d = (unsigned char *)tu_read_file(path, &len);
    ck_assert(off >= 0 && (size_t)off < len);
    d[off] ^= 0x10;
    ck_assert_int_eq(tu_write_file(path, d, len), 0);
    free(d);
    free(path);
}

static void cleanup(char *dir)
{
    tu_rmtree(dir);
    free(dir);
}

/* ---- shards ------------------------------------------------------------------ */

START_TEST(truncated_shard)
{
    const char *kinds[] = {"zstd", "raw"};
    for (int k = 0; k < 2; k++) {
        char *dir = copy_of(kinds[k]);
        char *path = tu_path(dir, "model-00001.dsv3s");
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(truncate(path, st.st_size - 100), 0);
        ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "truncated"));
        ck_assert_int_eq(truncate(path, 20), 0);
        load_fails(dir, 0, DSV3_E_FORMAT);
        ck_assert_int_eq(truncate(path, 0), 0);
        load_fails(dir, 0, DSV3_E_FORMAT);
        free(path);
        cleanup(dir);
    }
}
END_TEST

START_TEST(flipped_byte)
{
    const char *kinds[] = {"zstd", "raw"};
    for (int k = 0; k < 2; k++) {
        char *dir = copy_of(kinds[k]);
        flip(dir, "model-00001.dsv3s", 5000);
        ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_CHECKSUM), "checksum"));
        if (k == 0) /* zstd's frame checksum still notices */
            load_fails(dir, DSV3_MODEL_SKIP_CHECKSUMS, DSV3_E_CHECKSUM);
        cleanup(dir);
    }
}
END_TEST

/* A flipped byte anywhere in the tensor data is an error, never a crash. */
START_TEST(flipped_bytes_everywhere)
{
    char *dir = copy_of("zstd");
    char *path = tu_path(dir, "model-00001.dsv3s");
    size_t len;
    unsigned char *orig = (unsigned char *)tu_read_file(path, &len);
    for (size_t off = 64; off < len; off += 7919) {
        orig[off] ^= 0x01;
        ck_assert_int_eq(tu_write_file(path, orig, len), 0);
        dsv3_model_params p;
        dsv3_model_params_init(&p, sizeof p);
        p.flags = (off / 7919) % 2 ? DSV3_MODEL_SKIP_CHECKSUMS : 0;
        p.backend = DSV3_BACKEND_CPU;
        dsv3_model *m = NULL;
        int rc = dsv3_model_load(dir, &p, &m);
        /* bytes between tensors (alignment padding) are not covered */
        ck_assert_msg(rc == DSV3_E_CHECKSUM || rc == DSV3_E_FORMAT || rc == DSV3_OK,
                      "offset %zu: %s", off, dsv3_model_errmsg(m));
        dsv3_model_free(m);
        orig[off] ^= 0x01;
    }
    free(orig);
    free(path);
    cleanup(dir);
}
END_TEST

START_TEST(wrong_magic_and_newer_version)
{
    char *dir = copy_of("zstd");
    patch(dir, "model.dsv3", 0, "XSV3", 4);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "bad magic"));
    patch(dir, "model.dsv3", 0, "DSV3", 4);
    load_fails(dir, 0, DSV3_OK);
    unsigned char v2[4] = {2, 0, 0, 0}, v1[4] = {1, 0, 0, 0}, v0[4] = {0};
    patch(dir, "model.dsv3", 8, v2, 4);
    const char *msg = load_fails(dir, 0, DSV3_E_VERSION);
    ck_assert_ptr_nonnull(strstr(msg, "format version 2"));
    ck_assert_ptr_nonnull(strstr(msg, "upgrade"));
    patch(dir, "model.dsv3", 8, v0, 4);
    load_fails(dir, 0, DSV3_E_FORMAT);
    patch(dir, "model.dsv3", 8, v1, 4);
    patch(dir, "model-00001.dsv3s", 0, "DSV3XXXX", 8);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "not a libdsv3 shard"));
    patch(dir, "model-00001.dsv3s", 0, "DSV3SHRD", 8);
    patch(dir, "model-00001.dsv3s", 8, v2, 4);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_VERSION), "model-00001.dsv3s"));
    cleanup(dir);
}
END_TEST

START_TEST(missing_and_foreign_shard)
{
    char *dir = copy_of("zstd"), *other = copy_of("raw");
    char *s1 = tu_path(dir, "model-00001.dsv3s"), *s2 = tu_path(other, "model-00001.dsv3s");
    ck_assert_int_eq(unlink(s1), 0);
    const char *msg = load_fails(dir, 0, DSV3_E_IO);
    ck_assert_ptr_nonnull(strstr(msg, "model-00001.dsv3s"));
    /* a shard of another model with the same name */
    ck_assert_int_eq(rename(s2, s1), 0);
    load_fails(dir, 0, DSV3_E_FORMAT);
    free(s1);
    free(s2);
    cleanup(dir);
    cleanup(other);
}
END_TEST

/* ---- the manifest ---------------------------------------------------------------- */

/* Every single flipped byte and every truncation of model.dsv3 is refused. */
START_TEST(manifest_corruption)
{
    char *dir = copy_of("zstd");
    char *path = tu_path(dir, "model.dsv3");
    size_t len;
    unsigned char *orig = (unsigned char *)tu_read_file(path, &len);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    int accepted = 0;
    for (size_t off = 0; off < len; off++) {
        orig[off] ^= 0x04;
        dsv3__manifest man;
        dsv3__err e;
        int rc = dsv3__manifest_parse(&a, orig, len, &man, &e);
        accepted += rc == DSV3_OK;
        if (rc == DSV3_OK) /* only the model id may change unnoticed by the parser */
            ck_assert_msg(off >= 24 && off < 32, "flip at %zu accepted", off);
        dsv3__manifest_free(&man);
        orig[off] ^= 0x04;
    }
    ck_assert_int_le(accepted, 8);
    for (size_t n = 0; n < len; n += n < 200 ? 1 : 97) {
        dsv3__manifest man;
        dsv3__err e;
        ck_assert_int_ne(dsv3__manifest_parse(&a, orig, n, &man, &e), DSV3_OK);
        dsv3__manifest_free(&man);
    }
    /* a changed model id: the shards do not belong to it */
    orig[25] ^= 1;
    ck_assert_int_eq(tu_write_file(path, orig, len), 0);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "another model"));
    free(orig);
    free(path);
    cleanup(dir);
}
END_TEST

/* Rewrite model.dsv3 with one hyper-parameter changed. */
static void rewrite_hparam(const char *dir, const char *key, int64_t value)
{
    char *path = tu_path(dir, "model.dsv3");
    size_t len;
    char *text = tu_read_file(path, &len);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__manifest m;
    dsv3__err e;
    ck_assert_int_eq(dsv3__manifest_parse(&a, text, len, &m, &e), DSV3_OK);
    dsv3__mbuild b;
    dsv3__mbuild_init(&b, &a);
    for (size_t i = 0; i < m.hparams.n; i++) {
        const dsv3__kv *kv = &m.hparams.items[i];
        if (!strcmp(kv->key, key))
            dsv3__mbuild_kv_i64(&b, DSV3__SEC_HPARAMS, key, value);
        else if (kv->type == DSV3__KV_I64)
            dsv3__mbuild_kv_i64(&b, DSV3__SEC_HPARAMS, kv->key, kv->i);
        else if (kv->type == DSV3__KV_F64)
            dsv3__mbuild_kv_f64(&b, DSV3__SEC_HPARAMS, kv->key, kv->f);
        else if (kv->type == DSV3__KV_BOOL)
            dsv3__mbuild_kv_bool(&b, DSV3__SEC_HPARAMS, kv->key, kv->i != 0);
        else
            dsv3__mbuild_kv_str(&b, DSV3__SEC_HPARAMS, kv->key, kv->s, kv->s_len);
    }
    for (uint32_t i = 0; i < m.n_shards; i++)
        dsv3__mbuild_shard(&b, m.shards[i].name, m.shards[i].size);
    for (uint32_t i = 0; i < m.n_tensors; i++) {
        const dsv3__fmt_tensor *t = &m.tensors[i];
        if (t->alias >= 0)
            dsv3__mbuild_alias(&b, t->name, m.tensors[t->alias].name);
        else
            dsv3__mbuild_tensor(&b, t->name, t->dtype, t->n_dims, t->ne, t->codec, t->flags,
                                t->shard, t->chunk_size, t->chunks, t->n_chunks);
    }
    void *out;
    size_t out_len;
    ck_assert_int_eq(dsv3__mbuild_finish(&b, m.model_id, &out, &out_len, &e), DSV3_OK);
    ck_assert_int_eq(tu_write_file(path, out, out_len), 0);
    dsv3__free(&a, out);
    dsv3__mbuild_free(&b);
    dsv3__manifest_free(&m);
    free(text);
    free(path);
}

START_TEST(shapes_contradict_hparams)
{
    char *dir = copy_of("zstd");
    rewrite_hparam(dir, "num_hidden_layers", 4); /* unchanged: still loads */
    load_fails(dir, 0, DSV3_OK);
    rewrite_hparam(dir, "hidden_size", 64);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "hyper-parameters imply"));
    rewrite_hparam(dir, "hidden_size", 128);
    rewrite_hparam(dir, "num_hidden_layers", 3); /* layer 3 then looks like the MTP layer */
    load_fails(dir, 0, DSV3_E_FORMAT);
    rewrite_hparam(dir, "num_hidden_layers", 4);
    rewrite_hparam(dir, "num_nextn_predict_layers", 0);
    ck_assert_ptr_nonnull(strstr(load_fails(dir, 0, DSV3_E_FORMAT), "unexpected tensor"));
    rewrite_hparam(dir, "num_nextn_predict_layers", 1);
    rewrite_hparam(dir, "n_group", 3); /* 16 experts in 3 groups: invalid */
    load_fails(dir, 0, DSV3_E_FORMAT);
    cleanup(dir);
}
END_TEST

/* ---- conversion input ------------------------------------------------------------ */

static char *hf_copy(void)
{
    char *dst = tu_mkdtemp("hfcopy"), cmd[8192];
    snprintf(cmd, sizeof cmd, "cp -r '%s/hf/.' '%s/'", g_dir, dst);
    ck_assert_int_eq(system(cmd), 0);
    return dst;
}

static void convert_fails(const char *hf, int want, const char *needle)
{
    char *out = tu_mkdtemp("convout"), err[512];
    char *o = tu_path(out, "m");
    int rc = do_convert(hf, o, 0, err);
    ck_assert_msg(rc == want, "got %s (%s)", dsv3_err_name(rc), err);
    ck_assert_msg(!needle || strstr(err, needle), "'%s' not in '%s'", needle, err);
    struct stat st;
    ck_assert_int_ne(stat(o, &st), 0); /* nothing left behind */
    free(o);
    cleanup(out);
}

/* Replace the first occurrence of `from` in a file. */
static void edit(const char *dir, const char *file, const char *from, const char *to)
{
    char *path = tu_path(dir, file);
    size_t len;
    char *d = tu_read_file(path, &len);
    char *p = memmem(d, len, from, strlen(from));
    ck_assert_ptr_nonnull(p);
    size_t nl = len - strlen(from) + strlen(to);
    char *n = malloc(nl);
    size_t pre = (size_t)(p - d);
    memcpy(n, d, pre);
    memcpy(n + pre, to, strlen(to));
    memcpy(n + pre + strlen(to), p + strlen(from), len - pre - strlen(from));
    ck_assert_int_eq(tu_write_file(path, n, nl), 0);
    free(n);
    free(d);
    free(path);
}

/* Rewrite the 8-byte header length of a safetensors file after an edit of its
 * JSON (the JSON ends at the first '}' followed by spaces and data). */
static void fix_header_len(const char *dir, long delta)
{
    char *path = tu_path(dir, "model.safetensors");
    size_t len;
    unsigned char *d = (unsigned char *)tu_read_file(path, &len);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--)
        hl = hl << 8 | d[i];
    hl = (uint64_t)((long)hl + delta);
    for (int i = 0; i < 8; i++)
        d[i] = (unsigned char)(hl >> (8 * i));
    ck_assert_int_eq(tu_write_file(path, d, len), 0);
    free(d);
    free(path);
}

START_TEST(lying_safetensors)
{
    char *hf = hf_copy();
    /* the first tensor's end offset pushed far past the file */
    edit(hf, "model.safetensors", "\"data_offsets\":[0,", "\"data_offsets\":[0,9");
    fix_header_len(hf, 1);
    convert_fails(hf, DSV3_E_FORMAT, "offsets");
    cleanup(hf);
    hf = hf_copy(); /* a size that does not match dtype and shape */
    edit(hf, "model.safetensors", "\"shape\":[1024,128]", "\"shape\":[1024,127]");
    convert_fails(hf, DSV3_E_FORMAT, "data bytes");
    cleanup(hf);
    hf = hf_copy(); /* header length larger than the file */
    char *path = tu_path(hf, "model.safetensors");
    ck_assert_int_eq(truncate(path, 200), 0);
    convert_fails(hf, DSV3_E_FORMAT, "truncated");
    free(path);
    cleanup(hf);
}
END_TEST

/* Header lies checked on in-memory safetensors images. */
static int st_image(const char *header, size_t data_len, char *err)
{
    size_t hl = strlen(header), n = 8 + hl + data_len;
    unsigned char *d = calloc(1, n);
    for (int i = 0; i < 8; i++)
        d[i] = (unsigned char)((uint64_t)hl >> (8 * i));
    memcpy(d + 8, header, hl);
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__stset s;
    dsv3__st_init(&s, &a);
    dsv3__err e;
    int rc = dsv3__st_add_buffer(&s, "x.safetensors", d, n, &e);
    if (!rc)
        rc = dsv3__st_finalize(&s, &e);
    snprintf(err, 512, "%s", rc ? e.msg : "");
    dsv3__st_close(&s);
    free(d);
    return rc;
}

START_TEST(safetensors_headers)
{
    char err[512];
    const char *ok = "{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                     "\"__metadata__\":{\"format\":\"pt\"}}";
    ck_assert_int_eq(st_image(ok, 16, err), DSV3_OK);
    static const struct {
        const char *h;
        const char *needle;
    } bad[] = {
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[24,40]}}", "offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,0]}}", "offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[-1,15]}}", "offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", "data bytes"},
        {"{\"a\":{\"dtype\":\"X9\",\"shape\":[4],\"data_offsets\":[0,16]}}", "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
         "\"data_offsets\":[0,16]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4]}}", "malformed"},
        {"{\"a\":7}", "malformed"},
        {"[1,2]", "not an object"},
        {"{\"a\":", "header"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(st_image(bad[i].h, 32, err) == DSV3_E_FORMAT, "accepted #%zu", i);
        ck_assert_msg(strstr(err, bad[i].needle), "#%zu: '%s' not in '%s'", i, bad[i].needle,
                      err);
    }
    /* header length pointing past the end of the image */
    unsigned char d[16] = {200};
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__stset s;
    dsv3__st_init(&s, &a);
    dsv3__err e;
    ck_assert_int_eq(dsv3__st_add_buffer(&s, "y", d, sizeof d, &e), DSV3_E_FORMAT);
    dsv3__st_close(&s);
}
END_TEST

START_TEST(bad_config_and_checkpoint)
{
    char *hf = hf_copy();
    edit(hf, "config.json", "{", "{{");
    convert_fails(hf, DSV3_E_FORMAT, "config.json");
    cleanup(hf);
    hf = hf_copy(); /* config contradicting the tensors */
    edit(hf, "config.json", "\"hidden_size\": 128", "\"hidden_size\": 256");
    convert_fails(hf, DSV3_E_FORMAT, "config.json implies");
    cleanup(hf);
    hf = hf_copy();
    edit(hf, "config.json", "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\"");
    convert_fails(hf, DSV3_E_UNSUPPORTED, "gelu");
    cleanup(hf);
    hf = hf_copy(); /* an expert missing */
    edit(hf, "model.safetensors", "model.layers.2.mlp.experts.5.up_proj.weight\"",
         "model.layers.2.mlp.experts.5.up_proj.wEight\"");
    convert_fails(hf, DSV3_E_FORMAT, "experts.5.up_proj");
    cleanup(hf);
    hf = hf_copy(); /* FP8 weight without scales */
    edit(hf, "model.safetensors", "model.layers.0.self_attn.o_proj.weight_scale_inv",
         "model.layers.0.self_attn.o_proj.weight_scale_inX");
    convert_fails(hf, DSV3_E_FORMAT, "scales");
    cleanup(hf);
    hf = hf_copy();
    char *cfg = tu_path(hf, "config.json");
    unlink(cfg);
    convert_fails(hf, DSV3_E_IO, "config.json");
    free(cfg);
    cleanup(hf);
    convert_fails("/nonexistent/checkpoint", DSV3_E_IO, NULL);
}
END_TEST

/* ---- allocation failures ------------------------------------------------------------ */

static void oom_sweep(const char *kind, uint32_t flags)
{
    char *dir = tu_path(g_dir, kind);
    long n;
    for (n = 1;; n++) {
        tu_alloc ta;
        tu_alloc_init(&ta, n);
        dsv3_model_params p;
        dsv3_model_params_init(&p, sizeof p);
        p.allocator = &ta.a;
        p.backend = DSV3_BACKEND_CPU;
        p.n_threads = 2;
        p.flags = flags;
        dsv3_model *m = NULL;
        int rc = dsv3_model_load(dir, &p, &m);
        dsv3_model_free(m);
        ck_assert_msg(ta.live == 0, "%s: %ld blocks leaked after failing allocation %ld", kind,
                      ta.live, n);
        if (rc == DSV3_OK) {
            ck_assert(!ta.failed);
            break;
        }
        ck_assert_msg(rc == DSV3_E_NOMEM, "allocation %ld: got %s", n, dsv3_err_name(rc));
        ck_assert(ta.failed);
    }
    ck_assert_int_gt(n, 50); /* the sweep went through the whole load */
    free(dir);
}

START_TEST(allocation_failures)
{
    oom_sweep("zstd", 0);
    oom_sweep("raw", 0);
}
END_TEST

static Suite *load_suite(void)
{
    Suite *s = suite_create("load");
    TCase *t = tcase_create("shards");
    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, truncated_shard);
    tcase_add_test(t, flipped_byte);
    tcase_add_test(t, flipped_bytes_everywhere);
    tcase_add_test(t, wrong_magic_and_newer_version);
    tcase_add_test(t, missing_and_foreign_shard);
    suite_add_tcase(s, t);
    t = tcase_create("manifest");
    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, manifest_corruption);
    tcase_add_test(t, shapes_contradict_hparams);
    suite_add_tcase(s, t);
    t = tcase_create("convert_input");
    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 60);
    tcase_add_test(t, lying_safetensors);
    tcase_add_test(t, safetensors_headers);
    tcase_add_test(t, bad_config_and_checkpoint);
    suite_add_tcase(s, t);
    t = tcase_create("oom");
    tcase_add_unchecked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 120);
    tcase_add_test(t, allocation_failures);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(load_suite());
}
