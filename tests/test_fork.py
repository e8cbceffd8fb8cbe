"""A child forked after the parent used the kernels computes the same results and returns: multiprocessing's fork
Pool, a ProcessPoolExecutor with the fork context, and a bare os.fork(), on every compiled backend. (This is how
PyTorch DataLoader workers, gunicorn --preload, Celery prefork and joblib's multiprocessing backend start workers.)
GNU OpenMP's thread pool hung such children; fastsoftmax's pool is rebuilt in the child, which runs on threads again.

Each scenario runs in its own interpreter under a timeout, so a regression fails instead of hanging the suite."""
import json
import os
import subprocess
import sys
import textwrap

import pytest

import fastsoftmax

COMPILED = [name for name in ("cython", "numba") if name in fastsoftmax.backends()]
MULTICORE = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) >= 2

SCRIPT = textwrap.dedent("""
    import json, multiprocessing as mp, os, select, sys
    from concurrent.futures import ProcessPoolExecutor
    import numpy as np
    import fastsoftmax as fs
    from fastsoftmax._backends import cython_kernels as cython_backend

    backend, way = sys.argv[1], sys.argv[2]
    fs.set_num_threads(2)
    x = np.random.default_rng(0).standard_normal((512, 4096)).astype(np.float32)
    want = fs.softmax(x, axis=-1, backend=backend)          # the parent uses the kernels (and their threads)
    assert cython_backend.pool_info()["helpers"] >= 1

    def work(i):
        y = fs.softmax(x, axis=-1, backend=backend)
        lse = fs.logsumexp(x[i:i + 3], axis=None, backend=backend)
        return bool(np.array_equal(y, want)), float(lse), cython_backend.pool_info()["helpers"]

    if way == "pool":
        with mp.get_context("fork").Pool(2) as p:
            results = p.map_async(work, range(4)).get(timeout=60)
    elif way == "executor":
        with ProcessPoolExecutor(2, mp_context=mp.get_context("fork")) as ex:
            results = list(ex.map(work, range(4), timeout=60))
    else:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            os.write(write, json.dumps([work(i) for i in range(4)]).encode())
            os._exit(0)
        os.close(write)
        ready, _, _ = select.select([read], [], [], 60)
        if not ready:
            os.kill(pid, 9)
            raise SystemExit("the forked child hung")
        results = json.loads(os.read(read, 1 << 16).decode())
        os.waitpid(pid, 0)
    expected = [float(fs.logsumexp(x[i:i + 3], axis=None, backend=backend)) for i in range(4)]
    print(json.dumps({"same": [r[0] for r in results], "lse_ok": [r[1] == e for r, e in zip(results, expected)],
                      "child_helpers": [r[2] for r in results]}))
""")


@pytest.mark.parametrize("way", ["pool", "executor", "os.fork"])
@pytest.mark.parametrize("backend", COMPILED)
def test_forked_children_compute_and_return(backend, way):
    try:
        proc = subprocess.run([sys.executable, "-c", SCRIPT, backend, way], capture_output=True, text=True,
                              timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{backend} {way}: hung (killed after 180 s)")
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(out["same"]) and all(out["lse_ok"]), out
    if MULTICORE:  # the children rebuilt the pool: they run on threads, not serially
        assert all(h >= 1 for h in out["child_helpers"]), out
