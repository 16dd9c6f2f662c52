"""`make bench` keeps working: every measurement runs at small sizes. No timing is asserted here."""

import importlib.util

from helpers import ROOT


def test_every_benchmark_runs_in_quick_mode(tmp_path):
    spec = importlib.util.spec_from_file_location("bench_run", ROOT / "bench" / "run.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    results = bench.run_quick(tmp_path / "quick.json")
    assert not results["errors"], results["errors"]
    assert results["evaluation"]["equivalence"]["identical"], "the floor program must create the same resources"
