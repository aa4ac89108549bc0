"""Benchmark: a training step of each multi-task architecture against hard sharing, and the
memory it needs, on the scenes' three dense tasks.

Every entry of ``ARCHITECTURES`` is built by ``make_architecture(name, scenes_tasks(),
"encoder_decoder", seed=0, width=..., **options)`` (the branched network once per
``--branch-points`` value; ``mmoe`` with its defaults, 4 experts of half the width, and as
notebook 07 uses it, 2 experts of the full width). One step is
what ``train`` does per batch with joint training: forward, the three losses (``MultiTaskLoss``:
cross-entropy, L1 depth, 1 - cosine normals), ``zero_grad``, backward, Adam step, on one batch
of ``--batch-size`` rendered scenes at ``--size`` x ``--size``.

Time: every contender runs ``--steps`` steps per round after two warm-up steps, the rounds
rotate the contenders' order (a slow spell on this shared machine hits all of them), and the
result is the median and range over the rounds of the time per step, and its ratio to hard
sharing's median, for each ``--threads`` setting, all in one run.

Memory: the peak resident memory (Linux ``VmHWM``, reset through ``/proc/self/clear_refs``)
above the resident memory just before the first step, over the first ``1 + --steps`` steps, in
a fresh forked process per contender (so memory one contender's allocator kept cannot serve
the next): the activations kept for the backward pass, the gradients, Adam's two moments, and
the allocator's slack. It is what the operating system had to give, not what tensors held.
Parameters and forward multiply-accumulates (MACs) per image come from ``parameter_report`` and
``count_macs``.

    python benchmarks/bench_architectures.py [--size 32] [--batch-size 32] [--width 8]
        [--branch-points 0 5] [--threads 1 2] [--steps 3] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mtlaug_lib.core.architectures import ARCHITECTURES, make_architecture, stage
from mtlaug_lib.core.architectures.registry import REQUIRED
from mtlaug_lib.core.encoder_decoder import EncoderDecoder
from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import count_macs
from mtlaug_lib.data.scenes import Scenes, scenes_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import (  # noqa: E402
    joint_step,
    machine,
    record,
    rotated_rounds,
    step_summary,
)

HERE = Path(__file__).resolve().parent
REFERENCE = "hard"

Step = Callable[[], None]


def contenders(branch_points: list[int]) -> dict[str, tuple[str, dict[str, Any]]]:
    """``{label: (architecture, options)}``: every registry entry, the branched network once
    per branch point."""
    out: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, spec in ARCHITECTURES.items():
        if name == "branched":
            for k in branch_points:
                out[f"branched (branch_point={k})"] = (name, {"branch_point": k})
        else:
            # the defaults (mmoe: four half-width experts); an option without one as in the
            # registry's example
            out[name] = (name, {k: spec.example[k] for k, v in spec.options.items()
                                if v is REQUIRED})
    # notebook 07's MMoE: two experts as wide as the backbone (the default's thin experts run
    # far from this CPU's peak; this entry shows by how much)
    out["mmoe (experts=2, full width)"] = ("mmoe", {"experts": 2, "expert_width": None})
    return out


def build(name: str, options: dict[str, Any], width: int) -> torch.nn.Module:
    if options.get("expert_width", "") is None:  # "full width": the backbone's --width
        options = {**options, "expert_width": width}
    return make_architecture(name, scenes_tasks(), "encoder_decoder", seed=0, width=width,
                             **options)


def make_step(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> Step:
    """One joint training step of ``model`` on ``batch``."""
    return joint_step(model, MultiTaskLoss(scenes_tasks()), batch)


def _memory_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def _peak_in_child(name: str, options: dict[str, Any], width: int,
                   batch: dict[str, torch.Tensor], steps: int, queue: Any) -> None:
    try:
        torch.set_num_threads(1)
        step = make_step(build(name, options, width), batch)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # resets VmHWM to the current resident memory
        before = _memory_kib("VmRSS")
        for _ in range(1 + steps):
            step()
        queue.put(round((_memory_kib("VmHWM") - before) / 1024, 1))
    except Exception as err:  # reported by the parent
        queue.put(f"{type(err).__name__}: {err}")


def peak_memory_mib(name: str, options: dict[str, Any], width: int,
                    batch: dict[str, torch.Tensor], steps: int) -> float | str:
    """Peak resident memory (MiB) of ``1 + steps`` steps above the memory before them, in a
    forked process; a message instead where the system cannot measure it."""
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    process = ctx.Process(target=_peak_in_child, args=(name, options, width, batch, steps, queue))
    process.start()
    result = queue.get(timeout=300)
    process.join()
    return result


def costs(model: torch.nn.Module, size: int) -> dict[str, Any]:
    macs = count_macs(model.eval(), torch.zeros(1, 3, size, size))
    return {"parameters": model.parameter_report(), "macs_per_image": sum(macs.values()),
            "macs_per_image_by_part": macs}


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--branch-points", type=int, nargs="+", default=[0, 5])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "architectures.json")
    args = parser.parse_args(argv)
    if min(args.threads) < 1 or min(args.batch_size, args.steps, args.rounds, args.width) < 1:
        parser.error("threads, batch size, width, steps and rounds must be positive")
    if args.size < 8 or args.size % 8:
        parser.error(f"--size {args.size}: the encoder-decoder takes multiples of 8")
    blocks = stage(EncoderDecoder()).names
    if not all(0 <= k <= len(blocks) for k in args.branch_points):
        parser.error(f"--branch-points must lie in [0, {len(blocks)}] ({', '.join(blocks)})")

    batch = Scenes("train", size=args.batch_size, image_size=args.size).batch(
        torch.arange(args.batch_size))
    entries = contenders(args.branch_points)
    memory = {} if args.no_memory else {
        label: peak_memory_mib(name, options, args.width, batch, args.steps)
        for label, (name, options) in entries.items()}

    threads_before = torch.get_num_threads()
    seconds: dict[str, dict[str, list[float]]] = {}
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            steps = {label: make_step(build(name, options, args.width), batch)
                     for label, (name, options) in entries.items()}
            per = rotated_rounds(steps, args.rounds, args.steps)
            seconds[f"{threads} thread{'s' if threads > 1 else ''}"] = per
    finally:
        torch.set_num_threads(threads_before)
    step_time = {threads: step_summary(per, REFERENCE, "x_hard")
                 for threads, per in seconds.items()}
    ref_memory = memory.get(REFERENCE)
    peak = {label: {"MiB": m, "x_hard": round(m / ref_memory, 2)}
            if isinstance(m, float) and isinstance(ref_memory, float) and ref_memory > 0
            else {"MiB": m} for label, m in memory.items()}
    result: dict[str, object] = {
        "benchmark": "training step (forward, 3 losses, backward, Adam) of each multi-task "
                     "architecture vs hard sharing, on the scenes' three dense tasks",
        "models": {label: {"architecture": name, "options": options}
                   for label, (name, options) in entries.items()},
        "backbone": f"EncoderDecoder(width={args.width}, depth=3, context=True), 3x3 ConvHeads",
        "image_size": args.size,
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "step_time (median and range over rounds)": step_time,
        "peak_memory (resident, above the memory before the first step; 1 thread)": peak,
        "memory_method": f"Linux VmHWM reset with /proc/self/clear_refs, in a forked process "
                         f"per model, over the first {1 + args.steps} steps (Adam's state "
                         "included)",
        "costs": {label: costs(build(name, options, args.width), args.size)
                  for label, (name, options) in entries.items()},
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
