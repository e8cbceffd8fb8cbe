/*
 * fs_kernels.h -- SIMD softmax / log_softmax / logsumexp kernels for fastsoftmax.
 *
 * Call fs_init() once (e.g. at module import, before any threads run).  It picks
 * the AVX2+FMA kernels when the CPU and OS support them, else the portable
 * SSE2 baseline; FASTSOFTMAX_SIMD=baseline forces the baseline.  Until fs_init
 * runs, the baseline is used, so calling a kernel early is safe, just slower.
 * All kernels are reentrant and thread-safe (no global state besides the
 * dispatch table written by fs_init).  They never touch MXCSR.
 *
 * Sizes: n >= 1, inner >= 1.  x and y never overlap.  Everything is contiguous.
 *
 * Non-finite semantics are those of scipy.special:
 *   softmax     any nan, any +inf or all -inf -> all nan; -inf entries -> 0.
 *   log_softmax any nan -> all nan; max +inf -> nan at the +inf entries and
 *               -inf elsewhere; all -inf -> all nan; -inf entries -> -inf.
 *   logsumexp   any nan -> nan; any +inf -> +inf; all -inf -> -inf.
 * Results whose magnitude is below FLT_MIN/DBL_MIN may be flushed to 0
 * (absolute error < FLT_MIN/DBL_MIN); everything else is within a few ULP.
 *
 * Huge rows split across threads (slices), protocol for one row split into
 * slices x_k (all functions below are per slice and thread-safe):
 *   1. m_k = fs_slice_max_f32(x_k, n_k);     m = fs_merge_max_f32 over all m_k
 *      (nan-propagating, so m is nan iff the row holds a nan).
 *   2. softmax:     s_k = fs_slice_sumexp_f32(x_k, y_k, n_k, m)  (stores exp(x-m) in y_k)
 *                   s = fs_dd_add over all s_k;  fs_slice_scale_f32(y_k, n_k, m, s)
 *      log_softmax: s_k = fs_slice_sumexp_f32(x_k, NULL, n_k, m); s = fs_dd_add(...)
 *                   L = fs_log_sum(s);  fs_slice_log_softmax_f32(x_k, y_k, n_k, m, L)
 *      logsumexp:   s_k as for log_softmax;  result = fs_lse_finish_f32(m, s)
 *   Steps 2 may be called with a non-finite m; the finishing calls then
 *   produce the scipy special values (the sums are meaningless but harmless).
 *   The sums are double-double (fs_dd) so that log(sum) stays accurate when
 *   sum = 1 + tiny (peaked rows, scipy issue 19521): with y_k == NULL the
 *   slice sum counts the entries equal to m exactly and adds the rest apart.
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unevaluated sum hi + lo, |lo| <= ulp(hi)/2 after normalisation. */
typedef struct { double hi, lo; } fs_dd;

void        fs_init(void);
const char *fs_simd_path(void);          /* "avx2_fma" or "baseline" */
const char *fs_cpu_features(void);       /* what fs_init saw: "sse2 avx avx2 fma os-ymm-state", etc. */

/* ---- one contiguous row of n elements ---- */
void   fs_softmax_row_f32(const float *x, float *y, ptrdiff_t n, double temperature);
void   fs_softmax_row_f64(const double *x, double *y, ptrdiff_t n, double temperature);
void   fs_log_softmax_row_f32(const float *x, float *y, ptrdiff_t n, double temperature);
void   fs_log_softmax_row_f64(const double *x, double *y, ptrdiff_t n, double temperature);
float  fs_logsumexp_row_f32(const float *x, ptrdiff_t n);
double fs_logsumexp_row_f64(const double *x, ptrdiff_t n);

/* ---- columns: x is an (n, inner) block whose rows are ld >= inner elements apart; reduce over n for each
 *      column. y is laid out like x for (log_)softmax, (inner,) contiguous for logsumexp. ld > inner lets
 *      threads take column ranges of one block. O(1) stack scratch (column tiles); vectorised across columns. */
void fs_softmax_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature);
void fs_softmax_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature);
void fs_log_softmax_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld,
                             double temperature);
void fs_log_softmax_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld,
                             double temperature);
void fs_logsumexp_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld);
void fs_logsumexp_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld);

/* ---- slices of one huge row (see protocol above) ---- */
float  fs_slice_max_f32(const float *x, ptrdiff_t n);
double fs_slice_max_f64(const double *x, ptrdiff_t n);
float  fs_merge_max_f32(float a, float b);
double fs_merge_max_f64(double a, double b);
/* sum of exp(x - max); y != NULL: also store exp(x - max) into y. */
fs_dd  fs_slice_sumexp_f32(const float *x, float *y, ptrdiff_t n, float max);
fs_dd  fs_slice_sumexp_f64(const double *x, double *y, ptrdiff_t n, double max);
fs_dd  fs_dd_add(fs_dd a, fs_dd b);
double fs_log_sum(fs_dd s);              /* log(s.hi + s.lo), accurate near 1 */
/* y (holding exp(x - max)) *= 1/sum, or all nan for the special cases. */
void   fs_slice_scale_f32(float *y, ptrdiff_t n, float max, fs_dd sum);
void   fs_slice_scale_f64(double *y, ptrdiff_t n, double max, fs_dd sum);
/* y = (x - max) - log_sum, with the log_softmax special cases. */
void   fs_slice_log_softmax_f32(const float *x, float *y, ptrdiff_t n, float max, double log_sum,
                                double temperature);
void   fs_slice_log_softmax_f64(const double *x, double *y, ptrdiff_t n, double max, double log_sum,
                                double temperature);
float  fs_lse_finish_f32(float max, fs_dd sum);
double fs_lse_finish_f64(double max, fs_dd sum);

/* ---- huge rows in two passes over memory (each slice read twice, y written once):
 *   1. s_k = fs_slice_max_sumexp_f32(x_k, n_k, T, &m_k): running max and sum of exp(x - max) in one pass
 *      (entries equal to the max counted exactly, as in the log paths; m_k nan or +inf: s_k is nan).
 *   2. m = fs_merge_slices(maxima, sums, k, T, &s): the row max and the sum rescaled to it, in slice order.
 *   3. softmax: fs_slice_exp_scale_f32(x_k, y_k, n_k, m, s); log_softmax: fs_slice_log_softmax_f32 with
 *      fs_log_sum(s) (or 0 for m == +inf, as above); logsumexp: fs_lse_finish_f32(m, s). ---- */
fs_dd  fs_slice_max_sumexp_f32(const float *x, ptrdiff_t n, double temperature, float *max_out);
fs_dd  fs_slice_max_sumexp_f64(const double *x, ptrdiff_t n, double temperature, double *max_out);
double fs_merge_slices(const double *maxima, const fs_dd *sums, ptrdiff_t k, double temperature, fs_dd *sum_out);
void   fs_slice_exp_scale_f32(const float *x, float *y, ptrdiff_t n, float max, fs_dd sum, double temperature);
void   fs_slice_exp_scale_f64(const double *x, double *y, ptrdiff_t n, double max, fs_dd sum, double temperature);

#ifdef __cplusplus
}
#endif
#endif /* FS_KERNELS_H */
