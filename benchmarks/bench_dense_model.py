"""Benchmark: a training step of the encoder-decoder for dense tasks, at several widths and
image sizes, against a step of the course's MultiDigits model (the reference).

One step is what ``train`` does per batch with joint training: forward, the three losses,
``zero_grad``, backward, Adam step. The dense model is ``EncoderDecoder(width)`` with one
``ConvHead`` per task, as ``make_model(tasks, backbone="encoder_decoder", width=width)``
builds it, for three dense tasks: semantic segmentation (``--classes`` classes, cross-entropy),
depth (1 channel, L1) and normals (3 channels, 1 - cosine), on random images and labels (the
step's cost does not depend on the values). The reference is ``make_model(multidigits_tasks())``
on 3 x 28 x 28 images with its three cross-entropy losses. Each batch holds ``--batch-size``
images.

Every contender runs ``--steps`` steps per round after two warm-up steps, and the rounds
rotate the contenders' order, so a slow spell on this shared machine hits all of them; the
result is the median and the range over the rounds of the time per step, for one intra-op
thread and for two. Parameters and multiply-accumulates (MACs, forward, per image) are counted
per part with ``count_parameters`` and ``count_macs``.

    python benchmarks/bench_dense_model.py [--widths 4 8 12 16] [--heads 3x3 1x1]
        [--sizes 32 48 64] [--threads 1 2] [--batch-size 32] [--steps 3] [--rounds 5] [--out FILE]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from mtlaug_lib.core.encoder_decoder import EncoderDecoder
from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import (
    ConvHead,
    MultiTaskModel,
    count_macs,
    count_parameters,
    make_model,
)
from mtlaug_lib.data.multidigits import multidigits_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import (  # noqa: E402
    joint_step,
    machine,
    record,
    rotated_rounds,
    step_summary,
)

HERE = Path(__file__).resolve().parent

Step = Callable[[], None]
REFERENCE = "reference (MultiDigits, 28)"


HEADS = {"3x3": None, "1x1": 0}  # ConvHead's hidden layer: the default (3x3 + 1x1), or none


def dense_model(width: int, classes: int, heads: str = "3x3", seed: int = 0) -> MultiTaskModel:
    """The model ``make_model(tasks, backbone="encoder_decoder", width=width,
    head_hidden=HEADS[heads])`` builds for the three dense tasks."""
    hidden = HEADS[heads]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = EncoderDecoder(width=width)
        return MultiTaskModel(net, {"semantic": ConvHead(width, classes, hidden),
                                    "depth": ConvHead(width, 1, hidden),
                                    "normals": ConvHead(width, 3, hidden)})


def dense_step(width: int, heads: str, size: int, batch_size: int, classes: int) -> Step:
    """One joint training step of the dense model on a fixed random batch."""
    g = torch.Generator().manual_seed(0)
    model = dense_model(width, classes, heads)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    images = torch.rand(batch_size, 3, size, size, generator=g)
    semantic = torch.randint(0, classes, (batch_size, size, size), generator=g)
    depth = torch.rand(batch_size, 1, size, size, generator=g) * 5
    normals = F.normalize(torch.randn(batch_size, 3, size, size, generator=g), dim=1)

    def step() -> None:
        out = model(images)
        n = out["normals"]
        # 1 - cosine written out: F.cosine_similarity's norms took ~35 ms a step at 48 x 48.
        cosine = (n * normals).sum(1) / (n.pow(2).sum(1) + 1e-12).sqrt()
        loss = (F.cross_entropy(out["semantic"], semantic)
                + (out["depth"] - depth).abs().mean() + (1 - cosine).mean())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def reference_step(batch_size: int) -> Step:
    """One joint training step of the course's MultiDigits model (3 x 28 x 28 images)."""
    g = torch.Generator().manual_seed(0)
    tasks = multidigits_tasks()
    model = make_model(tasks, seed=0)
    batch = {"image": torch.rand(batch_size, 3, 28, 28, generator=g),
             "left": torch.randint(0, 10, (batch_size,), generator=g),
             "right": torch.randint(0, 10, (batch_size,), generator=g),
             "mask": torch.randint(0, 3, (batch_size, 28, 28), generator=g)}
    return joint_step(model, MultiTaskLoss(tasks), batch)


def costs(width: int, heads: str, sizes: list[int], classes: int) -> dict[str, object]:
    """Parameters per part and forward MACs per image per part, for each size."""
    model = dense_model(width, classes, heads).eval()
    return {
        "parameters": model.parameter_report(),
        "parameters_per_stage": {name: count_parameters(m)
                                 for name, m in model.backbone.named_children()},
        "macs_per_image": {str(s): count_macs(model, torch.zeros(1, 3, s, s)) for s in sizes},
        "backbone_macs_per_stage": {
            str(s): count_macs(model.backbone, torch.zeros(1, 3, s, s)) for s in sizes},
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[4, 8, 12, 16])
    parser.add_argument("--heads", nargs="+", choices=list(HEADS), default=list(HEADS),
                        help="dense heads: 3x3 + 1x1 (the default) or 1x1 alone")
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 48, 64])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--classes", type=int, default=6, help="segmentation classes")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "dense_model.json")
    args = parser.parse_args(argv)
    if min(args.widths + args.sizes + args.threads) < 1 or min(
            args.batch_size, args.steps, args.rounds) < 1 or args.classes < 2:
        parser.error("widths, sizes, threads, batch size, steps and rounds must be positive; "
                     "classes at least 2")
    bad = [s for s in args.sizes if s % 8]
    if bad:
        parser.error(f"--sizes {bad}: the encoder-decoder takes multiples of 8")

    threads_before = torch.get_num_threads()
    seconds: dict[str, dict[str, list[float]]] = {}
    try:
        for threads in args.threads:
            torch.set_num_threads(threads)
            steps: dict[str, Step] = {REFERENCE: reference_step(args.batch_size)}
            for size in args.sizes:
                for width in args.widths:
                    for heads in args.heads:
                        steps[f"width {width}, {heads} heads, {size} x {size}"] = dense_step(
                            width, heads, size, args.batch_size, args.classes)
            per = rotated_rounds(steps, args.rounds, args.steps)
            seconds[f"{threads} thread{'s' if threads > 1 else ''}"] = per
    finally:
        torch.set_num_threads(threads_before)
    step_time = {threads: step_summary(per, REFERENCE, "x_reference")
                 for threads, per in seconds.items()}
    result: dict[str, object] = {
        "benchmark": "training step (forward, 3 losses, backward, Adam) of the encoder-decoder "
                     "with 3 dense heads vs the MultiDigits model",
        "dense_model": f"EncoderDecoder(width, depth=3, context=True) + ConvHead per task "
                       f"(semantic {args.classes} classes, depth 1, normals 3 channels; "
                       "3x3 heads: a 3x3 layer of width channels, ReLU, then 1x1; 1x1 heads: "
                       "the 1x1 alone)",
        "reference": "make_model(multidigits_tasks()): the article's backbone, 2 Classifier "
                     "heads, 1 DenseHead, 3 x 28 x 28",
        "batch_size": args.batch_size,
        "steps_per_round": args.steps,
        "rounds": args.rounds,
        "step_time (median and range over rounds)": step_time,
        "costs": {f"width {w}, {h} heads": costs(w, h, args.sizes, args.classes)
                  for w in args.widths for h in args.heads},
        "reference_costs": {
            "parameters": make_model(multidigits_tasks(), seed=0).parameter_report(),
            "macs_per_image": count_macs(make_model(multidigits_tasks(), seed=0),
                                         torch.zeros(1, 3, 28, 28)),
        },
        "machine": machine(),
    }
    return record(result, args.out)


if __name__ == "__main__":
    main(sys.argv[1:])
