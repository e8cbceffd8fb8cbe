"""fastsoftmax.__version__: the version pip installed, read from the package metadata on first use.

Lazily (fastsoftmax/__init__.py __getattr__), because importlib.metadata costs ~12 ms to import (it loads the email
package) and the look-up ~4 ms more, a fifth of `import fastsoftmax`, for a value most programs never read.

Without metadata (a source tree on sys.path that pip never installed) the version is "0+unknown": valid under
PEP 440 and lower than every release, so a minimum-version check fails instead of passing. The metadata is what
was written at install time and the first found along sys.path: an editable install reports the version it was
installed with until it is reinstalled, and a build's leftover fastsoftmax.egg-info in the current directory
answers before the installed copy.
"""
import functools

UNKNOWN = "0+unknown"


@functools.cache
def version() -> str:
    import importlib.metadata
    try:
        return importlib.metadata.version("fastsoftmax")
    except importlib.metadata.PackageNotFoundError:
        return UNKNOWN
