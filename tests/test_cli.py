"""The command line `python -m fastsoftmax` (info, bench, compare, calibrate), run as a user would: in a subprocess.

Each bench and calibrate run is filtered down to a few small cases so that the whole file takes seconds."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fastsoftmax import _dispatch

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--backends", "auto,numpy,cython,scipy"]  # numba compiles on first use: kept out of these runs


@pytest.fixture
def config(tmp_path):
    """A FASTSOFTMAX_CONFIG in a directory that does not exist yet: the user's own calibration stays untouched."""
    return tmp_path / "not" / "yet" / "dispatch.json"


def run(*args, config=None, blocked=(), tmp_path=None, timeout=120):
    """Run `python -m fastsoftmax ARGS`; `blocked` names top-level modules made to fail on import."""
    env = dict(os.environ)
    env.pop("FASTSOFTMAX_BACKEND", None)
    env["FASTSOFTMAX_CONFIG"] = str(config or Path(tmp_path or "/nonexistent") / "dispatch.json")
    paths = [str(ROOT)]
    if blocked:
        fake = Path(tmp_path) / "blocked"
        for name in blocked:
            (fake / name).mkdir(parents=True, exist_ok=True)
            (fake / name / "__init__.py").write_text(f"raise ImportError('{name} blocked by the test')\n")
        paths.insert(0, str(fake))
    env["PYTHONPATH"] = os.pathsep.join(paths + [env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "fastsoftmax", *args], capture_output=True, text=True, env=env,
                          timeout=timeout, cwd=ROOT)


def assert_one_line_error(proc, *words):
    assert proc.returncode != 0, proc.stdout
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("fastsoftmax: error:"), lines[0]
    for word in words:
        assert word in lines[0], lines[0]


def test_info(tmp_path):
    proc = run("info", tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    for field in ("fastsoftmax 0.", "backends", "numpy", "threads", "dispatch", "rules from defaults",
                  "softmax", "bench peers"):
        assert field in proc.stdout
    proc = run("info", "--json", tmp_path=tmp_path)
    details = json.loads(proc.stdout)
    assert "numpy" in details["backends"] and details["dispatch_rules"]


def test_bench_json_and_table(tmp_path):
    out = tmp_path / "bench.json"
    proc = run("bench", "--quick", "--cases", "vector_1000,tiny_3", "--dtype", "float64", "--functions",
               "softmax,logsumexp", *FAST, "--json", str(out), tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.strip()  # progress went to stderr
    for column in ("case", "backend", "median", "GB/s", "vs scipy", "max ULP", "within 10%"):
        assert column in proc.stdout
    data = json.loads(out.read_text())
    rows = data["results"]
    assert {(r["case"], r["function"]) for r in rows} == {
        (c, f) for c in ("tiny_3-float64", "vector_1000-float64") for f in ("softmax", "logsumexp")}
    assert {r["backend"] for r in rows} == {"auto", "numpy", "cython", "scipy"}
    for r in rows:
        for field in ("case", "shape", "dtype", "axis", "size", "function", "backend", "median_s", "gb_per_s",
                      "ns_per_element", "speedup_vs_scipy", "max_ulp", "row_sum_eps"):
            assert field in r, (field, r)
        assert r["median_s"] > 0 and r["max_ulp"] < 100 and r["verdict"] == "ok"
    autos = [r for r in rows if r["backend"] == "auto"]
    assert all(r["auto_choice"] in _dispatch.BACKEND_NAMES and isinstance(r["auto_within_10pct"], bool) for r in autos)
    assert data["fastsoftmax"]["version"]


def test_compare_is_the_quick_bench(tmp_path):
    proc = run("compare", "--cases", "tiny_3", "--functions", "softmax", "--backends", "cython,scipy,copy",
               tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "tiny_3-float64" in proc.stdout and "memory floor" in proc.stdout


def test_plot(tmp_path):
    png = tmp_path / "plot.png"
    args = ("bench", "--quick", "--cases", "tiny_3,vector_1000", "--functions", "softmax", "--backends",
            "cython,scipy", "--plot", str(png))
    blocked = run(*args, blocked=("matplotlib",), tmp_path=tmp_path)
    assert_one_line_error(blocked, "matplotlib", "pip install matplotlib")
    assert not png.exists()
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return
    proc = run(*args, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_scipy(tmp_path):
    proc = run("bench", "--quick", "--cases", "tiny_3", tmp_path=tmp_path, blocked=("scipy",))
    assert_one_line_error(proc, "scipy", "pip install scipy")
    # without scipy among the peers the bench still runs
    proc = run("bench", "--quick", "--cases", "tiny_3", "--functions", "softmax", "--backends", "numpy,cython",
               tmp_path=tmp_path, blocked=("scipy",))
    assert proc.returncode == 0, proc.stderr


def test_calibrate_writes_valid_rules_then_reset(config):
    proc = run("calibrate", "--quick", "--backends", "numpy,cython", "--max-size", "4096", config=config)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(config.read_text())
    _dispatch.validate_rules(data["rules"])
    assert len(data["rules"]) == 12 and data["threads"] >= 1 and "timings_seconds" in data
    assert str(config) in proc.stdout and "softmax/rows/float32" in proc.stdout
    info = run("info", config=config)
    assert f"calibration ({config})" in info.stdout
    proc = run("calibrate", "--reset", config=config)
    assert proc.returncode == 0 and not config.exists()
    assert "rules from defaults" in run("info", config=config).stdout
    proc = run("calibrate", "--reset", config=config)
    assert proc.returncode == 0 and "no calibration file" in proc.stdout


def test_calibrate_filters_and_write_defaults(tmp_path, config):
    proc = run("calibrate", "--quick", "--functions", "logsumexp", "--kinds", "columns", "--dtype", "f32",
               "--backends", "numpy,cython", "--max-size", "65536", config=config)
    assert proc.returncode == 0, proc.stderr
    assert list(json.loads(config.read_text())["rules"]) == ["logsumexp/columns/float32"]
    defaults = tmp_path / "defaults.json"
    proc = run("calibrate", "--quick", "--backends", "numpy,cython", "--max-size", "256", "--write-defaults",
               str(defaults), config=config)
    assert proc.returncode == 0, proc.stderr
    rules = json.loads(defaults.read_text())
    _dispatch.validate_rules(rules)
    assert len(rules) == 12


@pytest.mark.parametrize("args, words", [
    (("bench", "--bogus"), ["--bogus"]),
    (("bench", "--cases", "nope"), ["unknown case", "rows_256x1000"]),
    (("bench", "--backends", "cuda"), ["unknown backend", "cython"]),
    (("bench", "--dtype", "float16"), ["float16"]),
    (("bench", "--functions", "sigmoid"), ["sigmoid"]),
    (("bench", "--budget", "abc"), ["abc"]),
    (("calibrate", "--kinds", "diagonal"), ["diagonal"]),
    (("calibrate", "--backends", "cuda"), ["cuda"]),
    (("calibrate", "--functions", "softmax", "--write-defaults"), ["--write-defaults"]),
    (("frobnicate",), ["frobnicate"]),
    ((), ["COMMAND"]),
])
def test_bad_options(tmp_path, args, words):
    assert_one_line_error(run(*args, tmp_path=tmp_path), *words)


def test_readme_results_table_is_the_generated_one():
    """README's softmax table is docs/bench.md's, which `bench --markdown` writes: never typed by hand."""
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent
    generated = (root / "docs" / "bench.md").read_text()
    table = generated[generated.index("| case |"):generated.index("### log_softmax")].strip()
    assert table in (root / "README.md").read_text()


def test_markdown_table_has_a_row_per_case(tmp_path):
    from fastsoftmax._tools.report import markdown_table
    results = [{"case": "c1", "function": "softmax", "backend": b, "median_s": t, "max_ulp": u}
               for b, t, u in (("cython", 1e-3, 1.5), ("scipy", 3e-3, 20.0), ("torch", 2e-3, 30.0))]
    table = markdown_table(results, "softmax").splitlines()
    assert table[0].startswith("| case | cython | scipy | torch |")
    assert table[2] == "| c1 | 1.00 ms | 3.00 ms | 2.00 ms | 3.00x | 2.00x (torch) | 1.50 / 30 |"


def test_markdown_table_measures_fastsoftmax_by_the_default_call(tmp_path):
    """With the dispatcher ("auto") timed, the ratios are those of the call users make."""
    from fastsoftmax._tools.report import markdown_table
    results = [{"case": "c1", "function": "softmax", "backend": b, "median_s": t, "max_ulp": u}
               for b, t, u in (("auto", 1e-6, 0.5), ("cython", 4e-6, 0.5), ("scipy", 8e-6, 1.0),
                               ("torch", 2e-6, 1.0))]
    table = markdown_table(results, "softmax").splitlines()
    assert table[0] == ("| case | fastsoftmax | cython | scipy | torch | fastsoftmax vs scipy | "
                        "fastsoftmax vs fastest peer | max ULP: fastsoftmax / worst other |")
    assert table[2] == "| c1 | 1.0 us | 4.0 us | 8.0 us | 2.0 us | 8.00x | 2.00x (torch) | 0.50 / 1 |"
