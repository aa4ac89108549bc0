"""Notebook 03's exercise checks: the right answers pass, the wrong ones students give do not."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision.transforms as v1
from torchvision.transforms import v2

from mtlaug_lib import exercises
from mtlaug_lib.data.multidigits import multidigits_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

# --------------------------------------------------------------------------- Exercise 03.1

JITTER = v2.ColorJitter(brightness=0.4)

RIGHT_PIPELINES = {
    "rotation and jitter": v2.Compose([v2.RandomRotation(10), JITTER]),
    "the course's affine": v2.Compose([
        v2.RandomAffine(degrees=15, translate=(0.06, 0.06), scale=(0.9, 1.1)),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3)]),
    "padded crop and blur": v2.Compose([v2.RandomCrop(28, padding=2), v2.GaussianBlur(3)]),
}

# (pipeline, part of the message that must explain what is wrong)
WRONG_PIPELINES = {
    "default-scale crop cuts digits away": (
        v2.Compose([v2.RandomResizedCrop(28), JITTER]), "stays in view"),
    "a wide shift pushes digits out": (
        v2.Compose([v2.RandomAffine(0, translate=(0.3, 0.3)), JITTER]), "stays in view"),
    "a rotation past what a digit tolerates": (
        v2.Compose([v2.RandomRotation(90), JITTER]), "past the ±30°"),
    "the article's flip": (
        v2.Compose([v2.RandomRotation(10), v2.RandomHorizontalFlip(), JITTER]),
        "breaks its labels"),
    "the article's crop to 224": (
        v2.Compose([v2.RandomResizedCrop(224, scale=(0.9, 1.0)), JITTER]),
        "outputs 224 x 224 images, and the task takes 28 x 28"),
    "v1 transforms leave the mask behind": (
        v1.Compose([v1.RandomRotation(10), v1.ColorJitter(brightness=0.4)]),
        "torchvision.transforms (v1) transforms the image only"),
    "random erasing keeps erased ink labelled": (
        v2.Compose([v2.RandomRotation(10), JITTER, v2.RandomErasing(p=1.0)]), "occlusion"),
    "no geometric transform": (v2.Compose([JITTER]), "no geometric transform"),
    "no photometric transform": (v2.Compose([v2.RandomRotation(10)]), "no photometric"),
    "not a pipeline": ("RandomRotation(10)", "cannot read your pipeline"),
}


@pytest.mark.parametrize("pipeline", RIGHT_PIPELINES.values(), ids=RIGHT_PIPELINES)
def test_safe_pipeline_accepts_right_answers(pipeline, capsys) -> None:
    exercises.check_safe_pipeline(pipeline, multidigits_tasks())
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(("pipeline", "why"), WRONG_PIPELINES.values(), ids=WRONG_PIPELINES)
def test_safe_pipeline_rejects_wrong_answers(pipeline, why) -> None:
    with pytest.raises(exercises.ExerciseError, match=why.replace("(", r"\(").replace(")", r"\)")):
        exercises.check_safe_pipeline(pipeline, multidigits_tasks())


def test_safe_pipeline_wants_the_course_tasks() -> None:
    with pytest.raises(exercises.ExerciseError, match="multidigits_tasks"):
        exercises.check_safe_pipeline(RIGHT_PIPELINES["rotation and jitter"], {"left": 1})


# --------------------------------------------------------------------------- Exercise 03.2


def mixup_loss(logits, labels, lam, perm):
    own = F.cross_entropy(logits, labels, reduction="none")
    partner = F.cross_entropy(logits, labels[perm], reduction="none")
    return (lam * own + (1 - lam) * partner).mean()


def per_sample_loop(logits, labels, lam, perm):
    total = 0.0
    for i in range(len(labels)):
        own = F.cross_entropy(logits[i:i + 1], labels[i:i + 1])
        partner = F.cross_entropy(logits[i:i + 1], labels[perm[i]:perm[i] + 1])
        total += lam[i] * own + (1 - lam[i]) * partner
    return total / len(labels)


WRONG_MIXUP = {
    "lam and 1 - lam swapped": (
        lambda lo, la, lam, p: ((1 - lam) * F.cross_entropy(lo, la, reduction="none")
                                + lam * F.cross_entropy(lo, la[p], reduction="none")).mean(),
        "Hint"),
    "the partner's label forgotten": (
        lambda lo, la, lam, p: (lam * F.cross_entropy(lo, la, reduction="none")).mean(), "Hint"),
    "one mean lam for the batch": (
        lambda lo, la, lam, p: lam.mean() * F.cross_entropy(lo, la)
        + (1 - lam.mean()) * F.cross_entropy(lo, la[p]), "the sample's own lam"),
    "sum instead of mean": (
        lambda lo, la, lam, p: (lam * F.cross_entropy(lo, la, reduction="none")
                                + (1 - lam) * F.cross_entropy(lo, la[p], reduction="none")).sum(),
        "then the mean over the batch"),
    "no reduction": (
        lambda lo, la, lam, p: lam * F.cross_entropy(lo, la, reduction="none")
        + (1 - lam) * F.cross_entropy(lo, la[p], reduction="none"), "expected one number"),
    "permuting the logits instead of the labels": (
        lambda lo, la, lam, p: (lam * F.cross_entropy(lo, la, reduction="none")
                                + (1 - lam) * F.cross_entropy(lo[p], la, reduction="none")).mean(),
        "Hint"),
    "an error inside": (lambda lo, la, lam, p: F.cross_entropy(lo, la.float()), "raised"),
}


@pytest.mark.parametrize("answer", [mixup_loss, per_sample_loop], ids=["vectorised", "loop"])
def test_mixup_loss_accepts_right_answers(answer, capsys) -> None:
    exercises.check_mixup_loss(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize(("answer", "why"), WRONG_MIXUP.values(), ids=WRONG_MIXUP)
def test_mixup_loss_rejects_wrong_answers(answer, why) -> None:
    with pytest.raises(exercises.ExerciseError, match=why):
        exercises.check_mixup_loss(answer)


def test_a_batch_of_one_is_not_the_only_case() -> None:
    """With one sample, perm is the identity and the mix cannot be told from no mix: the check
    must use larger batches too (it does), else 'partner forgotten' could pass."""
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(1, 10, generator=g), torch.tensor([3])
    lam, perm = torch.rand(1, generator=g), torch.tensor([0])
    assert torch.allclose(mixup_loss(logits, labels, lam, perm), F.cross_entropy(logits, labels))
