/*
 * params.c - struct_size handling for params structs (the openat2 rule).
 * SPDX-License-Identifier: MIT
 */
#include <string.h>

#include "core.h"

int dsv3__params_copy(void *dst, size_t lib_size, const void *src, size_t min_size)
{
    uint32_t size;
    memcpy(&size, src, sizeof size);
    if (size < min_size)
        return DSV3_E_INVAL;
    if (size > lib_size) {
        const unsigned char *tail = (const unsigned char *)src + lib_size;
        for (size_t i = 0; i < size - lib_size; i++)
            if (tail[i])
                return DSV3_E_UNSUPPORTED;
    }
    memcpy(dst, src, DSV3__MIN((size_t)size, lib_size));
    memcpy(dst, &(uint32_t){(uint32_t)lib_size}, sizeof(uint32_t));
    return DSV3_OK;
}

int dsv3__params_init(void *p, size_t size, const void *defaults, size_t lib_size,
                      size_t min_size)
{
    if (!p || size < min_size || size > UINT32_MAX)
        return DSV3_E_INVAL;
    memset(p, 0, size);
    memcpy(p, defaults, DSV3__MIN(size, lib_size));
    uint32_t s = (uint32_t)size;
    memcpy(p, &s, sizeof s);
    return DSV3_OK;
}
