/*
 * fs_kernels.c -- the kernels of fs_kernels.h: scalar helpers, the template instances, CPU dispatch.
 *
 * Layers:
 *  1. scalar double-double helpers and the temperature (1/T as a pair), shared by every instance.
 *  2. fs_kernels_impl.h instantiated once per (SIMD path, dtype) under target attributes: AVX-512 (F, DQ, BW, VL),
 *     AVX2+FMA and SSE2 on x86-64; NEON (FMA, 16-byte vectors) on aarch64; portable GCC vectors on every target.
 *     Nothing is built with -march: the widest path the CPU and OS support is picked at run time.
 *  3. dispatch (fs_init) and the public entries, which look the path's table up once per call.
 *
 * Build with -O3 -fno-trapping-math -fno-math-errno -ffp-contract=off, never -ffast-math: the TwoSum steps and the
 * nan/inf handling rely on IEEE semantics, and fused multiply-adds are written where they are meant.
 */
#include "fs_kernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(_M_X64)
#define FS_X86 1
#include <immintrin.h>
#include <cpuid.h>
#else
#define FS_X86 0
#endif
#if defined(__aarch64__)
#define FS_NEON 1
#include <arm_neon.h>
#else
#define FS_NEON 0
#endif

/* ================================================================================================================
 * 1. scalar helpers
 * ============================================================================================================== */
/* Inlined into each path's kernels, so that they are compiled for its instruction set. Called out of line, as SSE
   code, from a first AVX-512 log_softmax kernel that held its rows in registers, they made 128-float rows 5x
   slower: Xeon family 6 model 207, where SSE instructions pay while the upper halves of the vector registers are
   dirty. */
#define FS_SCALAR static inline __attribute__((always_inline))
FS_SCALAR fs_dd fs_two_sum(double a, double b)
{
    double s = a + b, bv = s - a, av = s - bv;
    fs_dd r = {s, (a - av) + (b - bv)};
    return r;
}
FS_SCALAR fs_dd fs_fast_two_sum(double a, double b)   /* |a| >= |b| or a == 0 */
{
    double s = a + b;
    fs_dd r = {s, b - (s - a)};
    return r;
}
/* r + (hi + lo), hi/lo a compensated partial sum */
FS_SCALAR fs_dd fs_dd_add1(fs_dd r, double hi, double lo)
{
    fs_dd t = fs_two_sum(r.hi, hi);
    return fs_fast_two_sum(t.hi, t.lo + (r.lo + lo));
}
FS_SCALAR fs_dd fs_dd_add(fs_dd a, fs_dd b) { return fs_dd_add1(a, b.hi, b.lo); }

/* 1/(hi + lo) as a double-double; once per row or column. */
FS_SCALAR fs_dd fs_dd_inv(fs_dd s)
{
    double h = 1.0 / s.hi;
    double rho = fma(-h, s.hi, 1.0) - h * s.lo;
    fs_dd r = {h, h * rho};
    return r;
}

/* log(hi + lo) for 2^-511 <= hi <= 2^511 (no integer step overflows there) and |lo| <= ulp(hi): fdlibm's e_log.c
   on the reduced argument 1 + g = hi / 2^k in [sqrt(1/2), sqrt(2)): log(1 + g) = g - g^2/2 + s (g^2/2 + R(s^2)),
   s = g / (2 + g), with its minimax R and ln2 as hi + lo. lo enters as lo 2^-k / (1 + g), taken as lo 2^-k (1 - g):
   off by lo 2^-k g^2, below 2^-70 of the result. At most 0.74 ulp on 40000 sums near 1 and up to e^40 against
   mpmath, where libm's log1p((hi - 1) + lo) reached 1.31 ulp. One body for scalars and vectors (GCC vector
   extensions: the same operations lane by lane, hence the same bits), so a row's log does not depend on whether its
   sum went through a vector of sums or alone; no libm call, which cost rows of 128 floats ~15 ns each. */
#define FS_DEFINE_LOG_DD(name, D, I, ATTR)                                                                            \
    ATTR D name(D hi, D lo)                                                                                           \
    {                                                                                                                 \
        I ix, k, fb, kb, sb;                                                                                          \
        D f, kd, sc;                                                                                                  \
        __builtin_memcpy(&ix, &hi, sizeof ix);                                                                        \
        I tmp = ix - 0x3fe6a09e667f3bcdLL;                 /* the bits of sqrt(1/2) */                                \
        k = tmp >> 52;                                                                                                \
        fb = ix - (tmp & ~0xfffffffffffffLL);              /* hi / 2^k */                                             \
        kb = k + 0x4338000000000000LL;                     /* 1.5 * 2^52 + k */                                       \
        sb = (0x3ffLL - k) << 52;                          /* 2^-k */                                                 \
        __builtin_memcpy(&f, &fb, sizeof f);                                                                          \
        __builtin_memcpy(&kd, &kb, sizeof kd);                                                                        \
        __builtin_memcpy(&sc, &sb, sizeof sc);                                                                        \
        kd = kd - 0x1.8p52;                                                                                           \
        D g = f - 1.0, gl = lo * sc;                       /* g exact (Sterbenz) */                                   \
        D c = gl - gl * g;                                                                                            \
        D s = g / (2.0 + g), z = s * s, w = z * z;                                                                    \
        D t1 = w * (0x1.999999997fa04p-2 + w * (0x1.c71c51d8e78afp-3 + w * 0x1.39a09d078c69fp-3));                    \
        D t2 = z * (0x1.5555555555593p-1 + w * (0x1.2492494229359p-2 + w * (0x1.7466496cb03dep-3 +                    \
                                                                            w * 0x1.2f112df3e5244p-3)));               \
        D R = t2 + t1, hfsq = 0.5 * g * g;                                                                            \
        return kd * 0x1.62e42feep-1 - ((hfsq - (s * (hfsq + R) + (kd * 0x1.a39ef35793c76p-33 + c))) - g);            \
    }
FS_DEFINE_LOG_DD(fs_log_dd, double, long long, FS_SCALAR)
FS_SCALAR double fs_log_sum_inl(fs_dd s)
{
    if (!(s.hi >= 0x1p-511 && s.hi <= 0x1p511)) return log(s.hi) + s.lo / s.hi;   /* 0, nan, inf: libm's values */
    return fs_log_dd(s.hi, s.lo);
}
double fs_log_sum(fs_dd s) { return fs_log_sum_inl(s); }

/* s * f as a double-double (f = exp(old max - new max) <= 1). */
static fs_dd fs_dd_scale(fs_dd s, double f)
{
    double hi = s.hi * f;
    return fs_fast_two_sum(hi, fma(s.hi, f, -hi) + s.lo * f);
}

/* exp((a - b) / T) for a <= b, with the roundings of a - b and of the division folded back in: the argument reaches
   hundreds for small T, and each ulp of it would cost that many ulps of the factor. */
static double fs_exp_shift(double a, double b, double temperature)
{
    fs_dd d = fs_two_sum(a, -b);
    double q = d.hi / temperature;
    double q_lo = (fma(-q, temperature, d.hi) + d.lo) / temperature;
    double f = exp(q);
    return f == 0.0 ? 0.0 : f + f * q_lo;   /* a - b overflowed to -inf: q_lo is nan, the factor 0 */
}

/* 1/T as inv + inv_err (double-double) for softmax(x / T), and T itself (for fs_exp_shift); NULL stands for T = 1. */
typedef struct { double inv, inv_err, t; } fs_temp;

static const fs_temp *fs_temp_of(double temperature, fs_temp *buf)
{
    if (temperature == 1.0) return NULL;
    buf->inv = 1.0 / temperature;
    buf->inv_err = fma(-temperature, buf->inv, 1.0) / temperature;
    buf->t = temperature;
    return buf;
}

/* Softmax rows that softmax_rows_overlap_t (fs_kernels_impl.h) takes, by their size in bytes: past L1 (64 KB, above
   the 48 KB L1 of Zen 5 and of recent Intel cores), and at most an eighth of L2, so that the three rows in flight
   (x and y of this row, y of the last) stay there with room to spare: at a fifth of a 2 MB L2 it was 1% slower,
   at a quarter 6%. The L2 size is read by fs_init; until then, and where the system does not say, 1 MB (Zen 4 and
   Zen 5). expsum_overlap_t prefetches the next row of y only up to the same size. */
#define FS_OVERLAP_MIN_BYTES ((ptrdiff_t)64 << 10)
#define FS_OVERLAP_ROWS 4
static ptrdiff_t g_overlap_max_bytes = ((ptrdiff_t)1 << 20) / 8;
static inline int fs_overlaps_rows(ptrdiff_t row_bytes)
{
    return row_bytes >= FS_OVERLAP_MIN_BYTES && row_bytes <= g_overlap_max_bytes;
}

/* Column classification: a finite max shows a nan as a nan sum; only infinite maxima need a scan. */
enum { FS_COL_OK = 0, FS_COL_NAN = 1, FS_COL_PINF = 2, FS_COL_NINF = 3 };

/* One (path, dtype)'s kernels. */
typedef struct {
    void (*rows)(int mode, const void *x, void *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp);
    void (*cols)(int mode, const void *x, void *y, ptrdiff_t n, ptrdiff_t width, ptrdiff_t ld, const fs_temp *tp);
    fs_dd (*slice_stats)(const void *x, ptrdiff_t n, const fs_temp *tp, double temperature, double *max_out);
    void (*slice_finish)(int mode, const void *x, void *y, ptrdiff_t n, double max, fs_dd sum, const fs_temp *tp);
    void (*backward_rows)(int log, const void *y, const void *g, void *out, ptrdiff_t rows, ptrdiff_t n);
    void (*backward_cols)(int log, const void *y, const void *g, void *out, ptrdiff_t n, ptrdiff_t inner,
                          double *scratch);
    double (*cross_entropy_row)(const void *x, const void *q, int64_t target, void *grad, ptrdiff_t n,
                                const double *w, double w_total, double ls, double scale);
    fs_passes passes;
} fs_ops;

/* ================================================================================================================
 * 2. the instances
 * ============================================================================================================== */
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

#if FS_X86
/* --- AVX-512 (Intel since Skylake-SP, AMD since Zen 4): 64-byte vectors, vscalef, masked tails --- */
#define FS_ISA avx512
#define FS_PATH_NAME "avx512"
#define FS_T __attribute__((target("avx512f,avx512dq,avx512bw,avx512vl,avx2,fma")))
#define VF fs_v16f
#define VD fs_v8d
#define VIF fs_v16i
#define VLD fs_v8l
#define NF 16
#define ND 8
#define FS_FMA 1
#define FS_AVX512 1
#define UF32 2                             /* vectors per iteration of the exp loops, as before */
#define UF64 4
/* Column tiles (fs_kernels_impl.h, cols_t). Measured on 2000x2000, one thread, Xeon family 6 model 207 (2 MB of L2),
   ns per element, softmax / log_softmax / logsumexp, best of 3-5: float32 64 columns 0.82 / 0.95 / 0.59 (128: 0.94 /
   1.08 / 0.60; 32: 0.94 / 1.13 / 0.66), float64 256 columns 2.09 / 2.70 / 1.50 (128: 2.30 / 2.97 / 1.60). */
#define TILE_F32 64
#define TILE_F64 256
#define VFMA_F(a, b, c) ((VF)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define VFMA_D(a, b, c) ((VD)_mm512_fmadd_pd((__m512d)(a), (__m512d)(b), (__m512d)(c)))
#define VMAX_F(a, b) ((VF)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define VMAX_D(a, b) ((VD)_mm512_max_pd((__m512d)(a), (__m512d)(b)))
#define VMIN_F(a, b) ((VF)_mm512_min_ps((__m512)(a), (__m512)(b)))
#define VMIN_D(a, b) ((VD)_mm512_min_pd((__m512d)(a), (__m512d)(b)))
#define CVT_LO_F(v) ((VD)_mm512_cvtps_pd(_mm512_castps512_ps256((__m512)(v))))
#define CVT_HI_F(v) ((VD)_mm512_cvtps_pd(_mm512_extractf32x8_ps((__m512)(v), 1)))
#define PACK_D_F(lo, hi) \
    ((VF)_mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps((__m512d)(lo))), _mm512_cvtpd_ps((__m512d)(hi)), 1))
#define FS_F64 0
#include "fs_kernels_impl.h"
#define FS_F64 1
#include "fs_kernels_impl.h"
#include "fs_isa_undef.h"

/* --- AVX2 + FMA (Intel since Haswell, AMD since Zen 1) --- */
#define FS_ISA avx2
#define FS_PATH_NAME "avx2_fma"
#define FS_T __attribute__((target("avx2,fma")))
#define VF fs_v8f
#define VD fs_v4d
#define VIF fs_v8i
#define VLD fs_v4l
#define NF 8
#define ND 4
#define FS_FMA 1
#define FS_AVX512 0
/* 8 vectors per iteration of the exp loops (they were 2 and 4): the exp of one vector is a chain of ~50 cycles
   of latency, and when the vectors come one after the other in the code, Zen 3's scheduler holds too few chains to
   keep its FP pipes busy (~14 cycles per float32 vector for ~30 operations). Measured on AMD EPYC family 25 model 1
   (Zen 3, AVX2 only), one thread, ns per element, best of 5 alternating runs, together with the shorter exp chain
   of exp_core and exp_poly (alone 4-6%): float32 rows of 1000 softmax 0.755 -> 0.692, log_softmax 0.794 -> 0.702,
   logsumexp 0.699 -> 0.626; rows of 128 softmax 0.840 -> 0.752, log_softmax 0.973 -> 0.879; rows of 152064 softmax
   0.764 -> 0.681; float64 (in the same run as 4 vectors a loop) rows of 1000 softmax 1.82 -> 1.70 (4: 1.76),
   log_softmax 1.85 -> 1.68 (1.79), logsumexp 1.65 -> 1.45 (1.56), rows of 128 softmax 1.84 -> 1.75 (1.84). In
   another run, 4 float32 vectors a loop against 8: softmax rows of 1000 0.685 against 0.656. The AVX-512 path keeps
   2 and 4: not measured here (that machine has no AVX-512). */
#define UF32 8
#define UF64 8
/* Column tiles of 512 bytes a row for both dtypes (they were 64 float32 and 256 float64 columns, the AVX-512 path's
   widths, 256 and 2048 bytes). AMD EPYC family 25 model 1 (Zen 3, 512 KB of L2), one thread, ns per element, best
   of 8 alternating runs, softmax / log_softmax / logsumexp on 2000x2000, then softmax on 8000 rows of 500 columns:
   float32 64 -> 128 columns 1.075 / 1.198 / 0.819, 1.232 -> 0.952 / 1.130 / 0.790, 1.174 (32: 1.157 / 1.283 / 0.904,
   1.490; 256: 0.936 / 1.201 / 0.786, 1.123); float64 256 -> 64 columns 2.790 / 3.326 / 2.162, 3.454 -> 2.489 / 2.869
   / 2.061, 2.690 (128: 2.414 / 2.928 / 2.008, 3.339; 32: 2.685 / 3.009 / 2.161, 2.832). */
#define TILE_F32 128
#define TILE_F64 64
#define VFMA_F(a, b, c) ((VF)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define VFMA_D(a, b, c) ((VD)_mm256_fmadd_pd((__m256d)(a), (__m256d)(b), (__m256d)(c)))
#define VMAX_F(a, b) ((VF)_mm256_max_ps((__m256)(a), (__m256)(b)))
#define VMAX_D(a, b) ((VD)_mm256_max_pd((__m256d)(a), (__m256d)(b)))
#define VMIN_F(a, b) ((VF)_mm256_min_ps((__m256)(a), (__m256)(b)))
#define VMIN_D(a, b) ((VD)_mm256_min_pd((__m256d)(a), (__m256d)(b)))
#define CVT_LO_F(v) ((VD)_mm256_cvtps_pd(_mm256_castps256_ps128((__m256)(v))))
#define CVT_HI_F(v) ((VD)_mm256_cvtps_pd(_mm256_extractf128_ps((__m256)(v), 1)))
#define PACK_D_F(lo, hi) ((VF)_mm256_set_m128(_mm256_cvtpd_ps((__m256d)(hi)), _mm256_cvtpd_ps((__m256d)(lo))))
#define FS_F64 0
#include "fs_kernels_impl.h"
#define FS_F64 1
#include "fs_kernels_impl.h"
#include "fs_isa_undef.h"

/* --- SSE2, the x86-64 baseline: FMA emulated by mul + add (with exact-pair corrections where it matters) --- */
#define FS_ISA sse2
#define FS_PATH_NAME "sse2"
#define FS_T
#define VF fs_v4f
#define VD fs_v2d
#define VIF fs_v4i
#define VLD fs_v2l
#define NF 4
#define ND 2
#define FS_FMA 0
#define FS_AVX512 0
/* 4 a loop (float32 was 2): on Zen 3 (as for AVX2 above) float32 rows of 1000 softmax 1.91 -> 1.72, log_softmax
   1.72 -> 1.57 ns per element (8 a loop: 1.81 / 1.75, spilling 16 registers) */
#define UF32 4
#define UF64 4
/* column tiles as AVX2's: on the same Zen 3, 2000x2000 softmax / logsumexp, float32 64 -> 128 columns 2.293 / 2.030
   -> 2.216 / 1.981, float64 256 -> 64 columns 6.530 / 6.150 -> 5.831 / 5.806 ns per element (128: 5.681 / 5.697) */
#define TILE_F32 128
#define TILE_F64 64
#define VFMA_F(a, b, c) ((a) * (b) + (c))
#define VFMA_D(a, b, c) ((a) * (b) + (c))
#define VMAX_F(a, b) ((VF)_mm_max_ps((__m128)(a), (__m128)(b)))
#define VMAX_D(a, b) ((VD)_mm_max_pd((__m128d)(a), (__m128d)(b)))
#define VMIN_F(a, b) ((VF)_mm_min_ps((__m128)(a), (__m128)(b)))
#define VMIN_D(a, b) ((VD)_mm_min_pd((__m128d)(a), (__m128d)(b)))
#define CVT_LO_F(v) ((VD)_mm_cvtps_pd((__m128)(v)))
#define CVT_HI_F(v) ((VD)_mm_cvtps_pd(_mm_movehl_ps((__m128)(v), (__m128)(v))))
#define PACK_D_F(lo, hi) ((VF)_mm_movelh_ps(_mm_cvtpd_ps((__m128d)(lo)), _mm_cvtpd_ps((__m128d)(hi))))
#define FS_F64 0
#include "fs_kernels_impl.h"
#define FS_F64 1
#include "fs_kernels_impl.h"
#include "fs_isa_undef.h"
#endif /* FS_X86 */

#if FS_NEON
/* --- NEON (every aarch64 CPU: Apple silicon, Graviton, Ampere): 16-byte vectors with FMA; vmaxnm returns the
   other operand for a nan, as the max accumulators need --- */
#define FS_ISA neon
#define FS_PATH_NAME "neon"
#define FS_T
#define VF fs_v4f
#define VD fs_v2d
#define VIF fs_v4i
#define VLD fs_v2l
#define NF 4
#define ND 2
#define FS_FMA 1
#define FS_AVX512 0
#define UF32 2                             /* not measured on NEON hardware: as before */
#define UF64 4
#define TILE_F32 64                        /* column tiles: not measured on NEON hardware, as before */
#define TILE_F64 256
#define VFMA_F(a, b, c) ((VF)vfmaq_f32((float32x4_t)(c), (float32x4_t)(a), (float32x4_t)(b)))
#define VFMA_D(a, b, c) ((VD)vfmaq_f64((float64x2_t)(c), (float64x2_t)(a), (float64x2_t)(b)))
#define VMAX_F(a, b) ((VF)vmaxnmq_f32((float32x4_t)(a), (float32x4_t)(b)))
#define VMAX_D(a, b) ((VD)vmaxnmq_f64((float64x2_t)(a), (float64x2_t)(b)))
#define VMIN_F(a, b) ((VF)vminnmq_f32((float32x4_t)(a), (float32x4_t)(b)))
#define VMIN_D(a, b) ((VD)vminnmq_f64((float64x2_t)(a), (float64x2_t)(b)))
#define CVT_LO_F(v) ((VD)vcvt_f64_f32(vget_low_f32((float32x4_t)(v))))
#define CVT_HI_F(v) ((VD)vcvt_high_f64_f32((float32x4_t)(v)))
#define PACK_D_F(lo, hi) ((VF)vcvt_high_f32_f64(vcvt_f32_f64((float64x2_t)(lo)), (float64x2_t)(hi)))
#define FS_F64 0
#include "fs_kernels_impl.h"
#define FS_F64 1
#include "fs_kernels_impl.h"
#include "fs_isa_undef.h"
#endif /* FS_NEON */

/* --- portable GCC vectors, no intrinsics: the baseline off x86 (and a check of the template anywhere) --- */
#define FS_ISA generic
#define FS_PATH_NAME "generic"
#define FS_T
#define VF fs_v4f
#define VD fs_v2d
#define VIF fs_v4i
#define VLD fs_v2l
#define NF 4
#define ND 2
#define FS_FMA 0
#define FS_AVX512 0
#define UF32 4
#define UF64 4
#define TILE_F32 64                        /* column tiles: as before */
#define TILE_F64 256
#define VFMA_F(a, b, c) ((a) * (b) + (c))
#define VFMA_D(a, b, c) ((a) * (b) + (c))
/* a where a > b, else b: b for a nan a, as the max accumulators need */
#define VMAX_F(a, b) ((VF)(((VIF)(a) & (VIF)((a) > (b))) | ((VIF)(b) & ~(VIF)((a) > (b)))))
#define VMAX_D(a, b) ((VD)(((VLD)(a) & (VLD)((a) > (b))) | ((VLD)(b) & ~(VLD)((a) > (b)))))
#define CVT_LO_F(v) ((VD){(double)(v)[0], (double)(v)[1]})
#define CVT_HI_F(v) ((VD){(double)(v)[2], (double)(v)[3]})
#define PACK_D_F(lo, hi) ((VF){(float)(lo)[0], (float)(lo)[1], (float)(hi)[0], (float)(hi)[1]})
#define FS_F64 0
#include "fs_kernels_impl.h"
#define FS_F64 1
#include "fs_kernels_impl.h"
#include "fs_isa_undef.h"

/* ================================================================================================================
 * 3. dispatch and the public entries
 * ============================================================================================================== */
typedef struct { const char *name; const fs_ops *dt[2]; } fs_table;

#if FS_X86
static const fs_table fs_avx512_table = {"avx512", {&fs_avx512_f32_ops, &fs_avx512_f64_ops}};
static const fs_table fs_avx2_table = {"avx2_fma", {&fs_avx2_f32_ops, &fs_avx2_f64_ops}};
static const fs_table fs_sse2_table = {"sse2", {&fs_sse2_f32_ops, &fs_sse2_f64_ops}};
#endif
#if FS_NEON
static const fs_table fs_neon_table = {"neon", {&fs_neon_f32_ops, &fs_neon_f64_ops}};
#endif
static const fs_table fs_generic_table = {"generic", {&fs_generic_f32_ops, &fs_generic_f64_ops}};

/* The lowest path every CPU of the architecture runs: used until fs_init has looked at the CPU. */
#if FS_X86
#define FS_BASELINE_TABLE fs_sse2_table
#else
#define FS_BASELINE_TABLE fs_generic_table
#endif

static const fs_table *g_tab = &FS_BASELINE_TABLE;
static char g_features[160];

#if FS_X86
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
#endif

const char *fs_cpu_features(void) { return g_features; }

static int env_is(const char *env, const char *name) { return env && strcmp(env, name) == 0; }

/* The widest kernels this CPU and OS run. FASTSOFTMAX_SIMD caps the choice (the tests run every path): "avx2" (at
   most AVX2+FMA), "baseline" (the architecture's lowest native path: SSE2 on x86-64, portable vectors elsewhere),
   "generic" (the portable GCC vectors, on any CPU). */
void fs_init(void)
{
#ifdef _SC_LEVEL2_CACHE_SIZE
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);   /* 0 or -1 where glibc does not know it (some aarch64 systems) */
    if (l2 > 0) g_overlap_max_bytes = (ptrdiff_t)l2 / 8;
#endif
    const char *env = getenv("FASTSOFTMAX_SIMD");
    const fs_table *t = &FS_BASELINE_TABLE;
#if FS_X86
    __builtin_cpu_init();
    fs_record_features();
    if (env_is(env, "generic"))
        t = &fs_generic_table;
    else if (env_is(env, "baseline") || env_is(env, "sse2"))
        t = &fs_sse2_table;
    else if (has_avx512() && !env_is(env, "avx2"))
        t = &fs_avx512_table;
    else if (has_avx2())
        t = &fs_avx2_table;
#elif FS_NEON
    strcpy(g_features, "neon");
    if (!env_is(env, "generic") && !env_is(env, "baseline")) t = &fs_neon_table;
#else
    (void)env;
#endif
    g_tab = t;
}

const char *fs_simd_path(void) { return g_tab->name; }

static const fs_ops *ops(int dtype) { return g_tab->dt[dtype == FS_FLOAT64]; }

void fs_rows(int dtype, int mode, const void *x, void *y, ptrdiff_t rows, ptrdiff_t n, double temperature)
{
    fs_temp buf;
    ops(dtype)->rows(mode, x, y, rows, n, (mode & ~FS_STREAM) == FS_LOGSUMEXP ? NULL : fs_temp_of(temperature, &buf));
}

ptrdiff_t fs_rows_per_call(int dtype, int mode, ptrdiff_t n)
{
    ptrdiff_t item = dtype == FS_FLOAT64 ? (ptrdiff_t)sizeof(double) : (ptrdiff_t)sizeof(float);
    return mode == FS_SOFTMAX && fs_overlaps_rows(n * item) ? FS_OVERLAP_ROWS : 1;
}

void fs_cols(int dtype, int mode, const void *x, void *y, ptrdiff_t n, ptrdiff_t width, ptrdiff_t ld,
             double temperature)
{
    fs_temp buf;
    ops(dtype)->cols(mode, x, y, n, width, ld, mode == FS_LOGSUMEXP ? NULL : fs_temp_of(temperature, &buf));
}

fs_dd fs_slice_stats(int dtype, const void *x, ptrdiff_t n, double temperature, double *max_out)
{
    fs_temp buf;
    return ops(dtype)->slice_stats(x, n, fs_temp_of(temperature, &buf), temperature, max_out);
}

void fs_slice_finish(int dtype, int mode, const void *x, void *y, ptrdiff_t n, double max, fs_dd sum,
                     double temperature)
{
    fs_temp buf;
    ops(dtype)->slice_finish(mode, x, y, n, max, sum, mode == FS_LOGSUMEXP ? NULL : fs_temp_of(temperature, &buf));
}

/* Merge per-slice (max, sum) pairs in slice order: the row's max, and the sum rescaled to it. A nan or +inf max
   wins (its sum is nan). */
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
                s = fs_dd_add(s, maxima[i] == m ? sums[i]
                                                : fs_dd_scale(sums[i], fs_exp_shift(maxima[i], m, temperature)));
    *sum_out = isinf(m) ? (fs_dd){NAN, 0.0} : s;
    return m;
}

void fs_backward_rows(int dtype, int log, const void *y, const void *g, void *out, ptrdiff_t rows, ptrdiff_t n)
{
    ops(dtype)->backward_rows(log, y, g, out, rows, n);
}

void fs_backward_cols(int dtype, int log, const void *y, const void *g, void *out, ptrdiff_t n, ptrdiff_t inner,
                      double *scratch)
{
    ops(dtype)->backward_cols(log, y, g, out, n, inner, scratch);
}

double fs_cross_entropy_row(int dtype, const void *x, const void *q, int64_t target, void *grad, ptrdiff_t n,
                            const double *w, double w_total, double ls, double scale)
{
    return ops(dtype)->cross_entropy_row(x, q, target, grad, n, w, w_total, ls, scale);
}

const fs_passes *fs_passes_of(const char *path, int dtype)
{
    int d = dtype == FS_FLOAT64;
    if (strcmp(path, "generic") == 0) return &fs_generic_table.dt[d]->passes;
#if FS_X86
    __builtin_cpu_init();
    if (strcmp(path, "avx512") == 0) return has_avx512() ? &fs_avx512_table.dt[d]->passes : NULL;
    if (strcmp(path, "avx2_fma") == 0) return has_avx2() ? &fs_avx2_table.dt[d]->passes : NULL;
    if (strcmp(path, "sse2") == 0) return &fs_sse2_table.dt[d]->passes;
#elif FS_NEON
    if (strcmp(path, "neon") == 0) return &fs_neon_table.dt[d]->passes;
#endif
    return NULL;
}
