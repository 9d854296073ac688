/*
 * synth_main.c - dsv3-synth: write a synthetic checkpoint from a config.json
 * (the recipe of tests/reference/README.md; same bytes as synth.py).
 *
 *   dsv3-synth CONFIG.json {bf16|fp8} OUT_DIR [--files N] [--seed S]
 *
 * Creates OUT_DIR if needed and prints the weights hash.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "synth.h"

static int usage(void)
{
    fprintf(stderr, "usage: dsv3-synth CONFIG.json {bf16|fp8} OUT_DIR [--files N] [--seed S]\n");
    return 2;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    const char *pos[3];
    int n_pos = 0, n_files = 0;
    uint64_t seed = SYNTH_DEFAULT_SEED;
    for (int i = 1; i < argc; i++) {
        char *end = NULL;
        if (!strcmp(argv[i], "--files") && i + 1 < argc) {
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 99999)
                return usage();
            n_files = (int)v;
        } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
            errno = 0;
            seed = strtoull(argv[++i], &end, 0);
            if (*end || errno)
                return usage();
        } else if (argv[i][0] == '-' || n_pos == 3) {
            return usage();
        } else {
            pos[n_pos++] = argv[i];
        }
    }
    if (n_pos != 3)
        return usage();
    if (mkdir(pos[2], 0777) != 0 && errno != EEXIST) {
        fprintf(stderr, "dsv3-synth: cannot create %s: %s\n", pos[2], strerror(errno));
        return 1;
    }
    char err[512] = "";
    synth_info info;
    double t0 = now();
    if (synth_write(pos[0], pos[1], seed, pos[2], n_files, &info, err, sizeof err) != 0) {
        fprintf(stderr, "dsv3-synth: %s\n", err);
        return 1;
    }
    printf("%lld tensors, %lld parameters, %llu bytes, weights hash 0x%016llx (%.2f s)\n",
           (long long)info.n_tensors, (long long)info.n_params,
           (unsigned long long)info.n_bytes, (unsigned long long)info.hash, now() - t0);
    return 0;
}
