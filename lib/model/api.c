/*
 * api.c - public entry points of the model handle: params, reference
 * counting, errors, info.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

#define MODEL_PARAMS_MIN_SIZE sizeof(dsv3_model_params) /* first published version */

static const dsv3_model_params model_defaults = {
    .struct_size = sizeof(dsv3_model_params),
    .backend = DSV3_BACKEND_AUTO,
    .log_level = DSV3_LOG_WARN,
};

int dsv3_model_params_init(dsv3_model_params *p, size_t size)
{
    return dsv3__params_init(p, size, &model_defaults, sizeof model_defaults,
                             MODEL_PARAMS_MIN_SIZE);
}

int dsv3__model_check(const dsv3_model *m)
{
    if (!m)
        return DSV3_E_INVAL;
    if (m->magic != DSV3__MAGIC_MODEL)
        return DSV3_E_MISUSE;
    return DSV3_OK;
}

int dsv3__model_seterr(const dsv3_model *m, int code, const char *fmt, ...)
{
    if (!m)
        return code;
    dsv3_model *mm = (dsv3_model *)m; /* errors are the one mutable part */
    va_list ap;
    va_start(ap, fmt);
    pthread_mutex_lock(&mm->err_lock);
    dsv3__vseterr(&mm->err, code, fmt, ap);
    pthread_mutex_unlock(&mm->err_lock);
    va_end(ap);
    return code;
}

const char *dsv3_model_errmsg(const dsv3_model *m)
{
    if (!m)
        return "no model (NULL handle)";
    if (m->magic != DSV3__MAGIC_MODEL && m->magic != DSV3__MAGIC_FAILED)
        return "not a model handle (freed or corrupt)";
    return m->err.msg;
}

int dsv3_model_info_get(const dsv3_model *m, dsv3_model_info *info)
{
    int rc = dsv3__model_check(m);
    if (rc)
        return rc;
    if (!info || info->struct_size < offsetof(dsv3_model_info, kv_bytes_per_token) + 8)
        return dsv3__model_seterr(m, DSV3_E_INVAL, "model_info: NULL or struct_size too small");
    uint32_t size = info->struct_size;
    memcpy(info, &m->info, DSV3__MIN((size_t)size, sizeof m->info));
    info->struct_size = size;
    return DSV3_OK;
}

void dsv3__model_ref(dsv3_model *m)
{
    atomic_fetch_add_explicit(&m->refs, 1, memory_order_relaxed);
}
