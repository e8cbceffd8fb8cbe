"""The backends that compute softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

(A private package: `fastsoftmax.backends()` is the public function that lists the usable ones.)
numba: fastsoftmax._backends.numba (imported on first use).
"""
