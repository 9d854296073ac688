/*
 * mkckpt.c - development tool: write a random-weight Hugging Face style
 * checkpoint of a config from spec/TINY_CONFIGS.md (tiny, tiny-noq, mini).
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ckpt_gen.h"

static int usage(void)
{
    fprintf(stderr, "usage: mkckpt [--config tiny|tiny-noq|mini] [--dtype bf16|fp8|f32]\n"
                    "              [--seed N] [--files N] [--mtp copy|omit|distinct] OUT_DIR\n");
    return 2;
}

int main(int argc, char **argv)
{
    cg_opts o = {&cg_tiny, CG_BF16, 1, CG_MTP_COPY};
    int files = 0;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--config") && v) {
            o.cfg = !strcmp(v, "mini") ? &cg_mini : !strcmp(v, "tiny-noq") ? &cg_tiny_noq
                    : !strcmp(v, "tiny")                                    ? &cg_tiny
                                                                            : NULL;
            i++;
        } else if (!strcmp(a, "--dtype") && v) {
            o.dtype = !strcmp(v, "fp8") ? CG_FP8 : !strcmp(v, "f32") ? CG_F32
                      : !strcmp(v, "bf16")                         ? CG_BF16
                                                                   : -1;
            i++;
        } else if (!strcmp(a, "--seed") && v) {
            o.seed = strtoull(v, NULL, 10);
            i++;
        } else if (!strcmp(a, "--files") && v) {
            files = atoi(v);
            i++;
        } else if (!strcmp(a, "--mtp") && v) {
            o.mtp_copies = !strcmp(v, "omit") ? CG_MTP_OMIT : !strcmp(v, "distinct") ? CG_MTP_DISTINCT
                                                                                     : CG_MTP_COPY;
            i++;
        } else if (a[0] != '-' && !out) {
            out = a;
        } else {
            return usage();
        }
    }
    if (!out || !o.cfg || o.dtype < 0 || files < 0)
        return usage();
    mkdir(out, 0755);
    if (cg_write(out, &o, files)) {
        fprintf(stderr, "mkckpt: cannot write %s\n", out);
        return 1;
    }
    return 0;
}
