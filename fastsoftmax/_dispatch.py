"""Which backend computes a call. The only module that knows the size thresholds.

A backend is a module with softmax(x, out, n_threads), log_softmax(x, out, n_threads) and
logsumexp(x, out, n_threads) over axis 1 of C-contiguous (outer, n, inner) arrays (see fastsoftmax/reference.py).

The automatic choice is data: rules keyed "function/shape kind/dtype" (shape kind "rows" when inner == 1,
"columns" otherwise), each a list of [size_limit, backend] pairs read in order; the first whose limit exceeds
the call's element count (null: no limit) wins. Shipped defaults (dispatch_defaults.json, measured on the
developers' machine) are overlaid by the user's file written by `python -m fastsoftmax calibrate`.
"""
import importlib
import importlib.util
import json
import os
import warnings
from pathlib import Path

import numpy as np

MODULES = {
    "numpy": "fastsoftmax.reference",
    "cython": "fastsoftmax.cython_backend",
    "numba": "fastsoftmax._backends.numba",
}
# What the compiled backends cover; everything else (float16 is computed as float32) goes to the reference.
FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
SHAPE_KINDS = ("rows", "columns")
DEFAULTS_FILE = Path(__file__).with_name("dispatch_defaults.json")
FALLBACK_ORDER = ("cython", "numba", "numpy")
# Backends whose softmax/log_softmax take a temperature.
TEMPERATURE_BACKENDS = ("numpy", "cython", "numba")

_loaded = {}
_why_unavailable = {}
FORCED = os.environ.get("FASTSOFTMAX_BACKEND") or None


# ---- which backends exist ----------------------------------------------------------------------------------------

def _installed(name):
    """Whether backend `name` can be used, without importing heavy modules (numba costs ~0.4 s)."""
    if name in _loaded:
        return True
    if name in _why_unavailable:
        return False
    if name == "numba":
        if importlib.util.find_spec("numba") is None:
            _why_unavailable[name] = "numba is not installed"
        elif importlib.util.find_spec(MODULES[name]) is None:
            _why_unavailable[name] = "this build has no numba backend"
        return name not in _why_unavailable
    try:
        _loaded[name] = importlib.import_module(MODULES[name])
    except ImportError as exc:
        _why_unavailable[name] = f"{MODULES[name]} does not import: {exc}"
    return name in _loaded


def available():
    """Names of the backends usable here."""
    return tuple(name for name in ("numpy", "cython", "numba") if _installed(name))


def why_unavailable():
    available()
    return dict(_why_unavailable)


def backend_module(name):
    """The module of backend `name`, imported on first use; ValueError naming the choices if it cannot be used."""
    module = _loaded.get(name)
    if module is not None:
        return module
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(available())}")
    if not _installed(name):
        raise ValueError(f"backend {name!r} is not available ({_why_unavailable[name]}); "
                         f"available backends: {', '.join(available())}")
    try:
        _loaded[name] = importlib.import_module(MODULES[name])
    except Exception as exc:
        _why_unavailable[name] = f"{MODULES[name]} failed to import: {exc!r}"
        raise ValueError(f"backend {name!r} failed to import: {exc!r}") from exc
    return _loaded[name]


# ---- the rules -----------------------------------------------------------------------------------------------------

def config_path():
    """Where `calibrate` stores this machine's rules: FASTSOFTMAX_CONFIG, else the user's cache directory."""
    explicit = os.environ.get("FASTSOFTMAX_CONFIG")
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "fastsoftmax" / "dispatch.json"


def validate_rules(rules):
    """Raise ValueError unless `rules` maps known keys to [[limit or None, backend], ...] lists."""
    if not isinstance(rules, dict):
        raise ValueError("dispatch rules must be a JSON object")
    for key, steps in rules.items():
        func, _, rest = key.partition("/")
        kind, _, dtype = rest.partition("/")
        if func not in FUNCTIONS or kind not in SHAPE_KINDS or dtype not in ("float32", "float64"):
            raise ValueError(f"dispatch rule key {key!r} is not function/rows|columns/float32|float64")
        if not isinstance(steps, list) or not steps:
            raise ValueError(f"dispatch rule {key!r} must be a non-empty list of [size_limit, backend]")
        for step in steps:
            if (not isinstance(step, list) or len(step) != 2 or step[1] not in MODULES
                    or not (step[0] is None or type(step[0]) is int)):
                raise ValueError(f"dispatch rule {key!r}: bad step {step!r}")
        limits = [limit for limit, _ in steps]
        if limits[-1] is not None or None in limits[:-1] or limits[:-1] != sorted(set(limits[:-1])):
            raise ValueError(f"dispatch rule {key!r}: size limits must increase and end with null")


def _read_rules():
    """(rules, where they came from): shipped defaults overlaid by the user's calibration, if readable."""
    with open(DEFAULTS_FILE) as f:
        rules = json.load(f)
    source = f"defaults ({DEFAULTS_FILE.name})"
    path = config_path()
    if path.exists():
        try:
            with open(path) as f:
                user = json.load(f)
            validate_rules(user.get("rules"))
        except (OSError, ValueError) as exc:
            warnings.warn(f"fastsoftmax: ignoring dispatch calibration {path}: {exc}", stacklevel=3)
        else:
            rules.update(user["rules"])
            source = f"calibration ({path})"
    return rules, source


def reload_rules():
    """Read the rules again (after `calibrate` wrote them)."""
    global RULES, RULES_SOURCE, _table
    RULES, RULES_SOURCE = _read_rules()
    _table = {}
    for key, steps in RULES.items():
        func, kind, dtype = key.split("/")
        _table[func, kind == "columns", np.dtype(dtype)] = tuple((limit, name) for limit, name in steps)


def _automatic(func, dtype, size, columns, tempered):
    for limit, name in _table.get((func, columns, dtype), ()):
        if limit is None or size < limit:
            if _installed(name) and (not tempered or name in TEMPERATURE_BACKENDS):
                return backend_module(name)
            break
    for name in FALLBACK_ORDER:
        if _installed(name) and (not tempered or name in TEMPERATURE_BACKENDS):
            return backend_module(name)


def choose(func, dtype, size, columns, backend, tempered=False):
    """The backend module for one call of `func` on `size` elements of compute dtype `dtype`.

    `backend` (or FASTSOFTMAX_BACKEND) forces a backend where it covers the dtype; other dtypes always use the
    reference, which is the only backend that covers them. `tempered`: the call has a temperature != 1."""
    name = backend or FORCED
    if name is not None:
        module = backend_module(name)
        if dtype not in FAST_DTYPES:
            return _loaded["numpy"]
        if tempered and name not in TEMPERATURE_BACKENDS:
            raise ValueError(f"{func}: backend {name!r} does not support temperature; "
                             f"use one of {', '.join(TEMPERATURE_BACKENDS)}")
        return module
    if dtype not in FAST_DTYPES:
        return _loaded["numpy"]
    return _automatic(func, dtype, size, columns, tempered)


_installed("numpy")
reload_rules()
