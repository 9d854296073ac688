/*
 * bench_tokenizer.c - encoding throughput of the tokenizer on a text file.
 *
 *   bench_tokenizer [-s SRC_DIR] [-n REPS] FILE      MB/s over REPS passes
 *   bench_tokenizer [-s SRC_DIR] --ids TEXT          print the ids of TEXT
 *
 * The tokenizer is DeepSeek-V3's, built from the files committed under
 * SRC_DIR/tests/data/deepseek-v3 (default: the source tree it was built from).
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/tokenizer.h"
#include "zst_file.h"

#ifndef DSV3_SOURCE_DIR
#define DSV3_SOURCE_DIR "."
#endif

static dsv3_tokenizer *load(const char *src, const dsv3__alloc *a)
{
    char *tj, *cj;
    size_t tl, cl;
    if (zf_read_v3_tokenizer(src, &tj, &tl, &cj, &cl)) {
        fprintf(stderr, "cannot read the tokenizer files under %s\n", src);
        return NULL;
    }
    dsv3__err err = {{0}};
    void *blob;
    size_t bl;
    int32_t kind;
    double t0 = dsv3__now();
    int rc = dsv3__tokenizer_blob_from_hf(a, tj, tl, cj, cl, &blob, &bl, &kind, &err);
    double t1 = dsv3__now();
    free(tj);
    free(cj);
    dsv3_tokenizer *t = NULL;
    if (!rc)
        rc = dsv3__tokenizer_new(a, blob, bl, &t, &err);
    double t2 = dsv3__now();
    dsv3__free(a, blob);
    if (rc) {
        fprintf(stderr, "tokenizer: %s (%s)\n", err.msg, dsv3_err_name(rc));
        return NULL;
    }
    fprintf(stderr, "blob %zu bytes: from_hf %.3f s, new %.3f s\n", bl, t1 - t0, t2 - t1);
    return t;
}

int main(int argc, char **argv)
{
    const char *src = DSV3_SOURCE_DIR, *ids_text = NULL, *file = NULL;
    int reps = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-s") && i + 1 < argc)
            src = argv[++i];
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--ids") && i + 1 < argc)
            ids_text = argv[++i];
        else
            file = argv[i];
    }
    if (!ids_text && !file) {
        fprintf(stderr, "usage: bench_tokenizer [-s SRC_DIR] [-n REPS] FILE | --ids TEXT\n");
        return 2;
    }
    dsv3__alloc a;
    dsv3__alloc_init(&a, NULL);
    dsv3_tokenizer *t = load(src, &a);
    if (!t)
        return 1;
    size_t len = 0;
    char *text = ids_text ? strdup(ids_text) : zf_read(file, &len);
    if (!text) {
        fprintf(stderr, "cannot read %s\n", file);
        return 1;
    }
    if (ids_text)
        len = strlen(text);
    size_t cap = len + 16, n = 0;
    int32_t *ids = malloc(cap * sizeof *ids);
    dsv3__err err = {{0}};
    double best = 1e30;
    for (int r = 0; r < (ids_text ? 1 : reps); r++) {
        double t0 = dsv3__now();
        int rc = dsv3__tokenizer_encode(t, text, len, 0, ids, cap, &n, &err);
        double dt = dsv3__now() - t0;
        if (rc) {
            fprintf(stderr, "encode: %s\n", err.msg);
            return 1;
        }
        best = dt < best ? dt : best;
    }
    if (ids_text) {
        for (size_t i = 0; i < n; i++)
            printf("%s%d", i ? "," : "", (int)ids[i]);
        printf("\n");
    } else {
        printf("%zu bytes -> %zu tokens; best of %d: %.3f s, %.2f MB/s (%.2f bytes/token)\n",
               len, n, reps, best, (double)len / best / 1e6, (double)len / (double)n);
    }
    free(ids);
    free(text);
    dsv3__tokenizer_free(t);
    return 0;
}
