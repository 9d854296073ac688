/*
 * check_format.c - lib/format: the manifest reader against manifests
 * assembled here byte by byte from docs/format.md, the builder, shard
 * headers, byte planes, chunk decoding, the thread pool; lib/convert's FP8
 * encoder against the reference one of tests/common.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ckpt_gen.h"
#include "convert/convert.h"
#include "format/format.h"
#include "testutil.h"

static dsv3__alloc A;

/* ---- a byte buffer ------------------------------------------------------------ */

typedef struct buf {
    unsigned char d[1 << 16];
    size_t n;
} buf;

static void put(buf *b, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        b->d[b->n++] = (unsigned char)(v >> (8 * i));
}

static void put_bytes(buf *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put_name(buf *b, const char *s)
{
    put(b, strlen(s), 2);
    put_bytes(b, s, strlen(s));
}

typedef struct sec {
    uint32_t kind, flags;
    buf *body;
} sec;

/* A manifest per docs/format.md: 64-byte header, section table, sections
 * 8-byte aligned with zero padding. */
static size_t assemble(unsigned char *out, const sec *s, int n, uint32_t version)
{
    size_t pos = 64 + 32 * (size_t)n;
    memset(out, 0, 1 << 17);
    for (int i = 0; i < n; i++) {
        pos = (pos + 7) & ~(size_t)7;
        unsigned char *e = out + 64 + 32 * i;
        uint64_t f[4] = {s[i].kind | (uint64_t)s[i].flags << 32, pos, s[i].body->n,
                         dsv3__xxh64(s[i].body->d, s[i].body->n, 0)};
        for (int k = 0; k < 4; k++)
            for (int j = 0; j < 8; j++)
                e[8 * k + j] = (unsigned char)(f[k] >> (8 * j));
        memcpy(out + pos, s[i].body->d, s[i].body->n);
        pos += s[i].body->n;
    }
    memcpy(out, "DSV3MODL", 8);
    uint64_t h[6] = {version | (uint64_t)64 << 32, pos, 0x1234, (uint64_t)n,
                     dsv3__xxh64(out + 64, 32 * (size_t)n, 0), 0};
    for (int k = 0; k < 6; k++)
        for (int j = 0; j < 8; j++)
            out[8 + 8 * k + j] = (unsigned char)(h[k] >> (8 * j));
    return pos;
}

static unsigned char image[1 << 17];
static buf hparams_b, shards_b, tensors_b, extra_b;

/* hparams: one key; shards: one of 4096 bytes; tensors: as built by the test. */
static void base_sections(void)
{
    memset(&hparams_b, 0, sizeof hparams_b);
    memset(&shards_b, 0, sizeof shards_b);
    memset(&tensors_b, 0, sizeof tensors_b);
    put(&hparams_b, 2, 4);
    put_name(&hparams_b, "answer");
    put(&hparams_b, DSV3__KV_I64, 1);
    put(&hparams_b, 42, 8);
    put_name(&hparams_b, "name");
    put(&hparams_b, DSV3__KV_STR, 1);
    put(&hparams_b, 3, 4);
    put_bytes(&hparams_b, "a\0b", 3);
    put(&shards_b, 1, 4);
    put_name(&shards_b, "s-1.dsv3s");
    put(&shards_b, 4096, 8);
}

/* A tensor entry: F32 [2, 64] in one raw chunk at offset 64 unless overridden. */
typedef struct tent {
    const char *name;
    int dtype, codec, flags, nd;
    int64_t ne[4];
    uint32_t shard, alias;
    uint64_t offset, raw, chunk;
    uint32_t nch;
    uint64_t stored;
} tent;

static tent tdef(const char *name)
{
    tent t = {name, DSV3_DTYPE_F32, DSV3__CODEC_RAW, 0, 2, {2, 64}, 0, 0, 64, 512, 512, 1, 512};
    return t;
}

static void put_tensor(buf *b, const tent *t)
{
    put_name(b, t->name);
    put(b, (uint64_t)t->dtype, 1);
    put(b, (uint64_t)t->codec, 1);
    put(b, (uint64_t)t->flags, 1);
    put(b, (uint64_t)t->nd, 1);
    for (int i = 0; i < t->nd; i++)
        put(b, i < 4 ? (uint64_t)t->ne[i] : 1, 8);
    if (t->codec == DSV3__CODEC_ALIAS) {
        put(b, t->alias, 4);
        return;
    }
    put(b, t->shard, 4);
    put(b, t->offset, 8);
    put(b, t->raw, 8);
    put(b, t->chunk, 8);
    put(b, t->nch, 4);
    for (uint32_t k = 0; k < t->nch; k++) {
        put(b, t->stored, 8);
        put(b, 0, 8);
    }
}

static int parse_with(const tent *t, int n, dsv3__manifest *m, dsv3__err *e)
{
    base_sections();
    put(&tensors_b, (uint64_t)n, 4);
    for (int i = 0; i < n; i++)
        put_tensor(&tensors_b, &t[i]);
    sec s[3] = {{DSV3__SEC_HPARAMS, 1, &hparams_b}, {DSV3__SEC_SHARDS, 1, &shards_b},
                {DSV3__SEC_TENSORS, 1, &tensors_b}};
    size_t len = assemble(image, s, 3, 1);
    return dsv3__manifest_parse(&A, image, len, m, e);
}

START_TEST(reader_accepts_spec_layout)
{
    tent t[3] = {tdef("w"), tdef("alias.of.w"), tdef("v")};
    t[1].codec = DSV3__CODEC_ALIAS;
    t[1].alias = 0;
    t[2].dtype = DSV3_DTYPE_BF16;
    t[2].nd = 1;
    t[2].ne[0] = 1000;
    t[2].codec = DSV3__CODEC_ZSTD;
    t[2].flags = DSV3__TFLAG_PLANES;
    t[2].offset = 640;
    t[2].raw = 2000;
    t[2].chunk = 600;
    t[2].nch = 4;
    t[2].stored = 100;
    dsv3__manifest m;
    dsv3__err e;
    ck_assert_msg(parse_with(t, 3, &m, &e) == DSV3_OK, "%s", e.msg);
    ck_assert_uint_eq(m.model_id, 0x1234);
    ck_assert_int_eq(m.n_tensors, 3);
    const dsv3__kv *kv = dsv3__kv_find(&m.hparams, "answer");
    ck_assert(kv && kv->type == DSV3__KV_I64 && kv->i == 42);
    kv = dsv3__kv_find(&m.hparams, "name");
    ck_assert(kv && kv->s_len == 3 && !memcmp(kv->s, "a\0b", 3));
    const dsv3__fmt_tensor *v = dsv3__manifest_find(&m, "v");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v->n_chunks, 4);
    ck_assert_uint_eq(v->chunks[3].raw, 200); /* the last chunk is short */
    ck_assert_uint_eq(v->chunks[3].raw_off, 1800);
    ck_assert_uint_eq(v->chunks[2].offset, 640 + 200);
    ck_assert_uint_eq(v->stored_size, 400);
    ck_assert_int_eq(dsv3__manifest_find(&m, "alias.of.w")->alias, 0);
    ck_assert_ptr_null(dsv3__manifest_find(&m, "x"));
    ck_assert_str_eq(m.shards[0].name, "s-1.dsv3s");
    dsv3__manifest_free(&m);
}
END_TEST

START_TEST(reader_rejects_bad_tensors)
{
    static const char *const what[] = {
        "raw size", "alignment", "inside header", "chunk count", "past shard end",
        "unknown dtype", "unknown codec", "planes on fp8", "planes on raw", "alias of alias",
        "alias shape", "alias self", "duplicate", "name with space", "empty name", "0 dims",
        "5 dims", "zero dim", "chunk size 0", "chunk not multiple", "raw stored size",
        "shard index", "huge dim", "q8_0 not multiple of 32", "unknown flags",
    };
    for (int k = 0; k < (int)(sizeof what / sizeof what[0]); k++) {
        tent t[2] = {tdef("a"), tdef("b")};
        t[1].offset = 576;
        int n = 2;
        switch (k) {
        case 0: t[0].raw = 511; break;
        case 1: t[0].offset = 96; break;
        case 2: t[0].offset = 0; break;
        case 3: t[0].chunk = 256; break; /* needs 2 chunks, 1 given */
        case 4: t[1].offset = 4096 - 448; break;
        case 5: t[0].dtype = 9; break;
        case 6: t[0].codec = 7; break;
        case 7: t[0].dtype = DSV3_DTYPE_FP8_E4M3; t[0].ne[1] = 256; t[0].codec = DSV3__CODEC_ZSTD;
                t[0].flags = DSV3__TFLAG_PLANES; t[0].stored = 100; break;
        case 8: t[0].flags = DSV3__TFLAG_PLANES; break;
        case 9: t[1].codec = DSV3__CODEC_ALIAS; t[1].alias = 0;
                t[0].codec = DSV3__CODEC_ALIAS; t[0].alias = 1; break;
        case 10: t[1].codec = DSV3__CODEC_ALIAS; t[1].alias = 0; t[1].ne[0] = 3; break;
        case 11: t[1].codec = DSV3__CODEC_ALIAS; t[1].alias = 1; break;
        case 12: t[1].name = "a"; break;
        case 13: t[1].name = "b c"; break;
        case 14: t[1].name = ""; break;
        case 15: t[0].nd = 0; break;
        case 16: t[0].nd = 5; break;
        case 17: t[0].ne[0] = 0; t[0].raw = 0; t[0].nch = 0; break;
        case 18: t[0].chunk = 0; break;
        case 19: t[0].chunk = 510; break;
        case 20: t[0].stored = 500; break;
        case 21: t[0].shard = 1; break;
        case 22: t[0].ne[0] = (int64_t)1 << 41; break;
        case 23: t[0].dtype = DSV3_DTYPE_Q8_0; t[0].ne[1] = 48; t[0].raw = 68; t[0].chunk = 68; break;
        case 24: t[0].flags = 8; break;
        }
        dsv3__manifest m;
        dsv3__err e;
        int rc = parse_with(t, n, &m, &e);
        ck_assert_msg(rc == DSV3_E_FORMAT, "%s: got %s", what[k], dsv3_err_name(rc));
        ck_assert_ptr_nonnull(strstr(e.msg, "manifest"));
        dsv3__manifest_free(&m);
    }
}
END_TEST

START_TEST(reader_sections)
{
    tent t = tdef("a");
    dsv3__manifest m;
    dsv3__err e;
    base_sections();
    put(&tensors_b, 1, 4);
    put_tensor(&tensors_b, &t);
    memset(&extra_b, 0, sizeof extra_b);
    put_bytes(&extra_b, "future", 6);
    sec s[4] = {{DSV3__SEC_HPARAMS, 1, &hparams_b}, {99, 0, &extra_b},
                {DSV3__SEC_SHARDS, 1, &shards_b}, {DSV3__SEC_TENSORS, 1, &tensors_b}};
    size_t len = assemble(image, s, 4, 1); /* an optional unknown section is skipped */
    ck_assert_msg(dsv3__manifest_parse(&A, image, len, &m, &e) == DSV3_OK, "%s", e.msg);
    dsv3__manifest_free(&m);
    s[1].flags = DSV3__SEC_FLAG_REQUIRED; /* a required one is refused */
    len = assemble(image, s, 4, 1);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_VERSION);
    ck_assert_ptr_nonnull(strstr(e.msg, "upgrade"));
    s[1] = (sec){DSV3__SEC_SHARDS, 1, &shards_b}; /* twice */
    len = assemble(image, s, 4, 1);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_FORMAT);
    len = assemble(image, s + 2, 2, 1); /* no hparams */
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_FORMAT);
    ck_assert_ptr_nonnull(strstr(e.msg, "hparams"));
    s[1] = (sec){DSV3__SEC_META, 1, &extra_b}; /* malformed key-value section */
    len = assemble(image, s, 4, 1);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_FORMAT);
    s[1] = (sec){DSV3__SEC_CONFIG, 0, &extra_b};
    len = assemble(image, s, 4, 3); /* newer version */
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_VERSION);
    len = assemble(image, s, 4, 1);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_OK);
    ck_assert(m.config_len == 6 && !memcmp(m.config, "future", 6));
    dsv3__manifest_free(&m);
    image[len - 1] ^= 1; /* the tensors section's checksum */
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len, &m, &e), DSV3_E_CHECKSUM);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, len - 1, &m, &e), DSV3_E_FORMAT);
    ck_assert_int_eq(dsv3__manifest_parse(&A, image, 7, &m, &e), DSV3_E_FORMAT);
}
END_TEST

/* The builder writes what the reader and this file's layout expect. */
START_TEST(builder_round_trip)
{
    dsv3__mbuild b;
    dsv3__mbuild_init(&b, &A);
    dsv3__mbuild_kv_i64(&b, DSV3__SEC_HPARAMS, "i", -5);
    dsv3__mbuild_kv_f64(&b, DSV3__SEC_HPARAMS, "f", 0.125);
    dsv3__mbuild_kv_bool(&b, DSV3__SEC_META, "b", true);
    dsv3__mbuild_kv_str(&b, DSV3__SEC_META, "s", "xyz", 3);
    dsv3__mbuild_blob(&b, DSV3__SEC_TOKENIZER, "tok", 3);
    dsv3__mbuild_shard(&b, "model-00001.dsv3s", 1 << 20);
    dsv3__fmt_chunk ch[2] = {{128, 50, 0, 0, 7}, {178, 60, 0, 0, 8}};
    int64_t ne[3] = {2, 3, 1000};
    dsv3__mbuild_tensor(&b, "t", DSV3_DTYPE_BF16, 3, ne, DSV3__CODEC_ZSTD, DSV3__TFLAG_PLANES, 0,
                        8192, ch, 2);
    dsv3__mbuild_alias(&b, "u", "t");
    void *out;
    size_t len;
    dsv3__err e;
    ck_assert_int_eq(dsv3__mbuild_finish(&b, 99, &out, &len, &e), DSV3_OK);
    dsv3__manifest m;
    ck_assert_msg(dsv3__manifest_parse(&A, out, len, &m, &e) == DSV3_OK, "%s", e.msg);
    ck_assert_uint_eq(m.model_id, 99);
    ck_assert(dsv3__kv_find(&m.hparams, "f")->f == 0.125);
    ck_assert(dsv3__kv_find(&m.hparams, "i")->i == -5);
    ck_assert(dsv3__kv_find(&m.meta, "b")->i == 1);
    ck_assert(m.tokenizer_len == 3 && !memcmp(m.tokenizer, "tok", 3));
    const dsv3__fmt_tensor *t = dsv3__manifest_find(&m, "t");
    ck_assert_uint_eq(t->raw_size, 12000);
    ck_assert_uint_eq(t->offset, 128);
    ck_assert_uint_eq(t->chunks[1].hash, 8);
    ck_assert_uint_eq(t->chunks[1].raw, 12000 - 8192);
    const dsv3__fmt_tensor *u = dsv3__manifest_find(&m, "u");
    ck_assert(u->alias == 0 && u->ne[2] == 1000 && u->dtype == DSV3_DTYPE_BF16);
    dsv3__manifest_free(&m);
    dsv3__free(&A, out);
    /* an alias of an unknown tensor and a bad name make the build fail */
    dsv3__mbuild_alias(&b, "v", "nope");
    ck_assert_int_eq(dsv3__mbuild_finish(&b, 1, &out, &len, &e), DSV3_E_INVAL);
    dsv3__mbuild_free(&b);
}
END_TEST

START_TEST(shard_headers)
{
    dsv3__mbuild b;
    dsv3__mbuild_init(&b, &A);
    dsv3__mbuild_kv_i64(&b, DSV3__SEC_HPARAMS, "i", 1);
    dsv3__mbuild_shard(&b, "a.dsv3s", 4096);
    dsv3__mbuild_shard(&b, "b.dsv3s", 8192);
    void *out;
    size_t len;
    dsv3__err e;
    ck_assert_int_eq(dsv3__mbuild_finish(&b, 77, &out, &len, &e), DSV3_OK);
    dsv3__manifest m;
    ck_assert_int_eq(dsv3__manifest_parse(&A, out, len, &m, &e), DSV3_OK);
    unsigned char h[64];
    dsv3__shard_header(h, 8192, 77, 1);
    ck_assert(!memcmp(h, "DSV3SHRD\1\0\0\0\x40\0\0\0", 16));
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 64, 8192, &e), DSV3_OK);
    ck_assert_int_eq(dsv3__shard_check(&m, 0, h, 64, 8192, &e), DSV3_E_FORMAT); /* index/size */
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 64, 8000, &e), DSV3_E_FORMAT);
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 40, 8192, &e), DSV3_E_FORMAT);
    h[63] = 1;
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 64, 8192, &e), DSV3_E_FORMAT);
    dsv3__shard_header(h, 8192, 78, 1);
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 64, 8192, &e), DSV3_E_FORMAT);
    dsv3__shard_header(h, 8192, 77, 1);
    h[8] = 2;
    ck_assert_int_eq(dsv3__shard_check(&m, 1, h, 64, 8192, &e), DSV3_E_VERSION);
    dsv3__manifest_free(&m);
    dsv3__free(&A, out);
    dsv3__mbuild_free(&b);
}
END_TEST

/* ---- data ------------------------------------------------------------------------ */

START_TEST(byte_planes)
{
    unsigned char src[4096], pl[4096], back[4096];
    for (size_t i = 0; i < sizeof src; i++)
        src[i] = (unsigned char)(i * 131 + (i >> 5));
    const uint32_t units[] = {1, 2, 4, 34, 2, 4};
    for (int k = 0; k < 6; k++) {
        size_t n = (k < 4 ? sizeof src : 4 * 37) / units[k] * units[k]; /* with short tails */
        dsv3__planes_split(pl, src, n, units[k]);
        size_t bad = 0; /* byte j of element e goes to plane j */
        for (size_t i = 0; i < n; i++)
            bad += pl[(i % units[k]) * (n / units[k]) + i / units[k]] != src[i];
        ck_assert_msg(bad == 0, "unit %u: %zu bytes misplaced", units[k], bad);
        dsv3__planes_join(back, pl, n, units[k]);
        ck_assert(!memcmp(back, src, n));
    }
}
END_TEST

START_TEST(chunk_codec)
{
    enum { N = 3000 };
    static uint16_t raw[N], out[N];
    static unsigned char split[2 * N], comp[4 * N + 1024], scratch[2 * N];
    for (int i = 0; i < N; i++)
        raw[i] = (uint16_t)(0x3c00 + (i * 7919) % 251);
    void *cc = dsv3__zstd_cctx_new(&A, 3), *dc = dsv3__zstd_dctx_new(&A);
    ck_assert(cc && dc);
    dsv3__fmt_tensor t = {.name = "t", .dtype = DSV3_DTYPE_BF16, .codec = DSV3__CODEC_ZSTD,
                          .flags = DSV3__TFLAG_PLANES};
    dsv3__planes_split(split, raw, sizeof raw, 2);
    size_t n;
    ck_assert_int_eq(dsv3__zstd_compress(cc, comp, sizeof comp, split, sizeof raw, &n), DSV3_OK);
    dsv3__fmt_chunk c = {0, n, 0, sizeof raw, dsv3__xxh64(comp, n, 0)};
    dsv3__err e;
    ck_assert_int_eq(dsv3__chunk_decode(dc, &t, &c, comp, out, scratch, true, &e), DSV3_OK);
    ck_assert(!memcmp(out, raw, sizeof raw));
    comp[n / 2] ^= 0x20;
    ck_assert_int_eq(dsv3__chunk_decode(dc, &t, &c, comp, out, scratch, true, &e), DSV3_E_CHECKSUM);
    int rc = dsv3__chunk_decode(dc, &t, &c, comp, out, scratch, false, &e);
    ck_assert(rc == DSV3_E_CHECKSUM || rc == DSV3_E_FORMAT);
    comp[n / 2] ^= 0x20;
    c.raw -= 2; /* the frame says otherwise */
    ck_assert_int_eq(dsv3__chunk_decode(dc, &t, &c, comp, out, scratch, false, &e), DSV3_E_FORMAT);
    dsv3__zstd_cctx_free(cc);
    dsv3__zstd_dctx_free(dc);
}
END_TEST

/* The converter's arithmetic e4m3 encoder equals the nearest-value search. */
START_TEST(fp8_encoder)
{
    for (int c = 0; c < 256; c++) {
        if ((c & 0x7f) == 0x7f)
            continue;
        float v = cg_fp8_decode((uint8_t)c);
        ck_assert_uint_eq(dsv3__fp8_from_f32(v), c == 0x80 ? 0x80 : c);
        ck_assert(v == dsv3__fp8_e4m3_table[c]); /* the library's table agrees */
        if ((c & 0x7f) < 0x7e) { /* the midpoint to the next value: ties to even */
            float mid = (v + cg_fp8_decode((uint8_t)(c + 1))) / 2;
            ck_assert_uint_eq(dsv3__fp8_from_f32(mid), cg_fp8_encode(mid));
        }
    }
    uint64_t s = 12345;
    int bad = 0;
    for (int i = 0; i < 200000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        float x = (float)((double)(s >> 11) / 9007199254740992.0 - 0.5);
        x = ldexpf(x, (int)(s % 24) - 12) * 1000.0f;
        bad += dsv3__fp8_from_f32(x) != cg_fp8_encode(x);
    }
    ck_assert_int_eq(bad, 0);
    ck_assert_uint_eq(dsv3__fp8_from_f32(1e9f), 0x7e);
    ck_assert_uint_eq(dsv3__fp8_from_f32(-449.0f), 0xfe);
    ck_assert_uint_eq(dsv3__fp8_from_f32(NAN), 0x7f);
}
END_TEST

/* ---- pool -------------------------------------------------------------------------- */

typedef struct pjob {
    atomic_int hits[1000];
    int fail_at;
    atomic_int ticks;
} pjob;

static int pool_fn(void *arg, int worker, size_t j)
{
    pjob *p = arg;
    ck_assert(worker >= 0 && worker < 4);
    atomic_fetch_add(&p->hits[j], 1);
    return (int)j == p->fail_at ? DSV3_E_IO : DSV3_OK;
}

static int pool_tick(void *arg)
{
    pjob *p = arg;
    return atomic_fetch_add(&p->ticks, 1) >= 0; /* cancel at once */
}

START_TEST(pool_runs)
{
    dsv3__pool *pool;
    ck_assert_int_eq(dsv3__pool_new(&A, 4, &pool), DSV3_OK);
    static pjob p;
    for (int round = 0; round < 3; round++) {
        memset(&p, 0, sizeof p);
        p.fail_at = -1;
        ck_assert_int_eq(dsv3__pool_run(pool, pool_fn, &p, 1000, NULL, NULL), DSV3_OK);
        for (int j = 0; j < 1000; j++)
            ck_assert_int_eq(p.hits[j], 1);
    }
    p.fail_at = 10;
    ck_assert_int_eq(dsv3__pool_run(pool, pool_fn, &p, 1000, NULL, NULL), DSV3_E_IO);
    dsv3__pool_free(pool);
    /* the calling thread runs every job of a one-thread pool and ticks */
    ck_assert_int_eq(dsv3__pool_new(&A, 1, &pool), DSV3_OK);
    memset(&p, 0, sizeof p);
    p.fail_at = -1;
    ck_assert_int_eq(dsv3__pool_run(pool, pool_fn, &p, 1000, pool_tick, &p), DSV3_E_CANCELED);
    ck_assert_int_eq(p.ticks, 1);
    ck_assert_int_eq(p.hits[1], 0);
    dsv3__pool_free(pool);
}
END_TEST

static Suite *format_suite(void)
{
    dsv3__alloc_init(&A, NULL);
    Suite *s = suite_create("format");
    TCase *t = tcase_create("manifest");
    tcase_add_test(t, reader_accepts_spec_layout);
    tcase_add_test(t, reader_rejects_bad_tensors);
    tcase_add_test(t, reader_sections);
    tcase_add_test(t, builder_round_trip);
    tcase_add_test(t, shard_headers);
    suite_add_tcase(s, t);
    t = tcase_create("data");
    tcase_add_test(t, byte_planes);
    tcase_add_test(t, chunk_codec);
    tcase_add_test(t, fp8_encoder);
    suite_add_tcase(s, t);
    t = tcase_create("pool");
    tcase_add_test(t, pool_runs);
    suite_add_tcase(s, t);
    return s;
}

int main(void)
{
    return tu_run_suite(format_suite());
}
