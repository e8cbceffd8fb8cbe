/*
 * fs_kernels_impl.h -- kernel template, included three times by fs_kernels.c:
 * as the AVX-512 instance (64-byte vectors), the AVX2+FMA instance (32-byte
 * vectors) and the portable SSE2 instance (16-byte vectors, FMA emulated by
 * mul+add).  It undefines the instance's parameters at its end.
 * Written with GCC vector extensions; the few operations whose semantics
 * matter (max with a defined nan operand, FMA, float<->double) go through
 * the per-instance macros set by the includer:
 *   FSFN(name)  instance-specific name       FS_T  target attribute
 *   VF VI NF    float vector, int32 mask, lanes     VD VL ND  same for double
 *   FS_FMA      1 when VFMA_* is a real fused multiply-add
 *   VFMA_F/D, VMAX_F/D, CVT_LO_F, CVT_HI_F, PACK_D_F
 */

#define FS_INL static inline __attribute__((always_inline)) FS_T

/* The log paths (which count the max entries and sum only the others) compute exp(x - m) * 2^BIAS, so that
   terms below the smallest normal still add up: a log_softmax output of -1e-37 in float32 is the sum of such
   terms and must keep its digits. The sums are scaled back in double. */
#ifndef FS_BIAS_F
#define FS_BIAS_F 100
#define FS_BIAS_D 600
#define FS_UNBIAS_F 0x1p-100
#define FS_UNBIAS_D 0x1p-600
#endif

/* ------------------------------------------------------------------ */
/* small vector helpers                                                */
/* ------------------------------------------------------------------ */
FS_INL VF FSFN(spf)(float a) { return (VF){0} + a; }
FS_INL VD FSFN(spd)(double a) { return (VD){0} + a; }
FS_INL VF FSFN(ldf)(const float *p) { VF v; __builtin_memcpy(&v, p, sizeof v); return v; }
FS_INL VD FSFN(ldd)(const double *p) { VD v; __builtin_memcpy(&v, p, sizeof v); return v; }
FS_INL void FSFN(stf)(float *p, VF v) { __builtin_memcpy(p, &v, sizeof v); }
FS_INL void FSFN(std)(double *p, VD v) { __builtin_memcpy(p, &v, sizeof v); }
/* Partial loads/stores for tails: never touch memory past the k valid lanes. */
FS_INL VF FSFN(ldf_part)(const float *p, ptrdiff_t k, float fill)
{
    VF v = FSFN(spf)(fill);
    for (ptrdiff_t i = 0; i < k; i++) v[i] = p[i];
    return v;
}
FS_INL VD FSFN(ldd_part)(const double *p, ptrdiff_t k, double fill)
{
    VD v = FSFN(spd)(fill);
    for (ptrdiff_t i = 0; i < k; i++) v[i] = p[i];
    return v;
}
FS_INL void FSFN(stf_part)(float *p, VF v, ptrdiff_t k) { for (ptrdiff_t i = 0; i < k; i++) p[i] = v[i]; }
FS_INL void FSFN(std_part)(double *p, VD v, ptrdiff_t k) { for (ptrdiff_t i = 0; i < k; i++) p[i] = v[i]; }

/* Error-free vector TwoSum accumulation: (s, c) += a with s+c ~ exact. */
FS_INL void FSFN(acc2_d)(VD *s, VD *c, VD a)
{
    VD t = *s + a;
    VD sv = t - a;
    VD av = t - sv;
    *c += (*s - sv) + (a - av);
    *s = t;
}

/* Last step of e^r = 1 + r + r^2 q.  1 + r is kept as an exact pair
   (Fast2Sum, |r| < 1) so only the final add rounds at the scale of the
   result, instead of fma(fma(q, r, 1), r, 1) rounding twice.
   With hardware FMA the plain form is accurate enough for the bounds
   (exp ~0.95 ulp f64 / ~1.04 ulp f32) and 7-10% faster, so the exact
   pair is only used where mul+add rounds twice (baseline). */
FS_INL VF FSFN(tail_f)(VF r, VF q)
{
    VF one = FSFN(spf)(1.0f);
#if FS_FMA
    return VFMA_F(VFMA_F(q, r, one), r, one);
#else
    VF p0 = one + r;
    VF e1 = (one - p0) + r;
    return p0 + VFMA_F(r * r, q, e1);
#endif
}
FS_INL VD FSFN(tail_d)(VD r, VD q)
{
    VD one = FSFN(spd)(1.0);
#if FS_FMA
    return VFMA_D(VFMA_D(q, r, one), r, one);
#else
    VD p0 = one + r;
    VD e1 = (one - p0) + r;
    return p0 + VFMA_D(r * r, q, e1);
#endif
}

/* a * b = p + err exactly (err is garbage where p is not finite; the   */
/* exp core masks those lanes).  Dekker's split where FMA is emulated.  */
FS_INL VF FSFN(two_prod_f)(VF a, VF b, VF *err)
{
    VF p = a * b;
#if FS_FMA
    *err = VFMA_F(a, b, -p);
#else
    VF c = FSFN(spf)(4097.0f), ah = a * c, bh = b * c;
    ah = ah - (ah - a); bh = bh - (bh - b);
    VF al = a - ah, bl = b - bh;
    *err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
#endif
    return p;
}
FS_INL VD FSFN(two_prod_d)(VD a, VD b, VD *err)
{
    VD p = a * b;
#if FS_FMA
    *err = VFMA_D(a, b, -p);
#else
    VD c = FSFN(spd)(134217729.0), ah = a * c, bh = b * c;
    ah = ah - (ah - a); bh = bh - (bh - b);
    VD al = a - ah, bl = b - bh;
    *err = ((ah * bh - p) + ah * bl + al * bh) + al * bl;
#endif
    return p;
}

/* 1/T as it + eit in the working precision (tp NULL: T = 1). */
FS_INL void FSFN(temp_f)(const fs_temp *tp, VF *it, VF *eit)
{
    float h = tp ? (float)tp->inv : 1.0f;
    *it = FSFN(spf)(h);
    *eit = FSFN(spf)(tp ? (float)((tp->inv - (double)h) + tp->inv_err) : 0.0f);
}
FS_INL void FSFN(temp_d)(const fs_temp *tp, VD *it, VD *eit)
{
    *it = FSFN(spd)(tp ? tp->inv : 1.0);
    *eit = FSFN(spd)(tp ? tp->inv_err : 0.0);
}

/* (x - m) / T for log_softmax, d = x - m already rounded: the products are
   not worth an exact pair (|y| >= |d|/T), but d = -inf must stay -inf
   where eit * -inf would be nan. */
FS_INL VF FSFN(scale_d_f)(VF d, VF it, VF eit)
{
    VF c = d * eit;
    c = (VF)((VI)c & ((c - c) == FSFN(spf)(0.0f)));
    return VFMA_F(d, it, c);
}
FS_INL VD FSFN(scale_d_d)(VD d, VD it, VD eit)
{
    VD c = d * eit;
    c = (VD)((VL)c & ((c - c) == FSFN(spd)(0.0)));
    return VFMA_D(d, it, c);
}

/* ------------------------------------------------------------------ */
/* exp core: e = exp(x - m) given negm = -m, for x <= m.                */
/* d = x - m is split exactly as hi + lo by TwoSum (no ordering         */
/* assumption on |x|, |m|); the rounding of d would otherwise cost      */
/* |d|*eps relative error.  hi is range-reduced against a two-part ln2  */
/* (hi part short enough for n*LN2HI to be exact without FMA), lo is    */
/* added to the reduced argument.  n comes from the 1.5*2^p "magic"     */
/* add, whose low bits are n itself, so 2^n is two integer ops.         */
/* Results below the smallest normal (and -inf, and overflowed x - m)   */
/* are flushed to exactly 0 via the hi < THR mask; nan stays nan.       */
/* *hi_out returns hi (== 0 exactly when x == m).                       */
/* ------------------------------------------------------------------ */
FS_INL VF FSFN(exp_core_f)(VF x, VF negm, VF it, VF eit, int tempered, int biased, VF *hi_out)
{
    VF s = x + negm;
    VF xv = s - negm;
    VF mv = s - xv;
    VF lo = (x - xv) + (negm - mv);
    if (tempered) {   /* (hi + lo) * (it + eit) = (x - m) / T, again as an exact-enough pair */
        VF err, p = FSFN(two_prod_f)(s, it, &err);
        lo = VFMA_F(lo, it, VFMA_F(s, eit, err));
        s = p;
    }
    VF t = VFMA_F(s, FSFN(spf)(0x1.715476p+0f), FSFN(spf)(0x1.8p23f));
    VF nf = t - FSFN(spf)(0x1.8p23f);
    VF r = VFMA_F(nf, FSFN(spf)(-0x1.62e4p-1f), s);             /* exact */
    r = VFMA_F(nf, FSFN(spf)(-0x1.7f7d1cp-20f), r) + lo;
    VF q = VFMA_F(FSFN(spf)(0x1.6d127p-10f), r, FSFN(spf)(0x1.120cd4p-7f));
    q = VFMA_F(q, r, FSFN(spf)(0x1.555518p-5f));
    q = VFMA_F(q, r, FSFN(spf)(0x1.5554dcp-3f));
    q = VFMA_F(q, r, FSFN(spf)(0.5f));
    VF p = FSFN(tail_f)(r, q);
    VI sc = ((VI)t << 23) + (biased ? 0x3f800000 + (FS_BIAS_F << 23) : 0x3f800000);
    VF e = p * (VF)sc;
    /* ln(FLT_MIN) rounded down; biased: the n whose 2^(n + FS_BIAS_F) is still normal */
    VI z = s < FSFN(spf)(biased ? -156.6f : -87.3365478515625f);
    *hi_out = s;
    return (VF)((VI)e & ~z);
}

FS_INL VD FSFN(exp_core_d)(VD x, VD negm, VD it, VD eit, int tempered, int biased, VD *hi_out)
{
    VD s = x + negm;
    VD xv = s - negm;
    VD mv = s - xv;
    VD lo = (x - xv) + (negm - mv);
    if (tempered) {
        VD err, p = FSFN(two_prod_d)(s, it, &err);
        lo = VFMA_D(lo, it, VFMA_D(s, eit, err));
        s = p;
    }
    VD t = VFMA_D(s, FSFN(spd)(0x1.71547652b82fep+0), FSFN(spd)(0x1.8p52));
    VD nf = t - FSFN(spd)(0x1.8p52);
    VD r = VFMA_D(nf, FSFN(spd)(-0x1.62e42feep-1), s);         /* exact */
    r = VFMA_D(nf, FSFN(spd)(-0x1.a39ef35793c76p-33), r) + lo;
    VD q = VFMA_D(FSFN(spd)(0x1.af39d92ab3282p-26), r, FSFN(spd)(0x1.28927c0646723p-22));
    q = VFMA_D(q, r, FSFN(spd)(0x1.71de0d2e6e42bp-19));
    q = VFMA_D(q, r, FSFN(spd)(0x1.a019b83d2cea4p-16));
    q = VFMA_D(q, r, FSFN(spd)(0x1.a01a01a7e5259p-13));
    q = VFMA_D(q, r, FSFN(spd)(0x1.6c16c178c18a5p-10));
    q = VFMA_D(q, r, FSFN(spd)(0x1.1111111110989p-7));
    q = VFMA_D(q, r, FSFN(spd)(0x1.5555555553cd9p-5));
    q = VFMA_D(q, r, FSFN(spd)(0x1.5555555555556p-3));
    q = VFMA_D(q, r, FSFN(spd)(0x1.0000000000001p-1));
    VD p = FSFN(tail_d)(r, q);
    VL sc = ((VL)t << 52) + (biased ? 0x3ff0000000000000LL + ((long long)FS_BIAS_D << 52) : 0x3ff0000000000000LL);
    VD e = p * (VD)sc;
    VL z = s < FSFN(spd)(biased ? -1124.0 : -708.3964185322641);    /* ln(DBL_MIN); biased as above */
    *hi_out = s;
    return (VD)((VL)e & ~z);
}

/* ------------------------------------------------------------------ */
/* row pass 1: max.  VMAX(x, m) returns m when x is nan, so the         */
/* accumulators never become nan; nan detection (slices only) is a     */
/* separate sticky mask.                                                */
/* ------------------------------------------------------------------ */
FS_INL float FSFN(max_f32_t)(const float *x, ptrdiff_t n, int detect_nan)
{
    VF ninf = FSFN(spf)(-__builtin_inff());
    VF m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    VI bad = (VI){0};
    ptrdiff_t i = 0;
    for (; i + 4 * NF <= n; i += 4 * NF) {
        VF a = FSFN(ldf)(x + i), b = FSFN(ldf)(x + i + NF);
        VF c = FSFN(ldf)(x + i + 2 * NF), d = FSFN(ldf)(x + i + 3 * NF);
        m0 = VMAX_F(a, m0); m1 = VMAX_F(b, m1); m2 = VMAX_F(c, m2); m3 = VMAX_F(d, m3);
        if (detect_nan) bad |= (a != a) | (b != b) | (c != c) | (d != d);
    }
    for (; i + NF <= n; i += NF) {
        VF a = FSFN(ldf)(x + i);
        m0 = VMAX_F(a, m0);
        if (detect_nan) bad |= (a != a);
    }
    if (i < n) {
        VF a = FSFN(ldf_part)(x + i, n - i, -__builtin_inff());
        m1 = VMAX_F(a, m1);
        if (detect_nan) bad |= (a != a);
    }
    m0 = VMAX_F(VMAX_F(m0, m1), VMAX_F(m2, m3));
    float m = m0[0];
    for (int k = 1; k < NF; k++) m = m0[k] > m ? m0[k] : m;
    if (detect_nan) {
        int any = 0;
        for (int k = 0; k < NF; k++) any |= bad[k];
        if (any) return __builtin_nanf("");
    }
    return m;
}
static FS_T float FSFN(max_f32)(const float *x, ptrdiff_t n, int detect_nan)
{
    return detect_nan ? FSFN(max_f32_t)(x, n, 1) : FSFN(max_f32_t)(x, n, 0);
}

FS_INL double FSFN(max_f64_t)(const double *x, ptrdiff_t n, int detect_nan)
{
    VD ninf = FSFN(spd)(-__builtin_inf());
    VD m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    VL bad = (VL){0};
    ptrdiff_t i = 0;
    for (; i + 4 * ND <= n; i += 4 * ND) {
        VD a = FSFN(ldd)(x + i), b = FSFN(ldd)(x + i + ND);
        VD c = FSFN(ldd)(x + i + 2 * ND), d = FSFN(ldd)(x + i + 3 * ND);
        m0 = VMAX_D(a, m0); m1 = VMAX_D(b, m1); m2 = VMAX_D(c, m2); m3 = VMAX_D(d, m3);
        if (detect_nan) bad |= (a != a) | (b != b) | (c != c) | (d != d);
    }
    for (; i + ND <= n; i += ND) {
        VD a = FSFN(ldd)(x + i);
        m0 = VMAX_D(a, m0);
        if (detect_nan) bad |= (a != a);
    }
    if (i < n) {
        VD a = FSFN(ldd_part)(x + i, n - i, -__builtin_inf());
        m1 = VMAX_D(a, m1);
        if (detect_nan) bad |= (a != a);
    }
    m0 = VMAX_D(VMAX_D(m0, m1), VMAX_D(m2, m3));
    double m = m0[0];
    for (int k = 1; k < ND; k++) m = m0[k] > m ? m0[k] : m;
    if (detect_nan) {
        long long any = 0;
        for (int k = 0; k < ND; k++) any |= bad[k];
        if (any) return __builtin_nan("");
    }
    return m;
}
static FS_T double FSFN(max_f64)(const double *x, ptrdiff_t n, int detect_nan)
{
    return detect_nan ? FSFN(max_f64_t)(x, n, 1) : FSFN(max_f64_t)(x, n, 0);
}

/* ------------------------------------------------------------------ */
/* row pass 2: sum of exp(x - m).                                       */
/* y != NULL (softmax): store e, plain sum (its relative accuracy is    */
/* all softmax needs).  y == NULL (log paths): entries equal to m are   */
/* counted instead of added, so the result count + others is an exact   */
/* double-double and log1p(others) keeps full accuracy for peaked rows. */
/* f32: every e is widened and summed in double lanes (float partial    */
/* sums would cost ~1 ulp on the result).                               */
/* ------------------------------------------------------------------ */
FS_INL fs_dd FSFN(expsum_f32_t)(const float *x, float *y, ptrdiff_t n, float m, int store,
                                 const fs_temp *tp, int tempered)
{
    VF negm = FSFN(spf)(-m), zero = FSFN(spf)(0.0f), h0, h1, it, eit;
    FSFN(temp_f)(tp, &it, &eit);
    VD a0 = (VD){0}, a1 = (VD){0};
    VI cnt = (VI){0};
    ptrdiff_t i = 0;
    for (; i + 2 * NF <= n; i += 2 * NF) {
        /* the next row (or block) while this one computes: its first pass is a cheap max that would wait on
           memory; prefetching past the end of the array is harmless */
        __builtin_prefetch(x + n + i);
        if (store) __builtin_prefetch(y + n + i, 1);
        VF e0 = FSFN(exp_core_f)(FSFN(ldf)(x + i), negm, it, eit, tempered, !store, &h0);
        VF e1 = FSFN(exp_core_f)(FSFN(ldf)(x + i + NF), negm, it, eit, tempered, !store, &h1);
        if (store) {
            FSFN(stf)(y + i, e0); FSFN(stf)(y + i + NF, e1);
        } else {
            VI z0 = h0 == zero, z1 = h1 == zero;
            e0 = (VF)((VI)e0 & ~z0); e1 = (VF)((VI)e1 & ~z1);
            cnt += z0 + z1;
        }
        /* two accumulators only: four spill one to the stack (16 ymm regs) */
        a0 += CVT_LO_F(e0) + CVT_LO_F(e1);
        a1 += CVT_HI_F(e0) + CVT_HI_F(e1);
    }
    for (; i < n; i += NF) {
        ptrdiff_t k = n - i < NF ? n - i : NF;
        VF xv = k == NF ? FSFN(ldf)(x + i) : FSFN(ldf_part)(x + i, k, -__builtin_inff());
        VF e0 = FSFN(exp_core_f)(xv, negm, it, eit, tempered, !store, &h0);
        if (store) {
            if (k == NF) FSFN(stf)(y + i, e0); else FSFN(stf_part)(y + i, e0, k);
        } else {
            VI z0 = h0 == zero;
            e0 = (VF)((VI)e0 & ~z0);
            cnt += z0;
        }
        a0 += CVT_LO_F(e0); a1 += CVT_HI_F(e0);
    }
    VD a = a0 + a1;
    double s = 0.0;
    for (int k = 0; k < ND; k++) s += a[k];
    fs_dd r = {s, 0.0};
    if (!store) {
        long long c = 0;
        for (int k = 0; k < NF; k++) c -= cnt[k];
        r = fs_two_sum((double)c, s * FS_UNBIAS_F);
    }
    return r;
}
static FS_T fs_dd FSFN(expsum_f32)(const float *x, float *y, ptrdiff_t n, float m, const fs_temp *tp)
{
    if (tp)
        return y ? FSFN(expsum_f32_t)(x, y, n, m, 1, tp, 1) : FSFN(expsum_f32_t)(x, y, n, m, 0, tp, 1);
    return y ? FSFN(expsum_f32_t)(x, y, n, m, 1, tp, 0) : FSFN(expsum_f32_t)(x, y, n, m, 0, tp, 0);
}

/* f64: groups of 4 vectors are summed as a tree, then added with TwoSum
   into a compensated accumulator: about eps relative error at any n. */
FS_INL fs_dd FSFN(expsum_f64_t)(const double *x, double *y, ptrdiff_t n, double m, int store,
                                 const fs_temp *tp, int tempered)
{
    VD negm = FSFN(spd)(-m), zero = FSFN(spd)(0.0), h0, h1, h2, h3, it, eit;
    FSFN(temp_d)(tp, &it, &eit);
    VD s = (VD){0}, c = (VD){0};
    VL cnt = (VL){0};
    ptrdiff_t i = 0;
    for (; i + 4 * ND <= n; i += 4 * ND) {
        __builtin_prefetch(x + n + i);          /* the next row or block, as in expsum_f32 */
        __builtin_prefetch(x + n + i + 8);
        if (store) __builtin_prefetch(y + n + i, 1), __builtin_prefetch(y + n + i + 8, 1);
        VD e0 = FSFN(exp_core_d)(FSFN(ldd)(x + i), negm, it, eit, tempered, !store, &h0);
        VD e1 = FSFN(exp_core_d)(FSFN(ldd)(x + i + ND), negm, it, eit, tempered, !store, &h1);
        VD e2 = FSFN(exp_core_d)(FSFN(ldd)(x + i + 2 * ND), negm, it, eit, tempered, !store, &h2);
        VD e3 = FSFN(exp_core_d)(FSFN(ldd)(x + i + 3 * ND), negm, it, eit, tempered, !store, &h3);
        if (store) {
            FSFN(std)(y + i, e0); FSFN(std)(y + i + ND, e1);
            FSFN(std)(y + i + 2 * ND, e2); FSFN(std)(y + i + 3 * ND, e3);
        } else {
            VL z0 = h0 == zero, z1 = h1 == zero, z2 = h2 == zero, z3 = h3 == zero;
            e0 = (VD)((VL)e0 & ~z0); e1 = (VD)((VL)e1 & ~z1);
            e2 = (VD)((VL)e2 & ~z2); e3 = (VD)((VL)e3 & ~z3);
            cnt += (z0 + z1) + (z2 + z3);
        }
        FSFN(acc2_d)(&s, &c, (e0 + e1) + (e2 + e3));
    }
    for (; i < n; i += ND) {
        ptrdiff_t k = n - i < ND ? n - i : ND;
        VD xv = k == ND ? FSFN(ldd)(x + i) : FSFN(ldd_part)(x + i, k, -__builtin_inf());
        VD e0 = FSFN(exp_core_d)(xv, negm, it, eit, tempered, !store, &h0);
        if (store) {
            if (k == ND) FSFN(std)(y + i, e0); else FSFN(std_part)(y + i, e0, k);
        } else {
            VL z0 = h0 == zero;
            e0 = (VD)((VL)e0 & ~z0);
            cnt += z0;
        }
        FSFN(acc2_d)(&s, &c, e0);
    }
    fs_dd r = {0.0, 0.0};
    if (!store) {
        long long k = 0;
        for (int j = 0; j < ND; j++) k -= cnt[j];
        r.hi = (double)k;
    }
    double unbias = store ? 1.0 : FS_UNBIAS_D;
    for (int j = 0; j < ND; j++) r = fs_dd_add1(r, s[j] * unbias, c[j] * unbias);
    return r;
}
static FS_T fs_dd FSFN(expsum_f64)(const double *x, double *y, ptrdiff_t n, double m, const fs_temp *tp)
{
    if (tp)
        return y ? FSFN(expsum_f64_t)(x, y, n, m, 1, tp, 1) : FSFN(expsum_f64_t)(x, y, n, m, 0, tp, 1);
    return y ? FSFN(expsum_f64_t)(x, y, n, m, 1, tp, 0) : FSFN(expsum_f64_t)(x, y, n, m, 0, tp, 0);
}

/* ------------------------------------------------------------------ */
/* row pass 3                                                           */
/* ------------------------------------------------------------------ */
/* y *= 1/sum with a single rounding: inv = ih + il (float pair of the  */
/* double reciprocal) through FMA, or a trip through double without it. */
FS_INL VF FSFN(mul_inv_f)(VF e, VF ih, VF il, VD invd)
{
#if FS_FMA
    (void)invd;
    return VFMA_F(e, ih, e * il);
#else
    (void)ih; (void)il;
    return PACK_D_F(CVT_LO_F(e) * invd, CVT_HI_F(e) * invd);
#endif
}
static FS_T void FSFN(scale_f32)(float *y, ptrdiff_t n, double inv)
{
    float ihs = (float)inv;
    VF ih = FSFN(spf)(ihs), il = FSFN(spf)((float)(inv - (double)ihs));
    VD invd = FSFN(spd)(inv);
    ptrdiff_t i = 0;
    for (; i + 4 * NF <= n; i += 4 * NF) {
        for (int u = 0; u < 4; u++)
            FSFN(stf)(y + i + u * NF, FSFN(mul_inv_f)(FSFN(ldf)(y + i + u * NF), ih, il, invd));
    }
    for (; i + NF <= n; i += NF)
        FSFN(stf)(y + i, FSFN(mul_inv_f)(FSFN(ldf)(y + i), ih, il, invd));
    if (i < n) {
        VF e = FSFN(ldf_part)(y + i, n - i, 0.0f);
        FSFN(stf_part)(y + i, FSFN(mul_inv_f)(e, ih, il, invd), n - i);
    }
}

/* f64: inv = ih + il is a double-double reciprocal; e*ih + e*il with   */
/* one final rounding (FMA) is nearly the correctly rounded e/sum.      */
FS_INL VD FSFN(mul_inv_d)(VD e, VD ih, VD il) { return VFMA_D(e, ih, e * il); }
static FS_T void FSFN(scale_f64)(double *y, ptrdiff_t n, fs_dd inv)
{
    VD ih = FSFN(spd)(inv.hi), il = FSFN(spd)(inv.lo);
    ptrdiff_t i = 0;
    for (; i + 4 * ND <= n; i += 4 * ND) {
        for (int u = 0; u < 4; u++)
            FSFN(std)(y + i + u * ND, FSFN(mul_inv_d)(FSFN(ldd)(y + i + u * ND), ih, il));
    }
    for (; i + ND <= n; i += ND)
        FSFN(std)(y + i, FSFN(mul_inv_d)(FSFN(ldd)(y + i), ih, il));
    if (i < n) {
        VD e = FSFN(ldd_part)(y + i, n - i, 0.0);
        FSFN(std_part)(y + i, FSFN(mul_inv_d)(e, ih, il), n - i);
    }
}

/* Second pass over a row too large for the cache: y = exp(x - m) * inv  */
/* straight from x, so the row is read twice and y written once, rather  */
/* than y being stored, re-read and rewritten by scale_*.               */
FS_INL void FSFN(expscale_f32_t)(const float *x, float *y, ptrdiff_t n, float m, double inv, const fs_temp *tp,
                                  int tempered)
{
    float ihs = (float)inv;
    VF ih = FSFN(spf)(ihs), il = FSFN(spf)((float)(inv - (double)ihs)), negm = FSFN(spf)(-m), h, it, eit;
    FSFN(temp_f)(tp, &it, &eit);
    VD invd = FSFN(spd)(inv);
    ptrdiff_t i = 0;
    for (; i + 2 * NF <= n; i += 2 * NF) {
        VF e0 = FSFN(exp_core_f)(FSFN(ldf)(x + i), negm, it, eit, tempered, 0, &h);
        VF e1 = FSFN(exp_core_f)(FSFN(ldf)(x + i + NF), negm, it, eit, tempered, 0, &h);
        FSFN(stf)(y + i, FSFN(mul_inv_f)(e0, ih, il, invd));
        FSFN(stf)(y + i + NF, FSFN(mul_inv_f)(e1, ih, il, invd));
    }
    for (; i < n; i += NF) {
        ptrdiff_t k = n - i < NF ? n - i : NF;
        VF e = FSFN(exp_core_f)(FSFN(ldf_part)(x + i, k, -__builtin_inff()), negm, it, eit, tempered, 0, &h);
        FSFN(stf_part)(y + i, FSFN(mul_inv_f)(e, ih, il, invd), k);
    }
}
FS_INL void FSFN(expscale_f64_t)(const double *x, double *y, ptrdiff_t n, double m, fs_dd inv, const fs_temp *tp,
                                  int tempered)
{
    VD ih = FSFN(spd)(inv.hi), il = FSFN(spd)(inv.lo), negm = FSFN(spd)(-m), h, it, eit;
    FSFN(temp_d)(tp, &it, &eit);
    ptrdiff_t i = 0;
    for (; i + 2 * ND <= n; i += 2 * ND) {
        VD e0 = FSFN(exp_core_d)(FSFN(ldd)(x + i), negm, it, eit, tempered, 0, &h);
        VD e1 = FSFN(exp_core_d)(FSFN(ldd)(x + i + ND), negm, it, eit, tempered, 0, &h);
        FSFN(std)(y + i, FSFN(mul_inv_d)(e0, ih, il));
        FSFN(std)(y + i + ND, FSFN(mul_inv_d)(e1, ih, il));
    }
    for (; i < n; i += ND) {
        ptrdiff_t k = n - i < ND ? n - i : ND;
        VD e = FSFN(exp_core_d)(FSFN(ldd_part)(x + i, k, -__builtin_inf()), negm, it, eit, tempered, 0, &h);
        FSFN(std_part)(y + i, FSFN(mul_inv_d)(e, ih, il), k);
    }
}

static FS_T void FSFN(expscale_f32)(const float *x, float *y, ptrdiff_t n, float m, double inv, const fs_temp *tp)
{
    if (tp) FSFN(expscale_f32_t)(x, y, n, m, inv, tp, 1); else FSFN(expscale_f32_t)(x, y, n, m, inv, tp, 0);
}
static FS_T void FSFN(expscale_f64)(const double *x, double *y, ptrdiff_t n, double m, fs_dd inv, const fs_temp *tp)
{
    if (tp) FSFN(expscale_f64_t)(x, y, n, m, inv, tp, 1); else FSFN(expscale_f64_t)(x, y, n, m, inv, tp, 0);
}

/* log_softmax: y = (x - m) - L.  Both terms are <= 0 so nothing cancels;
   error <= 0.5 ulp(x - m) + err(L) + final rounding. */
/* d = x - m, scaled by 1/T when tempered */
#define FS_SHIFT_f32(xv) (tempered ? FSFN(scale_d_f)((xv) - vm, it, eit) : (xv) - vm)
FS_INL void FSFN(sub_f32_t)(const float *x, float *y, ptrdiff_t n, float m, float L, const fs_temp *tp, int tempered)
{
    VF vm = FSFN(spf)(m), vl = FSFN(spf)(L), it, eit;
    FSFN(temp_f)(tp, &it, &eit);
    ptrdiff_t i = 0;
    for (; i + 4 * NF <= n; i += 4 * NF) {
        for (int u = 0; u < 4; u++)
            FSFN(stf)(y + i + u * NF, FS_SHIFT_f32(FSFN(ldf)(x + i + u * NF)) - vl);
    }
    for (; i + NF <= n; i += NF)
        FSFN(stf)(y + i, FS_SHIFT_f32(FSFN(ldf)(x + i)) - vl);
    if (i < n)
        FSFN(stf_part)(y + i, FS_SHIFT_f32(FSFN(ldf_part)(x + i, n - i, 0.0f)) - vl, n - i);
}
#undef FS_SHIFT_f32
static FS_T void FSFN(sub_f32)(const float *x, float *y, ptrdiff_t n, float m, float L, const fs_temp *tp)
{
    if (tp) FSFN(sub_f32_t)(x, y, n, m, L, tp, 1); else FSFN(sub_f32_t)(x, y, n, m, L, tp, 0);
}
/* d = x - m, scaled by 1/T when tempered */
#define FS_SHIFT_f64(xv) (tempered ? FSFN(scale_d_d)((xv) - vm, it, eit) : (xv) - vm)
FS_INL void FSFN(sub_f64_t)(const double *x, double *y, ptrdiff_t n, double m, double L, const fs_temp *tp, int tempered)
{
    VD vm = FSFN(spd)(m), vl = FSFN(spd)(L), it, eit;
    FSFN(temp_d)(tp, &it, &eit);
    ptrdiff_t i = 0;
    for (; i + 4 * ND <= n; i += 4 * ND) {
        for (int u = 0; u < 4; u++)
            FSFN(std)(y + i + u * ND, FS_SHIFT_f64(FSFN(ldd)(x + i + u * ND)) - vl);
    }
    for (; i + ND <= n; i += ND)
        FSFN(std)(y + i, FS_SHIFT_f64(FSFN(ldd)(x + i)) - vl);
    if (i < n)
        FSFN(std_part)(y + i, FS_SHIFT_f64(FSFN(ldd_part)(x + i, n - i, 0.0)) - vl, n - i);
}
#undef FS_SHIFT_f64
static FS_T void FSFN(sub_f64)(const double *x, double *y, ptrdiff_t n, double m, double L, const fs_temp *tp)
{
    if (tp) FSFN(sub_f64_t)(x, y, n, m, L, tp, 1); else FSFN(sub_f64_t)(x, y, n, m, L, tp, 0);
}

/* ------------------------------------------------------------------ */
/* columns.  The (n, inner) block, rows ld elements apart, is processed */
/* in column tiles of TW so that the per-column state (max, sum,        */
/* reciprocal or log) lives in small stack arrays; each pass streams    */
/* the tile row by row, vectorised across columns.  float32 terms are   */
/* summed in double (n * 2^-53 relative error), float64 ones with a     */
/* per-element TwoSum.  The log modes also count the entries equal to   */
/* the column max (as the rows do), else the tiny "others" of a peaked  */
/* column would drown in the sum.  Special columns are encoded in the   */
/* per-column factor (nan reciprocal / nan or 0 log), so pass 3 needs   */
/* no branches.                                                         */
/* ------------------------------------------------------------------ */
#define FS_TWF 128   /* f32 tile width (multiple of 8); 128 measured fastest on 2000x2000 */
#define FS_TWD 128   /* f64 tile width (multiple of 4) */

FS_INL void FSFN(cols_f32_t)(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, int mode,
                               const fs_temp *tp, int tempered)
{
    VF it, eit;
    FSFN(temp_f)(tp, &it, &eit);
    float mb[FS_TWF] __attribute__((aligned(32)));
    double sb[FS_TWF] __attribute__((aligned(32)));
    float fa[FS_TWF] __attribute__((aligned(32))), fb[FS_TWF] __attribute__((aligned(32)));
    double db[FS_TWF] __attribute__((aligned(32)));
    int32_t kb[FS_TWF] __attribute__((aligned(32)));
    VF h;
    for (ptrdiff_t j0 = 0; j0 < inner; j0 += FS_TWF) {
        ptrdiff_t w = inner - j0 < FS_TWF ? inner - j0 : FS_TWF;
        ptrdiff_t wv = (w + NF - 1) / NF * NF;   /* padded tile width */
        ptrdiff_t wf = w / NF * NF;              /* full-vector part */
        for (ptrdiff_t j = 0; j < wv; j++) { mb[j] = -__builtin_inff(); sb[j] = 0.0; kb[j] = 0; }
        /* pass 1: column max */
        for (ptrdiff_t i = 0; i < n; i++) {
            const float *xr = x + i * ld + j0;
            ptrdiff_t j = 0;
            for (; j < wf; j += NF)
                FSFN(stf)(mb + j, VMAX_F(FSFN(ldf)(xr + j), FSFN(ldf)(mb + j)));
            if (j < w)
                FSFN(stf)(mb + j, VMAX_F(FSFN(ldf_part)(xr + j, w - j, -__builtin_inff()), FSFN(ldf)(mb + j)));
        }
        /* pass 2: exp, (store), compensated column sums */
        for (ptrdiff_t i = 0; i < n; i++) {
            const float *xr = x + i * ld + j0;
            float *yr = y + i * ld + j0;
            for (ptrdiff_t j = 0; j < wv; j += NF) {
                int full = j < wf;
                VF xv = full ? FSFN(ldf)(xr + j) : FSFN(ldf_part)(xr + j, w - j, -__builtin_inff());
                VF e = FSFN(exp_core_f)(xv, -FSFN(ldf)(mb + j), it, eit, tempered, mode != 0, &h);
                if (mode == 0) {
                    if (full) FSFN(stf)(yr + j, e); else FSFN(stf_part)(yr + j, e, w - j);
                } else {   /* log modes: count x == max, as the row kernels do */
                    VI z = h == FSFN(spf)(0.0f), k;
                    e = (VF)((VI)e & ~z);
                    __builtin_memcpy(&k, kb + j, sizeof k);
                    k -= z;
                    __builtin_memcpy(kb + j, &k, sizeof k);
                }
                /* float terms summed in double: n * 2^-53 relative, no compensation needed */
                FSFN(std)(sb + j, FSFN(ldd)(sb + j) + CVT_LO_F(e));
                FSFN(std)(sb + j + ND, FSFN(ldd)(sb + j + ND) + CVT_HI_F(e));
            }
        }
        /* per-column finish (scalar, O(inner)); padded lanes get harmless 0 */
        for (ptrdiff_t j = w; j < wv; j++) { fa[j] = 0.0f; fb[j] = 0.0f; db[j] = 0.0; }
        for (ptrdiff_t j = 0; j < w; j++) {
            fs_dd s = {mode ? sb[j] * FS_UNBIAS_F : sb[j], 0.0};
            if (mode != 0) s = fs_dd_add1((fs_dd){(double)kb[j], 0.0}, s.hi, s.lo);
            int special = fs_col_special_f32(x + j0 + j, ld, n, mb[j], s.hi);
            if (mode == 0) {
                double inv = special ? __builtin_nan("") : 1.0 / (s.hi + s.lo);
                float ih = (float)inv;
                fa[j] = ih; fb[j] = (float)(inv - (double)ih); db[j] = inv;
            } else if (mode == 1) {
                fa[j] = (float)fs_col_log_f(special, mb[j], s);
            } else {
                y[j0 + j] = fs_lse_special_f32(special, mb[j], s);
            }
        }
        if (mode == 2) continue;
        /* pass 3 */
        for (ptrdiff_t i = 0; i < n; i++) {
            const float *xr = x + i * ld + j0;
            float *yr = y + i * ld + j0;
            for (ptrdiff_t j = 0; j < wv; j += NF) {
                int full = j < wf;
                VF v;
                if (mode == 0) {
                    VF e = full ? FSFN(ldf)(yr + j) : FSFN(ldf_part)(yr + j, w - j, 0.0f);
#if FS_FMA
                    v = FSFN(mul_inv_f)(e, FSFN(ldf)(fa + j), FSFN(ldf)(fb + j), FSFN(spd)(0.0));
                    (void)db;
#else
                    v = PACK_D_F(CVT_LO_F(e) * FSFN(ldd)(db + j), CVT_HI_F(e) * FSFN(ldd)(db + j + ND));
                    (void)fb;
#endif
                } else {
                    VF xv = full ? FSFN(ldf)(xr + j) : FSFN(ldf_part)(xr + j, w - j, 0.0f);
                    VF d = xv - FSFN(ldf)(mb + j);
                    if (tempered) d = FSFN(scale_d_f)(d, it, eit);
                    v = d - FSFN(ldf)(fa + j);
                }
                if (full) FSFN(stf)(yr + j, v); else FSFN(stf_part)(yr + j, v, w - j);
            }
        }
    }
}

FS_INL void FSFN(cols_f64_t)(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, int mode,
                               const fs_temp *tp, int tempered)
{
    VD it, eit;
    FSFN(temp_d)(tp, &it, &eit);
    double mb[FS_TWD] __attribute__((aligned(32)));
    double sb[FS_TWD] __attribute__((aligned(32))), cb[FS_TWD] __attribute__((aligned(32)));
    double fa[FS_TWD] __attribute__((aligned(32))), fb[FS_TWD] __attribute__((aligned(32)));
    int64_t kb[FS_TWD] __attribute__((aligned(32)));
    VD h;
    for (ptrdiff_t j0 = 0; j0 < inner; j0 += FS_TWD) {
        ptrdiff_t w = inner - j0 < FS_TWD ? inner - j0 : FS_TWD;
        ptrdiff_t wv = (w + ND - 1) / ND * ND;
        ptrdiff_t wf = w / ND * ND;
        for (ptrdiff_t j = 0; j < wv; j++) { mb[j] = -__builtin_inf(); sb[j] = 0.0; cb[j] = 0.0; kb[j] = 0; }
        for (ptrdiff_t i = 0; i < n; i++) {
            const double *xr = x + i * ld + j0;
            ptrdiff_t j = 0;
            for (; j < wf; j += ND)
                FSFN(std)(mb + j, VMAX_D(FSFN(ldd)(xr + j), FSFN(ldd)(mb + j)));
            if (j < w)
                FSFN(std)(mb + j, VMAX_D(FSFN(ldd_part)(xr + j, w - j, -__builtin_inf()), FSFN(ldd)(mb + j)));
        }
        for (ptrdiff_t i = 0; i < n; i++) {
            const double *xr = x + i * ld + j0;
            double *yr = y + i * ld + j0;
            for (ptrdiff_t j = 0; j < wv; j += ND) {
                int full = j < wf;
                VD xv = full ? FSFN(ldd)(xr + j) : FSFN(ldd_part)(xr + j, w - j, -__builtin_inf());
                VD e = FSFN(exp_core_d)(xv, -FSFN(ldd)(mb + j), it, eit, tempered, mode != 0, &h);
                if (mode == 0) {
                    if (full) FSFN(std)(yr + j, e); else FSFN(std_part)(yr + j, e, w - j);
                } else {
                    VL z = h == FSFN(spd)(0.0), k;
                    e = (VD)((VL)e & ~z);
                    __builtin_memcpy(&k, kb + j, sizeof k);
                    k -= z;
                    __builtin_memcpy(kb + j, &k, sizeof k);
                }
                VD s0 = FSFN(ldd)(sb + j), c0 = FSFN(ldd)(cb + j);
                FSFN(acc2_d)(&s0, &c0, e);
                FSFN(std)(sb + j, s0); FSFN(std)(cb + j, c0);
            }
        }
        for (ptrdiff_t j = w; j < wv; j++) { fa[j] = 0.0; fb[j] = 0.0; }
        for (ptrdiff_t j = 0; j < w; j++) {
            fs_dd s = mode ? fs_fast_two_sum(sb[j] * FS_UNBIAS_D, cb[j] * FS_UNBIAS_D) : fs_fast_two_sum(sb[j], cb[j]);
            if (mode != 0) s = fs_dd_add1((fs_dd){(double)kb[j], 0.0}, s.hi, s.lo);
            int special = fs_col_special_f64(x + j0 + j, ld, n, mb[j], s.hi);
            if (mode == 0) {
                fs_dd inv = special ? (fs_dd){__builtin_nan(""), 0.0} : fs_dd_inv(s);
                fa[j] = inv.hi; fb[j] = inv.lo;
            } else if (mode == 1) {
                fa[j] = fs_col_log_f(special, mb[j], s);
            } else {
                y[j0 + j] = fs_lse_special_f64(special, mb[j], s);
            }
        }
        if (mode == 2) continue;
        for (ptrdiff_t i = 0; i < n; i++) {
            const double *xr = x + i * ld + j0;
            double *yr = y + i * ld + j0;
            for (ptrdiff_t j = 0; j < wv; j += ND) {
                int full = j < wf;
                VD v;
                if (mode == 0) {
                    VD e = full ? FSFN(ldd)(yr + j) : FSFN(ldd_part)(yr + j, w - j, 0.0);
                    v = FSFN(mul_inv_d)(e, FSFN(ldd)(fa + j), FSFN(ldd)(fb + j));
                } else {
                    VD xv = full ? FSFN(ldd)(xr + j) : FSFN(ldd_part)(xr + j, w - j, 0.0);
                    VD d = xv - FSFN(ldd)(mb + j);
                    if (tempered) d = FSFN(scale_d_d)(d, it, eit);
                    v = d - FSFN(ldd)(fa + j);
                }
                if (full) FSFN(std)(yr + j, v); else FSFN(std_part)(yr + j, v, w - j);
            }
        }
    }
}

static FS_T void FSFN(cols_f32)(const float *x, float *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, int mode,
                                const fs_temp *tp)
{
    if (tp) FSFN(cols_f32_t)(x, y, n, inner, ld, mode, tp, 1); else FSFN(cols_f32_t)(x, y, n, inner, ld, mode, tp, 0);
}
static FS_T void FSFN(cols_f64)(const double *x, double *y, ptrdiff_t n, ptrdiff_t inner, ptrdiff_t ld, int mode,
                                const fs_temp *tp)
{
    if (tp) FSFN(cols_f64_t)(x, y, n, inner, ld, mode, tp, 1); else FSFN(cols_f64_t)(x, y, n, inner, ld, mode, tp, 0);
}

static const fs_table FSFN(table) = {
    FSFN(max_f32), FSFN(expsum_f32), FSFN(scale_f32), FSFN(expscale_f32), FSFN(sub_f32), FSFN(cols_f32),
    FSFN(max_f64), FSFN(expsum_f64), FSFN(scale_f64), FSFN(expscale_f64), FSFN(sub_f64), FSFN(cols_f64),
};

#undef FS_INL

/* The instance's parameters end here, so that the next instance can define its own. */
#undef FSFN
#undef FS_T
#undef VF
#undef VD
#undef VI
#undef VL
#undef NF
#undef ND
#undef FS_FMA
#undef VFMA_F
#undef VFMA_D
#undef VMAX_F
#undef VMAX_D
#undef CVT_LO_F
#undef CVT_HI_F
#undef PACK_D_F
