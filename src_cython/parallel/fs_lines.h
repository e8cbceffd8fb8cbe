/*
 * fs_lines.h -- softmax, log_softmax and logsumexp of whole arrays: the canonical (outer, n, inner) view cut into
 * tasks for the thread pool (fs_pool.h), each task calling the SIMD kernels (simd/fs_kernels.h).
 *
 * The cuts depend on the shape only, never on the thread count or on timing, and partial results merge in task
 * order: a result is the same whichever threads ran which tasks.
 *   rows (inner == 1)        blocks of whole rows, ~FS_TASK_ELEMENTS each;
 *   few long rows            (fewer rows than threads, rows of FS_SPLIT_ROW_MIN or more): each row cut into slices
 *                            of FS_SLICE_ELEMENTS; a first run finds each slice's max and sum of exp in one pass,
 *                            they merge in slice order, a second run writes the output;
 *   columns (inner > 1)      (outer block, range of columns) tiles.
 */
#ifndef FS_LINES_H
#define FS_LINES_H

#include <stddef.h>

#include "fs_kernels.h"   /* FS_SOFTMAX / FS_LOG_SOFTMAX / FS_LOGSUMEXP, FS_FLOAT32 / FS_FLOAT64 */

#ifdef __cplusplus
extern "C" {
#endif

/* func over axis 1 of a C-contiguous (outer, n, inner) array x of `dtype`, n >= 1; y is laid out like x, or
   (outer, inner) for logsumexp. temperature: softmax(x / T), x / T never formed (1.0 for logsumexp). out_is_new:
   y was just allocated for this call (its pages are not in memory yet), which decides whether large outputs are
   streamed (see FS_STREAM_*_BYTES). */
void fs_lines(int func, int dtype, const void *x, void *y, ptrdiff_t outer, ptrdiff_t n, ptrdiff_t inner,
              double temperature, int n_threads, int out_is_new);

/* For callers that hold a line in several chunks (fastsoftmax/_dask.py): rows of a (rows, n) array, rows `ld`
   elements apart, n >= 1. Stats: each row's max (nan if it holds one, +inf, or -inf for an all -inf row) and
   log(sum(exp(x - max))), float64. Finish: each row normalised by the whole line's max and sum (sum_hi + sum_lo of
   exp(x - max) over the line), softmax or log_softmax with scipy's rules where the max is not finite. */
void fs_rows_stats(int dtype, const void *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t ld, double *maxima,
                   double *log_sums, int n_threads);
void fs_rows_finish(int func, int dtype, const void *x, ptrdiff_t ldx, void *y, ptrdiff_t ldy, ptrdiff_t rows,
                    ptrdiff_t n, const double *maxima, const double *sum_hi, const double *sum_lo, int n_threads);

/* Tests only: task and slice sizes (elements), and the output size from which rows are streamed (bytes); 0
   restores a default. Small arrays then reach every parallel path. Not thread-safe against running calls. */
void fs_lines_set_sizes(ptrdiff_t task_min, ptrdiff_t task_max, ptrdiff_t split_row_min, ptrdiff_t slice,
                        ptrdiff_t column_tile, ptrdiff_t stream_bytes);

#ifdef __cplusplus
}
#endif
#endif /* FS_LINES_H */
