/*
 * model.h - hyper-parameters, weights and the model/context handles.
 *
 * Split as in llama2.c: dsv3_hparams (configuration), dsv3_weights (tensor
 * pointers, each commented with its shape) and the per-sequence state in
 * dsv3_context (KV cache, scratch). Notation follows
 * spec/ARCHITECTURE.md: d hidden, V vocab, n_h heads, d_n/d_r/d_v head dims,
 * d_q = d_n + d_r, r_q/r_kv low ranks, E experts, f_d/f_m FFN widths.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_MODEL_H
#define DSV3_MODEL_H

#include <pthread.h>
#include <stdatomic.h>

#include "../backend/backend.h"
#include "../core/core.h"

/* ---- hyper-parameters --------------------------------------------------- */

enum dsv3_scoring {
    DSV3_SCORING_SOFTMAX = 0, /* V2 */
    DSV3_SCORING_SIGMOID = 1  /* V3 */
};

enum dsv3_topk_method {
    DSV3_TOPK_GREEDY = 0,               /* V2-Lite: plain top-k */
    DSV3_TOPK_GROUP_LIMITED_GREEDY = 1, /* V2: groups scored by max */
    DSV3_TOPK_NOAUX_TC = 2              /* V3: bias for selection, groups by top-2 sum */
};

typedef struct dsv3_hparams {
    int32_t vocab_size;            /* V */
    int32_t hidden_size;           /* d */
    int32_t intermediate_size;     /* f_d (dense FFN width) */
    int32_t moe_intermediate_size; /* f_m (one expert's width) */
    int32_t n_layers;              /* L, main decoder layers */
    int32_t first_k_dense;         /* K_d, leading dense layers */
    int32_t moe_layer_freq;        /* MoE iff l >= K_d and l % freq == 0 */
    int32_t n_heads;               /* n_h */
    int32_t q_lora_rank;           /* r_q; 0 = no query compression */
    int32_t kv_lora_rank;          /* r_kv */
    int32_t qk_nope_dim;           /* d_n */
    int32_t qk_rope_dim;           /* d_r */
    int32_t v_head_dim;            /* d_v */
    int32_t n_routed_experts;      /* E; 0 = dense model */
    int32_t n_shared_experts;      /* E_s (fused into one MLP of width E_s*f_m) */
    int32_t n_experts_per_tok;     /* k */
    int32_t n_group;               /* G */
    int32_t topk_group;            /* G_k */
    int32_t scoring;               /* enum dsv3_scoring */
    int32_t topk_method;           /* enum dsv3_topk_method */
    int32_t norm_topk_prob;        /* renormalise the k weights (and k > 1) */
    int32_t n_mtp;                 /* D, MTP modules stored as layers L ... L+D-1 */
    int32_t max_position;          /* max_position_embeddings */
    int32_t bos_token;             /* -1 if none */
    int32_t eos_token;             /* -1 if none */
    float routed_scaling;          /* rho */
    float rms_eps;                 /* epsilon of every RMSNorm */
    float rope_theta;              /* RoPE base */
    int32_t rope_yarn;             /* 1 iff rope_scaling.type == "yarn" */
    int32_t yarn_orig_ctx;         /* original_max_position_embeddings */
    float yarn_factor;             /* s */
    float yarn_beta_fast;
    float yarn_beta_slow;
    float yarn_mscale;
    float yarn_mscale_all_dim;
} dsv3_hparams;

struct dsv3__mbuild;
struct dsv3__kvlist;

/*
 * hparams.c. Parse a Hugging Face config.json (V3/V2 families): every key is
 * used, validated, or explicitly ignorable; unknown keys are logged as
 * warnings; unsupported values fail with DSV3_E_UNSUPPORTED, malformed ones
 * with DSV3_E_FORMAT. The result is validated (dsv3__hparams_validate).
 */
int dsv3__hparams_from_config(const dsv3__alloc *a, const char *json, size_t len,
                              dsv3_hparams *hp, const dsv3__log *log, dsv3__err *err);
/* The rules of ARCHITECTURE.md 1.3 plus size limits: DSV3_E_FORMAT or
 * DSV3_E_UNSUPPORTED with a message. */
int dsv3__hparams_validate(const dsv3_hparams *hp, dsv3__err *err);
/* The manifest's typed key-value form (section HPARAMS). */
void dsv3__hparams_to_kv(const dsv3_hparams *hp, struct dsv3__mbuild *b);
int dsv3__hparams_from_kv(const struct dsv3__kvlist *kv, dsv3_hparams *hp, const dsv3__log *log,
                          dsv3__err *err);

/* Derived helpers. */
static inline int32_t dsv3__hp_qk_head_dim(const dsv3_hparams *hp)
{
    return hp->qk_nope_dim + hp->qk_rope_dim;
}

static inline int dsv3__hp_layer_is_moe(const dsv3_hparams *hp, int32_t layer)
{
    if (hp->n_routed_experts <= 0)
        return 0;
    if (layer >= hp->n_layers) /* MTP modules always use MoE when the model has it */
        return 1;
    return layer >= hp->first_k_dense && hp->moe_layer_freq > 0 &&
           layer % hp->moe_layer_freq == 0;
}

/* ---- weights ------------------------------------------------------------ */

/* A SwiGLU MLP: down(silu(gate x) * up x). */
typedef struct dsv3_mlp_weights {
    dsv3_tensor gate; /* [f, d] */
    dsv3_tensor up;   /* [f, d] */
    dsv3_tensor down; /* [d, f] */
} dsv3_mlp_weights;

typedef struct dsv3_layer_weights {
    dsv3_tensor attn_norm;  /* [d]  input_layernorm */
    /* attention (MLA) */
    dsv3_tensor q_a;        /* [r_q, d]          when r_q > 0 */
    dsv3_tensor q_a_norm;   /* [r_q]             when r_q > 0 */
    dsv3_tensor q_b;        /* [n_h*d_q, r_q]    when r_q > 0 */
    dsv3_tensor q;          /* [n_h*d_q, d]      when r_q == 0 */
    dsv3_tensor kv_a;       /* [r_kv + d_r, d]   latent rows first, rope rows last */
    dsv3_tensor kv_a_norm;  /* [r_kv] */
    dsv3_tensor kv_b;       /* [n_h*(d_n+d_v), r_kv]  per head: d_n key rows, d_v value rows */
    dsv3_tensor o;          /* [d, n_h*d_v] */
    dsv3_tensor ffn_norm;   /* [d]  post_attention_layernorm */
    /* feed-forward */
    int32_t is_moe;
    dsv3_mlp_weights mlp;   /* dense layers: f = f_d */
    dsv3_tensor router;     /* [E, d]   mlp.gate.weight */
    dsv3_tensor router_bias;/* [E] F32  e_score_correction_bias (noaux_tc only) */
    dsv3_tensor exp_gate;   /* [E, f_m, d]  routed experts, stacked */
    dsv3_tensor exp_up;     /* [E, f_m, d] */
    dsv3_tensor exp_down;   /* [E, d, f_m] */
    dsv3_mlp_weights shared;/* f = E_s*f_m  (absent when E_s == 0) */
    /* MTP module only (layer index >= n_layers) */
    dsv3_tensor enorm;      /* [d] */
    dsv3_tensor hnorm;      /* [d] */
    dsv3_tensor eh_proj;    /* [d, 2d]  input = [enorm(e) ; hnorm(h)] */
    dsv3_tensor head_norm;  /* [d]  shared_head.norm */
    dsv3_tensor embed;      /* [V, d] its embed_tokens (may alias the main one) */
    dsv3_tensor head;       /* [V, d] shared_head.head (may alias lm_head) */
} dsv3_layer_weights;

typedef struct dsv3_weights {
    dsv3_tensor embed;            /* [V, d]  model.embed_tokens */
    dsv3_tensor norm;             /* [d]     model.norm */
    dsv3_tensor head;             /* [V, d]  lm_head */
    int32_t n_layers;             /* n_layers + loaded MTP modules */
    dsv3_layer_weights *layers;   /* [n_layers]; MTP modules at L ... */
} dsv3_weights;

/* ---- the tensors a checkpoint must hold (tensors.c) ----------------------- */

enum dsv3__tkind {
    DSV3__TK_VECTOR = 0, /* norms, router bias: converted to F32 at load */
    DSV3__TK_MATRIX = 1, /* embedding, head, router, eh_proj: never quantized */
    DSV3__TK_PROJ = 2    /* projection matrices: may be FP8 (+ scales) or quantized */
};

enum dsv3__tspec_flags {
    DSV3__TS_MTP = 1u << 0,      /* belongs to an MTP module */
    DSV3__TS_STACK = 1u << 1,    /* routed experts stacked [E, out, in] from experts.{j}.* */
    DSV3__TS_ALIASABLE = 1u << 2 /* MTP copy of the main embedding/head (alias_of) */
};

typedef struct dsv3__tspec {
    char name[96];        /* Hugging Face name (stacks: ...mlp.experts.gate_proj.weight) */
    int32_t kind;         /* enum dsv3__tkind */
    uint32_t flags;       /* enum dsv3__tspec_flags */
    int32_t layer;        /* -1 outside the layers */
    int32_t n_dims;
    int64_t ne[3];        /* expected shape */
    const char *alias_of; /* ALIASABLE: name of the main tensor it copies */
    dsv3_tensor *dst;     /* its place in dsv3_weights (NULL without weights) */
} dsv3__tspec;

/*
 * Every tensor of a model with these hyper-parameters and n_mtp MTP modules
 * (0 ... hp->n_mtp), in file order. With w non-NULL, w->layers is allocated
 * (n_layers + n_mtp entries, freed by the caller with dsv3__free) and each
 * spec's dst points at its field. Returns DSV3_OK or DSV3_E_NOMEM.
 */
int dsv3__tensor_specs(const dsv3__alloc *a, const dsv3_hparams *hp, int32_t n_mtp,
                       dsv3_weights *w, dsv3__tspec **out, size_t *n);
/* Source name of expert j of a stacked spec. */
void dsv3__tspec_expert_name(const dsv3__tspec *s, int32_t j, char *buf, size_t cap);

/* ---- the model handle --------------------------------------------------- */

struct dsv3_tokenizer;
struct dsv3_fwd_model; /* forward-pass data derived at load (lib/model/forward) */

enum dsv3_chat_kind {
    DSV3_CHAT_NONE = 0,
    DSV3_CHAT_DEEPSEEK_V3 = 1,
    DSV3_CHAT_DEEPSEEK_V2 = 2
};

struct dsv3_model {
    uint32_t magic;             /* DSV3__MAGIC_MODEL, or _FAILED */
    atomic_int refs;            /* the caller's reference + one per context */
    dsv3__alloc alloc;
    dsv3__log log;
    pthread_mutex_t err_lock;   /* guards err (the model is shared) */
    dsv3__err err;
    dsv3_model_params params;   /* copy of the load params */

    dsv3_hparams hp;
    dsv3_weights w;
    dsv3_backend be;            /* where the model computes */
    dsv3_backend be_cpu;        /* routed experts with DSV3_PLACE_EXPERTS_ON_CPU */
    struct dsv3_tokenizer *tok; /* NULL when the file has no tokenizer */
    int32_t chat_kind;          /* enum dsv3_chat_kind */

    struct dsv3__load_state *load; /* loader-owned resources (buffers, maps) */
    struct dsv3_fwd_model *fwd;

    dsv3_model_info info;       /* filled at load */
};

/* ---- loader state (load.c, loadio.c) -------------------------------------- */

struct dsv3__manifest;
struct dsv3__fmt_tensor;

/* One tensor to fill: a weight, or the scales of an FP8 weight. */
typedef struct dsv3__place {
    const struct dsv3__fmt_tensor *ft; /* manifest entry holding the data (alias resolved) */
    int32_t ft_index;  /* its index in the manifest */
    dsv3_tensor *dst;  /* the weight (scales: the weight they belong to) */
    uint32_t is_scale : 1, to_f32 : 1, mapped : 1, main : 1, stack : 1, embed : 1;
    int32_t share;     /* >= 0: same data as that earlier place (alias) */
    dsv3_backend *be;
    dsv3_buf *buf;
    uint64_t size;     /* bytes in backend memory */
} dsv3__place;

typedef struct dsv3__shard_map {
    void *addr;
    size_t len;
    bool keep; /* mapped into buffers: lives as long as the model */
} dsv3__shard_map;

typedef struct dsv3__load_state {
    dsv3__place *places;
    size_t n_places;
    dsv3__shard_map *maps;
    uint32_t n_maps;
} dsv3__load_state;

/* loadio.c: open and check the shards, allocate or map every place's buffer,
 * decompress everything in parallel (progress, cancel). `dir` is the model
 * directory. */
int dsv3__load_data(dsv3_model *m, const struct dsv3__manifest *man, const char *dir,
                    uint64_t *disk_bytes);
/* Release buffers and mappings (also after a failed load). */
void dsv3__load_release(dsv3_model *m);

/* What a model directory holds, read from its manifest without loading the
 * weights (dsv3 info). Shards are not opened. */
typedef struct dsv3__model_summary {
    dsv3_hparams hp;
    dsv3_model_info info;   /* bytes_in_memory: as a load with these params would use */
    uint64_t raw_bytes;     /* tensor data before compression (aliases once) */
    uint64_t stored_bytes;  /* tensor data in the shards */
    uint32_t n_tensors;
    uint32_t n_shards;
    int32_t chat_kind;
    int32_t has_tokenizer;
} dsv3__model_summary;

int dsv3__model_summary_get(const char *path, const dsv3_model_params *params,
                            dsv3__model_summary *out, char *errbuf, size_t errcap);

/* Report an error on a shared model handle (thread-safe). Returns code. */
int dsv3__model_seterr(const dsv3_model *m, int code, const char *fmt, ...) DSV3__PRINTF(3, 4);

/* Take / drop a reference; the last drop frees everything. */
void dsv3__model_ref(dsv3_model *m);
void dsv3__model_unref(dsv3_model *m);

/* Validate a public handle: DSV3_OK, or DSV3_E_INVAL (NULL) / DSV3_E_MISUSE
 * (failed or freed handle). */
int dsv3__model_check(const dsv3_model *m);

/* ---- forward pass (forward.c, rope.c, mla.c, moe.c, mtp.c) ---------------- */

/* Data derived from the weights once per model (lives in the model's
 * backend memory). */
typedef struct dsv3_fwd_model {
    dsv3_buf *buf;       /* holds rope_freqs and every wkv_b */
    float *rope_freqs;   /* [d_r/2] YaRN-corrected frequencies theta'_i */
    float **wkv_b;       /* [n_layers] (host array) -> [n_h][d_n+d_v][r_kv] F32:
                            kv_b dequantized once (W_UK rows, then W_UV rows) */
    int32_t n_layers;    /* main layers + loaded MTP modules */
    float attn_scale;    /* softmax scale tau (ARCHITECTURE.md 3.5) */
    float rope_scale;    /* cos/sin factor m(s, mscale) / m(s, mscale_all_dim) */
    /* the routed experts live in m->be_cpu while the rest is on m->be
     * (DSV3_PLACE_EXPERTS_ON_CPU): the MoE op runs there, and only its input
     * and output rows cross between the two backends */
    int32_t experts_apart;
} dsv3_fwd_model;

/* Check hparams and every tensor shape the forward pass uses, then build
 * m->fwd. Call once the weights are in backend memory. Errors are reported
 * on the model. */
int dsv3__fwd_model_init(dsv3_model *m);
void dsv3__fwd_model_free(dsv3_model *m);

/* rope.c: YaRN frequencies (host memory, d_r/2 values), softmax scale and
 * cos/sin factor, from the hyper-parameters. */
void dsv3__rope_freqs(const dsv3_hparams *hp, float *out);
float dsv3__attn_scale(const dsv3_hparams *hp);
float dsv3__rope_scale(const dsv3_hparams *hp);

/* Scratch of one forward chunk of up to n_rows tokens, all in one backend
 * buffer. Pointers are backend addresses. */
typedef struct dsv3_fwd_scratch {
    dsv3_buf *buf;
    int64_t n_rows;
    int32_t *tok;    /* [B] token ids */
    int32_t *amax;   /* [B] argmax results */
    float *h;        /* [B][d] residual stream */
    float *xn;       /* [B][d] normed input of a block */
    float *qa;       /* [B][r_q] */
    float *q;        /* [B][n_h*d_q] */
    float *kv;       /* [B][r_kv+d_r] */
    float *ao;       /* [B][n_h*d_v] attention output before o_proj */
    float *fg, *fu;  /* [B][f_max] FFN gate/up */
    float *moe;      /* [B][d] */
    float *rlog;     /* [B][E] router logits */
    int32_t *ridx;   /* [B][k] */
    float *rw;       /* [B][k] */
    float *cat;      /* [B][2d] MTP input [enorm(e) ; hnorm(h)] */
    float *logits;   /* [B][V] */
    /* experts apart only: the MoE op's rows in the experts' backend */
    dsv3_buf *xbuf;
    float *xx;       /* [B][d] input rows */
    int32_t *xidx;   /* [B][k] */
    float *xw;       /* [B][k] */
    float *xy;       /* [B][d] output rows */
    /* naive attention only, sized for n_ctx keys */
    dsv3_buf *naive_buf;
    float *lat;      /* [n_ctx][r_kv+d_r] cache rows as F32 */
    float *kvd;      /* [n_ctx][n_h*(d_n+d_v)] decompressed keys/values */
} dsv3_fwd_scratch;

/* One forward invocation's view of a context. */
typedef struct dsv3__fwd {
    const dsv3_model *m;
    const dsv3_backend *be;
    dsv3__err *err;
    const dsv3_fwd_scratch *s;
    const atomic_int *cancel;
    int32_t n_threads;
    int32_t naive;       /* naive MLA instead of absorbed */
    int32_t kv_dtype;    /* F32 or BF16 */
    int64_t ld_cache;    /* r_kv + d_r */
} dsv3__fwd;

/* Run one backend op; failures become E_BACKEND/E_NOMEM with a message. */
int dsv3__fwd_op(const dsv3__fwd *f, int32_t op, const void *args);
/* The same on another backend instance (the experts' one). */
int dsv3__fwd_op_on(const dsv3__fwd *f, const dsv3_backend *be, int32_t op, const void *args);
/* Copy n bytes from src (inside buffer sb of backend sbe) to dst (inside db
 * of dbe), through the vtable's buf_read / buf_write; one of the two
 * backends must hold host memory. Ordered after the ops queued on either. */
int dsv3__fwd_xfer(const dsv3__fwd *f, const dsv3_backend *sbe, const dsv3_buf *sb,
                   const void *src, const dsv3_backend *dbe, dsv3_buf *db, void *dst, size_t n);
/* y (+)= x W^T over T rows. */
int dsv3__fwd_matmul(const dsv3__fwd *f, const dsv3_tensor *w, const float *x, int64_t ldx,
                     float *y, int64_t ldy, int64_t T, int accumulate);
int dsv3__fwd_rmsnorm(const dsv3__fwd *f, const dsv3_tensor *g, const float *x, int64_t ldx,
                      float *y, int64_t ldy, int64_t rows, int64_t n);
/* Is the cancel flag up? */
int dsv3__fwd_canceled(const dsv3__fwd *f);

/* Allocate / release the scratch for chunks of n_rows tokens (naive: also
 * the n_ctx-sized naive buffers). */
int dsv3__fwd_scratch_init(const dsv3_model *m, int64_t n_rows, int naive, int64_t n_ctx,
                           dsv3_fwd_scratch *s);
void dsv3__fwd_scratch_free(const dsv3_model *m, dsv3_fwd_scratch *s);

/* mla.c: h += Attn(RMSNorm(h)) for T rows at positions pos0 ..., appending
 * the rows' latent + rotated rope key to `cache` ([n_ctx][r_kv+d_r]). */
int dsv3__mla_block(const dsv3__fwd *f, int32_t layer, void *cache, int64_t T, int64_t pos0);
/* moe.c: h += FFN(RMSNorm(h)) (dense SwiGLU or MoE by layer). */
int dsv3__ffn_block(const dsv3__fwd *f, int32_t layer, int64_t T);

/* forward.c: a whole decoder layer (attention then FFN) on s->h; checks
 * the cancel flag afterwards. */
int dsv3__layer_forward(const dsv3__fwd *f, int32_t layer, void *cache, int64_t T, int64_t pos0);
/* Copy T token ids (host) into s->tok. */
int dsv3__fwd_upload_tokens(const dsv3__fwd *f, const int32_t *tokens, int64_t T);
/* Logits (head . x) of rows [r0, r0 + n) of x ([T][d], backend) into
 * out_host ([n][V]). */
int dsv3__fwd_logits(const dsv3__fwd *f, const dsv3_tensor *head, const float *x, int64_t r0,
                     int64_t n, float *out_host);
/* The main model on T tokens (host ids) at positions pos0 ...: embedding,
 * every layer (layer l's cache at kv_base + l * kv_layer_bytes gets the new
 * rows), final norm (left in s->xn and copied to hid ([T][d], backend) when
 * not NULL), and logits of rows [r0, r0 + n_out) into out_host. */
int dsv3__fwd_main(const dsv3__fwd *f, char *kv_base, size_t kv_layer_bytes,
                   const int32_t *tokens, int64_t T, int64_t pos0, float *hid, int64_t r0,
                   int64_t n_out, float *out_host);

/* ---- the context handle --------------------------------------------------- */

struct dsv3_context {
    uint32_t magic;               /* DSV3__MAGIC_CONTEXT, or _FAILED */
    atomic_int busy;              /* a call is running */
    atomic_int cancel;            /* dsv3_context_cancel was called */
    dsv3_model *model;            /* counted reference (NULL in a failed handle) */
    dsv3__alloc alloc;
    dsv3__err err;
    /* its own instance of the model's backend when that one queues work
     * (each context computes on its own stream); else unused */
    dsv3_backend be_own;
    dsv3_context_params params;   /* resolved copy */
    int32_t n_threads;
    int32_t mtp_on;               /* keep hidden states, feed the MTP module */
    uint32_t n_ctx, n_batch;
    uint32_t n_past;              /* positions in the main cache */
    uint32_t mtp_n_past;          /* positions in the MTP cache (<= n_past) */
    int32_t kv_dtype;
    size_t kv_layer_bytes;        /* n_ctx rows of one layer */
    dsv3_buf *kv;                 /* [n_layers][n_ctx][r_kv+d_r] of kv_dtype */
    dsv3_buf *kv_mtp;             /* [n_ctx][r_kv+d_r]: the MTP module's cache, or NULL */
    dsv3_fwd_scratch s;
    /* logits of the last decode call (host memory) */
    float *logits;                /* [cap_logits][V] */
    uint32_t cap_logits;
    uint32_t n_logits;            /* rows available (0: none) */
    uint32_t logits_pos0;         /* position of row 0 */
    uint32_t logits_row0;         /* index of row 0 within the call's tokens */
    /* final-normed hidden state of every position (MTP input), with the
     * MTP cache: rows hid_from ... n_past-1 are valid */
    dsv3_buf *hid;                /* [n_ctx][d] F32, or NULL */
    uint32_t hid_from;
    /* draft logits of the last MTP evaluation (host memory) */
    float *mtp_logits;            /* [cap_mtp_logits][V] */
    uint32_t cap_mtp_logits, n_mtp_logits, mtp_logits_pos0, mtp_logits_row0;
    uint64_t n_drafted, n_accepted;
};

/* Run the MTP module on the pairs (h_i, next_tokens[j]) with
 * i = mtp_n_past + j, j < n, where h_i is the main model's final-normed
 * hidden state at position i < n_past (kept for every position evaluated
 * while MTP is on). Appends to the MTP cache; keeps the draft logits of
 * every entry (DSV3_DECODE_ALL_LOGITS) or of the last one. DSV3_E_MISUSE
 * when MTP is off or a needed hidden state is not available. */
int dsv3__context_mtp_eval(dsv3_context *ctx, const int32_t *next_tokens, size_t n,
                           uint32_t flags);
/* Draft logits of the last dsv3__context_mtp_eval (row as in
 * dsv3_context_logits). */
int dsv3__context_mtp_logits(dsv3_context *ctx, int32_t row, const float **logits);
/* The MTP module on n entries at MTP positions pos0 ... (mtp.c). hid: [n][d]
 * backend rows; logits rows [r0, r0 + n_out) of the chunk go to out_host. */
int dsv3__mtp_forward(const dsv3__fwd *f, void *cache, const float *hid, const int32_t *tokens,
                      int64_t n, int64_t pos0, int64_t r0, int64_t n_out, float *out_host);

/* ---- internal context access (lib/async) ------------------------------- */

/* The allocator of a context (its model's), or NULL for an invalid handle. */
const dsv3__alloc *dsv3__context_allocator(const dsv3_context *ctx);
/* Claim a context for an asynchronous request, as a public call would for
 * its duration: DSV3_OK, DSV3_E_BUSY (a call or request holds it),
 * DSV3_E_INVAL / DSV3_E_MISUSE (bad handle). A pending cancel is forgotten
 * here, not when the generation starts. Release when the request completes. */
int dsv3__context_async_claim(dsv3_context *ctx);
void dsv3__context_async_release(dsv3_context *ctx);
/* dsv3_generate on a context the caller has claimed (dsv3__context_async_claim). */
int dsv3__generate_claimed(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                           size_t n_prompt, const dsv3_generate_params *params,
                           dsv3_token_fn cb, void *user_data, dsv3_generate_result *result);

/* ---- services of a context to dsv3_generate (context.c) ------------------ */

/* Validate a public context handle: DSV3_OK, DSV3_E_INVAL (NULL) or
 * DSV3_E_MISUSE (failed or freed handle). */
int dsv3__context_check(const dsv3_context *ctx);
/* Claim the context for one public call (DSV3_E_BUSY if another call runs;
 * no message is stored then, the running call owns the message buffer) and
 * forget a cancel that arrived while it was idle;
 * dsv3__context_end releases the claim. dsv3_generate holds one claim for
 * the whole generation, so a cancel during a token callback is kept. */
int dsv3__context_begin(dsv3_context *ctx);
void dsv3__context_end(dsv3_context *ctx);
/* The work of dsv3_context_decode for a caller that holds the claim; fails
 * with DSV3_E_CANCELED when a cancel is pending (cache left as before). */
int dsv3__context_decode(dsv3_context *ctx, const int32_t *tokens, size_t n_tokens,
                         uint32_t flags);
/* Last row of logits of the last decode (vocab_size floats), or NULL. */
const float *dsv3__context_last_logits(dsv3_context *ctx);
/* Non-zero once dsv3_context_cancel was called during the current claim. */
int dsv3__context_cancel_requested(const dsv3_context *ctx);
dsv3_model *dsv3__context_model(const dsv3_context *ctx);
uint32_t dsv3__context_n_ctx(const dsv3_context *ctx);
/* Where messages of calls on this context go (dsv3_context_errmsg). */
dsv3__err *dsv3__context_err(dsv3_context *ctx);

/* ---- generation (generate.c, textout.c) --------------------------------- */

/* What the generation loop needs from a sequence. dsv3_generate wires a
 * context; tests drive the loop with a scripted double. */
typedef struct dsv3__gen_io {
    void *self;
    /* Evaluate tokens at the current position (DSV3_E_* codes as
     * dsv3_context_decode, message already in *err). */
    int (*decode)(void *self, const int32_t *tokens, size_t n);
    /* Logits of the last evaluated position, or NULL if there are none. */
    const float *(*logits)(void *self);
    uint32_t (*n_past)(void *self);
    /* Non-zero when the caller asked to cancel. */
    int (*canceled)(void *self);
    /* A token's bytes; a failure means "no text" (ids past the tokenizer). */
    int (*token_bytes)(void *self, int32_t token, const char **bytes, size_t *len);
    /* Non-zero for special tokens (BOS, EOS, chat markers ...), whose text is
     * shown only with DSV3_GENERATE_SHOW_SPECIAL. */
    int (*is_special)(void *self, int32_t token);
    uint32_t n_ctx;           /* positions the sequence can hold */
    size_t n_vocab;           /* length of a logits row */
    int32_t eos;              /* end-of-sequence token, -1 if none */
    const dsv3__alloc *alloc; /* for the loop's own buffers */
    dsv3__err *err;           /* where the loop's messages go */
} dsv3__gen_io;

/* The body of dsv3_generate, with the same contract, on any sequence. */
int dsv3__generate_run(const dsv3__gen_io *io, dsv3_sampler *smp, const int32_t *prompt,
                       size_t n_prompt, const dsv3_generate_params *params, dsv3_token_fn cb,
                       void *user_data, dsv3_generate_result *result);

/*
 * Streamed text (textout.c): token bytes in, the text of token events out.
 * Only complete UTF-8 characters are delivered (invalid sequences become
 * U+FFFD); an end that could still become a stop string is held back; the
 * earliest stop string and everything after it are never delivered; special
 * tokens add no text unless show_special. Stop strings are borrowed (they
 * must outlive the textout) and must be non-empty valid UTF-8.
 */
typedef struct dsv3__textout {
    const dsv3__alloc *a;
    const char *const *stop;
    size_t *stop_len;
    uint32_t n_stop;
    bool show_special;
    bool stopped;
    char *pend; /* bytes not delivered yet */
    size_t pend_len, pend_cap;
    char *out;  /* text of the last push */
    size_t out_cap;
} dsv3__textout;

/* DSV3_E_INVAL (NULL/empty/invalid stop strings), DSV3_E_NOMEM; message in
 * err. */
int dsv3__textout_init(dsv3__textout *t, const dsv3__alloc *a, const char *const *stop,
                       uint32_t n_stop, bool show_special, dsv3__err *err);
/* Add one token's bytes. *text and *len receive the new text, NUL-terminated
 * (valid until the next call; "" when there is none). *stopped becomes true when a stop
 * string completed (the text then ends where it starts; later pushes give
 * nothing). final: the generation ends with this token, so deliver all that
 * is held back. DSV3_E_NOMEM on allocation failure (nothing consumed). */
int dsv3__textout_push(dsv3__textout *t, const char *bytes, size_t n, bool special, bool final,
                       const char **text, size_t *len, bool *stopped);
void dsv3__textout_free(dsv3__textout *t);

/* Length of the UTF-8 character at s[0 ... n-1]: > 0 for a complete valid
 * character, 0 when s holds only the start of one, -m when its first m
 * bytes are an invalid sequence (one U+FFFD). n >= 1. */
int dsv3__utf8_unit(const unsigned char *s, size_t n);
bool dsv3__utf8_valid(const char *s, size_t n);

#endif /* DSV3_MODEL_H */
