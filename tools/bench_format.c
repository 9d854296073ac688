/*
 * bench_format.c - bench-format: compression ratio and load throughput of
 * the model format on a Hugging Face checkpoint (e.g. the random-weight
 * mini config written by build/tests/mkckpt). Converts the checkpoint three
 * ways (zstd with byte planes, zstd without, raw), then loads each several
 * times with a warm page cache and compares with reading the raw shard bytes.
 * Not a test: a measurement tool.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "convert/convert.h"
#include "model/model.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int usage(void)
{
    fprintf(stderr, "usage: bench-format HF_DIR WORK_DIR [-t THREADS] [-n REPEATS] [-l LEVEL]\n"
                    "Converts HF_DIR into WORK_DIR/{planes,plain,raw} (removed first) and\n"
                    "measures compression ratio and load speed.\n");
    return 2;
}

typedef struct variant {
    const char *name;
    int level;
    bool planes;
    double convert_s;
    dsv3__model_summary sum;
} variant;

static int convert(const char *hf, const char *out, variant *v, int threads)
{
    char cmd[16384], err[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", out);
    if (system(cmd) != 0)
        return 1;
    dsv3_convert_params p;
    dsv3_convert_params_init(&p, sizeof p);
    p.level = v->level;
    p.n_threads = threads;
    p.log_level = DSV3_LOG_NONE;
    dsv3__convert_opts o = {!v->planes};
    double t0 = now();
    int rc = dsv3__convert(hf, out, &p, &o, err, sizeof err);
    v->convert_s = now() - t0;
    if (rc) {
        fprintf(stderr, "bench-format: convert %s: %s\n", v->name, err);
        return 1;
    }
    if (dsv3__model_summary_get(out, NULL, &v->sum, err, sizeof err)) {
        fprintf(stderr, "bench-format: %s: %s\n", out, err);
        return 1;
    }
    return 0;
}

/* Best of n loads: seconds. */
static double load_best(const char *dir, int threads, uint32_t flags, int n, uint64_t *bytes)
{
    double best = 1e30;
    for (int i = 0; i < n; i++) {
        dsv3_model_params p;
        dsv3_model_params_init(&p, sizeof p);
        p.backend = DSV3_BACKEND_CPU;
        p.n_threads = threads;
        p.flags = flags;
        dsv3_model *m = NULL;
        double t0 = now();
        int rc = dsv3_model_load(dir, &p, &m);
        double dt = now() - t0;
        if (rc) {
            fprintf(stderr, "bench-format: load %s: %s\n", dir, dsv3_model_errmsg(m));
            dsv3_model_free(m);
            return -1;
        }
        dsv3_model_info in = {.struct_size = sizeof in};
        dsv3_model_info_get(m, &in);
        *bytes = in.bytes_in_memory;
        dsv3_model_free(m);
        if (dt < best)
            best = dt;
    }
    return best;
}

/* Best of n passes of read() over every shard of dir: into one small reused
 * buffer (fresh = false), or into newly allocated memory for all the bytes,
 * as a loader without compression would (fresh = true). */
static double read_best(const char *dir, int n, bool fresh, uint64_t total_size, uint64_t *bytes)
{
    static char small[4 << 20];
    double best = 1e30;
    for (int i = 0; i < n; i++) {
        char *mem = fresh ? malloc(total_size) : NULL;
        if (fresh && !mem)
            return -1;
        DIR *d = opendir(dir);
        if (!d)
            return -1;
        uint64_t total = 0;
        double t0 = now();
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strstr(e->d_name, ".dsv3s"))
                continue;
            char path[8192];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            int fd = open(path, O_RDONLY);
            ssize_t k;
            while (fd >= 0 && total < (fresh ? total_size : UINT64_MAX) &&
                   (k = read(fd, fresh ? mem + total : small,
                             fresh ? (size_t)(total_size - total) : sizeof small)) > 0)
                total += (uint64_t)k;
            if (fd >= 0)
                close(fd);
        }
        closedir(d);
        double dt = now() - t0;
        free(mem);
        *bytes = total;
        if (dt < best)
            best = dt;
    }
    return best;
}

int main(int argc, char **argv)
{
    const char *hf = NULL, *work = NULL;
    int threads = 0, repeats = 3, level = 3;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-n") && i + 1 < argc)
            repeats = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-l") && i + 1 < argc)
            level = atoi(argv[++i]);
        else if (argv[i][0] != '-' && !hf)
            hf = argv[i];
        else if (argv[i][0] != '-' && !work)
            work = argv[i];
        else
            return usage();
    }
    if (!hf || !work || repeats < 1)
        return usage();
    variant v[3] = {{.name = "zstd+planes", .level = level, .planes = true},
                    {.name = "zstd", .level = level},
                    {.name = "raw", .level = -1}};
    mkdir(work, 0755);
    char dirs[3][4096];
    for (int k = 0; k < 3; k++) {
        snprintf(dirs[k], sizeof dirs[k], "%s/%s", work, k == 0 ? "planes" : k == 1 ? "plain" : "raw");
        if (convert(hf, dirs[k], &v[k], threads))
            return 1;
    }
    printf("checkpoint %s, %d threads (0 = all CPUs), best of %d loads, zstd level %d\n\n", hf,
           threads, repeats, level);
    printf("%-12s %14s %14s %8s %10s\n", "variant", "raw bytes", "stored bytes", "ratio",
           "convert s");
    for (int k = 0; k < 3; k++)
        printf("%-12s %14llu %14llu %8.4f %10.2f\n", v[k].name,
               (unsigned long long)v[k].sum.raw_bytes, (unsigned long long)v[k].sum.stored_bytes,
               (double)v[k].sum.raw_bytes / (double)v[k].sum.stored_bytes, v[k].convert_s);
    printf("\n%-34s %10s %10s\n", "load", "seconds", "GB/s");
    const struct {
        int k;
        uint32_t flags;
        const char *what;
    } runs[] = {
        {0, 0, "zstd+planes"},
        {1, 0, "zstd"},
        {2, 0, "raw, mapped, checksums"},
        {2, DSV3_MODEL_NO_MMAP, "raw, copied, checksums"},
        {2, DSV3_MODEL_NO_MMAP | DSV3_MODEL_SKIP_CHECKSUMS, "raw, copied, no checksums"},
        {0, DSV3_MODEL_SKIP_CHECKSUMS, "zstd+planes, no xxh64 check"},
    };
    for (size_t r = 0; r < sizeof runs / sizeof runs[0]; r++) {
        uint64_t bytes = 0;
        double s = load_best(dirs[runs[r].k], threads, runs[r].flags, repeats, &bytes);
        if (s < 0)
            return 1;
        printf("%-34s %10.3f %10.2f\n", runs[r].what, s, (double)bytes / s / 1e9);
    }
    uint64_t bytes = 0, size = v[2].sum.info.bytes_on_disk;
    double s = read_best(dirs[2], repeats, false, size, &bytes);
    printf("%-34s %10.3f %10.2f\n", "read() raw shards, 4 MiB buffer", s, (double)bytes / s / 1e9);
    s = read_best(dirs[2], repeats, true, size, &bytes);
    printf("%-34s %10.3f %10.2f\n", "read() raw shards into new memory", s, (double)bytes / s / 1e9);
    return 0;
}
