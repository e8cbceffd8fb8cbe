"""Build the compiled kernels of fastsoftmax.

Everything about compilation lives here: Cython directives, compiler flags and their probes.
"""
import os
import subprocess
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 plus these two flags lets gcc vectorize the exp/polynomial loops. Never -ffast-math/-Ofast (it deletes
# nan/inf checks, and gcc < 13 links crtfastmath.o, which turns on flush-to-zero for the whole Python process),
# never -march=native (wheels must run on any x86-64; the AVX2 and AVX-512 paths are chosen at run time instead).
# -ffp-contract=off: fused multiply-adds only where the kernels write them (the error-free transforms need exact
# products, and the results then do not depend on the compiler's choices). No OpenMP: the threads are fastsoftmax's
# own pool (src_cython/parallel/fs_pool.c), which cooperates with other libraries' pools and survives fork, where an
# OpenMP team does neither.
COMPILE_ARGS = ["-O3", "-fno-trapping-math", "-fno-math-errno", "-ffp-contract=off", "-pthread"]
LINK_ARGS = ["-pthread"]

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}


def compiler_accepts(flag):
    """Whether the C compiler accepts `flag` (probed on a one-line program)."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("int main(void) { return 0; }\n")
        cmd = cc.split() + [flag, "-c", src, "-o", os.path.join(tmp, "probe.o")]
        return subprocess.run(cmd, capture_output=True).returncode == 0


KERNEL_SOURCES = ["src_cython/simd/fs_kernels.c"]
PARALLEL_SOURCES = ["src_cython/parallel/fs_pool.c", "src_cython/parallel/fs_lines.c"]


def extension(name, pyx, sources):
    """A Cython module of the package, linked with the C sources it calls (extensions load RTLD_LOCAL: each holds
    its own copy of the SIMD kernels, and fs_init runs in each; the thread pool lives in cython_kernels only)."""
    return Extension(
        f"fastsoftmax.{name}",
        sources=[f"src_cython/{pyx}", *sources],
        include_dirs=["src_cython", "src_cython/simd", "src_cython/parallel", numpy.get_include()],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


# cython_api: the kernels for other Cython modules (cimport fastsoftmax.cython_api), declared in
# fastsoftmax/cython_api.pxd, which cythonize finds for the module fastsoftmax.cython_api on its include path ".".
modules = [extension("_backends.cython_kernels", "cython_kernels.pyx", KERNEL_SOURCES + PARALLEL_SOURCES),
           extension("_backends.cython_training", "cython_training.pyx", KERNEL_SOURCES),
           extension("cython_api", "cython_api.pyx", KERNEL_SOURCES)]
setup(ext_modules=cythonize(modules, compiler_directives=CYTHON_DIRECTIVES))
