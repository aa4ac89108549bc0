"""What the benchmarks share: the machine and versions they record, writing a result, timing
training steps side by side in rotated rounds, and a loader that yields the first batches of an
epoch.

Each benchmark puts this folder on ``sys.path`` and imports from here, so it works both as
``python benchmarks/bench_x.py`` and when a smoke test loads it by path.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlaug_lib.data.loaders import TensorLoader


def machine() -> dict[str, object]:
    try:
        cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines()
                      if line.startswith("Model name")), platform.processor())
    except OSError:
        model = platform.processor()
    return {
        "cpu": model, "cores": torch.get_num_threads(), "python": platform.python_version(),
        "torch": torch.__version__, "numpy": np.__version__, "platform": platform.platform(),
    }


def record(result: dict[str, Any], out: Path | None) -> dict[str, Any]:
    """Print ``result`` as JSON and, if ``out`` is given, write it there; return it."""
    print(json.dumps(result, indent=2))
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2) + "\n")
    return result


def joint_step(model: torch.nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]],
               batch: dict[str, torch.Tensor]) -> Callable[[], None]:
    """One joint training step of ``model`` on the fixed ``batch`` (forward, ``loss_fn``'s
    ``"total"``, backward, Adam at lr 1e-3), as a function to time."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()

    def step() -> None:
        loss = loss_fn(model(batch["image"]), batch)["total"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def time_steps(step: Callable[[], object], steps: int) -> float:
    """Seconds per step over ``steps`` calls of ``step``."""
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - start) / steps


def rotated_rounds(contenders: Mapping[str, Callable[[], object]], rounds: int,
                   steps: int) -> dict[str, list[float]]:
    """Seconds per step of each contender, once per round, after a warm-up of 2 steps each
    (thread pools, allocator, first-call costs). The contenders' order rotates from round to
    round, so a drift of the machine's speed does not favour the one that always runs first."""
    names = list(contenders)
    for name in names:
        time_steps(contenders[name], 2)
    per: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            per[name].append(time_steps(contenders[name], steps))
    return per


def step_summary(per: Mapping[str, list[float]], reference: str,
                 ratio_key: str) -> dict[str, dict[str, float]]:
    """Median, min and max milliseconds per step of each contender, and the ratio of its median
    to ``reference``'s (under ``ratio_key``)."""
    ref = statistics.median(per[reference])

    def summary(values: list[float]) -> dict[str, float]:
        med = statistics.median(values)
        return {"median_ms": round(1000 * med, 2), "min_ms": round(1000 * min(values), 2),
                "max_ms": round(1000 * max(values), 2), ratio_key: round(med / ref, 2)}

    return {name: summary(values) for name, values in per.items()}


class FirstBatches:
    """The first ``n`` batches of ``loader``'s epoch ``epoch`` order, as a one-epoch loader
    (``train`` calls ``set_epoch(0)``; this keeps its own epoch)."""

    def __init__(self, loader: TensorLoader, n: int, epoch: int) -> None:
        self.loader, self.n, self.epoch = loader, min(n, len(loader)), epoch

    def __len__(self) -> int:
        return self.n

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(self.epoch)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        for i, batch in enumerate(self.loader):
            if i == self.n:
                return
            yield batch
