"""fastsoftmax command line.

    python -m fastsoftmax info                  what this install runs: backends, SIMD path, threads, dispatch rules
    python -m fastsoftmax bench [--quick]       every backend, the dispatcher ("auto") and scipy on the case table
    python -m fastsoftmax calibrate [--quick]   measure the crossovers here and write this machine's dispatch rules
    python -m fastsoftmax compare               the quick bench (kept for old instructions)
"""
import argparse
import importlib.metadata
import importlib.util
import json
import math
import sys

import fastsoftmax

from . import _dispatch

PROG = "fastsoftmax"


class CLIError(Exception):
    """A user error: printed as one line on stderr, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise CLIError(f"{message} (see {self.prog} --help)")


def _split(values):
    """Comma-separated and repeated options as one flat list."""
    out = []
    for v in values or ():
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


_DTYPE_ALIASES = {"float32": "float32", "f32": "float32", "single": "float32",
                  "float64": "float64", "f64": "float64", "double": "float64"}


def _dtypes(values):
    out = []
    for v in _split(values):
        if v.lower() not in _DTYPE_ALIASES:
            raise CLIError(f"unknown dtype {v!r}; choose float32 or float64")
        out.append(_DTYPE_ALIASES[v.lower()])
    return out


def _functions(values):
    from ._tools.cases import FUNCTIONS
    names = _split(values) or list(FUNCTIONS)
    unknown = [n for n in names if n not in FUNCTIONS]
    if unknown:
        raise CLIError(f"unknown function {', '.join(unknown)}; choose from {', '.join(FUNCTIONS)}")
    return list(dict.fromkeys(names))


def _set_threads(args):
    if getattr(args, "threads", None) is not None:
        if args.threads < 1:
            raise CLIError("--threads must be a positive integer")
        fastsoftmax.set_num_threads(args.threads)


# ---- info ---------------------------------------------------------------------------------------------------------

def _version_of(dist):
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def info(args):
    details = fastsoftmax.info()
    if args.json:
        print(json.dumps(details, indent=2, default=str))
        return 0
    d = dict(details)
    out = [f"fastsoftmax {d.pop('version')}"]
    backends = d.pop("backends")
    out.append(f"  backends      {', '.join(backends)}")
    for name, why in d.pop("unavailable", {}).items():
        out.append(f"  unavailable   {name}: {why}")
    forced = d.pop("forced_backend", None)
    out.append(f"  forced        {forced + ' (FASTSOFTMAX_BACKEND)' if forced else 'no (FASTSOFTMAX_BACKEND unset)'}")
    simd = d.pop("simd_path", None)
    features = d.pop("cpu_features", None)
    if simd is not None:
        out.append(f"  SIMD path     {simd}")
    if features is not None:
        out.append(f"  CPU features  {', '.join(features) if features else '(none detected)'}")
    pool = d.pop("thread_pool", None)
    if pool is not None:
        out.append(f"  thread pool   fastsoftmax's own (no OpenMP): {pool['helpers']} helper threads started, "
                   f"idle helpers poll {pool['spin_us']} us before sleeping")
    fork = d.pop("fork", None)
    if fork is not None:
        out.append(f"  fork          {fork}")
    threads, source = d.pop("threads"), d.pop("threads_from")
    serial = d.pop("serial_below_elements", None)
    line = f"  threads       {threads} (from {source})"
    if serial:
        line += f"; inputs under {serial} elements run on one thread"
    out.append(line)
    rules, rules_from = d.pop("dispatch_rules"), d.pop("dispatch_rules_from")
    out.append(f"  dispatch      rules from {rules_from}")
    out.append(f"                calibration file: {_dispatch.config_path()}")
    from ._tools.calibrate import describe
    for key in sorted(rules, key=lambda k: (k.split("/")[0], k.split("/")[1], k.split("/")[2])):
        func, kind, dtype = key.split("/")
        out.append(f"    {func:12s} {kind:8s} {dtype:8s} {describe(rules[key])}")
    for key, value in d.items():  # anything newer than this command
        out.append(f"  {key:13s} {value}")
    peers = []
    for name, dist in (("scipy", "scipy"), ("torch", "torch"), ("onnxruntime", "onnxruntime"), ("jax", "jax"),
                       ("matplotlib", "matplotlib")):
        version = _version_of(dist) if importlib.util.find_spec(name) is not None else None
        peers.append(f"{name} {version}" if version else f"{name} (not installed)")
    out.append(f"  bench peers   {', '.join(peers)}")
    print("\n".join(out))
    return 0


# ---- bench --------------------------------------------------------------------------------------------------------

def _peers(values):
    from ._tools import peers
    names = _split(values)
    if not names:
        names = ["auto", *fastsoftmax.backends(), "scipy"]
    expanded = []
    for n in names:
        if n == "all":
            expanded.extend(peers.available_peers())
        elif n == "fastsoftmax":
            expanded.extend(peers.fastsoftmax_peers())
        elif n not in peers.all_peers():
            raise CLIError(f"unknown backend {n!r}; choose from {', '.join(peers.all_peers())}, "
                           "all, fastsoftmax")
        else:
            missing = peers.peer_missing(n)
            if n == "scipy" and not missing:
                try:
                    import scipy.special  # noqa: F401
                except ImportError as exc:
                    missing = f"scipy does not import ({exc})"
            if missing:
                if n == "scipy":
                    raise CLIError(f"bench compares against scipy, which is missing ({missing}): "
                                   "pip install scipy, or name --backends without scipy")
                raise CLIError(f"backend {n!r} is not available: {missing}")
            expanded.append(n)
    return list(dict.fromkeys(expanded))


def _finite(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def bench(args):
    from ._tools import report
    from ._tools.bench import run, summary
    from ._tools.cases import QUICK_CASES, select_cases
    _set_threads(args)
    functions = _functions(args.functions)
    dtypes = _dtypes(args.dtype)
    names = _split(args.cases)
    if args.quick and not names:
        names = list(QUICK_CASES)
    try:
        cases = select_cases(names, dtypes)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if not cases:
        raise CLIError("no case matches --cases and --dtype")
    peers = _peers(args.backends)
    if args.plot:
        try:
            import matplotlib  # noqa: F401  (checked before the run, not after it)
        except ImportError:
            raise CLIError("--plot needs matplotlib, which is not installed: pip install matplotlib") from None
    budget = args.budget if args.budget is not None else (0.03 if args.quick else 0.3)
    progress = report.progress_printer()
    results = run(cases, functions, peers, budget=budget, progress=progress, max_repeats=5 if args.quick else 25)
    progress.finish()
    print(f"fastsoftmax {fastsoftmax.__version__}, {fastsoftmax.get_num_threads()} threads; "
          "median time per call; GB/s counts the input read and the output written once")
    print(report.format_table(results))
    print(summary(results))
    if args.json:
        data = {"fastsoftmax": fastsoftmax.info(), "argv": sys.argv[1:], "budget_seconds": budget,
                "results": results}
        try:
            with open(args.json, "w") as f:
                json.dump(_finite(data), f, indent=1, default=str)
        except OSError as exc:
            raise CLIError(f"cannot write {args.json}: {exc.strerror or exc}") from None
        print(f"wrote {args.json}")
    if args.markdown:
        tables = [f"### {func}\n\n{report.markdown_table(results, func)}\n" for func in functions]
        try:
            with open(args.markdown, "w") as f:
                f.write("\n".join(tables))
        except OSError as exc:
            raise CLIError(f"cannot write {args.markdown}: {exc.strerror or exc}") from None
        print(f"wrote {args.markdown}")
    if args.plot:
        try:
            report.plot(results, args.plot)
        except ImportError:
            raise CLIError("--plot needs matplotlib, which does not import: pip install matplotlib") from None
        except OSError as exc:
            raise CLIError(f"cannot write {args.plot}: {exc.strerror or exc}") from None
        print(f"wrote {args.plot}")
    return 0


# ---- calibrate ------------------------------------------------------------------------------------------------------

def calibrate(args):
    from ._tools import calibrate as calibration, report
    from ._tools.cases import DTYPES
    path = _dispatch.config_path()
    if args.reset:
        if path.exists():
            path.unlink()
            print(f"removed {path}; dispatch rules are the shipped defaults again")
        else:
            print(f"no calibration file at {path}; dispatch rules are the shipped defaults")
        return 0
    _set_threads(args)
    functions = _functions(args.functions)
    dtypes = _dtypes(args.dtype) or list(DTYPES)
    kinds = _split(args.kinds) or list(_dispatch.SHAPE_KINDS)
    bad = [k for k in kinds if k not in _dispatch.SHAPE_KINDS]
    if bad:
        raise CLIError(f"unknown kind {', '.join(bad)}; choose rows or columns")
    backends = _split(args.backends) or list(fastsoftmax.backends())
    for b in backends:
        if b not in _dispatch.BACKEND_NAMES:
            raise CLIError(f"unknown backend {b!r}; choose from {', '.join(_dispatch.BACKEND_NAMES)}")
        if b not in fastsoftmax.backends():
            raise CLIError(f"backend {b!r} is not available: {_dispatch.why_unavailable().get(b)}")
    if args.write_defaults is not None and (len(functions), len(kinds), len(dtypes)) != (3, 2, 2):
        raise CLIError("--write-defaults needs every function, kind and dtype (drop the filters)")
    sizes = calibration.grid(args.quick, args.max_size)
    rounds = 3 if args.quick else 7
    target = 0.001 if args.quick else 0.004
    progress = report.progress_printer()
    print(f"calibrating {', '.join(backends)} on {fastsoftmax.get_num_threads()} threads, "
          f"sizes {sizes[0]}..{sizes[-1]} ({len(sizes)} points)", file=sys.stderr)
    measured = calibration.measure(functions, kinds, dtypes, backends, sizes, rounds, target, progress)
    progress.finish()
    rules = calibration.rules_from(measured)
    for key, steps in rules.items():
        print(f"  {key:28s} {calibration.describe(steps)}")
    try:
        if args.write_defaults is not None:
            target_path = args.write_defaults or _dispatch.DEFAULTS_FILE
            calibration.write_defaults(target_path, rules)
            print(f"wrote shipped defaults {target_path}")
        else:
            calibration.write_calibration(path, calibration.calibration_file(rules, measured, args.quick))
            _dispatch.reload_rules()
            print(f"wrote {path}; dispatch rules now from {_dispatch.RULES_SOURCE}")
    except OSError as exc:
        raise CLIError(f"cannot write the rules: {exc.strerror or exc} ({exc.filename})") from None
    return 0


# ---- the parser ---------------------------------------------------------------------------------------------------

def _bench_options(p):
    p.add_argument("--cases", action="append", metavar="NAMES",
                   help="comma-separated case names or ids (e.g. rows_256x1000 or rows_256x1000-float32)")
    p.add_argument("--dtype", action="append", metavar="DTYPES", help="float32 and/or float64")
    p.add_argument("--functions", action="append", metavar="NAMES", help="softmax, log_softmax, logsumexp")
    p.add_argument("--backends", action="append", metavar="NAMES",
                   help="peers to time: auto, numpy, cython, numba, scipy, torch, onnxruntime, jax, copy; "
                        "'all' = every installed one (default: auto, the fastsoftmax backends and scipy)")
    p.add_argument("--quick", action="store_true", help="small cases, few repeats (seconds)")
    p.add_argument("--budget", type=float, metavar="SECONDS", help="time spent per measurement")
    p.add_argument("--threads", type=int, metavar="N", help="fastsoftmax.set_num_threads(N) first")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="draw time per element against size (needs matplotlib)")
    p.add_argument("--markdown", metavar="FILE.md", help="also write one markdown table per function")


def parser():
    p = _Parser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version=f"fastsoftmax {fastsoftmax.__version__}")
    commands = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    c = commands.add_parser("info", help="version, backends, CPU features, threads, dispatch rules")
    c.add_argument("--json", action="store_true", help="print fastsoftmax.info() as JSON")
    c.set_defaults(run=info)
    c = commands.add_parser("bench", help="time the backends, the dispatcher and scipy (and torch, "
                                          "onnxruntime, jax) on the case table")
    _bench_options(c)
    c.set_defaults(run=bench)
    c = commands.add_parser("compare", help="the quick bench (same options as bench)")
    _bench_options(c)
    c.set_defaults(run=bench, quick=True)
    c = commands.add_parser("calibrate", help="measure the backend crossovers here and write the dispatch rules")
    c.add_argument("--quick", action="store_true", help="a coarse grid and few repeats (seconds)")
    c.add_argument("--reset", action="store_true", help="remove the calibration file (back to the defaults)")
    c.add_argument("--write-defaults", nargs="?", const="", metavar="PATH",
                   help="write the shipped defaults (fastsoftmax/dispatch_defaults.json, or PATH) instead of "
                        "this user's calibration file")
    c.add_argument("--functions", action="append", metavar="NAMES")
    c.add_argument("--dtype", action="append", metavar="DTYPES")
    c.add_argument("--kinds", action="append", metavar="KINDS", help="rows and/or columns")
    c.add_argument("--backends", action="append", metavar="NAMES", help="backends to choose among")
    c.add_argument("--max-size", type=int, metavar="N", help="largest size measured")
    c.add_argument("--threads", type=int, metavar="N", help="fastsoftmax.set_num_threads(N) first")
    c.set_defaults(run=calibrate)
    return p


def main(argv=None):
    try:
        args = parser().parse_args(argv)
        return args.run(args)
    except CLIError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m fastsoftmax bench | head`
        sys.stderr.close()
        return 1


if __name__ == "__main__":
    sys.exit(main())
