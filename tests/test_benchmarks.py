"""Smoke tests: the benchmarks still run (at a tiny size; no timing is asserted)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_data_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "data.json"
    result = _load("bench_data").main(["--size", "64", "--repeats", "1", "--out", str(out)])
    assert json.loads(out.read_text())["size"] == 64
    assert result["machine"]["torch"]


def test_loop_reference_equals_the_library() -> None:
    import torch

    from mtlaug_lib.data.multidigits import MultiDigits, compose_pairs

    bench = _load("bench_data")
    digits, labels = MultiDigits.source_digits()
    out = compose_pairs(digits, labels, 32, torch.Generator().manual_seed(1), tint=False)
    ref = bench.loop_compose(digits, out["sources"])
    assert torch.equal(torch.from_numpy(ref), out["images"][:, 0])


def test_bench_audit_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "audit.json"
    result = _load("bench_audit").main(["--rounds", "1", "--out", str(out)])
    assert out.exists() and set(result["audit_s (median)"]) == set(
        result["kinds_only_s (median)"])
    assert all(s > 0 for s in result["audit_s (median)"].values())
