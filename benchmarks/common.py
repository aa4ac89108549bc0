"""What the benchmarks share: the machine and versions they record, writing a result, and a
loader that yields the first batches of an epoch.

Each benchmark puts this folder on ``sys.path`` and imports from here, so it works both as
``python benchmarks/bench_x.py`` and when a smoke test loads it by path.
"""

from __future__ import annotations

import json
import platform
import subprocess
from collections.abc import Iterator
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
