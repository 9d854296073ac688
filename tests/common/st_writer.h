/*
 * st_writer.h - writes safetensors files (and sharded checkpoints with
 * model.safetensors.index.json) for tests. Not part of the library.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_ST_WRITER_H
#define DSV3_ST_WRITER_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_writer st_writer;

st_writer *st_new(void);
void st_free(st_writer *w);

/* Add a tensor; data (nbytes) is copied. dtype is a safetensors dtype string
 * ("F32", "F16", "BF16", "F8_E4M3", "I32", ...). Returns 0 or -1. */
int st_add(st_writer *w, const char *name, const char *dtype, int n_dims, const int64_t *shape,
           const void *data, size_t nbytes);

/* Number of tensors added so far. */
int st_count(const st_writer *w);

/* Write everything to one file. Returns 0 or -1. */
int st_write(const st_writer *w, const char *path);

/* Split the tensors (in insertion order, contiguous runs) over n_files files
 * named model-0000K-of-0000N.safetensors in dir, plus
 * model.safetensors.index.json. Returns 0 or -1. */
int st_write_sharded(const st_writer *w, const char *dir, int n_files);

#endif
