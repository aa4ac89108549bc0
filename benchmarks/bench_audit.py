"""Benchmark: how long the label-safety audit takes to measure a pipeline on the data.

The audit runs each geometric transform on 128 seeded probes of MultiDigits training samples
(``mtlaug_lib.augment.probe``) and judges it from what it measured; every ``SampleTransform``,
``BatchAugment``, ``MixUp`` and ``CutMix`` is audited when built. This benchmark times, side
by side in interleaved rounds, the whole audit of the course's pipelines and the kind-only walk
over the same pipelines (``transform_kinds``: what the audit did before it measured), and
reports each one's median seconds and the ratio. The first audit in a process also builds its
sample of the data (``course_data``, timed once, separately).

Usage:
    python benchmarks/bench_audit.py [--rounds 7] [--out benchmarks/results/audit.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torchvision
from torchvision.transforms import v2

from mtlaug_lib.augment.audit import audit, transform_kinds
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.measured import course_data
from mtlaug_lib.data.multidigits import multidigits_tasks

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import machine, record  # noqa: E402


def pipelines() -> dict[str, object]:
    """The pipelines the course audits (notebook 03), from one transform to the article's."""
    tasks = multidigits_tasks()
    return {
        "course_affine_and_jitter": v2.Compose([
            v2.RandomAffine(degrees=15, translate=(0.06, 0.06), scale=(0.9, 1.1)),
            v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)]),
        "rotation_10": v2.RandomRotation(10),
        "default_crop_28": v2.RandomResizedCrop(28),
        "article_v2_crop_224": v2.Compose([
            v2.RandomRotation(30), v2.RandomHorizontalFlip(), v2.RandomResizedCrop(224),
            v2.ToImage(), v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])]),
        "batch_augment": BatchAugment(tasks, degrees=15, translate=(0.06, 0.06),
                                      scale=(0.9, 1.1), brightness=0.3, check=False),
    }


def seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).parent / "results" / "audit.json")
    args = parser.parse_args(argv)

    tasks = multidigits_tasks()
    data_s = seconds(course_data)  # built once per process; later audits reuse it
    times: dict[str, dict[str, list[float]]] = {}
    for _ in range(args.rounds):  # interleaved: a slow spell on this machine hits both
        for name, pipeline in pipelines().items():
            entry = times.setdefault(name, {"audit": [], "kinds_only": []})
            entry["audit"].append(seconds(lambda p=pipeline: audit(p, tasks)))
            entry["kinds_only"].append(seconds(lambda p=pipeline: transform_kinds(p)))

    def median(values: list[float]) -> float:
        return sorted(values)[len(values) // 2]

    result = {
        "benchmark": "label-safety audit time per pipeline (seconds)",
        "rounds": args.rounds,
        "course_data_s (once per process)": round(data_s, 3),
        "audit_s (median)": {n: round(median(t["audit"]), 4) for n, t in times.items()},
        "kinds_only_s (median)": {n: round(median(t["kinds_only"]), 5) for n, t in times.items()},
        "audit_over_kinds_only (ratio of medians)": {
            n: round(median(t["audit"]) / max(median(t["kinds_only"]), 1e-9), 1)
            for n, t in times.items()},
        "audit_under_1s": all(median(t["audit"]) < 1.0 for t in times.values()),
        "machine": {**machine(), "torchvision": torchvision.__version__},
    }
    return record(result, args.out)


if __name__ == "__main__":
    main()
