"""The benchmark and calibration tooling behind `python -m fastsoftmax bench|calibrate`, `benchmarks/` and the tests.

    cases      the case table: shapes, dtypes, inputs, bytes a call moves
    peers      one way to call each peer: the backends, "auto", scipy, torch, onnxruntime, jax, copy
    exact      the long-double reference: softmax, log_softmax, logsumexp, the training ops, ULP errors
    accuracy   a result against the reference on sampled lines: error bounds, verdicts, checks
    timing     median time of a call; priming fresh memory before timing
    bench      the bench command: time and check every case, function and peer
    report     the results as a text table, markdown tables, a plot; progress on stderr
    calibrate  measure the backend crossovers and write the dispatch rules

Nothing heavy is imported at module level: scipy, torch, onnxruntime, jax and matplotlib are imported by the call
that needs them.
"""
