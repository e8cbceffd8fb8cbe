/*
 * fs_lines.c -- whole arrays as tasks on the pool (see fs_lines.h).
 */
#include "fs_lines.h"

#include <math.h>
#include <stdlib.h>

#include "fs_kernels.h"
#include "fs_pool.h"

/* Elements per task. A task is the unit a thread claims: large enough that claiming it (one compare-and-swap on a
   shared line, ~0.1 us) is noise, small enough that the caller can pick up the share of a helper that never came
   and that a helper slowed down mid-task (its core shared with another library's thread) holds the caller up only
   briefly. Tasks are about 1/8 of a thread's share, between 4K elements (~1 us of float32 on one core) and 16K;
   softmax rows that the kernel overlaps pairwise (fs_rows_per_call) come up to 4 to a task, 64 KB-L2/8 each. */
#define FS_TASK_ELEMENTS 16384
#define FS_TASK_MIN_ELEMENTS 4096
#define FS_TASKS_PER_THREAD 8
/* A row is cut into slices only when there are fewer rows than threads and the row is at least this long: the
   split costs a second parallel run and an extra read of the row. */
#define FS_SPLIT_ROW_MIN 131072
/* Slice length of a split row (a multiple of 16 elements, whole 64-byte lines of float32). Fixed, so that the
   slices, and the result, do not depend on the thread count. */
#define FS_SLICE_ELEMENTS 65536
/* Column tasks are whole tiles of the column kernels (TILE_F32 and TILE_F64 in simd/fs_kernels.c: 64 to 256
   columns, divisors of this). */
#define FS_COLUMN_TILE 256
/* Outputs of at least this many bytes, into memory the caller provided (out=), are written with non-temporal stores
   (FS_STREAM): such stores skip the read for ownership of every output line and leave the input in the caches.
   Measured on 2 threads of a Xeon (family 6 model 207, 260 MB L3), out= float32, plain -> streamed:
   log_softmax 4096x4096 6.85 -> 5.37 ms, 8192x8192 37.1 -> 26.7 ms; softmax 4096x4096 4.75 -> 5.04 ms (the
   output, staged in cache by its exp pass, still fit in L3), 8192x8192 31.3 -> 31.6, 16384x4096 31.5 -> 27.7 ms.
   A fresh output is never streamed: the kernel has just zeroed its pages through the cache, and streaming over
   those lines measured slower (4096x4096 softmax 8.4 -> 11.2 ms). */
#define FS_STREAM_LOG_BYTES ((ptrdiff_t)16 << 20)
#define FS_STREAM_SOFTMAX_BYTES ((ptrdiff_t)128 << 20)

/* The sizes above, as variables so that the tests can make them tiny and reach every parallel path (several
   tasks, split rows) with small arrays: fs_lines_set_sizes. */
static ptrdiff_t g_task_max = FS_TASK_ELEMENTS, g_task_min = FS_TASK_MIN_ELEMENTS;
static ptrdiff_t g_split_row_min = FS_SPLIT_ROW_MIN, g_slice = FS_SLICE_ELEMENTS, g_column_tile = FS_COLUMN_TILE;
static ptrdiff_t g_stream_bytes = 0;   /* tests: stream from this many bytes for both functions; 0: the defaults */

void fs_lines_set_sizes(ptrdiff_t task_min, ptrdiff_t task_max, ptrdiff_t split_row_min, ptrdiff_t slice,
                        ptrdiff_t column_tile, ptrdiff_t stream_bytes)
{
    g_stream_bytes = stream_bytes > 0 ? stream_bytes : 0;
    g_task_min = task_min > 0 ? task_min : FS_TASK_MIN_ELEMENTS;
    g_task_max = task_max > 0 ? task_max : FS_TASK_ELEMENTS;
    g_split_row_min = split_row_min > 0 ? split_row_min : FS_SPLIT_ROW_MIN;
    g_slice = slice > 0 ? slice : FS_SLICE_ELEMENTS;
    g_column_tile = column_tile > 0 ? column_tile : FS_COLUMN_TILE;
}

static size_t item_size(int dtype) { return dtype == FS_FLOAT32 ? sizeof(float) : sizeof(double); }

static ptrdiff_t ceil_div(ptrdiff_t a, ptrdiff_t b) { return (a + b - 1) / b; }

/* Elements per task for `elements` in all on n_threads (see FS_TASK_ELEMENTS). */
static ptrdiff_t task_elements(ptrdiff_t elements, int n_threads)
{
    ptrdiff_t e = elements / ((ptrdiff_t)FS_TASKS_PER_THREAD * (n_threads > 1 ? n_threads : 1));
    return e < g_task_min ? g_task_min : e > g_task_max ? g_task_max : e;
}

/* ---- the jobs ------------------------------------------------------------------------------------------------ */
typedef struct {
    int dtype, func, stream;
    const char *x;
    char *y;
    ptrdiff_t outer, n, inner;
    double t;
    ptrdiff_t per_task;           /* rows: rows per task; columns: columns per task; split rows: slice length */
    ptrdiff_t tasks_per_line;     /* columns: tiles per outer block; split rows: slices per row */
    double *slice_max;            /* split rows: per slice, then per row */
    fs_dd *slice_sum;
    double *row_max;
    fs_dd *row_sum;
} job;

static void rows_task(void *ctx, ptrdiff_t k)
{
    const job *j = ctx;
    ptrdiff_t r0 = k * j->per_task, r1 = r0 + j->per_task < j->outer ? r0 + j->per_task : j->outer;
    size_t item = item_size(j->dtype);
    ptrdiff_t out_stride = j->func == FS_LOGSUMEXP ? 1 : j->n;
    fs_rows(j->dtype, j->func | j->stream, j->x + r0 * j->n * item, j->y + r0 * out_stride * item, r1 - r0, j->n,
            j->t);
}

static void cols_task(void *ctx, ptrdiff_t k)
{
    const job *j = ctx;
    ptrdiff_t o = k / j->tasks_per_line, c0 = (k - o * j->tasks_per_line) * j->per_task;
    ptrdiff_t w = j->inner - c0 < j->per_task ? j->inner - c0 : j->per_task;
    size_t item = item_size(j->dtype);
    const char *x = j->x + (o * j->n * j->inner + c0) * item;
    char *y = j->y + ((j->func == FS_LOGSUMEXP ? o * j->inner : o * j->n * j->inner) + c0) * item;
    fs_cols(j->dtype, j->func, x, y, j->n, w, j->inner, j->t);
}

static ptrdiff_t slice_length(const job *j, ptrdiff_t k, ptrdiff_t *start)
{
    ptrdiff_t s = k % j->tasks_per_line;
    *start = (k / j->tasks_per_line) * j->n + s * j->per_task;
    return j->n - s * j->per_task < j->per_task ? j->n - s * j->per_task : j->per_task;
}

static void split_stats_task(void *ctx, ptrdiff_t k)
{
    job *j = ctx;
    ptrdiff_t start, len = slice_length(j, k, &start);
    j->slice_sum[k] = fs_slice_stats(j->dtype, j->x + start * item_size(j->dtype), len, j->t, &j->slice_max[k]);
}

static void split_finish_task(void *ctx, ptrdiff_t k)
{
    const job *j = ctx;
    ptrdiff_t start, len = slice_length(j, k, &start), r = k / j->tasks_per_line;
    size_t item = item_size(j->dtype);
    fs_slice_finish(j->dtype, j->func, j->x + start * item, j->y + start * item, len, j->row_max[r], j->row_sum[r],
                    j->t);
}

/* Few long rows: one pass for the slices' (max, sum), merged per row in slice order, then the writing pass.
   Returns 0 when there is no memory for the partials (the caller then runs the rows whole). */
static int split_rows(job *j, int n_threads)
{
    ptrdiff_t per_row = ceil_div(j->n, g_slice), tasks = j->outer * per_row;
    j->per_task = g_slice;
    j->tasks_per_line = per_row;
    j->slice_max = malloc(tasks * sizeof(double));
    j->slice_sum = malloc(tasks * sizeof(fs_dd));
    j->row_max = malloc(j->outer * sizeof(double));
    j->row_sum = malloc(j->outer * sizeof(fs_dd));
    int ok = j->slice_max && j->slice_sum && j->row_max && j->row_sum;
    if (ok) {
        fs_pool_run(split_stats_task, j, tasks, n_threads);
        for (ptrdiff_t r = 0; r < j->outer; r++)
            j->row_max[r] = fs_merge_slices(j->slice_max + r * per_row, j->slice_sum + r * per_row, per_row, j->t,
                                            &j->row_sum[r]);
        if (j->func == FS_LOGSUMEXP) {
            for (ptrdiff_t r = 0; r < j->outer; r++)
                fs_slice_finish(j->dtype, FS_LOGSUMEXP, NULL, j->y + r * item_size(j->dtype), 0, j->row_max[r],
                                j->row_sum[r], 1.0);
        } else {
            fs_pool_run(split_finish_task, j, tasks, n_threads);
        }
    }
    free(j->slice_max);
    free(j->slice_sum);
    free(j->row_max);
    free(j->row_sum);
    return ok;
}

void fs_lines(int func, int dtype, const void *x, void *y, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
              double temperature, int n_threads, int out_is_new)
{
    job j = {dtype, func, 0, x, y, outer, n, inner, temperature, 0, 0, NULL, NULL, NULL, NULL};
    if (outer <= 0 || n <= 0 || inner <= 0) return;
    ptrdiff_t elements = outer * n * inner, per_task = task_elements(elements, n_threads);
    ptrdiff_t bytes = elements * (ptrdiff_t)item_size(dtype);
    ptrdiff_t stream_from = g_stream_bytes ? g_stream_bytes
                            : func == FS_LOG_SOFTMAX ? FS_STREAM_LOG_BYTES : FS_STREAM_SOFTMAX_BYTES;
    if (func != FS_LOGSUMEXP && !out_is_new && bytes >= stream_from) j.stream = FS_STREAM;
    if (inner > 1) {
        /* whole tiles, wide enough for ~per_task elements per task */
        ptrdiff_t tiles = ceil_div(per_task, n * g_column_tile);
        j.per_task = tiles * g_column_tile < inner ? tiles * g_column_tile : inner;
        j.tasks_per_line = ceil_div(inner, j.per_task);
        fs_pool_run(cols_task, &j, outer * j.tasks_per_line, n_threads);
        return;
    }
    if (n_threads > 1 && outer < n_threads && n >= g_split_row_min && split_rows(&j, n_threads)) return;
    j.per_task = ceil_div(per_task, n);
    /* rows the kernel overlaps pairwise come several to a task, as long as every thread keeps two tasks */
    ptrdiff_t batch = fs_rows_per_call(dtype, func, n);
    ptrdiff_t spread = ceil_div(outer, 2 * (ptrdiff_t)(n_threads > 1 ? n_threads : 1));
    if (batch > spread) batch = spread;
    if (j.per_task < batch) j.per_task = batch;
    fs_pool_run(rows_task, &j, ceil_div(outer, j.per_task), n_threads);
}

/* ---- chunks of lines (dask) ----------------------------------------------------------------------------------- */
typedef struct {
    int dtype, func;
    const char *x;
    char *y;
    ptrdiff_t ldx, ldy, rows, n, per_task;
    double *maxima, *log_sums;
    const double *c_maxima, *sum_hi, *sum_lo;
} rows_job;

static void rows_stats_task(void *ctx, ptrdiff_t k)
{
    const rows_job *j = ctx;
    ptrdiff_t r1 = (k + 1) * j->per_task < j->rows ? (k + 1) * j->per_task : j->rows;
    for (ptrdiff_t r = k * j->per_task; r < r1; r++) {
        fs_dd s = fs_slice_stats(j->dtype, j->x + r * j->ldx * item_size(j->dtype), j->n, 1.0, &j->maxima[r]);
        j->log_sums[r] = fs_log_sum(s);
    }
}

static void rows_finish_task(void *ctx, ptrdiff_t k)
{
    const rows_job *j = ctx;
    ptrdiff_t r1 = (k + 1) * j->per_task < j->rows ? (k + 1) * j->per_task : j->rows;
    for (ptrdiff_t r = k * j->per_task; r < r1; r++) {
        fs_dd s = {j->sum_hi[r], j->sum_lo[r]};
        size_t item = item_size(j->dtype);
        fs_slice_finish(j->dtype, j->func, j->x + r * j->ldx * item, j->y + r * j->ldy * item, j->n, j->c_maxima[r],
                        s, 1.0);
    }
}

void fs_rows_stats(int dtype, const void *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t ld, double *maxima,
                   double *log_sums, int n_threads)
{
    rows_job j = {dtype, 0, x, NULL, ld, 0, rows, n, ceil_div(task_elements(rows * n, n_threads), n), maxima,
                  log_sums, NULL, NULL, NULL};
    fs_pool_run(rows_stats_task, &j, ceil_div(rows, j.per_task), n_threads);
}

void fs_rows_finish(int func, int dtype, const void *x, ptrdiff_t ldx, void *y, ptrdiff_t ldy, ptrdiff_t rows,
                    ptrdiff_t n, const double *maxima, const double *sum_hi, const double *sum_lo, int n_threads)
{
    rows_job j = {dtype, func, x, y, ldx, ldy, rows, n, ceil_div(task_elements(rows * n, n_threads), n), NULL,
                  NULL, maxima, sum_hi, sum_lo};
    fs_pool_run(rows_finish_task, &j, ceil_div(rows, j.per_task), n_threads);
}
