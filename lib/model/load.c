/*
 * load.c - dsv3_model_load and the model's lifetime: reads and validates
 * the manifest, checks every tensor against the hyper-parameters, maps the
 * tensors to dsv3_weights, and fills dsv3_model_info. The data itself is
 * read by loadio.c.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../format/format.h"
#include "../tokenizer/tokenizer.h"
#include "model.h"

#define MAX_MANIFEST ((size_t)1 << 30)

static void model_destroy(dsv3_model *m)
{
    dsv3__alloc a = m->alloc;
    dsv3__load_release(m);
    dsv3__tokenizer_free(m->tok);
    dsv3__free(&a, m->w.layers);
    dsv3__backend_close(&m->be_cpu);
    dsv3__backend_close(&m->be);
    pthread_mutex_destroy(&m->err_lock);
    m->magic = DSV3__MAGIC_DEAD;
    dsv3__free(&a, m);
}

void dsv3__model_unref(dsv3_model *m)
{
    if (atomic_fetch_sub_explicit(&m->refs, 1, memory_order_acq_rel) == 1)
        model_destroy(m);
}

void dsv3_model_free(dsv3_model *m)
{
    if (!m || (m->magic != DSV3__MAGIC_MODEL && m->magic != DSV3__MAGIC_FAILED))
        return;
    dsv3__model_unref(m);
}

/* ---- the manifest file ------------------------------------------------------ */

/* dir receives the model directory; path may name the directory or its
 * model.dsv3. */
static int read_manifest(dsv3_model *m, const char *path, char *dir, size_t dir_cap,
                         dsv3__manifest *man)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return dsv3__seterr(&m->err, DSV3_E_IO, "%s: %s", path, strerror(errno));
    char file[4096];
    if (S_ISDIR(st.st_mode)) {
        snprintf(dir, dir_cap, "%s", path);
        snprintf(file, sizeof file, "%s/%s", path, DSV3__FMT_MANIFEST_NAME);
    } else {
        snprintf(file, sizeof file, "%s", path);
        const char *slash = strrchr(path, '/');
        snprintf(dir, dir_cap, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    }
    int fd = open(file, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return dsv3__seterr(&m->err, DSV3_E_IO, "%s: %s", file, strerror(errno));
    if (fstat(fd, &st) != 0 || (uint64_t)st.st_size > MAX_MANIFEST) {
        close(fd);
        return dsv3__seterr(&m->err, DSV3_E_FORMAT, "%s: unreadable or too large", file);
    }
    size_t len = (size_t)st.st_size, got = 0;
    char *buf = dsv3__malloc(&m->alloc, len ? len : 1);
    if (!buf) {
        close(fd);
        return dsv3__seterr(&m->err, DSV3_E_NOMEM, "out of memory reading %s", file);
    }
    while (got < len) {
        ssize_t k = pread(fd, buf + got, len - got, (off_t)got);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            break;
        got += (size_t)k;
    }
    close(fd);
    int rc = got == len ? dsv3__manifest_parse(&m->alloc, buf, len, man, &m->err)
                        : dsv3__seterr(&m->err, DSV3_E_IO, "%s: read error", file);
    dsv3__free(&m->alloc, buf);
    return rc;
}

/* ---- tensors against the hyper-parameters --------------------------------- */

static int shape_mismatch(dsv3_model *m, const dsv3__fmt_tensor *t, int32_t nd, const int64_t *ne)
{
    char want[96];
    size_t w = 0;
    for (int i = 0; i < nd && w < sizeof want; i++)
        w += (size_t)snprintf(want + w, sizeof want - w, "%s%lld", i ? ", " : "",
                              (long long)ne[i]);
    return dsv3__seterr(&m->err, DSV3_E_FORMAT,
                        "tensor '%s' has %d dims [%lld, %lld, ...] but the hyper-parameters imply "
                        "[%s]",
                        t->name, t->n_dims, (long long)t->ne[0], (long long)t->ne[1], want);
}

static bool same_shape(const dsv3__fmt_tensor *t, int32_t nd, const int64_t *ne)
{
    if (t->n_dims != nd)
        return false;
    for (int i = 0; i < nd; i++)
        if (t->ne[i] != ne[i])
            return false;
    return true;
}

static int check_dtype(dsv3_model *m, const dsv3__tspec *s, const dsv3__fmt_tensor *t)
{
    int32_t d = t->dtype;
    bool fl = d == DSV3_DTYPE_F32 || d == DSV3_DTYPE_F16 || d == DSV3_DTYPE_BF16;
    if (fl || (s->kind == DSV3__TK_PROJ && d == DSV3_DTYPE_FP8_E4M3))
        return DSV3_OK;
    if (s->kind == DSV3__TK_PROJ && (d == DSV3_DTYPE_Q8_0 || d == DSV3_DTYPE_Q4))
        return dsv3__seterr(&m->err, DSV3_E_UNSUPPORTED,
                            "tensor '%s' is %s, which this libdsv3 cannot load yet", t->name,
                            dsv3__dtype_name(d));
    return dsv3__seterr(&m->err, DSV3_E_FORMAT, "tensor '%s' may not be %s", t->name,
                        dsv3__dtype_name(d));
}

/* Resolve an alias to the entry that holds the data. */
static int32_t resolve_alias(const dsv3__manifest *man, const dsv3__fmt_tensor *t)
{
    int32_t i = (int32_t)(t - man->tensors);
    return t->alias >= 0 ? t->alias : i;
}

/* Check one spec's tensor (and its scales); *ft / *sc receive them. */
static int check_spec(dsv3_model *m, const dsv3__manifest *man, const dsv3__tspec *s,
                      bool *used, const dsv3__fmt_tensor **ft, const dsv3__fmt_tensor **sc)
{
    const dsv3__fmt_tensor *t = dsv3__manifest_find(man, s->name);
    *sc = NULL;
    if (!t)
        return dsv3__seterr(&m->err, DSV3_E_FORMAT,
                            "model.dsv3 has no tensor '%s' (required by its hyper-parameters)",
                            s->name);
    if (!same_shape(t, s->n_dims, s->ne))
        return shape_mismatch(m, t, s->n_dims, s->ne);
    int rc = check_dtype(m, s, t);
    if (rc)
        return rc;
    used[t - man->tensors] = true;
    *ft = t;
    char name[160];
    snprintf(name, sizeof name, "%s_scale_inv", s->name);
    const dsv3__fmt_tensor *st = dsv3__manifest_find(man, name);
    if (t->dtype != DSV3_DTYPE_FP8_E4M3) {
        if (st)
            return dsv3__seterr(&m->err, DSV3_E_FORMAT, "'%s' exists but '%s' is not FP8", name,
                                s->name);
        return DSV3_OK;
    }
    if (!st)
        return dsv3__seterr(&m->err, DSV3_E_FORMAT, "FP8 tensor '%s' has no scales '%s'",
                            s->name, name);
    int32_t nd = s->n_dims;
    int64_t ne[3] = {s->ne[0], (s->ne[nd - 2] + 127) / 128, (s->ne[nd - 1] + 127) / 128};
    const int64_t *want = nd == 3 ? ne : ne + 1;
    if (st->dtype != DSV3_DTYPE_F32)
        return dsv3__seterr(&m->err, DSV3_E_FORMAT, "scales '%s' must be F32", name);
    if (!same_shape(st, nd, want))
        return shape_mismatch(m, st, nd, want);
    used[st - man->tensors] = true;
    *sc = st;
    return DSV3_OK;
}

static dsv3__place *add_place(dsv3__load_state *ls, const dsv3__manifest *man,
                              const dsv3__fmt_tensor *t, dsv3_tensor *dst, int32_t *first)
{
    dsv3__place *p = &ls->places[ls->n_places++];
    memset(p, 0, sizeof *p);
    p->ft_index = resolve_alias(man, t);
    p->ft = &man->tensors[p->ft_index];
    p->dst = dst;
    p->share = first[p->ft_index]; /* an alias of data another place loads */
    if (p->share < 0)
        first[p->ft_index] = (int32_t)(ls->n_places - 1);
    return p;
}

/* Every spec of the file must match; the loaded ones become places. */
static int build_places(dsv3_model *m, const dsv3__manifest *man, const dsv3__tspec *full,
                        size_t n_full, const dsv3__tspec *ld, size_t n_ld, int32_t *first,
                        bool *used)
{
    const dsv3__fmt_tensor *ft, *sc;
    for (size_t i = 0; i < n_full; i++) {
        int rc = check_spec(m, man, &full[i], used, &ft, &sc);
        if (rc)
            return rc;
    }
    for (uint32_t i = 0; i < man->n_tensors; i++)
        if (!used[i])
            return dsv3__seterr(&m->err, DSV3_E_FORMAT,
                                "unexpected tensor '%s' in model.dsv3 (not part of a model with "
                                "these hyper-parameters)",
                                man->tensors[i].name);
    dsv3__load_state *ls = m->load;
    for (size_t i = 0; i < n_ld; i++) {
        const dsv3__tspec *s = &ld[i];
        check_spec(m, man, s, used, &ft, &sc);
        bool main = !(s->flags & DSV3__TS_MTP), stack = s->flags & DSV3__TS_STACK;
        dsv3__place *p = add_place(ls, man, ft, s->dst, first);
        p->to_f32 = s->kind == DSV3__TK_VECTOR && ft->dtype != DSV3_DTYPE_F32;
        p->main = main;
        p->stack = stack;
        p->embed = !strcmp(s->name, "model.embed_tokens.weight");
        *s->dst = (dsv3_tensor){.dtype = p->to_f32 ? DSV3_DTYPE_F32 : ft->dtype,
                                .n_dims = ft->n_dims};
        memcpy(s->dst->ne, ft->ne, sizeof ft->ne);
        p->size = p->to_f32 ? ft->raw_size / dsv3__fmt_dtype_unit(ft->dtype) * 4 : ft->raw_size;
        s->dst->nbytes = (size_t)p->size;
        if (sc) {
            dsv3__place *q = add_place(ls, man, sc, s->dst, first);
            q->is_scale = 1;
            q->main = main;
            q->stack = stack;
            q->size = sc->raw_size;
        }
    }
    return DSV3_OK;
}

/* ---- backends -------------------------------------------------------------- */

static int open_backends(dsv3_model *m)
{
    dsv3_backend_config cfg = {sizeof cfg, m->params.device, 0, 0, &m->alloc, &m->log};
    int rc = dsv3__backend_open(m->params.backend, &cfg, &m->be, &m->err);
    if (rc)
        return rc;
    if (m->params.placement == DSV3_PLACE_EXPERTS_ON_CPU && m->be.ops->id != DSV3_BACKEND_CPU)
        return dsv3__backend_open(DSV3_BACKEND_CPU, &cfg, &m->be_cpu, &m->err);
    if (m->params.placement != DSV3_PLACE_DEFAULT &&
        m->params.placement != DSV3_PLACE_EXPERTS_ON_CPU)
        return dsv3__seterr(&m->err, DSV3_E_INVAL, "unknown placement %d", m->params.placement);
    return DSV3_OK;
}

/* ---- info ------------------------------------------------------------------- */

static void fill_info(dsv3_model *m, const dsv3__tspec *full, size_t n_full, uint64_t disk)
{
    const dsv3_hparams *hp = &m->hp;
    dsv3_model_info *in = &m->info;
    memset(in, 0, sizeof *in);
    in->struct_size = sizeof *in;
    uint64_t mtp = 0, main_p = 0, bytes = 0, per_tok = 0, proj_bytes[8] = {0};
    for (size_t i = 0; i < n_full; i++) {
        uint64_t n = 1;
        for (int d = 0; d < full[i].n_dims; d++)
            n *= (uint64_t)full[i].ne[d];
        if (!(full[i].flags & DSV3__TS_MTP))
            main_p += n;
        else if (!(full[i].flags & DSV3__TS_ALIASABLE))
            mtp += n;
    }
    int64_t E = hp->n_routed_experts, k = hp->n_experts_per_tok;
    int64_t n_moe = 0;
    for (int32_t l = 0; l < hp->n_layers; l++)
        n_moe += dsv3__hp_layer_is_moe(hp, l);
    const dsv3__load_state *ls = m->load;
    for (size_t i = 0; i < ls->n_places; i++) {
        const dsv3__place *p = &ls->places[i];
        if (p->share < 0)
            bytes += p->size;
        if (!p->is_scale && p->dst->dtype >= 0 && p->dst->dtype < 8 && p->dst->n_dims >= 2)
            proj_bytes[p->dst->dtype] += p->size;
        if (!p->main)
            continue;
        if (p->embed)
            per_tok += p->size / (uint64_t)hp->vocab_size;
        else if (p->stack)
            per_tok += p->size / (uint64_t)E * (uint64_t)k;
        else
            per_tok += p->size;
    }
    int32_t dom = 0;
    for (int32_t d = 1; d < 8; d++)
        if (proj_bytes[d] > proj_bytes[dom])
            dom = d;
    in->flags = (m->w.n_layers > hp->n_layers ? DSV3_INFO_HAS_MTP : 0) |
                (m->tok ? DSV3_INFO_HAS_TOKENIZER : 0) |
                (m->tok && m->chat_kind ? DSV3_INFO_HAS_CHAT : 0) |
                (hp->q_lora_rank > 0 ? DSV3_INFO_Q_LORA : 0) |
                (hp->scoring == DSV3_SCORING_SIGMOID ? DSV3_INFO_SIGMOID_ROUTER : 0);
    in->vocab_size = hp->vocab_size;
    in->hidden_size = hp->hidden_size;
    in->n_layers = hp->n_layers;
    in->n_dense_layers = hp->n_layers - (int32_t)n_moe;
    in->n_heads = hp->n_heads;
    in->n_experts = hp->n_routed_experts;
    in->n_experts_used = hp->n_routed_experts ? hp->n_experts_per_tok : 0;
    in->n_mtp_layers = hp->n_mtp;
    in->bos_token = hp->bos_token;
    in->eos_token = hp->eos_token;
    in->max_position = hp->max_position;
    in->weight_dtype = dom;
    in->backend = m->be.ops ? m->be.ops->id : 0;
    in->n_params = main_p;
    in->n_params_active = main_p - (uint64_t)n_moe * (uint64_t)(E - k) * 3u *
                                       (uint64_t)hp->moe_intermediate_size *
                                       (uint64_t)hp->hidden_size;
    in->n_params_mtp = mtp;
    in->bytes_on_disk = disk;
    in->bytes_in_memory = bytes;
    in->bytes_per_token = per_tok;
    in->kv_bytes_per_token =
        (uint64_t)(hp->kv_lora_rank + hp->qk_rope_dim) * (uint64_t)hp->n_layers * 4u;
}

/* ---- the load ---------------------------------------------------------------- */

static int load_tokenizer(dsv3_model *m, const dsv3__manifest *man)
{
    const dsv3__kv *ck = dsv3__kv_find(&man->meta, "tokenizer.chat_kind");
    if (ck && (ck->type != DSV3__KV_I64 || ck->i < 0 || ck->i > DSV3_CHAT_DEEPSEEK_V2))
        return dsv3__seterr(&m->err, DSV3_E_FORMAT, "manifest: bad tokenizer.chat_kind");
    m->chat_kind = ck ? (int32_t)ck->i : DSV3_CHAT_NONE;
    if (!man->tokenizer)
        return DSV3_OK;
    dsv3__err e;
    int rc = dsv3__tokenizer_new(&m->alloc, man->tokenizer, man->tokenizer_len, &m->tok, &e);
    if (rc == DSV3_E_UNSUPPORTED) {
        dsv3__logf(&m->log, DSV3_LOG_WARN, "tokenizer not loaded: %s", e.msg);
        m->tok = NULL;
        return DSV3_OK;
    }
    if (rc)
        return dsv3__seterr(&m->err, rc, "tokenizer: %s", e.msg);
    int32_t n = dsv3__tokenizer_n_tokens(m->tok);
    if (n > m->hp.vocab_size)
        dsv3__logf(&m->log, DSV3_LOG_WARN,
                   "the tokenizer has %d ids but the model only %d embedding rows: larger ids "
                   "cannot be evaluated",
                   n, m->hp.vocab_size);
    return DSV3_OK;
}

/* Index tables sized by the manifest; freed by the caller. */
typedef struct scratch {
    dsv3__tspec *full, *ld;
    size_t n_full, n_ld;
    int32_t *first;
    bool *used;
} scratch;

static int prepare(dsv3_model *m, const dsv3__manifest *man, scratch *s)
{
    int32_t n_mtp = (m->params.flags & DSV3_MODEL_NO_MTP) ? 0 : m->hp.n_mtp;
    int rc = dsv3__tensor_specs(&m->alloc, &m->hp, m->hp.n_mtp, NULL, &s->full, &s->n_full);
    if (!rc)
        rc = dsv3__tensor_specs(&m->alloc, &m->hp, n_mtp, &m->w, &s->ld, &s->n_ld);
    size_t nt = man->n_tensors ? man->n_tensors : 1;
    s->first = rc ? NULL : dsv3__malloc(&m->alloc, nt * sizeof *s->first);
    s->used = rc ? NULL : dsv3__calloc(&m->alloc, nt, sizeof *s->used);
    m->load = rc ? NULL : dsv3__calloc(&m->alloc, 1, sizeof *m->load);
    if (m->load)
        m->load->places = dsv3__calloc(&m->alloc, 2 * s->n_ld, sizeof *m->load->places);
    if (!s->first || !s->used || !m->load || !m->load->places)
        return dsv3__seterr(&m->err, DSV3_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nt; i++)
        s->first[i] = -1;
    return DSV3_OK;
}

static void summarize(const dsv3_model *m, const dsv3__manifest *man, dsv3__model_summary *sum)
{
    sum->hp = m->hp;
    sum->info = m->info;
    sum->n_tensors = man->n_tensors;
    sum->n_shards = man->n_shards;
    sum->chat_kind = m->chat_kind;
    sum->has_tokenizer = man->tokenizer != NULL;
    for (uint32_t i = 0; i < man->n_tensors; i++) {
        sum->raw_bytes += man->tensors[i].alias < 0 ? man->tensors[i].raw_size : 0;
        sum->stored_bytes += man->tensors[i].stored_size;
    }
}

/* With sum: read the manifest only and fill *sum. */
static int load_impl(dsv3_model *m, const char *path, dsv3__model_summary *sum)
{
    char dir[4096];
    dsv3__manifest man;
    memset(&man, 0, sizeof man);
    int rc = read_manifest(m, path, dir, sizeof dir, &man);
    if (rc)
        return rc;
    scratch s = {0};
    rc = dsv3__hparams_from_kv(&man.hparams, &m->hp, &m->log, &m->err);
    if (!rc)
        rc = prepare(m, &man, &s);
    if (!rc)
        rc = build_places(m, &man, s.full, s.n_full, s.ld, s.n_ld, s.first, s.used);
    uint64_t disk = man.file_size;
    if (!rc && sum) {
        const dsv3__kv *ck = dsv3__kv_find(&man.meta, "tokenizer.chat_kind");
        m->chat_kind = ck && ck->type == DSV3__KV_I64 ? (int32_t)ck->i : 0;
        for (uint32_t i = 0; i < man.n_shards; i++)
            disk += man.shards[i].size;
        fill_info(m, s.full, s.n_full, disk);
        summarize(m, &man, sum);
    } else {
        if (!rc)
            rc = open_backends(m);
        if (!rc)
            rc = dsv3__load_data(m, &man, dir, &disk);
        if (!rc)
            rc = load_tokenizer(m, &man);
        if (!rc)
            fill_info(m, s.full, s.n_full, disk);
    }
    for (size_t i = 0; !rc && m->load && i < m->load->n_places; i++)
        m->load->places[i].ft = NULL; /* the manifest goes away */
    dsv3__free(&m->alloc, s.full);
    dsv3__free(&m->alloc, s.ld);
    dsv3__free(&m->alloc, s.first);
    dsv3__free(&m->alloc, s.used);
    dsv3__manifest_free(&man);
    return rc;
}

static void fail_cleanup(dsv3_model *m)
{
    dsv3__load_release(m);
    dsv3__tokenizer_free(m->tok);
    m->tok = NULL;
    dsv3__free(&m->alloc, m->w.layers);
    memset(&m->w, 0, sizeof m->w);
    dsv3__backend_close(&m->be_cpu);
    dsv3__backend_close(&m->be);
}

static int model_open(const char *path, const dsv3_model_params *params, dsv3_model **out,
                      dsv3__model_summary *sum);

int dsv3__model_summary_get(const char *path, const dsv3_model_params *params,
                            dsv3__model_summary *out, char *errbuf, size_t errcap)
{
    memset(out, 0, sizeof *out);
    dsv3_model *m = NULL;
    int rc = model_open(path, params, &m, out);
    dsv3__copy_msg(errbuf, errcap, rc ? (m ? m->err.msg : dsv3_strerror(rc)) : "");
    dsv3_model_free(m);
    return rc;
}

int dsv3_model_load(const char *path, const dsv3_model_params *params, dsv3_model **out)
{
    return model_open(path, params, out, NULL);
}

static int model_open(const char *path, const dsv3_model_params *params, dsv3_model **out,
                      dsv3__model_summary *sum)
{
    if (!out)
        return DSV3_E_INVAL;
    *out = NULL;
    dsv3_model_params p;
    dsv3_model_params_init(&p, sizeof p);
    dsv3__alloc a;
    int prc = DSV3_OK;
    if (params)
        prc = dsv3__params_copy(&p, sizeof p, params, sizeof p);
    if (dsv3__alloc_init(&a, prc == DSV3_OK ? p.allocator : NULL) != DSV3_OK) {
        dsv3__alloc_init(&a, NULL);
        prc = DSV3_E_INVAL;
    }
    dsv3_model *m = dsv3__calloc(&a, 1, sizeof *m);
    if (!m)
        return DSV3_E_NOMEM;
    m->magic = DSV3__MAGIC_FAILED;
    atomic_init(&m->refs, 1);
    m->alloc = a;
    pthread_mutex_init(&m->err_lock, NULL);
    *out = m;
    if (prc != DSV3_OK)
        return dsv3__seterr(&m->err, prc, "invalid model params (struct_size %u)",
                            params ? params->struct_size : 0);
    m->params = p;
    m->log.fn = p.log_fn;
    m->log.user_data = p.log_user_data;
    m->log.level = p.log_level;
    if (!path)
        return dsv3__seterr(&m->err, DSV3_E_INVAL, "model path is NULL");
    int rc = load_impl(m, path, sum);
    if (rc || sum) {
        fail_cleanup(m); /* a failed handle keeps only its message */
        return rc;
    }
    m->magic = DSV3__MAGIC_MODEL;
    return DSV3_OK;
}
