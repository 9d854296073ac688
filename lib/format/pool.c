/*
 * pool.c - a small pool of threads for loading and converting: the caller
 * runs jobs too and reports progress between them.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdatomic.h>
#include <time.h>

#include "format.h"

struct dsv3__pool {
    dsv3__alloc alloc;
    pthread_mutex_t lock;
    pthread_cond_t wake; /* a new run, or shutdown */
    pthread_cond_t done; /* a worker finished its part of a run */
    pthread_t *threads;
    int n_threads;       /* threads created (excluding the caller) */
    uint64_t generation; /* bumped for every run */
    bool shutdown;
    int busy;            /* workers still inside the current run */
    /* the current run */
    dsv3__pool_fn fn;
    void *arg;
    size_t n_jobs;
    atomic_size_t next;
    atomic_int rc;
};

static void run_jobs(dsv3__pool *p, int worker, dsv3__pool_tick tick, void *tick_arg,
                     double *last_tick)
{
    for (;;) {
        if (atomic_load_explicit(&p->rc, memory_order_relaxed) != DSV3_OK)
            return;
        size_t j = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (j >= p->n_jobs)
            return;
        int rc = p->fn(p->arg, worker, j);
        if (rc != DSV3_OK) {
            int ok = DSV3_OK;
            atomic_compare_exchange_strong(&p->rc, &ok, rc);
            return;
        }
        if (tick && dsv3__now() - *last_tick >= 0.05) {
            *last_tick = dsv3__now();
            if (tick(tick_arg)) {
                int ok = DSV3_OK;
                atomic_compare_exchange_strong(&p->rc, &ok, DSV3_E_CANCELED);
                return;
            }
        }
    }
}

typedef struct worker_arg {
    dsv3__pool *p;
    int index;
} worker_arg;

static void *worker_main(void *v)
{
    dsv3__pool *p = ((worker_arg *)v)->p;
    int index = ((worker_arg *)v)->index;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->shutdown && p->generation == seen)
            pthread_cond_wait(&p->wake, &p->lock);
        if (p->shutdown)
            break;
        seen = p->generation;
        pthread_mutex_unlock(&p->lock);
        run_jobs(p, index, NULL, NULL, NULL);
        pthread_mutex_lock(&p->lock);
        if (--p->busy == 0)
            pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

/* Worker arguments live right after the thread array. */
int dsv3__pool_new(const dsv3__alloc *a, int n_threads, dsv3__pool **out)
{
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    dsv3__pool *p = dsv3__calloc(a, 1, sizeof *p);
    if (!p)
        return DSV3_E_NOMEM;
    p->alloc = *a;
    int extra = n_threads - 1;
    if (extra) {
        p->threads = dsv3__calloc(a, (size_t)extra, sizeof(pthread_t) + sizeof(worker_arg));
        if (!p->threads) {
            dsv3__free(a, p);
            return DSV3_E_NOMEM;
        }
    }
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done, NULL);
    worker_arg *wa = extra ? (worker_arg *)(void *)(p->threads + extra) : NULL;
    for (int i = 0; i < extra; i++) {
        wa[i].p = p;
        wa[i].index = i + 1;
        if (pthread_create(&p->threads[i], NULL, worker_main, &wa[i]) != 0)
            break; /* run with the threads we have */
        p->n_threads++;
    }
    *out = p;
    return DSV3_OK;
}

int dsv3__pool_size(const dsv3__pool *p)
{
    return p->n_threads + 1;
}

int dsv3__pool_run(dsv3__pool *p, dsv3__pool_fn fn, void *arg, size_t n_jobs,
                   dsv3__pool_tick tick, void *tick_arg)
{
    pthread_mutex_lock(&p->lock);
    p->fn = fn;
    p->arg = arg;
    p->n_jobs = n_jobs;
    atomic_store(&p->next, 0);
    atomic_store(&p->rc, DSV3_OK);
    p->busy = p->n_threads;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);

    double last = 0; /* the first tick comes after the caller's first job */
    run_jobs(p, 0, tick, tick_arg, &last);

    pthread_mutex_lock(&p->lock);
    while (p->busy > 0) {
        if (!tick) {
            pthread_cond_wait(&p->done, &p->lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        if (pthread_cond_timedwait(&p->done, &p->lock, &ts) == ETIMEDOUT) {
            pthread_mutex_unlock(&p->lock);
            if (tick(tick_arg)) {
                int ok = DSV3_OK;
                atomic_compare_exchange_strong(&p->rc, &ok, DSV3_E_CANCELED);
            }
            pthread_mutex_lock(&p->lock);
        }
    }
    pthread_mutex_unlock(&p->lock);
    return atomic_load(&p->rc);
}

void dsv3__pool_free(dsv3__pool *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->shutdown = true;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->n_threads; i++)
        pthread_join(p->threads[i], NULL);
    pthread_cond_destroy(&p->done);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    dsv3__alloc a = p->alloc;
    dsv3__free(&a, p->threads);
    dsv3__free(&a, p);
}
