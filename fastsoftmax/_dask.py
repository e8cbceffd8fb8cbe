"""softmax, log_softmax and logsumexp of dask arrays: lazy results, fastsoftmax's kernels on every chunk.

Imported by fastsoftmax._api only when a dask array arrives, so that `import fastsoftmax` never imports dask. Each
chunk is computed by the in-memory path (fastsoftmax/_compute.py), which imports nothing of this module: no cycle.

Two plans, chosen per call:

- Every softmax axis is a single chunk: each chunk holds whole lines, so the result is one `map_blocks` call of
  fastsoftmax.softmax / log_softmax per chunk, nothing else.
- A softmax axis is split across chunks: a two-level reduction that never gathers a line into one chunk.
  1. per chunk, one task: the partial pair (m, l) per line, m = the chunk's max (nan if the chunk holds nan) and
     l = log(sum(exp(x - m))). The pair is kept apart (float64; long double for float64 input), because m + l
     rounded to the input dtype would cost |m| eps of accuracy.
  2. a `dask.array.reduction` tree over the tiny partials combines pairs: M = max m (nan wins), L = logsumexp over
     chunks of (m - M + l). Where M is not finite, L is set to M (nan, +inf or -inf), which is what scipy's rules
     reduce to: logsumexp = M' + L with M' = M if finite else 0, log_softmax = (x - M') - L.
  3. per chunk, one task: the chunk normalised by its line's totals.
  Both per-chunk passes have a fast form for the common case, a float32/float64 reduction over the last axis:
  the compiled row_stats (each row's max and sum in one pass over the chunk) and row_finish (exp(x - M) / S, or
  (x - M) - L, in one more pass, S = exp(L) carried as a double-double); measured 2.3x the in-memory time on a
  (2, 10^8) float32 array in 64 chunks, compute()'s final copy included. Otherwise: fastsoftmax.logsumexp of
  the shifted chunk, then fastsoftmax.softmax (log_softmax) of the chunk corrected by its share of the line,
  softmax = local * exp((m - M) + (l - L)), log_softmax = local + (m - M) + (l - L), with lines that scipy sends
  to nan (or -inf) and chunks of only -inf inside a finite line fixed explicitly. Either way the result is within
  a few ULP of the in-memory one.
  Memory per task stays O(chunk); the graph has one task per chunk per pass plus the reduction tree.

Weighted logsumexp (b=) reduces per-chunk (log|sum b exp(a)|, sign) pairs the same way, combining them with the
weighted logsumexp itself (weights = the partial signs), so scipy's nan/inf/cancellation rules carry over.
Complex input is the exception: it is rechunked so each line is one chunk, then computed per chunk.
"""
import functools
from functools import partial

import numpy as np

import dask.array as da

from . import _compute, _dispatch, _threads
from ._validate import axes as _axes
from ._validate import input_dtype


def _in_memory(func, x, axis=None, backend=None, b=None, keepdims=False, return_sign=False):
    """func of one in-memory chunk (fastsoftmax/_compute.py: the same results as the public functions)."""
    if func == "logsumexp":
        return _compute.logsumexp(x, axis, b, keepdims, return_sign, backend)
    return _compute.softmax_like(func, x, axis, None, backend, 1.0)


# ---- input checks ---------------------------------------------------------------------------------------------

def _as_dask_array(x, func):
    if not isinstance(x, da.Array):
        raise TypeError(f"{func}: expected a dask array, got {type(x).__module__}.{type(x).__name__} "
                        "(convert it with .to_dask_array() or dask.array.asarray)")
    dtype = input_dtype(x.dtype, func)  # the in-memory functions' rule
    return x if dtype == x.dtype else x.astype(dtype)


def _no_out(out, func):
    if out is not None:
        raise TypeError(f"{func}: out= is not supported for dask arrays (the result is a lazy dask array; "
                        "write it with dask.array.store or compute it)")


def _compute_dtype(dtype):
    """The dtype chunks are computed in: float16 in float32, as the kernels do; everything else as is."""
    return np.dtype(np.float32) if dtype == np.float16 else np.dtype(dtype)


def _pair_dtype(dtype):
    """The dtype of the per-line partials and their combination: float64 for float32 (and float16) input, long
    double for float64 and long double input (where the platform has one), so that the chunks' shares of a line
    add no rounding of their own; the partials are tiny, one pair per line per chunk."""
    compute = _compute_dtype(dtype)
    if compute.kind == "f" and compute.itemsize >= 8:
        return np.promote_types(compute, np.longdouble)
    return np.promote_types(compute, np.float64)


def _meta(ndim, dtype):
    return np.empty((0,) * ndim, dtype)


def _empty_like_result(x, func, axes, backend, **kwargs):
    """An empty input: nothing to compute, the in-memory function gives the result (shape and dtype)."""
    result = _in_memory(func, np.empty(x.shape, x.dtype), axis=axes, backend=backend, **kwargs)
    if isinstance(result, tuple):
        return tuple(da.from_array(np.asarray(r)) for r in result)
    return da.from_array(np.asarray(result))


def _known_empty(x):
    return any(n == 0 for n in x.shape)


# ---- per chunk ------------------------------------------------------------------------------------------------

def _lines_local(block, kind, axes, backend, out_dtype):
    """The single-chunk plan: each block holds whole lines."""
    return np.asarray(_in_memory(kind, block, axis=axes, backend=backend), dtype=out_dtype)


def _compiled_rows(block, axes, backend):
    """The compiled row functions and `block` as (rows, n), when the reduction is over the last axis of a float32
    or float64 chunk with contiguous rows (the common case); else (None, None)."""
    if axes != (block.ndim - 1,) or backend not in (None, "cython") or block.size == 0:
        return None, None
    if block.dtype not in (np.float32, np.float64) or "cython" not in _dispatch.available():
        return None, None
    if block.shape[-1] > 1 and block.strides[-1] != block.itemsize:
        return None, None
    return _dispatch.backend_module("cython").compiled, block.reshape(-1, block.shape[-1])


def _partial(block, axes, backend, pair_dtype):
    """(m, l) per line of this chunk, stacked on a new last axis: the max and log(sum(exp(x - m)))."""
    shape = tuple(1 if i in axes else n for i, n in enumerate(block.shape))
    if block.size == 0:  # an empty chunk contributes nothing: the pair of an all -inf line
        return np.full(shape + (2,), -np.inf, pair_dtype)
    compiled, rows = _compiled_rows(block, axes, backend)
    if compiled is not None:  # one pass: each row's max and sum together
        m, l = np.empty(rows.shape[0]), np.empty(rows.shape[0])
        compiled.row_stats(rows, m, l, _dispatch.threads_for(block.size))
        out = np.empty(shape + (2,), pair_dtype)
        out[..., 0] = m.reshape(shape)
        out[..., 1] = np.where(np.isfinite(m), l, m).reshape(shape)
        return out
    blk = block.astype(_compute_dtype(block.dtype), copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        m = np.max(blk, axis=axes, keepdims=True)  # propagates nan
        finite = np.isfinite(m)
        shifted = blk - np.where(finite, m, 0).astype(blk.dtype) if not np.all(m == 0) else blk
        lse = _in_memory("logsumexp", shifted, axis=axes, keepdims=True, backend=backend)
    out = np.empty(shape + (2,), pair_dtype)
    out[..., 0] = m
    out[..., 1] = lse
    return out


def _combine(pairs, axis=None, keepdims=True):
    """Combine (m, l) pairs over `axis` into one pair per line (a dask reduction's combine and aggregate)."""
    m, l = pairs[..., 0], pairs[..., 1]
    if m.size == 0:
        return np.full(tuple(1 if i in axis else n for i, n in enumerate(pairs.shape)), -np.inf, pairs.dtype)
    with np.errstate(invalid="ignore", over="ignore"):
        big = np.max(m, axis=axis, keepdims=True)  # nan wins, then +inf
        terms = np.where(m == -np.inf, -np.inf, (m - big) + l)
        total = _in_memory("logsumexp", terms, axis=axis, keepdims=True)
        total = np.where(np.isfinite(big), total, big)
    return np.stack([big, total], axis=-1)


def _identity(pairs, axis=None, keepdims=True):
    return pairs


def _normalize(block, pair, whole, kind, axes, backend, out_dtype):
    """The global softmax / log_softmax of this chunk: its local result, corrected by its share of the line."""
    if block.size == 0:
        return np.empty(block.shape, out_dtype)
    compiled, rows = _compiled_rows(block, axes, backend)
    if compiled is not None:  # one pass: exp(x - M) / S (or (x - M) - L) straight from the line's totals
        big, total = whole[..., 0].ravel(), whole[..., 1].ravel()
        with np.errstate(invalid="ignore", over="ignore"):  # lines with a non-finite M: the kernel ignores S
            s = np.exp(total.astype(_pair_dtype(block.dtype)))  # the line's sum of exp(x - M), as hi + lo
            hi = s.astype(np.float64)
            lo = (s - hi).astype(np.float64)
        result = np.empty(rows.shape, block.dtype)
        compiled.row_finish(rows, result, big.astype(np.float64), hi, lo, kind == "log_softmax",
                            _dispatch.threads_for(block.size))
        return result.reshape(block.shape).astype(out_dtype, copy=False)
    compute_dtype = _compute_dtype(block.dtype)
    blk = block.astype(compute_dtype, copy=False)
    local = _in_memory(kind, blk, axis=axes, backend=backend)
    m, l = pair[..., 0], pair[..., 1]
    big, total = whole[..., 0], whole[..., 1]
    line_ok = np.isfinite(big)  # lines without nan, +inf, and not all -inf
    chunk_empty = (m == -np.inf) & line_ok  # only -inf in this chunk of a finite line: 0 / -inf here
    with np.errstate(invalid="ignore", over="ignore", under="ignore"):
        share = (m - np.where(line_ok, big, 0)) + (l - np.where(line_ok, total, 0))
        if kind == "softmax":
            local *= np.exp(share).astype(compute_dtype)
        else:
            local += share.astype(compute_dtype)
        if not np.all(line_ok):
            if kind == "softmax":
                fix = np.nan
            else:  # scipy: x - L with L = M (nan, +inf, -inf) on these lines
                fix = blk - big.astype(compute_dtype)
            local = np.where(line_ok, local, fix)
        if np.any(chunk_empty):
            local = np.where(chunk_empty, 0 if kind == "softmax" else -np.inf, local)
    return local.astype(out_dtype, copy=False)


def _weighted_partial(a, b, axes, backend, pair_dtype):
    """(log|sum(b exp(a))|, sign) per line of this chunk; b None for plain logsumexp."""
    a = a.astype(pair_dtype, copy=False)
    b = None if b is None else b.astype(pair_dtype, copy=False)
    out, sign = _in_memory("logsumexp", a, axis=axes, b=b, keepdims=True, return_sign=True, backend=backend)
    return np.stack([np.asarray(out), np.asarray(sign)], axis=-1)


def _weighted_combine(pairs, axis=None, keepdims=True):
    out, sign = _in_memory("logsumexp", pairs[..., 0], axis=axis, b=pairs[..., 1], keepdims=True, return_sign=True)
    return np.stack([np.asarray(out), np.asarray(sign)], axis=-1)


# ---- the graph ------------------------------------------------------------------------------------------------

def _chunk_task(fn, x):
    """`fn` for the tasks of `x`: with one kernel thread per task when dask keeps every core busy with chunks
    already; two layers of threads on the same cores only wait for each other (measured: the per-chunk partial
    logsumexp of a (2, 10^8) float32 array in 64 chunks, 0.157 s -> 0.11 s on 2 cores)."""
    if x.npartitions < _threads.get_num_threads():
        return fn

    @functools.wraps(fn)
    def task(*args, **kwargs):
        with _threads.single_threaded():
            return fn(*args, **kwargs)
    return task


def _indices(ndim):
    return tuple(f"i{k}" for k in range(ndim))


def _pairs_chunks(x, axes):
    """Chunks of the partials: one element per chunk along the reduced axes, 2 on the new last axis."""
    return tuple((1,) * len(c) if i in axes else c for i, c in enumerate(x.chunks)) + ((2,),)


def _reduce_pairs(partials, axes, combine, split_every):
    return da.reduction(partials, _identity, combine, combine=combine, axis=axes, keepdims=True,
                        dtype=partials.dtype, split_every=split_every, concatenate=True,
                        meta=_meta(partials.ndim, partials.dtype), name="fastsoftmax-combine")


def _line_pairs(x, axes, backend, split_every):
    """(partials, whole): the per-chunk pairs and, reduced over the chunks, the per-line pairs."""
    pair_dtype = _pair_dtype(x.dtype)
    partials = da.map_blocks(_chunk_task(_partial, x), x, axes=axes, backend=backend, pair_dtype=pair_dtype,
                             chunks=_pairs_chunks(x, axes), new_axis=x.ndim, dtype=pair_dtype,
                             meta=_meta(x.ndim + 1, pair_dtype), token="fastsoftmax-partial")
    return partials, _reduce_pairs(partials, axes, _combine, split_every)


def _single_chunked(x, axes):
    return all(x.numblocks[i] == 1 for i in axes)


def _out_dtype(func, dtype):
    return np.asarray(_in_memory(func, np.zeros(1, dtype))).dtype


def softmax_like(func, x, axis=None, *, out=None, backend=None, split_every=None):
    """softmax or log_softmax of the dask array `x` over `axis`, lazily (see the module docstring)."""
    _no_out(out, func)
    x = _as_dask_array(x, func)
    axes = _axes(axis, x.ndim, func)
    out_dtype = _out_dtype(func, x.dtype)
    if _known_empty(x):
        return _empty_like_result(x, func, axes, backend)
    if x.dtype.kind == "c" and not _single_chunked(x, axes):  # no ordering to reduce over: whole lines
        x = x.rechunk({i: -1 for i in axes})
    if _single_chunked(x, axes):
        return da.map_blocks(_chunk_task(_lines_local, x), x, kind=func, axes=axes, backend=backend,
                             out_dtype=out_dtype,
                             dtype=out_dtype, meta=_meta(x.ndim, out_dtype), token=f"fastsoftmax-{func}")
    partials, whole = _line_pairs(x, axes, backend, split_every)
    index = _indices(x.ndim)
    return da.blockwise(_chunk_task(_normalize, x), index, x, index, partials, index + ("pair",),
                        whole, index + ("pair",),
                        kind=func, axes=axes, backend=backend, out_dtype=out_dtype, dtype=out_dtype,
                        align_arrays=False, concatenate=True, meta=_meta(x.ndim, out_dtype),
                        token=f"fastsoftmax-{func}-normalize")


def softmax(x, axis=None, *, out=None, backend=None, split_every=None):
    return softmax_like("softmax", x, axis, out=out, backend=backend, split_every=split_every)


def log_softmax(x, axis=None, *, out=None, backend=None, split_every=None):
    return softmax_like("log_softmax", x, axis, out=out, backend=backend, split_every=split_every)


def _take(pairs, k, dtype):
    return pairs[..., k].astype(dtype)


def _lse_from_pairs(pairs, dtype):
    big = pairs[..., 0]
    return (np.where(np.isfinite(big), big, 0) + pairs[..., 1]).astype(dtype)


def _sign_of(out):
    return np.where(out == -np.inf, 0, np.where(np.isnan(out), np.nan, 1)).astype(out.dtype)


def _complex_lines(a, *b, axes, backend, part):
    """Complex input, whole lines per chunk: the in-memory logsumexp (part: "value", "real" or "sign")."""
    res = _in_memory("logsumexp", a, axis=axes, b=b[0] if b else None, keepdims=True, return_sign=part != "value",
                         backend=backend)
    return np.asarray(res[0] if part == "real" else res[1] if part == "sign" else res)


def _pairs_part(pairs, func, dtype):
    return da.map_blocks(func, pairs, dtype=dtype, drop_axis=pairs.ndim - 1, meta=_meta(pairs.ndim - 1, dtype))


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, backend=None, split_every=None):
    """log(sum(b * exp(a))) of dask arrays over `axis`, lazily; `b` may be a dask or numpy array (or None)."""
    func = "logsumexp"
    b_given = b is not None
    if b_given:
        if not isinstance(b, da.Array):
            b = np.asarray(b)
            if b.dtype.kind not in "biufc":
                raise TypeError(f"{func}: expected a real or complex numeric array, got dtype {b.dtype}")
            b = da.from_array(b.astype(np.float64) if b.dtype.kind in "biu" else b)
        a = _as_dask_array(a, func) if isinstance(a, da.Array) else da.from_array(np.asarray(a))
        b = _as_dask_array(b, func)
        a = _as_dask_array(a, func)
        dtype = np.result_type(a.dtype, b.dtype, np.float16)
        a, b = da.broadcast_arrays(a.astype(dtype), b.astype(dtype))
    a = _as_dask_array(a, func)
    if a.ndim == 0:  # scipy treats a 0-d input as a 1-element vector
        a = a.reshape(1)
        b = b.reshape(1) if b_given else None
    axes = _axes(axis, a.ndim, func)
    dtype = a.dtype
    if _known_empty(a):
        kwargs = dict(b=np.empty(a.shape, dtype) if b_given else None, keepdims=keepdims, return_sign=return_sign)
        return _empty_like_result(a, func, axes, backend, **kwargs)

    if dtype.kind == "c":  # no ordering to reduce over: whole lines per chunk, the in-memory function on each
        a = a.rechunk({i: -1 for i in axes})
        args = (a, b.rechunk(a.chunks)) if b_given else (a,)
        chunks = tuple((1,) if i in axes else c for i, c in enumerate(a.chunks))

        def lines(part, part_dtype):
            return da.map_blocks(_complex_lines, *args, axes=axes, backend=backend, part=part, chunks=chunks,
                                 dtype=part_dtype, meta=_meta(a.ndim, part_dtype))
        if return_sign:
            out, sign = lines("real", np.finfo(dtype).dtype), lines("sign", dtype)
        else:
            out = lines("value", dtype)
    else:
        pair_dtype = _pair_dtype(dtype)
        if b_given:
            index = _indices(a.ndim)
            partials = da.blockwise(_chunk_task(_weighted_partial, a), index + ("pair",), a, index, b, index,
                                    axes=axes, backend=backend, pair_dtype=pair_dtype, new_axes={"pair": 2},
                                    adjust_chunks={index[i]: 1 for i in axes}, dtype=pair_dtype,
                                    meta=_meta(a.ndim + 1, pair_dtype), token="fastsoftmax-weighted-partial")
            whole = _reduce_pairs(partials, axes, _weighted_combine, split_every)
            out = _pairs_part(whole, partial(_take, k=0, dtype=dtype), dtype)
            sign = _pairs_part(whole, partial(_take, k=1, dtype=dtype), dtype)
            if not return_sign:
                out = da.where(sign < 0, np.nan, out)
        else:
            _, whole = _line_pairs(a, axes, backend, split_every)
            out = _pairs_part(whole, partial(_lse_from_pairs, dtype=dtype), dtype)
            if return_sign:
                sign = da.map_blocks(_sign_of, out, dtype=dtype, meta=_meta(a.ndim, dtype))
    if not keepdims:
        out = out.squeeze(axis=axes)
        if return_sign:
            sign = sign.squeeze(axis=axes)
    return (out, sign) if return_sign else out
