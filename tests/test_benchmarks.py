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


def test_bench_dense_model_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "dense_model.json"
    result = _load("bench_dense_model").main(
        ["--widths", "2", "--heads", "1x1", "--sizes", "8", "--threads", "1", "--batch-size",
         "2", "--steps", "1", "--rounds", "1", "--out", str(out)])
    times = json.loads(out.read_text())["step_time (median and range over rounds)"]["1 thread"]
    assert set(times) == {"reference (MultiDigits, 28)", "width 2, 1x1 heads, 8 x 8"}
    assert result["costs"]["width 2, 1x1 heads"]["macs_per_image"]["8"]["backbone"] > 0


def test_bench_scenes_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "scenes.json"
    result = _load("bench_scenes").main(
        ["--size", "8", "--repeats", "1", "--size-repeats", "1", "--image-sizes", "16",
         "--threads", "1", "--out", str(out)])
    recorded = json.loads(out.read_text())
    assert recorded["size"] == 8 and set(recorded["timings"]["1 thread"]["by_image_size"]) == {
        "16"}
    memory = result["stored (images, semantic, depth, normals) by image size"]["16"]
    assert memory["bytes_per_sample"] == 12 * 16 * 16


def test_bench_architectures_runs_and_records(tmp_path: Path) -> None:
    out = tmp_path / "architectures.json"
    result = _load("bench_architectures").main(
        ["--size", "8", "--batch-size", "2", "--width", "2", "--branch-points", "0", "8",
         "--threads", "1", "--steps", "1", "--rounds", "1", "--out", str(out)])
    times = json.loads(out.read_text())["step_time (median and range over rounds)"]["1 thread"]
    assert set(times) == {"hard", "branched (branch_point=0)", "branched (branch_point=8)",
                          "cross_stitch", "mtan", "mmoe", "mmoe (experts=2, full width)"}
    assert times["hard"]["x_hard"] == 1.0
    # branch point 8 of 8 blocks is hard sharing: the same parameters and MACs
    costs = result["costs"]
    assert costs["branched (branch_point=8)"]["parameters"] == costs["hard"]["parameters"]
    assert costs["branched (branch_point=8)"]["macs_per_image"] == costs["hard"][
        "macs_per_image"]
    # two full-width experts: each the backbone's size (the heads and gates are small)
    two = costs["mmoe (experts=2, full width)"]["parameters"]["total"]
    hard = costs["hard"]["parameters"]["total"]
    assert 2 * hard * 0.9 < two < 2 * hard
    memory = result["peak_memory (resident, above the memory before the first step; 1 thread)"]
    assert set(memory) == set(times)
