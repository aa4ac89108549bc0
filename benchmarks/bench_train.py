"""Benchmark: the library's training loop against a bare hand-written loop (the issue asks an
overhead of at most 10% of images/s).

Both contenders train the same model (``make_model(multidigits_tasks(), seed=0)``, fresh each
round) on the same data (MultiDigits train, ``TensorLoader``) with the same batch size and the
same optimizer (Adam, constant learning rate), for one epoch per round. The rounds alternate the
contenders (their order rotates each round), so a slow spell on this shared machine hits all of
them; the result is the median images/s of each and the median of the per-round ratios.

Contenders:
    bare: ``for batch in loader: out = model(x); loss = sum of cross entropies; zero_grad;
          backward; step``;
    library: ``mtlaug_lib.training.loop.train(..., test_iter=None, schedule=None, progress=False)``;
    library_tqdm: the same with ``progress=True`` (the tqdm bar on; skip it with --no-tqdm).

Since both do the same arithmetic in the same order, they end each round with the same weights;
the result records whether they did (a check that the comparison is fair).

    python benchmarks/bench_train.py [--size 4096] [--batch-size 128] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mtlaug_lib.core.models import make_model
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training.loop import train

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent




def bare_loop(model: torch.nn.Module, loader: TensorLoader, optimizer: torch.optim.Optimizer,
              tasks: dict) -> None:
    """One epoch written by hand: the reference the library is measured against."""
    model.train()
    for batch in loader:
        out = model(batch["image"])
        loss = sum(F.cross_entropy(out[t], batch[t]) for t in tasks)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def library_loop(progress: bool) -> Callable:
    def run(model, loader, optimizer, tasks) -> None:
        train(model, tasks, loader, None, epochs=1, optimizer=optimizer, schedule=None,
              progress=progress, desc="library_tqdm")

    return run


def one_round(contender: Callable, loader: TensorLoader, lr: float,
              max_batches: int | None = None) -> tuple[float, dict[str, torch.Tensor]]:
    """Train a fresh model for one epoch (epoch 0's batch order, as ``train`` sets it, for
    every contender and round); return the wall time and the final weights."""
    tasks = multidigits_tasks()
    model = make_model(tasks, seed=0)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loader.set_epoch(0)
    if max_batches is not None:  # warm-up: a few batches only
        loader = _Head(loader, max_batches)
    start = time.perf_counter()
    contender(model, loader, optimizer, tasks)
    return time.perf_counter() - start, model.state_dict()


class _Head:
    """The first ``n`` batches of a loader (keeps ``len`` and ``set_epoch``)."""

    def __init__(self, loader: TensorLoader, n: int) -> None:
        self.loader, self.n = loader, min(n, len(loader))

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __iter__(self):
        for i, batch in enumerate(self.loader):
            if i == self.n:
                return
            yield batch


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="training samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=5, help="epochs per contender")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--no-tqdm", action="store_true", help="skip the tqdm contender")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "train.json")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.size < 1 or args.batch_size < 1:
        parser.error("--size, --batch-size and --rounds must be positive")

    data = MultiDigits("train", size=args.size, seed=0)
    loader = TensorLoader(data, args.batch_size, shuffle=True, seed=0)
    contenders: dict[str, Callable] = {"bare": bare_loop, "library": library_loop(False)}
    if not args.no_tqdm:
        contenders["library_tqdm"] = library_loop(True)
    names = list(contenders)

    for name in names:  # warm-up: thread pools, allocator, first-call costs
        one_round(contenders[name], loader, args.lr, max_batches=2)

    seconds: dict[str, list[float]] = {name: [] for name in names}
    same_weights = True
    for r in range(args.rounds):
        order = names[r % len(names):] + names[:r % len(names)]
        finals = {}
        for name in order:
            s, finals[name] = one_round(contenders[name], loader, args.lr)
            seconds[name].append(s)
        ref = finals["bare"]
        same_weights &= all(
            torch.equal(ref[k], finals[name][k]) for name in names for k in ref
        )

    images = len(data)  # per round
    rate = {name: [images / s for s in seconds[name]] for name in names}
    median = {name: statistics.median(rate[name]) for name in names}
    ratios = {
        name: statistics.median(a / b for a, b in zip(rate[name], rate["bare"], strict=True))
        for name in names if name != "bare"
    }
    result: dict[str, object] = {
        "benchmark": "training loop: mtlaug_lib.training.loop.train vs a bare hand-written loop",
        "model": "make_model(multidigits_tasks(), seed=0): seed backbone, 2 Classifier heads, "
                 "1 DenseHead",
        "data": f"MultiDigits('train', size={args.size}), TensorLoader(batch_size="
                f"{args.batch_size}, shuffle=True)",
        "optimizer": f"Adam(lr={args.lr}), constant (library: schedule=None)",
        "rounds": args.rounds,
        "images_per_round": images,
        "images_per_s (median)": {name: round(v, 1) for name, v in median.items()},
        "images_per_s (each round)": {name: [round(v, 1) for v in rate[name]] for name in names},
        "ratio_to_bare (median of per-round ratios)": {k: round(v, 4) for k, v in ratios.items()},
        "overhead_pct (1 - ratio)": {k: round(100 * (1 - v), 2) for k, v in ratios.items()},
        "ratio_of_medians": {
            k: round(median[k] / median["bare"], 4) for k in names if k != "bare"
        },
        "library_overhead_at_most_10pct": ratios["library"] >= 0.9,
        "same_final_weights": same_weights,
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
