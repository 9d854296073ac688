/*
 * dsv3.h - public C API of libdsv3, a library that runs DeepSeek-V3-architecture
 * language models (DeepSeek-V3/R1, V2/V2-Lite and derivatives).
 *
 * SPDX-License-Identifier: MIT
 *
 * Conventions used by every declaration below:
 *  - Handles are opaque: dsv3_model (immutable after load, shared by any number
 *    of contexts and threads), dsv3_context (one sequence's state, one thread
 *    at a time), dsv3_sampler (a sampler chain, one thread at a time).
 *  - Fallible functions return int: DSV3_OK (0) or a negative DSV3_E_* code.
 *    Results come back through out-parameters. Each handle keeps the message
 *    of its last failed call (dsv3_*_errmsg).
 *  - Params structs start with uint32_t struct_size and are filled by their
 *    *_params_init(&p, sizeof p) function. Pass NULL for all defaults. The
 *    library reads min(struct_size, its own size) bytes and defaults the rest;
 *    a larger struct is accepted only if the unknown tail is all zero bytes.
 *  - Constructors that fail still store a handle (only *_errmsg and *_free are
 *    valid on it) so that the message can be read; *out is NULL only for
 *    DSV3_E_NOMEM or when out itself is NULL.
 *  - *_free(NULL) is a no-op. Caller buffers are (buf, cap, size_t *needed):
 *    when cap is too small the call fails with DSV3_E_NOSPC and *needed holds
 *    the size required.
 *  - Strings are UTF-8. No function keeps a pointer to caller memory after it
 *    returns unless its comment says so.
 *  - Thread-safety is stated per declaration: "any thread" (may be called
 *    concurrently), "serialize per handle" (at most one call at a time on the
 *    same handle), or a specific rule.
 */
#ifndef DSV3_H
#define DSV3_H

#include <stddef.h>
#include <stdint.h>

#include "dsv3_version.h"

#ifndef DSV3_API
#if defined(_WIN32)
#if defined(DSV3_BUILDING_LIBRARY)
#define DSV3_API __declspec(dllexport)
#else
#define DSV3_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define DSV3_API __attribute__((visibility("default")))
#else
#define DSV3_API
#endif
#endif

#ifndef DSV3_DEPRECATED
#if defined(DSV3_NO_DEPRECATION_WARNINGS)
#define DSV3_DEPRECATED(hint)
#elif defined(__GNUC__) || defined(__clang__)
#define DSV3_DEPRECATED(hint) __attribute__((deprecated(hint)))
#else
#define DSV3_DEPRECATED(hint)
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------ */
/* Status codes                                                              */
/* ------------------------------------------------------------------------ */

/*
 * The one table of status codes: X(NAME, value, "message"). Values are pinned
 * forever; retired values stay reserved. DSV3_OK is 0, every error is
 * negative.
 */
#define DSV3_ERRNO_MAP(X)                                                     \
    X(E_INVAL, -1, "invalid argument")                                        \
    X(E_NOMEM, -2, "out of memory")                                           \
    X(E_IO, -3, "input/output error")                                         \
    X(E_FORMAT, -4, "malformed or unsupported file contents")                 \
    X(E_CHECKSUM, -5, "checksum mismatch")                                    \
    X(E_VERSION, -6, "unsupported format or ABI version")                     \
    X(E_UNSUPPORTED, -7, "operation or value not supported")                  \
    X(E_NODEV, -8, "no such device or backend")                               \
    X(E_BACKEND, -9, "backend failure")                                       \
    X(E_NOSPC, -10, "buffer too small")                                       \
    X(E_CTX_FULL, -11, "context is full")                                     \
    X(E_CANCELED, -12, "operation canceled")                                  \
    X(E_BUSY, -13, "handle is in use by another call")                        \
    X(E_MISUSE, -14, "library misuse")                                        \
    X(E_INTERNAL, -15, "internal error")                                      \
    X(E_RANGE, -16, "value out of range")                                     \
    X(E_UTF8, -17, "invalid UTF-8")

/** Status codes. Since: 0.1 */
enum dsv3_status {
    DSV3_OK = 0,
#define DSV3__ERRNO_ENUM(name, value, msg) DSV3_##name = value,
    DSV3_ERRNO_MAP(DSV3__ERRNO_ENUM)
#undef DSV3__ERRNO_ENUM
    DSV3__STATUS_MIN = -17
};

/**
 * Describe a status code.
 * @param err  any int; unknown values get "unknown error".
 * @return a static string, never NULL.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API const char *dsv3_strerror(int err);

/**
 * Name of a status code, e.g. "DSV3_E_NOMEM".
 * @return a static string, never NULL ("DSV3_E_UNKNOWN" for unknown codes).
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API const char *dsv3_err_name(int err);

/* ------------------------------------------------------------------------ */
/* Versions                                                                  */
/* ------------------------------------------------------------------------ */

/**
 * Version of the library actually linked, as DSV3_VERSION_NUMBER
 * (major*10000 + minor*100 + patch). Compare with the header's macro to detect
 * a header/library mismatch. Thread-safety: any thread. Since: 0.1
 */
DSV3_API uint32_t dsv3_version(void);

/** Version string of the linked library, e.g. "0.1.0". Static, never NULL.
 * Thread-safety: any thread. Since: 0.1 */
DSV3_API const char *dsv3_version_string(void);

/** ABI number of the linked library (the SONAME number, DSV3_ABI_VERSION).
 * Bindings refuse to run when it differs from the one they were written for.
 * Thread-safety: any thread. Since: 0.1 */
DSV3_API uint32_t dsv3_abi_version(void);

/**
 * What this build contains, one line, e.g.
 * "libdsv3 0.1.0 abi 0; backends: cpu(avx2,scalar) cuda; uv; zstd 1.5.4".
 * Static, never NULL. Thread-safety: any thread. Since: 0.1
 */
DSV3_API const char *dsv3_build_info(void);

/* ------------------------------------------------------------------------ */
/* Shared callback and helper types                                          */
/* ------------------------------------------------------------------------ */

/** Log levels, most severe first. Since: 0.1 */
enum dsv3_log_level {
    DSV3_LOG_NONE = 0,
    DSV3_LOG_ERROR = 1,
    DSV3_LOG_WARN = 2,
    DSV3_LOG_INFO = 3,
    DSV3_LOG_DEBUG = 4
};

/**
 * Log callback. msg is one preformatted UTF-8 line without a trailing newline,
 * valid only during the call. Called on whichever thread produced the message
 * (loader workers, decode threads); it must be thread-safe and must not call
 * back into the library. Logging is silent unless a callback is given.
 */
typedef void (*dsv3_log_fn)(int32_t level, const char *msg, void *user_data);

/**
 * Allocation callbacks. alloc returns memory aligned at least like malloc,
 * or NULL on failure (which the library reports as DSV3_E_NOMEM). free(NULL)
 * must be harmless. Both may be called from any library thread.
 */
typedef void *(*dsv3_alloc_fn)(size_t size, void *user_data);
typedef void (*dsv3_free_fn)(void *ptr, void *user_data);

/** A caller-provided allocator. The library copies this struct; user_data must
 * outlive every handle created with it. Since: 0.1 */
typedef struct dsv3_allocator {
    uint32_t struct_size;
    uint32_t flags; /* none defined; must be 0 */
    dsv3_alloc_fn alloc;
    dsv3_free_fn free;
    void *user_data;
} dsv3_allocator;

/** Stages reported by progress callbacks. Since: 0.1 */
enum dsv3_progress_stage {
    DSV3_PROGRESS_LOAD = 1,    /* reading and decompressing weights */
    DSV3_PROGRESS_CONVERT = 2  /* converting a checkpoint */
};

/** A progress report. done/total are in bytes. Since: 0.1 */
typedef struct dsv3_progress_event {
    uint32_t struct_size;
    int32_t stage; /* enum dsv3_progress_stage */
    uint64_t done;
    uint64_t total;
} dsv3_progress_event;

/**
 * Progress callback: called from the thread that started the operation, at
 * most a few times per second and once at the end. Return non-zero to cancel
 * the operation, which then fails with DSV3_E_CANCELED.
 */
typedef int (*dsv3_progress_fn)(const dsv3_progress_event *ev, void *user_data);

/** Element types of weights and caches (also the file format's type ids).
 * Values are pinned. Since: 0.1 */
enum dsv3_dtype {
    DSV3_DTYPE_DEFAULT = 0, /* "as stored" / library default */
    DSV3_DTYPE_F32 = 1,
    DSV3_DTYPE_F16 = 2,
    DSV3_DTYPE_BF16 = 3,
    DSV3_DTYPE_FP8_E4M3 = 4, /* with 128x128 block scales (F32) */
    DSV3_DTYPE_Q8_0 = 5,     /* blocks of 32 int8 with one scale */
    DSV3_DTYPE_Q4 = 6        /* 4-bit blocks with per-block scales */
};

/** Backends. Values are pinned. Since: 0.1 */
enum dsv3_backend_id {
    DSV3_BACKEND_AUTO = 0, /* best available: CUDA when a device exists, else CPU */
    DSV3_BACKEND_CPU = 1,
    DSV3_BACKEND_CUDA = 2
};

/**
 * Name of a backend ("cpu", "cuda"), or NULL for an unknown id.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API const char *dsv3_backend_name(int32_t backend);

/**
 * Whether a backend is compiled in and usable on this machine (for CUDA: a
 * device is present). Probing is done once per process and cached.
 * @return 1 if usable, 0 if not.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_backend_available(int32_t backend);

/* ------------------------------------------------------------------------ */
/* Model                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct dsv3_model dsv3_model;
typedef struct dsv3_context dsv3_context;
typedef struct dsv3_sampler dsv3_sampler;

/** Flags of dsv3_model_params.flags. Since: 0.1 */
enum dsv3_model_flags {
    DSV3_MODEL_NO_MMAP = 1u << 0,        /* copy "raw" shards instead of mapping them */
    DSV3_MODEL_SKIP_CHECKSUMS = 1u << 1, /* trust the files; skip content checksums */
    DSV3_MODEL_NO_MTP = 1u << 2          /* do not load the MTP module */
};

/** Where routed experts live (dsv3_model_params.placement). Since: 0.1 */
enum dsv3_placement {
    DSV3_PLACE_DEFAULT = 0,        /* everything on the chosen backend */
    DSV3_PLACE_EXPERTS_ON_CPU = 1  /* routed experts in CPU memory, the rest on the backend */
};

/** Parameters of dsv3_model_load. Since: 0.1 */
typedef struct dsv3_model_params {
    uint32_t struct_size;
    uint32_t flags;      /* enum dsv3_model_flags */
    int32_t backend;     /* enum dsv3_backend_id; default AUTO */
    int32_t device;      /* device ordinal for GPU backends; default 0 */
    int32_t n_threads;   /* loader threads; 0 (default) = number of CPUs */
    int32_t placement;   /* enum dsv3_placement; default DEFAULT */
    int32_t log_level;   /* enum dsv3_log_level; default WARN */
    uint32_t reserved0;  /* must be 0 */
    dsv3_log_fn log_fn;  /* NULL (default): silent */
    void *log_user_data;
    dsv3_progress_fn progress_fn; /* NULL: no progress reports */
    void *progress_user_data;
    const dsv3_allocator *allocator; /* NULL: malloc/free; copied at load */
} dsv3_model_params;

/**
 * Fill params with defaults.
 * @param p     the struct to fill; must not be NULL.
 * @param size  sizeof *p as the caller sees it.
 * @return DSV3_OK, or DSV3_E_INVAL for NULL or a size smaller than the
 *         first version of the struct.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_model_params_init(dsv3_model_params *p, size_t size);

/**
 * Load a model directory (model.dsv3 + *.dsv3s shards, see docs/format.md).
 * Everything is validated before use; weights are decompressed on
 * params->n_threads threads. Progress goes to params->progress_fn, which can
 * cancel the load.
 * @param path    the model directory (or its model.dsv3 file).
 * @param params  NULL for defaults.
 * @param out     receives the model handle (owned by the caller, release
 *                with dsv3_model_free); on failure a "failed" handle on which
 *                only dsv3_model_errmsg and dsv3_model_free are valid.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_NOMEM, DSV3_E_IO, DSV3_E_FORMAT,
 *         DSV3_E_CHECKSUM, DSV3_E_VERSION, DSV3_E_UNSUPPORTED, DSV3_E_NODEV,
 *         DSV3_E_BACKEND, DSV3_E_CANCELED.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_model_load(const char *path, const dsv3_model_params *params,
                             dsv3_model **out);

/**
 * Release a model. Contexts hold a counted reference to their model, so the
 * memory is released when the last of them is freed too; freeing the model
 * before its contexts is legal. NULL is a no-op.
 * Thread-safety: any thread, once per handle, not concurrently with other
 * calls that use this handle directly. Since: 0.1
 */
DSV3_API void dsv3_model_free(dsv3_model *model);

/**
 * Message of the last failed call that reported on this model (load,
 * tokenize, chat template ...). Library-owned; valid until the next failing
 * call on this model; "" when there was none. NULL model gives a static
 * message. When several threads use one model, the message may come from
 * another thread's call.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API const char *dsv3_model_errmsg(const dsv3_model *model);

/** Flags of dsv3_model_info.flags. Since: 0.1 */
enum dsv3_model_info_flags {
    DSV3_INFO_HAS_MTP = 1u << 0,       /* an MTP module is loaded */
    DSV3_INFO_HAS_TOKENIZER = 1u << 1, /* the file carries a tokenizer */
    DSV3_INFO_HAS_CHAT = 1u << 2,      /* a chat template is known */
    DSV3_INFO_Q_LORA = 1u << 3,        /* queries are low-rank compressed */
    DSV3_INFO_SIGMOID_ROUTER = 1u << 4 /* sigmoid (V3) rather than softmax (V2) gating */
};

/** Facts about a loaded model. The caller sets struct_size; the library fills
 * what it knows of the struct and leaves the rest untouched. Since: 0.1 */
typedef struct dsv3_model_info {
    uint32_t struct_size;
    uint32_t flags;              /* enum dsv3_model_info_flags */
    int32_t vocab_size;          /* rows of the embedding and head */
    int32_t hidden_size;
    int32_t n_layers;            /* main decoder layers */
    int32_t n_dense_layers;      /* leading dense layers */
    int32_t n_heads;
    int32_t n_experts;           /* routed experts per MoE layer (0: dense model) */
    int32_t n_experts_used;      /* experts per token */
    int32_t n_mtp_layers;        /* MTP modules in the file */
    int32_t bos_token;           /* -1 if none */
    int32_t eos_token;           /* -1 if none */
    int32_t max_position;        /* max_position_embeddings */
    int32_t weight_dtype;        /* dominant weight type, enum dsv3_dtype */
    int32_t backend;             /* enum dsv3_backend_id actually used */
    uint32_t reserved0;
    uint64_t n_params;           /* main model parameters */
    uint64_t n_params_active;    /* activated per token (incl. embedding row and head) */
    uint64_t n_params_mtp;       /* MTP module, without the shared embedding/head */
    uint64_t bytes_on_disk;      /* model.dsv3 plus shards */
    uint64_t bytes_in_memory;    /* weights as held by the backend(s) */
    uint64_t bytes_per_token;    /* weight bytes read per decoded token */
    uint64_t kv_bytes_per_token; /* latent KV cache, main layers, default cache type */
} dsv3_model_info;

/**
 * Describe a loaded model.
 * @param info  caller struct with struct_size set.
 * @return DSV3_OK, DSV3_E_INVAL (NULL arguments, struct_size too small),
 *         DSV3_E_MISUSE (failed or freed handle).
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_model_info_get(const dsv3_model *model, dsv3_model_info *info);

/* ------------------------------------------------------------------------ */
/* Tokenizer and chat template                                               */
/* ------------------------------------------------------------------------ */

/** Flags of dsv3_tokenize. Since: 0.1 */
enum dsv3_tokenize_flags {
    DSV3_TOKENIZE_ADD_BOS = 1u << 0,   /* prepend the BOS token */
    DSV3_TOKENIZE_NO_SPECIAL = 1u << 1 /* special/added token text is plain text */
};

/**
 * Split UTF-8 text into token ids, like the model's Hugging Face tokenizer:
 * added and special tokens written in the text become single tokens unless
 * DSV3_TOKENIZE_NO_SPECIAL is given; no BOS unless DSV3_TOKENIZE_ADD_BOS.
 * @param text, len  the input (need not be NUL-terminated). Invalid UTF-8 is
 *                   refused with DSV3_E_UTF8; the model's message then gives
 *                   the byte offset of the first invalid byte. At most
 *                   len + 1 ids come out.
 * @param tokens, cap, n_tokens  output buffer; on DSV3_E_NOSPC *n_tokens holds
 *                   the count needed.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_UTF8, DSV3_E_NOSPC, DSV3_E_NOMEM,
 *         DSV3_E_UNSUPPORTED (model without tokenizer).
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_tokenize(const dsv3_model *model, const char *text, size_t len,
                           uint32_t flags, int32_t *tokens, size_t cap,
                           size_t *n_tokens);

/** Flags of dsv3_detokenize. Since: 0.1 */
enum dsv3_detokenize_flags {
    DSV3_DETOKENIZE_SKIP_SPECIAL = 1u << 0 /* drop tokens flagged special (BOS, EOS, pad ...) */
};

/**
 * Turn token ids back into text. The result is the exact byte concatenation
 * of the tokens, which is valid UTF-8 whenever the ids came from encoding
 * valid text; a sequence that ends inside a multi-byte character keeps the
 * incomplete bytes (see dsv3_token_bytes for streaming).
 * @param text, cap, len  output buffer, NUL-terminated when it fits; *len is
 *                   the length without the NUL; on DSV3_E_NOSPC, *len is the
 *                   length needed (without the NUL).
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_RANGE (id outside the vocabulary),
 *         DSV3_E_NOSPC, DSV3_E_UNSUPPORTED.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_detokenize(const dsv3_model *model, const int32_t *tokens,
                             size_t n_tokens, uint32_t flags, char *text,
                             size_t cap, size_t *len);

/**
 * The raw bytes of one token (may be part of a UTF-8 character).
 * @param bytes  receives a pointer owned by the model, valid while it lives.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_RANGE, DSV3_E_UNSUPPORTED.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_token_bytes(const dsv3_model *model, int32_t token,
                              const char **bytes, size_t *len);

/** One chat message. role is "system", "user" or "assistant" (and, with the
 * DeepSeek-V3 template, "tool": a tool result). Since: 0.1 */
typedef struct dsv3_chat_message {
    const char *role;
    const char *content;
} dsv3_chat_message;

/** Flags of dsv3_chat_apply. Since: 0.1 */
enum dsv3_chat_flags {
    DSV3_CHAT_ADD_GENERATION_PROMPT = 1u << 0 /* end with the assistant marker */
};

/**
 * Render messages with the model's chat template (DeepSeek-V3: BOS, system
 * text, then <｜User｜>/<｜Assistant｜> turns). The result already contains
 * BOS: tokenize it without DSV3_TOKENIZE_ADD_BOS.
 * @param text, cap, len  output as in dsv3_detokenize.
 * @return DSV3_OK, DSV3_E_INVAL (unknown role, NULL content), DSV3_E_UTF8
 *         (content that is not valid UTF-8), DSV3_E_NOSPC, DSV3_E_UNSUPPORTED
 *         (model without a known template).
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_chat_apply(const dsv3_model *model, const dsv3_chat_message *msgs,
                             size_t n_msgs, uint32_t flags, char *text, size_t cap,
                             size_t *len);

/* ------------------------------------------------------------------------ */
/* Context                                                                   */
/* ------------------------------------------------------------------------ */

/** Flags of dsv3_context_params.flags. Since: 0.1 */
enum dsv3_context_flags {
    DSV3_CONTEXT_MTP = 1u << 0,        /* speculative decoding with the MTP module */
    DSV3_CONTEXT_NAIVE_ATTN = 1u << 1  /* naive (decompressed) MLA; for testing */
};

/** Parameters of dsv3_context_new. Since: 0.1 */
typedef struct dsv3_context_params {
    uint32_t struct_size;
    uint32_t flags;     /* enum dsv3_context_flags */
    uint32_t n_ctx;     /* positions the cache holds; 0 (default) = min(4096, model max) */
    int32_t n_threads;  /* compute threads; 0 (default) = number of CPUs */
    uint32_t n_batch;   /* tokens per internal forward chunk; 0 (default) = 256 */
    int32_t kv_dtype;   /* DSV3_DTYPE_F32 or DSV3_DTYPE_BF16; 0 (default) = F32 */
} dsv3_context_params;

/** Fill context params with defaults. Same contract as
 * dsv3_model_params_init. Thread-safety: any thread. Since: 0.1 */
DSV3_API int dsv3_context_params_init(dsv3_context_params *p, size_t size);

/**
 * Create a context (KV cache, scratch, generation state) on a model. The
 * context takes a counted reference to the model.
 * @param out  as for dsv3_model_load; release with dsv3_context_free.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_NOMEM, DSV3_E_UNSUPPORTED (e.g. MTP
 *         asked for but the model has none), DSV3_E_MISUSE (failed model).
 * Thread-safety: any thread (the model may be shared). Since: 0.1
 */
DSV3_API int dsv3_context_new(dsv3_model *model, const dsv3_context_params *params,
                              dsv3_context **out);

/** Release a context and its reference to the model. NULL is a no-op.
 * Thread-safety: serialize per handle. Since: 0.1 */
DSV3_API void dsv3_context_free(dsv3_context *ctx);

/** Message of the last failed call on this context; "" if none. Library-owned,
 * valid until the next call on the context. Thread-safety: serialize per
 * handle. Since: 0.1 */
DSV3_API const char *dsv3_context_errmsg(const dsv3_context *ctx);

/** Flags of dsv3_context_decode. Since: 0.1 */
enum dsv3_decode_flags {
    DSV3_DECODE_ALL_LOGITS = 1u << 0 /* keep logits of every position, not only the last */
};

/**
 * Evaluate tokens at the current position (prefill when several, decode when
 * one) and append them to the cache. Afterwards the logits of the last token
 * (or of every token with DSV3_DECODE_ALL_LOGITS) are available through
 * dsv3_context_logits.
 * @return DSV3_OK; DSV3_E_INVAL (NULL, n_tokens 0); DSV3_E_RANGE (a token id
 *         outside the vocabulary; nothing is evaluated); DSV3_E_CTX_FULL (the
 *         tokens do not fit; nothing is evaluated); DSV3_E_CANCELED (by
 *         dsv3_context_cancel; the cache is left as before the call);
 *         DSV3_E_BUSY (another call is running on this context);
 *         DSV3_E_NOMEM; DSV3_E_BACKEND.
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_decode(dsv3_context *ctx, const int32_t *tokens,
                                 size_t n_tokens, uint32_t flags);

/**
 * Logits of the last decode call.
 * @param row     index of the token within the last call (0 ... n_tokens-1)
 *                when it used DSV3_DECODE_ALL_LOGITS, or -1 for the last one.
 * @param logits  receives vocab_size floats owned by the context, valid until
 *                the next call that changes the context.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_RANGE (no such row), DSV3_E_MISUSE
 *         (no decode yet).
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_logits(dsv3_context *ctx, int32_t row, const float **logits);

/** Number of positions in the cache (tokens evaluated and kept).
 * Thread-safety: serialize per handle. Since: 0.1 */
DSV3_API uint32_t dsv3_context_n_past(const dsv3_context *ctx);

/**
 * Drop cached positions n_keep and later (rollback). Keeps the logits of the
 * last call only if they belong to a kept position.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_RANGE (n_keep > n_past).
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_truncate(dsv3_context *ctx, uint32_t n_keep);

/** Empty the cache (n_past = 0) and reset counters. Thread-safety: serialize
 * per handle. Since: 0.1 */
DSV3_API int dsv3_context_clear(dsv3_context *ctx);

/**
 * Ask a running decode or generation on this context to stop. It stops
 * within one layer's work and fails with DSV3_E_CANCELED; the context stays
 * usable. A cancel that arrives when nothing runs is forgotten when the next
 * call starts.
 * Thread-safety: any thread, also concurrently with a running call. Since: 0.1
 */
DSV3_API void dsv3_context_cancel(dsv3_context *ctx);

/** Keys of dsv3_context_set_param / dsv3_context_get_param. Since: 0.1 */
enum dsv3_context_param {
    DSV3_CTX_PARAM_N_THREADS = 1,    /* rw: compute threads (1 ... 1024) */
    DSV3_CTX_PARAM_MTP = 2,          /* rw: speculative decoding on (1) or off (0) */
    DSV3_CTX_PARAM_N_CTX = 3,        /* ro: positions the cache holds */
    DSV3_CTX_PARAM_N_PAST = 4,       /* ro: positions in the cache */
    DSV3_CTX_PARAM_MTP_DRAFTED = 5,  /* ro: draft tokens proposed since create/clear */
    DSV3_CTX_PARAM_MTP_ACCEPTED = 6  /* ro: draft tokens accepted since create/clear */
};

/**
 * Set a context knob.
 * @return DSV3_OK, DSV3_E_INVAL (unknown or read-only key), DSV3_E_RANGE
 *         (value outside dsv3_context_param_bounds), DSV3_E_UNSUPPORTED
 *         (MTP on a model without an MTP module).
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_set_param(dsv3_context *ctx, int32_t key, int64_t value);

/** Read a context knob or counter. Thread-safety: serialize per handle.
 * Since: 0.1 */
DSV3_API int dsv3_context_get_param(const dsv3_context *ctx, int32_t key,
                                    int64_t *value);

/** Bounds of a writable knob. Thread-safety: any thread. Since: 0.1 */
DSV3_API int dsv3_context_param_bounds(int32_t key, int64_t *min, int64_t *max);

/**
 * Save the context's sequence state (cache rows, position, last logits) to a
 * buffer. dsv3_context_state_load on a context of the same model restores it.
 * @param buf, cap, needed  output buffer; buf NULL with cap 0 asks for the size.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_NOSPC.
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_state_save(dsv3_context *ctx, void *buf, size_t cap,
                                     size_t *needed);

/**
 * Restore a state written by dsv3_context_state_save.
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_FORMAT (not a state, other model),
 *         DSV3_E_CTX_FULL (more positions than this context holds).
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_context_state_load(dsv3_context *ctx, const void *buf, size_t size);

/* ------------------------------------------------------------------------ */
/* Sampler                                                                   */
/* ------------------------------------------------------------------------ */

/**
 * Sampler parameters. The chain always runs in this order:
 * logit bias -> repetition/frequency/presence penalties over the last
 * penalty_window accepted tokens -> (temperature 0: greedy argmax, done) ->
 * top-k -> softmax with temperature -> top-p -> min-p -> seeded random draw.
 * Penalties, once per distinct token seen c > 0 times in the window: a
 * positive logit is divided by repeat_penalty, a negative one multiplied by
 * it; then c * frequency_penalty + presence_penalty is subtracted. Ties (in
 * argmax, top-k, top-p) go to the lowest token id; NaN logits count as -inf.
 * The draw uses the library's own random generator and arithmetic, so the
 * same seed and inputs give the same tokens on every platform.
 * docs/sampling.md has the details. Since: 0.1
 */
typedef struct dsv3_sampler_params {
    uint32_t struct_size;
    uint32_t flags;           /* none defined; must be 0 */
    uint64_t seed;            /* random draw seed; default 0 */
    float temperature;        /* <= 0: greedy; default 0.8 */
    int32_t top_k;            /* 0: off; default 40 */
    float top_p;              /* 1: off; default 0.95 */
    float min_p;              /* 0: off; default 0.05 */
    float repeat_penalty;     /* 1: off; default 1 */
    float frequency_penalty;  /* 0: off; default 0 */
    float presence_penalty;   /* 0: off; default 0 */
    int32_t penalty_window;   /* tokens looked back on; default 64 */
    const dsv3_allocator *allocator; /* NULL: malloc/free; copied */
} dsv3_sampler_params;

/** Fill sampler params with defaults. Thread-safety: any thread. Since: 0.1 */
DSV3_API int dsv3_sampler_params_init(dsv3_sampler_params *p, size_t size);

/**
 * Create a sampler chain. Valid values: temperature finite (<= 0: greedy),
 * top_k >= 0, top_p in (0, 1], min_p in [0, 1], repeat_penalty finite and
 * > 0, frequency/presence penalties finite, penalty_window >= 0, flags 0.
 * @param out  as for dsv3_model_load; release with dsv3_sampler_free.
 * @return DSV3_OK, DSV3_E_INVAL (NaN or out-of-range values, malformed
 *         allocator), DSV3_E_UNSUPPORTED (unknown non-zero struct tail),
 *         DSV3_E_NOMEM.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_sampler_new(const dsv3_sampler_params *params, dsv3_sampler **out);

/** Release a sampler. NULL is a no-op. Thread-safety: serialize per handle.
 * Since: 0.1 */
DSV3_API void dsv3_sampler_free(dsv3_sampler *smp);

/** Message of the last failed call on this sampler. Thread-safety: serialize
 * per handle. Since: 0.1 */
DSV3_API const char *dsv3_sampler_errmsg(const dsv3_sampler *smp);

/** Add bias to one token's logit before sampling (replaces an earlier bias of
 * that token; 0 removes it; -INFINITY bans it).
 * @return DSV3_OK, DSV3_E_INVAL (NULL, NaN or +INFINITY bias), DSV3_E_RANGE
 *         (negative token; a token past the vocabulary is reported by
 *         dsv3_sampler_sample), DSV3_E_NOMEM, DSV3_E_MISUSE (failed handle).
 * Thread-safety: serialize per handle. Since: 0.1 */
DSV3_API int dsv3_sampler_set_logit_bias(dsv3_sampler *smp, int32_t token, float bias);

/**
 * Pick a token from logits (not modified). Does not record it: call
 * dsv3_sampler_accept with the token actually used. A random draw consumes
 * one number of the sampler's stream; greedy sampling consumes none. The
 * first call with a vocabulary size allocates scratch space; later calls
 * allocate nothing.
 * @return DSV3_OK, DSV3_E_INVAL (NULL, n_vocab 0 or above INT32_MAX, all
 *         logits NaN or -inf after bias and penalties), DSV3_E_RANGE (a
 *         logit bias set on a token >= n_vocab), DSV3_E_NOMEM,
 *         DSV3_E_MISUSE (failed handle).
 * Thread-safety: serialize per handle. Since: 0.1
 */
DSV3_API int dsv3_sampler_sample(dsv3_sampler *smp, const float *logits,
                                 size_t n_vocab, int32_t *token);

/** Record a token in the penalty history (ids past the vocabulary are kept
 * but never penalise anything).
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_RANGE (negative token),
 *         DSV3_E_NOMEM, DSV3_E_MISUSE. Thread-safety: serialize per
 * handle. Since: 0.1 */
DSV3_API int dsv3_sampler_accept(dsv3_sampler *smp, int32_t token);

/** Forget the history and restart the random stream from the seed (logit
 * biases are kept). Thread-safety: serialize per handle. Since: 0.1 */
DSV3_API int dsv3_sampler_reset(dsv3_sampler *smp);

/* ------------------------------------------------------------------------ */
/* Generation                                                                */
/* ------------------------------------------------------------------------ */

/** Why a generation ended. Since: 0.1 */
enum dsv3_stop_reason {
    DSV3_STOP_NONE = 0,
    DSV3_STOP_EOS = 1,        /* the model produced its end-of-sequence token */
    DSV3_STOP_STRING = 2,     /* a stop string appeared */
    DSV3_STOP_MAX_TOKENS = 3, /* max_tokens produced */
    DSV3_STOP_CTX_FULL = 4,   /* the context has no room left */
    DSV3_STOP_CALLBACK = 5,   /* the token callback returned non-zero */
    DSV3_STOP_CANCELED = 6,   /* dsv3_context_cancel */
    DSV3_STOP_ERROR = 7
};

/** One generated token, passed to dsv3_token_fn. Since: 0.1 */
typedef struct dsv3_token_event {
    uint32_t struct_size;
    int32_t token;      /* the token id */
    uint32_t index;     /* 0 for the first generated token */
    uint32_t reserved0;
    const char *text;   /* new complete UTF-8 text, NUL-terminated, valid
                           during the call; may be empty while a character
                           or a possible stop string is incomplete */
    size_t text_len;
} dsv3_token_event;

/**
 * Token callback of dsv3_generate: called on the generating thread, in order.
 * Return non-zero to stop (DSV3_STOP_CALLBACK). From inside it only
 * dsv3_context_cancel may be called on the generating context.
 */
typedef int (*dsv3_token_fn)(const dsv3_token_event *ev, void *user_data);

/** Flags of dsv3_generate_params.flags. Since: 0.1 */
enum dsv3_generate_flags {
    DSV3_GENERATE_IGNORE_EOS = 1u << 0,   /* keep going after EOS */
    DSV3_GENERATE_SHOW_SPECIAL = 1u << 1  /* include special tokens' text in event text */
};

/** Parameters of dsv3_generate. Since: 0.1 */
typedef struct dsv3_generate_params {
    uint32_t struct_size;
    uint32_t flags;            /* enum dsv3_generate_flags */
    int32_t max_tokens;        /* 0 (default): until the context is full */
    uint32_t n_stop;           /* number of stop strings */
    const char *const *stop;   /* stop strings (UTF-8), read during the call only */
} dsv3_generate_params;

/** Fill generation params with defaults. Thread-safety: any thread.
 * Since: 0.1 */
DSV3_API int dsv3_generate_params_init(dsv3_generate_params *p, size_t size);

/** What a generation did. The caller sets struct_size. Since: 0.1 */
typedef struct dsv3_generate_result {
    uint32_t struct_size;
    int32_t stop_reason;      /* enum dsv3_stop_reason */
    uint32_t n_prompt;        /* prompt tokens evaluated */
    uint32_t n_generated;     /* tokens produced */
    double prompt_seconds;    /* time spent evaluating the prompt */
    double generate_seconds;  /* time spent producing tokens */
    uint64_t n_drafted;       /* MTP draft tokens proposed */
    uint64_t n_accepted;      /* MTP draft tokens accepted */
} dsv3_generate_result;

/**
 * Evaluate prompt tokens at the context's current position, then sample and
 * stream new tokens until EOS, a stop string, max_tokens, a full context, the
 * callback's request or dsv3_context_cancel. With DSV3_CONTEXT_MTP the
 * context drafts with the MTP module; the tokens produced are the same as
 * without (greedy) or have the same distribution (sampling).
 * Text of a stop string is not delivered. Every generated token (also the
 * EOS or the one completing a stop string) is evaluated and stays in the
 * cache, so a later call with no prompt continues after it; only on
 * DSV3_E_CANCELED or an error may the last one be missing (see
 * dsv3_context_n_past). Prompt tokens are recorded in the sampler's penalty
 * history; the sampler is not reset. Invalid UTF-8 in token bytes becomes
 * U+FFFD in event text. generate_seconds leaves out time spent in cb.
 * @param prompt, n_prompt  tokens to evaluate first (may be 0 to continue).
 * @param params  NULL for defaults.
 * @param cb      may be NULL.
 * @param result  may be NULL; filled even on failure.
 * @return DSV3_OK for every normal stop (see result->stop_reason),
 *         DSV3_E_CANCELED, DSV3_E_INVAL (also: bad params, NULL/empty/invalid
 *         stop strings, no prompt and nothing to continue from),
 *         DSV3_E_RANGE, DSV3_E_CTX_FULL (the prompt does not fit),
 *         DSV3_E_NOMEM, DSV3_E_BACKEND, DSV3_E_BUSY, DSV3_E_MISUSE (failed
 *         context or sampler). Messages: dsv3_context_errmsg.
 * Thread-safety: serialize per context; the sampler must not be used by
 * another thread during the call. Since: 0.1
 */
DSV3_API int dsv3_generate(dsv3_context *ctx, dsv3_sampler *smp, const int32_t *prompt,
                           size_t n_prompt, const dsv3_generate_params *params,
                           dsv3_token_fn cb, void *user_data,
                           dsv3_generate_result *result);

/* ------------------------------------------------------------------------ */
/* Conversion                                                                */
/* ------------------------------------------------------------------------ */

/** Parameters of dsv3_convert. Since: 0.1 */
typedef struct dsv3_convert_params {
    uint32_t struct_size;
    uint32_t flags;        /* none defined; must be 0 */
    int32_t weights;       /* enum dsv3_dtype for matrices; DEFAULT = as stored */
    int32_t level;         /* zstd level; 0 (default) = 3; -1 = codec raw */
    uint64_t shard_size;   /* bytes per shard file; 0 (default) = 2 GiB */
    int32_t n_threads;     /* compression threads; 0 = number of CPUs */
    int32_t log_level;     /* default INFO */
    dsv3_log_fn log_fn;
    void *log_user_data;
    dsv3_progress_fn progress_fn;
    void *progress_user_data;
} dsv3_convert_params;

/** Fill conversion params with defaults. Thread-safety: any thread.
 * Since: 0.1 */
DSV3_API int dsv3_convert_params_init(dsv3_convert_params *p, size_t size);

/**
 * Convert a Hugging Face DeepSeek checkpoint directory (config.json,
 * safetensors with or without an index, tokenizer files) into a libdsv3 model
 * directory. Memory use stays around one tensor plus one shard.
 * @param errbuf, errcap  receives a one-line message on failure (may be NULL).
 * @return DSV3_OK, DSV3_E_INVAL, DSV3_E_IO, DSV3_E_FORMAT, DSV3_E_UNSUPPORTED,
 *         DSV3_E_NOMEM, DSV3_E_CANCELED.
 * Thread-safety: any thread. Since: 0.1
 */
DSV3_API int dsv3_convert(const char *hf_dir, const char *out_dir,
                          const dsv3_convert_params *params, char *errbuf,
                          size_t errcap);

#ifdef __cplusplus
}
#endif

#endif /* DSV3_H */
