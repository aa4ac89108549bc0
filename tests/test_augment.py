"""Sample-level augmentation: torchvision v2 on a sample dict through ``SampleTransform``, the
course's ``RandomFlip`` with label maps, and the augmentation benchmark.

Property tests: under every transform the audit allows, with random parameters, the augmented
mask stays on the augmented image's digit pixels (``mask_alignment``) and labels stay valid;
a mask left behind fails the same check (so the check can fail).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torchvision.transforms as v1
from augment_checks import (
    BILINEAR,
    LABELLED_WITH_INK,
    STRONG_INK_LABELLED,
    SWAP,
    assert_aligned,
    left_of_right,
)
from torch.utils.data import DataLoader
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtlaug_lib.augment.alignment import mask_alignment
from mtlaug_lib.augment.audit import audit, declare_kind
from mtlaug_lib.augment.flip import RandomFlip
from mtlaug_lib.augment.mixing import CutMix
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.data.multidigits import MultiDigits

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=64, seed=0)


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
def test_sample_transform_keeps_the_mask_on_the_digits(transform, which, data, unlimited
                                                        ) -> None:
    # The mechanics of moving a mask, over ranges wider than the audit allows for the digits
    # (test_audit checks what it refuses): tasks without those limits.
    chosen = unlimited if which == "all" else {"mask": unlimited["mask"]}
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
