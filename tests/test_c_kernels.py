"""The C kernels' own harness (src_cython/simd/check_kernels.c): exact non-finite rules and ULP bounds on both
SIMD paths, in plain C against long double, with no Python in between."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

SIMD = Path(__file__).resolve().parent.parent / "src_cython" / "simd"
# A compiler that hangs (a broken toolchain, a full disk over NFS) must fail the test, not stall CI.
COMPILE_TIMEOUT = 600


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    cc = shutil.which(os.environ.get("CC", "gcc")) or shutil.which("cc")
    if cc is None or not (SIMD / "check_kernels.c").exists():
        pytest.skip("needs a C compiler and the source tree")
    exe = tmp_path_factory.mktemp("harness") / "check_kernels"
    # the flags of setup.py: no -march, no -ffast-math
    subprocess.run([cc, "-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", str(SIMD / "check_kernels.c"),
                    str(SIMD / "fs_kernels.c"), "-lm", "-o", str(exe)], check=True, timeout=COMPILE_TIMEOUT)
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
                            str(exe)], capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
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


# ---- aarch64: the NEON and portable paths, cross-compiled and run under qemu ---------------------------------------

CROSS_CC = "aarch64-linux-gnu-gcc"
QEMU = "qemu-aarch64"
SYSROOT = "/usr/aarch64-linux-gnu"


@pytest.fixture(scope="module")
def aarch64(tmp_path_factory):
    """The harness and the pool check built for aarch64, where Debian's cross compiler and qemu-user are installed
    (.ci/run installs them and sets FASTSOFTMAX_REQUIRE_AARCH64=1, so that CI fails instead of skipping)."""
    if shutil.which(CROSS_CC) is None or shutil.which(QEMU) is None or not os.path.isdir(SYSROOT):
        if os.environ.get("FASTSOFTMAX_REQUIRE_AARCH64") == "1":
            pytest.fail(f"{CROSS_CC}, {QEMU} or {SYSROOT} missing although FASTSOFTMAX_REQUIRE_AARCH64=1")
        pytest.skip(f"needs {CROSS_CC} and {QEMU} (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross "
                    "qemu-user)")
    out = tmp_path_factory.mktemp("aarch64")
    kernels, pool = out / "check_kernels", out / "check_pool"
    for exe, sources in ((kernels, [SIMD / "check_kernels.c", SIMD / "fs_kernels.c"]),
                         (pool, [POOL / "check_pool.c", POOL / "fs_pool.c"])):
        build = subprocess.run([CROSS_CC, "-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off",
                                "-Wall", "-Wextra", "-Werror", "-pthread", *map(str, sources), "-lm", "-o", str(exe)],
                               capture_output=True, text=True, timeout=COMPILE_TIMEOUT)
        assert build.returncode == 0, build.stderr
    # the drivers compile for aarch64 too (they run in the Python tests on the host)
    build = subprocess.run([CROSS_CC, "-O2", "-Wall", "-Wextra", "-Werror", "-I", str(SIMD), "-c",
                            str(POOL / "fs_lines.c"), "-o", str(out / "fs_lines.o")], capture_output=True, text=True,
                           timeout=COMPILE_TIMEOUT)
    assert build.returncode == 0, build.stderr
    return kernels, pool


@pytest.mark.parametrize("path", ["neon", "generic"])
def test_aarch64_kernels_pass_the_harness(aarch64, path):
    env = {k: v for k, v in os.environ.items() if k != "FASTSOFTMAX_SIMD"}
    if path == "generic":
        env["FASTSOFTMAX_SIMD"] = "generic"
    result = subprocess.run([QEMU, "-L", SYSROOT, str(aarch64[0]), "quick"], capture_output=True, text=True,
                            env=env, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert f"path: {path}" in result.stdout


def test_aarch64_thread_pool(aarch64):
    """Without the fork step: qemu-user itself cannot fork a multi-threaded process."""
    result = subprocess.run([QEMU, "-L", SYSROOT, str(aarch64[1]), "quick", "nofork"], capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
