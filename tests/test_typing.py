"""The type annotations (PEP 561: fastsoftmax/py.typed), checked as a user's mypy sees them.

tests/typing_usage.py must pass `mypy --strict`, and when run, every name it annotates must hold a value of that
type (dtype included): the annotations promise nothing the code does not do. tests/typing_errors.py must get a mypy
error on exactly its lines marked `# E: <code>`. The package itself must pass mypy with pyproject.toml's
[tool.mypy] configuration."""
import importlib.metadata
import importlib.util
import os
import re
import site
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _threads

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
TESTS = Path(__file__).parent
USAGE = TESTS / "typing_usage.py"
ERRORS = TESTS / "typing_errors.py"
# A cold run reads numpy's and dask's annotations: ~10 s on the developers' machine (2 cores), ~25 s for the whole
# package; the cache below makes later runs take about a second.
MYPY_TIMEOUT = 600


@pytest.fixture(scope="module")
def mypy_cache(request, tmp_path_factory):
    """A mypy cache shared by this file's runs, kept between sessions in pytest's cache folder when there is one."""
    if importlib.util.find_spec("mypy") is None:
        if IN_CI:
            pytest.fail("mypy is not installed, and CI is set: the annotations must be checked there (test extra)")
        pytest.skip("needs mypy (pip install -e '.[test]')")
    cache = getattr(request.config, "cache", None)
    return cache.mkdir("mypy") if cache is not None else tmp_path_factory.mktemp("mypy")


def site_packages_holding_fastsoftmax():
    """The site-packages folder the imported fastsoftmax was installed into, or None (editable install, source
    tree)."""
    package_parent = Path(fastsoftmax.get_include())
    site_dirs = {Path(d) for d in site.getsitepackages() + [site.getusersitepackages()]}
    return package_parent if package_parent in site_dirs else None


def run_mypy(args, cache_dir, cwd=None):
    """mypy's error lines for `args`, as (path, line, code, message); an AssertionError if mypy itself failed."""
    env = dict(os.environ)
    if site_packages_holding_fastsoftmax() is None:
        # an editable install is found through an import hook that mypy does not follow: point it at the source
        # tree. An installed copy is found in site-packages through its py.typed (and MYPYPATH may not name it).
        env["MYPYPATH"] = fastsoftmax.get_include()
    command = [sys.executable, "-m", "mypy", "--cache-dir", str(cache_dir), "--show-error-codes",
               "--no-error-summary", "--no-pretty", "--hide-error-context", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=MYPY_TIMEOUT)
    # exit status 1: errors were found in the code; anything else: mypy could not check it
    assert result.returncode in (0, 1), f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    errors = []
    for line in result.stdout.splitlines():
        found = re.match(r"(?P<path>.+?):(?P<line>\d+): error: (?P<message>.*?)(?:  \[(?P<code>[a-z-]+)\])?$", line)
        if found:
            errors.append((found["path"], int(found["line"]), found["code"], found["message"]))
    return errors


def user_check(path, cache_dir):
    """mypy --strict on one file of a user's, without this repository's configuration, and with the errors inside
    fastsoftmax silenced as mypy does for an installed package: only what the user sees."""
    return run_mypy(["--config-file=", "--strict", "--follow-imports=silent", str(path)], cache_dir)


def test_the_usage_file_type_checks_strictly(mypy_cache):
    pytest.importorskip("dask.array")
    errors = user_check(USAGE, mypy_cache)
    assert not errors, "mypy --strict rejects typed use of the public API:\n" + "\n".join(
        f"  typing_usage.py:{line}: {message} [{code}]" for _, line, code, message in errors)


def test_mypy_reports_the_mistakes_and_nothing_else(mypy_cache):
    source = ERRORS.read_text().splitlines()
    expected = {number: found[1] for number, text in enumerate(source, 1)
                if (found := re.search(r"# E: ([a-z-]+)\s*$", text))}
    assert expected, "typing_errors.py marks no line"
    reported = {}
    for _, line, code, _message in user_check(ERRORS, mypy_cache):
        reported.setdefault(line, set()).add(code)
    missed = [f"  line {n} ({code} expected, got {sorted(reported.get(n, ()))}): {source[n - 1].strip()}"
              for n, code in expected.items() if code not in reported.get(n, ())]
    unexpected = [f"  line {n} {sorted(codes)}: {source[n - 1].strip()}"
                  for n, codes in reported.items() if n not in expected]
    assert not missed and not unexpected, ("typing_errors.py:\nmypy let these pass:\n" + "\n".join(missed)
                                           + "\nmypy reported errors on unmarked lines:\n" + "\n".join(unexpected))


def holds(value, annotation):
    """Whether `value` is of type `annotation`, down to the dtype for numpy arrays (NDArray[T] is
    ndarray[shape, dtype[T]]) and the class for numpy scalars."""
    if annotation is typing.Any:
        return True
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is np.ndarray:
        scalar_type = typing.get_args(args[1])[0]
        return isinstance(value, np.ndarray) and issubclass(value.dtype.type,
                                                            typing.get_origin(scalar_type) or scalar_type)
    return isinstance(value, origin or annotation)


def test_the_usage_file_gets_what_its_annotations_say_when_run():
    pytest.importorskip("dask.array")
    spec = importlib.util.spec_from_file_location("typing_usage", USAGE)
    usage = importlib.util.module_from_spec(spec)
    setting = _threads._setting  # the file calls set_num_threads
    try:
        spec.loader.exec_module(usage)
    finally:
        fastsoftmax.set_num_threads(setting)
    annotations = usage.__annotations__
    assert len(annotations) > 30
    wrong = [f"  {name}: {annotation} got {type(getattr(usage, name)).__name__} "
             f"{getattr(getattr(usage, name), 'dtype', '')}"
             for name, annotation in annotations.items() if not holds(getattr(usage, name), annotation)]
    assert not wrong, "typing_usage.py: values differ from their annotations:\n" + "\n".join(wrong)


def test_the_package_type_checks_with_its_configuration(mypy_cache):
    root = TESTS.parent
    if not (root / "fastsoftmax" / "__init__.py").is_file():
        pytest.skip("the package's sources are not beside these tests (CI's run against an installed copy)")
    if "[tool.mypy]" not in (root / "pyproject.toml").read_text():
        pytest.fail("pyproject.toml has no [tool.mypy] section: `python -m mypy` would not know what to check")
    errors = run_mypy([], mypy_cache, cwd=root)
    assert not errors, "python -m mypy (pyproject.toml's [tool.mypy]) finds errors in the package:\n" + "\n".join(
        f"  {path}:{line}: {message} [{code}]" for path, line, code, message in errors)


def test_the_package_is_marked_typed():
    """PEP 561: without py.typed next to the installed package, mypy ignores every annotation in it."""
    assert Path(fastsoftmax.__file__).with_name("py.typed").is_file()
    site_dir = site_packages_holding_fastsoftmax()
    if site_dir is not None:  # installed from a wheel: its RECORD lists the files the package data let in
        (dist,) = [d for d in importlib.metadata.distributions(path=[str(site_dir)])
                   if d.metadata["Name"] == "fastsoftmax"]
        assert "fastsoftmax/py.typed" in [str(f) for f in dist.files or ()], "the wheel leaves out py.typed"
