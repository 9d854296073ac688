/*
 * cuda_runtime_api.h (test harness) - the part of the CUDA runtime API that
 * the CUDA backend uses, implemented on the CPU by emu.cpp so that the
 * backend and its kernels can run, deterministically, on machines without
 * a GPU. Device memory is host memory; streams run their work at once.
 * Only for tests: it shadows the real header when tests/cudaemu is first
 * on the include path.
 * SPDX-License-Identifier: MIT
 */
#ifndef DSV3_CUDAEMU_RUNTIME_API_H
#define DSV3_CUDAEMU_RUNTIME_API_H

#include <stddef.h>
#include <stdint.h>

/* The real runtime may be linked into the same program: other names. */
#define cudaGetErrorString dsv3emu_cudaGetErrorString
#define cudaGetLastError dsv3emu_cudaGetLastError
#define cudaPeekAtLastError dsv3emu_cudaPeekAtLastError
#define cudaGetDeviceCount dsv3emu_cudaGetDeviceCount
#define cudaGetDeviceProperties dsv3emu_cudaGetDeviceProperties
#define cudaDeviceGetAttribute dsv3emu_cudaDeviceGetAttribute
#define cudaSetDevice dsv3emu_cudaSetDevice
#define cudaMemGetInfo dsv3emu_cudaMemGetInfo
#define cudaStreamCreateWithFlags dsv3emu_cudaStreamCreateWithFlags
#define cudaStreamDestroy dsv3emu_cudaStreamDestroy
#define cudaStreamSynchronize dsv3emu_cudaStreamSynchronize
#define cudaDeviceSynchronize dsv3emu_cudaDeviceSynchronize
#define cudaMalloc dsv3emu_cudaMalloc
#define cudaFree dsv3emu_cudaFree
#define cudaMemcpyAsync dsv3emu_cudaMemcpyAsync
#define cudaMemcpy2DAsync dsv3emu_cudaMemcpy2DAsync
#define cudaMemsetAsync dsv3emu_cudaMemsetAsync

#ifdef __cplusplus
extern "C" {
#endif

typedef enum cudaError {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInvalidDevice = 101,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidDeviceFunction = 98,
    cudaErrorLaunchFailure = 719
} cudaError_t;

typedef struct CUstream_st *cudaStream_t;

enum cudaMemcpyKind {
    cudaMemcpyHostToHost = 0,
    cudaMemcpyHostToDevice = 1,
    cudaMemcpyDeviceToHost = 2,
    cudaMemcpyDeviceToDevice = 3,
    cudaMemcpyDefault = 4
};

enum cudaDeviceAttr { cudaDevAttrMultiProcessorCount = 16 };

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

#define cudaStreamNonBlocking 0x01

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor;
    int multiProcessorCount;
};

struct cudaFuncAttributes {
    size_t sharedSizeBytes;
    int maxThreadsPerBlock;
    int numRegs;
};

const char *cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError(void);
cudaError_t cudaPeekAtLastError(void);
cudaError_t cudaGetDeviceCount(int *n);
cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device);
cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);
cudaError_t cudaDeviceSynchronize(void);
cudaError_t cudaMalloc(void **p, size_t n);
cudaError_t cudaFree(void *p);
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t s);
cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, enum cudaMemcpyKind k, cudaStream_t s);
cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s);

/* Harness controls (not CUDA): fail the Nth cudaMalloc from now (0: never);
 * bytes currently allocated; kernels launched so far. */
void dsv3emu_fail_malloc_at(long n);
size_t dsv3emu_bytes_allocated(void);
long dsv3emu_launches(void);

#ifdef __cplusplus
}
#endif

#endif /* DSV3_CUDAEMU_RUNTIME_API_H */
