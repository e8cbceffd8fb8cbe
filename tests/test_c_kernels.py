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
    subprocess.run([cc, "-O3", "-fno-trapping-math", "-fno-math-errno", str(SIMD / "check_kernels.c"),
                    str(SIMD / "fs_kernels.c"), "-lm", "-o", str(exe)], check=True)
    return exe


@pytest.mark.parametrize("path", ["best", "avx2", "baseline"])
def test_harness_passes(harness, path):
    """best: the widest path this CPU runs (AVX-512 where present); avx2 and baseline cap it."""
    env = dict(os.environ)
    env.pop("FASTSOFTMAX_SIMD", None)
    if path != "best":
        env["FASTSOFTMAX_SIMD"] = path
    result = subprocess.run([str(harness), "quick"], capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
