"""The numpy backend: fastsoftmax.reference, the readable definition, which also covers every dtype (complex, long
double, weighted logsumexp) and is the fallback for whatever the compiled backends do not cover."""
from ..reference import log_softmax, logsumexp, softmax  # noqa: F401 - the backend's three functions

NAME = "numpy"
DTYPES = None     # every dtype numpy computes
TEMPERATURE = True
TRAINING = True   # fastsoftmax/_training.py's numpy definitions


def unavailable():
    return None
