"""Build the compiled kernels of fastsoftmax, or install without them.

Everything about compilation lives here: Cython directives and compiler flags. Where the kernels cannot be built (no
C compiler, a compiler without GCC's vector extensions such as MSVC, no Cython outside build isolation), the
install still succeeds with the numpy and numba backends: the build prints one warning saying why and records it
in fastsoftmax/_build_failure.txt, which fastsoftmax.info() and backends() report.
"""
import os
import sys

import numpy
from setuptools import Extension, setup
from setuptools.command.build_clib import build_clib
from setuptools.command.build_ext import build_ext

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


KERNEL_SOURCES = ["src_cython/simd/fs_kernels.c"]
PARALLEL_SOURCES = ["src_cython/parallel/fs_pool.c", "src_cython/parallel/fs_lines.c"]


# The SIMD kernels (every path: ~30 s of gcc) compile once, into a static library that each extension links: the
# extensions load RTLD_LOCAL, so each holds its own copy and runs fs_init itself; the pool lives in cython_kernels.
KERNEL_LIBRARY = ("fs_kernels", {"sources": KERNEL_SOURCES, "include_dirs": ["src_cython/simd"],
                                 "cflags": COMPILE_ARGS})


def extension(name, pyx, sources=()):
    """A Cython module of the package, linked with the kernel library and the other C sources it calls."""
    return Extension(
        f"fastsoftmax.{name}",
        sources=[f"src_cython/{pyx}", *sources],
        include_dirs=["src_cython", "src_cython/simd", "src_cython/parallel", numpy.get_include()],
        extra_compile_args=COMPILE_ARGS,
        extra_link_args=LINK_ARGS,
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    )


FAILURE_NOTE = os.path.join("fastsoftmax", "_build_failure.txt")   # read by fastsoftmax/_backends/cython.py


def failure(exc, what, compiler):
    """One line on a failed build step: the compiler's name rather than its whole command line."""
    command = getattr(compiler, "compiler_so", None) or ["the C compiler"]
    detail = f"{command[0]!r} failed" if "returned non-zero exit status" in str(exc) else str(exc)
    return f"{type(exc).__name__} in {what}: {detail}"


class OptionalBuildExt(build_ext):
    """build_ext that never fails the install: a failed extension is left out, with one warning and a note."""

    cython_missing = False
    library_failure = None

    def run(self):
        self.failures = []
        if self.cython_missing:
            self.failures.append("Cython is not installed (a build without isolation needs it)")
        else:
            try:
                self.run_command("build_clib")   # the kernel library first (also for in-place/editable builds)
                if self.library_failure:
                    self.failures.append(self.library_failure)
                else:
                    super().run()
            except Exception as exc:   # e.g. no compiler at all: raised before any extension builds
                self.failures.append(f"{type(exc).__name__}: {exc}")
        self.write_note()

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:   # CompileError, LinkError, a missing compiler executable...
            self.failures.append(failure(exc, ext.name, self.compiler))

    def write_note(self):
        """The reason, where the installed package will find it (or no note, after a good build)."""
        targets = [os.path.join(self.build_lib, FAILURE_NOTE)] + ([FAILURE_NOTE] if self.inplace else [])
        reason = self.failures[0] if self.failures else ""
        if len(self.failures) > 1:
            reason += f" (and {len(self.failures) - 1} more failures)"
        for target in targets:
            if reason:
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with open(target, "w") as f:
                    f.write(reason + "\n")
            elif os.path.exists(target):
                os.remove(target)
        if reason:
            print(f"WARNING: fastsoftmax is installed without its compiled kernels ({reason}). The numpy and numba "
                  "backends work; fastsoftmax.info() says why the cython backend is missing. Install a C compiler "
                  "(gcc or clang) and reinstall to get them.", file=sys.stderr)


def ext_modules():
    """The extensions, cythonized; none (with the reason recorded) where Cython is missing."""
    # cython_api: the kernels for other Cython modules (cimport fastsoftmax.cython_api), declared in
    # fastsoftmax/cython_api.pxd, which cythonize finds for the module fastsoftmax.cython_api on its include path ".".
    modules = [extension("_backends.cython_kernels", "cython_kernels.pyx", PARALLEL_SOURCES),
               extension("_backends.cython_training", "cython_training.pyx"),
               extension("cython_api", "cython_api.pyx")]
    try:
        from Cython.Build import cythonize
    except ImportError:   # only outside build isolation (pyproject's build requirements include Cython)
        OptionalBuildExt.cython_missing = True
        return modules
    return cythonize(modules, compiler_directives=CYTHON_DIRECTIVES)


class OptionalBuildClib(build_clib):
    """build_clib whose failure (no compiler...) is left to OptionalBuildExt, which reports it and builds nothing."""

    def run(self):
        try:
            super().run()
        except Exception as exc:
            OptionalBuildExt.library_failure = failure(exc, "the kernel library", self.compiler)


setup(ext_modules=ext_modules(), libraries=[KERNEL_LIBRARY],
      cmdclass={"build_ext": OptionalBuildExt, "build_clib": OptionalBuildClib})
