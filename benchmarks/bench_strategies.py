"""Benchmark: the cost of joint, alternating and sequential multi-task updates.

All contenders train the same model (``make_model(select_tasks(multidigits_tasks(), TASKS),
seed=0)``, fresh each round) on the same batches (MultiDigits train, ``TensorLoader``; round r
takes the first ``--steps-per-round`` batches of epoch r's order) with one Adam at a constant
learning rate, through ``mtlaug_lib.training.loop.train(..., strategy=NAME)``. The rounds are short
and many, and rotate the contenders' order, because other people's jobs on this shared 2-core
machine change its speed several-fold within a minute: a ratio within one short round compares
the contenders on nearly the same machine.

Two costs per contender:
    images/s: images through the shared backbone per second (the raw speed of a step);
    cost per image seen by every task: seconds / min over tasks of the images that task's loss
        was trained on. Joint: one step shows the batch to every task. Alternating (T tasks,
        round robin): a task sees a batch every T steps, so an image seen by every task costs
        T steps. Sequential: T forward and backward passes per batch, every task sees it.
The ratios alternating/joint and sequential/joint of that cost are medians of per-round ratios,
of wall time and of this process's CPU time (``time.process_time``: less sensitive to other
jobs taking the cores, though not immune, as they share caches and memory bandwidth). The
default 12 steps a round is a multiple of 2, 3 and 4, so round robin gives every task the same
number of steps.

    python benchmarks/bench_strategies.py [--size 4096] [--batch-size 128] [--rounds 15]
        [--steps-per-round 12] [--tasks left,right] [--out FILE]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import select_tasks
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training.loop import History, train

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import FirstBatches, machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent
CONTENDERS = ("joint", "alternating", "sequential")






def one_round(
    strategy: str, task_names: list[str], loader, lr: float
) -> tuple[float, float, History]:
    """One epoch of a fresh model with ``strategy``: wall time, CPU time, the run's history."""
    tasks = select_tasks(multidigits_tasks(), task_names)
    model = make_model(tasks, seed=0)
    start, cpu = time.perf_counter(), time.process_time()
    history = train(model, tasks, loader, None, epochs=1, lr=lr, schedule=None,
                    strategy=strategy, progress=False)
    return time.perf_counter() - start, time.process_time() - cpu, history


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096, help="training samples")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps-per-round", type=int, default=12,
                        help="batches per contender and round")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--tasks", default="left,right",
                        help="comma-separated tasks of MultiDigits (add 'mask' for the dense task)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "strategies.json")
    args = parser.parse_args(argv)
    if min(args.rounds, args.size, args.batch_size, args.steps_per_round) < 1:
        parser.error("--size, --batch-size, --rounds and --steps-per-round must be positive")
    task_names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    try:
        select_tasks(multidigits_tasks(), task_names)
    except KeyError as err:
        parser.error(f"--tasks: {err.args[0]}")
    if len(task_names) < 2:
        parser.error(f"--tasks is {args.tasks!r}, expected two tasks or more")

    data = MultiDigits("train", size=args.size, seed=0)
    loader = TensorLoader(data, args.batch_size, shuffle=True, seed=0)
    names = list(CONTENDERS)
    for name in names:  # warm-up: thread pools, allocator, first-call costs
        one_round(name, task_names, FirstBatches(loader, 2, 0), args.lr)

    seconds: dict[str, list[float]] = {name: [] for name in names}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in names}
    work: dict[str, dict[str, object]] = {}
    for r in range(args.rounds):
        batches = FirstBatches(loader, args.steps_per_round, r)
        for name in names[r % len(names):] + names[:r % len(names)]:
            s, cpu, history = one_round(name, task_names, batches, args.lr)
            seconds[name].append(s)
            cpu_seconds[name].append(cpu)
            work[name] = {"steps": history.steps, "forward": history.forward,
                          "backward": history.backward, "images": history.images,
                          "task_images": dict(history.task_images)}

    # Every round of a contender does the same work (same number of batches, same schedule).
    seen_by_all = {name: min(work[name]["task_images"].values()) for name in names}
    rate = {name: [work[name]["images"] / s for s in seconds[name]] for name in names}
    cost = {name: [s / seen_by_all[name] for s in seconds[name]] for name in names}
    median_rate = {name: statistics.median(rate[name]) for name in names}
    median_cost = {name: statistics.median(cost[name]) for name in names}
    def ratios(times: dict[str, list[float]]) -> dict[str, float]:
        """Median over rounds of (cost per image seen by every task) / joint's, same round."""
        per_image = {k: [t / seen_by_all[k] for t in times[k]] for k in names}
        return {f"{k}/joint": round(statistics.median(
            a / b for a, b in zip(per_image[k], per_image["joint"], strict=True)), 3)
            for k in names if k != "joint"}
    result: dict[str, object] = {
        "benchmark": "update strategies: joint vs alternating vs sequential, same model and data",
        "model": f"make_model(select_tasks(multidigits_tasks(), {task_names}), seed=0)",
        "data": f"MultiDigits('train', size={args.size}), TensorLoader(batch_size="
                f"{args.batch_size}, shuffle=True)",
        "optimizer": f"Adam(lr={args.lr}), one shared, constant (schedule=None)",
        "tasks": task_names,
        "rounds": args.rounds,
        "steps_per_round": batches.n,
        "work_per_round": work,
        "images_per_s (median, through the backbone)": {
            k: round(v, 1) for k, v in median_rate.items()},
        "images_per_s (each round)": {k: [round(v, 1) for v in rate[k]] for k in names},
        "images_seen_by_every_task_per_s (median)": {
            k: round(1 / v, 1) for k, v in median_cost.items()},
        "ms_per_image_seen_by_every_task (median)": {
            k: round(1000 * v, 4) for k, v in median_cost.items()},
        "cost_ratio_per_image_seen_by_every_task (median of per-round ratios)": ratios(seconds),
        "cost_ratio_per_image_seen_by_every_task (CPU time, median of per-round ratios)":
            ratios(cpu_seconds),
        "cpu_ms_per_image_seen_by_every_task (median)": {
            k: round(1000 * statistics.median(cpu_seconds[k]) / seen_by_all[k], 4)
            for k in names},
        "threads": torch.get_num_threads(),
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
