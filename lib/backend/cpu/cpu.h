/*
 * cpu.h - the CPU backend: host buffers, CPU feature detection, kernels.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_BACKEND_CPU_H
#define DSV3_BACKEND_CPU_H

#include "../backend.h"

/* CPU features detected at run time (immutable after the first call). */
enum dsv3_cpu_feature {
    DSV3_CPU_AVX2 = 1u << 0,
    DSV3_CPU_FMA = 1u << 1,
    DSV3_CPU_F16C = 1u << 2,
    DSV3_CPU_AVX512F = 1u << 3,
    DSV3_CPU_AVX512BW = 1u << 4,
    DSV3_CPU_NEON = 1u << 5
};

uint32_t dsv3__cpu_features(void);

/* The CPU backend's per-instance state. */
typedef struct dsv3_cpu_state {
    dsv3__alloc alloc;
    dsv3__log log;
    int32_t n_threads;
    uint32_t features;
} dsv3_cpu_state;

#endif /* DSV3_BACKEND_CPU_H */
