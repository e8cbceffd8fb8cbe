"""The C kernels' own harness (src_cython/simd/check_kernels.c): exact non-finite rules and ULP bounds on both
SIMD paths, in plain C against long double, with no Python in between."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SIMD = Path(__file__).resolve().parent.parent / "src_cython" / "simd"


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None or not (SIMD / "check_kernels.c").exists():
        pytest.skip("needs a C compiler and the source tree")
    exe = tmp_path_factory.mktemp("harness") / "check_kernels"
    # the flags of setup.py: no -march, no -ffast-math
    subprocess.run([cc, "-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", str(SIMD / "check_kernels.c"),
                    str(SIMD / "fs_kernels.c"), "-lm", "-o", str(exe)], check=True)
    return exe


@pytest.mark.parametrize("path", ["best", "avx2", "baseline", "generic"])
def test_harness_passes(harness, path):
    """best: the widest path this CPU runs (AVX-512 where present); avx2 and baseline (SSE2 on x86-64) cap it;
    generic is the portable-vector instance every architecture has."""
    env = dict(os.environ)
    env.pop("FASTSOFTMAX_SIMD", None)
    if path != "best":
        env["FASTSOFTMAX_SIMD"] = path
    result = subprocess.run([str(harness), "quick"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


POOL = SIMD.parent / "parallel"


def _build_pool_check(tmp_path, *flags):
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None or not (POOL / "check_pool.c").exists():
        pytest.skip("needs a C compiler and the source tree")
    exe = tmp_path / "check_pool"
    build = subprocess.run([cc, *flags, "-pthread", str(POOL / "check_pool.c"), str(POOL / "fs_pool.c"), "-o",
                            str(exe)], capture_output=True, text=True)
    return exe, build


def test_thread_pool_runs_every_task_once(tmp_path):
    """The pool alone, in C: runs of every size and thread count, four callers at once, sleeping helpers, and a forked
    child that runs in parallel again."""
    exe, build = _build_pool_check(tmp_path, "-O2")
    assert build.returncode == 0, build.stderr
    result = subprocess.run([str(exe)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "forked child: ok" in result.stdout


def test_thread_pool_has_no_data_race(tmp_path):
    """The same under ThreadSanitizer, where the compiler has it (without the fork: TSan cannot follow one)."""
    exe, build = _build_pool_check(tmp_path, "-O1", "-g", "-fsanitize=thread")
    if build.returncode != 0:
        pytest.skip(f"no ThreadSanitizer here: {build.stderr.strip().splitlines()[-1:]}")
    result = subprocess.run([str(exe), "quick", "nofork"], capture_output=True, text=True, timeout=300)
    if "unexpected memory mapping" in result.stderr or "FATAL: ThreadSanitizer" in result.stderr:
        pytest.skip("ThreadSanitizer cannot run in this environment")
    assert result.returncode == 0 and "WARNING: ThreadSanitizer" not in result.stderr, result.stderr[-3000:]
