/*
 * check_pool.c -- stress test of fs_pool.c, no Python needed:
 *   gcc -O2 -pthread check_pool.c fs_pool.c -o check_pool && ./check_pool
 *   gcc -O1 -g -fsanitize=thread -pthread check_pool.c fs_pool.c -o check_pool_tsan && ./check_pool_tsan quick nofork
 * (ThreadSanitizer cannot follow a multi-threaded fork, hence nofork there).
 * Checks that every task of every run runs exactly once and is visible to the caller when fs_pool_run returns, with
 * runs of every size, several calling threads at once (one gets the pool, the others run alone), thread counts that
 * change between runs, and a forked child that runs in parallel again. Exit status non-zero on any failure.
 */
#include "fs_pool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    _Atomic int *count;   /* per task: times it ran */
    int *value;           /* per task: written by the task, read by the caller after the run (plain memory) */
    int stamp;
} run_ctx;

static void task(void *ctx, ptrdiff_t k)
{
    run_ctx *c = ctx;
    atomic_fetch_add_explicit(&c->count[k], 1, memory_order_relaxed);
    c->value[k] = c->stamp + (int)k;
}

static int check_runs(int runs, int max_tasks, unsigned seed)
{
    _Atomic int *count = malloc(max_tasks * sizeof *count);
    int *value = malloc(max_tasks * sizeof *value);
    int bad = 0;
    for (int r = 0; r < runs && !bad; r++) {
        seed = seed * 1103515245u + 12345u;
        int n = 1 + (int)(seed >> 8) % max_tasks, threads = 1 + (int)(seed >> 4) % 4;
        for (int k = 0; k < n; k++) atomic_store(&count[k], 0);
        run_ctx c = {count, value, r * 7};
        fs_pool_run(task, &c, n, threads);
        for (int k = 0; k < n; k++)
            if (atomic_load(&count[k]) != 1 || value[k] != c.stamp + k) {
                printf("run %d (%d tasks, %d threads): task %d ran %d times, value %d\n", r, n, threads, k,
                       atomic_load(&count[k]), value[k]);
                bad = 1;
                break;
            }
    }
    free((void *)count);
    free(value);
    return bad;
}

typedef struct { int runs, bad; unsigned seed; } caller_arg;
static void *caller(void *arg)
{
    caller_arg *a = arg;
    a->bad = check_runs(a->runs, 300, a->seed);
    return NULL;
}

int main(int argc, char **argv)
{
    int quick = 0, do_fork = 1;
    for (int i = 1; i < argc; i++) {
        quick |= strcmp(argv[i], "quick") == 0;
        if (strcmp(argv[i], "nofork") == 0) do_fork = 0;
    }
    int runs = quick ? 2000 : 50000, fail = 0;

    fail |= check_runs(runs, 1000, 1u);
    printf("one caller: %s (%d helpers started)\n", fail ? "FAIL" : "ok", fs_pool_helpers());

    pthread_t threads[4];
    caller_arg args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (caller_arg){runs / 4, 0, 100u + i};
        pthread_create(&threads[i], NULL, caller, &args[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(threads[i], NULL);
        fail |= args[i].bad;
    }
    printf("four callers at once: %s\n", fail ? "FAIL" : "ok");

    fs_pool_set_spin_us(0);          /* helpers sleep at once: every run wakes them */
    fail |= check_runs(runs / 10, 200, 7u);
    fs_pool_set_spin_us(300);
    printf("sleeping helpers: %s\n", fail ? "FAIL" : "ok");

    fflush(stdout);
    long long helped_before = fs_pool_helped_runs();
    pid_t pid = do_fork ? fork() : -1;
    if (pid == 0) {
        int child_bad = check_runs(runs / 10, 1000, 9u);
        long long helped = fs_pool_helped_runs();
        printf("forked child: %s (%d helpers started, %lld helped runs since the fork)\n", child_bad ? "FAIL" : "ok",
               fs_pool_helpers(), helped - helped_before);
        fflush(stdout);
        _exit(child_bad);
    }
    if (pid > 0) {
        int status = 0;
        waitpid(pid, &status, 0);
        fail |= !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    }
    printf("%s\n", fail ? "FAILED" : "all ok");
    return fail;
}
