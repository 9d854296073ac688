/*
 * zst_file.h - read whole files, zstd-compressed or not, for tests, tools
 * and fuzz targets (no dependency on Check).
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_ZST_FILE_H
#define DSV3_ZST_FILE_H

#include <stddef.h>

/* Read path whole; if it ends in ".zst" decompress it. Returns a malloc'ed
 * NUL-terminated buffer and its length (without the NUL), or NULL. */
char *zf_read(const char *path, size_t *len);

/* Read DeepSeek-V3's tokenizer files committed under src_dir/tests/data/deepseek-v3
 * (tokenizer.json.zst, tokenizer_config.json.zst). 0 on success. */
int zf_read_v3_tokenizer(const char *src_dir, char **tok, size_t *tok_len, char **cfg,
                         size_t *cfg_len);

#endif
