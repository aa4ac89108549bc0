"""What the distributed tests run, in one process (the reference) or in each of two processes
started by ``torch.multiprocessing`` with gloo (``worker``).

Every run trains the MultiDigits article model (seed 0) on 32 samples for 2 epochs of global
batches of 16 (4 steps), evaluating 24 test samples after each epoch. ``Checked`` wraps a
strategy and, under a process group, records after every step whether all processes hold
bit-identical parameters.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import traceback
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from mtlaug_lib.core.models import make_model
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training import distributed
from mtlaug_lib.training.loop import train
from mtlaug_lib.training.registry import make_strategy
from mtlaug_lib.training.strategies import Alternating
from mtlaug_lib.training.strategy import Strategy
from mtlaug_lib.training.weighting import Weighted

GLOBAL_BATCH = 16
EPOCHS = 2


class NaiveWeighted(Weighted):
    """The naive port: each process computes the weights from its own shard."""

    global_batch = False


# name -> strategy factory (a fresh strategy per run)
RUNS = {
    "joint": lambda: "joint",
    "alternating": lambda: "alternating",
    "alternating-random": lambda: "alternating-random",
    "sequential": lambda: "sequential",
    "mgda": lambda: "mgda",
    "pcgrad": lambda: "pcgrad",
    "cagrad": lambda: "cagrad",
    "imtl-g": lambda: "imtl-g",
    "gradnorm": lambda: "gradnorm",
    "mgda-parameters": lambda: Weighted("mgda", source="parameters"),
    "uncertainty": lambda: "uncertainty",
    "dwa": lambda: Weighted("dwa", window=1),
    "rlw": lambda: "rlw",
    "naive-mgda": lambda: NaiveWeighted("mgda"),
    "naive-uncertainty": lambda: NaiveWeighted("uncertainty"),
}


def digest(model: nn.Module) -> str:
    h = hashlib.sha1()
    for p in model.parameters():
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


class Checked(Strategy):
    """``inner``, and after each step: do all processes hold the same parameters?"""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.ddp = inner.ddp
        self.optimizers = inner.optimizers
        self.name = inner.name
        self.identical: list[bool] = []

    def setup(self, loss_fn):
        self.inner.setup(loss_fn)

    def step(self, model, batch, loss_fn, optimizer, step):
        stats = self.inner.step(model, batch, loss_fn, optimizer, step)
        bare = getattr(model, "module", model)
        params = list(bare.parameters())
        method = getattr(self.inner, "method", None)
        if method is not None:
            params += method.parameters()  # a method's own state is part of the replica
        mine = digest(nn.ParameterList(params))
        self.identical.append(len(set(distributed.gather(mine))) == 1)
        return stats

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def data() -> tuple[MultiDigits, MultiDigits]:
    return MultiDigits("train", size=32, seed=0), MultiDigits("test", size=24, seed=0)


def run(name: str, batch_size: int = GLOBAL_BATCH, **options: Any) -> dict[str, Any]:
    """One run of ``RUNS[name]``: final parameters, history, per-step replica checks."""
    tasks = multidigits_tasks()
    train_data, test_data = data()
    model = make_model(tasks, seed=0)
    checked = Checked(make_strategy(RUNS[name]()))
    history = train(model, tasks, TensorLoader(train_data, batch_size, shuffle=True, seed=0),
                    TensorLoader(test_data, 12), epochs=EPOCHS, strategy=checked,
                    progress=False, **options)
    method = getattr(checked.inner, "method", None)
    return {"state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "method": [p.detach().clone() for p in method.parameters()] if method else [],
            "history": history.to_dict(), "identical": checked.identical}


class Interrupt(Exception):
    pass


def _stop_after_first_epoch(history) -> None:
    if history.epochs == 1:
        raise Interrupt


def resumed(name: str, path: Path) -> dict[str, Any]:
    """``run(name)`` stopped after its first epoch's checkpoint, then resumed from it."""
    try:
        run(name, checkpoint=path, on_epoch_end=_stop_after_first_epoch)
    except Interrupt:
        pass
    return run(name, checkpoint=path, resume=True)


def pitfall() -> str:
    """Plain DDP around the bare model with an alternating step: the heads that did not run
    have no gradient. Returns the error (or '' if there was none)."""
    tasks = multidigits_tasks()
    train_data, _ = data()
    model = make_model(tasks, seed=0)
    wrapped = nn.parallel.DistributedDataParallel(model)
    strategy = Alternating()
    from mtlaug_lib.core.losses import MultiTaskLoss
    loss_fn = MultiTaskLoss(tasks)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = iter(TensorLoader(train_data, 8))
    try:
        for step in range(2):
            # forward_task cannot see through DDP: the whole model runs, one head's loss is
            # used, and the other heads' gradients never arrive.
            strategy._update_task(wrapped, next(batches), loss_fn, optimizer, step,
                                  strategy.next_task(strategy.tasks_in_order(loss_fn)))
    except RuntimeError as error:
        return str(error)
    return ""


def worker(rank: int, world: int, port: int, out: str, names: list[str]) -> None:
    """One process of the distributed tests: every run of ``names``, the indivisible-batch
    error, checkpoint + resume, and the pitfall (last); rank 0 saves what it gathered."""
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    dist.init_process_group("gloo", rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=30))
    results: dict[str, Any] = {}
    try:
        for name in names:
            result = run(name)
            result["weights_by_rank"] = distributed.gather(result["history"]["weights"])
            result["method_by_rank"] = distributed.gather(result["method"])
            results[name] = result
        try:
            run("joint", batch_size=15)
            results["indivisible"] = ""
        except ValueError as error:
            results["indivisible"] = str(error)
        path = Path(out).with_suffix(".ckpt")
        results["resumed"] = resumed("joint", path)
        results["pitfall"] = pitfall()
    except Exception:  # report it to the test instead of a bare exit code
        results["error"] = traceback.format_exc()
    finally:
        if rank == 0:
            torch.save(results, out)
        dist.destroy_process_group()
