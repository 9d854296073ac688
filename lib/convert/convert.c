/*
 * convert.c - Hugging Face checkpoint -> libdsv3 model directory.
 * SPDX-License-Identifier: MIT
 */
#include "../core/core.h"

static const dsv3_convert_params convert_defaults = {
    .struct_size = sizeof(dsv3_convert_params),
    .log_level = DSV3_LOG_INFO,
};

int dsv3_convert_params_init(dsv3_convert_params *p, size_t size)
{
    return dsv3__params_init(p, size, &convert_defaults, sizeof convert_defaults,
                             sizeof(dsv3_convert_params));
}

int dsv3_convert(const char *hf_dir, const char *out_dir, const dsv3_convert_params *params,
                 char *errbuf, size_t errcap)
{
    (void)hf_dir, (void)out_dir, (void)params;
    dsv3__copy_msg(errbuf, errcap, "conversion is not implemented in this build");
    return DSV3_E_UNSUPPORTED;
}
