/*
 * error.c - status code table, per-handle messages and logging.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "core.h"

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

int dsv3__vseterr(dsv3__err *err, int code, const char *fmt, va_list ap)
{
    if (err) {
        int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        if (n < 0)
            snprintf(err->msg, sizeof err->msg, "%s", dsv3_strerror(code));
    }
    return code;
}

int dsv3__seterr(dsv3__err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    dsv3__vseterr(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void dsv3__clearerr(dsv3__err *err)
{
    if (err)
        err->msg[0] = '\0';
}

void dsv3__copy_msg(char *errbuf, size_t errcap, const char *msg)
{
    if (!errbuf || errcap == 0)
        return;
    size_t n = strlen(msg);
    if (n >= errcap)
        n = errcap - 1;
    memcpy(errbuf, msg, n);
    errbuf[n] = '\0';
}

void dsv3__logf(const dsv3__log *log, int32_t level, const char *fmt, ...)
{
    if (!DSV3__LOG_ENABLED(log, level))
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    log->fn(level, buf, log->user_data);
}
