/* SPDX-License-Identifier: MIT */
/* threads.c — one persistent worker pool for the whole library.
 *
 * attn__parallel_for hands out task indices from an atomic counter; the
 * calling thread works too. Workers sleep on a condition variable between
 * calls. Task-to-thread assignment is dynamic, so kernels make every task
 * write only memory it owns: results are then independent of thread count.
 * attn_threads_release stops and joins the workers; the next parallel call
 * spawns them again. */
#include "core/core.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#define MAX_THREADS 256

typedef struct pool {
    pthread_mutex_t mu;        /* guards generation, job fields, and worker sleep */
    pthread_cond_t wake;       /* workers wait here for a new generation */
    pthread_cond_t done;       /* caller waits here for active == 0 */
    pthread_mutex_t busy;      /* held by the caller of a running parallel_for */
    int nworkers;              /* spawned worker threads (threads - 1) */
    uint64_t generation;
    /* current job */
    attn_task_fn fn;
    void *ctx;
    int64_t ntasks;
    int want;                  /* workers that take part in this job */
    _Atomic int64_t next;
    int active;                /* workers still running this job (under mu) */
    int quit;                  /* attn_threads_release: workers exit (under mu) */
} pool;

static pool g_pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                      PTHREAD_MUTEX_INITIALIZER, 0, 0, NULL, NULL, 0, 0, 0, 0, 0};
static pthread_once_t g_threads_once = PTHREAD_ONCE_INIT;
static _Atomic int g_num_threads = 0;

static void run_tasks(pool *p, int tid) {
    for (;;) {
        int64_t t = atomic_fetch_add_explicit(&p->next, 1, memory_order_relaxed);
        if (t >= p->ntasks) break;
        p->fn(p->ctx, t, tid);
    }
}

typedef struct { int index; } worker_arg;
static worker_arg g_args[MAX_THREADS];
static pthread_t g_workers[MAX_THREADS]; /* [1, nworkers] joinable (attn_threads_release) */

static void *worker_main(void *arg) {
    int index = ((worker_arg *)arg)->index; /* worker index, 1-based tid */
    pool *p = &g_pool;
    uint64_t seen = 0;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (p->generation == seen && !p->quit) pthread_cond_wait(&p->wake, &p->mu);
        if (p->quit) break;
        seen = p->generation;
        if (index > p->want) continue; /* not needed for this job */
        pthread_mutex_unlock(&p->mu);
        run_tasks(p, index);
        pthread_mutex_lock(&p->mu);
        if (--p->active == 0) pthread_cond_signal(&p->done);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static void init_threads(void) {
    int n = 0;
    const char *env = getenv("ATTN_NUM_THREADS");
    if (env && *env) n = atoi(env);
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 0 ? (int)c : 1;
    }
    if (n > MAX_THREADS) n = MAX_THREADS;
    atomic_store(&g_num_threads, n);
}

int attn_get_num_threads(void) {
    pthread_once(&g_threads_once, init_threads);
    return atomic_load(&g_num_threads);
}

attn_status attn_set_num_threads(int n) {
    pthread_once(&g_threads_once, init_threads);
    if (n < 1 || n > MAX_THREADS)
        return attn__fail(ATTN_ERR_OPTION, "attn_set_num_threads: n = %d, must be in [1, %d]", n, MAX_THREADS);
    atomic_store(&g_num_threads, n);
    return ATTN_OK;
}

int attn__resolve_threads(int requested) {
    int n = requested > 0 ? requested : attn_get_num_threads();
    if (n > MAX_THREADS) n = MAX_THREADS;
    return n < 1 ? 1 : n;
}

/* Spawn workers up to `total - 1` (never shrinks). Called with busy held. */
static void ensure_workers(pool *p, int total) {
    while (p->nworkers < total - 1) {
        int idx = p->nworkers + 1;
        g_args[idx].index = idx;
        if (pthread_create(&g_workers[idx], NULL, worker_main, &g_args[idx]) != 0) break;
        p->nworkers++;
    }
}

void attn__parallel_for(int64_t ntasks, int nthreads, attn_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    int n = attn__resolve_threads(nthreads);
    if ((int64_t)n > ntasks) n = (int)ntasks;
    pool *p = &g_pool;
    if (n <= 1 || pthread_mutex_trylock(&p->busy) != 0) {
        /* serial (or pool busy with another caller's job) */
        for (int64_t t = 0; t < ntasks; t++) fn(ctx, t, 0);
        return;
    }
    ensure_workers(p, n);
    if (p->nworkers < n - 1) n = p->nworkers + 1;
    pthread_mutex_lock(&p->mu);
    p->fn = fn;
    p->ctx = ctx;
    p->ntasks = ntasks;
    p->want = n - 1;
    atomic_store_explicit(&p->next, 0, memory_order_relaxed);
    p->active = n - 1;
    p->generation++;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);

    run_tasks(p, 0);

    pthread_mutex_lock(&p->mu);
    while (p->active > 0) pthread_cond_wait(&p->done, &p->mu);
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->busy);
}

void attn_threads_release(void) {
    pool *p = &g_pool;
    pthread_mutex_lock(&p->busy); /* after a running job; later callers run serially meanwhile */
    pthread_mutex_lock(&p->mu);
    p->quit = 1;
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i <= p->nworkers; i++) pthread_join(g_workers[i], NULL);
    pthread_mutex_lock(&p->mu);
    p->nworkers = 0;
    p->quit = 0;
    pthread_mutex_unlock(&p->mu);
    pthread_mutex_unlock(&p->busy);
}
