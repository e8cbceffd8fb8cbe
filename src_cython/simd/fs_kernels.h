/*
 * fs_kernels.h -- SIMD softmax / log_softmax / logsumexp kernels for fastsoftmax, and the training-loop kernels
 * around them.
 *
 * One source (fs_kernels_impl.h) is compiled for every (SIMD path, dtype): AVX-512, AVX2+FMA and SSE2 on x86-64,
 * NEON on aarch64, and portable GCC vectors ("generic") everywhere. fs_init() picks the widest path the CPU and OS
 * run (FASTSOFTMAX_SIMD=avx2, =baseline or =generic caps it); until it runs, the architecture's baseline is used, so
 * an early call is safe, only slower. Every function is reentrant and thread-safe; none touches the floating-point
 * environment. Threads are the callers' business (src_cython/parallel/fs_lines.c).
 *
 * dtype: FS_FLOAT32 or FS_FLOAT64 (x and y are float * or double *). mode: FS_SOFTMAX, FS_LOG_SOFTMAX or
 * FS_LOGSUMEXP. Sizes: n >= 1. x and y never overlap. temperature T > 0 gives the function of x / T, computed
 * without forming x / T (1.0 for logsumexp).
 *
 * Non-finite semantics are scipy.special's:
 *   softmax     any nan, any +inf or all -inf -> all nan; -inf entries -> 0.
 *   log_softmax any nan -> all nan; max +inf -> nan at the +inf entries and -inf elsewhere; all -inf -> all nan;
 *               -inf entries -> -inf.
 *   logsumexp   any nan -> nan; any +inf -> +inf; all -inf -> -inf.
 * Results whose magnitude is below the dtype's smallest normal may be flushed to 0 (absolute error below it);
 * everything else is within the bounds check_kernels.c enforces (float32: softmax 2 ULP, log_softmax 4,
 * logsumexp 2; float64: 4, 4, 2).
 *
 * Sums are double-double (fs_dd): the log paths count the entries equal to the max exactly and add the others
 * apart, so log(sum) keeps its digits for peaked rows (sum = 1 + tiny, scipy issue 19521).
 */
#ifndef FS_KERNELS_H
#define FS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Unevaluated sum hi + lo, |lo| <= ulp(hi)/2 after normalisation. */
typedef struct { double hi, lo; } fs_dd;

enum { FS_SOFTMAX = 0, FS_LOG_SOFTMAX = 1, FS_LOGSUMEXP = 2 };
/* OR'd into fs_rows' mode: the output is too large to stay in the caches, write it with non-temporal stores (x86;
   softmax stages its exp values in an L1-sized scratch so that y is written once, with no read for ownership). */
enum { FS_STREAM = 8 };
enum { FS_FLOAT32 = 0, FS_FLOAT64 = 1 };

void        fs_init(void);
const char *fs_simd_path(void);          /* "avx512", "avx2_fma", "sse2", "neon" or "generic" */
const char *fs_cpu_features(void);       /* what fs_init saw: "sse2 avx avx2 fma os-ymm-state ...", or "neon" */

/* ---- lines -------------------------------------------------------------------------------------------------- */
/* `rows` consecutive contiguous rows of n elements each; y: the same layout, or `rows` values for logsumexp. */
void fs_rows(int dtype, int mode, const void *x, void *y, ptrdiff_t rows, ptrdiff_t n, double temperature);
/* How many rows of n a call of fs_rows should get at least, where the caller splits rows among threads: softmax
   overlaps each row's scale pass with the next row's exp pass on rows past L1 and within L2 (4 there, else 1). */
ptrdiff_t fs_rows_per_call(int dtype, int mode, ptrdiff_t n);

/* Columns: x is an (n, width) block whose rows are ld >= width elements apart; reduce over n for each column. y is
   laid out like x, or `width` contiguous values for logsumexp. ld > width lets threads take column ranges of one
   block. O(1) stack scratch (column tiles); vectorised across columns. */
void fs_cols(int dtype, int mode, const void *x, void *y, ptrdiff_t n, ptrdiff_t width, ptrdiff_t ld,
             double temperature);

/* A row too long for one thread, in slices x_k (each call is per slice, thread-safe):
 *   1. s_k = fs_slice_stats(dtype, x_k, n_k, T, &m_k): the slice's max and sum of exp((x - max) / T) in one pass
 *      over memory (blocks read by the max, then again from cache by the exp); m_k nan or +inf: s_k is nan.
 *   2. m = fs_merge_slices(maxima, sums, k, T, &s): the row's max, the sum rescaled to it, in slice order.
 *   3. fs_slice_finish(dtype, mode, x_k, y_k, n_k, m, s, T): softmax or log_softmax of the slice; for logsumexp
 *      it writes the row's value into y_k[0] (call it once). */
fs_dd  fs_slice_stats(int dtype, const void *x, ptrdiff_t n, double temperature, double *max_out);
double fs_merge_slices(const double *maxima, const fs_dd *sums, ptrdiff_t k, double temperature, fs_dd *sum_out);
void   fs_slice_finish(int dtype, int mode, const void *x, void *y, ptrdiff_t n, double max, fs_dd sum,
                       double temperature);
double fs_log_sum(fs_dd s);              /* log(s.hi + s.lo) within 1 ulp, near 1 too (check_kernels.c) */

/* ---- training-loop kernels ------------------------------------------------------------------------------------ */
/* Backward of softmax (log = 0): out = y * (g - sum(g * y)); of log_softmax (log = 1): out = g - exp(y) * sum(g).
   Rows: `rows` contiguous rows of n. Columns: one (n, inner) block, reduced over n; scratch holds inner doubles.
   out may be g itself (each output element is written after the sums that read it). */
void fs_backward_rows(int dtype, int log, const void *y, const void *g, void *out, ptrdiff_t rows, ptrdiff_t n);
void fs_backward_cols(int dtype, int log, const void *y, const void *g, void *out, ptrdiff_t n, ptrdiff_t inner,
                      double *scratch);

/* Cross entropy of one row of n logits x against class `target` (q == NULL; target < 0: ignored, loss 0) or against
   the probabilities q (target unused), weighted by w (NULL: 1; w_total = sum(w)) and smoothed by ls as torch does.
   Returns the row's loss; with grad != NULL also writes d loss / d x times `scale` there. */
double fs_cross_entropy_row(int dtype, const void *x, const void *q, int64_t target, void *grad, ptrdiff_t n,
                            const double *w, double w_total, double ls, double scale);

/* ---- for the harness (check_kernels.c): the passes of one path, timed apart ----------------------------------- */
typedef struct {
    const char *path;
    double (*max)(const void *x, ptrdiff_t n);                                   /* as double */
    fs_dd (*expsum)(const void *x, void *y, ptrdiff_t n, double max);          /* y != NULL: store exp(x - max) */
    void (*scale)(void *y, ptrdiff_t n, fs_dd sum);                              /* y /= sum */
    void (*sub)(const void *x, void *y, ptrdiff_t n, double max, double log_sum);
} fs_passes;
/* The passes of path "avx512", "avx2_fma", "sse2", "neon" or "generic" for dtype; NULL where this build or CPU
   has no such path. */
const fs_passes *fs_passes_of(const char *path, int dtype);

#ifdef __cplusplus
}
#endif
#endif /* FS_KERNELS_H */
