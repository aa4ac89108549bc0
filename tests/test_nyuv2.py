"""The NYUv2 loader on a small FAKE copy written in MTAN's layout (nothing real, nothing
downloaded): samples in the course's conventions, the split mapping, resizing that keeps holes
and invents no label values, TensorLoader over it, and errors that name what was looked for."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mtlaug_lib.core.task_kinds import IGNORE_INDEX
from mtlaug_lib.data import TensorLoader
from mtlaug_lib.data.nyuv2 import NYUV2_CLASSES, NYUV2_NUM_CLASSES, NYUv2

H, W = 12, 16
SIZES = {"train": 3, "val": 2}
HOLE = (slice(0, 4), slice(0, 6))  # a block without depth or normals in every sample


def fake_sample(rng: np.random.Generator, label_dtype: type) -> dict[str, np.ndarray]:
    """One sample as MTAN stores it: channels last, labels -1 .. 12, 0 where depth is missing."""
    image = rng.integers(0, 256, (H, W, 3)) / 255.0  # float64 multiples of 1/255, as MTAN's
    label = rng.integers(0, NYUV2_NUM_CLASSES, (H, W))
    label[rng.random((H, W)) < 0.2] = -1  # unlabelled pixels
    depth = rng.uniform(0.5, 9.5, (H, W, 1)).astype(np.float32)
    normal = rng.normal(size=(H, W, 3))
    normal = (normal / np.linalg.norm(normal, axis=-1, keepdims=True)).astype(np.float32)
    depth[HOLE] = 0
    normal[HOLE] = 0
    return {"image": image, "label": label.astype(label_dtype), "depth": depth,
            "normal": normal}


def write_fake_nyuv2(root: Path, seed: int = 0) -> dict[str, list[dict[str, np.ndarray]]]:
    """A fake copy under ``root`` (train: labels stored as float32, val: as int64, since the
    real dtype is not documented); returns the stored arrays by folder."""
    rng = np.random.default_rng(seed)
    stored = {}
    for folder, n in SIZES.items():
        stored[folder] = []
        for index in range(n):
            sample = fake_sample(rng, np.float32 if folder == "train" else np.int64)
            for kind, array in sample.items():
                (root / folder / kind).mkdir(parents=True, exist_ok=True)
                np.save(root / folder / kind / f"{index}.npy", array)
            stored[folder].append(sample)
    return stored


@pytest.fixture
def fake(tmp_path: Path) -> tuple[Path, dict]:
    return tmp_path, write_fake_nyuv2(tmp_path)


def test_a_sample_is_the_stored_arrays_in_the_course_conventions(fake) -> None:
    root, stored = fake
    data = NYUv2(root, "train")
    assert len(data) == 3 and data.stored_size == (H, W)
    for index in range(len(data)):
        sample, raw = data[index], stored["train"][index]
        assert sample["image"].shape == (3, H, W) and sample["image"].dtype == torch.float32
        assert sample["semantic"].shape == (H, W) and sample["semantic"].dtype == torch.int64
        assert sample["depth"].shape == (H, W) and sample["depth"].dtype == torch.float32
        assert sample["normals"].shape == (3, H, W) and sample["normals"].dtype == torch.float32
        # channels last -> channels first, values unchanged
        assert torch.allclose(sample["image"], torch.from_numpy(raw["image"]).permute(2, 0, 1)
                              .float())
        assert 0 <= sample["image"].min() and sample["image"].max() <= 1
        assert torch.equal(sample["semantic"], torch.from_numpy(raw["label"]).long())
        assert torch.equal(sample["depth"], torch.from_numpy(raw["depth"][..., 0]))
        assert torch.allclose(sample["normals"], torch.from_numpy(raw["normal"]).permute(2, 0, 1),
                              atol=1e-6)
        # holes: depth 0 and normal (0, 0, 0) exactly there; unit normals everywhere else
        hole = torch.zeros(H, W, dtype=torch.bool)
        hole[HOLE] = True
        assert torch.equal(sample["depth"] == 0, hole)
        length = sample["normals"].norm(dim=0)
        assert torch.all(length[hole] == 0)
        assert torch.allclose(length[~hole], torch.ones(()), atol=1e-5)
    assert data.num_classes == len(data.class_names) == len(NYUV2_CLASSES) == 13


def test_unlabelled_pixels_become_ignore_index(fake) -> None:
    root, stored = fake
    for split, folder in (("train", "train"), ("test", "val")):  # float32 and int64 labels
        semantic = NYUv2(root, split)[0]["semantic"]
        unlabelled = torch.from_numpy(stored[folder][0]["label"] == -1)
        assert IGNORE_INDEX == -1  # the course's convention (shared with MTAN's files)
        assert unlabelled.any() and torch.equal(semantic == IGNORE_INDEX, unlabelled)
        labelled = semantic[~unlabelled]
        assert labelled.min() >= 0 and labelled.max() < NYUV2_NUM_CLASSES


def test_the_test_split_reads_the_val_folder(fake) -> None:
    root, stored = fake
    test = NYUv2(root, "test")
    assert len(test) == SIZES["val"]
    for index in range(len(test)):
        expected = torch.from_numpy(stored["val"][index]["depth"][..., 0])
        assert torch.equal(test[index]["depth"], expected)
    assert not torch.equal(test[1]["depth"], NYUv2(root, "train")[1]["depth"])


def test_a_batch_stacks_the_samples_in_order(fake) -> None:
    root, _ = fake
    data = NYUv2(root, "train")
    batch = data.batch(torch.tensor([1, 0, -1]))
    assert set(batch) == {"image", "semantic", "depth", "normals"}
    assert batch["image"].shape == (3, 3, H, W) and batch["semantic"].dtype == torch.int64
    for row, index in enumerate([1, 0, 2]):
        for key, value in data[index].items():
            assert torch.equal(batch[key][row], value)
    assert torch.equal(data.batch([1])["image"][0], data[1]["image"])  # a list works too


def test_files_are_read_when_a_sample_is_asked_for(fake) -> None:
    """Lazy: nothing is held from construction time, so a changed file is read anew."""
    root, stored = fake
    data = NYUv2(root, "train")
    first = data[0]["image"]
    np.save(root / "train" / "image" / "0.npy", 1.0 - stored["train"][0]["image"])
    assert torch.allclose(data[0]["image"], 1.0 - first)
    assert torch.allclose(data[0]["image"], 1.0 - torch.from_numpy(stored["train"][0]["image"])
                          .permute(2, 0, 1).float())


def test_normals_are_renormalised_and_short_ones_are_holes(fake) -> None:
    """Stored normals are unit only up to rounding (float16, resized copies): the loader
    makes them unit; a vector too short to have a direction (a blend with a hole) is a hole."""
    root, stored = fake
    normal = stored["train"][0]["normal"].copy()
    normal[8:, :] *= 0.9  # off unit
    normal[5, 10] *= 0.1  # no reliable direction
    np.save(root / "train" / "normal" / "0.npy", normal.astype(np.float16))
    normals = NYUv2(root, "train")[0]["normals"]
    length = normals.norm(dim=0)
    assert torch.allclose(length[8:], torch.ones(()), atol=1e-5)
    assert length[5, 10] == 0 and length[5, 11] > 0.99
    direction = torch.from_numpy(stored["train"][0]["normal"][8:]).permute(2, 0, 1)
    assert torch.allclose(normals[:, 8:], direction, atol=2e-3)  # float16 rounding


def test_resizing_down_samples_every_label_map_at_one_stored_pixel(fake) -> None:
    root, stored = fake
    sample = NYUv2(root, "train", image_size=(6, 8))[0]
    raw = stored["train"][0]
    assert sample["image"].shape == (3, 6, 8) and sample["normals"].shape == (3, 6, 8)
    assert sample["semantic"].shape == sample["depth"].shape == (6, 8)
    assert sample["semantic"].dtype == torch.int64
    # no value is invented: each output pixel's (class, depth, normal) is one stored pixel's
    stored_pixels = torch.from_numpy(np.concatenate(
        [raw["label"][..., None], raw["depth"], raw["normal"]], axis=-1).reshape(-1, 5)).float()
    out = torch.cat([sample["semantic"][None].float(), sample["depth"][None],
                     sample["normals"]]).permute(1, 2, 0).reshape(-1, 5)
    distance = torch.cdist(out, stored_pixels, compute_mode="donot_use_mm_for_euclid_dist")
    assert distance.min(dim=1).values.max() < 1e-5
    # holes stay holes where they were (the stored 4 x 6 block is 2 x 3 at half size)
    assert torch.all(sample["depth"][:2, :3] == 0) and torch.all(sample["normals"][:, :2, :3] == 0)
    assert torch.all(sample["depth"][2:] > 0) and torch.all(sample["depth"][:, 3:] > 0)
    # the image is filtered, not sampled: its mean colour is kept
    mean = torch.from_numpy(raw["image"]).float().mean(dim=(0, 1))
    assert torch.allclose(sample["image"].mean(dim=(1, 2)), mean, atol=0.03)
    assert 0 <= sample["image"].min() and sample["image"].max() <= 1


def test_resizing_up_keeps_the_holes_share_and_units(fake) -> None:
    root, _ = fake
    data, big = NYUv2(root, "train"), NYUv2(root, "train", image_size=(2 * H, 2 * W))
    small, large = data.batch([0, 1]), big.batch([0, 1])
    assert large["depth"].shape == (2, 2 * H, 2 * W)
    assert int((large["depth"] == 0).sum()) == 4 * int((small["depth"] == 0).sum())
    length = large["normals"].norm(dim=1)
    assert torch.all((length == 0) == (large["depth"] == 0))
    assert torch.allclose(length[length > 0], torch.ones(()), atol=1e-5)


def test_tensor_loader_serves_every_sample_once_per_epoch(fake) -> None:
    root, stored = fake
    data = NYUv2(root, "train", image_size=(6, 8))
    loader = TensorLoader(data, batch_size=2, shuffle=True, seed=1)
    batches = list(loader)
    assert [len(b["image"]) for b in batches] == [2, 1]
    assert batches[0]["image"].shape[1:] == (3, 6, 8)
    seen = torch.cat([b["depth"] for b in batches])
    every = data.batch(torch.arange(3))["depth"]
    assert sorted(map(bytes, (d.numpy() for d in seen))) == \
        sorted(map(bytes, (d.numpy() for d in every)))


# ------------------------------------------------------------------------------------------
# Errors that say what was looked for


def test_a_missing_root_or_split_folder_is_named(tmp_path: Path, fake) -> None:
    root, _ = fake
    with pytest.raises(FileNotFoundError, match="does not exist") as error:
        NYUv2(tmp_path / "nowhere")
    assert "nowhere" in str(error.value) and "val" in str(error.value)
    for path in (root / "val" / kind / f"{i}.npy" for kind in ("image", "label", "depth",
                 "normal") for i in range(2)):
        path.unlink()
    for kind in ("image", "label", "depth", "normal"):
        (root / "val" / kind).rmdir()
    (root / "val").rmdir()
    with pytest.raises(FileNotFoundError, match=r"'test' is read from .*val'.*does not exist"):
        NYUv2(root, "test")
    NYUv2(root, "train")  # the other split is fine


def test_a_missing_sub_folder_is_named(fake) -> None:
    root, _ = fake
    for i in range(3):
        (root / "train" / "normal" / f"{i}.npy").unlink()
    (root / "train" / "normal").rmdir()
    with pytest.raises(FileNotFoundError, match=r"train/normal' does not exist"):
        NYUv2(root, "train")


def test_a_truncated_copy_is_found(fake) -> None:
    root, _ = fake
    (root / "train" / "depth" / "2.npy").unlink()  # the last file: counts disagree
    with pytest.raises(ValueError, match=r"disagree.*depth/ 2"):
        NYUv2(root, "train")
    (root / "train" / "label" / "0.npy").unlink()  # a gap: not 0 .. N-1
    with pytest.raises(ValueError, match=r"train/label' is not contiguous.*0\.npy"):
        NYUv2(root, "train")


def test_a_truncated_file_is_found_when_the_data_set_is_made(fake) -> None:
    root, _ = fake
    path = root / "val" / "normal" / "1.npy"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(ValueError, match=r"val/normal/1\.npy' is truncated"):
        NYUv2(root, "test")


def test_a_wrong_shape_or_dtype_names_the_file(fake) -> None:
    root, stored = fake
    np.save(root / "train" / "depth" / "1.npy", np.ones((H, W - 1, 1), np.float32))
    with pytest.raises(ValueError, match=r"depth/1\.npy' has shape \(12, 15, 1\)"):
        NYUv2(root, "train")
    np.save(root / "train" / "depth" / "1.npy", stored["train"][1]["depth"])
    np.save(root / "train" / "image" / "2.npy", (stored["train"][2]["image"] * 255)
            .astype(np.uint8))
    with pytest.raises(ValueError, match=r"image/2\.npy' has dtype uint8, expected floats"):
        NYUv2(root, "train")


def test_non_finite_depth_or_normals_name_the_file_and_count(fake) -> None:
    root, stored = fake
    depth = stored["train"][1]["depth"].copy()
    depth[5, 7:10] = np.nan
    np.save(root / "train" / "depth" / "1.npy", depth)
    normal = stored["train"][2]["normal"].copy()
    normal[6, 3, 0] = np.inf
    np.save(root / "train" / "normal" / "2.npy", normal)
    data = NYUv2(root, "train")  # values are checked when a sample is read
    data[0]
    with pytest.raises(ValueError, match=r"depth/1\.npy' holds 3 non-finite depth"):
        data[1]
    with pytest.raises(ValueError, match=r"normal/2\.npy' holds 1 non-finite normal"):
        data.batch(torch.tensor([0, 2]))


@pytest.mark.parametrize("kind, corrupt, message", [
    ("image", lambda a: a * 255, r"image/1\.npy' holds values in .*, expected an image in"),
    ("depth", lambda a: -a, r"depth/1\.npy' holds \d+ negative depths"),
    ("normal", lambda a: (a + 1) * 127.5, r"normal/1\.npy' holds \d+ normals longer"),  # RGB
])
def test_values_in_a_wrong_encoding_name_the_file(fake, kind, corrupt, message) -> None:
    root, stored = fake
    np.save(root / "train" / kind / "1.npy", corrupt(stored["train"][1][kind]))
    data = NYUv2(root, "train")
    with pytest.raises(ValueError, match=message):
        data[1]


def test_labels_outside_the_classes_name_the_file(fake) -> None:
    root, stored = fake
    label = stored["val"][0]["label"].copy()
    label[0, :2] = [NYUV2_NUM_CLASSES, -2]
    np.save(root / "val" / "label" / "0.npy", label)
    with pytest.raises(ValueError, match=r"label/0\.npy' holds 2 labels outside \[-1, 13\)"):
        NYUv2(root, "test")[0]


def test_bad_arguments_are_named(fake) -> None:
    root, _ = fake
    with pytest.raises(ValueError, match="argument 'split' is 'val'"):
        NYUv2(root, "val")
    with pytest.raises(ValueError, match="argument 'image_size"):
        NYUv2(root, image_size=(0, 8))
    with pytest.raises(ValueError, match="argument 'image_size' is 8"):
        NYUv2(root, image_size=8)
    data = NYUv2(root)
    with pytest.raises(IndexError, match="argument 'index' is 3"):
        data[3]
    with pytest.raises(IndexError, match="argument 'index' holds"):
        data.batch(torch.tensor([0, 5]))
