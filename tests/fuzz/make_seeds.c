/*
 * make_seeds.c - writes the seed corpus of fuzz_manifest: small valid
 * manifest + shard images (the hyper-parameters of the tiny config, raw,
 * zstd, byte-plane, FP8 and alias tensors) and a few damaged copies.
 * Usage: make_fuzz_seeds OUT_DIR
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_gen.h"
#include "format/format.h"
#include "model/model.h"

static dsv3__alloc A;

typedef struct img {
    unsigned char shard[1 << 16];
    size_t shard_len;
    dsv3__mbuild b;
} img;

/* Append one tensor's chunks to the shard. */
static void add(img *im, const char *name, int32_t dtype, int nd, const int64_t *ne,
                const void *raw, size_t n, int level, bool planes, size_t chunk)
{
    im->shard_len = (im->shard_len + 63) & ~(size_t)63;
    dsv3__fmt_chunk ch[64];
    uint32_t nch = 0;
    void *cc = level >= 0 ? dsv3__zstd_cctx_new(&A, level) : NULL;
    unsigned char tmp[8192];
    uint32_t unit = dsv3__fmt_dtype_unit(dtype);
    for (size_t off = 0; off < n; off += chunk) {
        size_t k = n - off < chunk ? n - off : chunk, stored = k;
        unsigned char *dst = im->shard + im->shard_len;
        const unsigned char *src = (const unsigned char *)raw + off;
        if (cc) {
            if (planes) {
                dsv3__planes_split(tmp, src, k, unit);
                src = tmp;
            }
            dsv3__zstd_compress(cc, dst, sizeof im->shard - im->shard_len, src, k, &stored);
        } else {
            memcpy(dst, src, k);
        }
        ch[nch++] = (dsv3__fmt_chunk){im->shard_len, stored, 0, k, dsv3__xxh64(dst, stored, 0)};
        im->shard_len += stored;
    }
    dsv3__zstd_cctx_free(cc);
    dsv3__mbuild_tensor(&im->b, name, dtype, nd, ne, level >= 0 ? DSV3__CODEC_ZSTD : 0,
                        planes ? DSV3__TFLAG_PLANES : 0, 0, chunk, ch, nch);
}

static void build(img *im, int level)
{
    memset(im->shard, 0, sizeof im->shard);
    im->shard_len = 64;
    dsv3__mbuild_init(&im->b, &A);
    char *cfg = cg_config_json(&cg_tiny);
    dsv3_hparams hp;
    dsv3__err e;
    if (dsv3__hparams_from_config(&A, cfg, strlen(cfg), &hp, NULL, &e) == DSV3_OK)
        dsv3__hparams_to_kv(&hp, &im->b);
    dsv3__mbuild_blob(&im->b, DSV3__SEC_CONFIG, cfg, strlen(cfg));
    dsv3__mbuild_kv_i64(&im->b, DSV3__SEC_META, "tokenizer.chat_kind", 0);
    free(cfg);
    float a[32];
    uint16_t b[300];
    uint8_t c[35];
    for (int i = 0; i < 32; i++)
        a[i] = (float)i * 0.25f - 3.0f;
    for (int i = 0; i < 300; i++)
        b[i] = (uint16_t)(0x3f80 + (i * 37) % 64);
    for (int i = 0; i < 35; i++)
        c[i] = (uint8_t)(i * 7);
    float s = 0.01f;
    int64_t na[2] = {4, 8}, nb[1] = {300}, nc[2] = {5, 7}, ns[2] = {1, 1};
    add(im, "a", DSV3_DTYPE_F32, 2, na, a, sizeof a, -1, false, 64);
    add(im, "b", DSV3_DTYPE_BF16, 1, nb, b, sizeof b, level, level >= 0, 256);
    add(im, "c", DSV3_DTYPE_FP8_E4M3, 2, nc, c, sizeof c, level, false, 35);
    add(im, "c_scale_inv", DSV3_DTYPE_F32, 2, ns, &s, 4, -1, false, 4);
    dsv3__mbuild_alias(&im->b, "d", "b");
}

static int fix_flag;

static void emit(const char *dir, const char *name, img *im,
                 void (*damage)(unsigned char *, size_t *, unsigned char *, size_t *))
{
    uint64_t id = dsv3__mbuild_model_id(&im->b);
    dsv3__mbuild_shard(&im->b, "model-00001.dsv3s", im->shard_len);
    dsv3__shard_header(im->shard, im->shard_len, id, 0);
    void *man;
    size_t ml;
    dsv3__err e;
    if (dsv3__mbuild_finish(&im->b, id, &man, &ml, &e) != DSV3_OK) {
        fprintf(stderr, "%s\n", e.msg);
        exit(1);
    }
    static unsigned char out[1 << 17];
    memcpy(out + 4, man, ml);
    size_t sl = im->shard_len;
    memcpy(out + 4 + ml, im->shard, sl);
    if (damage)
        damage(out + 4, &ml, out + 4 + ml, &sl);
    for (int i = 0; i < 3; i++)
        out[i] = (unsigned char)(ml >> (8 * i));
    out[3] = fix_flag ? 0x80 : 0; /* the target recomputes the manifest checksums */
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(out, 1, 4 + ml + sl, f) != 4 + ml + sl || fclose(f)) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    dsv3__free(&A, man);
    dsv3__mbuild_free(&im->b);
}

static void newer(unsigned char *m, size_t *ml, unsigned char *s, size_t *sl)
{
    (void)ml, (void)s, (void)sl;
    m[8] = 2;
}
static void cut_manifest(unsigned char *m, size_t *ml, unsigned char *s, size_t *sl)
{
    (void)m, (void)s, (void)sl;
    *ml -= 9;
}
static void cut_shard(unsigned char *m, size_t *ml, unsigned char *s, size_t *sl)
{
    (void)m, (void)ml, (void)s;
    *sl -= 17;
}
static void bad_frame(unsigned char *m, size_t *ml, unsigned char *s, size_t *sl)
{
    (void)m, (void)ml;
    s[*sl / 2] ^= 0x55; /* inside a zstd frame: decoded without the xxh64 check */
}
static void bad_section(unsigned char *m, size_t *ml, unsigned char *s, size_t *sl)
{
    (void)s, (void)sl;
    m[*ml - 5] ^= 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_fuzz_seeds OUT_DIR\n");
        return 2;
    }
    dsv3__alloc_init(&A, NULL);
    static img im;
    build(&im, 3);
    emit(argv[1], "valid-zstd", &im, NULL);
    build(&im, -1);
    emit(argv[1], "valid-raw", &im, NULL);
    build(&im, 19);
    emit(argv[1], "valid-zstd19", &im, NULL);
    build(&im, 3);
    emit(argv[1], "newer-version", &im, newer);
    build(&im, 3);
    emit(argv[1], "cut-manifest", &im, cut_manifest);
    build(&im, 3);
    emit(argv[1], "cut-shard", &im, cut_shard);
    build(&im, 3);
    emit(argv[1], "bad-frame", &im, bad_frame);
    build(&im, 3);
    emit(argv[1], "bad-section", &im, bad_section);
    fix_flag = 1;
    build(&im, 3);
    emit(argv[1], "fixed-bad-section", &im, bad_section);
    build(&im, -1);
    emit(argv[1], "fixed-valid-raw", &im, NULL);
    return 0;
}
