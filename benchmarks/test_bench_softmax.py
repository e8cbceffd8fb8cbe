"""pytest-benchmark: softmax, log_softmax and logsumexp on every case of the shared table (fastsoftmax/_tools/cases.py),
timed on every fastsoftmax backend, the dispatcher ("auto", backend=None), scipy.special, torch, onnxruntime and jax
(those three when installed) and np.copy of the input (the memory-bandwidth floor), grouped per function and case.

    pytest benchmarks/ --benchmark-only                                 # time everything (several minutes)
    pytest benchmarks/ --benchmark-only -k "rows_256x1000 and softmax"  # some cases
    pytest benchmarks/ --benchmark-only --benchmark-group-by=param:peer # one table per peer instead
    pytest benchmarks/ --benchmark-disable                              # CI: each once, on smaller arrays

Each benchmark records max_ulp and row_sum_eps against a long-double reference in extra_info (see
fastsoftmax._tools.accuracy.Reference) and fails if the result is wrong, so a fast wrong kernel cannot win
(fastsoftmax and scipy are held to 1000 + 10 sqrt(n) ULP; torch, onnxruntime and jax only to sanity, their verdict
is recorded). With --benchmark-disable (or under xdist) the arrays shrink to at most DISABLED_MAX_ELEMENTS elements
of the same layout so that the whole suite runs in seconds; every case and peer is still collected and checked.
"""
import functools

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._tools.accuracy import STRICT_PEERS, Reference, check_errors
from fastsoftmax._tools.cases import CASES, FUNCTIONS, bytes_moved, make_input
from fastsoftmax._tools.peers import PeerUnavailable, all_peers, auto_choice, make_call, peer_missing

DISABLED_MAX_ELEMENTS = 1 << 16
PEERS = all_peers()
PARAMS = [pytest.param(case, func, peer, id=f"{func}-{case.id}-{peer}")
          for case in CASES for func in FUNCTIONS for peer in PEERS]


@functools.lru_cache(maxsize=1)
def _input(case, max_elements):
    x = make_input(case, max_elements=max_elements)
    x.flags.writeable = False  # shared by every peer of the case: none may modify it
    return x


@functools.lru_cache(maxsize=1)
def _reference(case, func, max_elements):
    return Reference(func, _input(case, max_elements), case.axis)


@pytest.mark.parametrize(("case", "func", "peer"), PARAMS)
def test_bench(benchmark, case, func, peer):
    missing = peer_missing(peer)
    if missing:
        pytest.skip(missing)
    max_elements = DISABLED_MAX_ELEMENTS if benchmark.disabled else None
    x = _input(case, max_elements)
    try:
        call = make_call(peer, func, x, case.axis)
    except PeerUnavailable as exc:
        pytest.skip(str(exc))
    benchmark.group = f"{func} {case.id}"
    benchmark.extra_info.update(case=case.id, shape=list(x.shape), axis=case.axis, function=func, peer=peer,
                                threads=fastsoftmax.get_num_threads(),
                                bytes_moved=bytes_moved(func, x, case.axis))
    y = benchmark(call)
    if peer == "copy":
        benchmark.extra_info["note"] = "np.copy of the input: the memory-bandwidth floor"
        assert np.array_equal(y, x)
        return
    if peer == "auto":
        benchmark.extra_info["auto_choice"] = auto_choice(func, x, case.axis)
    reference = _reference(case, func, max_elements)
    errors = reference.errors(y)
    benchmark.extra_info.update(errors)
    # fastsoftmax and scipy must be accurate; torch, onnxruntime and jax only sane (their accuracy is recorded)
    benchmark.extra_info["verdict"] = check_errors(errors, reference.line_length, f"{peer} {func} {case.id}",
                                                  dtype=x.dtype, strict=peer in STRICT_PEERS)
