"""Benchmark: two processes (``torchrun``, gloo) against one on this CPU, same global batch:
images per second and the bytes all-reduced per step, for joint and alternating training and
every weighting method.

Every contender trains the same model (``make_model(multidigits_tasks(), seed=0)``: left, right
and mask, fresh each round) on the same global batches (MultiDigits train, ``TensorLoader``;
round r takes the first ``--steps-per-round`` batches of epoch r's order) with one Adam at a
constant learning rate, through ``train``; no evaluation. One process runs here with ``--threads``
threads, and with one (on this shared machine a second intra-op thread stalls whenever another
job holds a core, and every parallel region waits for it); the two processes run under
``torchrun --nproc-per-node 2`` with ``--threads // 2`` threads each (the same cores), each on
its half of every global batch. A
step's time under two processes is the slower process's (they wait for each other at every
all-reduce). Rounds rotate the contenders' order, because other jobs on this shared machine
change its speed; the figures are medians over rounds.

Bytes per step, per process: what ``training.distributed`` all-reduced (counted by
``CommLog``: the gradient buckets of the strategies that reduce their own gradients, the
Gram matrix or task gradients of the gradient methods, the T losses, the history's T + 1
floats), plus, for the strategies that run in DistributedDataParallel (joint and the
loss-based methods), the model's gradients (DDP all-reduces every parameter's gradient each
step; counted from the parameter count). The start's broadcast of the weights is left out.
Each round measures one process, then launches the N processes for the same round (each
measurement warms up first), so that the machine's changing load hits both alike.
A ring all-reduce sends and receives about ``2 (N - 1) / N`` times these bytes per process.

    python benchmarks/bench_distributed.py [--size 1024] [--batch-size 64] [--rounds 3]
        [--steps-per-round 3] [--threads 2] [--methods joint,alternating,equal,...]
        [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from mtlaug_lib.core.models import make_model
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training import distributed
from mtlaug_lib.training.loop import History, train
from mtlaug_lib.training.registry import make_strategy
from mtlaug_lib.training.strategy import Strategy
from mtlaug_lib.training.weighting import WEIGHTING_METHODS, Weighted

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import FirstBatches, machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent
LINK_GBPS = (10.0, 100.0)  # PCIe-class and NVLink-class links, for the bound on a GPU machine


def contenders(names: list[str]) -> dict[str, Callable[[], Strategy]]:
    """``{label: strategy factory}``: joint, alternating, and each weighting method (the
    gradient methods with the representation source, and MGDA also with the parameters)."""
    out: dict[str, Callable[[], Strategy]] = {}
    tasks = list(multidigits_tasks())
    for name in names:
        if name in ("joint", "alternating"):
            out[name] = lambda n=name: make_strategy(n)
        elif name == "fixed":
            out[name] = lambda: Weighted("fixed", weights=dict.fromkeys(tasks, 1.0))
        else:
            out[name] = lambda n=name: Weighted(n)
    if "mgda" in names:
        out["mgda@parameters"] = lambda: Weighted("mgda", source="parameters")
    return out


def one_round(strategy: Strategy, loader: FirstBatches, lr: float) -> tuple[float, int, History]:
    """One pass over ``loader`` with a fresh model: the slowest process's wall seconds, the
    bytes this process all-reduced during the steps, the history."""
    tasks = multidigits_tasks()
    model = make_model(tasks, seed=0)
    distributed.barrier()
    distributed.CommLog.reset()
    start = time.perf_counter()
    history = train(model, tasks, loader, None, epochs=1, lr=lr, schedule=None,
                    strategy=strategy, progress=False)
    seconds = time.perf_counter() - start
    sent = distributed.CommLog.bytes
    if distributed.is_distributed():
        # train's broadcast of the starting weights is not a step's
        sent -= sum(t.numel() * t.element_size() for t in [*model.parameters(),
                                                            *model.buffers()])
        if strategy.ddp:
            sent += sum(p.numel() * p.element_size() for p in model.parameters()
                        if p.requires_grad) * history.steps
        seconds = max(distributed.gather(seconds))
    return seconds, sent, history


def measure(args: argparse.Namespace, rounds: list[int]) -> dict[str, Any]:
    """Seconds and bytes per step of every contender in ``rounds``, in this process (and its
    group), after a warm-up step of each."""
    data = MultiDigits("train", size=args.size, seed=0)
    loader = TensorLoader(data, args.batch_size, shuffle=True, seed=0)
    factories = contenders(args.methods)
    names = list(factories)
    for name in names:  # warm-up: thread pools, allocator, first-call costs
        one_round(factories[name](), FirstBatches(loader, 1, 0), args.lr)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    sent: dict[str, int] = {}
    for r in rounds:
        batches = FirstBatches(loader, args.steps_per_round, r)
        for name in names[r % len(names):] + names[:r % len(names)]:
            s, b, history = one_round(factories[name](), batches, args.lr)
            seconds[name].append(s / history.steps)
            sent[name] = b // history.steps
    return {"seconds_per_step": seconds, "bytes_per_step": sent,
            "threads": torch.get_num_threads()}


def worker(args: argparse.Namespace) -> None:
    """One of the processes that ``torchrun`` starts: rank 0 writes the measurement."""
    dist.init_process_group("gloo")
    try:
        torch.set_num_threads(max(1, args.threads // dist.get_world_size()))
        result = measure(args, [args.round])
        if dist.get_rank() == 0:
            Path(args.worker).write_text(json.dumps(result))
    finally:
        dist.destroy_process_group()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(args: argparse.Namespace, argv: list[str], processes: int) -> dict[str, Any]:
    """The measurement of ``processes`` processes under torchrun (``argv`` says which round)."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "result.json"
        command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={processes}",
                   "--master-addr=127.0.0.1", f"--master-port={free_port()}", __file__,
                   *argv, "--worker", str(out)]
        env = {**os.environ, "OMP_NUM_THREADS": str(max(1, args.threads // processes))}
        subprocess.run(command, check=True, timeout=args.timeout, env=env)
        return json.loads(out.read_text())


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="training samples")
    parser.add_argument("--batch-size", type=int, default=64, help="the global batch")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps-per-round", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="threads in all")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=900, help="seconds for the launch")
    allowed = ["joint", "alternating", *WEIGHTING_METHODS]
    parser.add_argument("--methods", default=",".join(allowed),
                        help=f"comma-separated names from {tuple(allowed)}")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "distributed.json")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--round", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if min(args.rounds, args.size, args.batch_size, args.steps_per_round, args.threads) < 1:
        parser.error("--size, --batch-size, --rounds, --steps-per-round and --threads must be "
                     "positive")
    if args.processes < 2 or args.batch_size % args.processes:
        parser.error(f"--batch-size {args.batch_size} must be a multiple of --processes "
                     f"{args.processes} (>= 2): each process takes an equal share")
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in args.methods if m not in allowed]
    if unknown:
        parser.error(f"--methods: unknown {unknown}, expected names from {tuple(allowed)}")
    return args


def main(argv: list[str] | None = None) -> dict[str, object] | None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    if args.worker:
        worker(args)
        return None
    forwarded = ["--size", str(args.size), "--batch-size", str(args.batch_size),
                 "--steps-per-round", str(args.steps_per_round),
                 "--threads", str(args.threads), "--lr", str(args.lr),
                 "--processes", str(args.processes), "--methods", ",".join(args.methods)]
    threads = torch.get_num_threads()
    settings = sorted({args.threads, 1}, reverse=True)
    # Round by round, one process then a launch of N, so that a change of the shared
    # machine's load hits both alike.
    one: dict[int, dict[str, list[float]]] = {t: {} for t in settings}
    many: dict[str, list[float]] = {}
    for r in range(args.rounds):
        for t in settings:
            torch.set_num_threads(t)
            try:
                measured = measure(args, [r])
            finally:
                torch.set_num_threads(threads)
            for k, v in measured["seconds_per_step"].items():
                one[t].setdefault(k, []).extend(v)
        launched = launch(args, [*forwarded, "--round", str(r)], args.processes)
        for k, v in launched["seconds_per_step"].items():
            many.setdefault(k, []).extend(v)
    n, b = args.processes, args.batch_size
    each = max(1, args.threads // n)
    labels = {t: f"1 process, {t} thread{'s' if t > 1 else ''}" for t in settings}
    label_n = f"{n} processes, {each} thread{'s' if each > 1 else ''} each"

    per_method = {}
    for name, times in many.items():
        tn = statistics.median(times)
        t1 = {t: statistics.median(one[t][name]) for t in settings}
        sent = launched["bytes_per_step"][name]
        ring = 2 * (n - 1) / n * sent
        per_method[name] = {
            "images_per_second": {**{labels[t]: round(b / t1[t], 1) for t in settings},
                                  label_n: round(b / tn, 1)},
            "speedup against": {labels[t]: round(t1[t] / tn, 3) for t in settings},
            "ms_per_step": {**{labels[t]: round(1000 * t1[t], 2) for t in settings},
                            label_n: round(1000 * tn, 2)},
            "bytes_all_reduced_per_step_per_process": sent,
            "ring_ms_per_step_at": {f"{g:g} GB/s": round(1000 * ring / (g * 1e9), 4)
                                    for g in LINK_GBPS},
        }
    model = make_model(multidigits_tasks(), seed=0)
    result: dict[str, object] = {
        "benchmark": f"{n} processes (torchrun, gloo) against 1, same global batch: images per "
                     "second and bytes all-reduced per step",
        "model": "make_model(multidigits_tasks(), seed=0) (tasks left, right, mask)",
        "parameters": sum(p.numel() for p in model.parameters()),
        "data": f"MultiDigits('train', size={args.size}), TensorLoader(batch_size={b}, "
                f"shuffle=True): {b // n} images per process and step",
        "optimizer": f"Adam(lr={args.lr}), one shared, constant (schedule=None)",
        "rounds": args.rounds,
        "steps_per_round": args.steps_per_round,
        "methods": per_method,
        "ms_per_step (each round)": {
            **{labels[t]: {k: [round(1000 * x, 2) for x in v] for k, v in one[t].items()}
               for t in settings},
            label_n: {k: [round(1000 * x, 2) for x in v] for k, v in many.items()}},
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main()
