"""The backends: modules that compute softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Every backend module declares what it is, cheaply (importing it never imports numba or builds anything):

    NAME          "numpy", "cython" or "numba"
    DTYPES        the compute dtypes it covers (others always go to the numpy reference)
    TEMPERATURE   whether softmax/log_softmax take a temperature
    TRAINING      whether it has the training-loop kernels (softmax_backward, cross_entropy, ...)
    unavailable() None when it can run here, else why not (one line)

and computes, over axis 1 of a C-contiguous (outer, n, inner) array x, into out (like x, or (outer, inner) for
logsumexp), with one signature:

    softmax(x, out, n_threads, temperature=1.0, out_is_new=True)
    log_softmax(x, out, n_threads, temperature=1.0, out_is_new=True)
    logsumexp(x, out, n_threads)

out_is_new says out was allocated for this call (the cython backend streams large outputs into memory the caller
gave it). The dispatcher (fastsoftmax/_dispatch.py) reads the declarations and picks a backend per call.

(A private package: `fastsoftmax.backends()` is the public function that lists the usable ones.)
"""
NAMES = ("numpy", "cython", "numba")
