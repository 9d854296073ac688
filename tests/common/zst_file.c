/*
 * zst_file.c - read whole files, zstd-compressed or not.
 * SPDX-License-Identifier: MIT
 */
#include "zst_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

static char *read_raw(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 65536 + 1 > cap) {
            cap = cap ? 2 * cap : 1 << 20;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    *len = n;
    return buf;
}

char *zf_read(const char *path, size_t *len)
{
    size_t n;
    char *raw = read_raw(path, &n);
    size_t pl = strlen(path);
    if (!raw || pl < 4 || strcmp(path + pl - 4, ".zst")) {
        if (raw)
            *len = n;
        return raw;
    }
    unsigned long long size = ZSTD_getFrameContentSize(raw, n);
    if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN ||
        size > ((size_t)1 << 31)) {
        free(raw);
        return NULL;
    }
    char *out = malloc((size_t)size + 1);
    size_t got = out ? ZSTD_decompress(out, (size_t)size, raw, n) : 0;
    free(raw);
    if (!out || ZSTD_isError(got) || got != size) {
        free(out);
        return NULL;
    }
    out[got] = '\0';
    *len = got;
    return out;
}

int zf_read_v3_tokenizer(const char *src_dir, char **tok, size_t *tok_len, char **cfg,
                         size_t *cfg_len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/tests/data/deepseek-v3/tokenizer.json.zst", src_dir);
    *tok = zf_read(path, tok_len);
    snprintf(path, sizeof path, "%s/tests/data/deepseek-v3/tokenizer_config.json.zst", src_dir);
    *cfg = zf_read(path, cfg_len);
    if (!*tok || !*cfg) {
        free(*tok);
        free(*cfg);
        *tok = *cfg = NULL;
        return -1;
    }
    return 0;
}
