"""The label-safety audit: the kinds of transforms, the table transform x task, the refusals of
``check_pipeline`` and the label maps that repair a flip."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest
import torch
import torchvision.transforms as v1
from augment_checks import SWAP
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtlaug_lib.augment.audit import Audit, LabelSafetyError, audit
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.flip import RandomFlip
from mtlaug_lib.augment.kinds import declare_kind, transform_kinds
from mtlaug_lib.augment.measured import course_data
from mtlaug_lib.augment.mixing import CutMix, MixUp
from mtlaug_lib.augment.repair import check_pipeline
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.core.tasks import LabelEffect

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


def test_audit_of_the_article_v1_pipeline_names_what_breaks_and_why(tasks) -> None:
    article = v1.Compose([v1.RandomRotation(30), v1.RandomHorizontalFlip(), v1.ToTensor(),
                          v1.Normalize([0.5] * 3, [0.2] * 3)])
    report = audit(article, tasks)
    assert isinstance(report, Audit) and len(report) == 4 * 3 and not report.ok
    grid = report.grid()
    assert [c.effect for c in grid["[1] RandomHorizontalFlip"].values()] == [
        LabelEffect.BREAKS, LabelEffect.BREAKS, LabelEffect.PERMUTES]
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
                       "pipeline changes"):
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
    assert "mtlaug_lib.augment.mixing.MixUp" in reasons[("[0] MixUp", "left")]
    assert ("[1] RandomErasing", "mask") in reasons  # erased ink stays labelled
    assert ("[1] RandomErasing", "left") not in reasons  # Cutout keeps a class
    assert audit([MixUp(tasks), CutMix(tasks)], tasks).ok


def test_a_custom_geometric_transform_must_declare_that_it_moves_masks(tasks) -> None:
    rot90 = declare_kind(v2.Lambda(lambda x: x.rot90(1, (-2, -1)), tv_tensors.Image),
                         "geometric")
    assert not audit(rot90, tasks).ok
    with pytest.raises(LabelSafetyError, match="Lambda does not transform masks"):
        SampleTransform(rot90, tasks)


# =============================================================================================
# What a transform does, measured on the data


ARTICLE = v2.Compose([v2.RandomRotation(30), v2.RandomHorizontalFlip(), v2.RandomResizedCrop(224),
                      v2.ToImage(), v2.ToDtype(torch.float32, scale=True)])


def test_the_article_pipeline_is_refused_for_what_it_does_to_each_task(tasks) -> None:
    grid = audit(ARTICLE, tasks).grid()
    crop = grid["[2] RandomResizedCrop"]
    for name in ("left", "right"):
        assert not crop[name].allowed and crop[name].effect is LabelEffect.BREAKS
        assert "outputs 224 x 224 images, and the task takes 28 x 28" in crop[name].reason
        assert re.search(r"in \d+% of 128 draws on the data less than 90% of the object mask == "
                         r"\d \((left|right)\) stays in view", crop[name].reason)
    # The mask moves with a crop, but the dense head outputs 28 x 28 only.
    assert not crop["mask"].allowed and "stays in view" not in crop["mask"].reason
    assert "outputs 224 x 224" in crop["mask"].reason
    # +-30 degrees is within the digits' declared tolerance; the mask moves with it.
    assert all(row.allowed for row in grid["[0] RandomRotation"].values())


@pytest.mark.parametrize("crop", [
    v2.RandomResizedCrop(28), v2.RandomResizedCrop(28, scale=(0.3, 1)),
    v2.RandomAffine(0, translate=(0.25, 0.25)), v2.RandomPerspective(0.6, p=1.0),
    v2.CenterCrop(16),
])
def test_transforms_that_cut_digits_out_of_view_are_refused_for_the_digits(crop, tasks) -> None:
    report = audit(crop, tasks)
    refused = {row.task: row.reason for row in report.problems()}
    assert {"left", "right"} & set(refused), str(report)
    for reason in refused.values():
        assert "stays in view" in reason or "outputs" in reason


def test_the_default_crop_figure_matches_a_direct_count(tasks) -> None:
    """The audit's visible fraction is the mask's own count: crop the masks with the same
    boxes (nearest, no resampling of the count) and compare the fraction of draws short."""
    from mtlaug_lib.augment.probe import DRAWS

    data = course_data()
    row = audit(v2.RandomResizedCrop(28), tasks).grid()["RandomResizedCrop"]["left"]
    audit_short = int(re.search(r"in (\d+)% of", row.reason).group(1))
    torch.manual_seed(0)
    short = 0
    for i in range(DRAWS):
        mask = data["mask"][i]
        top, left, h, w = v2.RandomResizedCrop.get_params(mask[None], (0.08, 1.0), (3 / 4, 4 / 3))
        inside = (mask[top:top + h, left:left + w] == 1).sum() / (mask == 1).sum()
        short += bool(inside < 0.9)
    assert abs(audit_short - 100 * short / DRAWS) <= 8  # different draws, same distribution


@pytest.mark.parametrize("transform", [
    v2.RandomRotation(10), v2.RandomAffine(15, translate=(0.06, 0.06), scale=(0.9, 1.1)),
    v2.RandomResizedCrop(28, scale=(0.85, 1.0)), v2.RandomCrop(28, padding=2),
    v2.RandomRotation(30), v2.Compose([v2.RandomResizedCrop(56, scale=(0.9, 1)), v2.Resize(28)]),
])
def test_small_rotations_shifts_and_crops_that_keep_the_digits_are_allowed(transform, tasks
                                                                          ) -> None:
    report = audit(transform, tasks)
    assert report.ok, str(report)
    reasons = [row.reason for row in report if row.task == "left" and row.kind == "geometric"]
    assert all("measured over 128 draws" in r for r in reasons)


def test_rotations_past_a_tasks_tolerance_are_refused(tasks) -> None:
    report = audit(v2.RandomRotation(60), tasks)
    refused = {row.task: row.reason for row in report.problems()}
    assert set(refused) == {"left", "right"}  # a mask turns with the image
    assert re.search(r"rotates by up to (5\d|60)\.\d° \(measured over 128 draws\), past the "
                     r"±30°", refused["left"])
    # The tolerance is the task's: a task that declares none accepts any rotation.
    free = {"left": replace(tasks["left"], max_rotation=None, region=None)}
    assert audit(v2.RandomRotation(60), free).ok
    # The course's batch augmenter is measured the same way.
    with pytest.raises(LabelSafetyError, match=r"BatchAugment.affine \(geometric\) x task "
                       r"'left': it rotates by up to"):
        BatchAugment(tasks, degrees=90)


def test_the_output_size_must_be_what_the_tasks_take(tasks) -> None:
    refused = {row.task for row in audit(v2.Resize(32), tasks).problems()}
    assert refused == {"left", "right", "mask"}
    # A random output size is judged over all its draws, not one.
    reason = audit(v2.RandomResize(24, 33), tasks).problems()[0].reason
    assert re.search(r"it outputs (\d+ x \d+, ){3,}", reason), reason
    # Resizing back restores the size: only the pipeline's output size counts.
    assert audit(v2.Compose([v2.Resize(32), v2.CenterCrop(28)]), tasks).ok


def test_a_label_map_must_repair_what_the_flip_does_on_the_data(mask_only, tasks) -> None:
    flip = v2.RandomHorizontalFlip()
    assert audit(flip, mask_only, label_maps={"mask": SWAP}).ok
    # A permutation that exchanges the wrong classes is measured and refused.
    row = audit(flip, mask_only, label_maps={"mask": {0: 1, 1: 0}}).problems()[0]
    assert re.search(r"does not repair it: after the flip and the map, class 0 sits at x = "
                     r"\d+\.\d on average, nearer where class 2 belongs", row.reason)
    # Maps that change nothing are errors, not repairs.
    with pytest.raises(ValueError, match=r"maps class\(es\) \[1\] to themselves"):
        audit(flip, mask_only, label_maps={"mask": {1: 1}})
    with pytest.raises(ValueError, match=r"maps class\(es\) \[0\] to themselves"):
        audit(flip, mask_only, label_maps={"mask": {0: 0, 1: 2, 2: 1}})
    with pytest.raises(ValueError, match="not a permutation"):
        audit(flip, mask_only, label_maps={"mask": {1: 2}})
    # No map of digit classes repairs a mirrored digit.
    report = audit(flip, tasks, label_maps={"mask": SWAP, "left": {2: 5, 5: 2}})
    assert "no label map repairs it" in report.grid()["RandomHorizontalFlip"]["left"].reason
    # The mask is flipped with the same permutation under a vertical flip? No: a vertical flip
    # keeps each digit on its side, so the mask's labels just move.
    assert audit(v2.RandomVerticalFlip(), mask_only).ok


def test_the_audit_is_repeatable_and_leaves_the_random_state_alone(tasks) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    first = audit(v2.RandomResizedCrop(28), tasks)
    assert torch.equal(torch.rand(3), expected)  # the audit drew from its own seed
    assert [r.reason for r in first] == [r.reason for r in audit(v2.RandomResizedCrop(28), tasks)]


def test_data_for_the_audit_is_checked(tasks) -> None:
    with pytest.raises(ValueError, match="argument 'data' has no mask 'mask'"):
        audit(v2.RandomRotation(10), tasks, data={"image": torch.zeros(4, 3, 28, 28)})
    with pytest.raises(TypeError, match="argument 'data' is a list"):
        audit(v2.RandomRotation(10), tasks, data=[1, 2])
