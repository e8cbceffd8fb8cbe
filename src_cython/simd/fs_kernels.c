/*
 * fs_kernels.c -- softmax / log_softmax / logsumexp kernels (see fs_kernels.h).
 *
 * Layers:
 *  1. exp core (fs_kernels_impl.h: exp_core_f/d).  exp(x - m) for x <= m with
 *     x - m split exactly into hi + lo (TwoSum), Cody-Waite reduction by a
 *     two-part ln2, a degree-6 (f32) / degree-11 (f64) polynomial and 2^n
 *     from exponent bits.  ~0.5-1 ulp; results below the smallest normal
 *     flush to 0, which keeps 2^n a normal number and costs one mask.
 *  2. row primitives (impl): max, fused exp+store+sum, scale, subtract.
 *     Sums are in double (f32) or compensated double (f64); the log paths
 *     count the entries equal to the max instead of adding 1.0 for them, so
 *     the sum is an exact double-double count + others and log1p(others)
 *     stays accurate for peaked rows.
 *  3. column kernels (impl): same math vectorised across columns, in
 *     column tiles with per-column state in stack arrays.
 *  4. this file: scalar glue -- non-finite semantics, reciprocal / log of
 *     the double-double sums, the public row and slice functions.
 *  5. dispatch: fs_kernels_impl.h is instantiated three times (AVX-512 and
 *     AVX2+FMA via target attributes, and the SSE2 baseline); fs_init picks
 *     the widest table the CPU and OS support.
 *
 * Build with -O3 -fno-trapping-math -fno-math-errno, never -ffast-math:
 * the TwoSum steps and nan/inf handling rely on IEEE semantics.
 */
#include "fs_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <immintrin.h>
#include <cpuid.h>

/* ------------------------------------------------------------------ */
/* double-double helpers (scalar)                                       */
/* ------------------------------------------------------------------ */
static inline fs_dd fs_two_sum(double a, double b)
{
    double s = a + b, bv = s - a, av = s - bv;
    fs_dd r = {s, (a - av) + (b - bv)};
    return r;
}
static inline fs_dd fs_fast_two_sum(double a, double b)   /* |a| >= |b| or a == 0 */
{
    double s = a + b;
    fs_dd r = {s, b - (s - a)};
    return r;
}
/* r + (hi + lo), hi/lo a compensated partial sum */
static inline fs_dd fs_dd_add1(fs_dd r, double hi, double lo)
{
    fs_dd t = fs_two_sum(r.hi, hi);
    return fs_fast_two_sum(t.hi, t.lo + (r.lo + lo));
}
fs_dd fs_dd_add(fs_dd a, fs_dd b) { return fs_dd_add1(a, b.hi, b.lo); }

/* 1/(hi+lo) as a double-double; used once per row/column. */
static inline fs_dd fs_dd_inv(fs_dd s)
{
    double h = 1.0 / s.hi;
    double rho = fma(-h, s.hi, 1.0) - h * s.lo;
    fs_dd r = {h, h * rho};
    return r;
}

double fs_log_sum(fs_dd s)
{
    if (s.hi >= 0.5 && s.hi < 2.0)
        return log1p((s.hi - 1.0) + s.lo);       /* s.hi - 1 is exact here */
    return log(s.hi) + s.lo / s.hi;
}

/* m + log(s).  When m < 0 and the result cancels (|result| << |m|) the
   absolute error is ~ulp(m): the exp terms themselves carry ~1 ulp, so
   extra precision in the log alone would not help. */
static double fs_lse_f64(double m, fs_dd s) { return m + fs_log_sum(s); }

static void fill_nan_f32(float *y, ptrdiff_t n) { for (ptrdiff_t i = 0; i < n; i++) y[i] = NAN; }
static void fill_nan_f64(double *y, ptrdiff_t n) { for (ptrdiff_t i = 0; i < n; i++) y[i] = NAN; }
static int has_nan_f32(const float *x, ptrdiff_t n, ptrdiff_t stride)
{
    for (ptrdiff_t i = 0; i < n; i++) if (isnan(x[i * stride])) return 1;
    return 0;
}
static int has_nan_f64(const double *x, ptrdiff_t n, ptrdiff_t stride)
{
    for (ptrdiff_t i = 0; i < n; i++) if (isnan(x[i * stride])) return 1;
    return 0;
}

/* Column classification: 0 normal, 1 holds nan, 2 max +inf, 3 all -inf.
   With a finite max, a nan shows up as a nan sum; only infinite maxima
   need the (rare) scan. */
enum { COL_OK = 0, COL_NAN = 1, COL_PINF = 2, COL_NINF = 3 };
static int fs_col_special_f32(const float *xc, ptrdiff_t stride, ptrdiff_t n, float m, double sum)
{
    if (isfinite(m)) return isnan(sum) ? COL_NAN : COL_OK;
    if (has_nan_f32(xc, n, stride)) return COL_NAN;
    return m > 0 ? COL_PINF : COL_NINF;
}
static int fs_col_special_f64(const double *xc, ptrdiff_t stride, ptrdiff_t n, double m, double sum)
{
    if (isfinite(m)) return isnan(sum) ? COL_NAN : COL_OK;
    if (has_nan_f64(xc, n, stride)) return COL_NAN;
    return m > 0 ? COL_PINF : COL_NINF;
}
/* L for y = (x - m) - L; 0 for a +inf max makes that formula produce
   nan at +inf entries and -inf elsewhere, as scipy does. */
static double fs_col_log_f(int special, double m, fs_dd s)
{
    (void)m;
    switch (special) {
    case COL_OK: return fs_log_sum(s);
    case COL_PINF: return 0.0;
    default: return NAN;
    }
}
static float fs_lse_special_f32(int special, float m, fs_dd s)
{
    switch (special) {
    case COL_OK: return (float)((double)m + fs_log_sum(s));
    case COL_PINF: return INFINITY;
    case COL_NINF: return -INFINITY;
    default: return NAN;
    }
}
static double fs_lse_special_f64(int special, double m, fs_dd s)
{
    switch (special) {
    case COL_OK: return fs_lse_f64(m, s);
    case COL_PINF: return INFINITY;
    case COL_NINF: return -INFINITY;
    default: return NAN;
    }
}

/* ------------------------------------------------------------------ */
/* kernel table and the two instances                                  */
/* ------------------------------------------------------------------ */
/* 1/T as inv + inv_err (double-double) for softmax(x / T); NULL stands for T = 1. */
typedef struct { double inv, inv_err; } fs_temp;

static const fs_temp *fs_temp_of(double temperature, fs_temp *buf)
{
    if (temperature == 1.0) return NULL;
    buf->inv = 1.0 / temperature;
    buf->inv_err = fma(-temperature, buf->inv, 1.0) / temperature;
    return buf;
}

typedef struct {
    float (*max_f32)(const float *, ptrdiff_t, int);
    fs_dd (*expsum_f32)(const float *, float *, ptrdiff_t, float, const fs_temp *);
    void (*scale_f32)(float *, ptrdiff_t, double);
    void (*expscale_f32)(const float *, float *, ptrdiff_t, float, double, const fs_temp *);
    void (*sub_f32)(const float *, float *, ptrdiff_t, float, float, const fs_temp *);
    void (*cols_f32)(const float *, float *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, const fs_temp *);
    double (*max_f64)(const double *, ptrdiff_t, int);
    fs_dd (*expsum_f64)(const double *, double *, ptrdiff_t, double, const fs_temp *);
    void (*scale_f64)(double *, ptrdiff_t, fs_dd);
    void (*expscale_f64)(const double *, double *, ptrdiff_t, double, fs_dd, const fs_temp *);
    void (*sub_f64)(const double *, double *, ptrdiff_t, double, double, const fs_temp *);
    void (*cols_f64)(const double *, double *, ptrdiff_t, ptrdiff_t, ptrdiff_t, int, const fs_temp *);
} fs_table;

typedef float fs_v16f __attribute__((vector_size(64)));
typedef double fs_v8d __attribute__((vector_size(64)));
typedef int32_t fs_v16i __attribute__((vector_size(64)));
typedef int64_t fs_v8l __attribute__((vector_size(64)));
typedef float fs_v8f __attribute__((vector_size(32)));
typedef double fs_v4d __attribute__((vector_size(32)));
typedef int32_t fs_v8i __attribute__((vector_size(32)));
typedef int64_t fs_v4l __attribute__((vector_size(32)));
typedef float fs_v4f __attribute__((vector_size(16)));
typedef double fs_v2d __attribute__((vector_size(16)));
typedef int32_t fs_v4i __attribute__((vector_size(16)));
typedef int64_t fs_v2l __attribute__((vector_size(16)));

/* --- AVX-512 instance (Zen 4/5, Intel since Skylake-SP): the same kernels on 64-byte vectors --- */
#define FSFN(name) fs_avx512_##name
#define FS_T __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define VF fs_v16f
#define VD fs_v8d
#define VI fs_v16i
#define VL fs_v8l
#define NF 16
#define ND 8
#define FS_FMA 1
#define VFMA_F(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VFMA_D(a, b, c) ((VD)_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#define VMAX_F(a, b) ((VF)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define VMAX_D(a, b) ((VD)_mm512_max_pd((__m512d)(a), (__m512d)(b)))
#define CVT_LO_F(v) ((VD)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)(v))))
#define CVT_HI_F(v) ((VD)_mm512_cvtps_pd(_mm512_extractf32x8_ps((__m512)(v), 1)))
#define PACK_D_F(lo, hi) \
    ((VF)_mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps((__m512d)(lo))), _mm512_cvtpd_ps((__m512d)(hi)), 1))
#include "fs_kernels_impl.h"

/* --- AVX2 + FMA instance --- */
#define FSFN(name) fs_avx2_##name
#define FS_T __attribute__((target("avx2,fma")))
#define VF fs_v8f
#define VD fs_v4d
#define VI fs_v8i
#define VL fs_v4l
#define NF 8
#define ND 4
#define FS_FMA 1
#define VFMA_F(a, b, c) ((VF)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VFMA_D(a, b, c) ((VD)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#define VMAX_F(a, b) ((VF)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define VMAX_D(a, b) ((VD)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#define CVT_LO_F(v) ((VD)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)(v))))
#define CVT_HI_F(v) ((VD)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)(v), 1)))
#define PACK_D_F(lo, hi) ((VF)_mm256_set_m128(_mm256_cvtpd_ps((__m256d)(hi)), _mm256_cvtpd_ps((__m256d)(lo))))
#include "fs_kernels_impl.h"

/* --- portable SSE2 instance (x86-64 baseline) --- */
#define FSFN(name) fs_base_##name
#define FS_T
#define VF fs_v4f
#define VD fs_v2d
#define VI fs_v4i
#define VL fs_v2l
#define NF 4
#define ND 2
#define FS_FMA 0
#define VFMA_F(a, b, c) ((a) * (b) + (c))
#define VFMA_D(a, b, c) ((a) * (b) + (c))
#define VMAX_F(a, b) ((VF)_mm_max_ps((__m128)(a), (__m128)(b)))
#define VMAX_D(a, b) ((VD)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#define CVT_LO_F(v) ((VD)_mm_cvtps_pd((__m128)(v)))
#define CVT_HI_F(v) ((VD)_mm_cvtps_pd(_mm_movehl_ps((__m128)(v), (__m128)(v))))
#define PACK_D_F(lo, hi) ((VF)_mm_movelh_ps(_mm_cvtpd_ps((__m128d)(lo)), _mm_cvtpd_ps((__m128d)(hi))))
#include "fs_kernels_impl.h"

/* ------------------------------------------------------------------ */
/* dispatch                                                             */
/* ------------------------------------------------------------------ */
static const fs_table *g_tab = &fs_base_table;

/* The OS saves the register state (XCR0): mask 0x6 for XMM+YMM, 0xe6 adds the AVX-512 opmask and ZMM state. */
static int os_saves_state(unsigned mask)
{
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    if (!(c & bit_OSXSAVE)) return 0;
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & mask) == mask;
}

static int has_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && os_saves_state(0x6u);
}

static int has_avx512(void)
{
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
           __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") && has_avx2() &&
           os_saves_state(0xe6u);
}

static char g_features[128];

/* What the CPU (and OS) offer that the dispatch looks at, for info(). */
static void fs_record_features(void)
{
    g_features[0] = 0;
    if (__builtin_cpu_supports("sse2")) strcat(g_features, "sse2 ");
    if (__builtin_cpu_supports("avx")) strcat(g_features, "avx ");
    if (__builtin_cpu_supports("avx2")) strcat(g_features, "avx2 ");
    if (__builtin_cpu_supports("fma")) strcat(g_features, "fma ");
    if (__builtin_cpu_supports("avx512f")) strcat(g_features, "avx512f ");
    if (__builtin_cpu_supports("avx512dq")) strcat(g_features, "avx512dq ");
    if (__builtin_cpu_supports("avx512bw")) strcat(g_features, "avx512bw ");
    if (__builtin_cpu_supports("avx512vl")) strcat(g_features, "avx512vl ");
    if (os_saves_state(0x6u)) strcat(g_features, "os-ymm-state ");
    if (os_saves_state(0xe6u)) strcat(g_features, "os-zmm-state ");
    size_t k = strlen(g_features);
    if (k) g_features[k - 1] = 0;
}

const char *fs_cpu_features(void) { return g_features; }

/* The widest kernels this CPU and OS run; FASTSOFTMAX_SIMD=avx2 or =baseline caps the choice (tests run all). */
void fs_init(void)
{
    const char *env = getenv("FASTSOFTMAX_SIMD");
    int cap = !env ? 2 : strcmp(env, "baseline") == 0 ? 0 : strcmp(env, "avx2") == 0 ? 1 : 2;
    const fs_table *t = &fs_base_table;
    __builtin_cpu_init();
    fs_record_features();
    if (cap >= 2 && has_avx512())
        t = &fs_avx512_table;
    else if (cap >= 1 && has_avx2())
        t = &fs_avx2_table;
    g_tab = t;
}

const char *fs_simd_path(void)
{
    return g_tab == &fs_avx512_table ? "avx512" : g_tab == &fs_avx2_table ? "avx2_fma" : "baseline";
}

/* ------------------------------------------------------------------ */
/* rows                                                                 */
/* ------------------------------------------------------------------ */
void fs_softmax_row_f32(const float *x, float *y, ptrdiff_t n, double temperature)
{
    const fs_table *t = g_tab;
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    float m = t->max_f32(x, n, 0);
    if (!isfinite(m)) { fill_nan_f32(y, n); return; }   /* +inf, or all -inf/nan */
    fs_dd s = t->expsum_f32(x, y, n, m, tp);
    if (isnan(s.hi)) { fill_nan_f32(y, n); return; }
    t->scale_f32(y, n, 1.0 / s.hi);
}

void fs_softmax_row_f64(const double *x, double *y, ptrdiff_t n, double temperature)
{
    const fs_table *t = g_tab;
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    double m = t->max_f64(x, n, 0);
    if (!isfinite(m)) { fill_nan_f64(y, n); return; }
    fs_dd s = t->expsum_f64(x, y, n, m, tp);
    if (isnan(s.hi)) { fill_nan_f64(y, n); return; }
    t->scale_f64(y, n, fs_dd_inv(s));
}

void fs_log_softmax_row_f32(const float *x, float *y, ptrdiff_t n, double temperature)
{
    const fs_table *t = g_tab;
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    float m = t->max_f32(x, n, 0);
    if (m == INFINITY) {
        if (has_nan_f32(x, n, 1)) fill_nan_f32(y, n);
        else t->sub_f32(x, y, n, m, 0.0f, tp);
        return;
    }
    if (m == -INFINITY) { fill_nan_f32(y, n); return; }
    fs_dd s = t->expsum_f32(x, NULL, n, m, tp);
    if (isnan(s.hi)) { fill_nan_f32(y, n); return; }
    t->sub_f32(x, y, n, m, (float)fs_log_sum(s), tp);
}

void fs_log_softmax_row_f64(const double *x, double *y, ptrdiff_t n, double temperature)
{
    const fs_table *t = g_tab;
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    double m = t->max_f64(x, n, 0);
    if (m == INFINITY) {
        if (has_nan_f64(x, n, 1)) fill_nan_f64(y, n);
        else t->sub_f64(x, y, n, m, 0.0, tp);
        return;
    }
    if (m == -INFINITY) { fill_nan_f64(y, n); return; }
    fs_dd s = t->expsum_f64(x, NULL, n, m, tp);
    if (isnan(s.hi)) { fill_nan_f64(y, n); return; }
    t->sub_f64(x, y, n, m, fs_log_sum(s), tp);
}

float fs_logsumexp_row_f32(const float *x, ptrdiff_t n)
{
    const fs_table *t = g_tab;
    float m = t->max_f32(x, n, 0);
    if (!isfinite(m)) return has_nan_f32(x, n, 1) ? NAN : m;
    fs_dd s = t->expsum_f32(x, NULL, n, m, NULL);
    if (isnan(s.hi)) return NAN;
    return (float)((double)m + fs_log_sum(s));
}

double fs_logsumexp_row_f64(const double *x, ptrdiff_t n)
{
    const fs_table *t = g_tab;
    double m = t->max_f64(x, n, 0);
    if (!isfinite(m)) return has_nan_f64(x, n, 1) ? NAN : m;
    fs_dd s = t->expsum_f64(x, NULL, n, m, NULL);
    if (isnan(s.hi)) return NAN;
    return fs_lse_f64(m, s);
}

/* ------------------------------------------------------------------ */
/* columns                                                              */
/* ------------------------------------------------------------------ */
void fs_softmax_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature)
{
    fs_temp buf;
    g_tab->cols_f32(x, y, n, inner, ld, 0, fs_temp_of(temperature, &buf));
}
void fs_softmax_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature)
{
    fs_temp buf;
    g_tab->cols_f64(x, y, n, inner, ld, 0, fs_temp_of(temperature, &buf));
}
void fs_log_softmax_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature)
{
    fs_temp buf;
    g_tab->cols_f32(x, y, n, inner, ld, 1, fs_temp_of(temperature, &buf));
}
void fs_log_softmax_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, double temperature)
{
    fs_temp buf;
    g_tab->cols_f64(x, y, n, inner, ld, 1, fs_temp_of(temperature, &buf));
}
void fs_logsumexp_cols_f32(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld) { g_tab->cols_f32(x, y, n, inner, ld, 2, NULL); }
void fs_logsumexp_cols_f64(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld) { g_tab->cols_f64(x, y, n, inner, ld, 2, NULL); }

/* ------------------------------------------------------------------ */
/* slices                                                               */
/* ------------------------------------------------------------------ */
float fs_slice_max_f32(const float *x, ptrdiff_t n) { return g_tab->max_f32(x, n, 1); }
double fs_slice_max_f64(const double *x, ptrdiff_t n) { return g_tab->max_f64(x, n, 1); }
float fs_merge_max_f32(float a, float b) { return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b); }
double fs_merge_max_f64(double a, double b) { return (isnan(a) || isnan(b)) ? NAN : (a > b ? a : b); }

fs_dd fs_slice_sumexp_f32(const float *x, float *y, ptrdiff_t n, float max)
{
    if (!isfinite(max)) { fs_dd r = {NAN, 0.0}; return r; }
    return g_tab->expsum_f32(x, y, n, max, NULL);
}
fs_dd fs_slice_sumexp_f64(const double *x, double *y, ptrdiff_t n, double max)
{
    if (!isfinite(max)) { fs_dd r = {NAN, 0.0}; return r; }
    return g_tab->expsum_f64(x, y, n, max, NULL);
}

void fs_slice_scale_f32(float *y, ptrdiff_t n, float max, fs_dd sum)
{
    if (!isfinite(max) || isnan(sum.hi)) { fill_nan_f32(y, n); return; }
    g_tab->scale_f32(y, n, 1.0 / (sum.hi + sum.lo));
}
void fs_slice_scale_f64(double *y, ptrdiff_t n, double max, fs_dd sum)
{
    if (!isfinite(max) || isnan(sum.hi)) { fill_nan_f64(y, n); return; }
    g_tab->scale_f64(y, n, fs_dd_inv(sum));
}

void fs_slice_log_softmax_f32(const float *x, float *y, ptrdiff_t n, float max, double log_sum,
                              double temperature)
{
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    if (isnan(max) || max == -INFINITY) { fill_nan_f32(y, n); return; }
    if (max == INFINITY) { g_tab->sub_f32(x, y, n, max, 0.0f, tp); return; }
    if (isnan(log_sum)) { fill_nan_f32(y, n); return; }
    g_tab->sub_f32(x, y, n, max, (float)log_sum, tp);
}
void fs_slice_log_softmax_f64(const double *x, double *y, ptrdiff_t n, double max, double log_sum,
                              double temperature)
{
    fs_temp buf;
    const fs_temp *tp = fs_temp_of(temperature, &buf);
    if (isnan(max) || max == -INFINITY) { fill_nan_f64(y, n); return; }
    if (max == INFINITY) { g_tab->sub_f64(x, y, n, max, 0.0, tp); return; }
    if (isnan(log_sum)) { fill_nan_f64(y, n); return; }
    g_tab->sub_f64(x, y, n, max, log_sum, tp);
}

float fs_lse_finish_f32(float max, fs_dd sum)
{
    if (!isfinite(max)) return max;        /* nan, +inf, or -inf (all -inf) */
    if (isnan(sum.hi)) return NAN;
    return (float)((double)max + fs_log_sum(sum));
}
double fs_lse_finish_f64(double max, fs_dd sum)
{
    if (!isfinite(max)) return max;
    if (isnan(sum.hi)) return NAN;
    return fs_lse_f64(max, sum);
}

/* ------------------------------------------------------------------ */
/* huge rows in two passes over memory                                  */
/* ------------------------------------------------------------------ */
/* s * f as a double-double (f = exp(old max - new max) <= 1). */
static fs_dd fs_dd_scale(fs_dd s, double f)
{
    double hi = s.hi * f;
    return fs_fast_two_sum(hi, fma(s.hi, f, -hi) + s.lo * f);
}

/* exp((a - b) / T) for a <= b, with the roundings of a - b and of the division folded back in: the
   argument reaches hundreds for small T, and each ulp of it would cost that many ulps of the factor. */
static double fs_exp_shift(double a, double b, double temperature)
{
    fs_dd d = fs_two_sum(a, -b);
    double q = d.hi / temperature;
    double q_lo = (fma(-q, temperature, d.hi) + d.lo) / temperature;
    double f = exp(q);
    return f + f * q_lo;
}

/* One pass: the running max and the sum of exp(x - running max), block by
   block; a block is read from memory by the max and again from cache by
   the exp.  When the max grows, the sum so far is rescaled by
   exp(old - new), which keeps the count-the-max form exact for the
   entries equal to the final max. */
#define FS_ONLINE_BLOCK 4096

#define FS_DEF_MAX_SUMEXP(T, SFX)                                                                              \
    fs_dd fs_slice_max_sumexp_##SFX(const T *x, ptrdiff_t n, double temperature, T *max_out)                   \
    {                                                                                                           \
        const fs_table *t = g_tab;                                                                              \
        fs_temp buf;                                                                                            \
        const fs_temp *tp = fs_temp_of(temperature, &buf);                                                      \
        T m = -INFINITY;                                                                                        \
        fs_dd s = {0.0, 0.0};                                                                                   \
        for (ptrdiff_t i = 0; i < n; i += FS_ONLINE_BLOCK) {                                                    \
            ptrdiff_t k = n - i < FS_ONLINE_BLOCK ? n - i : FS_ONLINE_BLOCK;                                    \
            T bm = t->max_##SFX(x + i, k, 1);                                                                   \
            if (isnan(bm)) { *max_out = bm; fs_dd r = {NAN, 0.0}; return r; }                                   \
            if (bm == INFINITY) {      /* the sum is moot; only a later nan still matters */                    \
                for (i += k; i < n; i += FS_ONLINE_BLOCK)                                                       \
                    if (isnan(t->max_##SFX(x + i, n - i < FS_ONLINE_BLOCK ? n - i : FS_ONLINE_BLOCK, 1))) {     \
                        bm = NAN;                                                                               \
                        break;                                                                                  \
                    }                                                                                           \
                *max_out = bm; fs_dd r = {NAN, 0.0}; return r;                                                  \
            }                                                                                                   \
            if (bm > m) {                                                                                       \
                if (m != -INFINITY) s = fs_dd_scale(s, fs_exp_shift(m, bm, temperature));                      \
                m = bm;                                                                                         \
            }                                                                                                   \
            if (m != -INFINITY) s = fs_dd_add(s, t->expsum_##SFX(x + i, NULL, k, m, tp));                       \
        }                                                                                                       \
        *max_out = m;                                                                                           \
        return s;                                                                                               \
    }
FS_DEF_MAX_SUMEXP(float, f32)
FS_DEF_MAX_SUMEXP(double, f64)

/* Merge per-slice (max, sum) pairs in slice order: the row's max, and
   the sum rescaled to it.  A nan or +inf max wins (its sum is nan). */
double fs_merge_slices(const double *maxima, const fs_dd *sums, ptrdiff_t k, double temperature, fs_dd *sum_out)
{
    double m = -INFINITY;
    for (ptrdiff_t i = 0; i < k; i++) {
        if (isnan(maxima[i])) { sum_out->hi = NAN; sum_out->lo = 0.0; return NAN; }
        if (maxima[i] > m) m = maxima[i];
    }
    fs_dd s = {0.0, 0.0};
    if (isfinite(m))
        for (ptrdiff_t i = 0; i < k; i++)
            if (maxima[i] != -INFINITY)
                s = fs_dd_add(s, maxima[i] == m ? sums[i] : fs_dd_scale(sums[i], fs_exp_shift(maxima[i], m, temperature)));
    *sum_out = isinf(m) ? (fs_dd){NAN, 0.0} : s;
    return m;
}

void fs_slice_exp_scale_f32(const float *x, float *y, ptrdiff_t n, float max, fs_dd sum, double temperature)
{
    fs_temp buf;
    if (!isfinite(max) || isnan(sum.hi)) { fill_nan_f32(y, n); return; }
    g_tab->expscale_f32(x, y, n, max, 1.0 / (sum.hi + sum.lo), fs_temp_of(temperature, &buf));
}
void fs_slice_exp_scale_f64(const double *x, double *y, ptrdiff_t n, double max, fs_dd sum, double temperature)
{
    fs_temp buf;
    if (!isfinite(max) || isnan(sum.hi)) { fill_nan_f64(y, n); return; }
    g_tab->expscale_f64(x, y, n, max, fs_dd_inv(sum), fs_temp_of(temperature, &buf));
}
