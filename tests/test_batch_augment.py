"""Batch augmentation: ``BatchAugment``'s per-sample affine, flip and colour jitter on a whole
batch, its parameters, its errors, and label maps applied where the flip fired.

Property tests: with random parameters, the augmented masks stay on the augmented images' digit
pixels (``mask_alignment``) and labels stay valid; the masks before augmentation fail the same
check (so the check can fail).
"""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch
from augment_checks import (
    BILINEAR,
    LABELLED_WITH_INK,
    STRONG_INK_LABELLED,
    SWAP,
    assert_aligned,
    left_of_right,
)
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF

from mtlaug_lib.augment.alignment import mask_alignment
from mtlaug_lib.augment.audit import LabelSafetyError, audit
from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.functional import AugmentParams, color_jitter
from mtlaug_lib.augment.repair import check_pipeline
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.core.tasks import CLASSIFICATION, SEGMENTATION, Task, select_tasks
from mtlaug_lib.data.multidigits import MultiDigits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=64, seed=0)


# =============================================================================================
# Batches: BatchAugment


def test_each_sample_gets_torchvisions_affine_with_its_own_parameters(data, unlimited) -> None:
    aug = BatchAugment(unlimited, degrees=40, translate=(0.2, 0.1), scale=(0.7, 1.3), shear=20,
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
def test_batch_augment_keeps_the_mask_on_the_digits_and_labels_valid(data, unlimited,
                                                                   seed) -> None:
    aug = BatchAugment(unlimited, degrees=30, translate=(0.1, 0.1), scale=(0.7, 1.3), shear=15,
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


def test_v2_draws_one_rotation_for_a_whole_batch_torchvision_8484(data, unlimited) -> None:
    """torchvision v2 draws its random parameters once per call, so a batched
    ``tv_tensors.Image`` gets the same rotation for every image; BatchAugment draws per sample."""
    same = data.batch(torch.zeros(8, dtype=torch.int64))["image"]  # one image, eight times
    torch.manual_seed(0)
    rotated = v2.RandomRotation(degrees=(10, 80))(tv_tensors.Image(same))
    assert not torch.equal(rotated[0], same[0])  # it did rotate
    assert all(torch.equal(rotated[i], rotated[0]) for i in range(8))  # by one angle
    ours = BatchAugment(unlimited, degrees=(10, 80), generator=0)({"image": same})["image"]
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
         r"batch\['mask'\] is a Tensor of shape \(4, 14, 14\).* expected integer labels B x H x W"),
        ({"left": torch.zeros(4)}, ValueError, r"batch\['left'\] .* expected integer labels B"),
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
    aug = BatchAugment(tasks, degrees=10)
    with pytest.raises(ValueError, match="argument 'params' holds 3 samples, the batch 4"):
        aug(data.batch(torch.arange(4)), AugmentParams.identity(3))


def test_custom_tasks_drive_what_moves(data) -> None:
    # A task that declares that rotations break it (orientation) refuses a rotation.
    tasks = {"upright": Task("upright", CLASSIFICATION, 2, label_effects={"geometric": "breaks"}),
             "mask": Task("mask", SEGMENTATION, 3)}
    with pytest.raises(LabelSafetyError, match="task 'upright'"):
        BatchAugment(tasks, degrees=10)
    assert BatchAugment(tasks, brightness=0.2).audit_parts()[0].kind == "photometric"


def test_a_class_label_map_applies_to_class_labels_when_the_flip_fires(data, tasks) -> None:
    # A task whose classes a mirror swaps: which half holds more of the left digit's ink.
    side = Task("side", CLASSIFICATION, 2, label_effects={"horizontal_flip": "permutes"})
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
