"""Time fastsoftmax on a chunked dask array against in-memory fastsoftmax and against dask.array primitives.

    python benchmarks/bench_dask.py                          # (2, 10**8) float32, 64 chunks along the softmax axis
    python benchmarks/bench_dask.py --shape 1000 200000 --chunks 64 --repeat 5

A standalone script (pytest does not collect it). The softmax axis is the last one and is split into --chunks
chunks, so the dask result takes the chunked-axis path: per-chunk partials, a reduction tree, one normalization
pass. Everything runs on dask's threaded scheduler; the dask times include building the graph and compute()'s
final concatenation of the chunks into one numpy array (a copy the in-memory call does not make).
"""
import argparse
import os
import sys
import time

import numpy as np

import dask
import dask.array as da

import fastsoftmax


def timings(repeat, runs):
    """{name: (best, median)} seconds; the runs are interleaved round by round, so that the load of a shared
    machine falls on all of them alike."""
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            result = run()
            times[name].append(time.perf_counter() - start)
            del result
    return {name: (min(t), float(np.median(t))) for name, t in times.items()}


def primitives_softmax(d, axis):
    """The same computation written with dask.array primitives: max, exp, sum, divide."""
    e = da.exp(d - d.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs="+", default=[2, 10**8])
    parser.add_argument("--chunks", type=int, default=64, help="chunks along the softmax (last) axis")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--func", default="softmax", choices=["softmax", "log_softmax"])
    args = parser.parse_args(argv)

    shape = tuple(args.shape)
    axis = len(shape) - 1
    x = np.random.default_rng(0).normal(0, 3, shape).astype(np.float32)
    chunk = -(-shape[axis] // args.chunks)
    d = da.from_array(x, chunks=shape[:axis] + (chunk,))
    func = getattr(fastsoftmax, args.func)
    print(f"{args.func} of float32 {shape} ({x.nbytes / 1e6:.0f} MB) over axis {axis}, chunks {d.chunksize} "
          f"({d.npartitions} chunks), threaded scheduler, {os.cpu_count()} cpus, "
          f"fastsoftmax threads {fastsoftmax.get_num_threads()}, dask {dask.__version__}", flush=True)

    want = func(x, axis=axis)
    with dask.config.set(scheduler="threads"):
        got = func(d, axis=axis).compute()
        graph = func(d, axis=axis)
        tasks = len(dict(graph.__dask_graph__())) - len(dict(d.__dask_graph__()))
        with np.errstate(all="ignore"):
            ulp = np.abs(got.astype(np.float64) - want) / np.spacing(np.abs(want)).astype(np.float64)
        normal = np.abs(want) >= np.finfo(np.float32).smallest_normal
        print(f"dask-fastsoftmax vs in-memory: max {np.max(ulp[normal]):.0f} ULP, {tasks} tasks on top of the "
              "input's", flush=True)
        del got, ulp, normal

        runs = {"in-memory fastsoftmax": lambda: func(x, axis=axis),
                "dask + fastsoftmax": lambda: func(d, axis=axis).compute()}
        if args.func == "softmax":
            runs["dask.array primitives"] = lambda: primitives_softmax(d, axis).compute()
        rows = timings(args.repeat, runs)
    base = rows["in-memory fastsoftmax"][0]
    for name, (best, median) in rows.items():
        print(f"  {name:24s} best {best:7.3f} s   median {median:7.3f} s   {best / base:5.2f}x in-memory")
    return 0


if __name__ == "__main__":
    sys.exit(main())
