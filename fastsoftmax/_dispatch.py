"""Which backend computes a call. The only module that knows the size thresholds.

The backends (fastsoftmax/_backends/) declare what they cover: the compute dtypes, temperature, the training-loop
kernels; this module reads those declarations, never the other way round. A call goes to the backend forced for it
(backend= or FASTSOFTMAX_BACKEND), if that backend covers it, else to the automatic choice.

The automatic choice is data: rules keyed "function/shape kind/dtype" (shape kind "rows" when inner == 1,
"columns" otherwise), each a list of [size_limit, backend] pairs read in order; the first whose limit exceeds
the call's element count (null: no limit) wins. Shipped defaults (dispatch_defaults.json, measured on the
developers' machine) are overlaid by the user's file written by `python -m fastsoftmax calibrate`.

Threads: calls of fewer than SERIAL_BELOW elements run on one thread (fastsoftmax/_threads.py counts the threads).
"""
import importlib
import json
import os
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from . import _threads
from ._backends import NAMES as BACKEND_NAMES

FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
TRAINING_FUNCTIONS = ("softmax_backward", "log_softmax_backward", "cross_entropy")
SHAPE_KINDS = ("rows", "columns")
DEFAULTS_FILE = Path(__file__).with_name("dispatch_defaults.json")
FALLBACK_ORDER = ("cython", "numba", "numpy")
# Where a rule's backend is missing (an install without the compiled kernels), numba takes calls from this size:
# below it numpy's composition is as fast (numba's call costs ~15 us) and needs no compile (~3 s per kernel on a
# cold cache, ~0.5 s to import numba).
NUMBA_FALLBACK_FROM = 16384

# Starting a helper thread's share costs a few microseconds while a thread handles ~3 float32 elements per
# nanosecond: below this many elements one thread finishes before a second would have helped.
SERIAL_BELOW = 32768

_modules: dict[str, ModuleType] = {}  # name -> the backend's module (declaration imported; kernels may load lazily)
_why_unavailable: dict[str, str] = {}
FORCED = os.environ.get("FASTSOFTMAX_BACKEND") or None


# ---- which backends exist ----------------------------------------------------------------------------------------

def _declaration(name):
    """The backend module of `name` (its declaration), or None with the reason recorded."""
    if name in _modules:
        return _modules[name]
    if name in _why_unavailable:
        return None
    try:
        module = importlib.import_module(f"fastsoftmax._backends.{name}")
    except ImportError as exc:
        _why_unavailable[name] = f"fastsoftmax._backends.{name} does not import: {exc}"
        return None
    why = module.unavailable()
    if why:
        _why_unavailable[name] = why
        return None
    _modules[name] = module
    return module


def available():
    """Names of the backends usable here."""
    return tuple(name for name in BACKEND_NAMES if _declaration(name) is not None)


def why_unavailable():
    available()
    return dict(_why_unavailable)


def backend_module(name):
    """The module of backend `name`; ValueError naming the choices if it is unknown or cannot be used."""
    if name not in BACKEND_NAMES:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(available())}")
    module = _declaration(name)
    if module is None:
        raise ValueError(f"backend {name!r} is not available ({_why_unavailable[name]}); "
                         f"available backends: {', '.join(available())}")
    return module


def covers(module, dtype, tempered=False):
    """Whether a backend computes dtype (and a temperature) itself (DTYPES None: every dtype)."""
    return ((module.DTYPES is None or _name(dtype) in module.DTYPES)
            and (module.TEMPERATURE or not tempered))


_FAST_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def _name(dtype):
    """dtype.name, without its cost for the common dtypes: numpy computes the name in Python, ~1 us a call, a
    seventh of a small call's general path."""
    return _FAST_DTYPES.get(dtype) or np.dtype(dtype).name


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
            if (not isinstance(step, list) or len(step) != 2 or step[1] not in BACKEND_NAMES
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


# Set by reload_rules() at import: "function/shape kind/dtype" -> [[size_limit, backend], ...], and their source
RULES: dict[str, list[list[Any]]]
RULES_SOURCE: str


def reload_rules():
    """Read the rules again (after `calibrate` wrote them)."""
    global RULES, RULES_SOURCE, _table
    RULES, RULES_SOURCE = _read_rules()
    _table = {}
    for key, steps in RULES.items():
        func, kind, dtype = key.split("/")
        _table[func, kind == "columns", np.dtype(dtype)] = tuple((limit, name) for limit, name in steps)
    configure_shortcut()


_ALL_SIZES = (0, 1 << 62)


def configure_shortcut():
    """Tell the compiled shortcut of the public functions (fastsoftmax/_api.py) which calls are its own: none when
    a backend other than cython is forced, else, per function, shape kind and dtype, the sizes the rules give to
    cython; and the serial threshold and thread count (kept current through fastsoftmax._threads.on_change)."""
    module = _declaration("cython")
    if module is None or module.compiled is None or not hasattr(module.compiled, "configure_shortcut"):
        return
    ranges = {}
    for (func, columns, dtype), steps in _table.items():
        start = 0
        for limit, name in steps:
            end = _ALL_SIZES[1] if limit is None else limit
            if name == "cython" or FORCED == "cython":
                ranges[FUNCTIONS.index(func), int(columns), int(dtype == np.float64)] = (start, end)
                break
            start = end
    if FORCED == "cython":
        ranges = {(f, c, d): _ALL_SIZES for f in range(3) for c in range(2) for d in range(2)}
    module.compiled.configure_shortcut(FORCED in (None, "cython"), SERIAL_BELOW, _threads.get_num_threads(), ranges)
    global _shortcut_listening
    if not _shortcut_listening:
        _threads.on_change(count=module.compiled.set_threads, serial=module.compiled.set_serial_here)
        _shortcut_listening = True


_shortcut_listening = False


def _automatic(func, dtype, size, columns, tempered):
    for limit, name in _table.get((func, columns, dtype), ()):
        if limit is None or size < limit:
            module = _declaration(name)
            if module is not None and covers(module, dtype, tempered):
                return module
            break
    for name in FALLBACK_ORDER:
        if name == "numba" and size < NUMBA_FALLBACK_FROM:
            continue
        module = _declaration(name)
        if module is not None and covers(module, dtype, tempered):
            return module
    return _modules["numpy"]


def choose(func, dtype, size, columns, backend, tempered=False):
    """The backend module for one call of `func` on `size` elements of compute dtype `dtype`.

    `backend` (or FASTSOFTMAX_BACKEND) forces a backend where it covers the dtype; other dtypes (complex, long
    double) always use the numpy reference, the only backend that covers them. `tempered`: the call has a
    temperature != 1 (every backend takes one today)."""
    name = backend or FORCED
    if name is not None:
        module = backend_module(name)
        if not covers(module, dtype):
            return _modules["numpy"]
        if tempered and not module.TEMPERATURE:
            raise ValueError(f"{func}: backend {name!r} does not support temperature")
        return module
    if dtype not in _FAST_DTYPES:
        return _modules["numpy"]
    return _automatic(func, dtype, size, columns, tempered)


def choose_training(func, backend):
    """The backend module computing training-loop operation `func`: backend= if given (ValueError naming the ones
    that have these kernels when it does not), else the compiled kernels where built, else the numpy definitions;
    FASTSOFTMAX_BACKEND applies when it names a backend that has them."""
    if backend is not None:
        module = backend_module(backend) if backend in BACKEND_NAMES else None
        if module is None or not module.TRAINING:
            having = [n for n in available() if _modules[n].TRAINING]
            raise ValueError(f"{func}: backend must be None or one of {', '.join(map(repr, having))} (the ones with "
                             f"training kernels here), got {backend!r}")
        return module
    for name in ((FORCED,) if FORCED else ()) + ("cython", "numpy"):
        module = _declaration(name) if name in BACKEND_NAMES else None
        if module is not None and module.TRAINING:
            return module
    return _modules["numpy"]


def set_serial_below(elements):
    """Tests only: change SERIAL_BELOW (0: every call on the threads), for the shortcut too; returns the previous."""
    global SERIAL_BELOW
    previous, SERIAL_BELOW = SERIAL_BELOW, elements
    configure_shortcut()
    return previous


def threads_for(size):
    """Threads for a call over `size` elements: one below SERIAL_BELOW or inside _threads.single_threaded() (the
    caller parallelises already: dask tasks), else the configured count (fastsoftmax/_threads.py)."""
    if size < SERIAL_BELOW or _threads.serial_here():
        return 1
    return _threads.get_num_threads()


_declaration("numpy")
reload_rules()
