"""Build the compiled kernels of fastsoftmax.

Everything about compilation lives here: Cython directives, compiler flags and the OpenMP probe.
"""
import os
import subprocess
import sys
import sysconfig
import tempfile
import textwrap

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup

# -O3 plus these two flags lets gcc vectorize the exp/polynomial loops. Never -ffast-math/-Ofast (it deletes
# nan/inf checks, and gcc < 13 links crtfastmath.o, which turns on flush-to-zero for the whole Python process),
# never -march=native (wheels must run on any x86-64; the AVX2 path is chosen at run time instead).
COMPILE_ARGS = ["-O3", "-fno-trapping-math", "-fno-math-errno"]

CYTHON_DIRECTIVES = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "cdivision": True,
    "initializedcheck": False,
}


def openmp_flag():
    """Return the OpenMP flag if the C compiler accepts it, else None (the build then runs single-threaded)."""
    if os.environ.get("FASTSOFTMAX_NO_OPENMP"):
        return None
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    program = textwrap.dedent("""
        #include <omp.h>
        int main(void) { int n = 0;
        #pragma omp parallel reduction(+:n)
          n += 1;
          return n > 0 ? 0 : 1; }
    """)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write(program)
        cmd = cc.split() + ["-fopenmp", src, "-o", os.path.join(tmp, "probe")]
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
    return "-fopenmp" if ok else None


omp = openmp_flag()
if omp is None:
    print("*" * 78 + "\nWARNING: OpenMP not available: fastsoftmax's Cython kernels will run single-threaded.\n"
          + "*" * 78, file=sys.stderr)
omp_args = [omp] if omp else []


def extension(name, pyx):
    """A Cython module of the package, linked with the SIMD kernels (each gets its own copy: extensions load
    RTLD_LOCAL, and fs_init runs in each)."""
    return Extension(
        f"fastsoftmax.{name}",
        sources=[f"src_cython/{pyx}", "src_cython/simd/fs_kernels.c"],
        include_dirs=["src_cython", "src_cython/simd", numpy.get_include()],
        extra_compile_args=COMPILE_ARGS + omp_args,
        extra_link_args=omp_args,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


modules = [extension("cython_backend", "cython_backend.pyx"), extension("training_kernels", "training_kernels.pyx")]
setup(ext_modules=cythonize(modules, compiler_directives=CYTHON_DIRECTIVES))
