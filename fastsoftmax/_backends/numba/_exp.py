"""The numba backend's scalar core: exp(x - max) and log_softmax's (x - max) - L, both with a temperature, and the
few LLVM intrinsics they need. Everything here is a scalar function that LLVM inlines into the loops of _rows.py and
_columns.py and vectorizes there.

exp is our own branch-free implementation (no SVML with the PyPI llvmlite): n = round(d log2 e), r = d - n ln2, a
minimax polynomial for e^r, and 2^n written into the exponent bits.
- float32 input is evaluated in float64: x - max is exact, one ln2 constant and a degree-5 polynomial suffice
  (relative error < 2^-27.5) and the result is rounded once.
- float64 uses an error-free TwoSum of (x, -max) folded into r, a two-part ln2, a degree-10 polynomial (< 2^-56.5)
  and 2^n as two factors so that subnormal results keep their digits.
The temperature enters as 1/T = it + eit (double-double): d = (x - max) / T is formed with one FMA, so its rounding
is folded back into r like the TwoSum's.

Fast-math flags come from the single constant FASTMATH (no nnan/ninf: -inf logits must stay exact); 'reassoc' is
given only to reduction and streaming loops (FM_REDUCE). The functions here are compiled without it (FM_EXACT), since
it would delete the TwoSum, Kahan and (k - 1) + s steps; they keep their own instruction flags when inlined.
"""
import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
FM_REDUCE = set(FASTMATH)                   # reduction / streaming loops
FM_EXACT = set(FASTMATH - {"reassoc"})      # exp, TwoSum, Kahan


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


# Every kernel is cached on disk when possible: the first call then costs a load (~0.1 s per kernel), not a compile.
CACHE = _cache_usable()


# ---- intrinsics ------------------------------------------------------------------------------------------------

@intrinsic
def i64_as_f64(typingctx, v):
    if v != types.int64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return types.float64(types.int64), codegen


@intrinsic
def f64_as_i64(typingctx, v):
    if v != types.float64:
        return None

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return types.int64(types.float64), codegen


@intrinsic
def maxnum(typingctx, a, b):
    """llvm.maxnum with 'nnan' on this one call: it vectorizes as a reduction and lowers to a bare vmaxps/vmaxpd
    (2.5x faster than nan-exact maxnum). With a nan input the result may be nan or ignore it; callers never rely on
    either: a nan anywhere in a slice also makes its exp-sum nan, which routes the slice to the special-value path."""
    if not isinstance(a, types.Float) or a != b:
        return None

    def codegen(context, builder, signature, args):
        lt = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic("llvm.maxnum", [lt], ir.FunctionType(lt, [lt, lt]))
        return builder.call(fn, args, fastmath=("nnan",))

    return a(a, b), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """a * b + c rounded once (llvm.fma: a hardware FMA where the CPU has one)."""
    if not (a == b == c == types.float64):
        return None

    def codegen(context, builder, signature, args):
        lt = ir.DoubleType()
        fn = builder.module.declare_intrinsic("llvm.fma", [lt], ir.FunctionType(lt, [lt, lt, lt]))
        return builder.call(fn, args)

    return types.float64(types.float64, types.float64, types.float64), codegen


@intrinsic
def address_as_pointer(typingctx, address, dtype):
    """A typed pointer from an integer address (for numba.carray over memory owned by the caller)."""
    if address != types.int64 or not isinstance(dtype, types.NumberClass):
        return None
    pointer = types.CPointer(dtype.dtype)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], context.get_value_type(pointer))

    return pointer(types.int64, dtype), codegen


# ---- exp(x - m) / T ------------------------------------------------------------------------------------------------

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # 32 trailing zero bits
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_MAGIC = 6755399441055744.0             # 1.5 * 2**52

# (e^r - 1)/r on [-ln2/2, ln2/2], near-minimax (Chebyshev fit, mpmath).
# degree 10 -> |rel err of e^r| < 2^-56.5
(_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10) = (
    1.0, 0.5000000000000006, 0.1666666666666667, 0.04166666666657314, 0.008333333333326141, 0.0013888888932488599,
    0.00019841269874800493, 2.4801504346997686e-05, 2.7557255425746435e-06, 2.7626357241447223e-07,
    2.510520637395701e-08)
# degree 5 -> |rel err of e^r| < 2^-27.5 (float32 results)
(_B0, _B1, _B2, _B3, _B4, _B5) = (1.00000001077157, 0.5000000013457727, 0.16666505260408124, 0.04166646500604005,
                                  0.008369148490856347, 0.0013933641031986701)


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def exp_rel64(x, m, it, eit):
    """e^((x - m) / T) in float64, x <= m, m finite, 1/T = it + eit. nan x -> nan, -inf x -> 0."""
    d = x - m
    bb = d - x                               # TwoSum(x, -m): d + lo == x - m
    lo = (x - (d - bb)) + (-m - bb)
    q = d * it                               # (d + lo) / T = q + q_lo
    q_lo = fma(d, it, -q) + (lo * it + d * eit)
    n = np.rint(q * _LOG2E)
    n = n if n > -1100.0 else -1100.0        # also maps nan to a finite value
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
    ni = np.int32(n)
    n1 = ni >> np.int32(1)                   # two factors: subnormal results
    n2 = ni - n1
    e = (p * i64_as_f64((np.int64(n1) + 1023) << 52)) * i64_as_f64((np.int64(n2) + 1023) << 52)
    return 0.0 if q < -746.0 else e


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def exp_rel32(x, m, it, eit):
    """e^((x - m) / T) evaluated in float64 for float32 x (m: the float32 max, as float64).

    d = x - m is exact in float64 and 1/T's rounding is ~1e-16 relative, far below float32 resolution, so a
    single-constant ln2 reduction and a degree-5 polynomial give ~2^-27 relative accuracy. Anything below e^-200
    (-inf included) maps to e^-200 (0 once scaled and rounded to float32; negligible in any float64 sum); nan
    propagates. The magic-number rounding is safe: this function is compiled without 'reassoc'."""
    d = (np.float64(x) - m) * it
    d = -200.0 if d < -200.0 else d          # one vmaxpd; keeps nan
    t = d * _LOG2E + _MAGIC                  # rint(d log2 e) in the low bits
    n = t - _MAGIC
    r = d - n * _LN2
    p = _B5
    p = p * r + _B4
    p = p * r + _B3
    p = p * r + _B2
    p = p * r + _B1
    p = p * r + _B0
    p = 1.0 + r * p
    return p * i64_as_f64((f64_as_i64(t) + 1023) << 52)


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def lsm_val64(x, m, L, it, eit):
    """(x - m) / T - L, with x - m kept exactly (TwoSum) and the division's rounding folded in."""
    d = x - m
    bb = d - x
    lo = (x - (d - bb)) + (-m - bb)
    q = d * it
    q_lo = fma(d, it, -q) + (lo * it + d * eit)
    v = (q - L) + q_lo
    return v if abs(q) < np.inf else q      # d / T overflowed (or d = -inf): -inf, where q_lo would be nan


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def lsm_val32(x, m, L, it, eit):
    return (np.float64(x) - m) * it - L


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def kahan_add(s, c, v):
    y = v - c
    t = s + y
    c = (t - s) - y
    return t, c


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def log1p_rest(k, s):
    """log(k + s) = log1p((k - 1) + s) for k >= 1 exact maxima and the sum s of the other terms.
    Must not be reassociated into (k + s) - 1."""
    return math.log1p((k - 1.0) + s)


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def split_one(e):
    """(1.0, 0.0) if e == 1 else (0.0, e): exact, no selects (vectorizes). Compiled without 'reassoc' so that
    sum += e - one is not rewritten as (sum + e) - one, which would lose the small terms."""
    one = np.float64(e == 1.0)
    return one, e - one


def erel(x, m, it, eit):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(erel)
def _erel(x, m, it, eit):
    if x == types.float32:
        return lambda x, m, it, eit: exp_rel32(x, m, it, eit)
    return lambda x, m, it, eit: exp_rel64(x, m, it, eit)


def lsm_val(x, m, L, it, eit):  # pragma: no cover
    raise NotImplementedError


@overload(lsm_val)
def _lsm_val(x, m, L, it, eit):
    if x == types.float32:
        return lambda x, m, L, it, eit: lsm_val32(x, m, L, it, eit)
    return lambda x, m, L, it, eit: lsm_val64(x, m, L, it, eit)
