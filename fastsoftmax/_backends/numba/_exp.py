"""The numba backend's scalar core: e = exp((x - max) / T) in each dtype, the few LLVM intrinsics it needs, and the
exact steps of the sums. Everything here is a scalar function that LLVM inlines into the loops of _rows.py and
_columns.py and vectorizes there. The loops call `erel` and `shift_by`, which pick the variant for the dtype and for
`tempered` (a literal True/False, a temperature other than 1) while numba types the loop: each loop is compiled
for one dtype and one temperature case, never for all of them.

exp follows the C kernels (src_cython/simd/fs_kernels_impl.h, exp_core) step for step, with our own polynomial (no
SVML with the PyPI llvmlite): x - max split exactly by TwoSum, n = round(d log2 e) by the magic-number trick,
r = d - n ln2 with a two-part ln2, a minimax polynomial, 2^n written into the exponent bits.
- float32 is computed in float32 (a float64 core would halve the vector width; measured 1.4x slower), degree 6, as
  the C kernels: the log paths ask for e * 2^100 (`biased`) so that terms below the smallest normal float still add
  up (a log_softmax output of -1e-37 is the sum of such terms).
- float64: degree 10 (< 2^-56.5 relative), 2^n as two factors so that subnormal results keep their digits.
The temperature enters as 1/T = it + eit (a double-double): (x - max) / T is formed with an exact product, its
rounding folded into r like the TwoSum's. Results below the flush point (and -inf, and an (x - max) / T that
overflowed) are exactly 0; nan stays nan.

Fast-math flags come from the single constant FASTMATH (no nnan/ninf: -inf logits must stay exact); 'reassoc' is
given only to reduction loops (FM_REDUCE). The functions here are compiled without it (FM_EXACT), since it would
delete the TwoSum and grid steps; they keep their own instruction flags when LLVM inlines them.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
FM_REDUCE = set(FASTMATH)                   # reduction loops
FM_EXACT = set(FASTMATH - {"reassoc"})      # exp, TwoSum, everything else


def _cache_probe():  # pragma: no cover - only decorated, never called
    return 0


def _cache_usable():
    """numba raises at decoration time (cache=True) when no cache locator is usable (an unwritable
    NUMBA_CACHE_DIR and source tree); compile in memory then. Failures to save later are only warnings."""
    try:
        njit(cache=True)(_cache_probe)
        return True
    except Exception:
        return False


# Every kernel is cached on disk when possible: the first call then costs a load, not a compile.
CACHE = _cache_usable()


def kernel(fastmath=FM_EXACT):
    """The decorator of every numba kernel of the backend."""
    return njit(error_model="numpy", fastmath=fastmath, cache=CACHE)


# ---- intrinsics ------------------------------------------------------------------------------------------------

@intrinsic
def i64_as_f64(typingctx, v):
    if v != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def maxnum(typingctx, a, b):
    """llvm.maxnum with 'nnan' on this one call: it vectorizes as a reduction and lowers to a bare vmaxps/vmaxpd
    (2.5x faster than nan-exact maxnum). With a nan input the result may be nan or ignore it; callers never rely on
    either: a nan anywhere in a line also makes its exp-sum nan, which routes the line to the special-value path."""
    if not isinstance(a, types.Float) or a != b:
        return None

    def codegen(context, builder, signature, args):
        lt = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.maxnum", [lt], ir.FunctionType(lt, [lt, lt]))
        return builder.call(fn, args, fastmath=("nnan",))

    return a(a, b), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: a hardware FMA where the CPU has one), float32 or float64."""
    if not isinstance(a, types.Float) or not (a == b == c):
        return None

    def codegen(context, builder, signature, args):
        lt = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.fma", [lt], ir.FunctionType(lt, [lt, lt, lt]))
        return builder.call(fn, args)

    return a(a, a, a), codegen


@intrinsic
def pow2_bits(typingctx, t, one_bits):
    """2^n * 2^b as a float, from t = MAGIC + n (n in the low mantissa bits) and one_bits = the bits of 2^b:
    (bits(t) << mantissa width) + one_bits, in the integer width of t's dtype (no int64 detour for float32)."""
    if not isinstance(t, types.Float) or not isinstance(one_bits, types.Integer):
        return None
    width, mant = (32, 23) if t == types.float32 else (64, 52)

    def codegen(context, builder, signature, args):
        it = ir.IntType(width)
        bits = builder.bitcast(args[0], it)
        add = builder.trunc(args[1], it) if width < 64 else args[1]
        bits = builder.add(builder.shl(bits, ir.Constant(it, mant)), add)
        return builder.bitcast(bits, context.get_value_type(t))

    return t(t, one_bits), codegen


@intrinsic
def address_as_pointer(typingctx, address, dtype):
    """A typed pointer from an integer address (for numba.carray over memory owned by the caller)."""
    if address != types.int64 or not isinstance(dtype, types.NumberClass):
        return None
    pointer = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(types.int64, dtype), codegen


# ---- float32 ---------------------------------------------------------------------------------------------------
# Constants are float32 globals: a Python float in a float32 expression would promote it to float64.
_F = np.float32
_LOG2E_F = _F(1.4426950408889634)
_MAGIC_F = _F(12582912.0)                         # 1.5 * 2^23: adding it rounds to an integer in the low bits
_LN2_HI_F = _F(-float.fromhex("0x1.62e4p-1"))      # short enough for n * LN2_HI to be exact
_LN2_LO_F = _F(-float.fromhex("0x1.7f7d1cp-20"))
# e^r = 1 + r + r^2 q(r) on [-ln2/2, ln2/2], the C kernels' degree-6 minimax polynomial
_Q4_F, _Q3_F, _Q2_F, _Q1_F, _Q0_F = (_F(float.fromhex(h)) for h in
                                     ("0x1.6d127p-10", "0x1.120cd4p-7", "0x1.555518p-5", "0x1.5554dcp-3", "0x1p-1"))
_ONE_F = _F(1.0)
_ZERO_F = _F(0.0)
_CUT_F = _F(-87.3365478515625)                    # -ln(FLT_MIN) rounded down: below, 2^n is not normal
_CUT_BIASED_F = _F(-156.6)                        # the same for e * 2^100
_ONE_BITS_F = 0x3F800000
_BIASED_ONE_BITS_F = 0x3F800000 + (100 << 23)    # the bits of 2^100
UNBIAS_F = 2.0 ** -100                            # the log paths' float32 sums are scaled back by this


@kernel()
def _exp32_tail(s, lo, biased):
    t = fma(s, _LOG2E_F, _MAGIC_F)
    nf = t - _MAGIC_F
    r = fma(nf, _LN2_HI_F, s)                     # exact
    r = fma(nf, _LN2_LO_F, r) + lo
    q = fma(_Q4_F, r, _Q3_F)
    q = fma(q, r, _Q2_F)
    q = fma(q, r, _Q1_F)
    q = fma(q, r, _Q0_F)
    p = fma(fma(q, r, _ONE_F), r, _ONE_F)         # r + r^2 q summed last: 1 + r rounds once
    e = p * pow2_bits(t, _BIASED_ONE_BITS_F if biased else _ONE_BITS_F)
    return _ZERO_F if s < (_CUT_BIASED_F if biased else _CUT_F) else e    # a nan s keeps e (nan)


@kernel()
def exp32(x, negm, it, eit, biased):
    """e^(x - m) for float32 x <= m, negm = -m (it, eit unused: T = 1); biased: e * 2^100."""
    s = x + negm
    xv = s - negm
    mv = s - xv
    lo = (x - xv) + (negm - mv)                   # x - m == s + lo exactly
    return _exp32_tail(s, lo, biased)


@kernel()
def exp32_t(x, negm, it, eit, biased):
    """e^((x - m) / T), 1/T = it + eit (float64), for float32 x."""
    h = np.float32(it)                            # 1/T as a float32 pair (loop invariant: hoisted)
    el = np.float32((it - np.float64(h)) + eit)
    s = x + negm
    xv = s - negm
    mv = s - xv
    lo = (x - xv) + (negm - mv)
    p = s * h                                     # (s + lo) * (h + el) = p + lo', p + err exact
    err = fma(s, h, -p)
    lo = fma(lo, h, fma(s, el, err))
    return _exp32_tail(p, lo, biased)


# ---- float64 ---------------------------------------------------------------------------------------------------
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # 32 trailing zero bits
_LN2_LO = 1.90821492927058770002e-10
# (e^r - 1)/r on [-ln2/2, ln2/2], near-minimax (Chebyshev fit, mpmath); degree 10 -> |rel err of e^r| < 2^-56.5
(_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10) = (
    1.0, 0.5000000000000006, 0.1666666666666667, 0.04166666666657314, 0.008333333333326141, 0.0013888888932488599,
    0.00019841269874800493, 2.4801504346997686e-05, 2.7557255425746435e-06, 2.7626357241447223e-07,
    2.510520637395701e-08)


_MAGIC = 6755399441055744.0              # 1.5 * 2^52
_ONE_BITS = 0x3FF0000000000000
_LOW_N = _MAGIC - 1020.0                 # t for n = -1020: 2^n is normal down to there


@kernel()
def _exp64_tail(q, q_lo):
    t = q * _LOG2E + _MAGIC                  # n = round(q log2 e) in the low bits of t
    n = t - _MAGIC
    r = ((q - n * _LN2_HI) - n * _LN2_LO) + q_lo
    p = _A10
    p = p * r + _A9
    p = p * r + _A8
    p = p * r + _A7
    p = p * r + _A6
    p = p * r + _A5
    p = p * r + _A4
    p = p * r + _A3
    p = p * r + _A2
    p = p * r + _A1
    p = p * r + _A0
    p = 1.0 + r * p
    # 2^n as two normal factors, 2^max(n, -1020) * 2^(n - max(n, -1020)): subnormal results keep their digits
    t1 = t if t > _LOW_N else _LOW_N
    e = (p * pow2_bits(t1, _ONE_BITS)) * pow2_bits((t - t1) + _MAGIC, _ONE_BITS)
    return 0.0 if q < -746.0 else e      # a nan q keeps e (nan)


@kernel()
def exp64(x, negm, it, eit, biased):
    """e^(x - m) for float64 x <= m, negm = -m (it, eit, biased unused)."""
    d = x + negm
    bb = d - x                               # TwoSum(x, -m): d + lo == x - m
    lo = (x - (d - bb)) + (negm - bb)
    return _exp64_tail(d, lo)


@kernel()
def exp64_t(x, negm, it, eit, biased):
    """e^((x - m) / T), 1/T = it + eit, for float64 x."""
    d = x + negm
    bb = d - x
    lo = (x - (d - bb)) + (negm - bb)
    q = d * it                               # (d + lo) / T = q + q_lo
    q_lo = fma(d, it, -q) + (lo * it + d * eit)
    return _exp64_tail(q, q_lo)


# ---- log_softmax's shift: (x - m) / T, in float64 ---------------------------------------------------------------

@kernel()
def shift(d, it, eit):
    """d / T for T = 1."""
    return d


@kernel()
def shift_t(d, it, eit):
    """d * (it + eit); d = -inf stays -inf where d * eit would be nan."""
    c = d * eit
    c = c if c - c == 0.0 else 0.0
    return fma(d, it, c)


# ---- the variant for a dtype and temperature case -----------------------------------------------------------------

def literal_or_none(ty):
    """The value of a literal type (a constant argument), else None."""
    return getattr(ty, "literal_value", None) if isinstance(ty, types.Literal) else None


def erel(x, negm, it, eit, biased, tempered):  # pragma: no cover - replaced by the overload
    """e^((x - m) / T) in the dtype of x: exp32, exp32_t, exp64 or exp64_t."""
    raise NotImplementedError


@overload(erel, prefer_literal=True, inline="always")
def _ol_erel(x, negm, it, eit, biased, tempered):
    plain, tempered_fn = (exp32, exp32_t) if x == types.float32 else (exp64, exp64_t)
    known = literal_or_none(tempered)
    if known is None:   # a run-time flag (users' jitted code): both compiled, chosen per call
        return lambda x, negm, it, eit, biased, tempered: (tempered_fn(x, negm, it, eit, biased) if tempered
                                                           else plain(x, negm, it, eit, biased))
    fn = tempered_fn if known else plain
    return lambda x, negm, it, eit, biased, tempered: fn(x, negm, it, eit, biased)


def shift_by(d, it, eit, tempered):  # pragma: no cover - replaced by the overload
    """d / T: shift or shift_t."""
    raise NotImplementedError


@overload(shift_by, prefer_literal=True, inline="always")
def _ol_shift_by(d, it, eit, tempered):
    known = literal_or_none(tempered)
    if known is None:
        return lambda d, it, eit, tempered: shift_t(d, it, eit) if tempered else d
    fn = shift_t if known else shift
    return lambda d, it, eit, tempered: fn(d, it, eit)


# ---- exact steps of the sums -----------------------------------------------------------------------------------
_GRID = 1.5 * 2.0 ** 20     # (e + _GRID) - _GRID rounds 0 <= e <= 1 to a multiple of 2^-32


@kernel()
def split_grid(e):
    """(h, l): h = e rounded to a multiple of 2^-32, l = e - h, both exact. Sums of up to 2^20 such h are exact in
    float64 in any order, so a vectorized (reassociated) loop can add them; the l (|l| <= 2^-33) add up with
    rounding errors far below the total's. Compiled without 'reassoc', which would fold h back into e."""
    h = (e + _GRID) - _GRID
    return h, e - h


@kernel()
def two_sum_add(s, c, v):
    """(s, c) += v with TwoSum: s + c carries the running total to about one rounding, whatever the order."""
    t = s + v
    sv = t - v
    av = t - sv
    return t, c + ((s - sv) + (v - av))


@kernel()
def log1p_rest(k, s):
    """log(k + s) = log1p((k - 1) + s) for k >= 1 exact maxima and the sum s of the other terms.
    Must not be reassociated into (k + s) - 1."""
    return math.log1p((k - 1.0) + s)
