/*
 * fs_pool.h -- fastsoftmax's thread pool: the calling thread does the work, other threads only help.
 *
 * fs_pool_run(fn, ctx, n_tasks, n_threads) runs fn(ctx, 0) ... fn(ctx, n_tasks - 1) and returns when all of them
 * are done. The caller claims tasks from an atomic counter like any helper, so it never waits for a helper that
 * has not started: when the other cores are busy (numpy's OpenBLAS workers spin after every matmul, torch's or
 * onnxruntime's pools after theirs), the caller simply does every task itself, and a call is never much slower than
 * its single-threaded time. An OpenMP parallel region cannot behave like this: its closing barrier waits for every
 * thread of the team, including one the scheduler has not run yet (measured: 7.9 ms for a 256x256 softmax right
 * after `q @ k.T`, 31 us on a quiet machine).
 *
 * Which thread runs which task depends on timing; what a task computes must not. Callers give each task a fixed
 * piece of the data and its own slot for partial results, and merge the slots in task order.
 *
 * Helpers are started on first use (at most n_threads - 1 take part in a run), spin briefly for the next run, then
 * sleep on a condition variable. One run at a time: a second caller that finds the pool busy (another Python
 * thread, a nested call) does its tasks alone, so concurrent calls never deadlock or wait for each other.
 *
 * Fork: a child process has no helper threads; pthread_atfork handlers reset the pool in the child, which starts
 * new helpers on its first parallel run. (GNU OpenMP's pool does not survive fork; this one is rebuilt.)
 */
#ifndef FS_POOL_H
#define FS_POOL_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef void (*fs_task_fn)(void *ctx, ptrdiff_t task);

/* Tasks 0 .. n_tasks - 1 of fn(ctx, task), on the caller and up to n_threads - 1 helpers; returns when all are
   done. Memory written by a task is visible to the caller when this returns. n_threads <= 1 or n_tasks <= 1: the
   caller runs every task itself, in order, without touching the pool. */
void fs_pool_run(fs_task_fn fn, void *ctx, ptrdiff_t n_tasks, int n_threads);

/* Helper threads started in this process (0 in a fresh fork child until its first parallel run). */
int fs_pool_helpers(void);

/* Runs so far (with helpers allowed) that the caller finished alone, and runs where helpers did some of the tasks
   (for tests and info). */
long long fs_pool_solo_runs(void);
long long fs_pool_helped_runs(void);

/* How long idle helpers spin for the next run before they sleep, in microseconds (default FS_POOL_SPIN_US). */
void fs_pool_set_spin_us(int us);
int fs_pool_spin_us(void);

#ifdef __cplusplus
}
#endif
#endif /* FS_POOL_H */
