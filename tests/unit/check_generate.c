/*
 * check_generate.c - lib/model generation: UTF-8 units, the streamed text
 * (character completion, stop strings, special tokens) and the generation
 * loop driven by a scripted sequence instead of a model.
 * SPDX-License-Identifier: MIT
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model.h"
#include "testutil.h"

/* ---- UTF-8 units (Unicode 15, table 3-7 and the "maximal subpart" rule) -- */

static int unit(const char *s, size_t n)
{
    return dsv3__utf8_unit((const unsigned char *)s, n);
}

START_TEST(utf8_units)
{
    ck_assert_int_eq(unit("a", 1), 1);
    ck_assert_int_eq(unit("\xc3\xa9", 2), 2);           /* U+00E9 */
    ck_assert_int_eq(unit("\xe2\x82\xac", 3), 3);       /* U+20AC */
    ck_assert_int_eq(unit("\xf0\x9f\x98\x80", 4), 4);   /* U+1F600 */
    ck_assert_int_eq(unit("\xf4\x8f\xbf\xbf", 4), 4);   /* U+10FFFF */
    ck_assert_int_eq(unit("\xed\x9f\xbf", 3), 3);       /* U+D7FF */
    /* starts of characters */
    ck_assert_int_eq(unit("\xc3", 1), 0);
    ck_assert_int_eq(unit("\xe2\x82", 2), 0);
    ck_assert_int_eq(unit("\xf0\x9f\x98", 3), 0);
    /* invalid: lone continuation, overlong, surrogate, > U+10FFFF, bad bytes */
    ck_assert_int_eq(unit("\x80", 1), -1);
    ck_assert_int_eq(unit("\xc0\x80", 2), -1);
    ck_assert_int_eq(unit("\xc1\xbf", 2), -1);
    ck_assert_int_eq(unit("\xe0\x80\x80", 3), -1);
    ck_assert_int_eq(unit("\xed\xa0\x80", 3), -1);
    ck_assert_int_eq(unit("\xf4\x90\x80\x80", 4), -1);
    ck_assert_int_eq(unit("\xf5\x80\x80\x80", 4), -1);
    ck_assert_int_eq(unit("\xff", 1), -1);
    /* truncated sequences followed by something else: the maximal subpart */
    ck_assert_int_eq(unit("\xe2\x82\x41", 3), -2);
    ck_assert_int_eq(unit("\xf0\x9f\x41", 3), -2);
    ck_assert_int_eq(unit("\xf0\x9f\x98\x41", 4), -3);
    ck_assert_int_eq(unit("\xc3\x41", 2), -1);
    ck_assert(dsv3__utf8_valid("h\xc3\xa9llo \xf0\x9f\x98\x80", 11));
    ck_assert(!dsv3__utf8_valid("h\xc3", 2));
    ck_assert(!dsv3__utf8_valid("\xed\xa0\x80", 3));
}
END_TEST

/* ---- textout -------------------------------------------------------------- */

static dsv3__alloc std_alloc;

typedef struct {
    dsv3__textout t;
    char acc[4096]; /* everything delivered */
    size_t acc_len;
    bool stopped;
} tout;

static void tout_init(tout *o, const char *const *stop, uint32_t n_stop, bool show_special)
{
    memset(o, 0, sizeof *o);
    dsv3__alloc_init(&std_alloc, NULL);
    dsv3__err err;
    ck_assert_int_eq(dsv3__textout_init(&o->t, &std_alloc, stop, n_stop, show_special, &err),
                     DSV3_OK);
}

/* Push one token (NUL-terminated bytes); returns the new text (static). */
static const char *push(tout *o, const char *bytes, bool special, bool final)
{
    static char buf[4096];
    const char *text;
    size_t len;
    bool st;
    ck_assert_int_eq(dsv3__textout_push(&o->t, bytes, strlen(bytes), special, final, &text,
                                        &len, &st), DSV3_OK);
    ck_assert_ptr_nonnull(text);
    ck_assert_uint_eq(strlen(text), len);
    ck_assert(dsv3__utf8_valid(text, len));
    memcpy(buf, text, len);
    buf[len] = '\0';
    memcpy(o->acc + o->acc_len, text, len);
    o->acc_len += len;
    o->acc[o->acc_len] = '\0';
    if (o->stopped)
        ck_assert(st); /* stays stopped */
    o->stopped = st;
    return buf;
}

START_TEST(text_split_characters)
{
    tout o;
    tout_init(&o, NULL, 0, false);
    ck_assert_str_eq(push(&o, "caf", false, false), "caf");
    ck_assert_str_eq(push(&o, "\xc3", false, false), "");
    ck_assert_str_eq(push(&o, "\xa9 ", false, false), "\xc3\xa9 ");
    ck_assert_str_eq(push(&o, "\xf0", false, false), "");
    ck_assert_str_eq(push(&o, "\x9f", false, false), "");
    ck_assert_str_eq(push(&o, "\x98", false, false), "");
    ck_assert_str_eq(push(&o, "\x80!", false, false), "\xf0\x9f\x98\x80!");
    ck_assert_str_eq(push(&o, "\xe2\x82", false, false), "");
    ck_assert_str_eq(push(&o, "\xac\xe2", false, false), "\xe2\x82\xac");
    ck_assert_str_eq(push(&o, "", false, true), "\xef\xbf\xbd"); /* incomplete at the end */
    ck_assert(!o.stopped);
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_invalid_bytes)
{
    tout o;
    tout_init(&o, NULL, 0, false);
    ck_assert_str_eq(push(&o, "a\x80" "b", false, false), "a\xef\xbf\xbd" "b");
    ck_assert_str_eq(push(&o, "\xff\xfe", false, false), "\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(push(&o, "\xe2\x82", false, false), "");
    ck_assert_str_eq(push(&o, "x", false, false), "\xef\xbf\xbdx"); /* broken, then x */
    ck_assert_str_eq(push(&o, "\xed\xa0\x80", false, false),
                     "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"); /* surrogate: 3 subparts */
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_stop_across_tokens)
{
    const char *stop[] = {"END"};
    tout o;
    tout_init(&o, stop, 1, false);
    ck_assert_str_eq(push(&o, "abc E", false, false), "abc ");
    ck_assert_str_eq(push(&o, "N", false, false), "");
    ck_assert(!o.stopped);
    ck_assert_str_eq(push(&o, "D and more", false, false), "");
    ck_assert(o.stopped);
    ck_assert_str_eq(push(&o, "later", false, false), "");
    ck_assert_str_eq(o.acc, "abc ");
    dsv3__textout_free(&o.t);

    /* a false start is released as soon as it cannot be a stop string */
    tout_init(&o, stop, 1, false);
    ck_assert_str_eq(push(&o, "E", false, false), "");
    ck_assert_str_eq(push(&o, "N", false, false), "");
    ck_assert_str_eq(push(&o, "X", false, false), "ENX");
    ck_assert_str_eq(push(&o, "EEN", false, false), "E");
    ck_assert_str_eq(push(&o, "", false, true), "EN"); /* the end releases the rest */
    ck_assert(!o.stopped);
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_stop_at_start_and_inside)
{
    const char *stop[] = {"STOP"};
    tout o;
    tout_init(&o, stop, 1, false);
    ck_assert_str_eq(push(&o, "ST", false, false), "");
    ck_assert_str_eq(push(&o, "OP", false, false), "");
    ck_assert(o.stopped);
    ck_assert_str_eq(o.acc, "");
    dsv3__textout_free(&o.t);

    tout_init(&o, stop, 1, false);
    ck_assert_str_eq(push(&o, "hello STOP world", false, false), "hello ");
    ck_assert(o.stopped);
    dsv3__textout_free(&o.t);

    /* a stop string made of multi-byte characters, split inside them */
    const char *stop2[] = {"\xc3\xa9t\xc3\xa9"};
    tout_init(&o, stop2, 1, false);
    ck_assert_str_eq(push(&o, "l'\xc3", false, false), "l'");
    ck_assert_str_eq(push(&o, "\xa9t\xc3", false, false), "");
    ck_assert_str_eq(push(&o, "\xa9!", false, false), "");
    ck_assert(o.stopped);
    ck_assert_str_eq(o.acc, "l'");
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_multiple_stops)
{
    const char *stop[] = {"bb", "abc"};
    tout o;
    tout_init(&o, stop, 2, false);
    ck_assert_str_eq(push(&o, "xabcbb", false, false), "x"); /* the earliest wins */
    dsv3__textout_free(&o.t);

    const char *stop2[] = {"abcd", "cde", "zz"};
    tout_init(&o, stop2, 3, false);
    ck_assert_str_eq(push(&o, "xabc", false, false), "x"); /* "abc" may become "abcd" */
    ck_assert_str_eq(push(&o, "de", false, false), "");    /* "abcd" before "cde" */
    ck_assert(o.stopped);
    dsv3__textout_free(&o.t);

    tout_init(&o, stop2, 3, false);
    ck_assert_str_eq(push(&o, "xbc", false, false), "xb"); /* "c" may become "cde" */
    ck_assert_str_eq(push(&o, "d", false, false), "");
    ck_assert_str_eq(push(&o, "e", false, false), "");
    ck_assert(o.stopped);
    ck_assert_str_eq(o.acc, "xb");
    dsv3__textout_free(&o.t);

    tout_init(&o, stop2, 3, false);
    ck_assert_str_eq(push(&o, "q", false, false), "q");
    ck_assert_str_eq(push(&o, "z", false, false), "");
    ck_assert_str_eq(push(&o, "y", false, false), "zy");
    ck_assert_str_eq(push(&o, "abcX", false, true), "abcX");
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_special_tokens)
{
    const char *stop[] = {"<|user|>"};
    tout o;
    tout_init(&o, stop, 1, false);
    ck_assert_str_eq(push(&o, "hi", false, false), "hi");
    ck_assert_str_eq(push(&o, "<|user|>", true, false), ""); /* hidden: no stop either */
    ck_assert(!o.stopped);
    ck_assert_str_eq(push(&o, "<|eos|>", true, true), "");
    ck_assert_str_eq(o.acc, "hi");
    dsv3__textout_free(&o.t);

    tout_init(&o, stop, 1, true); /* shown: their text counts, stop strings too */
    ck_assert_str_eq(push(&o, "<|eos|>", true, false), "<|eos|>");
    ck_assert_str_eq(push(&o, "<|user|>", true, false), "");
    ck_assert(o.stopped);
    dsv3__textout_free(&o.t);
}
END_TEST

START_TEST(text_bad_stops)
{
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3__textout t;
    dsv3__err err;
    ck_assert_int_eq(dsv3__textout_init(&t, &a, NULL, 1, false, &err), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "NULL"));
    const char *s1[] = {"ok", NULL};
    ck_assert_int_eq(dsv3__textout_init(&t, &a, s1, 2, false, &err), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "stop string 1"));
    const char *s2[] = {""};
    ck_assert_int_eq(dsv3__textout_init(&t, &a, s2, 1, false, &err), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "empty"));
    const char *s3[] = {"a\xc3"};
    ck_assert_int_eq(dsv3__textout_init(&t, &a, s3, 1, false, &err), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(err.msg, "UTF-8"));
}
END_TEST

static uint64_t rs = 0x9e3779b97f4a7c15u;

static uint32_t rnd(uint32_t n)
{
    rs ^= rs << 13;
    rs ^= rs >> 7;
    rs ^= rs << 17;
    return (uint32_t)(rs % n);
}

START_TEST(text_random_splits)
{
    /* random texts over a small alphabet (so stop strings occur), split at
     * random byte positions: the concatenated text is the text up to the
     * first stop string, and stopping happens on the token completing it */
    static const char *const pieces[] = {"a", "b", " ", "\xc3\xa9", "\xe2\x82\xac",
                                         "\xf0\x9f\x98\x80"};
    static const char *const stops[] = {"ab", "b\xc3\xa9 ", "\xe2\x82\xac\xe2\x82\xac",
                                        "aaaa", "\xf0\x9f\x98\x80 b"};
    for (int rep = 0; rep < 3000; rep++) {
        char text[256];
        size_t len = 0;
        while (len < 60) {
            const char *p = pieces[rnd(6)];
            memcpy(text + len, p, strlen(p));
            len += strlen(p);
        }
        text[len] = '\0';
        uint32_t n_stop = rnd(4);
        const char *const *st = stops + rnd(2);
        size_t first = len, end_of_stop = len;
        for (uint32_t s = 0; s < n_stop; s++) {
            const char *hit = strstr(text, st[s]);
            if (hit && (size_t)(hit - text) < first) {
                first = (size_t)(hit - text);
                end_of_stop = first + strlen(st[s]);
            }
        }
        tout o;
        tout_init(&o, st, n_stop, false);
        size_t pos = 0;
        while (pos < len) {
            size_t k = 1 + rnd(5);
            if (pos + k > len)
                k = len - pos;
            char tok[8];
            memcpy(tok, text + pos, k);
            tok[k] = '\0';
            pos += k;
            bool was = o.stopped;
            push(&o, tok, false, pos == len);
            if (!was && o.stopped)
                ck_assert_msg(pos >= end_of_stop && pos - k < end_of_stop,
                              "stopped at %zu, stop string ends at %zu", pos, end_of_stop);
        }
        ck_assert_int_eq(o.stopped, first < len);
        ck_assert_uint_eq(o.acc_len, first);
        ck_assert(!memcmp(o.acc, text, first));
        dsv3__textout_free(&o.t);
    }
}
END_TEST

START_TEST(text_alloc_failures)
{
    const char *stop[] = {"xyz", "\xc3\xa9\xc3\xa9"};
    int done = 0;
    for (long n = 1; n < 50 && !done; n++) {
        tu_alloc ta;
        tu_alloc_init(&ta, n);
        dsv3__alloc a;
        ck_assert_int_eq(dsv3__alloc_init(&a, &ta.a), DSV3_OK);
        dsv3__textout t;
        dsv3__err err;
        int rc = dsv3__textout_init(&t, &a, stop, 2, false, &err);
        if (rc == DSV3_OK) {
            const char *toks[] = {"hello ", "\xc3", "\xa9 wor", "ld, xy", "zzz"};
            for (int i = 0; i < 5 && !rc; i++) {
                const char *text;
                size_t len;
                bool st;
                rc = dsv3__textout_push(&t, toks[i], strlen(toks[i]), false, false, &text,
                                        &len, &st);
            }
            dsv3__textout_free(&t);
        }
        ck_assert_msg(ta.live == 0, "fail_at %ld: %ld blocks leaked", n, ta.live);
        if (ta.failed)
            ck_assert_int_eq(rc, DSV3_E_NOMEM);
        else
            done = rc == DSV3_OK;
    }
    ck_assert(done);
}
END_TEST

/* ---- the loop on a scripted sequence --------------------------------------- */

enum { V = 9, T_BOS = 0, T_EOS = 1, T_A = 2, T_B = 3, T_SP = 4, T_C3 = 5, T_A9 = 6,
       T_END = 7, T_X = 8 };
static const char *const vocab[V] = {"<s>", "</s>", "a", "b", " ", "\xc3", "\xa9", "END", "x"};

/* A sequence whose next token is script[n_past] (greedy picks it). */
typedef struct fake {
    int32_t cache[64];
    uint32_t n_past;
    const int32_t *script;
    size_t script_len;
    int have_logits;
    float row[V];
    int cancel;             /* set: the next decode and the loop see a cancel */
    int fail_decode_at;     /* n-th decode call fails with DSV3_E_BACKEND (1-based) */
    int ban_all_at;         /* logits of this position are all -inf (0: never) */
    int n_decode;
    dsv3__err err;
} fake;

static int f_decode(void *self, const int32_t *t, size_t n)
{
    fake *f = self;
    f->n_decode++;
    if (f->fail_decode_at && f->n_decode == f->fail_decode_at)
        return dsv3__seterr(&f->err, DSV3_E_BACKEND, "decode: injected failure");
    if (f->cancel)
        return dsv3__seterr(&f->err, DSV3_E_CANCELED, "decode: canceled");
    if (f->n_past + n > 16)
        return dsv3__seterr(&f->err, DSV3_E_CTX_FULL, "decode: context full");
    memcpy(f->cache + f->n_past, t, n * sizeof *t);
    f->n_past += (uint32_t)n;
    int32_t next = f->n_past < f->script_len ? f->script[f->n_past] : T_X;
    for (int i = 0; i < V; i++)
        f->row[i] = (f->ban_all_at && (int)f->n_past == f->ban_all_at) ? -INFINITY
                    : i == next ? 10.0f : 0.0f;
    f->have_logits = 1;
    return DSV3_OK;
}

static const float *f_logits(void *self)
{
    fake *f = self;
    return f->have_logits ? f->row : NULL;
}

static uint32_t f_n_past(void *self)
{
    return ((fake *)self)->n_past;
}

static int f_canceled(void *self)
{
    return ((fake *)self)->cancel;
}

static int f_token_bytes(void *self, int32_t t, const char **b, size_t *n)
{
    if (t < 0 || t >= V)
        return DSV3_E_RANGE;
    *b = vocab[t];
    *n = strlen(vocab[t]);
    return DSV3_OK;
}

static int f_is_special(void *self, int32_t t)
{
    return t == T_BOS || t == T_EOS;
}

static dsv3__alloc f_alloc;

static dsv3__gen_io f_io(fake *f, uint32_t n_ctx)
{
    dsv3__alloc_init(&f_alloc, NULL);
    dsv3__gen_io io = {f, f_decode, f_logits, f_n_past, f_canceled, f_token_bytes, f_is_special,
                       n_ctx, V, T_EOS, &f_alloc, &f->err};
    return io;
}

/* What the callback saw. */
typedef struct seen {
    int n;
    int32_t tok[64];
    char text[1024];
    int stop_at;     /* return 1 at this index (-1: never) */
    int cancel_at;   /* set the fake's cancel at this index (-1: never) */
    fake *f;
    int bad;         /* events out of order or malformed */
} seen;

static int on_token(const dsv3_token_event *ev, void *ud)
{
    seen *s = ud;
    if (ev->struct_size != sizeof *ev || ev->index != (uint32_t)s->n || !ev->text ||
        strlen(ev->text) != ev->text_len) /* NUL-terminated, no NUL inside */
        s->bad = 1;
    s->tok[s->n] = ev->token;
    strncat(s->text, ev->text, ev->text_len);
    int idx = s->n++;
    if (idx == s->cancel_at)
        s->f->cancel = 1;
    return idx == s->stop_at;
}

static dsv3_sampler *greedy(void)
{
    dsv3_sampler_params p;
    dsv3_sampler_params_init(&p, sizeof p);
    p.temperature = 0.0f;
    dsv3_sampler *s = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&p, &s), DSV3_OK);
    return s;
}

/* Run a generation; returns the status. */
static int run(fake *f, uint32_t n_ctx, const int32_t *prompt, size_t n_prompt,
               const dsv3_generate_params *gp, seen *s, dsv3_generate_result *r)
{
    dsv3__gen_io io = f_io(f, n_ctx);
    dsv3_sampler *smp = greedy();
    s->f = f;
    r->struct_size = sizeof *r;
    int rc = dsv3__generate_run(&io, smp, prompt, n_prompt, gp, on_token, s, r);
    ck_assert(!s->bad);
    dsv3_sampler_free(smp);
    return rc;
}

#define SCRIPT(f, ...)                                         \
    do {                                                       \
        static const int32_t sc_[] = {__VA_ARGS__};            \
        (f)->script = sc_;                                     \
        (f)->script_len = sizeof sc_ / sizeof sc_[0];          \
    } while (0)

START_TEST(loop_eos)
{
    fake f = {0};
    /* positions: 0 1 | 2 3 4 5 ; script[n_past] is the next token */
    SCRIPT(&f, 0, 0, T_A, T_B, T_SP, T_EOS, T_X);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    int32_t prompt[2] = {T_BOS, T_X};
    ck_assert_int_eq(run(&f, 16, prompt, 2, NULL, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_EOS);
    ck_assert_uint_eq(r.n_prompt, 2);
    ck_assert_uint_eq(r.n_generated, 4);
    ck_assert_int_eq(s.n, 4);
    ck_assert_int_eq(s.tok[3], T_EOS);
    ck_assert_str_eq(s.text, "ab "); /* EOS text hidden */
    ck_assert_uint_eq(f.n_past, 6);  /* generated tokens stay in the cache */
    ck_assert_int_eq(f.cache[5], T_EOS);
    ck_assert(r.prompt_seconds >= 0 && r.generate_seconds >= 0);
    ck_assert_uint_eq(r.n_drafted, 0);
    ck_assert_uint_eq(r.n_accepted, 0);
}
END_TEST

START_TEST(loop_ignore_eos_show_special)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_EOS, T_B, T_EOS, T_A);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.flags = DSV3_GENERATE_IGNORE_EOS | DSV3_GENERATE_SHOW_SPECIAL;
    gp.max_tokens = 5;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, &gp, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_MAX_TOKENS);
    ck_assert_uint_eq(r.n_generated, 5);
    ck_assert_str_eq(s.text, "a</s>b</s>a");
    ck_assert_uint_eq(f.n_past, 6);
}
END_TEST

START_TEST(loop_max_tokens_and_utf8)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_C3, T_A9, T_C3, T_A9);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 3;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, &gp, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_MAX_TOKENS);
    ck_assert_uint_eq(r.n_generated, 3);
    ck_assert_str_eq(s.text, "a\xc3\xa9");
    /* stopping in the middle of a character: the end delivers U+FFFD */
    fake g = {0};
    SCRIPT(&g, 0, T_A, T_C3, T_A9);
    seen s2 = {.stop_at = -1, .cancel_at = -1};
    gp.max_tokens = 2;
    ck_assert_int_eq(run(&g, 16, prompt, 1, &gp, &s2, &r), DSV3_OK);
    ck_assert_str_eq(s2.text, "a\xef\xbf\xbd");
}
END_TEST

START_TEST(loop_context_full)
{
    fake f = {0};
    SCRIPT(&f, 0, 0, T_A, T_B, T_A, T_B, T_A);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    int32_t prompt[2] = {T_BOS, T_A};
    ck_assert_int_eq(run(&f, 5, prompt, 2, NULL, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_CTX_FULL);
    ck_assert_uint_eq(r.n_generated, 3);
    ck_assert_uint_eq(f.n_past, 5);
    ck_assert_str_eq(s.text, "aba");
    /* a prompt that fills the context exactly: nothing generated, no error */
    fake g = {0};
    SCRIPT(&g, 0, 0, T_A);
    seen s2 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&g, 2, prompt, 2, NULL, &s2, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_CTX_FULL);
    ck_assert_uint_eq(r.n_generated, 0);
    /* a prompt that does not fit at all is an error */
    fake h = {0};
    int32_t big[20] = {0};
    seen s3 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&h, 64, big, 20, NULL, &s3, &r), DSV3_E_CTX_FULL);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_ERROR);
    ck_assert_int_eq(s3.n, 0);
}
END_TEST

START_TEST(loop_callback_stop)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_B, T_A, T_B, T_A);
    seen s = {.stop_at = 2, .cancel_at = -1};
    dsv3_generate_result r;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, NULL, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_CALLBACK);
    ck_assert_uint_eq(r.n_generated, 3);
    ck_assert_uint_eq(f.n_past, 4); /* the last token was evaluated too */
}
END_TEST

START_TEST(loop_cancel)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_B, T_A, T_B, T_A);
    seen s = {.stop_at = -1, .cancel_at = 1};
    dsv3_generate_result r;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, NULL, &s, &r), DSV3_E_CANCELED);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_CANCELED);
    ck_assert_uint_eq(r.n_generated, 2);
    ck_assert_uint_eq(f.n_past, 2); /* the canceled evaluation left the cache alone */
    /* canceled before anything: the prompt evaluation reports it */
    fake g = {0};
    g.cancel = 1;
    SCRIPT(&g, 0, T_A);
    seen s2 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&g, 16, prompt, 1, NULL, &s2, &r), DSV3_E_CANCELED);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_CANCELED);
}
END_TEST

START_TEST(loop_stop_string)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_B, T_END, T_A, T_A);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    const char *stop[] = {"bEN", "zz"};
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.stop = stop;
    gp.n_stop = 2;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, &gp, &s, &r), DSV3_OK);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_STRING);
    ck_assert_uint_eq(r.n_generated, 3);
    ck_assert_str_eq(s.text, "a");
    ck_assert_uint_eq(f.n_past, 4);
}
END_TEST

START_TEST(loop_continue)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_B, T_A, T_B, T_X, T_EOS);
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = 2;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, &gp, &s, &r), DSV3_OK);
    ck_assert_str_eq(s.text, "ab");
    seen s2 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&f, 16, NULL, 0, NULL, &s2, &r), DSV3_OK);
    ck_assert_str_eq(s2.text, "abx");
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_EOS);
    ck_assert_uint_eq(r.n_prompt, 0);
    ck_assert_uint_eq(f.n_past, 7);
    /* nothing to continue from */
    fake g = {0};
    seen s3 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&g, 16, NULL, 0, NULL, &s3, &r), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(g.err.msg, "continue"));
}
END_TEST

START_TEST(loop_errors_midway)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A, T_B, T_A);
    f.fail_decode_at = 3;
    seen s = {.stop_at = -1, .cancel_at = -1};
    dsv3_generate_result r;
    int32_t prompt[1] = {T_BOS};
    ck_assert_int_eq(run(&f, 16, prompt, 1, NULL, &s, &r), DSV3_E_BACKEND);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_ERROR);
    ck_assert_uint_eq(r.n_generated, 2);
    /* the sampler cannot pick anything */
    fake g = {0};
    SCRIPT(&g, 0, T_A, T_B, T_A);
    g.ban_all_at = 2;
    seen s2 = {.stop_at = -1, .cancel_at = -1};
    ck_assert_int_eq(run(&g, 16, prompt, 1, NULL, &s2, &r), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(g.err.msg, "sampler"));
    ck_assert_uint_eq(r.n_generated, 1);
}
END_TEST

START_TEST(loop_bad_arguments)
{
    fake f = {0};
    SCRIPT(&f, 0, T_A);
    dsv3__gen_io io = f_io(&f, 16);
    dsv3_sampler *smp = greedy();
    int32_t prompt[1] = {T_BOS};
    dsv3_generate_result r = {.struct_size = sizeof r};
    dsv3_generate_params gp;
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.flags = 1u << 7;
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, &gp, NULL, NULL, &r), DSV3_E_INVAL);
    ck_assert_ptr_nonnull(strstr(f.err.msg, "flags"));
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_ERROR);
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.max_tokens = -1;
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, &gp, NULL, NULL, &r), DSV3_E_INVAL);
    dsv3_generate_params_init(&gp, sizeof gp);
    gp.n_stop = 1;
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, &gp, NULL, NULL, &r), DSV3_E_INVAL);
    gp.struct_size = 4;
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, &gp, NULL, NULL, &r), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__generate_run(&io, smp, NULL, 1, NULL, NULL, NULL, &r), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__generate_run(&io, NULL, prompt, 1, NULL, NULL, NULL, &r), DSV3_E_INVAL);
    dsv3_generate_result small = {.struct_size = 8};
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, NULL, NULL, NULL, &small),
                     DSV3_E_INVAL);
    ck_assert_uint_eq(f.n_decode, 0); /* none of these evaluated anything */
    /* a failed sampler */
    dsv3_sampler_params sp;
    dsv3_sampler_params_init(&sp, sizeof sp);
    sp.top_k = -3;
    dsv3_sampler *bad = NULL;
    ck_assert_int_eq(dsv3_sampler_new(&sp, &bad), DSV3_E_INVAL);
    ck_assert_int_eq(dsv3__generate_run(&io, bad, prompt, 1, NULL, NULL, NULL, NULL),
                     DSV3_E_MISUSE);
    dsv3_sampler_free(bad);
    /* no callback and no result are fine */
    ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, NULL, NULL, NULL, NULL), DSV3_OK);
    dsv3_sampler_free(smp);
    /* the public entry point refuses a NULL context and fills the result */
    r.stop_reason = DSV3_STOP_NONE;
    ck_assert_int_eq(dsv3_generate(NULL, NULL, prompt, 1, NULL, NULL, NULL, &r), DSV3_E_INVAL);
    ck_assert_int_eq(r.stop_reason, DSV3_STOP_ERROR);
}
END_TEST

START_TEST(loop_prompt_penalised)
{
    /* the prompt counts for the penalties: a (logit 10, others 0) is in the
     * prompt, a presence penalty of 20 puts it below the others, and greedy
     * then takes the lowest id among them */
    for (int with = 0; with < 2; with++) {
        fake f = {0};
        SCRIPT(&f, 0, T_A, T_A);
        dsv3__gen_io io = f_io(&f, 16);
        dsv3_sampler_params sp;
        dsv3_sampler_params_init(&sp, sizeof sp);
        sp.temperature = 0.0f;
        sp.presence_penalty = with ? 20.0f : 0.0f;
        dsv3_sampler *smp = NULL;
        ck_assert_int_eq(dsv3_sampler_new(&sp, &smp), DSV3_OK);
        int32_t prompt[1] = {T_A};
        seen s = {.stop_at = 0, .cancel_at = -1, .f = &f};
        dsv3_generate_result r = {.struct_size = sizeof r};
        ck_assert_int_eq(dsv3__generate_run(&io, smp, prompt, 1, NULL, on_token, &s, &r),
                         DSV3_OK);
        ck_assert_int_eq(s.tok[0], with ? T_BOS : T_A);
        dsv3_sampler_free(smp);
    }
}
END_TEST

START_TEST(loop_alloc_failures)
{
    int done = 0;
    const char *stop[] = {"zz"};
    for (long n = 1; n < 50 && !done; n++) {
        fake f = {0};
        SCRIPT(&f, 0, T_A, T_B, T_C3, T_A9, T_EOS);
        tu_alloc ta;
        tu_alloc_init(&ta, n);
        dsv3__gen_io io = f_io(&f, 16);
        dsv3__alloc a;
        dsv3__alloc_init(&a, &ta.a);
        io.alloc = &a;
        dsv3_sampler *smp = greedy();
        dsv3_generate_params gp;
        dsv3_generate_params_init(&gp, sizeof gp);
        gp.stop = stop;
        gp.n_stop = 1;
        int32_t prompt[1] = {T_BOS};
        dsv3_generate_result r = {.struct_size = sizeof r};
        int rc = dsv3__generate_run(&io, smp, prompt, 1, &gp, NULL, NULL, &r);
        dsv3_sampler_free(smp);
        ck_assert_msg(ta.live == 0, "fail_at %ld: %ld blocks leaked", n, ta.live);
        if (ta.failed) {
            ck_assert_int_eq(rc, DSV3_E_NOMEM);
            ck_assert_int_eq(r.stop_reason, DSV3_STOP_ERROR);
        } else {
            ck_assert_int_eq(rc, DSV3_OK);
            ck_assert_int_eq(r.stop_reason, DSV3_STOP_EOS);
            done = 1;
        }
    }
    ck_assert(done);
}
END_TEST

static Suite *generate_suite(void)
{
    Suite *s = suite_create("generate");
    TCase *tc = tcase_create("utf8");
    tcase_add_test(tc, utf8_units);
    suite_add_tcase(s, tc);
    tc = tcase_create("text");
    tcase_add_test(tc, text_split_characters);
    tcase_add_test(tc, text_invalid_bytes);
    tcase_add_test(tc, text_stop_across_tokens);
    tcase_add_test(tc, text_stop_at_start_and_inside);
    tcase_add_test(tc, text_multiple_stops);
    tcase_add_test(tc, text_special_tokens);
    tcase_add_test(tc, text_bad_stops);
    tcase_add_test(tc, text_random_splits);
    tcase_add_test(tc, text_alloc_failures);
    suite_add_tcase(s, tc);
    tc = tcase_create("loop");
    tcase_add_test(tc, loop_eos);
    tcase_add_test(tc, loop_ignore_eos_show_special);
    tcase_add_test(tc, loop_max_tokens_and_utf8);
    tcase_add_test(tc, loop_context_full);
    tcase_add_test(tc, loop_callback_stop);
    tcase_add_test(tc, loop_cancel);
    tcase_add_test(tc, loop_stop_string);
    tcase_add_test(tc, loop_continue);
    tcase_add_test(tc, loop_errors_midway);
    tcase_add_test(tc, loop_bad_arguments);
    tcase_add_test(tc, loop_prompt_penalised);
    tcase_add_test(tc, loop_alloc_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return tu_run_suite(generate_suite());
}
