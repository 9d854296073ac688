/*
 * emu.cpp (test harness) - runs CUDA kernels on the CPU, and the runtime API
 * calls of the CUDA backend against host memory.
 *
 * A launch checks its configuration like the GPU would (block size, grid
 * limits, dynamic shared memory above 48 KiB only after the kernel opted
 * in), then runs its blocks one after the other. A block's threads are
 * fibers scheduled round-robin on the calling thread (started with
 * makecontext/setcontext, switched with _setjmp/_longjmp, which costs no
 * system call); a fiber
 * runs until a barrier (__syncthreads, __syncwarp) or a warp shuffle, which
 * releases when every live thread of the block (warp) has arrived. Odd
 * blocks schedule their threads in reverse order, so code that forgets a
 * barrier reads data that is not there yet. Dynamic shared memory starts
 * filled with NaN bytes. A barrier nobody can complete is reported as a
 * launch failure.
 * SPDX-License-Identifier: MIT
 */
#undef _FORTIFY_SOURCE /* longjmp between fiber stacks is intended here */
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include <map>
#include <vector>

#include "cuda_runtime.h"

#if defined(__SANITIZE_ADDRESS__)
#define EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define EMU_ASAN 1
#endif
#endif
#ifdef EMU_ASAN
#include <sanitizer/common_interface_defs.h>
#endif

namespace {

const size_t STACK = 256 * 1024;
const size_t SMEM_DEFAULT = 48 * 1024, SMEM_MAX = 227 * 1024;

enum { RUN, WAIT_BLOCK, WAIT_WARP, DONE };

/* A fiber stack and where its fiber is suspended. Fibers outlive blocks:
 * after a thread's body returns, its fiber waits at the top of its loop
 * and runs the same thread slot of the next block. */
struct slot {
    char *stack;
    jmp_buf jb;
    bool started;     /* a fiber lives on this stack */
    bool idle;        /* ... and waits for the next body */
    void *fake_stack; /* ASan bookkeeping */
};

struct fiber {
    dsv3emu::thread_ids ids;
    int state;
    unsigned wait_gen;
    int warp, lane, slot;
};

struct block_state {
    std::vector<fiber> f;
    int live, arrived;
    unsigned gen;
    std::vector<int> wlive, warrived;
    std::vector<unsigned> wgen;
    std::vector<uint64_t> xch[2]; /* shuffle exchange per thread, double-buffered */
    bool reverse;                 /* scheduling order */
};

pthread_mutex_t emu_lock = PTHREAD_MUTEX_INITIALIZER;
std::vector<slot> slots;
struct stacks_owner {
    ~stacks_owner()
    {
        for (slot &s : slots)
            free(s.stack);
    }
} stacks_owner_; /* destroyed before slots */
block_state blk;
fiber *cur;
jmp_buf sched;
void (*cur_body)(void *);
void *cur_ctx;
std::vector<unsigned char> dyn;
std::map<const void *, int> max_dyn;
cudaError_t last_error = cudaSuccess;
long fail_malloc_at, n_mallocs, n_launches;
size_t allocated;
std::map<void *, size_t> allocations;
#ifdef EMU_ASAN
const void *sched_bottom;
size_t sched_size;
#endif

bool runnable(const fiber &f)
{
    return f.state == RUN || (f.state == WAIT_BLOCK && blk.gen != f.wait_gen) ||
           (f.state == WAIT_WARP && blk.wgen[f.warp] != f.wait_gen);
}

/* Suspend the running fiber: switch straight to the next fiber (in
 * scheduling order) that can run and has run before, or back to the
 * scheduler (always, under ASan, whose fiber bookkeeping wants one
 * partner). */
void to_sched(slot *sl)
{
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&sl->fake_stack, sched_bottom, sched_size);
#endif
    if (_setjmp(sl->jb) == 0) {
#ifndef EMU_ASAN
        int n = (int)blk.f.size(), pos = cur->ids.tid.x;
        int k = blk.reverse ? n - 1 - pos : pos;
        for (k = k + 1; k < n; k++) {
            fiber &g = blk.f[blk.reverse ? n - 1 - k : k];
            slot &gs = slots[g.slot];
            if (g.state != DONE && runnable(g) && gs.started) {
                g.state = RUN;
                cur = &g;
                _longjmp(gs.jb, 1);
            }
        }
#endif
        _longjmp(sched, 1);
    }
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(sl->fake_stack, &sched_bottom, &sched_size);
#endif
}

void thread_done(fiber *f)
{
    f->state = DONE;
    blk.live--;
    if (blk.arrived > 0 && blk.arrived == blk.live) {
        blk.arrived = 0;
        blk.gen++;
    }
    if (--blk.wlive[f->warp] > 0 && blk.warrived[f->warp] == blk.wlive[f->warp] &&
        blk.warrived[f->warp] > 0) {
        blk.warrived[f->warp] = 0;
        blk.wgen[f->warp]++;
    }
}

void entry()
{
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(NULL, &sched_bottom, &sched_size);
#endif
    for (;;) {
        cur_body(cur_ctx);
        fiber *f = cur;
        slot *sl = &slots[f->slot];
        thread_done(f);
        sl->idle = true;
        to_sched(sl);
        sl->idle = false;
    }
}

/* Switch to fiber f (start it, or resume it where it waits). */
void resume(fiber &f)
{
    slot &sl = slots[f.slot];
    cur = &f;
    void *save = NULL;
#ifdef EMU_ASAN
    __sanitizer_start_switch_fiber(&save, sl.stack, STACK);
#endif
    if (!_setjmp(sched)) {
        if (sl.started) {
            _longjmp(sl.jb, 1);
        } else {
            ucontext_t uc;
            sl.started = true;
            sl.idle = false;
            getcontext(&uc);
            uc.uc_stack.ss_sp = sl.stack;
            /* stack tops at different cache sets: the fibers take turns fast */
            uc.uc_stack.ss_size = STACK - 64 * (size_t)(f.slot % 61);
            uc.uc_link = NULL;
            makecontext(&uc, entry, 0);
            setcontext(&uc);
        }
    }
#ifdef EMU_ASAN
    __sanitizer_finish_switch_fiber(save, NULL, NULL);
#endif
    (void)save;
}

/* Run one block; false on a barrier deadlock. */
bool run_block(dim3 g, dim3 b, uint3 bid, bool reverse)
{
    int n = (int)b.x, nw = (n + 31) / 32;
    blk.f.resize(n);
    blk.live = n;
    blk.arrived = 0;
    blk.gen = 0;
    blk.wlive.assign(nw, 0);
    blk.warrived.assign(nw, 0);
    blk.wgen.assign(nw, 0);
    blk.xch[0].assign(n, 0);
    blk.xch[1].assign(n, 0);
    blk.reverse = reverse;
    if ((int)slots.size() < n)
        slots.resize(n, slot{});
    for (int i = 0; i < n; i++) {
        fiber &f = blk.f[i];
        if (!slots[i].stack)
            slots[i].stack = (char *)malloc(STACK);
        if (slots[i].started && !slots[i].idle)
            slots[i].started = false; /* left in a deadlocked block: start afresh */
        f.ids.tid = uint3{(unsigned)i, 0, 0};
        f.ids.bid = bid;
        f.ids.bdim = b;
        f.ids.gdim = g;
        f.state = RUN;
        f.wait_gen = 0;
        f.warp = i / 32;
        f.lane = i % 32;
        f.slot = i;
        blk.wlive[f.warp]++;
    }
    for (;;) {
        bool progressed = false, done = true;
        for (int k = 0; k < n; k++) {
            fiber &f = blk.f[reverse ? n - 1 - k : k];
            if (f.state == DONE)
                continue;
            done = false;
            if (!runnable(f))
                continue;
            f.state = RUN;
            resume(f);
            progressed = true;
        }
        if (done)
            return true;
        if (!progressed)
            return false;
    }
}

} /* namespace */

namespace dsv3emu {

const thread_ids &ids()
{
    return cur->ids;
}

void syncthreads()
{
    fiber *f = cur;
    f->wait_gen = blk.gen;
    if (++blk.arrived == blk.live) {
        blk.arrived = 0;
        blk.gen++;
        return;
    }
    f->state = WAIT_BLOCK;
    to_sched(&slots[f->slot]);
}

void syncwarp()
{
    fiber *f = cur;
    int w = f->warp;
    f->wait_gen = blk.wgen[w];
    if (++blk.warrived[w] == blk.wlive[w]) {
        blk.warrived[w] = 0;
        blk.wgen[w]++;
        return;
    }
    f->state = WAIT_WARP;
    to_sched(&slots[f->slot]);
}

/* One barrier per shuffle: the exchange buffer alternates with the parity
 * of the warp's barrier count, which all lanes of a shuffle share; a lane
 * writes a buffer again only two barriers later, when every lane has read. */
uint64_t shfl(uint64_t v, int mode, unsigned arg)
{
    fiber *f = cur;
    int i = (int)f->ids.tid.x, base = i - f->lane;
    std::vector<uint64_t> &x = blk.xch[blk.wgen[f->warp] & 1];
    x[i] = v;
    syncwarp();
    int src = mode == 0 ? (int)(f->lane ^ (int)arg) : f->lane - (int)arg;
    return (mode == 1 && src < 0) ? v : x[base + src];
}

void *dyn_smem()
{
    return dyn.data();
}

cudaError_t set_max_dyn_smem(const void *kernel, int bytes)
{
    if (bytes < 0 || (size_t)bytes > SMEM_MAX)
        return cudaErrorInvalidValue;
    max_dyn[kernel] = bytes;
    return cudaSuccess;
}

void run_grid(dim3 g, dim3 b, size_t smem, const void *kernel, void (*body)(void *), void *ctx)
{
    pthread_mutex_lock(&emu_lock);
    n_launches++;
    size_t smem_ok = max_dyn.count(kernel) ? (size_t)max_dyn[kernel] : SMEM_DEFAULT;
    if (b.x == 0 || b.x > 1024 || b.y != 1 || b.z != 1 || g.x == 0 || g.y == 0 || g.z == 0 ||
        g.y > 65535 || g.z > 65535 || g.x > 2147483647u || smem > smem_ok) {
        fprintf(stderr, "cudaemu: bad launch config grid (%u,%u,%u) block (%u,%u,%u) smem %zu\n",
                g.x, g.y, g.z, b.x, b.y, b.z, smem);
        last_error = cudaErrorInvalidConfiguration;
        pthread_mutex_unlock(&emu_lock);
        return;
    }
    dyn.assign(smem ? smem : 16, 0xff);
    cur_body = body;
    cur_ctx = ctx;
    uint64_t nb = (uint64_t)g.x * g.y * g.z, k = 0;
    for (unsigned z = 0; z < g.z; z++)
        for (unsigned y = 0; y < g.y; y++)
            for (unsigned x = 0; x < g.x; x++, k++) {
                memset(dyn.data(), 0xff, dyn.size());
                if (!run_block(g, b, uint3{x, y, z}, k & 1)) {
                    fprintf(stderr, "cudaemu: barrier deadlock in block (%u,%u,%u) of %llu\n", x, y,
                            z, (unsigned long long)nb);
                    last_error = cudaErrorLaunchFailure;
                    pthread_mutex_unlock(&emu_lock);
                    return;
                }
            }
    pthread_mutex_unlock(&emu_lock);
}

} /* namespace dsv3emu */

/* ---- runtime API ------------------------------------------------------------------ */

extern "C" {

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess:
        return "no error";
    case cudaErrorInvalidValue:
        return "invalid argument";
    case cudaErrorMemoryAllocation:
        return "out of memory";
    case cudaErrorInvalidConfiguration:
        return "invalid configuration argument";
    case cudaErrorNoDevice:
        return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
        return "invalid device ordinal";
    case cudaErrorInvalidDeviceFunction:
        return "invalid device function";
    default:
        return "unspecified launch failure";
    }
}

cudaError_t cudaGetLastError(void)
{
    pthread_mutex_lock(&emu_lock);
    cudaError_t e = last_error;
    last_error = cudaSuccess;
    pthread_mutex_unlock(&emu_lock);
    return e;
}

cudaError_t cudaPeekAtLastError(void)
{
    return last_error;
}

cudaError_t cudaGetDeviceCount(int *n)
{
    *n = 1;
    return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(struct cudaDeviceProp *p, int device)
{
    if (device != 0)
        return cudaErrorInvalidDevice;
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "cudaemu (CPU)");
    p->totalGlobalMem = (size_t)1 << 32;
    p->major = 9;
    p->minor = 0;
    p->multiProcessorCount = 4;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *v, enum cudaDeviceAttr a, int device)
{
    if (device != 0 || a != cudaDevAttrMultiProcessorCount)
        return cudaErrorInvalidValue;
    *v = 4;
    return cudaSuccess;
}

cudaError_t cudaSetDevice(int device)
{
    return device == 0 ? cudaSuccess : cudaErrorInvalidDevice;
}

cudaError_t cudaMemGetInfo(size_t *free_bytes, size_t *total_bytes)
{
    *total_bytes = (size_t)1 << 32;
    *free_bytes = *total_bytes - allocated;
    return cudaSuccess;
}

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *s, unsigned flags)
{
    (void)flags;
    *s = (cudaStream_t)malloc(1);
    return *s ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaStreamDestroy(cudaStream_t s)
{
    free(s);
    return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t s)
{
    (void)s;
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    return cudaSuccess;
}

cudaError_t cudaMalloc(void **p, size_t n)
{
    pthread_mutex_lock(&emu_lock);
    n_mallocs++;
    bool fail = fail_malloc_at > 0 && --fail_malloc_at == 0;
    void *q = fail ? NULL : aligned_alloc(256, (n + 255) & ~(size_t)255);
    if (q) {
        memset(q, 0xff, n); /* device memory is not cleared */
        allocations[q] = n;
        allocated += n;
    }
    *p = q;
    if (!q)
        last_error = cudaErrorMemoryAllocation;
    pthread_mutex_unlock(&emu_lock);
    return q ? cudaSuccess : cudaErrorMemoryAllocation;
}

cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    pthread_mutex_lock(&emu_lock);
    auto it = allocations.find(p);
    cudaError_t e = cudaErrorInvalidValue;
    if (it != allocations.end()) {
        allocated -= it->second;
        allocations.erase(it);
        free(p);
        e = cudaSuccess;
    }
    pthread_mutex_unlock(&emu_lock);
    return e;
}

cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t n, enum cudaMemcpyKind k,
                            cudaStream_t s)
{
    (void)k, (void)s;
    if (n)
        memmove(dst, src, n);
    return cudaSuccess;
}

cudaError_t cudaMemcpy2DAsync(void *dst, size_t dpitch, const void *src, size_t spitch,
                              size_t width, size_t height, enum cudaMemcpyKind k, cudaStream_t s)
{
    (void)k, (void)s;
    if (width > dpitch || width > spitch)
        return cudaErrorInvalidValue;
    for (size_t r = 0; r < height; r++)
        memmove((char *)dst + r * dpitch, (const char *)src + r * spitch, width);
    return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void *p, int v, size_t n, cudaStream_t s)
{
    (void)s;
    memset(p, v, n);
    return cudaSuccess;
}

void dsv3emu_fail_malloc_at(long n)
{
    pthread_mutex_lock(&emu_lock);
    fail_malloc_at = n;
    pthread_mutex_unlock(&emu_lock);
}

size_t dsv3emu_bytes_allocated(void)
{
    return allocated;
}

long dsv3emu_launches(void)
{
    return n_launches;
}

} /* extern "C" */
