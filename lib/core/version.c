/*
 * version.c - version and build information.
 * SPDX-License-Identifier: MIT
 */
#include <zstd.h>

#include "core.h"
#include "dsv3_config.h"

uint32_t dsv3_version(void)
{
    return DSV3_VERSION_NUMBER;
}

const char *dsv3_version_string(void)
{
    return DSV3_VERSION_STRING;
}

uint32_t dsv3_abi_version(void)
{
    return DSV3_ABI_VERSION;
}

#define DSV3__STR2(x) #x
#define DSV3__STR(x) DSV3__STR2(x)

#if DSV3_HAVE_CUDA
#define BI_CUDA " cuda"
#else
#define BI_CUDA ""
#endif
#if DSV3_HAVE_UV
#define BI_UV "; uv"
#else
#define BI_UV ""
#endif

const char *dsv3_build_info(void)
{
    return "libdsv3 " DSV3_VERSION_STRING " abi " DSV3__STR(DSV3_ABI_VERSION)
           "; backends: cpu(" DSV3_CPU_ISAS ")" BI_CUDA BI_UV
           "; zstd " ZSTD_VERSION_STRING;
}
