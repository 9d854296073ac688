/*
 * fake_dsv3.c - a scripted stand-in for libdsv3, for the binding tests only.
 * SPDX-License-Identifier: MIT
 *
 * It implements every function of include/dsv3.h with trivial, predictable
 * behaviour so that the Python and Go binding tests can exercise what the
 * bindings themselves do (buffer sizing, callbacks, worker threads,
 * cancellation, error mapping, handle lifetimes) independently of the real
 * model code. It is never installed and never linked into the library.
 *
 * Built by the tests: cc -shared -fPIC -I include -I BUILD/include
 *   [-DFAKE_ABI=999] fake_dsv3.c -o libdsv3.so.0 [-Wl,--version-script=...]
 *
 * Behaviour:
 *  - vocabulary: ids 0..255 are the bytes, 256 is BOS "<s>", 257 is EOS "</s>".
 *  - dsv3_model_load fails with DSV3_E_IO when the path does not exist; any
 *    existing path loads. It reports progress 4 times and logs one INFO line.
 *  - tokenize: one token per byte (UTF-8 checked), "<s>"/"</s>" as specials.
 *  - chat template: "<s>" then "role: content\n" per message, then
 *    "assistant: " with the generation prompt.
 *  - the "model": after token t comes t + 1 (mod 256), except EOS after 'z'
 *    and 'a' after EOS; the logits of the last token are 1 at that successor
 *    and 0 elsewhere. So a prompt ending in '`' continues "abc...z".
 *  - dsv3_generate: evaluates the prompt, then picks tokens with the sampler
 *    (greedy here) from those logits, one every FAKE_TOKEN_USEC microseconds,
 *    and stops on EOS (unless IGNORE_EOS), max_tokens, a full context
 *    (n_ctx), the callback, a one-character stop string equal to the next
 *    token's text, or dsv3_context_cancel (DSV3_E_CANCELED).
 *  - token 255 in evaluated tokens is "slow": evaluation then takes up to
 *    5 s, polling dsv3_context_cancel every millisecond (DSV3_E_CANCELED,
 *    nothing evaluated), so tests can see that a cancel reaches C.
 *  - sampler: greedy argmax of logits + bias; NaN or negative temperature
 *    fails with DSV3_E_INVAL and a message.
 *  - fake_live_handles() counts models + contexts + samplers not yet freed.
 */
#include <errno.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "dsv3.h"

#ifndef FAKE_ABI
#define FAKE_ABI DSV3_ABI_VERSION
#endif
#ifndef FAKE_TOKEN_USEC
#define FAKE_TOKEN_USEC 2000
#endif
#define VOCAB 258
#define BOS 256
#define EOS 257

DSV3_API int fake_live_handles(void);
static atomic_int live;

int fake_live_handles(void) { return atomic_load(&live); }

struct dsv3_model {
    atomic_int refs;
    int failed;
    char err[256];
    dsv3_log_fn log_fn;
    void *log_ud;
};

struct dsv3_context {
    dsv3_model *model;
    atomic_int cancel;
    atomic_int busy;
    char err[256];
    uint32_t n_ctx, n_past;
    int32_t last, n_threads;
    int has_logits;
    float logits[VOCAB];
};

struct dsv3_sampler {
    char err[256];
    float bias[VOCAB];
};

/* ---- status codes and versions ---------------------------------------------------- */

const char *dsv3_strerror(int err)
{
    switch (err) {
    case DSV3_OK:
        return "success";
#define X(name, value, msg) \
    case DSV3_##name:       \
        return msg;
        DSV3_ERRNO_MAP(X)
#undef X
    default:
        return "unknown error";
    }
}

const char *dsv3_err_name(int err)
{
    switch (err) {
    case DSV3_OK:
        return "DSV3_OK";
#define X(name, value, msg) \
    case DSV3_##name:       \
        return "DSV3_" #name;
        DSV3_ERRNO_MAP(X)
#undef X
    default:
        return "DSV3_E_UNKNOWN";
    }
}

uint32_t dsv3_version(void) { return DSV3_VERSION_NUMBER; }
const char *dsv3_version_string(void) { return DSV3_VERSION_STRING; }
uint32_t dsv3_abi_version(void) { return FAKE_ABI; }
const char *dsv3_build_info(void) { return "fake libdsv3 for binding tests"; }
const char *dsv3_backend_name(int32_t b) { return b == DSV3_BACKEND_CPU ? "cpu" : NULL; }
int dsv3_backend_available(int32_t b) { return b == DSV3_BACKEND_CPU; }

static int seterr(char *buf, int code, const char *msg)
{
    snprintf(buf, 256, "%s", msg);
    return code;
}

/* ---- params ------------------------------------------------------------------------- */

#define PARAMS_INIT(type, ...)                                                 \
    {                                                                          \
        if (!p || size < sizeof(uint32_t) * 2)                                 \
            return DSV3_E_INVAL;                                               \
        type d = {__VA_ARGS__};                                                \
        memset(p, 0, size);                                                    \
        memcpy(p, &d, size < sizeof d ? size : sizeof d);                      \
        p->struct_size = (uint32_t)size;                                       \
        return DSV3_OK;                                                        \
    }

int dsv3_model_params_init(dsv3_model_params *p, size_t size)
    PARAMS_INIT(dsv3_model_params, .log_level = DSV3_LOG_WARN)
int dsv3_context_params_init(dsv3_context_params *p, size_t size)
    PARAMS_INIT(dsv3_context_params, .n_ctx = 0)
int dsv3_sampler_params_init(dsv3_sampler_params *p, size_t size)
    PARAMS_INIT(dsv3_sampler_params, .temperature = 0.8f, .top_k = 40, .top_p = 0.95f,
                .min_p = 0.05f, .repeat_penalty = 1.0f, .penalty_window = 64)
int dsv3_generate_params_init(dsv3_generate_params *p, size_t size)
    PARAMS_INIT(dsv3_generate_params, .max_tokens = 0)
int dsv3_convert_params_init(dsv3_convert_params *p, size_t size)
    PARAMS_INIT(dsv3_convert_params, .log_level = DSV3_LOG_INFO)

/* ---- model -------------------------------------------------------------------------- */

int dsv3_model_load(const char *path, const dsv3_model_params *params, dsv3_model **out)
{
    if (!out)
        return DSV3_E_INVAL;
    dsv3_model *m = calloc(1, sizeof *m);
    if (!(*out = m))
        return DSV3_E_NOMEM;
    atomic_fetch_add(&live, 1);
    atomic_init(&m->refs, 1);
    m->failed = 1;
    struct stat st;
    if (!path)
        return seterr(m->err, DSV3_E_INVAL, "model path is NULL");
    if (stat(path, &st) != 0) {
        snprintf(m->err, sizeof m->err, "%s: %s", path, strerror(errno));
        return DSV3_E_IO;
    }
    if (params && params->progress_fn) {
        for (uint64_t i = 0; i <= 3; i++) {
            dsv3_progress_event ev = {sizeof ev, DSV3_PROGRESS_LOAD, i * 100, 300};
            if (params->progress_fn(&ev, params->progress_user_data))
                return seterr(m->err, DSV3_E_CANCELED, "loading canceled by the progress callback");
        }
    }
    if (params && params->log_fn && params->log_level >= DSV3_LOG_INFO)
        params->log_fn(DSV3_LOG_INFO, "fake model loaded", params->log_user_data);
    m->log_fn = params ? params->log_fn : NULL;
    m->log_ud = params ? params->log_user_data : NULL;
    m->failed = 0;
    return DSV3_OK;
}

static void model_unref(dsv3_model *m)
{
    if (atomic_fetch_sub(&m->refs, 1) == 1) {
        atomic_fetch_sub(&live, 1);
        free(m);
    }
}

void dsv3_model_free(dsv3_model *m)
{
    if (m)
        model_unref(m);
}

const char *dsv3_model_errmsg(const dsv3_model *m) { return m ? m->err : "no model (NULL handle)"; }

int dsv3_model_info_get(const dsv3_model *m, dsv3_model_info *info)
{
    if (!m || !info || info->struct_size < 8)
        return DSV3_E_INVAL;
    if (m->failed)
        return DSV3_E_MISUSE;
    dsv3_model_info i = {.struct_size = info->struct_size,
                         .flags = DSV3_INFO_HAS_TOKENIZER | DSV3_INFO_HAS_CHAT,
                         .vocab_size = VOCAB, .hidden_size = 8, .n_layers = 1,
                         .n_heads = 1, .bos_token = BOS, .eos_token = EOS,
                         .max_position = 4096, .weight_dtype = DSV3_DTYPE_F32,
                         .backend = DSV3_BACKEND_CPU, .n_params = 1234};
    size_t n = info->struct_size < sizeof i ? info->struct_size : sizeof i;
    memcpy(info, &i, n);
    return DSV3_OK;
}

/* ---- text ------------------------------------------------------------------------- */

static int utf8_ok(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t k = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
        if (!k || i + k > n)
            return 0;
        for (size_t j = 1; j < k; j++)
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

static const char *special(int32_t t) { return t == BOS ? "<s>" : t == EOS ? "</s>" : NULL; }

int dsv3_tokenize(const dsv3_model *model, const char *text, size_t len, uint32_t flags,
                  int32_t *tokens, size_t cap, size_t *n_tokens)
{
    dsv3_model *m = (dsv3_model *)model;
    if (!m || (!text && len) || !n_tokens)
        return DSV3_E_INVAL;
    if (!utf8_ok((const unsigned char *)text, len))
        return seterr(m->err, DSV3_E_UTF8, "text is not valid UTF-8");
    size_t n = 0;
    if (flags & DSV3_TOKENIZE_ADD_BOS) {
        if (n < cap)
            tokens[n] = BOS;
        n++;
    }
    for (size_t i = 0; i < len; n++) {
        int32_t t = (unsigned char)text[i];
        size_t adv = 1;
        if (!(flags & DSV3_TOKENIZE_NO_SPECIAL)) {
            if (len - i >= 3 && !memcmp(text + i, "<s>", 3))
                t = BOS, adv = 3;
            else if (len - i >= 4 && !memcmp(text + i, "</s>", 4))
                t = EOS, adv = 4;
        }
        if (n < cap)
            tokens[n] = t;
        i += adv;
    }
    *n_tokens = n;
    return n > cap ? seterr(m->err, DSV3_E_NOSPC, "token buffer too small") : DSV3_OK;
}

static int put_text(char *err, char *out, size_t cap, size_t *len, const char *s, size_t n)
{
    if (n + 1 > cap) {
        *len = n;
        return seterr(err, DSV3_E_NOSPC, "text buffer too small");
    }
    memcpy(out, s, n);
    out[n] = 0;
    *len = n;
    return DSV3_OK;
}

int dsv3_detokenize(const dsv3_model *model, const int32_t *tokens, size_t n_tokens,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    dsv3_model *m = (dsv3_model *)model;
    if (!m || (!tokens && n_tokens) || !len)
        return DSV3_E_INVAL;
    char *buf = malloc(n_tokens * 4 + 1);
    size_t n = 0;
    for (size_t i = 0; i < n_tokens; i++) {
        if (tokens[i] < 0 || tokens[i] >= VOCAB) {
            free(buf);
            return seterr(m->err, DSV3_E_RANGE, "token id outside the vocabulary");
        }
        const char *sp = special(tokens[i]);
        if (sp && !(flags & DSV3_DETOKENIZE_SKIP_SPECIAL))
            n += (size_t)sprintf(buf + n, "%s", sp);
        else if (!sp)
            buf[n++] = (char)tokens[i];
    }
    int rc = put_text(m->err, text, cap, len, buf, n);
    free(buf);
    return rc;
}

static const char all_bytes[257] =
    "\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
    "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f"
    "\x20\x21\x22\x23\x24\x25\x26\x27\x28\x29\x2a\x2b\x2c\x2d\x2e\x2f"
    "\x30\x31\x32\x33\x34\x35\x36\x37\x38\x39\x3a\x3b\x3c\x3d\x3e\x3f"
    "\x40\x41\x42\x43\x44\x45\x46\x47\x48\x49\x4a\x4b\x4c\x4d\x4e\x4f"
    "\x50\x51\x52\x53\x54\x55\x56\x57\x58\x59\x5a\x5b\x5c\x5d\x5e\x5f"
    "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f"
    "\x70\x71\x72\x73\x74\x75\x76\x77\x78\x79\x7a\x7b\x7c\x7d\x7e\x7f"
    "\x80\x81\x82\x83\x84\x85\x86\x87\x88\x89\x8a\x8b\x8c\x8d\x8e\x8f"
    "\x90\x91\x92\x93\x94\x95\x96\x97\x98\x99\x9a\x9b\x9c\x9d\x9e\x9f"
    "\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9\xaa\xab\xac\xad\xae\xaf"
    "\xb0\xb1\xb2\xb3\xb4\xb5\xb6\xb7\xb8\xb9\xba\xbb\xbc\xbd\xbe\xbf"
    "\xc0\xc1\xc2\xc3\xc4\xc5\xc6\xc7\xc8\xc9\xca\xcb\xcc\xcd\xce\xcf"
    "\xd0\xd1\xd2\xd3\xd4\xd5\xd6\xd7\xd8\xd9\xda\xdb\xdc\xdd\xde\xdf"
    "\xe0\xe1\xe2\xe3\xe4\xe5\xe6\xe7\xe8\xe9\xea\xeb\xec\xed\xee\xef"
    "\xf0\xf1\xf2\xf3\xf4\xf5\xf6\xf7\xf8\xf9\xfa\xfb\xfc\xfd\xfe\xff";

int dsv3_token_bytes(const dsv3_model *model, int32_t token, const char **bytes, size_t *len)
{
    dsv3_model *m = (dsv3_model *)model;
    if (!m || !bytes || !len)
        return DSV3_E_INVAL;
    if (token < 0 || token >= VOCAB)
        return seterr(m->err, DSV3_E_RANGE, "token id outside the vocabulary");
    const char *sp = special(token);
    *bytes = sp ? sp : all_bytes + token;
    *len = sp ? strlen(sp) : 1;
    return DSV3_OK;
}

int dsv3_chat_apply(const dsv3_model *model, const dsv3_chat_message *msgs, size_t n_msgs,
                    uint32_t flags, char *text, size_t cap, size_t *len)
{
    dsv3_model *m = (dsv3_model *)model;
    if (!m || (!msgs && n_msgs) || !len)
        return DSV3_E_INVAL;
    size_t need = 3 + 12;
    for (size_t i = 0; i < n_msgs; i++) {
        if (!msgs[i].role || !msgs[i].content ||
            (strcmp(msgs[i].role, "system") && strcmp(msgs[i].role, "user") &&
             strcmp(msgs[i].role, "assistant")))
            return seterr(m->err, DSV3_E_INVAL, "unknown chat role or NULL content");
        need += strlen(msgs[i].role) + strlen(msgs[i].content) + 3;
    }
    char *buf = malloc(need + 1);
    size_t n = (size_t)sprintf(buf, "<s>");
    for (size_t i = 0; i < n_msgs; i++)
        n += (size_t)sprintf(buf + n, "%s: %s\n", msgs[i].role, msgs[i].content);
    if (flags & DSV3_CHAT_ADD_GENERATION_PROMPT)
        n += (size_t)sprintf(buf + n, "assistant: ");
    int rc = put_text(m->err, text, cap, len, buf, n);
    free(buf);
    return rc;
}

/* ---- context ------------------------------------------------------------------------ */

int dsv3_context_new(dsv3_model *model, const dsv3_context_params *params, dsv3_context **out)
{
    if (!out)
        return DSV3_E_INVAL;
    *out = NULL;
    if (!model || model->failed)
        return DSV3_E_MISUSE;
    dsv3_context *c = calloc(1, sizeof *c);
    if (!c)
        return DSV3_E_NOMEM;
    atomic_fetch_add(&live, 1);
    atomic_fetch_add(&model->refs, 1);
    c->model = model;
    c->n_ctx = params && params->n_ctx ? params->n_ctx : 4096;
    c->n_threads = params && params->n_threads ? params->n_threads : 1;
    *out = c;
    return DSV3_OK;
}

void dsv3_context_free(dsv3_context *c)
{
    if (!c)
        return;
    model_unref(c->model);
    atomic_fetch_sub(&live, 1);
    free(c);
}

const char *dsv3_context_errmsg(const dsv3_context *c) { return c ? c->err : "no context"; }

static int32_t successor(int32_t t) { return t == 'z' ? EOS : t == EOS ? 'a' : (t + 1) % 256; }

static void set_last(dsv3_context *c, int32_t t)
{
    c->last = t;
    memset(c->logits, 0, sizeof c->logits);
    c->logits[successor(t)] = 1.0f;
    c->has_logits = 1;
}

static int eval(dsv3_context *c, const int32_t *t, size_t n)
{
    if (c->n_past + n > c->n_ctx)
        return seterr(c->err, DSV3_E_CTX_FULL, "the tokens do not fit into the context");
    int slow = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] < 0 || t[i] >= VOCAB)
            return seterr(c->err, DSV3_E_RANGE, "token id outside the vocabulary");
        slow |= t[i] == 255;
    }
    for (int ms = 0; slow && ms < 5000; ms++) {
        struct timespec ts = {0, 1000000L};
        nanosleep(&ts, NULL);
        if (atomic_load(&c->cancel))
            return seterr(c->err, DSV3_E_CANCELED, "evaluation canceled");
    }
    if (n) {
        c->n_past += (uint32_t)n;
        set_last(c, t[n - 1]);
    }
    return DSV3_OK;
}

int dsv3_context_decode(dsv3_context *c, const int32_t *tokens, size_t n, uint32_t flags)
{
    (void)flags;
    if (!c || !tokens || !n)
        return DSV3_E_INVAL;
    if (atomic_exchange(&c->busy, 1))
        return DSV3_E_BUSY;
    atomic_store(&c->cancel, 0);
    int rc = eval(c, tokens, n);
    atomic_store(&c->busy, 0);
    return rc;
}

int dsv3_context_logits(dsv3_context *c, int32_t row, const float **logits)
{
    if (!c || !logits)
        return DSV3_E_INVAL;
    if (!c->has_logits)
        return seterr(c->err, DSV3_E_MISUSE, "no decode yet");
    if (row != -1)
        return seterr(c->err, DSV3_E_RANGE, "no such logits row");
    *logits = c->logits;
    return DSV3_OK;
}

uint32_t dsv3_context_n_past(const dsv3_context *c) { return c ? c->n_past : 0; }

int dsv3_context_truncate(dsv3_context *c, uint32_t n_keep)
{
    if (!c)
        return DSV3_E_INVAL;
    if (n_keep > c->n_past)
        return seterr(c->err, DSV3_E_RANGE, "n_keep is beyond n_past");
    c->n_past = n_keep;
    c->has_logits = 0;
    return DSV3_OK;
}

int dsv3_context_clear(dsv3_context *c) { return dsv3_context_truncate(c, 0); }

void dsv3_context_cancel(dsv3_context *c)
{
    if (c)
        atomic_store(&c->cancel, 1);
}

int dsv3_context_set_param(dsv3_context *c, int32_t key, int64_t value)
{
    if (!c || key != DSV3_CTX_PARAM_N_THREADS)
        return c ? seterr(c->err, DSV3_E_INVAL, "unknown or read-only key") : DSV3_E_INVAL;
    if (value < 1 || value > 1024)
        return seterr(c->err, DSV3_E_RANGE, "n_threads outside 1 ... 1024");
    c->n_threads = (int32_t)value;
    return DSV3_OK;
}

int dsv3_context_get_param(const dsv3_context *c, int32_t key, int64_t *value)
{
    if (!c || !value)
        return DSV3_E_INVAL;
    switch (key) {
    case DSV3_CTX_PARAM_N_THREADS: *value = c->n_threads; return DSV3_OK;
    case DSV3_CTX_PARAM_MTP: *value = 0; return DSV3_OK;
    case DSV3_CTX_PARAM_N_CTX: *value = c->n_ctx; return DSV3_OK;
    case DSV3_CTX_PARAM_N_PAST: *value = c->n_past; return DSV3_OK;
    default: return DSV3_E_INVAL;
    }
}

int dsv3_context_param_bounds(int32_t key, int64_t *min, int64_t *max)
{
    if (key != DSV3_CTX_PARAM_N_THREADS || !min || !max)
        return DSV3_E_INVAL;
    *min = 1;
    *max = 1024;
    return DSV3_OK;
}

int dsv3_context_state_save(dsv3_context *c, void *buf, size_t cap, size_t *needed)
{
    if (!c || !needed)
        return DSV3_E_INVAL;
    uint32_t s[3] = {0x46414b45u, c->n_past, (uint32_t)c->last};
    *needed = sizeof s;
    if (cap < sizeof s)
        return DSV3_E_NOSPC;
    memcpy(buf, s, sizeof s);
    return DSV3_OK;
}

int dsv3_context_state_load(dsv3_context *c, const void *buf, size_t size)
{
    uint32_t s[3];
    if (!c || !buf)
        return DSV3_E_INVAL;
    if (size != sizeof s || (memcpy(s, buf, sizeof s), s[0] != 0x46414b45u))
        return seterr(c->err, DSV3_E_FORMAT, "not a saved state");
    c->n_past = s[1];
    set_last(c, (int32_t)s[2]);
    return DSV3_OK;
}

/* ---- sampler ---------------------------------------------------------------------------- */

int dsv3_sampler_new(const dsv3_sampler_params *params, dsv3_sampler **out)
{
    if (!out)
        return DSV3_E_INVAL;
    dsv3_sampler *s = calloc(1, sizeof *s);
    if (!(*out = s))
        return DSV3_E_NOMEM;
    atomic_fetch_add(&live, 1);
    if (params && (isnan(params->temperature) || params->temperature < 0))
        return seterr(s->err, DSV3_E_INVAL, "temperature must be a number >= 0");
    return DSV3_OK;
}

void dsv3_sampler_free(dsv3_sampler *s)
{
    if (s) {
        atomic_fetch_sub(&live, 1);
        free(s);
    }
}

const char *dsv3_sampler_errmsg(const dsv3_sampler *s) { return s ? s->err : "no sampler"; }

int dsv3_sampler_set_logit_bias(dsv3_sampler *s, int32_t token, float bias)
{
    if (!s)
        return DSV3_E_INVAL;
    if (token < 0 || token >= VOCAB)
        return seterr(s->err, DSV3_E_RANGE, "token id outside the vocabulary");
    s->bias[token] = bias;
    return DSV3_OK;
}

int dsv3_sampler_sample(dsv3_sampler *s, const float *logits, size_t n, int32_t *token)
{
    if (!s || !logits || !n || !token)
        return s ? seterr(s->err, DSV3_E_INVAL, "no logits") : DSV3_E_INVAL;
    int32_t best = -1;
    for (size_t i = 0; i < n; i++) {
        float v = logits[i] + (i < VOCAB ? s->bias[i] : 0.0f);
        if (!isnan(v) && v > -INFINITY && (best < 0 || v > logits[best] + s->bias[best]))
            best = (int32_t)i;
    }
    if (best < 0)
        return seterr(s->err, DSV3_E_INVAL, "all logits are NaN or -inf");
    *token = best;
    return DSV3_OK;
}

int dsv3_sampler_accept(dsv3_sampler *s, int32_t token) { return s && token >= 0 ? DSV3_OK : DSV3_E_INVAL; }
int dsv3_sampler_reset(dsv3_sampler *s) { return s ? DSV3_OK : DSV3_E_INVAL; }

/* ---- generation ----------------------------------------------------------------------- */

static int stop_string(const dsv3_generate_params *p, const char *text)
{
    for (uint32_t i = 0; p && text[0] && i < p->n_stop; i++)
        if (!strcmp(p->stop[i], text))
            return 1;
    return 0;
}

static int gen_loop(dsv3_context *c, dsv3_sampler *smp, const dsv3_generate_params *p,
                    dsv3_token_fn cb, void *ud, dsv3_generate_result *r)
{
    uint32_t flags = p ? p->flags : 0;
    for (;;) {
        struct timespec ts = {0, FAKE_TOKEN_USEC * 1000L};
        nanosleep(&ts, NULL);
        if (atomic_load(&c->cancel)) {
            r->stop_reason = DSV3_STOP_CANCELED;
            return seterr(c->err, DSV3_E_CANCELED, "generation canceled");
        }
        if (p && p->max_tokens && r->n_generated >= (uint32_t)p->max_tokens) {
            r->stop_reason = DSV3_STOP_MAX_TOKENS;
            return DSV3_OK;
        }
        if (c->n_past >= c->n_ctx) {
            r->stop_reason = DSV3_STOP_CTX_FULL;
            return DSV3_OK;
        }
        int32_t t;
        if (!c->has_logits || dsv3_sampler_sample(smp, c->logits, VOCAB, &t)) {
            r->stop_reason = DSV3_STOP_ERROR;
            return seterr(c->err, DSV3_E_INVAL, "nothing to continue from");
        }
        if (t == EOS && !(flags & DSV3_GENERATE_IGNORE_EOS)) {
            r->stop_reason = DSV3_STOP_EOS;
            return DSV3_OK;
        }
        char txt[8] = {0};
        if (t < 256)
            txt[0] = (char)t;
        else if (flags & DSV3_GENERATE_SHOW_SPECIAL)
            strcpy(txt, special(t));
        if (stop_string(p, txt)) {
            r->stop_reason = DSV3_STOP_STRING;
            return DSV3_OK;
        }
        eval(c, &t, 1);
        dsv3_token_event ev = {sizeof ev, t, r->n_generated, 0, txt, strlen(txt)};
        r->n_generated++;
        if (cb && cb(&ev, ud)) {
            r->stop_reason = DSV3_STOP_CALLBACK;
            return DSV3_OK;
        }
    }
}

int dsv3_generate(dsv3_context *c, dsv3_sampler *smp, const int32_t *prompt, size_t n_prompt,
                  const dsv3_generate_params *params, dsv3_token_fn cb, void *user_data,
                  dsv3_generate_result *result)
{
    dsv3_generate_result r = {.struct_size = sizeof r};
    int rc;
    if (!c || !smp || (!prompt && n_prompt))
        return DSV3_E_INVAL;
    if (atomic_exchange(&c->busy, 1))
        return seterr(c->err, DSV3_E_BUSY, "another call is running on this context");
    atomic_store(&c->cancel, 0); /* an earlier cancel is forgotten */
    rc = eval(c, prompt, n_prompt);
    if (rc == DSV3_OK) {
        r.n_prompt = (uint32_t)n_prompt;
        rc = gen_loop(c, smp, params, cb, user_data, &r);
    } else {
        r.stop_reason = rc == DSV3_E_CANCELED ? DSV3_STOP_CANCELED : DSV3_STOP_ERROR;
    }
    atomic_store(&c->busy, 0);
    if (result)
        memcpy(result, &r, result->struct_size < sizeof r ? result->struct_size : sizeof r);
    return rc;
}

/* ---- conversion ------------------------------------------------------------------------- */

int dsv3_convert(const char *hf_dir, const char *out_dir, const dsv3_convert_params *params,
                 char *errbuf, size_t errcap)
{
    (void)out_dir, (void)params;
    if (errbuf && errcap)
        snprintf(errbuf, errcap, "%s: conversion is not part of the fake", hf_dir ? hf_dir : "");
    return DSV3_E_UNSUPPORTED;
}
