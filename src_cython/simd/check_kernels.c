/*
 * check_kernels.c -- standalone accuracy / semantics / speed check of fs_kernels.c against a long double
 * reference. No Python needed:
 *   gcc -O3 -fno-trapping-math -fno-math-errno -ffp-contract=off -Wall -Wextra \
 *       check_kernels.c fs_kernels.c -lm -o check_kernels
 *   ./check_kernels            # the widest path this CPU runs, every check, then whole-kernel timings
 *   FASTSOFTMAX_SIMD=avx2 ./check_kernels quick     # =avx2, =baseline or =generic caps the path
 *   ./check_kernels quick      # skip the 10^6 / 10^7 rows and the timings
 *   ./check_kernels time       # timings only: ns per element of each pass on every path this CPU runs, beside a
 *                              # plain "fast" kernel (MLAS-style exp, float32 sums, no accuracy work) as a yardstick
 * Exit status is non-zero when a bound or a non-finite rule is violated.
 */
#include "fs_kernels.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

typedef long double ld;

/* one row of n through the public entry (logsumexp: returns the value) */
static void sm_row_f32(int mode, const float *x, float *y, size_t n) { fs_rows(FS_FLOAT32, mode, x, y, 1, n, 1.0); }
static void sm_row_f64(int mode, const double *x, double *y, size_t n) { fs_rows(FS_FLOAT64, mode, x, y, 1, n, 1.0); }

/* ------------------------------------------------------------------ */
/* random numbers                                                       */
/* ------------------------------------------------------------------ */
static uint64_t rng_s = 0x9E3779B97F4A7C15ull;
static double urand(void)
{
    rng_s ^= rng_s << 13; rng_s ^= rng_s >> 7; rng_s ^= rng_s << 17;
    return ((rng_s >> 11) + 0.5) * 0x1p-53;
}
static double nrand(void) { return sqrt(-2.0 * log(urand())) * cos(6.283185307179586 * urand()); }

/* ------------------------------------------------------------------ */
/* reference (long double, pairwise sums, exact x - m split)            */
/* ------------------------------------------------------------------ */
static ld exp_diff(ld x, ld m)
{
    if (x == -INFINITY) return 0.0L;
    ld s = x - m, bv = s - x, av = s - bv, lo = (x - av) + (-m - bv);
    return expl(s) * (1.0L + lo);
}
static ld pairwise(const ld *v, size_t n)
{
    if (n <= 16) { ld s = 0; for (size_t i = 0; i < n; i++) s += v[i]; return s; }
    return pairwise(v, n / 2) + pairwise(v + n / 2, n - n / 2);
}
typedef struct { int anynan, anypinf; ld m, count, others; } refinfo;
static ld *g_tmp;
static refinfo ref_scan(const ld *x, size_t n, size_t stride)
{
    refinfo r = {0, 0, -INFINITY, 0, 0};
    for (size_t i = 0; i < n; i++) {
        ld v = x[i * stride];
        if (isnan(v)) r.anynan = 1;
        else { if (v == INFINITY) r.anypinf = 1; if (v > r.m) r.m = v; }
    }
    if (r.anynan || !isfinite(r.m)) return r;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        ld v = x[i * stride];
        if (v == r.m) r.count += 1;
        else g_tmp[k++] = exp_diff(v, r.m);
    }
    r.others = pairwise(g_tmp, k);
    return r;
}
/* kind 0 softmax, 1 log_softmax; out[i * stride] */
static void ref_row(int kind, const ld *x, size_t n, size_t stride, ld *out)
{
    refinfo r = ref_scan(x, n, stride);
    for (size_t i = 0; i < n; i++) {
        ld v = x[i * stride], o;
        if (kind == 0) {
            if (r.anynan || r.anypinf || r.m == -INFINITY) o = NAN;
            else o = exp_diff(v, r.m) / (r.count + r.others);
        } else {
            if (r.anynan) o = NAN;
            else if (r.m == INFINITY) o = (v == INFINITY) ? NAN : -INFINITY;
            else if (r.m == -INFINITY) o = NAN;
            else o = (v - r.m) - log1pl((r.count - 1) + r.others);
        }
        out[i] = o;
    }
}
static ld ref_lse(const ld *x, size_t n, size_t stride)
{
    refinfo r = ref_scan(x, n, stride);
    if (r.anynan) return NAN;
    if (r.anypinf) return INFINITY;
    if (r.m == -INFINITY) return -INFINITY;
    return r.m + log1pl((r.count - 1) + r.others);
}

/* ------------------------------------------------------------------ */
/* error accounting                                                     */
/* ------------------------------------------------------------------ */
typedef struct {
    const char *name;
    double maxulp, maxsum;   /* ULP, row-sum error in eps */
    long bad, tinybad, checked;
    char worst[256];
} stat;

/* ULP of r, or of |floor| when larger (logsumexp with a cancelling max) */
static ld g_floor;
static void cmp(stat *st, int f32, ld y, ld r, const char *ctx, size_t idx)
{
    st->checked++;
    int ok;
    double u = 0;
    ld maxf = f32 ? FLT_MAX : DBL_MAX;
    if (r < -maxf * (1 + (f32 ? 0x1p-25L : 0x1p-54L))) r = -INFINITY;   /* reference overflows the dtype */
    if (r > maxf * (1 + (f32 ? 0x1p-25L : 0x1p-54L))) r = INFINITY;
    if (isnan(r)) ok = isnan(y);
    else if (isinf(r)) ok = (y == r);
    else if (isnan(y) || isinf(y)) ok = 0;
    else {
        ld minn = f32 ? FLT_MIN : DBL_MIN;
        if (fabsl(r) < minn) {
            if (fabsl(y - r) >= minn) { st->tinybad++; if (st->tinybad < 5) printf("  TINY %s %s idx %zu: y=%Lg ref=%Lg\n", st->name, ctx, idx, y, r); }
            return;
        }
        int e; frexpl(fabsl(r) > g_floor ? r : g_floor, &e);
        ld ulp = ldexpl(1.0L, e - (f32 ? 24 : 53));
        u = (double)(fabsl(y - r) / ulp);
        if (u > st->maxulp) {
            st->maxulp = u;
            snprintf(st->worst, sizeof st->worst, "%s idx %zu y=%.17Lg ref=%.20Lg", ctx, idx, y, r);
        }
        return;
    }
    if (!ok) {
        st->bad++;
        if (st->bad < 8) printf("  MISMATCH %s %s idx %zu: y=%Lg ref=%Lg\n", st->name, ctx, idx, y, r);
    }
}

enum { K_SM, K_LSM, K_LSE, K_SM_COL, K_LSM_COL, K_LSE_COL, K_SM_SL, K_LSM_SL, K_LSE_SL, NK };
static const char *kname[NK] = {"softmax_row", "log_softmax_row", "logsumexp_row",
                                "softmax_cols", "log_softmax_cols", "logsumexp_cols",
                                "softmax_slices", "log_softmax_slices", "logsumexp_slices"};
static stat S[2][NK];   /* [f64?][kernel] */

/* ------------------------------------------------------------------ */
/* slice protocol drivers (k slices, sequential here)                  */
/* ------------------------------------------------------------------ */
/* mode of fs_kernels.h over one row cut into k slices: stats, merge, finish (logsumexp: returns the value) */
static double slices(int dtype, int mode, const void *x, void *y, size_t n, int k)
{
    size_t c = (n + k - 1) / k, item = dtype == FS_FLOAT32 ? 4 : 8;
    double maxima[64] = {0};
    fs_dd sums[64] = {{0, 0}}, total;
    int parts = 0;
    for (size_t a = 0; a < n; a += c, parts++)
        sums[parts] = fs_slice_stats(dtype, (const char *)x + a * item, n - a < c ? n - a : c, 1.0, &maxima[parts]);
    double m = fs_merge_slices(maxima, sums, parts, 1.0, &total);
    if (mode == FS_LOGSUMEXP) {
        double out[1];
        float outf[1];
        fs_slice_finish(dtype, mode, x, dtype == FS_FLOAT32 ? (void *)outf : (void *)out, n, m, total, 1.0);
        return dtype == FS_FLOAT32 ? outf[0] : out[0];
    }
    for (size_t a = 0; a < n; a += c)
        fs_slice_finish(dtype, mode, (const char *)x + a * item, (char *)y + a * item, n - a < c ? n - a : c, m, total,
                        1.0);
    return 0;
}

/* ------------------------------------------------------------------ */
/* row checks                                                           */
/* ------------------------------------------------------------------ */
static ld *g_x, *g_r;
static float *g_xf, *g_yf, *g_ysf;
static double *g_xd, *g_yd, *g_ysd;

static void sumcheck(stat *st, int f32, const void *y, size_t n)
{
    ld s = 0;
    for (size_t i = 0; i < n; i++) s += f32 ? (ld)((const float *)y)[i] : (ld)((const double *)y)[i];
    if (isnan(s)) return;
    double e = (double)(fabsl(s - 1) / (f32 ? FLT_EPSILON : DBL_EPSILON));
    if (e > st->maxsum) st->maxsum = e;
}

/* g_x holds the row (already representable in the dtype) */
static void check_row(int f64, size_t n, const char *ctx)
{
    int f32 = !f64;
    for (size_t i = 0; i < n; i++) { if (f32) g_xf[i] = (float)g_x[i]; else g_xd[i] = (double)g_x[i]; }
    for (int kind = 0; kind < 2; kind++) {
        ref_row(kind, g_x, n, 1, g_r);
        for (int sl = 0; sl < 2; sl++) {
            stat *st = &S[f64][(kind == 0 ? K_SM : K_LSM) + (sl ? 6 : 0)];
            if (f32) {
                if (!sl) sm_row_f32(kind, g_xf, g_yf, n); else slices(FS_FLOAT32, kind, g_xf, g_yf, n, 3);
                for (size_t i = 0; i < n; i++) cmp(st, 1, g_yf[i], g_r[i], ctx, i);
                if (kind == 0 && !isnan(g_r[0])) sumcheck(st, 1, g_yf, n);
            } else {
                if (!sl) sm_row_f64(kind, g_xd, g_yd, n); else slices(FS_FLOAT64, kind, g_xd, g_yd, n, 3);
                for (size_t i = 0; i < n; i++) cmp(st, 0, g_yd[i], g_r[i], ctx, i);
                if (kind == 0 && !isnan(g_r[0])) sumcheck(st, 0, g_yd, n);
            }
            if (!sl) {   /* the streaming stores write the same bits, at every alignment of y */
                size_t off = n % 7;
                if (f32) fs_rows(FS_FLOAT32, kind | FS_STREAM, g_xf, g_ysf + off, 1, n, 1.0);
                else fs_rows(FS_FLOAT64, kind | FS_STREAM, g_xd, g_ysd + off, 1, n, 1.0);
                if (memcmp(f32 ? (void *)g_yf : (void *)g_yd, f32 ? (void *)(g_ysf + off) : (void *)(g_ysd + off),
                           n * (f32 ? 4 : 8)) != 0) {
                    st->bad++;
                    printf("  STREAM differs %s %s\n", st->name, ctx);
                }
            }
        }
    }
    ld r = ref_lse(g_x, n, 1);
    g_floor = fabsl(ref_scan(g_x, n, 1).m);
    if (!isfinite(g_floor)) g_floor = 0;
    if (f32) {
        float v;
        sm_row_f32(FS_LOGSUMEXP, g_xf, &v, n);
        cmp(&S[0][K_LSE], 1, v, r, ctx, 0);
        cmp(&S[0][K_LSE_SL], 1, (float)slices(FS_FLOAT32, FS_LOGSUMEXP, g_xf, NULL, n, 3), r, ctx, 0);
    } else {
        double v;
        sm_row_f64(FS_LOGSUMEXP, g_xd, &v, n);
        cmp(&S[1][K_LSE], 0, v, r, ctx, 0);
        cmp(&S[1][K_LSE_SL], 0, slices(FS_FLOAT64, FS_LOGSUMEXP, g_xd, NULL, n, 3), r, ctx, 0);
    }
    g_floor = 0;
}

/* The timed buffers, on 2 MB pages where the kernel grants them, as numpy asks for its large arrays
   (MADV_HUGEPAGE), so that `time` measures what the Python callers get. On 4 KB pages the passes that step from
   row to row pay a TLB miss a row: AVX2 on an AMD EPYC family 25 model 1 (Zen 3), one thread, ns per element, two
   runs, softmax columns 2000x2000 float32 1.21-1.33 against 1.07-1.11, float64 3.29-3.33 against 2.92-3.30;
   logsumexp rows of 128 float32 0.81-1.19 against 0.76-0.77. */
static void *big_alloc(size_t bytes)
{
    size_t page = (size_t)2 << 20;
    void *p = NULL;
    bytes = (bytes + page - 1) / page * page;
    if (posix_memalign(&p, page, bytes) != 0) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, bytes, MADV_HUGEPAGE);   /* advice only: 4 KB pages where refused */
#endif
    return p;
}

/* Rows in one call against the same rows one call each: the batched paths (softmax rows overlapping their passes
   past L1, the log modes' groups of short rows) must give the bits of the row alone, with special rows (+inf, nan,
   all -inf, peaked) among them and with a temperature. Returns the number of rows that differ. */
static long check_batched(int f64, int mode, size_t rows, size_t n, const char *what)
{
    int dtype = f64 ? FS_FLOAT64 : FS_FLOAT32;
    size_t item = f64 ? 8 : 4, out = mode == FS_LOGSUMEXP ? 1 : n;
    char *x = malloc(rows * n * item), *y = malloc(rows * out * item), *one = malloc(out * item);
    for (size_t i = 0; i < rows * n; i++) {
        double v = 3 * nrand();
        if (i / n == 1 && i % n == n / 2) v = INFINITY;
        if (i / n == 3 && i % n == n - 1) v = NAN;
        if (i / n == 4) v = -INFINITY;
        if (i / n == 5 && i % n == 0) v = 40;   /* a peaked row: its log sum is 1 + tiny */
        if (f64) ((double *)x)[i] = v; else ((float *)x)[i] = (float)v;
    }
    long bad = 0;
    double temps[] = {1.0, 0.7};
    for (int t = 0; t < (mode == FS_LOGSUMEXP ? 1 : 2); t++) {
        fs_rows(dtype, mode, x, y, rows, n, temps[t]);
        for (size_t r = 0; r < rows; r++) {
            fs_rows(dtype, mode, x + r * n * item, one, 1, n, temps[t]);
            if (memcmp(y + r * out * item, one, out * item) != 0) {
                bad++;
                printf("  %s: %s mode %d row %zu of %zux%zu, T=%g differs from the row alone\n", what,
                       f64 ? "f64" : "f32", mode, r, rows, n, temps[t]);
            }
        }
    }
    free(x); free(y); free(one);
    return bad;
}

static long check_batched_rows(int f64)
{
    long bad = 0;
    size_t n = (f64 ? 12000 : 24000) + 13;   /* 96 KB rows; odd, for the tails */
    if (fs_rows_per_call(f64 ? FS_FLOAT64 : FS_FLOAT32, FS_SOFTMAX, n) < 2)
        printf("  overlapped rows: not used for n=%zu on this machine (L2 below 768 KB)\n", n);
    else
        bad += check_batched(f64, FS_SOFTMAX, 7, n, "overlapped softmax rows");
    size_t shorts[] = {1, 5, 8, 16, 17, 33, 64, 100, 128, 200, 256, 300};
    for (size_t k = 0; k < sizeof shorts / sizeof *shorts; k++)
        for (int mode = 0; mode < 3; mode++) bad += check_batched(f64, mode, 37, shorts[k], "short rows");
    return bad;
}

/* fs_log_sum, the log of every sum (its vector form gives the same bits, check_batched): the largest error in
   double ulps over sums near 1 (where log(sum) is the output of a peaked row) and up to 2^40, against log1pl. */
static double check_log_sum(void)
{
    double worst = 0;
    for (int i = 0; i < 200000; i++) {
        double hi = i % 2 ? 1 + ldexp(urand(), -(i % 60)) : exp(40 * urand()) + 1;
        double lo = ldexp(urand() - 0.5, -53) * hi, t = hi + lo;
        lo -= t - hi;                                          /* normalised: |lo| <= ulp(hi) / 2 */
        hi = t;
        ld ref = log1pl(((ld)hi - 1) + (ld)lo);
        int e;
        frexpl(ref, &e);
        double err = (double)(fabsl((ld)fs_log_sum((fs_dd){hi, lo}) - ref) / ldexpl(1, e - 53));
        if (ref != 0 && err > worst) worst = err;
    }
    return worst;
}

static void gen_row(int f64, size_t n, double off, double sd)
{
    for (size_t i = 0; i < n; i++) {
        double v = off + sd * nrand();
        g_x[i] = f64 ? (ld)v : (ld)(float)v;
    }
}

/* ------------------------------------------------------------------ */
/* column checks                                                        */
/* ------------------------------------------------------------------ */
static void check_cols(int f64, size_t n, size_t inner, const char *ctx)
{
    /* g_x holds the (n, inner) block */
    size_t N = n * inner;
    for (size_t i = 0; i < N; i++) { if (!f64) g_xf[i] = (float)g_x[i]; else g_xd[i] = (double)g_x[i]; }
    for (int kind = 0; kind < 3; kind++) {
        stat *st = &S[f64][K_SM_COL + kind];
        if (!f64) fs_cols(FS_FLOAT32, kind, g_xf, g_yf, n, inner, inner, 1.0);
        else fs_cols(FS_FLOAT64, kind, g_xd, g_yd, n, inner, inner, 1.0);
        for (size_t j = 0; j < inner; j++) {
            if (kind == 2) {
                ld r = ref_lse(g_x + j, n, inner);
                g_floor = fabsl(ref_scan(g_x + j, n, inner).m);
                if (!isfinite(g_floor)) g_floor = 0;
                cmp(st, !f64, f64 ? (ld)g_yd[j] : (ld)g_yf[j], r, ctx, j);
                g_floor = 0;
                continue;
            }
            ref_row(kind, g_x + j, n, inner, g_r);
            ld sum = 0;
            for (size_t i = 0; i < n; i++) {
                ld y = f64 ? (ld)g_yd[i * inner + j] : (ld)g_yf[i * inner + j];
                cmp(st, !f64, y, g_r[i], ctx, i * inner + j);
                sum += y;
            }
            if (kind == 0 && !isnan(g_r[0])) {
                double e = (double)(fabsl(sum - 1) / (f64 ? DBL_EPSILON : FLT_EPSILON));
                if (e > st->maxsum) st->maxsum = e;
            }
        }
    }
}

/* ------------------------------------------------------------------ */
/* timing                                                               */
/* ------------------------------------------------------------------ */
static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}
static volatile double sink;
static void fill_random(int f64, size_t N)
{
    for (size_t i = 0; i < N; i++) {
        double v = 3 * nrand();
        if (f64) g_xd[i] = v; else g_xf[i] = (float)v;
    }
}
/* best time of `reps` runs of fn over ~0.3 s, in ns per element */
#define BEST_NS(N_ELEM, CALL)                                                                   \
    ({                                                                                          \
        double best_ = 1e30, t0_ = now();                                                       \
        for (int rep_ = 0; rep_ < 3 || (now() - t0_ < 0.3 && rep_ < 2000); rep_++) {            \
            double a_ = now();                                                                  \
            CALL;                                                                               \
            double d_ = now() - a_;                                                             \
            if (d_ < best_) best_ = d_;                                                         \
        }                                                                                       \
        best_ * 1e9 / (double)(N_ELEM);                                                         \
    })

/* whole kernels on the current path: one fs_rows call over every row, as the drivers make them */
static void time_kernels(void)
{
    static const char *fn[3] = {"softmax", "log_softmax", "logsumexp"};
    printf("\ntiming (ns/element, best of repeats, one thread, path %s)\n", fs_simd_path());
    size_t shapes[][2] = {{256, 1000}, {12288, 128}, {8, 152064}};
    for (int f = 0; f < 2; f++) {
        int dt = f ? FS_FLOAT64 : FS_FLOAT32;
        void *x = f ? (void *)g_xd : (void *)g_xf, *y = f ? (void *)g_yd : (void *)g_yf;
        for (int k = 0; k < 3; k++) {
            printf("%-12s %s ", fn[k], f ? "f64" : "f32");
            for (int s = 0; s < 3; s++) {
                size_t R = shapes[s][0], n = shapes[s][1];
                fill_random(f, R * n);
                printf(" %zux%zu: %6.3f", R, n, BEST_NS(R * n, fs_rows(dt, k, x, y, R, n, 1.0)));
            }
            fill_random(f, 2000 * 2000);
            printf("  cols 2000x2000: %6.3f\n", BEST_NS(2000 * 2000, fs_cols(dt, k, x, y, 2000, 2000, 2000, 1.0)));
        }
    }
}

/* ---- the yardstick: MLAS's recipe (exp of x - max rounded, degree-6 Horner after a two-constant reduction,
   2^n from exponent bits, one float32 accumulator, 3 passes per row), for each x86 path ---- */
#if defined(__x86_64__)
#include <immintrin.h>
#define FAST_KERNEL(NAME, TARGET, VF, VI, N, FMA, MAX)                                                       \
    __attribute__((target(TARGET))) static void NAME(const float *x, float *y, size_t rows, size_t n)        \
    {                                                                                                        \
        for (size_t r = 0; r < rows; r++, x += n, y += n) {                                                  \
            VF m = (VF){0} - INFINITY;                                                                       \
            size_t i = 0;                                                                                    \
            for (; i + N <= n; i += N) { VF v; memcpy(&v, x + i, sizeof v); m = MAX(v, m); }                 \
            float mx = -INFINITY;                                                                            \
            for (int k = 0; k < N; k++) mx = m[k] > mx ? m[k] : mx;                                          \
            for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;                                                   \
            VF negm = (VF){0} - mx, acc = (VF){0};                                                           \
            float tail = 0.0f;                                                                               \
            for (i = 0; i + N <= n; i += N) {                                                                \
                VF v;                                                                                        \
                memcpy(&v, x + i, sizeof v);                                                                 \
                v = MAX((VF){0} - 88.3762626647949f, v + negm);                                              \
                VF b = FMA(v, (VF){0} + 1.44269504088896341f, (VF){0} + 0x1.8p23f), k = b - 0x1.8p23f;        \
                v = FMA(k, (VF){0} - 6.93145752e-1f, v);                                                     \
                v = FMA(k, (VF){0} - 1.42860677e-6f, v);                                                     \
                VF p = FMA((VF){0} + 0x1.694000p-10f, v, (VF){0} + 0x1.125edcp-7f);                          \
                p = FMA(p, v, (VF){0} + 0x1.555b5ap-5f);                                                     \
                p = FMA(p, v, (VF){0} + 0x1.555450p-3f);                                                     \
                p = FMA(p, v, (VF){0} + 0x1.fffff6p-2f);                                                     \
                p = FMA(p, v, (VF){0} + 1.0f);                                                               \
                p = FMA(p, v, (VF){0} + 1.0f);                                                               \
                p = p * (VF)(((VI)b << 23) + 0x3f800000);                                                    \
                memcpy(y + i, &p, sizeof p);                                                                 \
                acc += p;                                                                                    \
            }                                                                                                \
            for (; i < n; i++) { y[i] = expf(x[i] - mx); tail += y[i]; }                                     \
            for (int k = 0; k < N; k++) tail += acc[k];                                                      \
            VF scale = (VF){0} + 1.0f / tail;                                                                \
            for (i = 0; i + N <= n; i += N) { VF v; memcpy(&v, y + i, sizeof v); v *= scale; memcpy(y + i, &v, sizeof v); } \
            for (; i < n; i++) y[i] *= scale[0];                                                             \
        }                                                                                                    \
    }
typedef float fast_v16f __attribute__((vector_size(64)));
typedef int32_t fast_v16i __attribute__((vector_size(64)));
typedef float fast_v8f __attribute__((vector_size(32)));
typedef int32_t fast_v8i __attribute__((vector_size(32)));
#define FMA512(a, b, c) ((fast_v16f)_mm512_fmadd_ps((__m512)(a), (__m512)(b), (__m512)(c)))
#define MAX512(a, b) ((fast_v16f)_mm512_max_ps((__m512)(a), (__m512)(b)))
#define FMA256(a, b, c) ((fast_v8f)_mm256_fmadd_ps((__m256)(a), (__m256)(b), (__m256)(c)))
#define MAX256(a, b) ((fast_v8f)_mm256_max_ps((__m256)(a), (__m256)(b)))
FAST_KERNEL(fast_avx512, "avx512f,avx512dq,fma", fast_v16f, fast_v16i, 16, FMA512, MAX512)
FAST_KERNEL(fast_avx2, "avx2,fma", fast_v8f, fast_v8i, 8, FMA256, MAX256)
#endif

/* ns per element of each pass, for every path this CPU runs, against the yardstick */
static void time_passes(void)
{
    static const char *paths[] = {"avx512", "avx2_fma", "sse2", "neon", "generic"};
    size_t shapes[][2] = {{256, 1000}, {1, 152064}, {12288, 128}};
    printf("\nper pass (ns/element, one thread; rows processed one after another, each pass over the whole row)\n");
    printf("%-9s %-4s %-12s %8s %8s %8s %8s %8s %8s %8s\n", "path", "dt", "rows x n", "max", "exp+st", "scale",
           "softmax", "exp+cnt", "sub", "log_sm");
    for (int pi = 0; pi < 5; pi++)
        for (int f = 0; f < 2; f++) {
            const fs_passes *p = fs_passes_of(paths[pi], f ? FS_FLOAT64 : FS_FLOAT32);
            if (!p) continue;
            for (int si = 0; si < 3; si++) {
                size_t R = shapes[si][0], n = shapes[si][1], item = f ? 8 : 4;
                char *x = f ? (char *)g_xd : (char *)g_xf, *y = f ? (char *)g_yd : (char *)g_yf;
                fill_random(f, R * n);
                static double ms[16384];
                static fs_dd ss[16384];
                /* each pass's cost is the difference between running the passes up to it and up to the one before,
                   so that every pass sees the row where the previous ones left it (in L1 for short rows) */
                double t1 = BEST_NS(R * n, for (size_t r = 0; r < R; r++) ms[r] = p->max(x + r * n * item, n));
                double t2 = BEST_NS(R * n, for (size_t r = 0; r < R; r++) {
                    ms[r] = p->max(x + r * n * item, n);
                    ss[r] = p->expsum(x + r * n * item, y + r * n * item, n, ms[r]);
                });
                double t3 = BEST_NS(R * n, for (size_t r = 0; r < R; r++) {
                    ms[r] = p->max(x + r * n * item, n);
                    ss[r] = p->expsum(x + r * n * item, y + r * n * item, n, ms[r]);
                    p->scale(y + r * n * item, n, ss[r]);
                });
                double t4 = BEST_NS(R * n, for (size_t r = 0; r < R; r++) {
                    ms[r] = p->max(x + r * n * item, n);
                    ss[r] = p->expsum(x + r * n * item, NULL, n, ms[r]);
                });
                double t5 = BEST_NS(R * n, for (size_t r = 0; r < R; r++) {
                    ms[r] = p->max(x + r * n * item, n);
                    ss[r] = p->expsum(x + r * n * item, NULL, n, ms[r]);
                    p->sub(x + r * n * item, y + r * n * item, n, ms[r], fs_log_sum(ss[r]));
                });
                char shape[32];
                snprintf(shape, sizeof shape, "%zux%zu", R, n);
                printf("%-9s %-4s %-12s %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n", p->path, f ? "f64" : "f32", shape,
                       t1, t2 - t1, t3 - t2, t3, t4 - t1, t5 - t4, t5);
            }
        }
#if defined(__x86_64__)
    printf("\nyardstick \"fast\" softmax (MLAS-style, float32, one thread; 20-18000 ULP):\n");
    for (int si = 0; si < 3; si++) {
        size_t R = shapes[si][0], n = shapes[si][1];
        fill_random(0, R * n);
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            printf("  avx512   %zux%zu: %.3f ns/element\n", R, n, BEST_NS(R * n, fast_avx512(g_xf, g_yf, R, n)));
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
            printf("  avx2_fma %zux%zu: %.3f ns/element\n", R, n, BEST_NS(R * n, fast_avx2(g_xf, g_yf, R, n)));
    }
#endif
}

/* ------------------------------------------------------------------ */
int main(int argc, char **argv)
{
    int quick = argc > 1 && strcmp(argv[1], "quick") == 0;
    int bench_only = argc > 1 && (strcmp(argv[1], "time") == 0 || strcmp(argv[1], "bench") == 0);
    fs_init();
    printf("fastsoftmax kernels, path: %s\n", fs_simd_path());
    size_t MAXN = 10000000;
    g_x = malloc(MAXN * sizeof(ld)); g_r = malloc(MAXN * sizeof(ld)); g_tmp = malloc(MAXN * sizeof(ld));
    g_xf = big_alloc(MAXN * sizeof(float)); g_yf = big_alloc(MAXN * sizeof(float));
    g_xd = big_alloc(MAXN * sizeof(double)); g_yd = big_alloc(MAXN * sizeof(double));
    g_ysf = malloc((MAXN + 8) * sizeof(float)); g_ysd = malloc((MAXN + 8) * sizeof(double));
    for (int f = 0; f < 2; f++) for (int k = 0; k < NK; k++) S[f][k].name = kname[k];

    long batched_bad = 0;
    for (int f64 = 0; f64 < 2 && !bench_only; f64++) {
        char ctx[128];
        batched_bad += check_batched_rows(f64);
        /* random rows */
        size_t lens[] = {1, 1000, 152064, 1000000};
        double offs[] = {0, 0, 1e4, -1e4}, sds[] = {3, 30, 3, 30};
        for (int li = 0; li < 4; li++) {
            if (quick && lens[li] > 200000) continue;
            for (int oi = 0; oi < 4; oi++) {
                gen_row(f64, lens[li], offs[oi], sds[oi]);
                snprintf(ctx, sizeof ctx, "n=%zu off=%g sd=%g", lens[li], offs[oi], sds[oi]);
                check_row(f64, lens[li], ctx);
            }
        }
        /* tails */
        for (size_t n = 1; n <= 40; n++)
            for (int rep = 0; rep < 20; rep++) {
                gen_row(f64, n, rep % 3 ? 0 : -5, rep % 2 ? 30 : 3);
                snprintf(ctx, sizeof ctx, "tail n=%zu rep=%d", n, rep);
                check_row(f64, n, ctx);
            }
        /* edge rows */
        ld big = f64 ? DBL_MAX * 0.9L : FLT_MAX * 0.9L, sub = f64 ? 1e-310L : (ld)1e-40f;
        ld N_ = NAN, I_ = INFINITY;
        struct { int n; ld v[6]; } edge[] = {
            {1, {N_}}, {2, {1, N_}}, {3, {N_, 1, 2}}, {1, {I_}}, {2, {1, I_}}, {3, {I_, I_, 1}},
            {1, {-I_}}, {2, {-I_, -I_}}, {2, {1, -I_}}, {2, {I_, N_}}, {2, {-I_, N_}}, {2, {N_, N_}},
            {2, {I_, -I_}}, {3, {N_, I_, -I_}}, {2, {big, -big}}, {3, {-big, big, 0}}, {2, {-big, -big}},
            {4, {sub, -sub, 0, sub * 1e-4L}}, {2, {100, 0}}, {2, {30, 0}}, {2, {90, 0}}, {2, {1000, 0}},
            {3, {5, 5, 5}}, {2, {-0.693147180559945309417L, -0.693147180559945309417L}}, {1, {0}},
            {3, {-80, -88, -87.3}}, {3, {0, -103, -104}}, {3, {0, -708, -745}}, {2, {-1e30L, -1e30L}},
        };
        for (size_t e = 0; e < sizeof edge / sizeof edge[0]; e++) {
            for (int i = 0; i < edge[e].n; i++) g_x[i] = f64 ? (ld)(double)edge[e].v[i] : (ld)(float)edge[e].v[i];
            snprintf(ctx, sizeof ctx, "edge %zu", e);
            check_row(f64, edge[e].n, ctx);
        }
        /* specials planted in random rows of various lengths, at various places */
        ld specials[] = {N_, I_, -I_};
        size_t plens[] = {5, 8, 13, 37, 64, 1000};
        for (int s = 0; s < 3; s++)
            for (int li = 0; li < 6; li++)
                for (int pos = 0; pos < 3; pos++) {
                    size_t n = plens[li];
                    gen_row(f64, n, 0, 3);
                    size_t p = pos == 0 ? 0 : pos == 1 ? n / 2 : n - 1;
                    g_x[p] = specials[s];
                    if (s == 2) for (size_t i = 0; i < n; i += 2) g_x[i] = -I_;
                    snprintf(ctx, sizeof ctx, "planted s=%d n=%zu p=%zu", s, n, p);
                    check_row(f64, n, ctx);
                }
        /* peaked rows: y_max = -log1p(others) */
        for (int pk = 0; pk < 4; pk++) {
            double P[] = {20, 40, 60, 15};
            size_t n = 1000;
            for (size_t i = 0; i < n; i++) g_x[i] = 0;
            g_x[n / 3] = f64 ? (ld)P[pk] : (ld)(float)P[pk];
            snprintf(ctx, sizeof ctx, "peaked %g", P[pk]);
            check_row(f64, n, ctx);
        }
        /* 10^7 row: row sum */
        if (!quick) {
            size_t n = 10000000;
            gen_row(f64, n, 0, 3);
            check_row(f64, n, "n=1e7 sd=3");
        }
        /* columns */
        size_t cn = quick ? 300 : 2000;
        for (int sdi = 0; sdi < 2; sdi++) {
            gen_row(f64, cn * cn, 0, sdi ? 30 : 3);
            snprintf(ctx, sizeof ctx, "cols %zux%zu sd=%d", cn, cn, sdi ? 30 : 3);
            check_cols(f64, cn, cn, ctx);
        }
        for (size_t n = 1; n <= 6; n++)
            for (size_t inner = 1; inner <= 21; inner += 2) {
                gen_row(f64, n * inner, 0, 3);
                for (size_t j = 0; j < inner; j++) {   /* plant specials in some columns */
                    int t = j % 7;
                    if (t == 1) g_x[j] = N_;
                    if (t == 2) g_x[(n - 1) * inner + j] = I_;
                    if (t == 3) for (size_t i = 0; i < n; i++) g_x[i * inner + j] = -I_;
                    if (t == 4) { g_x[j] = I_; g_x[(n - 1) * inner + j] = N_; }
                    if (t == 5) g_x[j] = -I_;
                    if (t == 6) g_x[j] = f64 ? 40.0L : 20.0L;
                }
                snprintf(ctx, sizeof ctx, "cols small %zux%zu", n, inner);
                check_cols(f64, n, inner, ctx);
            }
        /* tall columns: whole (1500x19), and in blocks of rows by the float32 kernels (13000x150: tiles of strided
           rows past FS_COL_BLOCK_MIN_BYTES on every path, 32 blocks, the last one short): maxima that grow from
           block to block, first found late, tied across blocks; specials and leading -inf blocks */
        for (int rep = 0; rep < 2; rep++) {
            size_t n = rep ? 13000 : 1500, inner = rep ? 150 : 19;
            gen_row(f64, n * inner, 0, 3);
            for (size_t j = 0; j < inner; j++)
                for (size_t i = 0; i < n; i++) {
                    ld *v = &g_x[i * inner + j], d = (ld)i / (ld)n;
                    switch (j % 13) {
                    case 1: if (i == n - 3) *v = N_; break;
                    case 2: if (i == n - 700) *v = I_; break;
                    case 3: *v = -I_; break;
                    case 4: if (i < 700) *v = -I_; break;
                    case 5: *v += 200 * d; break;                          /* the max grows in every block */
                    case 6: *v = i == n - 100 ? 20 : 0; break;             /* peaked, found in the last block */
                    case 7: *v -= 200 * d; break;
                    case 8: *v *= 10; break;
                    case 9: *v = i == 10 || i == n - 1 ? 20 : 0; break;    /* the max in the first and last block */
                    case 10: *v = i == 5 || i == 300 ? 15 : i == n - 2 ? 20 : 0; break;
                    case 11: *v = -1e4 + 0.5 * (ld)i; break;
                    case 12: *v = i == 3 ? N_ : i < 700 ? -I_ : *v; break;
                    }
                    *v = f64 ? (ld)(double)*v : (ld)(float)*v;
                }
            snprintf(ctx, sizeof ctx, "tall cols %zux%zu", n, inner);
            check_cols(f64, n, inner, ctx);
        }
        for (size_t inner = 250; inner <= 270; inner += 3) {   /* tile boundaries */
            gen_row(f64, 7 * inner, 1e4, 3);
            snprintf(ctx, sizeof ctx, "cols 7x%zu", inner);
            check_cols(f64, 7, inner, ctx);
        }
    }

    /* report */
    double lim[2][NK] = {{2, 4, 2, 2, 4, 2, 2, 4, 2}, {4, 4, 2, 4, 4, 2, 4, 4, 2}};
    int fail = 0;
    printf("\n%-20s %-4s %9s %8s %8s %9s %9s\n", "kernel", "dt", "checked", "maxULP", "sum_eps", "nonfinite", "tiny_bad");
    for (int f = 0; f < 2; f++)
        for (int k = 0; k < NK; k++) {
            stat *st = &S[f][k];
            int bad = st->bad || st->tinybad || st->maxulp > lim[f][k] || st->maxsum > 4;
            fail |= bad;
            printf("%-20s %-4s %9ld %8.3f %8.3f %9ld %9ld%s\n", st->name, f ? "f64" : "f32", st->checked,
                   st->maxulp, st->maxsum, st->bad, st->tinybad, bad ? "  <-- FAIL" : "");
            if (getenv("FS_VERBOSE")) printf("      worst: %s\n", st->worst);
        }

    double log_ulp = bench_only ? 0 : check_log_sum();
    printf("fs_log_sum: %.3f ulp at most%s\n", log_ulp, log_ulp > 1 ? "  <-- FAIL" : "");
    if (log_ulp > 1) fail = 1;

    if (batched_bad) {
        printf("batched rows: %ld differ from the rows alone  <-- FAIL\n", batched_bad);
        fail = 1;
    }

    if (bench_only) {
        time_passes();
        time_kernels();
    } else if (!quick) {
        time_kernels();
    }
    return fail;
}
