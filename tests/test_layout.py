"""The package's structure: no import cycle anywhere (lazy imports inside functions count), and the backends
declare what they cover."""
import ast
import pathlib

import pytest

import fastsoftmax
from fastsoftmax import _dispatch

PACKAGE = pathlib.Path(fastsoftmax.__file__).parent


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path, name, modules):
    """Every module of the package that `path` imports, at top level or inside a function. `from pkg import mod`
    imports mod (pkg itself is already loading: it is a parent of the importer or imported along the way)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "fastsoftmax")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            elif node.module and node.module.split(".")[0] == "fastsoftmax":
                target = node.module
            else:
                continue
            submodules = {f"{target}.{alias.name}" for alias in node.names} & set(modules)
            found.update(submodules or {target})
    return found


def test_no_import_cycle():
    modules = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {name: {m for m in _imports(path, name, modules) if m in modules and m != name}
             for name, path in modules.items()}
    state, path = {}, []

    def visit(node):
        state[node] = "open"
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = "done"

    for name in sorted(graph):
        if name not in state:
            visit(name)


@pytest.mark.parametrize("name", ["numpy", "cython", "numba"])
def test_every_backend_declares_what_it_covers(name):
    """Read without importing numba (the numba backend loads it only when a kernel first runs)."""
    import importlib
    module = importlib.import_module(f"fastsoftmax._backends.{name}")
    assert module.NAME == name
    assert module.DTYPES is None or {"float32", "float64"} <= set(module.DTYPES)
    assert isinstance(module.TEMPERATURE, bool) and isinstance(module.TRAINING, bool)
    assert module.unavailable() is None or isinstance(module.unavailable(), str)
    if name in _dispatch.available():
        for func in ("softmax", "log_softmax", "logsumexp"):
            assert callable(getattr(module, func))
