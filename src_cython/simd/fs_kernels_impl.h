/*
 * fs_kernels_impl.h -- the kernel template. fs_kernels.c includes it once per (SIMD path, dtype): the path's
 * parameters stay defined for both dtypes, FS_F64 selects the dtype, and this file undefines what it defines.
 *
 * Set by the includer (per path):
 *   FS_ISA          the path's name, a token (avx512, avx2, sse2, neon, generic)
 *   FS_T            target attribute of the path's functions
 *   VF VD VIF VLD   float and double vectors, int32 / int64 vectors of the same width
 *   NF ND           their lanes
 *   FS_FMA          1 when VFMA_* is a hardware fused multiply-add (0: mul + add, two roundings)
 *   FS_AVX512       1 where vscalef and masked loads/stores exist
 *   VFMA_F/D(a, b, c), VMAX_F/D(a, b)   (VMAX returns b when a is nan and a when b is: x86 maxps)
 *   VMIN_F/D(a, b)  optional: where min is one instruction, x - m is split by Fast2Sum instead of TwoSum
 *   CVT_LO_F, CVT_HI_F, PACK_D_F        float <-> double halves
 *   UF32 UF64       vectors per iteration of the exp loops, per dtype (2, 4 or 8; see fs_kernels.c)
 *   TILE_F32 TILE_F64  columns per tile of the column kernels, per dtype (see fs_kernels.c)
 *   FS_F64          0 or 1, per inclusion
 *
 * Layers, bottom up:
 *   1. vector helpers and the exp core: e = exp((x - m) / T) for x <= m, with x - m split exactly by TwoSum (its
 *      rounding would cost |x - m| eps, i.e. ~40 ULP at x - m = -80), a two-constant Cody-Waite reduction, a
 *      polynomial (degree 6 in float32, 11 in float64) and 2^n by vscalef (AVX-512) or exponent bits; the log of
 *      a vector of sums (FS_DEFINE_LOG_DD of fs_kernels.c, instanced here).
 *   2. passes over one row: max, exp + store + sum, scale, log_softmax's subtraction; the sums of float32 terms
 *      are in float64 lanes (every vector widened: float partial sums, even of pairs, reached 2.25 ULP), of
 *      float64 terms compensated.
 *   3. whole rows (max, then one of the three functions, with scipy's special values; short rows held in registers,
 *      softmax row by row and the log modes in groups of rows), columns, slices.
 *   4. the training-loop kernels.
 * Only the dtype sections below (constants, exp polynomial, accumulators, reciprocal) differ per dtype.
 */

#define FS_CAT_(a, b, c, d) a##b##c##d
#define FS_CAT(a, b, c, d) FS_CAT_(a, b, c, d)
#define FS_INL static inline __attribute__((always_inline)) FS_T
/* AVX-512 intrinsics spelt once for both dtypes: FS_MM(FS_PS(op)) is _mm512_op_ps or _mm512_op_pd */
#define FS_MM(op) FS_CAT(_mm512_, op, , )

/* ================================================================================================================
 * dtype sections
 * ============================================================================================================== */
#if FS_F64
#define T double
#define V VD
#define VI VLD
#define N ND
#define FN(name) FS_CAT(fs_, FS_ISA, _f64_, name)
#define FS_PS(op) FS_CAT(op, _pd, , )     /* the intrinsic's dtype suffix */
#define FS_MMV __m512d
#define VFMA VFMA_D
#define VMAX VMAX_D
#define VMIN VMIN_D
#define U UF64                        /* vectors per iteration of the exp loops (the path's choice) */
/* exp_core_k's ways in the exp loops: all U vectors. AMD EPYC family 25 model 1 (Zen 3, AVX2), one thread, ns per
   element, best of 6 alternating runs, one way -> 8: rows of 1000 softmax 1.599 -> 1.451, log_softmax 1.637 ->
   1.503, logsumexp within 1%; rows of 152064 softmax 1.675 -> 1.449; 4096x4096 log_softmax 1.560 -> 1.472;
   2000x2000 columns (4 ways) softmax 2.516 -> 2.387, logsumexp 2.118 -> 2.006. The SSE2 path (4 ways) on the same
   machine: rows of 1000 softmax 4.603 -> 3.794, log_softmax 5.615 -> 3.835, columns softmax 5.684 -> 5.082. The
   AVX-512 path takes it unmeasured (its 32 registers spill less). */
#define EXP_WAYS U
#define LOG2E 0x1.71547652b82fep+0
#define MAGIC 0x1.8p52                /* 1.5 * 2^52: adding it rounds to an integer held in the low bits */
#define LN2_HI -0x1.62e42feep-1       /* short enough for n * LN2_HI to be exact */
#define LN2_LO -0x1.a39ef35793c76p-33
#define MANT_BITS 52
#define ONE_BITS 0x3ff0000000000000LL
#define BIAS 600                      /* the log paths compute exp(x - m) * 2^BIAS, see below */
#define UNBIAS 0x1p-600
#define FLUSH 708.3964185322641       /* -ln(DBL_MIN): exp below e^-FLUSH flushes to 0 */
#define FLUSH_BIASED 1124.0           /* the same for exp * 2^BIAS */
#else
#define T float
#define V VF
#define VI VIF
#define N NF
#define FN(name) FS_CAT(fs_, FS_ISA, _f32_, name)
#define FS_PS(op) FS_CAT(op, _ps, , )
#define FS_MMV __m512
#define VFMA VFMA_F
#define VMAX VMAX_F
#define VMIN VMIN_F
#define U UF32
/* one way: on the same Zen 3, 2, 4 and 8 ways took float32 rows of 1000 from 0.641 ns per element to 0.649, 0.699
   and 0.696 (softmax), from 0.599 to 0.619, 0.641 and 0.691 (logsumexp) */
#define EXP_WAYS 1
#define LOG2E 0x1.715476p+0f
#define MAGIC 0x1.8p23f
#define LN2_HI -0x1.62e4p-1f
#define LN2_LO -0x1.7f7d1cp-20f
#define MANT_BITS 23
#define ONE_BITS 0x3f800000
#define BIAS 100
#define UNBIAS 0x1p-100
#define FLUSH 87.3365478515625f       /* -ln(FLT_MIN), rounded down */
#define FLUSH_BIASED 156.6f
#endif
/* The log paths (which count the entries equal to the max and sum only the others) compute exp(x - m) * 2^BIAS, so
   that terms below the smallest normal still add up: a float32 log_softmax output of -1e-37 is the sum of such
   terms and must keep its digits. The sums are scaled back in double. */

#if FS_AVX512 && N == 16
#define FS_MASK __mmask16
#elif FS_AVX512
#define FS_MASK __mmask8
#endif

/* ---- small vector helpers ------------------------------------------------------------------------------------ */
FS_INL V FN(splat)(T a) { return (V){0} + a; }
FS_INL V FN(load)(const T *p) { V v; __builtin_memcpy(&v, p, sizeof v); return v; }
FS_INL void FN(store)(T *p, V v) { __builtin_memcpy(p, &v, sizeof v); }
/* Tails: never touch memory past the k valid lanes (0 < k <= N). */
FS_INL V FN(load_part)(const T *p, ptrdiff_t k, T fill)
{
#if FS_AVX512
    return (V)FS_MM(FS_PS(mask_loadu))(FS_MM(FS_PS(set1))(fill), (FS_MASK)((1u << k) - 1), p);
#else
    V v = FN(splat)(fill);
    for (ptrdiff_t i = 0; i < k; i++) v[i] = p[i];
    return v;
#endif
}
FS_INL void FN(store_part)(T *p, V v, ptrdiff_t k)
{
#if FS_AVX512
    FS_MM(FS_PS(mask_storeu))(p, (FS_MASK)((1u << k) - 1), (FS_MMV)v);
#else
    for (ptrdiff_t i = 0; i < k; i++) p[i] = v[i];
#endif
}
/* A store that bypasses the caches (needs a vector-aligned p), for outputs too large to stay there: no read for
   ownership, no eviction of the input. Plain stores where the ISA has no such instruction in C. */
FS_INL void FN(store_nt)(T *p, V v)
{
#if FS_AVX512
    FS_MM(FS_PS(stream))(p, (FS_MMV)v);
#elif FS_X86 && FS_F64 && NF == 8
    _mm256_stream_pd(p, (__m256d)v);
#elif FS_X86 && NF == 8
    _mm256_stream_ps(p, (__m256)v);
#elif FS_X86 && FS_F64
    _mm_stream_pd(p, (__m128d)v);
#elif FS_X86
    _mm_stream_ps(p, (__m128)v);
#else
    FN(store)(p, v);
#endif
}
FS_INL void FN(stream_fence)(void)
{
#if FS_X86
    _mm_sfence();   /* streaming stores are weakly ordered: visible before the task reports done */
#endif
}
FS_INL V FN(select)(VI mask, V a, V b) { return (V)(((VI)a & mask) | ((VI)b & ~mask)); }
/* Horizontal max and sum as trees of lane swaps (log2(lanes) shuffles; a lane-by-lane loop costs ~20 cycles a row).
   __builtin_shufflevector where the compiler has it (clang, GCC 12), GCC's __builtin_shuffle before. */
#if defined(__clang__) || (defined(__GNUC__) && __GNUC__ >= 12)
#define FS_SWAP(v, VIT, ...) __builtin_shufflevector(v, v, __VA_ARGS__)
#else
#define FS_SWAP(v, VIT, ...) __builtin_shuffle(v, (VIT){__VA_ARGS__})
#endif
#define FS_X16_8 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7
#define FS_X16_4 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11
#define FS_X16_2 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13
#define FS_X16_1 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14
#define FS_X8_4 4, 5, 6, 7, 0, 1, 2, 3
#define FS_X8_2 2, 3, 0, 1, 6, 7, 4, 5
#define FS_X8_1 1, 0, 3, 2, 5, 4, 7, 6
#define FS_X4_2 2, 3, 0, 1
#define FS_X4_1 1, 0, 3, 2
#define FS_X2_1 1, 0
FS_INL T FN(hmax)(V v)
{
#if N == 16
    v = VMAX(v, FS_SWAP(v, VI, FS_X16_8));
    v = VMAX(v, FS_SWAP(v, VI, FS_X16_4));
    v = VMAX(v, FS_SWAP(v, VI, FS_X16_2));
    v = VMAX(v, FS_SWAP(v, VI, FS_X16_1));
#elif N == 8
    v = VMAX(v, FS_SWAP(v, VI, FS_X8_4));
    v = VMAX(v, FS_SWAP(v, VI, FS_X8_2));
    v = VMAX(v, FS_SWAP(v, VI, FS_X8_1));
#elif N == 4
    v = VMAX(v, FS_SWAP(v, VI, FS_X4_2));
    v = VMAX(v, FS_SWAP(v, VI, FS_X4_1));
#else
    v = VMAX(v, FS_SWAP(v, VI, FS_X2_1));
#endif
    return v[0];
}
/* the number of lanes set in a sum of comparison results (each -1 where true) */
FS_INL long long FN(hcount)(VI v)
{
#if N == 16
    v += FS_SWAP(v, VI, FS_X16_8);
    v += FS_SWAP(v, VI, FS_X16_4);
    v += FS_SWAP(v, VI, FS_X16_2);
    v += FS_SWAP(v, VI, FS_X16_1);
#elif N == 8
    v += FS_SWAP(v, VI, FS_X8_4);
    v += FS_SWAP(v, VI, FS_X8_2);
    v += FS_SWAP(v, VI, FS_X8_1);
#elif N == 4
    v += FS_SWAP(v, VI, FS_X4_2);
    v += FS_SWAP(v, VI, FS_X4_1);
#else
    v += FS_SWAP(v, VI, FS_X2_1);
#endif
    return -(long long)v[0];
}
FS_INL double FN(hsum_d)(VD v)
{
#if ND == 8
    v += FS_SWAP(v, VLD, FS_X8_4);
    v += FS_SWAP(v, VLD, FS_X8_2);
    v += FS_SWAP(v, VLD, FS_X8_1);
#elif ND == 4
    v += FS_SWAP(v, VLD, FS_X4_2);
    v += FS_SWAP(v, VLD, FS_X4_1);
#else
    v += FS_SWAP(v, VLD, FS_X2_1);
#endif
    return v[0];
}

/* log(hi + lo) lane by lane, the same bits as fs_log_sum_inl (fs_kernels.c) */
FS_DEFINE_LOG_DD(FN(log_dd), VD, VLD, FS_INL)

/* a * b = p + err exactly (err is garbage where p is not finite; callers mask those lanes). Dekker's split where
   FMA is emulated. */
FS_INL V FN(two_prod)(V a, V b, V *err)
{
    V p = a * b;
#if FS_FMA
    *err = VFMA(a, b, -p);
#else
    V c = FN(splat)(FS_F64 ? 134217729.0 : 4097.0f), ah = a * c, bh = b * c;
    ah = ah - (ah - a);
    bh = bh - (bh - b);
    V al = a - ah, bl = b - bh;
    *err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
#endif
    return p;
}

/* 1/T as it + eit in the working precision (tp NULL: T = 1). */
FS_INL void FN(temp)(const fs_temp *tp, V *it, V *eit)
{
    T h = tp ? (T)tp->inv : (T)1;
    *it = FN(splat)(h);
    *eit = FN(splat)(tp ? (T)((tp->inv - (double)h) + tp->inv_err) : (T)0);
}

/* ---- the exp core -------------------------------------------------------------------------------------------- */
/* e[k] = exp((x[k] - m) / T) for K <= 8 vectors x[k] <= m, given negm = -m; d_out[k] = (x[k] - m) / T rounded
   (exactly 0 where x == m). Results below e^-FLUSH (and -inf, and an x - m that overflowed) are exactly 0; nan
   stays nan. biased: e * 2^BIAS, with e^-FLUSH_BIASED the cut.
   Each step runs for all K vectors before the next (K a constant after inlining): GCC does not reorder
   instructions before register allocation on x86, and a vector's exp is one chain of ~50 cycles of latency, so
   with the vectors one after the other the scheduler fills with operations still waiting on the chain. Worth it
   in float64 (EXP_WAYS, in the dtype sections); float32 was slower, and so was -fschedule-insns (3-8%). */
#define FS_EACH _Pragma("GCC unroll 8") for (int k = 0; k < K; k++)
FS_INL void FN(exp_core_k)(int K, const V *x, V negm, V it, V eit, int tempered, int biased, V *e, V *d_out)
{
    V s[8], lo[8], t[8], r[8], r2[8], q[8], p[8], one = FN(splat)(1);
    FS_EACH s[k] = x[k] + negm;
#ifdef VMIN_F
    /* Fast2Sum, exact for |a| >= |b|: min(x, -m) is the larger in magnitude, since x <= m (for m >= 0, x <= -m
       makes |x| >= m; for m < 0, |x| >= |m| always). One operation fewer than TwoSum, the same lo. */
    FS_EACH lo[k] = VMAX(x[k], negm) - (s[k] - VMIN(x[k], negm));   /* x - m == s + lo exactly */
#else
    FS_EACH {                                                        /* TwoSum: min and max cost several operations */
        V xv = s[k] - negm, mv = s[k] - xv;
        lo[k] = (x[k] - xv) + (negm - mv);
    }
#endif
    if (tempered) {                                        /* (s + lo) * (it + eit), again as an exact-enough pair */
        FS_EACH {
            V err, prod = FN(two_prod)(s[k], it, &err);
            lo[k] = VFMA(lo[k], it, VFMA(s[k], eit, err));
            s[k] = prod;
        }
    }
    FS_EACH d_out[k] = s[k];
    FS_EACH t[k] = VFMA(s[k], FN(splat)(LOG2E), FN(splat)(MAGIC));
    /* r = (s - nf ln2_hi) + (lo - nf ln2_lo): the first part exact, the small second one computed beside it, so
       that the chain to r is one FMA and one addition (it was two FMAs and an addition) */
    FS_EACH {
        V nf = t[k] - FN(splat)(MAGIC);
        r[k] = VFMA(nf, FN(splat)(LN2_HI), s[k]) + VFMA(nf, FN(splat)(LN2_LO), lo[k]);
    }
    /* exp(r) for |r| <= ln2/2 (plus the TwoSum residue): r + r^2 q(r) summed last, so that 1 + r rounds once. q by
       Estrin's scheme, in powers of r^2: the whole chain is 5 dependent operations deep in float32 and 6 in float64,
       where Horner's was 6 and 11, and the exp loops wait on that chain (UF32 in fs_kernels.c). */
    FS_EACH r2[k] = r[k] * r[k];
#define FS_C(c) FN(splat)(c)
#if FS_F64
    FS_EACH {
        V c01 = VFMA(FS_C(0x1.5555555555556p-3), r[k], FS_C(0x1.0000000000001p-1));
        V c23 = VFMA(FS_C(0x1.1111111110989p-7), r[k], FS_C(0x1.5555555553cd9p-5));
        V c45 = VFMA(FS_C(0x1.a01a01a7e5259p-13), r[k], FS_C(0x1.6c16c178c18a5p-10));
        V c67 = VFMA(FS_C(0x1.71de0d2e6e42bp-19), r[k], FS_C(0x1.a019b83d2cea4p-16));
        V c89 = VFMA(FS_C(0x1.af39d92ab3282p-26), r[k], FS_C(0x1.28927c0646723p-22));
        V r4 = r2[k] * r2[k];
        q[k] = VFMA(VFMA(c89, r4, VFMA(c67, r2[k], c45)), r4, VFMA(c23, r2[k], c01));
    }
#else
    FS_EACH {
        V c01 = VFMA(FS_C(0x1.5554dcp-3f), r[k], FS_C(0.5f));
        V c23 = VFMA(FS_C(0x1.120cd4p-7f), r[k], FS_C(0x1.555518p-5f));
        q[k] = VFMA(VFMA(FS_C(0x1.6d127p-10f), r2[k], c23), r2[k], c01);
    }
#endif
#undef FS_C
#if FS_FMA
    /* 1 + r (1 + q r). One operation shorter, 1 + (r + r^2 q) took the harness's float64 softmax columns from 1.66
       to 1.84 ulp (AVX2) */
    FS_EACH p[k] = VFMA(VFMA(q[k], r[k], one), r[k], one);
#else
    FS_EACH {                    /* 1 + r kept as an exact pair (Fast2Sum, |r| < 1): mul + add would round twice */
        V p0 = one + r[k], e1 = (one - p0) + r[k];
        p[k] = p0 + VFMA(r2[k], q[k], e1);
    }
#endif
    T cut = biased ? -FLUSH_BIASED : -FLUSH;
#if FS_AVX512
    FS_EACH {
        V nf = t[k] - FN(splat)(MAGIC);
        FS_MASK keep = FS_CAT(FS_MM(FS_PS(cmp)), _mask, , )((FS_MMV)s[k], FS_MM(FS_PS(set1))(cut), _CMP_NLT_UQ);
        e[k] = (V)FS_MM(FS_PS(maskz_scalef))(keep, (FS_MMV)p[k], (FS_MMV)(biased ? nf + (T)BIAS : nf));   /* nan kept */
    }
#else
    VI one_bits = (VI){0} + ONE_BITS, bias = ((VI){0} + BIAS) << MANT_BITS;
    FS_EACH {
        VI scale = ((VI)t[k] << MANT_BITS) + (biased ? one_bits + bias : one_bits);
        e[k] = (V)((VI)(p[k] * (V)scale) & ~(VI)(s[k] < FN(splat)(cut)));   /* 2^n would not be normal there */
    }
#endif
}
#undef FS_EACH
FS_INL V FN(exp_core)(V x, V negm, V it, V eit, int tempered, int biased, V *d_out)
{
    V e;
    FN(exp_core_k)(1, &x, negm, it, eit, tempered, biased, &e, d_out);
    return e;
}

/* d * (it + eit) for log_softmax, d = x - m already rounded (|result| >= |d| / T, so the products need no exact
   pair), keeping d = -inf at -inf where d * eit would be nan. */
FS_INL V FN(scale_shift)(V d, V it, V eit)
{
    V c = d * eit;
    c = (V)((VI)c & (VI)((c - c) == FN(splat)(0)));
    return VFMA(d, it, c);
}

/* The log paths count the terms at the max (d == 0, exactly 1 each) instead of adding them: e with those lanes
   zeroed, their number added to *count (as -1 per lane). */
FS_INL V FN(drop_at_max)(V e, V d, VI *count)
{
    VI at_max = (VI)(d == FN(splat)(0));
    *count += at_max;
    return (V)((VI)e & ~at_max);
}

/* ---- accumulators: the sum of the exp terms -------------------------------------------------------------------- */
/* k (constant) double vectors added as a tree: (w0 + w1) + (w2 + w3), and so on */
FS_INL VD FN(group_tree)(const VD *e, int k)
{
    VD w[8];
#pragma GCC unroll 8
    for (int u = 0; u < k; u++) w[u] = e[u];
#pragma GCC unroll 8
    for (int s = 1; s < k; s *= 2)
#pragma GCC unroll 8
        for (int j = 0; j + s < k; j += 2 * s) w[j] = w[j] + w[j + s];
    return w[0];
}
#if FS_F64
/* groups of vectors are summed as a tree, then added with TwoSum into (s, c): about eps relative error at any n */
typedef struct { VD s, c; } FN(acc);
FS_INL void FN(acc_add)(FN(acc) *a, VD v)
{
    VD t = a->s + v, sv = t - v, av = t - sv;
    a->c += (a->s - sv) + (v - av);
    a->s = t;
}
/* 4 terms a TwoSum, whatever U: a plain sum of 8 took the bench's float64 softmax on 96x128x128 from 2.80 to 3.56
   ulp (AVX2, Zen 3) */
_Static_assert(U == 4 || U == 8, "UF64: 4 or 8 vectors a loop");
FS_INL void FN(acc_add_group)(FN(acc) *a, const V *e)
{
#pragma GCC unroll 2
    for (int k = 0; k < U; k += 4) FN(acc_add)(a, FN(group_tree)(e + k, 4));
}
/* The lanes' pairs added as a tree, one TwoSum a level (each lane ends with the whole sum): three levels of latency
   where the dd additions lane after lane were a chain of eight, longer than a short row's arithmetic. Measured on
   Xeon family 6 model 207, one thread, softmax ns per element: rows of 8 7.9 -> 2.7, 16 3.6 -> 1.8, 128 1.30 -> 1.02,
   1000 1.26 -> 1.22; log_softmax and logsumexp rows of 128 1.83 -> 1.44, 1.68 -> 1.33. */
FS_INL void FN(dd_level)(VD *s, VD *c, VD s2, VD c2)
{
    VD t = *s + s2, bv = t - *s, av = t - bv;
    *c = (*c + c2) + ((*s - av) + (s2 - bv));
    *s = t;
}
FS_INL fs_dd FN(acc_total)(FN(acc) a, double scale)
{
    VD s = a.s * scale, c = a.c * scale;
#if ND == 8
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X8_4), FS_SWAP(c, VLD, FS_X8_4));
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X8_2), FS_SWAP(c, VLD, FS_X8_2));
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X8_1), FS_SWAP(c, VLD, FS_X8_1));
#elif ND == 4
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X4_2), FS_SWAP(c, VLD, FS_X4_2));
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X4_1), FS_SWAP(c, VLD, FS_X4_1));
#else
    FN(dd_level)(&s, &c, FS_SWAP(s, VLD, FS_X2_1), FS_SWAP(c, VLD, FS_X2_1));
#endif
    return fs_fast_two_sum(s[0], c[0]);   /* |c| <= |s|: the corrections of a sum of non-negative terms */
}
#else
/* float terms widened to double lanes: n * 2^-53 relative error, nothing to compensate */
_Static_assert(U == 2 || U == 4 || U == 8, "UF32: 2, 4 or 8 vectors a loop");
typedef struct { VD lo, hi; } FN(acc);
FS_INL void FN(acc_add)(FN(acc) *a, VF v)
{
    a->lo += CVT_LO_F(v);
    a->hi += CVT_HI_F(v);
}
FS_INL void FN(acc_add_group)(FN(acc) *a, const V *e)
{
    VD lo[U], hi[U];
#pragma GCC unroll 8
    for (int u = 0; u < U; u++) {
        lo[u] = CVT_LO_F(e[u]);
        hi[u] = CVT_HI_F(e[u]);
    }
    a->lo += FN(group_tree)(lo, U);
    a->hi += FN(group_tree)(hi, U);
}
FS_INL fs_dd FN(acc_total)(FN(acc) a, double scale)
{
    fs_dd r = {FN(hsum_d)(a.lo + a.hi) * scale, 0.0};
    return r;
}
#endif

/* the log paths' sum: the count of terms at the max plus the others, unbiased (drop_at_max) */
FS_INL fs_dd FN(count_total)(FN(acc) acc, VI count)
{
    fs_dd r = FN(acc_total)(acc, UNBIAS);
    return fs_dd_add1((fs_dd){(double)FN(hcount)(count), 0.0}, r.hi, r.lo);
}

/* ---- the reciprocal of the sum, applied with one rounding ---------------------------------------------------- */
/* inv = ih + il: 1/sum as a pair in the working precision, and e * ih + e * il rounded once (FMA). Without FMA,
   float32 goes through double instead (e * inv rounded once there, then to float). */
typedef struct { V ih, il; VD d; } FN(inv);
FS_INL FN(inv) FN(make_inv)(fs_dd sum)
{
    fs_dd r = fs_dd_inv(sum);
    FN(inv) v;
#if FS_F64
    v.ih = FN(splat)(r.hi);
    v.il = FN(splat)(r.lo);
    v.d = v.ih;
#else
    double inv = r.hi + r.lo;
    float h = (float)inv;
    v.ih = FN(splat)(h);
    v.il = FN(splat)((float)(inv - (double)h));
    v.d = (VD){0} + inv;
#endif
    return v;
}
FS_INL V FN(mul_inv)(V e, FN(inv) inv)
{
#if FS_FMA || FS_F64
    return VFMA(e, inv.ih, e * inv.il);
#else
    return PACK_D_F(CVT_LO_F(e) * inv.d, CVT_HI_F(e) * inv.d);
#endif
}

/* ================================================================================================================
 * 2. passes over one row
 * ============================================================================================================== */

/* max; VMAX(x, m) returns m when x is nan, so the accumulators never become nan. detect_nan: a nan anywhere makes
   the result nan (the slices need that; whole rows find nan through their sum instead). */
FS_INL T FN(max_t)(const T *x, ptrdiff_t n, int detect_nan)
{
    V ninf = FN(splat)(-(T)__builtin_inf());
    V m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    VI bad = (VI){0};
    ptrdiff_t i = 0;
    for (; i + 4 * N <= n; i += 4 * N) {
        V a = FN(load)(x + i), b = FN(load)(x + i + N), c = FN(load)(x + i + 2 * N), d = FN(load)(x + i + 3 * N);
        m0 = VMAX(a, m0);
        m1 = VMAX(b, m1);
        m2 = VMAX(c, m2);
        m3 = VMAX(d, m3);
        if (detect_nan) bad |= (VI)((a != a) | (b != b) | (c != c) | (d != d));
    }
    for (; i + N <= n; i += N) {
        V a = FN(load)(x + i);
        m0 = VMAX(a, m0);
        if (detect_nan) bad |= (VI)(a != a);
    }
    if (i < n) {
        V a = FN(load_part)(x + i, n - i, -(T)__builtin_inf());
        m1 = VMAX(a, m1);
        if (detect_nan) bad |= (VI)(a != a);
    }
    T m = FN(hmax)(VMAX(VMAX(m0, m1), VMAX(m2, m3)));
    if (detect_nan) {
        int any = 0;
        for (int k = 0; k < N; k++) any |= bad[k] != 0;
        if (any) return (T)__builtin_nan("");
    }
    return m;
}

/* every 64-byte line of p[0 .. w) (for writing if write) */
FS_INL void FN(prefetch_lines)(const T *p, ptrdiff_t w, int write)
{
    for (ptrdiff_t j = 0; j < w; j += 64 / (ptrdiff_t)sizeof(T))
        if (write) __builtin_prefetch(p + j, 1); else __builtin_prefetch(p + j);
}

/* y *= 1/sum */
FS_INL void FN(scale_t)(T *y, ptrdiff_t n, FN(inv) inv)
{
    ptrdiff_t i = 0;
    for (; i + 4 * N <= n; i += 4 * N)
        for (int u = 0; u < 4; u++) FN(store)(y + i + u * N, FN(mul_inv)(FN(load)(y + i + u * N), inv));
    for (; i + N <= n; i += N) FN(store)(y + i, FN(mul_inv)(FN(load)(y + i), inv));
    if (i < n) FN(store_part)(y + i, FN(mul_inv)(FN(load_part)(y + i, n - i, 0), inv), n - i);
}

/* Sum of exp((x - m) / T). store: also write each term into y (softmax: plain sum, its relative accuracy is all
   softmax needs). Otherwise (the log paths) the entries equal to m are counted instead of added and the others
   biased, so that count + others is an exact double-double and log1p(others) keeps full accuracy; y is then the
   row's log_softmax output, or NULL (logsumexp, streamed output), and only fetched for writing.
   overlap: meanwhile scale z, the previous row's terms, by zinv, block for block (softmax_rows_overlap_t). */
FS_INL fs_dd FN(expsum_overlap_t)(const T *x, T *y, ptrdiff_t n, T m, int store, const fs_temp *tp, int tempered,
                                  int overlap, T *z, FN(inv) zinv)
{
    V negm = FN(splat)(-m), it, eit;
    FN(temp)(tp, &it, &eit);
    FN(acc) acc = {{0}, {0}};
    VI count = (VI){0};
    ptrdiff_t i = 0;
    for (; i + U * N <= n; i += U * N) {
        /* Fetched ahead, every line of the block (prefetching past the end of an array is harmless):
           - x of the next row (or block) while this one computes: its first pass is a max that would wait on
             memory.
           - softmax: y of the next row; log_softmax: y of this row, which its output pass will write. Only while
             the rows in flight fit in L2 (g_overlap_max_bytes: an eighth of it): past that, the lines pushed out
             this row's terms before the scale pass read them.
           Measured, one thread, ns per element. Xeon family 6 model 207 (2 MB L2), the next row of x and y: float32
           rows of 152064 0.645 -> 0.532, 100000 0.559 -> 0.500, float64 rows of 152064 1.50 -> 1.30; rows of 1000
           and 16384 floats unchanged, float64 rows of 32000 4% slower without it. AMD EPYC family 25 model 1 (Zen
           3, AVX2), 2 MB pages, best of 5 alternating runs: every line of the block, where one prefetch a loop had
           fetched one line in 4 with AVX2's 8 vectors a loop (AVX-512's 2 vectors are 2 lines, a pair the
           adjacent-line prefetcher completes): 4096x4096 log_softmax float32 0.929 -> 0.792, float64 2.187 -> 1.933,
           64x32000 softmax float32 0.666 -> 0.614, float64 1.766 -> 1.655, rows of 1000, 128 and 10^7 within 2%;
           then log_softmax's own y: 4096x4096 float32 0.810 -> 0.648, float64 1.938 -> 1.562, rows of 1000 to
           152064 2-3% faster, rows of 128 2% slower. */
        FN(prefetch_lines)(x + n + i, U * N, 0);
        if (y && n * (ptrdiff_t)sizeof(T) <= g_overlap_max_bytes)
            FN(prefetch_lines)(store ? y + n + i : y + i, U * N, 1);
        V xs[U], e[U], d[U];
        for (int u = 0; u < U; u++) xs[u] = FN(load)(x + i + u * N);
        for (int u = 0; u < U; u += EXP_WAYS)
            FN(exp_core_k)(EXP_WAYS, xs + u, negm, it, eit, tempered, !store, e + u, d + u);
        for (int u = 0; u < U; u++) {
            if (store) FN(store)(y + i + u * N, e[u]);
            else e[u] = FN(drop_at_max)(e[u], d[u], &count);
        }
        FN(acc_add_group)(&acc, e);
        if (overlap)
            for (int u = 0; u < U; u++) FN(store)(z + i + u * N, FN(mul_inv)(FN(load)(z + i + u * N), zinv));
    }
    if (overlap && i < n) FN(scale_t)(z + i, n - i, zinv);
    for (; i < n; i += N) {
        ptrdiff_t k = n - i < N ? n - i : N;
        V xv = k == N ? FN(load)(x + i) : FN(load_part)(x + i, k, -(T)__builtin_inf()), d;
        V e = FN(exp_core)(xv, negm, it, eit, tempered, !store, &d);
        if (store) {
            if (k == N) FN(store)(y + i, e); else FN(store_part)(y + i, e, k);
        } else {
            e = FN(drop_at_max)(e, d, &count);
        }
        FN(acc_add)(&acc, e);
    }
    return store ? FN(acc_total)(acc, 1.0) : FN(count_total)(acc, count);
}
FS_INL fs_dd FN(expsum_t)(const T *x, T *y, ptrdiff_t n, T m, int store, const fs_temp *tp, int tempered)
{
    FN(inv) none = {{0}, {0}, {0}};
    return FN(expsum_overlap_t)(x, y, n, m, store, tp, tempered, 0, NULL, none);
}

/* dst = src / sum, streamed: the head up to a vector-aligned dst and the tail with plain stores */
FS_INL void FN(scale_stream_t)(const T *src, T *dst, ptrdiff_t n, FN(inv) inv)
{
    ptrdiff_t i = 0, head = (ptrdiff_t)((sizeof(V) - ((uintptr_t)dst % sizeof(V))) % sizeof(V) / sizeof(T));
    if (head > n || ((uintptr_t)dst % sizeof(T))) head = n;
    if (head) FN(store_part)(dst, FN(mul_inv)(FN(load_part)(src, head, 0), inv), head);
    for (i = head; i + N <= n; i += N) FN(store_nt)(dst + i, FN(mul_inv)(FN(load)(src + i), inv));
    if (i < n) FN(store_part)(dst + i, FN(mul_inv)(FN(load_part)(src + i, n - i, 0), inv), n - i);
}

/* y = exp((x - m) / T) / sum straight from x: the second pass of a row too long for the cache (read twice, y
   written once rather than stored, re-read and rewritten). */
FS_INL void FN(expscale_t)(const T *x, T *y, ptrdiff_t n, T m, FN(inv) inv, const fs_temp *tp, int tempered)
{
    V negm = FN(splat)(-m), it, eit, d;
    FN(temp)(tp, &it, &eit);
    ptrdiff_t i = 0;
    for (; i + U * N <= n; i += U * N)
        for (int u = 0; u < U; u++)
            FN(store)(y + i + u * N, FN(mul_inv)(FN(exp_core)(FN(load)(x + i + u * N), negm, it, eit, tempered, 0, &d),
                                                 inv));
    for (; i < n; i += N) {
        ptrdiff_t k = n - i < N ? n - i : N;
        V e = FN(exp_core)(FN(load_part)(x + i, k, -(T)__builtin_inf()), negm, it, eit, tempered, 0, &d);
        FN(store_part)(y + i, FN(mul_inv)(e, inv), k);
    }
}

/* log_softmax: y = (x - m) / T - L. Both terms are <= 0, so nothing cancels: error <= 0.5 ulp(x - m) + err(L) +
   the final rounding. */
FS_INL V FN(log_out)(V xv, V vm, V vl, V it, V eit, int tempered)
{
    V d = xv - vm;
    return (tempered ? FN(scale_shift)(d, it, eit) : d) - vl;
}
FS_INL void FN(sub_t)(const T *x, T *y, ptrdiff_t n, T m, T L, const fs_temp *tp, int tempered, int stream)
{
    V vm = FN(splat)(m), vl = FN(splat)(L), it, eit;
    FN(temp)(tp, &it, &eit);
#define FS_OUT(xv) FN(log_out)(xv, vm, vl, it, eit, tempered)
    ptrdiff_t i = 0;
    if (stream && ((uintptr_t)y % sizeof(T)) == 0) {
        ptrdiff_t head = (ptrdiff_t)((sizeof(V) - ((uintptr_t)y % sizeof(V))) % sizeof(V) / sizeof(T));
        if (head > n) head = n;
        if (head) FN(store_part)(y, FS_OUT(FN(load_part)(x, head, 0)), head);
        for (i = head; i + N <= n; i += N) FN(store_nt)(y + i, FS_OUT(FN(load)(x + i)));
    }
    for (; i + 4 * N <= n; i += 4 * N)
        for (int u = 0; u < 4; u++) FN(store)(y + i + u * N, FS_OUT(FN(load)(x + i + u * N)));
    for (; i + N <= n; i += N) FN(store)(y + i, FS_OUT(FN(load)(x + i)));
    if (i < n) FN(store_part)(y + i, FS_OUT(FN(load_part)(x + i, n - i, 0)), n - i);
#undef FS_OUT
}

static FS_T void FN(fill_nan)(T *y, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++) y[i] = (T)__builtin_nan("");
}
static FS_T int FN(has_nan)(const T *x, ptrdiff_t n, ptrdiff_t stride)
{
    for (ptrdiff_t i = 0; i < n; i++)
        if (x[i * stride] != x[i * stride]) return 1;
    return 0;
}

/* ================================================================================================================
 * 3. rows, columns, slices
 * ============================================================================================================== */

/* One row, all passes inlined: per-row overhead is a few branches, no calls (rows of 128 elements are ~0.1 us).
   stream: write the output with non-temporal stores; softmax then keeps the exp values in buf (an L1-sized
   scratch of FS_STREAM_N elements, if the row fits) rather than in y, so that y is written exactly once. */
#define FS_STREAM_N (16384 / (int)sizeof(T))
FS_INL void FN(row_t)(int mode, const T *x, T *y, ptrdiff_t n, const fs_temp *tp, int tempered, int stream, T *buf)
{
    T m = FN(max_t)(x, n, 0);
    if (mode == FS_SOFTMAX) {
        if (!(m - m == 0)) { FN(fill_nan)(y, n); return; }          /* +inf, or all -inf / nan */
        T *e = stream && buf && n <= FS_STREAM_N ? buf : y;
        fs_dd s = FN(expsum_t)(x, e, n, m, 1, tp, tempered);
        if (s.hi != s.hi) { FN(fill_nan)(y, n); return; }
        if (e == y) FN(scale_t)(y, n, FN(make_inv)(s)); else FN(scale_stream_t)(e, y, n, FN(make_inv)(s));
        return;
    }
    if (!(m - m == 0)) {
        if (mode == FS_LOGSUMEXP) *y = FN(has_nan)(x, n, 1) ? (T)__builtin_nan("") : m;
        else if (m > 0 && !FN(has_nan)(x, n, 1)) FN(sub_t)(x, y, n, m, 0, tp, tempered, 0);  /* (x - inf) - 0 */
        else FN(fill_nan)(y, n);
        return;
    }
    fs_dd s = FN(expsum_t)(x, mode == FS_LOG_SOFTMAX && !stream ? y : NULL, n, m, 0, tp, tempered);
    if (s.hi != s.hi) {
        if (mode == FS_LOGSUMEXP) *y = s.hi; else FN(fill_nan)(y, n);
        return;
    }
    if (mode == FS_LOGSUMEXP) {
        *y = (T)((double)m + fs_log_sum_inl(s));   /* float64: ~ulp(m) when the result cancels against a negative m */
        return;
    }
    FN(sub_t)(x, y, n, m, (T)fs_log_sum_inl(s), tp, tempered, stream);
}

/* Short rows in blocks, phase by phase (all maxima, then all sums, then all outputs): the rows of a phase are
   independent, so the out-of-order core overlaps one row's reductions and division with the next row's loads and
   exps, where row after row it would wait on each. */
#define FS_BLOCK_ROWS 8
#define FS_BLOCK_MAX_N 1024
FS_INL void FN(row_block_t)(int mode, const T *x, T *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp, int tempered)
{
    T m[FS_BLOCK_ROWS];
    fs_dd s[FS_BLOCK_ROWS];
    ptrdiff_t out = mode == FS_LOGSUMEXP ? 1 : n;
    for (ptrdiff_t r = 0; r < rows; r++) m[r] = FN(max_t)(x + r * n, n, 0);
    for (ptrdiff_t r = 0; r < rows; r++)
        if (m[r] - m[r] == 0)
            s[r] = FN(expsum_t)(x + r * n, mode == FS_LOGSUMEXP ? NULL : y + r * out, n, m[r], mode == FS_SOFTMAX, tp,
                                tempered);
    /* the log modes' logs, ND rows to a vector log_dd (the same bits as fs_log_sum_inl on these sums, which are
       >= 1) rather than one libm-style chain a row: AMD EPYC family 25 model 1 (Zen 3, AVX2), one thread, ns per
       element, best of 5 alternating runs: log_softmax rows of 128 float32 0.890 -> 0.848, float64 2.092 -> 1.950,
       rows of 40 float32 1.567 -> 1.441; logsumexp rows of 128 float32 0.767 -> 0.743; rows of 1000 within 1% */
    double L[FS_BLOCK_ROWS];
    if (mode != FS_SOFTMAX)
        for (ptrdiff_t r = 0; r < rows; r += ND) {
            VD hi, lo;
            for (int k = 0; k < ND; k++) {
                int ok = r + k < rows && m[r + k] - m[r + k] == 0;
                hi[k] = ok ? s[r + k].hi : 1.0;
                lo[k] = ok ? s[r + k].lo : 0.0;
            }
            VD l = FN(log_dd)(hi, lo);
            for (int k = 0; k < ND && r + k < rows; k++) L[r + k] = l[k];
        }
    for (ptrdiff_t r = 0; r < rows; r++) {
        const T *xr = x + r * n;
        T *yr = y + r * out;
        if (!(m[r] - m[r] == 0) || s[r].hi != s[r].hi) {
            FN(row_t)(mode, xr, yr, n, tp, tempered, 0, NULL);   /* scipy's special values: the one-row path */
        } else if (mode == FS_SOFTMAX) {
            FN(scale_t)(yr, n, FN(make_inv)(s[r]));
        } else if (mode == FS_LOGSUMEXP) {
            *yr = (T)((double)m[r] + L[r]);
        } else {
            FN(sub_t)(xr, yr, n, m[r], (T)L[r], tp, tempered, 0);
        }
    }
}

/* Short rows held in registers, R rows at a time: each row is read once into registers for its max, its sum and its
   output, where the blocks above store the exp terms, then read and rewrite them. R independent rows fill the chain
   of reductions a row alone waits on (max, sum, then the division or the log, ~60 ns at 128 floats, about its
   arithmetic's time), which the next row's work could not hide; the log modes' R logs are one vector log_dd. nv,
   the row's vector count, and R are constants in each instance, so the arrays below are registers and the
   reductions trees. The same sums in expsum_t's order, the same reciprocal and the same log make the same bits as
   the one-row path.
   Measured on Xeon family 6 model 207, one thread, ns per element, best of 5-7 alternating runs:
   - softmax, rows alone in registers against blocks: float32 rows of 128 0.520-0.538 against 0.579-0.595, float64
     1.285-1.459 against 1.474-1.513. In groups against alone: float32 rows of 16 0.89 against 1.28, 32 0.61 against
     0.86, 64 0.50 against 0.64, 128 0.49-0.51 against 0.55-0.56 (256: one row a group in both, 0.46-0.49);
     float64 rows of 64 1.80-1.90 against 1.90-2.02 (rows of 8, 8 to a group, 7.6-8.0 against 7.1-7.6 while
     acc_total was a chain of 8 dd additions; with its tree, 2.7 in groups); AVX2 float32 rows of 8 1.65 against
     2.20, 32 0.96 against 1.11.
   - float32 log_softmax in groups against blocks with libm's log1p: rows of 17 1.63 against 2.07, 64 0.76 against
     0.82, 128 0.68 against 0.73, 256 0.59 against 0.70, float64 rows of 128 1.70 against 1.87; rows of 1000 (blocks
     in both) 0.65 against 0.66.
   - On the 16-register paths the exp's constants, the sums and the count leave room for few row vectors: there the
     log groups take rows of up to 2 vectors, 3 or 4 at a time (AVX2, rows of 8 floats 2.15 against 3.66; rows of 24
     in twos 1.61 against 1.35, of 64 alone 1.28 against 0.97, spilling).
   - logsumexp keeps nothing for an output: its rows of more than FS_LSE_REG_NV vectors go through registers one at
     a time, ND rows a group and one log_dd (32-register paths; before, they went through the blocks): float32 rows
     of 80 0.69 -> 0.63, 128 0.63 -> 0.57, 256 0.55 -> 0.47; float64 rows of 48 1.83 -> 1.35, 128 1.32 -> 1.02.
     Rows of up to FS_LSE_REG_NV stay held, FS_LOG_REG_VECS / nv at a time in unrolled code (one at a time: float32
     rows of 32 0.82 -> 0.98). Not kept: log_softmax the same way, reading x again for its output (float32 rows of
     128 0.70 -> 0.73, of 256 0.64 -> 0.72, also with all maxima first), and AVX2 (rows of 64 floats 5% slower, of
     32 doubles 7% faster). */
#if FS_AVX512
#define FS_REG_VECS 16                /* 32 vector registers */
#define FS_LOG_REG_VECS 16
#define FS_LOG_MAX_NV 16
#else
#define FS_REG_VECS 8
#define FS_LOG_REG_VECS 6
#define FS_LOG_MAX_NV 2
#endif
#define FS_LSE_REG_NV (FS_LOG_REG_VECS / 4)
#if FS_AVX512
#define FS_LSE_MAX_NV FS_REG_VECS
#else
#define FS_LSE_MAX_NV FS_LSE_REG_NV
#endif
/* A short row into registers, v[0..nv), the last vector's `last` lanes filled with -inf; returns the row's max,
   reduced as a tree. nv (<= FS_REG_VECS) is a constant in every caller, so v stays in registers. */
FS_INL T FN(load_regs)(const T *x, V *v, int nv, ptrdiff_t last)
{
    V w[FS_REG_VECS];
#pragma GCC unroll 16
    for (int k = 0; k < nv; k++)
        v[k] = k < nv - 1 || last == N ? FN(load)(x + k * N) : FN(load_part)(x + k * N, last, -(T)__builtin_inf());
#pragma GCC unroll 16
    for (int k = 0; k < nv; k++) w[k] = v[k];
    /* the tree's levels written out: GCC leaves a loop of doubling steps rolled, with v in memory */
#define FS_MAX_LEVEL(s) \
    _Pragma("GCC unroll 16") for (int k = 0; k + (s) < nv; k += 2 * (s)) w[k] = VMAX(w[k + (s)], w[k]);
    FS_MAX_LEVEL(1) FS_MAX_LEVEL(2) FS_MAX_LEVEL(4) FS_MAX_LEVEL(8)   /* nv <= 16 */
#undef FS_MAX_LEVEL
    return FN(hmax)(w[0]);
}

/* the one-row path, out of line: special values in a short row are rare, and inlining the whole path into every
   instance below tripled the kernels' code size */
static FS_T __attribute__((noinline)) void FN(row_slow)(int mode, const T *x, T *y, ptrdiff_t n, const fs_temp *tp)
{
    if (tp) FN(row_t)(mode, x, y, n, tp, 1, 0, NULL); else FN(row_t)(mode, x, y, n, NULL, 0, 0, NULL);
}

/* a short row's vector's term of the sum: softmax's exp terms are already in v (they replace x, their output is
   them scaled); the log modes keep x (their output is x - m - log(sum)) and add the biased terms without the entries
   at the max */
FS_INL V FN(group_term)(int mode, V v, V negm, V it, V eit, int tempered, VI *count)
{
    if (mode == FS_SOFTMAX) return v;
    V d, e = FN(exp_core)(v, negm, it, eit, tempered, 1, &d);
    return FN(drop_at_max)(e, d, count);
}

/* the sum of a short row's terms, v its nv vectors in registers (softmax: replaced by the exp terms) */
FS_INL fs_dd FN(regs_sum)(int mode, V *v, int nv, ptrdiff_t last, T m, V it, V eit, int tempered)
{
    V negm = FN(splat)(-m), e[U], d;
    FN(acc) acc = {{0}, {0}};
    VI count = (VI){0};
    if (mode == FS_SOFTMAX)   /* all the exps first: at 16 vectors, fewer registers live at once */
#pragma GCC unroll 16
        for (int k = 0; k < nv; k++) v[k] = FN(exp_core)(v[k], negm, it, eit, tempered, 0, &d);
    /* expsum_t's order: groups of U full vectors, then singly. The indices are constants (nv is), so that v stays
       in registers. */
    int k = 0;
#pragma GCC unroll 16
    for (; k + U <= nv - 1; k += U) {
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) e[u] = FN(group_term)(mode, v[k + u], negm, it, eit, tempered, &count);
        FN(acc_add_group)(&acc, e);
    }
    if (k + U == nv && last == N) {
#pragma GCC unroll 4
        for (int u = 0; u < U; u++) e[u] = FN(group_term)(mode, v[k + u], negm, it, eit, tempered, &count);
        FN(acc_add_group)(&acc, e);
    } else {
#pragma GCC unroll 16
        for (int j = k; j < nv; j++) FN(acc_add)(&acc, FN(group_term)(mode, v[j], negm, it, eit, tempered, &count));
    }
    return mode == FS_SOFTMAX ? FN(acc_total)(acc, 1.0) : FN(count_total)(acc, count);
}

FS_INL void FN(rows_group_t)(int mode, const T *x, T *y, ptrdiff_t n, const fs_temp *tp, int tempered, int nv, int R)
{
    V v[ND][FS_REG_VECS], it, eit;   /* softmax replaces each row's x by its exp terms */
    T m[ND];
    VD shi = (VD){0} + 1.0, slo = (VD){0};   /* the sums; unused lanes: log 1 */
    ptrdiff_t last = n - (ptrdiff_t)(nv - 1) * N, out = mode == FS_LOGSUMEXP ? 1 : n;
    int special = 0;
    FN(temp)(tp, &it, &eit);
    if (mode == FS_LOGSUMEXP && nv > FS_LSE_REG_NV) {   /* one row in registers at a time, see above */
        double sh[ND], sl[ND];
#pragma GCC unroll 1
        for (int q = 0; q < R; q++) {
            V w[FS_REG_VECS];
            m[q] = FN(load_regs)(x + q * n, w, nv, last);
            if (!(m[q] - m[q] == 0)) { special = 1; break; }
            fs_dd t = FN(regs_sum)(mode, w, nv, last, m[q], it, eit, tempered);
            if (t.hi != t.hi) { special = 1; break; }
            sh[q] = t.hi;
            sl[q] = t.lo;
        }
#pragma GCC unroll 8
        for (int q = 0; q < R && !special; q++) {
            shi[q] = sh[q];
            slo[q] = sl[q];
        }
    } else {
#pragma GCC unroll 8
        for (int q = 0; q < R; q++) {
            m[q] = FN(load_regs)(x + q * n, v[q], nv, last);
            special |= !(m[q] - m[q] == 0);
        }
#pragma GCC unroll 8
        for (int q = 0; q < R && !special; q++) {
            fs_dd t = FN(regs_sum)(mode, v[q], nv, last, m[q], it, eit, tempered);
            special |= t.hi != t.hi;
            shi[q] = t.hi;
            slo[q] = t.lo;
        }
    }
    if (special) {   /* scipy's special values: the one-row path, row by row */
        for (int q = 0; q < R; q++) FN(row_slow)(mode, x + q * n, y + q * out, n, tp);
        return;
    }
    VD L = mode == FS_SOFTMAX ? shi : FN(log_dd)(shi, slo);
    if (mode == FS_LOGSUMEXP) {
#pragma GCC unroll 8
        for (int q = 0; q < R; q++) y[q] = (T)((double)m[q] + L[q]);
        return;
    }
#pragma GCC unroll 8
    for (int q = 0; q < R; q++) {
        T *yq = y + q * out;
        V w[FS_REG_VECS];
        if (mode == FS_SOFTMAX) {
            FN(inv) inv = FN(make_inv)((fs_dd){shi[q], slo[q]});
#pragma GCC unroll 16
            for (int k = 0; k < nv; k++) w[k] = FN(mul_inv)(v[q][k], inv);
        } else {
            V vm = FN(splat)(m[q]), vl = FN(splat)((T)L[q]);
#pragma GCC unroll 16
            for (int k = 0; k < nv; k++) w[k] = FN(log_out)(v[q][k], vm, vl, it, eit, tempered);
        }
#pragma GCC unroll 16
        for (int k = 0; k < nv - 1; k++) FN(store)(yq + k * N, w[k]);
        if (last == N) FN(store)(yq + (nv - 1) * N, w[nv - 1]);
        else FN(store_part)(yq + (nv - 1) * N, w[nv - 1], last);
    }
}

/* every row of 1 <= n <= max_nv * N through rows_group_t in groups of R rows, R * nv <= budget and R <= ND (R = ND
   for logsumexp's rows of more than FS_LSE_REG_NV vectors, held one at a time), with mode, the vector count and R
   constants (a mode chosen at run time inside the groups cost the log modes' rows of 16 floats 10%) */
FS_INL void FN(rows_reg_t)(int mode, const T *x, T *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp, int tempered,
                           int budget, int max_nv)
{
    ptrdiff_t r = 0, out = mode == FS_LOGSUMEXP ? 1 : n;
    switch ((int)((n + N - 1) / N)) {
#define FS_GROUP(K) (mode == FS_LOGSUMEXP && (K) > FS_LSE_REG_NV ? ND : budget / (K) < ND ? budget / (K) : ND)
#define FS_REG_CASE(K) \
    case K: \
        if ((K) > max_nv) break; \
        for (; r + FS_GROUP(K) <= rows; r += FS_GROUP(K)) \
            FN(rows_group_t)(mode, x + r * n, y + r * out, n, tp, tempered, K, FS_GROUP(K)); \
        for (; r < rows; r++) FN(rows_group_t)(mode, x + r * n, y + r * out, n, tp, tempered, K, 1); \
        break;
    FS_REG_CASE(1) FS_REG_CASE(2) FS_REG_CASE(3) FS_REG_CASE(4) FS_REG_CASE(5) FS_REG_CASE(6) FS_REG_CASE(7)
    FS_REG_CASE(8)
#if FS_REG_VECS > 8
    FS_REG_CASE(9) FS_REG_CASE(10) FS_REG_CASE(11) FS_REG_CASE(12) FS_REG_CASE(13) FS_REG_CASE(14) FS_REG_CASE(15)
    FS_REG_CASE(16)
#endif
#undef FS_REG_CASE
#undef FS_GROUP
    }
}
/* The rows each mode holds in registers: softmax up to FS_REG_VECS vectors; log_softmax up to FS_LOG_MAX_NV;
   logsumexp up to FS_LSE_MAX_NV, those of more than FS_LSE_REG_NV one at a time (else the blocks were faster) */
static FS_T __attribute__((noinline)) void FN(log_rows_reg)(int mode, const T *x, T *y, ptrdiff_t rows, ptrdiff_t n,
                                                           const fs_temp *tp, int tempered)
{
    if (mode == FS_LOGSUMEXP)
        FN(rows_reg_t)(FS_LOGSUMEXP, x, y, rows, n, tp, tempered, FS_LOG_REG_VECS, FS_LSE_MAX_NV);
    else
        FN(rows_reg_t)(FS_LOG_SOFTMAX, x, y, rows, n, tp, tempered, FS_LOG_REG_VECS, FS_LOG_MAX_NV);
}

/* Softmax of rows too long for L1 but short enough that three of them stay in L2 (fs_rows_per_call): row r's exp
   pass scales row r - 1 as it goes, so the scale pass's loads and stores, which wait on L2, run under the exp's
   arithmetic instead of after it. Special rows go through the one-row path and end the overlap. Measured on
   Xeon family 6 model 207 (2 MB L2), one call on one thread, ns per element: float32 64x32000 0.52-0.53 -> 0.485,
   32x16384 0.50 -> 0.46; float64 32x16384 1.09 -> 0.98, 64x8192 1.10 -> 0.98. Through the API on 2 threads, tasks
   of 4 rows against 1: float32 64x32000 1.09x, 16x50257 1.08x, 32x16384 1.12x; float64 64x32000 1.09x. Rows of
   100000 and 128256 float32 (a fifth and a quarter of L2) were 1% and 6% slower, 4096 and 8192 within 3%. */
FS_INL void FN(softmax_rows_overlap_t)(const T *x, T *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp, int tempered)
{
    FN(inv) prev = {{0}, {0}, {0}};
    T *pending = NULL;   /* the previous row's terms, waiting for prev */
    for (ptrdiff_t r = 0; r < rows; r++) {
        const T *xr = x + r * n;
        T *yr = y + r * n;
        T m = FN(max_t)(xr, n, 0);
        fs_dd s = {__builtin_nan(""), 0.0};
        if (m - m == 0)   /* else +inf, or all -inf / nan */
            s = pending ? FN(expsum_overlap_t)(xr, yr, n, m, 1, tp, tempered, 1, pending, prev)
                        : FN(expsum_t)(xr, yr, n, m, 1, tp, tempered);
        else if (pending)
            FN(scale_t)(pending, n, prev);
        pending = NULL;
        if (s.hi != s.hi) {
            FN(row_slow)(FS_SOFTMAX, xr, yr, n, tp);   /* scipy's special values: the one-row path */
            continue;
        }
        prev = FN(make_inv)(s);
        pending = yr;
    }
    if (pending) FN(scale_t)(pending, n, prev);
}

FS_INL void FN(rows_t)(int mode, const T *x, T *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp, int tempered)
{
    if (mode == FS_SOFTMAX && rows > 1 && fs_overlaps_rows(n * (ptrdiff_t)sizeof(T))) {
        FN(softmax_rows_overlap_t)(x, y, rows, n, tp, tempered);
        return;
    }
    if (mode == FS_SOFTMAX && n >= 1 && n <= FS_REG_VECS * N) {
        FN(rows_reg_t)(FS_SOFTMAX, x, y, rows, n, tp, tempered, FS_REG_VECS, FS_REG_VECS);
        return;
    }
    if (mode != FS_SOFTMAX && n >= 1 && n <= (mode == FS_LOGSUMEXP ? FS_LSE_MAX_NV : FS_LOG_MAX_NV) * N) {
        FN(log_rows_reg)(mode, x, y, rows, n, tp, tempered);
        return;
    }
    ptrdiff_t out = mode == FS_LOGSUMEXP ? 1 : n, r = 0;
    if (n <= FS_BLOCK_MAX_N)
        for (; r + FS_BLOCK_ROWS <= rows; r += FS_BLOCK_ROWS) {
            if (mode == FS_SOFTMAX) FN(row_block_t)(FS_SOFTMAX, x + r * n, y + r * out, FS_BLOCK_ROWS, n, tp, tempered);
            else if (mode == FS_LOG_SOFTMAX)
                FN(row_block_t)(FS_LOG_SOFTMAX, x + r * n, y + r * out, FS_BLOCK_ROWS, n, tp, tempered);
            else FN(row_block_t)(FS_LOGSUMEXP, x + r * n, y + r * out, FS_BLOCK_ROWS, n, tp, tempered);
        }
    if (mode == FS_SOFTMAX)
        for (; r < rows; r++) FN(row_t)(FS_SOFTMAX, x + r * n, y + r * out, n, tp, tempered, 0, NULL);
    else if (mode == FS_LOG_SOFTMAX)
        for (; r < rows; r++) FN(row_t)(FS_LOG_SOFTMAX, x + r * n, y + r * out, n, tp, tempered, 0, NULL);
    else
        for (; r < rows; r++) FN(row_t)(FS_LOGSUMEXP, x + r * n, y + r * out, n, tp, tempered, 0, NULL);
}

/* rows whose output goes to memory with non-temporal stores (mode | FS_STREAM, see fs_kernels.h) */
static FS_T __attribute__((noinline)) void FN(rows_stream)(int mode, const T *x, T *y, ptrdiff_t rows, ptrdiff_t n,
                                                           const fs_temp *tp)
{
    T buf[FS_STREAM_N] __attribute__((aligned(64)));
    for (ptrdiff_t r = 0; r < rows; r++) {
        if (mode == FS_SOFTMAX) {
            if (tp) FN(row_t)(FS_SOFTMAX, x + r * n, y + r * n, n, tp, 1, 1, buf);
            else FN(row_t)(FS_SOFTMAX, x + r * n, y + r * n, n, NULL, 0, 1, buf);
        } else {
            if (tp) FN(row_t)(FS_LOG_SOFTMAX, x + r * n, y + r * n, n, tp, 1, 1, buf);
            else FN(row_t)(FS_LOG_SOFTMAX, x + r * n, y + r * n, n, NULL, 0, 1, buf);
        }
    }
    FN(stream_fence)();
}

static FS_T void FN(rows)(int mode, const void *x, void *y, ptrdiff_t rows, ptrdiff_t n, const fs_temp *tp)
{
    if ((mode & FS_STREAM) && (mode & ~FS_STREAM) != FS_LOGSUMEXP)
        FN(rows_stream)(mode & ~FS_STREAM, x, y, rows, n, tp);
    else if (tp)
        FN(rows_t)(mode & ~FS_STREAM, x, y, rows, n, tp, 1);
    else
        FN(rows_t)(mode & ~FS_STREAM, x, y, rows, n, NULL, 0);
}

/* Columns. The (n, width) block, rows ld elements apart, is processed in column tiles of FS_TILE so that the
   per-column state (max, sum, reciprocal or log) lives in small stack arrays; each pass streams the tile row by
   row, vectorised across columns. The log modes count the entries equal to the column max, as the rows do. Special
   columns are encoded in the per-column factor (nan reciprocal, nan or 0 log), so pass 3 needs no branches. */
/* The tile widths are the path's (TILE_F32, TILE_F64 in fs_kernels.c, measured there): multiples of every N, and
   divisors of the drivers' column tasks (src_cython/parallel/fs_lines.c). */
#if FS_F64
#define FS_TILE TILE_F64
#else
#define FS_TILE TILE_F32
#endif

/* column sums, kept in sb (and cb) from row to row: double lanes for float32 terms (lo, then hi), TwoSum (s, c) pairs
   for float64 ones */
FS_INL FN(acc) FN(col_acc_load)(const double *sb, const double *cb, ptrdiff_t j)
{
    FN(acc) a;
#if FS_F64
    a.s = FN(load)(sb + j);
    a.c = FN(load)(cb + j);
#else
    (void)cb;
    __builtin_memcpy(&a.lo, sb + j, sizeof a.lo);
    __builtin_memcpy(&a.hi, sb + j + ND, sizeof a.hi);
#endif
    return a;
}
FS_INL void FN(col_acc_store)(double *sb, double *cb, ptrdiff_t j, FN(acc) a)
{
#if FS_F64
    FN(store)(sb + j, a.s);
    FN(store)(cb + j, a.c);
#else
    (void)cb;
    __builtin_memcpy(sb + j, &a.lo, sizeof a.lo);
    __builtin_memcpy(sb + j + ND, &a.hi, sizeof a.hi);
#endif
}

/* Every pass over a tile reads w columns of each row, then jumps ld elements to the next row: short runs (256 bytes
   for float32) that the hardware prefetchers do not carry over to the next row. So each pass fetches the lines of
   the row FS_COL_AHEAD rows on. Measured on an AMD EPYC family 25 model 1 (Zen 3, AVX2), one thread, 2 MB pages
   as numpy's arrays get, 256 columns of rows 2000 apart, ns per element, softmax / log_softmax / logsumexp:
   float32 8000 rows 1.29 / 1.41 / 0.87 -> 0.97 / 1.10 / 0.76, 2000 rows 1.13 / 1.23 / 0.82 -> 0.92 / 1.01 / 0.77
   (4 and 16 rows ahead within 3% of 8); float64 2000 rows within 1%. */
#define FS_COL_AHEAD 8

/* Pass 2 of the columns for g rows of a tile of w columns: their exp terms (stored for softmax) added to the column
   sums, each term as before (acc_add: the same bits as row after row), but with the sums and counts read from the
   stack and written back once per g rows rather than once a row. float64 terms keep a TwoSum each: a group's plain
   sum first, as the rows' groups do, took float64 columns to 2.2 ulp in the harness's logsumexp. Measured on
   2000x2000 as above, one row at a time against 4 (ns per element, softmax / log_softmax / logsumexp): float32
   0.90-0.93 / 1.04-1.07 / 0.63-0.64 against 0.82-0.89 / 0.95-1.04 / 0.59-0.60, float64 2.65-2.82 / 3.32-3.40 / 2.04
   against 2.09-2.20 / 2.70-2.79 / 1.50-1.56; AVX2 float32 1.56 / 1.90 / 1.09 against 1.18 / 1.54 / 0.85, float64
   3.77 / 4.03 / 2.69 against 3.17 / 3.49 / 2.23. 2 rows at a time made float32 3-5% slower than one. */
#define FS_COL_ROWS 4
FS_INL void FN(col_terms_t)(int mode, const T *x, T *y, ptrdiff_t ld, ptrdiff_t w, const T *mb, double *sb, double *cb,
                            __typeof__(((VI){0})[0]) *kb, V it, V eit, int tempered, int g)
{
    ptrdiff_t wv = (w + N - 1) / N * N, wf = w / N * N;
    for (ptrdiff_t j = 0; j < wv; j += N) {
        int full = j < wf;
        V xs[FS_COL_ROWS], e[FS_COL_ROWS], d[FS_COL_ROWS], negm = -FN(load)(mb + j);
        VI k = (VI){0};
        if (mode != FS_SOFTMAX) __builtin_memcpy(&k, kb + j, sizeof k);
        for (int u = 0; u < g; u++)
            xs[u] = full ? FN(load)(x + u * ld + j) : FN(load_part)(x + u * ld + j, w - j, -(T)__builtin_inf());
        if (EXP_WAYS > 1) FN(exp_core_k)(g, xs, negm, it, eit, tempered, mode != FS_SOFTMAX, e, d);
        else for (int u = 0; u < g; u++) e[u] = FN(exp_core)(xs[u], negm, it, eit, tempered, mode != FS_SOFTMAX, d + u);
        for (int u = 0; u < g; u++) {
            if (mode != FS_SOFTMAX) e[u] = FN(drop_at_max)(e[u], d[u], &k);
            else if (full) FN(store)(y + u * ld + j, e[u]);
            else FN(store_part)(y + u * ld + j, e[u], w - j);
        }
        if (mode != FS_SOFTMAX) __builtin_memcpy(kb + j, &k, sizeof k);
        FN(acc) a = FN(col_acc_load)(sb, cb, j);
        for (int u = 0; u < g; u++) FN(acc_add)(&a, e[u]);
        FN(col_acc_store)(sb, cb, j, a);
    }
}

/* Tall columns in blocks of rows: the max and the exp pass of a block read it once from memory and once from L2,
   where whole columns read x twice from memory. The column state is merged block to block as the slices do
   (slice_stats_t): when a column's max grows, its sum so far (and, in the log modes, its count at the old max) is
   rescaled by exp(old - new). softmax's stored terms are relative to the max of their block's time; pass 3 scales
   them by exp(that max - the final max) / sum, computed in double, one factor a block and column (an exp only
   where they differ). Blocks pay only for tiles of strided rows (ld > FS_TILE) of 2.5 MB or more: AVX2 on an AMD
   EPYC family 25 model 1 (Zen 3), one thread, float32 softmax, ns per element, whole columns -> blocks, best of 9
   (a noisy machine: the same build's 4000x500 took 1.25-2.04 from run to run): 8000x500 2.885 -> 2.507 and
   3.070 -> 2.797, 16000x500 3.645 -> 3.161, 8000x2000 2.754 -> 2.314, 5500x500 2.218 -> 2.033 (tiles of 2.7-8
   MB); but 4000x500 1.301 -> 1.385, 2000x2000 1.811 -> 2.021 (1-2 MB, read again from L3) and one contiguous
   tile 8000x128 1.220 -> 1.286 (streamed by the hardware prefetcher). Below the bound the code is whole columns'
   (8000x500 with blocks, 1000x500 and 2000x2000 without: 3.195 -> 2.763, 1.041 -> 1.054, 1.941 -> 1.958).
   float32 only: the float64 factors would need an exp better than a double ulp to keep softmax within its
   bound, so float64 keeps whole columns (FS_COL_BLOCKS 1). */
#define FS_COL_BLOCK_ROWS 256                  /* 128 KB a block at 512 bytes a row */
/* the tile (n rows of FS_TILE) from which blocks pay: 5120 rows of AVX2's and SSE2's 512-byte tile rows, 10240 of
   the 256-byte ones (AVX-512, NEON, generic; not measured there) */
#define FS_COL_BLOCK_MIN_BYTES (5 << 19)
#if FS_F64
#define FS_COL_BLOCKS 1
#else
#define FS_COL_BLOCKS 32             /* at most; taller columns take longer blocks (16 KB of stack for their maxima) */
#endif
FS_INL void FN(cols_t)(int mode, const T *x, T *y, ptrdiff_t n, ptrdiff_t width, ptrdiff_t ld, const fs_temp *tp,
                       int tempered)
{
    V it, eit;
    FN(temp)(tp, &it, &eit);
    T mb[FS_TILE] __attribute__((aligned(64)));   /* the running max */
    T bm[FS_TILE] __attribute__((aligned(64)));   /* the block's max */
    T wm[FS_TILE] __attribute__((aligned(64)));   /* the max the block's terms are taken from: mb, 0 where -inf */
    double sb[FS_TILE] __attribute__((aligned(64))), cb[FS_TILE] __attribute__((aligned(64)));
    T fa[FS_TILE] __attribute__((aligned(64))), fb[FS_TILE] __attribute__((aligned(64)));
#if !FS_F64 && !FS_FMA
    double db[FS_TILE] __attribute__((aligned(64)));   /* float32 without FMA: 1/sum applied in double */
#endif
    __typeof__(((VI){0})[0]) kb[FS_TILE] __attribute__((aligned(64)));   /* -count of entries at the max */
#if FS_COL_BLOCKS > 1
    T wmb[FS_COL_BLOCKS][FS_TILE] __attribute__((aligned(64)));   /* softmax: each block's wm */
    double iv[FS_TILE] __attribute__((aligned(64)));              /* softmax: 1/sum */
#endif
    ptrdiff_t rb = n;   /* rows a block */
    if (FS_COL_BLOCKS > 1 && ld > FS_TILE && (size_t)n * FS_TILE * sizeof(T) >= FS_COL_BLOCK_MIN_BYTES) {
        rb = (n + FS_COL_BLOCKS - 1) / FS_COL_BLOCKS;
        if (rb < FS_COL_BLOCK_ROWS) rb = FS_COL_BLOCK_ROWS;
    }
    double temperature = tp ? tp->t : 1.0;
    for (ptrdiff_t j0 = 0; j0 < width; j0 += FS_TILE) {
        ptrdiff_t w = width - j0 < FS_TILE ? width - j0 : FS_TILE;
        ptrdiff_t wv = (w + N - 1) / N * N;   /* padded tile width */
        ptrdiff_t wf = w / N * N;             /* full-vector part */
        for (ptrdiff_t j = 0; j < wv; j++) { mb[j] = -(T)__builtin_inf(); sb[j] = cb[j] = 0.0; kb[j] = 0; }
        for (ptrdiff_t b0 = 0; b0 < n; b0 += rb) {
            ptrdiff_t nb = n - b0 < rb ? n - b0 : rb, left = n - b0;   /* rows in the block, rows to the end */
            const T *xb = x + b0 * ld + j0;
            T *yb = y + b0 * ld + j0, *bmax = b0 ? bm : mb;
            for (ptrdiff_t j = 0; b0 && j < wv; j++) bm[j] = -(T)__builtin_inf();
            /* pass 1: the block's column max */
            for (ptrdiff_t i = 0; i < nb; i++) {
                const T *xr = xb + i * ld;
                ptrdiff_t j = 0;
                if (i + FS_COL_AHEAD < left) FN(prefetch_lines)(xr + FS_COL_AHEAD * ld, w, 0);
                for (; j < wf; j += N) FN(store)(bmax + j, VMAX(FN(load)(xr + j), FN(load)(bmax + j)));
                if (j < w)
                    FN(store)(bmax + j, VMAX(FN(load_part)(xr + j, w - j, -(T)__builtin_inf()), FN(load)(bmax + j)));
            }
            /* a column whose max grew: its state so far rescaled to the new max (nothing to rescale before its
               first finite entry: its terms were 0, or nan) */
            for (ptrdiff_t j = 0; b0 && j < w; j++) {
                if (!(bm[j] > mb[j])) continue;
                if (mb[j] != -(T)__builtin_inf()) {
                    fs_dd s = {sb[j], cb[j]};
                    if (mode != FS_SOFTMAX) s = fs_dd_add1((fs_dd){-(double)kb[j] / UNBIAS, 0.0}, s.hi, s.lo);
                    s = fs_dd_scale(s, fs_exp_shift(mb[j], bm[j], temperature));
                    sb[j] = s.hi;
                    cb[j] = s.lo;
                    kb[j] = 0;
                }
                mb[j] = bm[j];
            }
            const T *tm = mb;   /* whole columns: their max, as is (an all -inf column's nan terms are fixed below) */
            if (rb < n) {       /* blocks: a max of 0 until the column's first finite entry, whose terms are 0 */
                for (ptrdiff_t j = 0; j < wv; j++) wm[j] = mb[j] == -(T)__builtin_inf() ? 0 : mb[j];
                tm = wm;
            }
#if FS_COL_BLOCKS > 1
            if (mode == FS_SOFTMAX && rb < n) __builtin_memcpy(wmb[b0 / rb], wm, sizeof wm);
#endif
            /* pass 2: exp, (store), column sums */
            ptrdiff_t i = 0;
            for (; i + FS_COL_ROWS <= nb; i += FS_COL_ROWS) {
                for (int u = 0; u < FS_COL_ROWS && i + FS_COL_AHEAD + u < left; u++) {
                    FN(prefetch_lines)(xb + (i + FS_COL_AHEAD + u) * ld, w, 0);
                    if (mode == FS_SOFTMAX) FN(prefetch_lines)(yb + (i + FS_COL_AHEAD + u) * ld, w, 1);
                }
                FN(col_terms_t)(mode, xb + i * ld, yb + i * ld, ld, w, tm, sb, cb, kb, it, eit, tempered,
                                FS_COL_ROWS);
            }
            for (; i < nb; i++)
                FN(col_terms_t)(mode, xb + i * ld, yb + i * ld, ld, w, tm, sb, cb, kb, it, eit, tempered, 1);
        }
        /* per-column finish (scalar, O(width)); padded lanes get harmless values */
        for (ptrdiff_t j = w; j < wv; j++) {
            fa[j] = fb[j] = 0;
#if FS_COL_BLOCKS > 1
            iv[j] = 0.0;
#endif
#if !FS_F64 && !FS_FMA
            db[j] = 0.0;
#endif
        }
        for (ptrdiff_t j = 0; j < w; j++) {
            double unbias = mode == FS_SOFTMAX ? 1.0 : UNBIAS;
            fs_dd s = fs_fast_two_sum(sb[j] * unbias, cb[j] * unbias);
            if (mode != FS_SOFTMAX) s = fs_dd_add1((fs_dd){-(double)kb[j], 0.0}, s.hi, s.lo);
            T m = mb[j];
            int special = m - m == 0 ? (s.hi != s.hi ? FS_COL_NAN : FS_COL_OK)
                          : FN(has_nan)(x + j0 + j, n, ld) ? FS_COL_NAN : m > 0 ? FS_COL_PINF : FS_COL_NINF;
            if (mode == FS_SOFTMAX) {
                fs_dd inv = special ? (fs_dd){__builtin_nan(""), 0.0} : fs_dd_inv(s);
#if FS_F64
                fa[j] = inv.hi;
                fb[j] = inv.lo;
#else
                double v = inv.hi + inv.lo;
#if FS_COL_BLOCKS > 1
                iv[j] = v;
#endif
                fa[j] = (float)v;
                fb[j] = (float)(v - (double)fa[j]);
#if !FS_FMA
                db[j] = v;
#endif
#endif
            } else if (mode == FS_LOG_SOFTMAX) {
                /* L for y = (x - m) - L; 0 for a +inf max makes that nan at +inf entries and -inf elsewhere */
                fa[j] = special == FS_COL_OK ? (T)fs_log_sum_inl(s) : special == FS_COL_PINF ? 0 : (T)__builtin_nan("");
            } else {
                y[j0 + j] = special == FS_COL_OK ? (T)((double)m + fs_log_sum_inl(s))
                          : special == FS_COL_PINF ? (T)__builtin_inf()
                          : special == FS_COL_NINF ? -(T)__builtin_inf() : (T)__builtin_nan("");
            }
        }
        if (mode == FS_LOGSUMEXP) continue;
        /* pass 3 */
        for (ptrdiff_t i = 0; i < n; i++) {
            const T *xr = x + i * ld + j0;
            T *yr = y + i * ld + j0;
#if FS_COL_BLOCKS > 1
            if (mode == FS_SOFTMAX && rb < n && i % rb == 0) {
                /* this block's factors: exp(its max - the final max) / sum, in double (float32 only). A block
                   taken before its column's first finite entry (wm 0 above the final max) holds only zeros. */
                const T *wk = wmb[i / rb];
                for (ptrdiff_t j = 0; j < w; j++) {
                    double v = iv[j];
                    if (wk[j] != mb[j]) v *= wk[j] < mb[j] ? fs_exp_shift(wk[j], mb[j], temperature) : 0.0;
                    fa[j] = (T)v;
                    fb[j] = (T)(v - (double)fa[j]);
#if !FS_FMA
                    db[j] = v;
#endif
                }
            }
#endif
            if (i + FS_COL_AHEAD < n) {   /* softmax rescales y in place; the log modes read x and write y */
                if (mode != FS_SOFTMAX) FN(prefetch_lines)(xr + FS_COL_AHEAD * ld, w, 0);
                FN(prefetch_lines)(yr + FS_COL_AHEAD * ld, w, 1);
            }
            for (ptrdiff_t j = 0; j < wv; j += N) {
                int full = j < wf;
                V v;
                if (mode == FS_SOFTMAX) {
                    V e = full ? FN(load)(yr + j) : FN(load_part)(yr + j, w - j, 0);
#if !FS_F64 && !FS_FMA
                    VD d0, d1;
                    __builtin_memcpy(&d0, db + j, sizeof d0);
                    __builtin_memcpy(&d1, db + j + ND, sizeof d1);
                    v = PACK_D_F(CVT_LO_F(e) * d0, CVT_HI_F(e) * d1);
#else
                    v = VFMA(e, FN(load)(fa + j), e * FN(load)(fb + j));
#endif
                } else {
                    V xv = full ? FN(load)(xr + j) : FN(load_part)(xr + j, w - j, 0);
                    V dd = xv - FN(load)(mb + j);
                    if (tempered) dd = FN(scale_shift)(dd, it, eit);
                    v = dd - FN(load)(fa + j);
                }
                if (full) FN(store)(yr + j, v); else FN(store_part)(yr + j, v, w - j);
            }
        }
    }
}
static FS_T void FN(cols)(int mode, const void *x, void *y, ptrdiff_t n, ptrdiff_t width, ptrdiff_t ld,
                          const fs_temp *tp)
{
    if (tp) FN(cols_t)(mode, x, y, n, width, ld, tp, 1); else FN(cols_t)(mode, x, y, n, width, ld, NULL, 0);
}

/* Slices of a long row. Stats: one pass, block by block: a block is read from memory by the max and again from
   cache by the exp; when the max grows, the sum so far is rescaled by exp(old - new), which keeps the count of the
   entries equal to the final max exact. */
#define FS_ONLINE_BLOCK 4096

FS_INL fs_dd FN(slice_stats_t)(const T *x, ptrdiff_t n, const fs_temp *tp, int tempered, double temperature,
                               double *max_out)
{
    T m = -(T)__builtin_inf();
    fs_dd s = {0.0, 0.0};
    for (ptrdiff_t i = 0; i < n; i += FS_ONLINE_BLOCK) {
        ptrdiff_t k = n - i < FS_ONLINE_BLOCK ? n - i : FS_ONLINE_BLOCK;
        T bm = FN(max_t)(x + i, k, 1);
        if (bm != bm || bm == (T)__builtin_inf()) {
            /* the sum is moot; a nan anywhere later still wins over +inf */
            for (i += k; bm == (T)__builtin_inf() && i < n; i += FS_ONLINE_BLOCK) {
                T later = FN(max_t)(x + i, n - i < FS_ONLINE_BLOCK ? n - i : FS_ONLINE_BLOCK, 1);
                if (later != later) bm = later;
            }
            *max_out = bm;
            return (fs_dd){__builtin_nan(""), 0.0};
        }
        if (bm > m) {
            if (m != -(T)__builtin_inf()) s = fs_dd_scale(s, fs_exp_shift(m, bm, temperature));
            m = bm;
        }
        if (m != -(T)__builtin_inf()) s = fs_dd_add(s, FN(expsum_t)(x + i, NULL, k, m, 0, tp, tempered));
    }
    *max_out = m;
    return s;
}
static FS_T fs_dd FN(slice_stats)(const void *x, ptrdiff_t n, const fs_temp *tp, double temperature,
                                  double *max_out)
{
    return tp ? FN(slice_stats_t)(x, n, tp, 1, temperature, max_out)
              : FN(slice_stats_t)(x, n, NULL, 0, temperature, max_out);
}

FS_INL void FN(slice_finish_t)(int mode, const T *x, T *y, ptrdiff_t n, double max, fs_dd sum, const fs_temp *tp,
                               int tempered)
{
    T m = (T)max;
    if (mode == FS_LOGSUMEXP) {
        *y = !(m - m == 0) ? m : sum.hi != sum.hi ? (T)__builtin_nan("") : (T)((double)m + fs_log_sum_inl(sum));
    } else if (mode == FS_SOFTMAX) {
        if (!(m - m == 0) || sum.hi != sum.hi) FN(fill_nan)(y, n);
        else FN(expscale_t)(x, y, n, m, FN(make_inv)(sum), tp, tempered);
    } else if (m != m || m == -(T)__builtin_inf()) {
        FN(fill_nan)(y, n);
    } else if (m == (T)__builtin_inf()) {
        FN(sub_t)(x, y, n, m, 0, tp, tempered, 0);        /* scipy's (x - inf) - 0 */
    } else if (sum.hi != sum.hi) {
        FN(fill_nan)(y, n);
    } else {
        FN(sub_t)(x, y, n, m, (T)fs_log_sum_inl(sum), tp, tempered, 0);
    }
}
static FS_T void FN(slice_finish)(int mode, const void *x, void *y, ptrdiff_t n, double max, fs_dd sum,
                                  const fs_temp *tp)
{
    if (tp) FN(slice_finish_t)(mode, x, y, n, max, sum, tp, 1); else FN(slice_finish_t)(mode, x, y, n, max, sum, NULL, 0);
}

/* ================================================================================================================
 * 4. training-loop kernels
 * ============================================================================================================== */

/* sum(a * b) or sum(a) (b == NULL) in double lanes: float32 terms widened, float64 ones plain. */
FS_INL double FN(dot)(const T *a, const T *b, ptrdiff_t n)
{
    VD s0 = {0}, s1 = {0};
    ptrdiff_t i = 0;
    for (; i + N <= n; i += N) {
#if FS_F64
        s0 += b ? FN(load)(a + i) * FN(load)(b + i) : FN(load)(a + i);
#else
        /* the product of two floats is exact in double: widen first */
        VD lo = CVT_LO_F(FN(load)(a + i)), hi = CVT_HI_F(FN(load)(a + i));
        if (b) { lo *= CVT_LO_F(FN(load)(b + i)); hi *= CVT_HI_F(FN(load)(b + i)); }
        s0 += lo;
        s1 += hi;
#endif
    }
    double s = FN(hsum_d)(s0 + s1);
    for (; i < n; i++) s += b ? (double)a[i] * (double)b[i] : (double)a[i];
    return s;
}

static FS_T void FN(backward_rows)(int log, const void *yv, const void *gv, void *ov, ptrdiff_t rows, ptrdiff_t n)
{
    V zero = FN(splat)(0), it = FN(splat)(1), d;
    for (ptrdiff_t r = 0; r < rows; r++) {
        const T *y = (const T *)yv + r * n, *g = (const T *)gv + r * n;
        T *o = (T *)ov + r * n;
        V s = FN(splat)((T)FN(dot)(log ? g : y, log ? NULL : g, n));   /* the sums in double, the rest in T (torch) */
        ptrdiff_t i = 0;
        for (; i < n; i += N) {
            ptrdiff_t k = n - i < N ? n - i : N;
            V yi = FN(load_part)(y + i, k, 0), gi = FN(load_part)(g + i, k, 0);
            V v = log ? gi - FN(exp_core)(yi, zero, it, zero, 0, 0, &d) * s : yi * (gi - s);
            FN(store_part)(o + i, v, k);
        }
    }
}

static FS_T void FN(backward_cols)(int log, const void *yv, const void *gv, void *ov, ptrdiff_t n, ptrdiff_t inner,
                                   double *acc)
{
    const T *y = yv, *g = gv;
    T *o = ov;
    V zero = FN(splat)(0), it = FN(splat)(1), d;
    for (ptrdiff_t j = 0; j < inner; j++) acc[j] = 0.0;
    for (ptrdiff_t k = 0; k < n; k++)
        for (ptrdiff_t j = 0; j < inner; j++)
            acc[j] += log ? (double)g[k * inner + j] : (double)y[k * inner + j] * (double)g[k * inner + j];
    for (ptrdiff_t k = 0; k < n; k++) {
        ptrdiff_t j = 0;
        for (; j < inner; j += N) {
            ptrdiff_t c = inner - j < N ? inner - j : N;
            V yi = FN(load_part)(y + k * inner + j, c, 0), gi = FN(load_part)(g + k * inner + j, c, 0), s;
            for (ptrdiff_t l = 0; l < N; l++) s[l] = l < c ? (T)acc[j + l] : 0;
            V v = log ? gi - FN(exp_core)(yi, zero, it, zero, 0, 0, &d) * s : yi * (gi - s);
            FN(store_part)(o + k * inner + j, v, c);
        }
    }
}

/* Cross entropy of one row (torch's formula, nll_loss plus its label-smoothing term):
   class target t: loss = (1 - ls) w[t] (lse - x[t]) + ls/n sum_c w[c] (lse - x[c]),  lse = m + log(sum exp(x - m))
                   grad = p ((1 - ls) w[t] + ls/n sum(w)) - ((1 - ls) w[t] onehot(t) + ls/n w),  p = softmax(x)
   probabilities q: loss = sum_c wq[c] (lse - x[c]),  wq = w (q (1 - ls) + ls/n);  grad = p sum(wq) - wq
   (a class with wq == 0 contributes 0 even where its logit is -inf). grad is scaled by `scale`. */
static FS_T double FN(cross_entropy_row)(const void *xv, const void *qv, int64_t t, void *gv, ptrdiff_t n,
                                         const double *w, double w_total, double ls, double scale)
{
    const T *x = xv, *q = qv;
    T *g = gv;
    if (!q && t < 0) {                                     /* ignored: contributes nothing */
        if (g) for (ptrdiff_t i = 0; i < n; i++) g[i] = 0;
        return 0.0;
    }
    double m = FN(max_t)(x, n, 1);
    if (!(m - m == 0)) {                                   /* nan, +inf or only -inf: nan, as torch */
        if (g) FN(fill_nan)(g, n);
        return __builtin_nan("");
    }
    fs_dd total = FN(expsum_t)(x, g, n, (T)m, g != NULL, NULL, 0);   /* g, if any, now holds exp(x - m) */
    double log_total = fs_log_sum_inl(total), inv_total = 1.0 / (total.hi + total.lo);
    double keep = 1.0 - ls, spread = ls / (double)n;
    if (q) {
        double a = 0.0, b = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) {
            double wq = ((double)q[i] * keep + spread) * (w ? w[i] : 1.0);
            a += wq;
            b += wq != 0.0 ? wq * (m - (double)x[i]) : 0.0;
        }
        if (g)
            for (ptrdiff_t i = 0; i < n; i++)
                g[i] = (T)(((double)g[i] * inv_total * a - ((double)q[i] * keep + spread) * (w ? w[i] : 1.0)) * scale);
        return b + a * log_total;
    }
    double w_t = w ? w[t] : 1.0, loss = w_t * ((m - (double)x[t]) + log_total);
    if (ls != 0.0) {
        double dist = 0.0;
        for (ptrdiff_t i = 0; i < n; i++) dist += (w ? w[i] : 1.0) * (m - (double)x[i]);
        loss = keep * loss + spread * (dist + w_total * log_total);
    }
    if (g) {
        double a = scale * (keep * w_t + spread * w_total) * inv_total, b = scale * spread;
        for (ptrdiff_t i = 0; i < n; i++) g[i] = (T)((double)g[i] * a - b * (w ? w[i] : 1.0));
        g[t] = (T)((double)g[t] - scale * keep * w_t);
    }
    return loss;
}

/* ================================================================================================================
 * the harness's view of the passes, and the path's table
 * ============================================================================================================== */
static FS_T double FN(pass_max)(const void *x, ptrdiff_t n) { return FN(max_t)(x, n, 0); }
static FS_T fs_dd FN(pass_expsum)(const void *x, void *y, ptrdiff_t n, double m)
{
    return y ? FN(expsum_t)(x, y, n, (T)m, 1, NULL, 0) : FN(expsum_t)(x, NULL, n, (T)m, 0, NULL, 0);
}
static FS_T void FN(pass_scale)(void *y, ptrdiff_t n, fs_dd s) { FN(scale_t)(y, n, FN(make_inv)(s)); }
static FS_T void FN(pass_sub)(const void *x, void *y, ptrdiff_t n, double m, double L)
{
    FN(sub_t)(x, y, n, (T)m, (T)L, NULL, 0, 0);
}

static const fs_ops FN(ops) = {
    FN(rows), FN(cols), FN(slice_stats), FN(slice_finish), FN(backward_rows), FN(backward_cols),
    FN(cross_entropy_row), {FS_PATH_NAME, FN(pass_max), FN(pass_expsum), FN(pass_scale), FN(pass_sub)},
};

#undef FS_INL
#undef T
#undef V
#undef VI
#undef N
#undef FN
#undef VFMA
#undef VMAX
#undef VMIN
#undef U
#undef EXP_WAYS
#undef LOG2E
#undef MAGIC
#undef LN2_HI
#undef LN2_LO
#undef MANT_BITS
#undef ONE_BITS
#undef BIAS
#undef UNBIAS
#undef FLUSH
#undef FLUSH_BIASED
#undef FS_TILE
#undef FS_COL_ROWS
#undef FS_COL_AHEAD
#undef FS_COL_BLOCK_ROWS
#undef FS_COL_BLOCK_MIN_BYTES
#undef FS_COL_BLOCKS
#undef FS_ONLINE_BLOCK
#undef FS_BLOCK_ROWS
#undef FS_STREAM_N
#undef FS_BLOCK_MAX_N
#undef FS_REG_VECS
#undef FS_LOG_REG_VECS
#undef FS_LOG_MAX_NV
#undef FS_LSE_MAX_NV
#undef FS_LSE_REG_NV
#undef FS_SWAP
#undef FS_F64
#undef FS_PS
#undef FS_MMV
#undef FS_MASK
