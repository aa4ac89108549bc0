"""Augmentation: the label-safety audit, the sample-level v2 wrapper, the batch augmenter.

Property tests: under every transform the audit allows, with random parameters, the augmented
mask stays on the augmented image's digit pixels (``mask_alignment``) and labels stay valid;
a mask left behind fails the same check (so the check can fail).
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest
import torch
import torchvision.transforms as v1
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from mtlaug_lib.augment import (
    Audit,
    AugmentParams,
    BatchAugment,
    LabelSafetyError,
    RandomFlip,
    SampleTransform,
    audit,
    check_pipeline,
    color_jitter,
    declare_kind,
    mask_alignment,
    transform_kinds,
)
from mtlaug_lib.data import MultiDigits
from mtlaug_lib.mixing import CutMix, MixUp
from mtlaug_lib.tasks import (
    CLASSIFICATION,
    SEGMENTATION,
    LabelEffect,
    Task,
    multidigits_tasks,
    select_tasks,
)

BILINEAR = v2.InterpolationMode.BILINEAR
SWAP = {1: 2, 2: 1}  # the mask's left and right digit classes
# A correct mask labels ink (nearly) only, and covers (nearly) all strong ink; a mask left
# behind scores about 0.84 and 0.71 on these data (see test_a_mask_left_behind_fails_...).
LABELLED_WITH_INK, STRONG_INK_LABELLED = 0.99, 0.9


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Small tensor operations run faster on one thread on a shared 2-core machine (a second
    intra-op thread stalls whenever another process holds a core)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=64, seed=0)


@pytest.fixture(scope="module")
def tasks() -> dict[str, Task]:
    return multidigits_tasks()


@pytest.fixture(scope="module")
def mask_only(tasks) -> dict[str, Task]:
    return select_tasks(tasks, ["mask"])


def left_of_right(mask: torch.Tensor) -> torch.Tensor:
    """Per sample (B x H x W): is the mean column of class-1 pixels left of class-2 pixels?"""
    cols = torch.arange(mask.shape[-1], dtype=torch.float32)

    def centre(c: int) -> torch.Tensor:
        on = (mask == c).float()
        return (on * cols).sum((-2, -1)) / on.sum((-2, -1)).clamp_min(1)

    return centre(1) < centre(2)


def assert_aligned(image: torch.Tensor, mask: torch.Tensor) -> None:
    with_ink, labelled = mask_alignment(image, mask)
    assert with_ink >= LABELLED_WITH_INK, f"labelled pixels without ink: {1 - with_ink:.3f}"
    assert labelled >= STRONG_INK_LABELLED, f"strong ink not labelled: {1 - labelled:.3f}"


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


# =============================================================================================
# Samples: torchvision v2 through SampleTransform

# Every allowed transform, with random parameters: (transform, tasks key) where "mask" means
# that the transform breaks left/right, so only the mask travels with the image.
ALLOWED = [
    (v2.RandomRotation(30, interpolation=BILINEAR), "all"),
    (v2.RandomRotation(30), "all"),
    (v2.RandomAffine(20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10,
                     interpolation=BILINEAR), "all"),
    (v2.RandomResizedCrop(28, scale=(0.6, 1.0)), "all"),
    (v2.RandomCrop(28, padding=4), "all"),
    (v2.Resize(40), "all"),
    (v2.Resize(20), "all"),
    (v2.CenterCrop(20), "all"),
    (v2.RandomPerspective(0.4, p=1.0, interpolation=BILINEAR), "all"),
    (v2.ElasticTransform(alpha=30.0), "all"),
    (v2.ColorJitter(0.4, 0.4, 0.4, 0.2), "all"),
    (v2.RandomGrayscale(p=1.0), "all"),
    (v2.GaussianBlur(3, sigma=(0.1, 1.0)), "all"),
    (v2.RandomInvert(p=1.0), "all"),
    (v2.Normalize([0.1] * 3, [0.3] * 3), "all"),
    (v2.RandomChannelPermutation(), "all"),
    (v2.RandomVerticalFlip(p=0.5), "mask"),
    (RandomFlip("horizontal", p=0.5, label_maps={"mask": SWAP}), "mask"),
]


@pytest.mark.parametrize(("transform", "which"), ALLOWED,
                         ids=[type(t).__name__ + f"-{i}" for i, (t, _) in enumerate(ALLOWED)])
def test_sample_transform_keeps_the_mask_on_the_digits(transform, which, data, tasks,
                                                        mask_only) -> None:
    chosen = tasks if which == "all" else mask_only
    assert audit(transform, chosen).ok  # the property is claimed for allowed transforms only
    st = SampleTransform(transform, chosen)
    torch.manual_seed(0)
    outs = []
    for i in range(24):
        sample = {k: v for k, v in data[i].items() if k == "image" or k in chosen}
        out = st(sample)
        assert set(out) == set(sample)
        assert type(out["image"]) is torch.Tensor and type(out["mask"]) is torch.Tensor
        assert out["image"].dtype == torch.float32 and out["image"].shape[0] == 3
        assert out["mask"].dtype == torch.int64 and out["mask"].shape == out["image"].shape[1:]
        assert set(out["mask"].unique().tolist()) <= {0, 1, 2}
        for key in ("left", "right"):
            if key in sample:
                assert out[key] is sample[key]  # class labels pass through untouched
        outs.append(out)
    images = torch.stack([o["image"] for o in outs])
    masks = torch.stack([o["mask"] for o in outs])
    assert_aligned(images, masks)
    # The mask's left digit stays left of its right digit (the flip's label map at work).
    assert left_of_right(masks).all()


def test_the_horizontal_flip_fires_on_some_samples_and_maps_the_mask_when_it_does(
    data, mask_only
) -> None:
    st = SampleTransform(v2.RandomHorizontalFlip(p=0.5), mask_only, label_maps={"mask": SWAP})
    assert isinstance(st.transform, RandomFlip)
    torch.manual_seed(1)
    fired = 0
    for i in range(32):
        sample = {"image": data[i]["image"], "mask": data[i]["mask"]}
        out = st(sample)
        if torch.equal(out["image"], sample["image"]):
            assert torch.equal(out["mask"], sample["mask"])
        else:
            fired += 1
            assert torch.equal(out["image"], sample["image"].flip(-1))
            flipped = sample["mask"].flip(-1)
            swapped = torch.where(flipped == 1, 2, torch.where(flipped == 2, 1, flipped))
            assert torch.equal(out["mask"], swapped)
    assert 5 < fired < 27  # p = 0.5: both outcomes occur


def test_without_the_label_map_a_flipped_mask_has_its_sides_swapped(data) -> None:
    # What the label map repairs: a plain flip puts the "left" class on the right.
    masks = torch.stack([data[i]["mask"] for i in range(16)])
    assert left_of_right(masks).all()
    assert not left_of_right(masks.flip(-1)).any()


def test_a_mask_left_behind_fails_the_alignment_check(data) -> None:
    st = SampleTransform(v2.RandomAffine(30, translate=(0.15, 0.15), interpolation=BILINEAR))
    torch.manual_seed(0)
    outs = [st(data[i]) for i in range(24)]
    images = torch.stack([o["image"] for o in outs])
    behind = torch.stack([data[i]["mask"] for i in range(24)])
    with_ink, labelled = mask_alignment(images, behind)
    assert with_ink < LABELLED_WITH_INK and labelled < STRONG_INK_LABELLED


def test_sample_transform_in_a_dataloader(tasks) -> None:
    ds = MultiDigits("train", size=16, seed=1,
                     transform=SampleTransform(v2.RandomRotation(20), tasks))
    batch = next(iter(DataLoader(ds, batch_size=8)))
    assert batch["image"].shape == (8, 3, 28, 28) and batch["mask"].shape == (8, 28, 28)
    assert batch["left"].dtype == torch.int64 and batch["left"].shape == (8,)
    assert torch.equal(batch["left"], ds.left[:8])


def test_sample_transform_accepts_uint8_images_and_int_labels(tasks) -> None:
    st = SampleTransform(v2.Compose([v2.RandomRotation(10), v2.ToDtype(torch.float32,
                                                                       scale=True)]), tasks)
    out = st({"image": torch.zeros(3, 28, 28, dtype=torch.uint8), "left": 3,
              "mask": torch.zeros(28, 28, dtype=torch.uint8)})
    assert out["image"].dtype == torch.float32 and out["left"] == 3
    assert out["mask"].dtype == torch.uint8


@pytest.mark.parametrize(
    ("change", "error", "pattern"),
    [
        ({"depth": torch.zeros(28, 28)}, KeyError,
         "the sample holds 'depth', which is neither 'image' nor one of the tasks"),
        ({"mask": torch.zeros(20, 20, dtype=torch.int64)}, ValueError,
         r"sample\['mask'\] has shape \(20, 20\), expected \(28, 28\), the image's"),
        ({"mask": tv_tensors.BoundingBoxes([[0, 0, 4, 4]], format="XYXY", canvas_size=(28, 28))},
         TypeError, r"sample\['mask'\] \(a segmentation task\) is a BoundingBoxes"),
        ({"mask": torch.zeros(28, 28)}, TypeError, "expected an integer tensor H x W"),
        ({"left": torch.tensor(2.0)}, TypeError,
         r"sample\['left'\] \(a classification task\) is a Tensor of shape \(\) and dtype "
         "torch.float32, expected a class index"),
        ({"left": "two"}, TypeError, r"sample\['left'\] \(a classification task\) is a str"),
        ({"image": torch.zeros(2, 3, 28, 28)}, ValueError,
         r"sample\['image'\] has shape \(2, 3, 28, 28\) .* expected one image C x H x W"),
        ({"image": [[0.0]]}, TypeError, r"sample\['image'\] is a list, expected a tensor"),
    ],
)
def test_sample_transform_errors_on_what_it_cannot_transform(data, tasks, change, error,
                                                             pattern) -> None:
    st = SampleTransform(v2.RandomRotation(10), tasks)
    with pytest.raises(error, match=pattern):
        st({**data[0], **change})


def test_sample_transform_refuses_v1_batch_and_size_changing_transforms(data, tasks) -> None:
    with pytest.raises(TypeError, match=r"RandomRotation comes from torchvision.transforms \(v1\)"):
        SampleTransform(v2.Compose([v1.RandomRotation(10)]), tasks)
    with pytest.raises(TypeError, match="CutMix works on whole batches"):
        SampleTransform(CutMix(tasks), tasks)
    with pytest.raises(TypeError, match="MixUp works on whole batches"):
        SampleTransform(v2.MixUp(num_classes=10), tasks)
    # A (wrongly declared) transform that crops the image but not the mask.
    crop = declare_kind(v2.Lambda(lambda x: tv_tensors.wrap(x[..., :14, :14], like=x),
                                  tv_tensors.Image), "photometric")
    with pytest.raises(ValueError, match="a transform changed the image without the mask"):
        SampleTransform(crop, tasks)(data[0])
    with pytest.raises(TypeError, match="returned the image as a Tensor"):
        SampleTransform(v2.Compose([v2.RandomRotation(5),
                                    declare_kind(v2.ToPureTensor(), "photometric")]),
                        tasks)(data[0])


# =============================================================================================
# Batches: BatchAugment


def test_each_sample_gets_torchvisions_affine_with_its_own_parameters(data, tasks) -> None:
    aug = BatchAugment(tasks, degrees=40, translate=(0.2, 0.1), scale=(0.7, 1.3), shear=20,
                       generator=3)
    batch = data.batch(torch.arange(12))
    out = aug(batch)
    p = aug.last_params
    assert p.angle.std() > 5 and p.scale.std() > 0.05  # per-sample draws, not one per batch
    for i in range(12):
        args = {"angle": float(p.angle[i]), "translate": p.translate[i].tolist(),
                "scale": float(p.scale[i]), "shear": p.shear[i].tolist()}
        ref = TF.affine(batch["image"][i], interpolation=BILINEAR, **args)
        ref_mask = TF.affine(tv_tensors.Mask(batch["mask"][i]), **args)
        torch.testing.assert_close(out["image"][i], ref, atol=1e-5, rtol=0)
        assert torch.equal(out["mask"][i], ref_mask.as_subclass(torch.Tensor))
    assert torch.equal(out["left"], batch["left"]) and torch.equal(out["right"], batch["right"])


def test_the_flip_comes_after_the_affine_and_the_label_map_applies_where_it_fired(
    data, mask_only
) -> None:
    aug = BatchAugment(mask_only, degrees=20, hflip=0.5, label_maps={"mask": SWAP}, generator=0)
    batch = {k: v for k, v in data.batch(torch.arange(32)).items() if k in ("image", "mask")}
    out = aug(batch)
    p = aug.last_params
    assert 4 < int(p.flip.sum()) < 28
    plain = BatchAugment(mask_only, degrees=20)(batch, replace(p, flip=torch.zeros_like(p.flip)))
    for i in range(32):
        if p.flip[i]:
            torch.testing.assert_close(out["image"][i], plain["image"][i].flip(-1), atol=1e-5,
                                       rtol=0)
            flipped = plain["mask"][i].flip(-1)
            assert torch.equal(out["mask"][i],
                               torch.where(flipped == 1, 2, torch.where(flipped == 2, 1, flipped)))
        else:
            assert torch.equal(out["mask"][i], plain["mask"][i])
    assert left_of_right(out["mask"]).float().mean() > 0.95
    assert_aligned(out["image"], out["mask"])


def test_a_flip_without_a_label_map_is_refused_when_built(tasks) -> None:
    with pytest.raises(LabelSafetyError, match=r"BatchAugment.hflip \(horizontal_flip\) x task "
                       "'left'"):
        BatchAugment(tasks, hflip=0.5)
    unchecked = BatchAugment(tasks, hflip=0.5, check=False)  # to show what the audit says
    assert {r.task for r in audit(unchecked, tasks).problems()} == {"left", "right", "mask"}
    # check_pipeline gives the augmenter the map.
    repaired = check_pipeline(BatchAugment(select_tasks(tasks, ["mask"]), hflip=0.5,
                                           check=False),
                              select_tasks(tasks, ["mask"]), label_maps={"mask": SWAP})
    assert repaired.label_maps == {"mask": SWAP}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batch_augment_keeps_the_mask_on_the_digits_and_labels_valid(data, tasks, seed) -> None:
    aug = BatchAugment(tasks, degrees=30, translate=(0.1, 0.1), scale=(0.7, 1.3), shear=15,
                       brightness=0.4, contrast=0.4, saturation=0.4, channel_shuffle=0.5,
                       generator=seed)
    batch = data.batch(torch.arange(64))
    out = aug(batch)
    assert_aligned(out["image"], out["mask"])
    assert out["image"].shape == batch["image"].shape and out["image"].dtype == torch.float32
    assert 0 <= float(out["image"].min()) and float(out["image"].max()) <= 1
    assert out["mask"].dtype == torch.int64 and set(out["mask"].unique().tolist()) <= {0, 1, 2}
    for t in ("left", "right"):
        assert out[t] is batch[t]
    # The same check fails for the masks before augmentation.
    with_ink, labelled = mask_alignment(out["image"], batch["mask"])
    assert with_ink < LABELLED_WITH_INK and labelled < STRONG_INK_LABELLED


def test_v2_draws_one_rotation_for_a_whole_batch_torchvision_8484(data, tasks) -> None:
    """torchvision v2 draws its random parameters once per call, so a batched
    ``tv_tensors.Image`` gets the same rotation for every image; BatchAugment draws per sample."""
    same = data.batch(torch.zeros(8, dtype=torch.int64))["image"]  # one image, eight times
    torch.manual_seed(0)
    rotated = v2.RandomRotation(degrees=(10, 80))(tv_tensors.Image(same))
    assert not torch.equal(rotated[0], same[0])  # it did rotate
    assert all(torch.equal(rotated[i], rotated[0]) for i in range(8))  # by one angle
    ours = BatchAugment(tasks, degrees=(10, 80), generator=0)({"image": same})["image"]
    assert all(not torch.equal(ours[i], ours[j]) for i in range(8) for j in range(i))


def test_draws_repeat_with_a_seed_and_replay(data, tasks) -> None:
    batch = data.batch(torch.arange(16))
    kwargs = {"degrees": 30, "brightness": 0.3, "channel_shuffle": 0.5}
    a, b = BatchAugment(tasks, generator=7, **kwargs), BatchAugment(tasks, generator=7, **kwargs)
    first = a(batch)
    assert torch.equal(first["image"], b(batch)["image"])
    assert not torch.equal(a(batch)["image"], first["image"])  # the next draw differs
    replay = BatchAugment(tasks, **kwargs)(batch, b.last_params)
    assert torch.equal(replay["image"], b(batch, b.last_params)["image"])
    other = BatchAugment(tasks, generator=8, **kwargs)(batch)
    assert not torch.equal(other["image"], first["image"])


def test_identity_parameters_change_nothing(data, tasks) -> None:
    aug = BatchAugment(tasks, degrees=30, brightness=0.3, contrast=0.3, saturation=0.3,
                       channel_shuffle=1.0)
    batch = data.batch(torch.arange(8))
    out = aug(batch, AugmentParams.identity(8))
    torch.testing.assert_close(out["image"], batch["image"], atol=1e-6, rtol=0)
    assert torch.equal(out["mask"], batch["mask"])


def test_color_jitter_is_torchvisions_per_sample(data) -> None:
    images = data.batch(torch.arange(6))["image"]
    factors = {"brightness": torch.linspace(0.6, 1.4, 6), "contrast": torch.linspace(1.3, 0.5, 6),
               "saturation": torch.linspace(0.2, 1.8, 6)}
    p = replace(AugmentParams.identity(6), **factors)
    out = color_jitter(images, p)
    for i in range(6):
        ref = TF.adjust_brightness(images[i], float(factors["brightness"][i]))
        ref = TF.adjust_contrast(ref, float(factors["contrast"][i]))
        ref = TF.adjust_saturation(ref, float(factors["saturation"][i]))
        torch.testing.assert_close(out[i], ref, atol=1e-6, rtol=0)


def test_channel_shuffle_permutes_each_samples_channels(data, tasks) -> None:
    batch = data.batch(torch.arange(16))
    aug = BatchAugment(tasks, channel_shuffle=1.0, generator=0)
    out = aug(batch)
    order = aug.last_params.channels
    assert (order.sort(dim=1).values == torch.arange(3)).all()  # a permutation per sample
    assert len({tuple(o) for o in order.tolist()}) > 1  # not one for the whole batch
    for i in range(16):
        assert torch.equal(out["image"][i], batch["image"][i][order[i]])


@pytest.mark.parametrize(
    ("batch_change", "error", "pattern"),
    [
        ({"image": None}, KeyError, "expected a dict with 'image'"),
        ({"image": torch.zeros(4, 3, 28, 28, dtype=torch.uint8)}, ValueError,
         r"batch\['image'\] is a Tensor of shape \(4, 3, 28, 28\) and dtype torch.uint8, "
         "expected float B x C x H x W"),
        ({"depth": torch.zeros(4, 28, 28)}, KeyError, "holds 'depth', which is neither"),
        ({"mask": torch.zeros(4, 14, 14, dtype=torch.int64)}, ValueError,
         r"batch\['mask'\] is a Tensor of shape \(4, 14, 14\).* expected integer B x H x W"),
        ({"left": torch.zeros(4)}, ValueError, r"batch\['left'\] .* expected integer B"),
    ],
)
def test_batch_augment_errors(data, tasks, batch_change, error, pattern) -> None:
    batch = {**data.batch(torch.arange(4)), **batch_change}
    batch = {k: v for k, v in batch.items() if v is not None}
    with pytest.raises(error, match=pattern):
        BatchAugment(tasks, degrees=10)(batch)


def test_batch_augment_argument_errors(data, tasks) -> None:
    with pytest.raises(ValueError, match=r"argument 'degrees' is -5"):
        BatchAugment(tasks, degrees=-5)
    with pytest.raises(ValueError, match=r"argument 'translate' is \(0.5, 2\), expected a pair"):
        BatchAugment(tasks, translate=(0.5, 2))
    with pytest.raises(ValueError, match=r"argument 'scale' is \(1.2, 0.8\), expected lo <= hi"):
        BatchAugment(tasks, scale=(1.2, 0.8))
    with pytest.raises(ValueError, match=r"argument 'hflip' is 1.5, expected a probability"):
        BatchAugment(tasks, hflip=1.5)
    with pytest.raises(TypeError, match=r"argument 'generator' is 'seed'"):
        BatchAugment(tasks, generator="seed")
    with pytest.raises(TypeError, match="argument 'tasks'"):
        BatchAugment({"left": "not a task"})
    aug = BatchAugment(tasks, degrees=10)
    with pytest.raises(ValueError, match="argument 'params' holds 3 samples, the batch 4"):
        aug(data.batch(torch.arange(4)), AugmentParams.identity(3))


def test_custom_tasks_drive_what_moves(data) -> None:
    # A task that declares that rotations break it (orientation) refuses a rotation.
    tasks = {"upright": Task("upright", CLASSIFICATION, 2, augmentation={"geometric": "breaks"}),
             "mask": Task("mask", SEGMENTATION, 3)}
    with pytest.raises(LabelSafetyError, match="task 'upright'"):
        BatchAugment(tasks, degrees=10)
    assert BatchAugment(tasks, brightness=0.2).audit_parts()[0].kind == "photometric"


# =============================================================================================
# The benchmark still runs (tiny; no timing asserted)


def test_bench_augment_runs_and_records(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_augment.py"
    spec = importlib.util.spec_from_file_location("bench_augment", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "augment.json"
    result = bench.main(["--size", "32", "--batch-size", "16", "--rounds", "1", "--workers", "0",
                         "--threads", "0", "--out", str(out)])
    saved = json.loads(out.read_text())
    assert saved["size"] == 32 and saved["machine"]["torchvision"]
    rates = result["images_per_s (median)"]
    assert {"a_pil_dataloader", "b_tensor_per_sample", "c_batch_augment"} <= set(rates)
    assert all(r > 0 for r in rates.values())
    assert "c_batch_augment_over_a" in result["ratios (median of per-round ratios)"]


def test_a_class_label_map_applies_to_class_labels_when_the_flip_fires(data, tasks) -> None:
    # A task whose classes a mirror swaps: which half holds more of the left digit's ink.
    side = Task("side", CLASSIFICATION, 2, augmentation={"horizontal_flip": "breaks"})
    chosen = {"mask": tasks["mask"], "side": side}
    maps = {"mask": SWAP, "side": {0: 1, 1: 0}}
    st = SampleTransform(v2.RandomHorizontalFlip(p=1.0), chosen, label_maps=maps)
    sample = {"image": data[0]["image"], "mask": data[0]["mask"], "side": torch.tensor(0)}
    out = st(sample)
    assert out["side"].item() == 1 and out["side"].dtype == torch.int64
    assert st({**sample, "side": 1})["side"] == 0  # a plain int too
    aug = BatchAugment(chosen, hflip=1.0, label_maps=maps)
    batch = {"image": data.batch(torch.arange(4))["image"], "side": torch.tensor([0, 1, 1, 0])}
    assert aug(batch)["side"].tolist() == [1, 0, 0, 1]
    assert BatchAugment(chosen, hflip=0.0, label_maps=None)(batch)["side"] is batch["side"]
