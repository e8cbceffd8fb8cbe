"""The benchmark case table, shared by the pytest-benchmark suite and `python -m fastsoftmax bench`.

The table itself lives in fastsoftmax/_bench.py so that the installed command line has it too."""
from fastsoftmax._bench import CASES, FUNCTIONS, QUICK_CASES, Case, case_id, make_input, shape_for

__all__ = ["CASES", "FUNCTIONS", "QUICK_CASES", "Case", "case_id", "make_input", "shape_for"]
