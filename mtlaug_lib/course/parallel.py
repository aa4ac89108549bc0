"""Processes started from a notebook: what notebook 08 runs to show data parallelism on a CPU.

``launch(fn, nprocs, *args)`` starts ``nprocs`` processes with ``torch.multiprocessing``
(spawn: a fresh interpreter each, so ``fn`` must be a module's function, not one defined in a
notebook), puts them in one gloo process group, runs ``fn(*args)`` in each, and returns their
results in rank order. It is what ``torchrun`` does for a script, for the length of one call.

``replica_runs`` is such a function: it trains the MultiDigits article model with each of a
list of strategies, and measures after every step how far the replicas' parameters are from
rank 0's. ``PerShardWeighted`` is the naive port of a weighting method (each process weights
its own shard), kept here to show what goes wrong; never train with it.
"""

from __future__ import annotations

import datetime
import os
import socket
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from ..core.checks import check_positive_int
from ..core.models import make_model
from ..data.loaders import TensorLoader
from ..data.multidigits import MultiDigits, multidigits_tasks
from ..training import distributed
from ..training.loop import train
from ..training.registry import make_strategy
from ..training.strategy import Strategy
from ..training.weighting import Weighted


def free_port() -> int:
    """A TCP port no process listens on now (for the process group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(rank: int, nprocs: int, port: int, folder: str, fn: Callable[..., Any],
           args: tuple) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)  # one core per process, as torchrun does by default
    dist.init_process_group("gloo", rank=rank, world_size=nprocs,
                            timeout=datetime.timedelta(seconds=60))
    try:
        result = fn(*args)
        torch.save(result, Path(folder) / f"{rank}.pt")
    finally:
        dist.destroy_process_group()


def launch(fn: Callable[..., Any], nprocs: int, *args: Any, timeout: float = 300) -> list[Any]:
    """``fn(*args)`` in each of ``nprocs`` processes of one gloo group; their results, by rank.

    ``fn`` must be importable (a module's top-level function) and its result made of tensors,
    numbers, strings, lists and dicts. A process that fails stops the call with its error; a
    call that takes longer than ``timeout`` seconds is stopped and its processes killed.
    """
    check_positive_int("nprocs", nprocs)
    with tempfile.TemporaryDirectory() as folder:
        context = mp.start_processes(_entry, args=(nprocs, free_port(), folder, fn, args),
                                     nprocs=nprocs, join=False, start_method="spawn")
        deadline = time.monotonic() + timeout
        try:
            while not context.join(timeout=1):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the {nprocs} processes did not finish in {timeout} s")
        finally:
            for process in context.processes:  # never leave one behind
                if process.is_alive():
                    process.kill()
                    process.join()
        return [torch.load(Path(folder) / f"{r}.pt", weights_only=True) for r in range(nprocs)]


class PerShardWeighted(Weighted):
    """The naive port of a weighting method: each process computes the task weights from its
    own shard, then the gradients are averaged. For teaching only (notebook 08)."""

    global_batch = False


class _Watched(Strategy):
    """``inner``, and after each step the largest difference between this process's
    parameters (and the method's own) and rank 0's."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.ddp, self.optimizers, self.name = inner.ddp, inner.optimizers, inner.name
        self.spread: list[float] = []

    def setup(self, loss_fn):  # noqa: D102
        self.inner.setup(loss_fn)

    def step(self, model, batch, loss_fn, optimizer, step):  # noqa: D102
        stats = self.inner.step(model, batch, loss_fn, optimizer, step)
        params = [*getattr(model, "module", model).parameters()]
        method = getattr(self.inner, "method", None)
        params += method.parameters() if method is not None else []
        flat = torch.cat([p.detach().reshape(-1) for p in params])
        if distributed.is_distributed():
            first = flat.clone()
            dist.broadcast(first, src=0)
            gap = (flat - first).abs().max()
            dist.all_reduce(gap, op=dist.ReduceOp.MAX)
            self.spread.append(gap.item())
        else:
            self.spread.append(0.0)
        return stats


def replica_runs(
    runs: Sequence[tuple[str, str, bool]], size: int = 256, batch: int = 32, epochs: int = 2,
    lr: float = 3e-3,
) -> dict[str, dict[str, Any]]:
    """Train the MultiDigits article model (seed 0) once per ``(label, strategy, naive)``:
    ``size`` samples, global batches of ``batch``, ``epochs`` epochs, in this process or in
    each process of a group (as ``launch`` starts). With ``naive``, the weighting method
    ``strategy`` runs as ``PerShardWeighted``.

    Returns ``{label: {"parameters": all the model's parameters and the method's own, flat;
    "spread": per step, the largest difference from rank 0's (0 in one process)}}``.
    """
    tasks = multidigits_tasks()
    data = MultiDigits("train", size=size)
    out = {}
    for label, name, naive in runs:
        model = make_model(tasks, seed=0)
        watched = _Watched(PerShardWeighted(name) if naive else make_strategy(name))
        train(model, tasks, TensorLoader(data, batch, shuffle=True, seed=0), epochs=epochs,
              lr=lr, strategy=watched, progress=False)
        method = getattr(watched.inner, "method", None)
        params = [*model.parameters(), *(method.parameters() if method is not None else [])]
        out[label] = {"parameters": torch.cat([p.detach().reshape(-1) for p in params]),
                      "spread": watched.spread}
    return out


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    """The largest absolute difference between two flat parameter tensors."""
    return (a - b).abs().max().item()


__all__ = ["PerShardWeighted", "free_port", "launch", "max_difference", "replica_runs"]
