"""benchmarks/complexity_data_cost.py reads C(T, δ) off a checkpoint's programs and bounds the collapse any stage
can show at δ by C / harness; checked on hand-made programs whose C and bound are worked out by hand."""

from __future__ import annotations

import importlib.util

import pandas as pd
from conftest import REPO

_spec = importlib.util.spec_from_file_location("data_cost", REPO / "benchmarks" / "complexity_data_cost.py")
data_cost = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data_cost)


def test_bound_is_the_cheapest_reaching_program_over_the_harness():
    rows = pd.DataFrame([  # harness 1,000 bits; driver bits are left out of C, as in complexity_control.py
        {"estimator": "zero_shot", "setting": "", "family": "inference", "payload_bits": 0.0, "score": 0.05},
        {"estimator": "icl", "setting": "k=8", "family": "inference", "payload_bits": 500.0, "score": 0.25},
        {"estimator": "prequential", "setting": "N=64", "family": "data", "payload_bits": 9_000.0, "score": 0.45},
        {"estimator": "prequential", "setting": "N=128", "family": "data", "payload_bits": 14_000.0, "score": 0.40},
        {"estimator": "prequential", "setting": "N=256", "family": "data", "payload_bits": 30_000.0, "score": 0.62},
    ]).assign(harness_bits=1_000.0, driver_bits=4_000.0)
    found = data_cost.by_delta(rows, [0.2, 0.4, 0.6, 0.7])
    got = {r["delta"]: (r["program"], r["bits"], r["collapse_bound"]) for r in found}
    assert got[0.2] == ("icl k=8", 1_500.0, 1.5)
    assert got[0.4] == ("prequential N=64", 10_000.0, 10.0)  # N=128 reaches it too, but costs more
    assert got[0.6] == ("prequential N=256", 31_000.0, 31.0)
    assert got[0.7] == (None, None, None)  # nothing reaches it: no bound
