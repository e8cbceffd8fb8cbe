/*
 * fs_pool.c -- the thread pool of fs_pool.h.
 *
 * A run's tasks are cut into one contiguous range per participant (the caller and the helpers allowed in), so that
 * each thread works through its own part of memory: its pages fault in parallel with the other threads' (a fresh
 * 64 MB output costs ~9 ms of kernel zeroing here, paid once, not twice, when two threads take it at the same
 * time), and its rows stay in its caches. A participant out of work steals tasks from the back of the other
 * ranges, so the caller finishes the run alone when a helper never starts.
 *
 * Each range is one 64-bit word:  generation (24 bits) | next task (20 bits) | end (20 bits).
 * A claim is a compare-and-swap of that word (next + 1 from the front, end - 1 from the back) that expects the
 * run's generation, so a helper that wakes up after its run is over can never claim a task of the next run. The
 * run is published through a ticket (generation, number of ranges) written after the ranges and the run's
 * function and context (release); those are read only after a successful claim (acquire) and are not rewritten
 * until every claimed task is done, so a helper that holds a task always sees the right ones.
 *
 * Waiting, both ways, spins briefly and then sleeps on a condition variable. A sleeping caller matters more than
 * it seems: when a helper was preempted in the middle of a task (its core taken by another library's spinning
 * thread), the caller's core going idle is what lets the scheduler move that helper over and finish.
 */
#include "fs_pool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <time.h>

/* How long an idle helper keeps polling for the next run before it sleeps. A polling helper joins a run within
   ~0.1 us; a sleeping one only after a wake-up that can take from microseconds to milliseconds (in a VM whose idle
   vCPU the host has parked, measured on 2 vCPUs of a Xeon of family 6 model 207). 300 us keeps a helper awake
   between the calls of a softmax loop; the polling yields the core every ~32 spins, so any other thread that is
   ready to run (numpy's matmul right after our call) takes the core at once. Longer or shorter (50 us, 1 ms)
   measured the same on a GPT-2-shaped numpy forward pass; see benchmarks/bench_threads.py. */
#ifndef FS_POOL_SPIN_US
#define FS_POOL_SPIN_US 300
#endif
/* How long the caller polls for helpers still inside a task before it sleeps. */
#define FS_POOL_CALLER_SPIN_US 20
#define FS_POOL_MAX_HELPERS 63

#define IDX_BITS 20
#define FS_POOL_MAX_TASKS ((ptrdiff_t)1 << IDX_BITS)
#define IDX_MASK ((UINT64_C(1) << IDX_BITS) - 1)
#define GEN_SHIFT (2 * IDX_BITS)
#define GEN_MASK ((UINT64_C(1) << (64 - GEN_SHIFT)) - 1)
#define W_GEN(w) ((w) >> GEN_SHIFT)
#define W_NEXT(w) (((w) >> IDX_BITS) & IDX_MASK)
#define W_END(w) ((w) & IDX_MASK)

static _Atomic uint64_t g_ticket;                          /* generation << GEN_SHIFT | number of ranges */
static _Atomic uint64_t g_range[FS_POOL_MAX_HELPERS + 1];  /* range 0: the caller's; range i + 1: helper i's */
static fs_task_fn g_fn;
static void *g_ctx;
static _Atomic long long g_helper_done;      /* tasks of the current run finished by helpers */

static pthread_mutex_t g_run_lock = PTHREAD_MUTEX_INITIALIZER;      /* one run at a time */
static pthread_mutex_t g_sleep_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t g_wake_helpers = PTHREAD_COND_INITIALIZER;
static pthread_cond_t g_wake_caller = PTHREAD_COND_INITIALIZER;
static _Atomic int g_sleeping_helpers;
static _Atomic int g_caller_sleeping;

static int g_helpers;                        /* started; written under g_run_lock */
static uint64_t g_start_gen[FS_POOL_MAX_HELPERS];
static _Atomic int g_spin_us = FS_POOL_SPIN_US;
static _Atomic long long g_solo_runs, g_helped_runs;
static pthread_once_t g_atfork_once = PTHREAD_ONCE_INIT;

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static inline double now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e6 + t.tv_nsec * 1e-3;
}

/* Claim one task of run `gen` from range r: from the front (own range) or the back (stealing); -1 when empty. */
static ptrdiff_t claim(int r, uint64_t gen, int from_back)
{
    uint64_t w = atomic_load(&g_range[r]);
    for (;;) {
        if (W_GEN(w) != gen || W_NEXT(w) >= W_END(w)) return -1;
        uint64_t next = from_back ? w - 1 : w + (UINT64_C(1) << IDX_BITS);
        if (atomic_compare_exchange_weak(&g_range[r], &w, next))
            return (ptrdiff_t)(from_back ? W_END(w) - 1 : W_NEXT(w));
    }
}

/* Run tasks of run `gen` (with `ranges` ranges) as participant `own`: its own range front to back, then the others'
   from their backs; return how many this thread ran. */
static long long work(uint64_t gen, int ranges, int own)
{
    long long ran = 0;
    ptrdiff_t task;
    while ((task = claim(own, gen, 0)) >= 0) {
        g_fn(g_ctx, task);
        ran++;
    }
    for (int k = 1; k < ranges; k++) {
        int victim = (own + k) % ranges;
        while ((task = claim(victim, gen, 1)) >= 0) {
            g_fn(g_ctx, task);
            ran++;
        }
    }
    return ran;
}

/* The ticket of a run newer than generation `seen`: poll for a while (yielding the core to anyone who wants it
   every ~32 spins), then sleep until a caller wakes us. */
static uint64_t wait_for_run(uint64_t seen)
{
    uint64_t t;
    double give_up = now_us() + atomic_load_explicit(&g_spin_us, memory_order_relaxed);
    for (int k = 1;; k++) {
        t = atomic_load(&g_ticket);
        if (W_GEN(t) != seen) return t;
        cpu_relax();
        if ((k & 31) == 0) {
            if (now_us() > give_up) break;
            sched_yield();
        }
    }
    pthread_mutex_lock(&g_sleep_lock);
    atomic_fetch_add(&g_sleeping_helpers, 1);        /* seq_cst against the caller's publish, see fs_pool_run */
    while (W_GEN(t = atomic_load(&g_ticket)) == seen)
        pthread_cond_wait(&g_wake_helpers, &g_sleep_lock);
    atomic_fetch_sub(&g_sleeping_helpers, 1);
    pthread_mutex_unlock(&g_sleep_lock);
    return t;
}

static void *helper_main(void *arg)
{
    int index = (int)(intptr_t)arg;
    uint64_t seen = g_start_gen[index];
    for (;;) {
        uint64_t t = wait_for_run(seen);
        seen = W_GEN(t);
        int ranges = (int)(t & IDX_MASK);
        if (index + 1 >= ranges) continue;             /* not allowed in this run */
        long long ran = work(seen, ranges, index + 1);
        if (ran) {
            atomic_fetch_add(&g_helper_done, ran);
            if (atomic_load(&g_caller_sleeping)) {
                pthread_mutex_lock(&g_sleep_lock);
                pthread_cond_signal(&g_wake_caller);
                pthread_mutex_unlock(&g_sleep_lock);
            }
        }
    }
    return NULL;
}

/* In a forked child only the forking thread exists: forget the parent's helpers and any lock another thread held
   at the moment of fork, so that the child's first parallel run starts helpers of its own. */
static void atfork_prepare(void) { pthread_mutex_lock(&g_run_lock); }
static void atfork_parent(void) { pthread_mutex_unlock(&g_run_lock); }
static void atfork_child(void)
{
    pthread_mutex_t fresh_mutex = PTHREAD_MUTEX_INITIALIZER;
    pthread_cond_t fresh_cond = PTHREAD_COND_INITIALIZER;
    g_run_lock = fresh_mutex;
    g_sleep_lock = fresh_mutex;
    g_wake_helpers = fresh_cond;
    g_wake_caller = fresh_cond;
    g_helpers = 0;
    atomic_store(&g_sleeping_helpers, 0);
    atomic_store(&g_caller_sleeping, 0);
}
static void register_atfork(void) { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); }

/* Start helpers until `want` exist (fewer if the system refuses threads: the runs then have less help). */
static void start_helpers(int want)
{
    pthread_once(&g_atfork_once, register_atfork);
    while (g_helpers < want) {
        pthread_t thread;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        g_start_gen[g_helpers] = W_GEN(atomic_load(&g_ticket));
        int rc = pthread_create(&thread, &attr, helper_main, (void *)(intptr_t)g_helpers);
        pthread_attr_destroy(&attr);
        if (rc != 0) return;
        g_helpers++;
    }
}

static void run_alone(fs_task_fn fn, void *ctx, ptrdiff_t n_tasks)
{
    for (ptrdiff_t i = 0; i < n_tasks; i++) fn(ctx, i);
}

static void run_batch(fs_task_fn fn, void *ctx, ptrdiff_t n_tasks, int n_threads)
{
    int want = n_threads - 1;
    if (want > FS_POOL_MAX_HELPERS) want = FS_POOL_MAX_HELPERS;
    if (want > n_tasks - 1) want = (int)(n_tasks - 1);
    start_helpers(want);
    if (g_helpers == 0) { run_alone(fn, ctx, n_tasks); return; }

    g_fn = fn;
    g_ctx = ctx;
    atomic_store(&g_helper_done, 0);
    int ranges = 1 + (want < g_helpers ? want : g_helpers);
    uint64_t gen = (W_GEN(atomic_load(&g_ticket)) + 1) & GEN_MASK;
    for (int r = 0; r < ranges; r++) {
        uint64_t begin = (uint64_t)(n_tasks * r / ranges), end = (uint64_t)(n_tasks * (r + 1) / ranges);
        atomic_store(&g_range[r], (gen << GEN_SHIFT) | (begin << IDX_BITS) | end);
    }
    atomic_store(&g_ticket, (gen << GEN_SHIFT) | (uint64_t)ranges);   /* seq_cst: pairs with the sleeper count */
    if (atomic_load(&g_sleeping_helpers) > 0) {
        pthread_mutex_lock(&g_sleep_lock);
        pthread_cond_broadcast(&g_wake_helpers);
        pthread_mutex_unlock(&g_sleep_lock);
    }

    long long mine = work(gen, ranges, 0);
    long long theirs = n_tasks - mine;
    if (theirs == 0) {
        atomic_fetch_add(&g_solo_runs, 1);
        return;
    }
    atomic_fetch_add(&g_helped_runs, 1);
    /* helpers still inside a task: poll, then sleep until one of them signals */
    double give_up = now_us() + FS_POOL_CALLER_SPIN_US;
    for (int k = 1; atomic_load(&g_helper_done) < theirs; k++) {
        cpu_relax();
        if ((k & 31) == 0 && now_us() > give_up) {
            pthread_mutex_lock(&g_sleep_lock);
            atomic_store(&g_caller_sleeping, 1);
            while (atomic_load(&g_helper_done) < theirs) {
                struct timespec until;
                clock_gettime(CLOCK_REALTIME, &until);
                until.tv_nsec += 10 * 1000 * 1000;   /* a safety net only: a done helper always signals */
                if (until.tv_nsec >= 1000000000) { until.tv_sec++; until.tv_nsec -= 1000000000; }
                pthread_cond_timedwait(&g_wake_caller, &g_sleep_lock, &until);
            }
            atomic_store(&g_caller_sleeping, 0);
            pthread_mutex_unlock(&g_sleep_lock);
            break;
        }
    }
}

/* The ticket holds 20 bits of task index; callers size their tasks well below that, but a larger run still works,
   as consecutive batches. */
typedef struct { fs_task_fn fn; void *ctx; ptrdiff_t offset; } batch_ctx;
static void batch_task(void *c, ptrdiff_t i) { batch_ctx *b = c; b->fn(b->ctx, b->offset + i); }

void fs_pool_run(fs_task_fn fn, void *ctx, ptrdiff_t n_tasks, int n_threads)
{
    if (n_tasks <= 0) return;
    if (n_threads <= 1 || n_tasks == 1 || pthread_mutex_trylock(&g_run_lock) != 0) {
        run_alone(fn, ctx, n_tasks);
        return;
    }
    if (n_tasks < FS_POOL_MAX_TASKS) {
        run_batch(fn, ctx, n_tasks, n_threads);
    } else {
        for (ptrdiff_t start = 0; start < n_tasks; start += FS_POOL_MAX_TASKS - 1) {
            batch_ctx b = {fn, ctx, start};
            ptrdiff_t left = n_tasks - start;
            run_batch(batch_task, &b, left < FS_POOL_MAX_TASKS - 1 ? left : FS_POOL_MAX_TASKS - 1, n_threads);
        }
    }
    pthread_mutex_unlock(&g_run_lock);
}

int fs_pool_helpers(void) { return g_helpers; }
long long fs_pool_solo_runs(void) { return atomic_load(&g_solo_runs); }
long long fs_pool_helped_runs(void) { return atomic_load(&g_helped_runs); }
void fs_pool_set_spin_us(int us) { atomic_store(&g_spin_us, us < 0 ? 0 : us); }
int fs_pool_spin_us(void) { return atomic_load(&g_spin_us); }
