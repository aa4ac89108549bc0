"""Checks of notebook 03 (augmentation): a label-safe pipeline and the MixUp loss."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

from ...augment.audit import LabelSafetyError, audit, transform_kinds
from ...augment.sample import SampleTransform
from ...data.multidigits import MultiDigits
from .common import ExerciseError, call_answer, correct


def check_safe_pipeline(pipeline: object, tasks: object) -> None:
    """Exercise 03.1: a pipeline that the audit allows for every task, with at least one
    geometric and one photometric transform."""
    if not isinstance(tasks, dict) or set(tasks) != {"left", "right", "mask"}:
        raise ExerciseError("pass the course's three tasks: mtl.multidigits_tasks()")
    try:
        kinds = {kind for _, kind in transform_kinds(pipeline)}
    except (TypeError, ValueError) as err:
        raise ExerciseError(f"the audit cannot read your pipeline: {err}") from err
    missing = {"geometric", "photometric"} - kinds
    if missing:
        raise ExerciseError(
            f"your pipeline has no {' and no '.join(sorted(missing))} transform; add one "
            "(e.g. v2.RandomAffine and v2.ColorJitter)"
        )
    result = audit(pipeline, tasks)
    if not result.ok:
        bad = "; ".join(f"{r.transform} x {r.task}: {r.reason}" for r in result.problems())
        raise ExerciseError(f"the audit refuses your pipeline: {bad}")
    try:
        SampleTransform(pipeline, tasks)(MultiDigits("test", size=1)[0])
    except (LabelSafetyError, TypeError, ValueError, KeyError) as err:
        raise ExerciseError(f"your pipeline fails on a sample: {err}") from err
    correct("every task's labels stay right under your pipeline.")


def check_mixup_loss(mixup_loss: Callable) -> None:
    """Exercise 03.2: ``mixup_loss(logits, labels, lam, perm)`` -> the mixed cross-entropy."""
    g = torch.Generator().manual_seed(0)
    for b in (1, 4, 16):
        logits = torch.randn(b, 10, generator=g)
        labels = torch.randint(10, (b,), generator=g)
        lam = torch.rand(b, generator=g)
        perm = torch.randperm(b, generator=g)
        own = F.cross_entropy(logits, labels, reduction="none")
        other = F.cross_entropy(logits, labels[perm], reduction="none")
        expected = float((lam * own + (1 - lam) * other).mean())
        got = call_answer(mixup_loss, logits, labels, lam, perm)
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise ExerciseError(
                f"for a batch of {b}, mixup_loss returned a tensor of shape {tuple(got.shape)}, "
                "expected one number. Hint: the per-sample mixed losses are right to compute; "
                "return their mean over the batch."
            )
        got = float(got) if isinstance(got, (torch.Tensor, float, int)) else got
        if not isinstance(got, float) or abs(got - expected) > 1e-5:
            raise ExerciseError(
                f"for a batch of {b}, mixup_loss returned {got!r}, expected {expected:.5f}. "
                "Hint: each sample's loss is lam * CE(own label) + (1 - lam) * CE(its partner's "
                "label labels[perm]), with the sample's own lam; then the mean over the batch."
            )
    correct("every classification head mixes its loss with the same per-sample lam.")
