/*
 * load.c - dsv3_model_load and the model's lifetime.
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "model.h"

static void model_destroy(dsv3_model *m)
{
    dsv3__alloc a = m->alloc;
    if (m->be.ops)
        dsv3__fwd_model_free(m);
    dsv3__backend_close(&m->be);
    dsv3__backend_close(&m->be_cpu);
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

int dsv3_model_load(const char *path, const dsv3_model_params *params, dsv3_model **out)
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
    return dsv3__seterr(&m->err, DSV3_E_UNSUPPORTED,
                        "%s: loading models is not implemented in this build", path);
}
