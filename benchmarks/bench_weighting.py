"""Benchmark: the step time of every weighting method against equal weighting, in one run.

Every contender trains the same model (``make_model(multidigits_tasks(), seed=0)``: left, right
and mask, fresh each round) on the same batches (MultiDigits train, ``TensorLoader``; round r
takes the first ``--steps-per-round`` batches of epoch r's order) with one Adam at a constant
learning rate, through ``train(..., strategy=Weighted(method, source=...))``. A contender is a
method, and for the methods that use task gradients, a method and a source of gradients
(``name@representation``: one backward through the backbone; ``name@parameters``: one per
task). ``joint`` (the plain strategy) is there as a reference for ``equal``.

Rounds are short and many, and rotate the contenders' order, because other jobs on this shared
2-core machine change its speed several-fold within a minute: each contender's ratio to
``equal`` is the median over rounds of the ratio within a round. The issue asks that the
representation-gradient variants cost at most 1.5x equal weighting per step.

    python benchmarks/bench_weighting.py [--size 1024] [--batch-size 128] [--rounds 8]
        [--steps-per-round 4] [--methods equal,mgda,...] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from mtlaug_lib.core.models import make_model
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training.gradient_source import GRADIENT_SOURCES
from mtlaug_lib.training.loop import History, train
from mtlaug_lib.training.weighting import WEIGHTING_METHODS, Weighted

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import FirstBatches, machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent
BASELINE = "equal"
LIMIT = 1.5  # the bound for the representation-gradient variants






def contenders(methods: list[str]) -> dict[str, object]:
    """``{label: strategy factory}``: every method, with each source where it takes one."""
    out: dict[str, object] = {"joint": lambda: "joint"}
    for name in methods:
        options = {"weights": {t: 1.0 for t in multidigits_tasks()}} if name == "fixed" else {}
        if getattr(WEIGHTING_METHODS[name], "uses_gradients", False):
            for source in GRADIENT_SOURCES:
                out[f"{name}@{source}"] = (
                    lambda n=name, s=source, o=options: Weighted(n, source=s, **o))
        else:
            out[name] = lambda n=name, o=options: Weighted(n, **o)
    return out


def one_round(strategy, loader, lr: float) -> tuple[float, History]:
    """One pass over ``loader`` with a fresh model: wall seconds, the run's history."""
    tasks = multidigits_tasks()
    model = make_model(tasks, seed=0)
    start = time.perf_counter()
    history = train(model, tasks, loader, None, epochs=1, lr=lr, schedule=None,
                    strategy=strategy, progress=False)
    return time.perf_counter() - start, history


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="training samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps-per-round", type=int, default=4,
                        help="batches per contender and round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--methods", default=",".join(WEIGHTING_METHODS),
                        help=f"comma-separated methods from {tuple(WEIGHTING_METHODS)}")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "weighting.json")
    args = parser.parse_args(argv)
    if min(args.rounds, args.size, args.batch_size, args.steps_per_round) < 1:
        parser.error("--size, --batch-size, --rounds and --steps-per-round must be positive")
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in WEIGHTING_METHODS]
    if unknown:
        parser.error(
            f"--methods: unknown {unknown}, expected names from {tuple(WEIGHTING_METHODS)}")
    if BASELINE not in methods:
        methods.insert(0, BASELINE)

    data = MultiDigits("train", size=args.size, seed=0)
    loader = TensorLoader(data, args.batch_size, shuffle=True, seed=0)
    factories = contenders(methods)
    names = list(factories)
    for name in names:  # warm-up: thread pools, allocator, first-call costs
        one_round(factories[name](), FirstBatches(loader, 1, 0), args.lr)

    seconds: dict[str, list[float]] = {name: [] for name in names}
    work: dict[str, dict[str, int]] = {}
    for r in range(args.rounds):
        batches = FirstBatches(loader, args.steps_per_round, r)
        for name in names[r % len(names):] + names[:r % len(names)]:
            s, history = one_round(factories[name](), batches, args.lr)
            seconds[name].append(s / history.steps)
            work[name] = {"steps": history.steps, "forward": history.forward,
                          "backward": history.backward, "images": history.images}

    ratio = {name: round(statistics.median(
        a / b for a, b in zip(seconds[name], seconds[BASELINE], strict=True)), 3)
        for name in names}
    within = {name: ratio[name] <= LIMIT for name in names if name.endswith("@representation")}
    result: dict[str, object] = {
        "benchmark": "weighting methods: step time against equal weighting, same model and data",
        "model": "make_model(multidigits_tasks(), seed=0) (tasks left, right, mask)",
        "data": f"MultiDigits('train', size={args.size}), TensorLoader(batch_size="
                f"{args.batch_size}, shuffle=True)",
        "optimizer": f"Adam(lr={args.lr}), one shared, constant (schedule=None)",
        "rounds": args.rounds,
        "steps_per_round": batches.n,
        "work_per_round": work,
        "ms_per_step (median)": {k: round(1000 * statistics.median(v), 2)
                                 for k, v in seconds.items()},
        "ratio_to_equal (median of per-round ratios)": ratio,
        f"representation_within_{LIMIT}x": within,
        "all_representation_within": all(within.values()),
        "ms_per_step (each round)": {k: [round(1000 * x, 2) for x in v]
                                     for k, v in seconds.items()},
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
