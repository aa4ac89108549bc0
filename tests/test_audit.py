"""The label-safety audit: the kinds of transforms, the table transform x task, the refusals of
``check_pipeline`` and the label maps that repair a flip."""

from __future__ import annotations

import pytest
import torch
import torchvision.transforms as v1
from augment_checks import SWAP
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtlaug_lib.audit import (
    Audit,
    LabelSafetyError,
    audit,
    check_pipeline,
    declare_kind,
    transform_kinds,
)
from mtlaug_lib.augment import RandomFlip, SampleTransform
from mtlaug_lib.batch_augment import BatchAugment
from mtlaug_lib.mixing import CutMix, MixUp
from mtlaug_lib.tasks import LabelEffect

pytestmark = pytest.mark.usefixtures("one_thread")


# =============================================================================================
# Kinds and the audit


@pytest.mark.parametrize(
    ("transform", "kind"),
    [
        (v2.RandomRotation(10), "geometric"),
        (v2.RandomAffine(10), "geometric"),
        (v2.RandomResizedCrop(28), "geometric"),
        (v2.RandomCrop(28, padding=2), "geometric"),
        (v2.Resize(32), "geometric"),
        (v2.CenterCrop(20), "geometric"),
        (v2.RandomPerspective(), "geometric"),
        (v2.ElasticTransform(), "geometric"),
        (v2.RandomHorizontalFlip(), "horizontal_flip"),
        (v2.RandomVerticalFlip(), "vertical_flip"),
        (v2.ColorJitter(0.2), "photometric"),
        (v2.RandomGrayscale(), "photometric"),
        (v2.GaussianBlur(3), "photometric"),
        (v2.Normalize([0.5], [0.5]), "photometric"),
        (v2.ToDtype(torch.float32, scale=True), "photometric"),
        (v2.ToImage(), "photometric"),
        (v2.RandomInvert(), "photometric"),
        (v2.RandomErasing(), "occlusion"),
        (v2.MixUp(num_classes=10), "mixing"),
        (v2.CutMix(num_classes=10), "region_mixing"),
        (v1.RandomRotation(10), "geometric"),
        (v1.ToTensor(), "photometric"),
    ],
)
def test_transform_kinds_of_torchvision_transforms(transform, kind) -> None:
    assert transform_kinds(transform) == [(type(transform).__name__, kind)]


def test_transform_kinds_recurse_into_containers_and_course_transforms(tasks) -> None:
    pipeline = v2.Compose([
        v2.RandomApply([v2.RandomRotation(10), v2.ColorJitter(0.1)], p=0.5),
        v2.RandomChoice([v2.RandomCrop(28, padding=2), v2.RandomOrder([v2.GaussianBlur(3)])]),
        BatchAugment(tasks, degrees=10, brightness=0.2),
        CutMix(tasks),
    ])
    assert transform_kinds(pipeline) == [
        ("[0][0] RandomRotation", "geometric"),
        ("[0][1] ColorJitter", "photometric"),
        ("[1][0] RandomCrop", "geometric"),
        ("[1][1][0] GaussianBlur", "photometric"),
        ("[2] BatchAugment.affine", "geometric"),
        ("[2] BatchAugment.color_jitter", "photometric"),
        ("[3] CutMix", "region_mixing"),
    ]
    assert transform_kinds([RandomFlip("vertical"), MixUp(tasks)]) == [
        ("[0] RandomFlip(vertical)", "vertical_flip"), ("[1] MixUp", "mixing")]


def test_an_unknown_transform_is_an_error_until_its_kind_is_declared(tasks) -> None:
    class Sharpen(v2.Transform):
        pass

    with pytest.raises(TypeError, match=r"unknown transform Sharpen .*declare_kind"):
        audit(v2.Compose([v2.RandomRotation(5), Sharpen()]), tasks)
    with pytest.raises(TypeError, match="unknown transform Lambda"):
        transform_kinds(v2.Lambda(lambda x: x))
    # An instance, then the whole class.
    lam = declare_kind(v2.Lambda(lambda x: x), "photometric")
    assert transform_kinds(lam) == [("Lambda", "photometric")]
    declare_kind(Sharpen, "photometric")
    assert audit(Sharpen(), tasks).ok
    with pytest.raises(ValueError, match=r"argument 'kind' is 'colour', expected one of"):
        declare_kind(Sharpen, "colour")


def test_audit_of_the_seed_pipeline_names_what_breaks_and_why(tasks) -> None:
    seed = v1.Compose([v1.RandomRotation(30), v1.RandomHorizontalFlip(), v1.ToTensor(),
                       v1.Normalize([0.5] * 3, [0.2] * 3)])
    report = audit(seed, tasks)
    assert isinstance(report, Audit) and len(report) == 4 * 3 and not report.ok
    grid = report.grid()
    assert [c.effect for c in grid["[1] RandomHorizontalFlip"].values()] == [LabelEffect.BREAKS] * 3
    rotation = grid["[0] RandomRotation"]
    assert rotation["left"].allowed and rotation["left"].effect is LabelEffect.KEEPS
    # v1 rotates the image only: the mask would stay behind.
    assert not rotation["mask"].allowed and "v1" in rotation["mask"].reason
    assert all(row.allowed for row in grid["[2] ToTensor"].values())
    refused = {(r.transform, r.task) for r in report.problems()}
    assert refused == {("[0] RandomRotation", "mask"), ("[1] RandomHorizontalFlip", "left"),
                       ("[1] RandomHorizontalFlip", "right"), ("[1] RandomHorizontalFlip", "mask")}
    text = str(report)
    assert "breaks ✗" in text and "✗ [1] RandomHorizontalFlip x left:" in text
    assert len(report.to_records()) == 12


def test_check_pipeline_refuses_a_breaking_transform_naming_it_the_task_and_why(tasks) -> None:
    pipeline = v2.Compose([v2.RandomRotation(10), v2.RandomHorizontalFlip()])
    with pytest.raises(LabelSafetyError, match=r"\[1\] RandomHorizontalFlip \(horizontal_flip\) x "
                       r"task 'left': the task declares that a transform of kind "
                       r"'horizontal_flip' breaks its labels"):
        check_pipeline(pipeline, tasks)
    # A safe pipeline comes back as it is.
    safe = v2.Compose([v2.RandomRotation(10), v2.ColorJitter(0.2)])
    assert check_pipeline(safe, tasks) is safe


def test_a_label_map_repairs_the_flip_for_the_mask_only(tasks, mask_only) -> None:
    pipeline = v2.Compose([v2.RandomRotation(10), v2.RandomHorizontalFlip(p=0.3)])
    report = audit(pipeline, mask_only, label_maps={"mask": SWAP})
    assert report.ok and report.grid()["[1] RandomHorizontalFlip"]["mask"].label_map == SWAP
    repaired = check_pipeline(pipeline, mask_only, label_maps={"mask": SWAP})
    assert isinstance(repaired, v2.Compose) and repaired is not pipeline
    flip = repaired.transforms[1]
    assert isinstance(flip, RandomFlip) and flip.p == 0.3 and flip.label_maps == {"mask": SWAP}
    assert isinstance(pipeline.transforms[1], v2.RandomHorizontalFlip)  # not mutated
    # The map repairs the mask, not a mirrored digit: with left/right the flip is refused.
    with pytest.raises(LabelSafetyError, match="task 'left'") as err:
        check_pipeline(pipeline, tasks, label_maps={"mask": SWAP})
    assert "task 'mask'" not in str(err.value)


def test_label_maps_are_checked(tasks, mask_only) -> None:
    with pytest.raises(ValueError, match=r"names task\(s\) \['mask'\], but no flip in the "
                       "pipeline breaks"):
        audit(v2.RandomRotation(10), mask_only, label_maps={"mask": SWAP})
    with pytest.raises(ValueError, match=r"the map of task 'mask' holds 3, expected classes in "
                       r"\[0, 2\]"):
        audit(v2.RandomHorizontalFlip(), mask_only, label_maps={"mask": {1: 3}})
    with pytest.raises(ValueError, match="names task 'depth', expected one of"):
        audit(v2.RandomHorizontalFlip(), mask_only, label_maps={"depth": SWAP})
    # A flip whose own map would corrupt labels that the flip keeps right (the mask under a
    # vertical flip: each digit stays on its side).
    report = audit(RandomFlip("vertical", label_maps={"mask": SWAP}), mask_only)
    assert not report.ok and "would corrupt them" in report.problems()[0].reason
    # A vertical flip moves the mask, but breaks the upside-down digits.
    grid = audit(v2.RandomVerticalFlip(), tasks).grid()["RandomVerticalFlip"]
    assert grid["mask"].allowed and not grid["left"].allowed


def test_the_audit_refuses_torchvision_mixup_and_erasing_and_accepts_the_course_mixers(
    tasks,
) -> None:
    report = audit([v2.MixUp(num_classes=10), v2.RandomErasing()], tasks)
    reasons = {(r.transform, r.task): r.reason for r in report.problems()}
    assert "mtlaug_lib.mixing.MixUp" in reasons[("[0] MixUp", "left")]
    assert ("[1] RandomErasing", "mask") in reasons  # erased ink stays labelled
    assert ("[1] RandomErasing", "left") not in reasons  # Cutout keeps a class
    assert audit([MixUp(tasks), CutMix(tasks)], tasks).ok


def test_a_custom_geometric_transform_must_declare_that_it_moves_masks(tasks) -> None:
    rot90 = declare_kind(v2.Lambda(lambda x: x.rot90(1, (-2, -1)), tv_tensors.Image),
                         "geometric")
    assert not audit(rot90, tasks).ok
    with pytest.raises(LabelSafetyError, match="Lambda does not transform masks"):
        SampleTransform(rot90, tasks)
