"""fastsoftmax next to other thread pools: numpy's BLAS, torch, a whole numpy transformer.

    python benchmarks/bench_threads.py            # all four sections (~1-2 minutes)
    python benchmarks/bench_threads.py --quick    # fewer repeats
    python benchmarks/bench_threads.py --json out.json

1. The matmul-then-softmax loop: s = q @ k.T (256x64 float32, numpy's OpenBLAS on every core), then softmax(s,
   axis=-1), 144 times (12 layers x 12 heads of GPT-2). Median time per softmax call right after the matmul, and on
   a quiet machine (the same calls back to back, numpy's BLAS threads asleep). OpenBLAS's threads spin after every
   call, so a softmax that waits for a thread of its own on a busy core stalls for milliseconds.
2. A GPT-2-shaped forward pass (124M shapes: 12 layers, 12 heads, 768 wide, 50257-word vocabulary, 256 tokens;
   random float32 weights) in plain numpy, written here, with its softmax swapped: time per forward pass and the
   share of it spent in softmax.
3. fastsoftmax while torch works in another Python thread (matmuls in a loop), against torch.softmax on the same
   input under the same load.
4. torch ops and softmax alternating in one thread: torch.matmul, then the softmax of its result.

Every number is a median over interleaved rounds (variant a, b, c, a, b, c, ...), so that the load of a shared
machine falls on all variants alike. Unset OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE before comparing against numpy.
"""
import argparse
import json
import os
import platform
import sys
import threading
import time

import numpy as np

import fastsoftmax


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
    except OSError:
        return platform.processor() or platform.machine()
    # "cpu family\t: 25": the keys are padded with tabs
    fields = {key.strip(): value.strip() for key, value in
              (line.split(":", 1) for line in info.splitlines()[:30] if ":" in line)}
    get = lambda k: fields.get(k, "?")  # noqa: E731
    return f"{get('model name')} (family {get('cpu family')} model {get('model')})"


def numpy_softmax(x):
    """The composition numpy programs write."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _fastsoftmax(backend=None, threads=None):
    def call(x):
        if threads is None:
            return fastsoftmax.softmax(x, axis=-1, backend=backend)
        previous = fastsoftmax.set_num_threads(threads)
        try:
            return fastsoftmax.softmax(x, axis=-1, backend=backend)
        finally:
            fastsoftmax.set_num_threads(previous)
    return call


def _torch_softmax():
    import torch
    return lambda x: torch.softmax(torch.from_numpy(x), dim=-1).numpy()


def softmax_variants(include_numba=True):
    """name -> softmax(x) over the last axis."""
    variants = {"numpy composition": numpy_softmax,
                "fastsoftmax": _fastsoftmax(),
                "fastsoftmax, 1 thread": _fastsoftmax(threads=1)}
    if include_numba and "numba" in fastsoftmax.backends():
        variants["fastsoftmax numba"] = _fastsoftmax("numba")
        variants["fastsoftmax numba, 1 thread"] = _fastsoftmax("numba", threads=1)
    try:
        variants["torch.softmax"] = _torch_softmax()
    except ImportError:
        pass
    return variants


def _interleaved(variants, measure, rounds):
    """{name: median over `rounds` of measure(fn)}, the variants taken in turn within each round."""
    samples = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            samples[name].append(measure(fn))
    return {name: float(np.median(s)) for name, s in samples.items()}


# ---- 1. the loop ------------------------------------------------------------------------------------------------

def matmul_loop(softmax, after_matmul, calls=144, seed=0):
    """Median seconds per softmax call over `calls` iterations of (s = q @ k.T; softmax(s))."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((256, 64)).astype(np.float32)
    k = rng.standard_normal((256, 64)).astype(np.float32)
    s = q @ k.T
    softmax(s)  # warm up (numba compiles, helper threads start)
    if not after_matmul:
        time.sleep(0.3)  # numpy's BLAS threads stop spinning and sleep: a quiet machine
    times = []
    for _ in range(calls):
        if after_matmul:
            s = q @ k.T
        start = time.perf_counter()
        softmax(s)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def section_loop(rounds):
    variants = softmax_variants()
    rows = {}
    for after in (False, True):
        results = _interleaved(variants, lambda fn: matmul_loop(fn, after), rounds)
        for name, t in results.items():
            rows.setdefault(name, {})["after matmul" if after else "quiet"] = t
    return rows


# ---- 2. a GPT-2-shaped forward pass -----------------------------------------------------------------------------

class GPT2:
    """GPT-2 124M shapes with random weights; the forward pass of a numpy inference program."""

    def __init__(self, n_layer=12, n_head=12, n_embd=768, n_vocab=50257, n_ctx=1024, seed=0):
        rng = np.random.default_rng(seed)
        w = lambda *shape: (rng.standard_normal(shape, dtype=np.float32) * 0.02)  # noqa: E731
        self.n_head = n_head
        self.wte, self.wpe = w(n_vocab, n_embd), w(n_ctx, n_embd)
        self.layers = [dict(ln1=(np.ones(n_embd, np.float32), np.zeros(n_embd, np.float32)),
                            w_qkv=w(n_embd, 3 * n_embd), b_qkv=np.zeros(3 * n_embd, np.float32),
                            w_proj=w(n_embd, n_embd), b_proj=np.zeros(n_embd, np.float32),
                            ln2=(np.ones(n_embd, np.float32), np.zeros(n_embd, np.float32)),
                            w_fc=w(n_embd, 4 * n_embd), b_fc=np.zeros(4 * n_embd, np.float32),
                            w_out=w(4 * n_embd, n_embd), b_out=np.zeros(n_embd, np.float32))
                       for _ in range(n_layer)]
        self.ln_f = (np.ones(n_embd, np.float32), np.zeros(n_embd, np.float32))

    @staticmethod
    def layer_norm(x, gain, bias, eps=1e-5):
        mean = x.mean(axis=-1, keepdims=True)
        var = x.var(axis=-1, keepdims=True)
        return gain * (x - mean) / np.sqrt(var + eps) + bias

    @staticmethod
    def gelu(x):
        return 0.5 * x * (1 + np.tanh(np.float32(np.sqrt(2 / np.pi)) * (x + np.float32(0.044715) * x ** 3)))

    def forward(self, tokens, softmax):
        n = len(tokens)
        x = self.wte[tokens] + self.wpe[:n]
        mask = np.triu(np.full((n, n), -1e10, np.float32), k=1)
        scale = np.float32(1 / np.sqrt(x.shape[1] // self.n_head))
        for p in self.layers:
            h = self.layer_norm(x, *p["ln1"]) @ p["w_qkv"] + p["b_qkv"]
            q, k, v = np.split(h, 3, axis=-1)
            heads = []
            for qh, kh, vh in zip(*(np.split(a, self.n_head, axis=-1) for a in (q, k, v))):
                heads.append(softmax(qh @ kh.T * scale + mask) @ vh)
            x = x + np.hstack(heads) @ p["w_proj"] + p["b_proj"]
            x = x + self.gelu(self.layer_norm(x, *p["ln2"]) @ p["w_fc"] + p["b_fc"]) @ p["w_out"] + p["b_out"]
        return self.layer_norm(x, *self.ln_f) @ self.wte.T


def section_forward(rounds, tokens=256):
    model = GPT2()
    ids = np.random.default_rng(1).integers(0, model.wte.shape[0], tokens)
    spent = {}

    def timed(name, fn):
        def call(x):
            start = time.perf_counter()
            y = fn(x)
            spent[name] += time.perf_counter() - start
            return y
        return call

    variants = softmax_variants()
    for fn in variants.values():
        model.forward(ids[:8], fn)  # warm up

    samples = {name: [] for name in variants}
    shares = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            spent[name] = 0.0
            start = time.perf_counter()
            model.forward(ids, timed(name, fn))
            total = time.perf_counter() - start
            samples[name].append(total)
            shares[name].append(spent[name] / total)
    return {name: {"forward pass": float(np.median(samples[name])), "softmax share": float(np.median(shares[name]))}
            for name in variants}


# ---- 3 and 4. torch -------------------------------------------------------------------------------------------------

def section_torch(rounds, calls=200):
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(fastsoftmax.get_num_threads())
    x = np.random.default_rng(2).standard_normal((256, 1000)).astype(np.float32)
    a = torch.randn(512, 512)
    variants = {"fastsoftmax": _fastsoftmax(), "torch.softmax": _torch_softmax()}

    def per_call(fn):
        fn(x)
        start = time.perf_counter()
        for _ in range(calls):
            fn(x)
        return (time.perf_counter() - start) / calls

    rows = {name: {} for name in variants}
    for name, t in _interleaved(variants, per_call, rounds).items():
        rows[name]["quiet"] = t

    stop = threading.Event()

    def torch_worker():
        while not stop.is_set():
            torch.matmul(a, a)

    worker = threading.Thread(target=torch_worker, daemon=True)
    worker.start()
    try:
        for name, t in _interleaved(variants, per_call, rounds).items():
            rows[name]["torch busy in another thread"] = t
    finally:
        stop.set()
        worker.join()

    def alternating(fn):
        times = []
        for _ in range(calls // 4):
            torch.matmul(a, a)
            start = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    for name, t in _interleaved(variants, alternating, rounds).items():
        rows[name]["after torch.matmul, same thread"] = t
    return rows


# ---- report ---------------------------------------------------------------------------------------------------------

def _fmt(seconds):
    return f"{seconds * 1e6:.1f} us" if seconds < 1e-3 else f"{seconds * 1e3:.2f} ms" if seconds < 1 else \
        f"{seconds:.2f} s"


def _table(rows, columns, fmt=_fmt):
    lines = ["| softmax | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name, row in rows.items():
        cells = [fmt(row[c]) if c in row and "share" not in c else f"{100 * row[c]:.1f}%" if c in row else "-"
                 for c in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument("--sections", default="loop,forward,torch", help="comma-separated: loop, forward, torch")
    args = parser.parse_args(argv)
    rounds = 3 if args.quick else 7
    sections = args.sections.split(",")
    results = {"cpu": _cpu_name(), "cores": os.cpu_count(), "threads": fastsoftmax.get_num_threads(),
               "python": sys.version.split()[0], "numpy": np.__version__, "fastsoftmax": fastsoftmax.__version__}
    print(f"{results['cpu']}, {results['threads']} threads; median over {rounds} interleaved rounds\n")
    if "loop" in sections:
        loop = results["loop"] = section_loop(rounds)
        print("1. s = q @ k.T (256x64 float32), then softmax(s, axis=-1); time per softmax call\n")
        print(_table(loop, ["quiet", "after matmul"]) + "\n")
    if "forward" in sections:
        fwd = results["forward"] = section_forward(max(2, rounds // 2))
        print("2. GPT-2 124M-shaped forward pass in numpy, 256 tokens, float32\n")
        print(_table(fwd, ["forward pass", "softmax share"]) + "\n")
    if "torch" in sections:
        tor = results["torch"] = section_torch(rounds)
        if tor is None:
            print("3-4. torch is not installed: skipped\n")
        else:
            print("3-4. softmax of 256x1000 float32 next to torch; time per call\n")
            print(_table(tor, ["quiet", "torch busy in another thread", "after torch.matmul, same thread"]) + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
