"""Benchmark: how long MultiDigits takes to generate (the issue asks 10,000 samples in <= 2 s).

Measures, in one run, the one-off cost of loading scikit-learn's digits and resampling them,
and the composition of 10,000 training samples (median over repeats), against a per-sample
Python loop over 36 x 36 canvases that does the same work (the obvious way to write it).

    python benchmarks/bench_data.py [--repeats 5] [--size 10000] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from mtlaug_lib.data.multidigits import CANVAS, DIGIT, RIGHT_OFFSET, MultiDigits, compose_pairs

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import machine, record  # noqa: E402


def loop_compose(digits: torch.Tensor, pairs: torch.Tensor) -> np.ndarray:
    """The reference: one canvas per sample in NumPy (grey images only: a lower bound)."""
    pick = [(2 * i + 1) * CANVAS // (2 * DIGIT) for i in range(DIGIT)]
    d = digits.numpy()
    out = np.empty((len(pairs), DIGIT, DIGIT), dtype=np.uint8)
    for k, (a, b) in enumerate(pairs.tolist()):
        canvas = np.zeros((CANVAS, CANVAS), dtype=np.uint8)
        canvas[:DIGIT, :DIGIT] = d[a]
        r = RIGHT_OFFSET
        canvas[r:r + DIGIT, r:r + DIGIT] = np.maximum(canvas[r:r + DIGIT, r:r + DIGIT], d[b])
        out[k] = canvas[np.ix_(pick, pick)]
    return out


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)




def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "data.json")
    args = parser.parse_args(argv)

    # The first call loads scikit-learn's digits (import included); later calls reuse them.
    t = time.perf_counter()
    digits, labels = MultiDigits.source_digits()
    first_load = time.perf_counter() - t

    vectorised = median_seconds(lambda: MultiDigits("train", size=args.size), args.repeats)
    pairs = torch.randint(len(digits), (args.size, 2), generator=torch.Generator().manual_seed(0))
    loop = median_seconds(lambda: loop_compose(digits, pairs), max(1, args.repeats // 2))
    grey = median_seconds(
        lambda: compose_pairs(digits, labels, args.size, torch.Generator(), tint=False),
        args.repeats,
    )
    result = {
        "benchmark": "MultiDigits generation",
        "size": args.size,
        "repeats": args.repeats,
        "source_load_s (once per process, sklearn import included)": round(first_load, 3),
        "multidigits_s (median)": round(vectorised, 3),
        "first_dataset_total_s": round(first_load + vectorised, 3),
        "compose_grey_vectorised_s (median)": round(grey, 3),
        "compose_grey_python_loop_s (median)": round(loop, 3),
        "loop_over_vectorised_ratio": round(loop / grey, 1),
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
