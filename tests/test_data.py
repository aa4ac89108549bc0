"""MultiDigits and MultiMNIST: composition, determinism, splits and bad input."""

from __future__ import annotations

import gzip
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import (
    DIGIT,
    INK,
    RIGHT_OFFSET,
    MultiDigits,
    MultiMNIST,
    compose_pairs,
    place_on_canvas,
    sklearn_digits_as_mnist,
    source_split,
)

# Pinned on the CPU; generation uses integer arithmetic only, so it holds on every machine.
# Changing the composition changes this on purpose: update it and say why in the commit.
CHECKSUM_SEED0_TRAIN64 = "0a77e018d22bef23aed6cd4478b29a6760e0897c041ae06d739a1bdc7d61f357"


@pytest.fixture(scope="module")
def train() -> MultiDigits:
    return MultiDigits("train", size=512, seed=0)


def test_sample_format(train: MultiDigits) -> None:
    s = train[0]
    assert set(s) == {"image", "left", "right", "mask"}
    assert s["image"].shape == (3, 28, 28) and s["image"].dtype == torch.float32
    assert 0.0 <= s["image"].min() and s["image"].max() <= 1.0
    assert s["left"].dtype == torch.int64 and s["left"].ndim == 0
    assert s["mask"].shape == (28, 28) and s["mask"].dtype == torch.int64
    assert set(s["mask"].unique().tolist()) <= {0, 1, 2}
    assert 0 <= int(s["left"]) <= 9 and 0 <= int(s["right"]) <= 9


def test_each_digit_is_tinted_and_drawn_where_its_mask_says(train: MultiDigits) -> None:
    images = train.images.int()
    masks = train.masks
    ink = images.max(dim=1).values
    # Every mask pixel lies on ink; background pixels of the mask are dark.
    assert bool((ink[masks > 0] > 0).all())
    assert float(ink[masks == 0].float().mean()) < float(ink[masks > 0].float().mean()) / 4
    # The left digit's mask pixels sit toward the top left, the right digit's toward the bottom
    # right: compare centroids over the whole set.
    rows = torch.arange(28).view(1, 28, 1).expand_as(masks).float()
    cols = torch.arange(28).view(1, 1, 28).expand_as(masks).float()
    for coord in (rows, cols):
        left_c = coord[masks == 1].mean()
        right_c = coord[masks == 2].mean()
        assert right_c - left_c > 3  # the offset of 6 on the 36 canvas is ~4.7 px at 28


def test_mask_matches_the_placed_source_digits(train: MultiDigits) -> None:
    digits, _ = MultiDigits.source_digits()
    left = place_on_canvas(digits, 0)[train.sources[:, 0]].int()
    right = place_on_canvas(digits, RIGHT_OFFSET)[train.sources[:, 1]].int()
    expected = torch.zeros_like(train.masks)
    is_ink = torch.maximum(left, right) >= INK
    expected[is_ink & (left >= right)] = 1
    expected[is_ink & (right > left)] = 2
    assert torch.equal(expected, train.masks)
    # The composed image is the brighter of the two tinted digits: its grey maximum never
    # exceeds the brighter source pixel.
    assert bool((train.images.int().max(dim=1).values <= torch.maximum(left, right)).all())


def test_labels_come_from_the_source_digits(train: MultiDigits) -> None:
    _, labels = MultiDigits.source_digits()
    assert torch.equal(train.left, labels[train.sources[:, 0]])
    assert torch.equal(train.right, labels[train.sources[:, 1]])


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    a = MultiDigits("train", size=64, seed=0)
    b = MultiDigits("train", size=64, seed=0)
    c = MultiDigits("train", size=64, seed=1)
    assert a.checksum() == b.checksum()
    assert a.checksum() != c.checksum()


def test_checksum_is_pinned() -> None:
    assert MultiDigits("train", size=64, seed=0).checksum() == CHECKSUM_SEED0_TRAIN64


def test_train_and_test_use_disjoint_source_digits() -> None:
    _, labels = MultiDigits.source_digits()
    split = source_split(labels)
    train_ids, test_ids = set(split["train"].tolist()), set(split["test"].tolist())
    assert not train_ids & test_ids
    assert train_ids | test_ids == set(range(len(labels)))
    # Every class is in both, in about the 70/30 proportion.
    for c in range(10):
        n_test = int((labels[split["test"]] == c).sum())
        n_all = int((labels == c).sum())
        assert abs(n_test / n_all - 0.3) < 0.02
    tr, te = MultiDigits("train", size=2000), MultiDigits("test", size=2000)
    assert set(tr.sources.flatten().tolist()) <= train_ids
    assert set(te.sources.flatten().tolist()) <= test_ids
    assert set(tr.sources.flatten().tolist()).isdisjoint(te.sources.flatten().tolist())


def test_n_sources_limits_the_handwriting_seen() -> None:
    ds = MultiDigits("train", size=1000, n_sources=100)
    assert len(ds.source_ids) == 100
    assert set(ds.sources.flatten().tolist()) <= set(ds.source_ids.tolist())


def test_sklearn_digits_resampled_like_mnist() -> None:
    images, labels = sklearn_digits_as_mnist()
    assert images.shape == (1797, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (1797,) and set(labels.tolist()) == set(range(10))
    # MNIST's 4-pixel border is empty; the 20x20 box uses the full 8-bit range.
    assert int(images[:, :4].max()) == 0 and int(images[:, 24:].max()) == 0
    assert int(images.max()) == 255
    # Bilinear upsampling preserves the mean within the box (up to edge effects and rounding).
    from sklearn.datasets import load_digits

    small = torch.tensor(load_digits().images).float() * 255 / 16
    box = images[:, 4:24, 4:24].float()
    assert torch.allclose(box.mean(dim=(1, 2)), small.mean(dim=(1, 2)), atol=6)


def test_tint_false_gives_grey_images_with_the_same_pairs() -> None:
    a = MultiDigits("train", size=32, tint=False)
    b = MultiDigits("train", size=32)
    assert torch.equal(a.images[:, 0], a.images[:, 1])
    assert torch.equal(a.images[:, 1], a.images[:, 2])
    assert torch.equal(a.sources, b.sources) and torch.equal(a.masks, b.masks)


def test_transform_is_applied_per_sample() -> None:
    def flip(sample):
        return {**sample, "image": sample["image"].flip(-1)}

    ds = MultiDigits("test", size=4, transform=flip)
    plain = MultiDigits("test", size=4)
    assert torch.equal(ds[1]["image"], plain[1]["image"].flip(-1))


def test_tensor_loader_matches_dataloader_and_covers_each_sample_once() -> None:
    ds = MultiDigits("test", size=300)
    ours = list(TensorLoader(ds, batch_size=128))
    theirs = list(DataLoader(ds, batch_size=128))
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k])
    shuffled = TensorLoader(ds, batch_size=64, shuffle=True, seed=3)
    e1 = torch.cat([b["left"] for b in shuffled])
    e2 = torch.cat([b["left"] for b in shuffled])
    assert sorted(e1.tolist()) == sorted(ds.left.tolist())
    assert not torch.equal(e1, e2)  # a new order each epoch
    assert len(TensorLoader(ds, batch_size=128, drop_last=True)) == 2


class Squares:
    """The least a data set needs for ``TensorLoader``: a length and whole batches by index."""

    def __len__(self) -> int:
        return 5

    def batch(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"x": index**2}


def test_tensor_loader_takes_any_data_set_with_a_batch_method() -> None:
    batches = list(TensorLoader(Squares(), batch_size=2))
    assert [b["x"].tolist() for b in batches] == [[0, 1], [4, 9], [16]]


@pytest.mark.parametrize("dataset", [TensorDataset(torch.zeros(4, 2)), [torch.zeros(2)] * 4])
def test_tensor_loader_refuses_a_data_set_that_is_not_in_memory(dataset: object) -> None:
    with pytest.raises(TypeError, match=r"argument 'dataset' is a \w+, expected an in-memory "
                                        r"data set with a batch\(index\) method"):
        TensorLoader(dataset)


def test_class_counts_count_each_digit(train: MultiDigits) -> None:
    for task in ("left", "right"):
        counted = Counter(int(train[i][task]) for i in range(len(train)))
        assert train.class_counts(task).tolist() == [counted[c] for c in range(10)]
    with pytest.raises(ValueError, match=r"argument 'task' is 'mask', expected one of"):
        train.class_counts("mask")


def test_generation_is_vectorised_compose_equals_loop() -> None:
    """The gather-based composition equals composing each 36x36 canvas one at a time."""
    digits, labels = MultiDigits.source_digits()
    out = compose_pairs(digits, labels, 16, torch.Generator().manual_seed(5), tint=False)
    pick = [(2 * i + 1) * 36 // 56 for i in range(DIGIT)]
    for k in range(16):
        canvas = np.zeros((36, 36), dtype=np.int32)
        canvas[:28, :28] = digits[out["sources"][k, 0]].numpy()
        right = np.zeros((36, 36), dtype=np.int32)
        right[6:34, 6:34] = digits[out["sources"][k, 1]].numpy()
        canvas = np.maximum(canvas, right)[np.ix_(pick, pick)]
        assert np.array_equal(out["images"][k, 0].numpy(), canvas)


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize("split", ["val", "Train", ""])
def test_bad_split(split: str) -> None:
    with pytest.raises(ValueError, match=r"argument 'split' is .* expected one of"):
        MultiDigits(split)


@pytest.mark.parametrize("size", [0, -5, 2.5, "10", True])
def test_bad_size(size: object) -> None:
    with pytest.raises(ValueError, match=r"argument 'size' is .* expected a positive integer"):
        MultiDigits("train", size=size)


def test_bad_seed_and_n_sources() -> None:
    with pytest.raises(ValueError, match="argument 'seed'"):
        MultiDigits("train", size=4, seed=-1)
    with pytest.raises(ValueError, match=r"argument 'n_sources' is 5000, expected at most 1258"):
        MultiDigits("train", size=4, n_sources=5000)


def test_index_out_of_range() -> None:
    with pytest.raises(IndexError, match="out of range"):
        MultiDigits("test", size=3)[3]


def test_tensor_loader_refuses_a_transform_it_would_skip() -> None:
    ds = MultiDigits("test", size=4, transform=lambda s: s)
    with pytest.raises(ValueError, match="per-sample transform"):
        TensorLoader(ds)


# ---- MultiMNIST on a fake MNIST written in the IDX format -------------------------------------


def _write_idx(path: Path, array: np.ndarray, gz: bool = False) -> None:
    dtype_code = 0x08  # unsigned byte
    header = struct.pack(">HBB", 0, dtype_code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


def _fake_mnist(root: Path, n_train: int = 40, n_test: int = 20) -> None:
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 4:24, 4:24] = rng.integers(0, 256, (n, 20, 20))
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", images)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)


def test_multimnist_reads_idx_files(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    train = MultiMNIST(tmp_path, "train")
    test = MultiMNIST(tmp_path, "test", size=7)
    assert len(train) == 40 and len(test) == 7
    s = train[0]
    assert s["image"].shape == (3, 28, 28) and s["mask"].shape == (28, 28)
    # Labels follow the fake files' labels (index mod 10).
    assert torch.equal(train.left, train.sources[:, 0] % 10)
    assert torch.equal(train.right, train.sources[:, 1] % 10)
    assert MultiMNIST(tmp_path, "train").checksum() == train.checksum()


def test_multimnist_missing_folder_says_what_and_how(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as err:
        MultiMNIST(tmp_path / "nowhere", "train")
    msg = str(err.value)
    assert "train-images-idx3-ubyte" in msg and "download=True" in msg
    assert str(tmp_path / "nowhere" / "MNIST" / "raw") in msg


def test_multimnist_corrupt_file(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    images = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:100])  # truncated
    with pytest.raises(RuntimeError, match=r"could not be read .*corrupt"):
        MultiMNIST(tmp_path, "test")


def test_multimnist_labels_that_do_not_match(tmp_path: Path) -> None:
    _fake_mnist(tmp_path)
    _write_idx(tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte", np.arange(20) + 5)
    with pytest.raises(RuntimeError, match="corrupt"):
        MultiMNIST(tmp_path, "test")


def test_a_smaller_set_is_a_prefix_of_a_larger_one() -> None:
    """Sample i is the same whatever the size, so notebooks that load different sizes agree."""
    small, large = MultiDigits("test", size=50, seed=3), MultiDigits("test", size=700, seed=3)
    for name in ("images", "left", "right", "masks", "sources"):
        assert torch.equal(getattr(small, name), getattr(large, name)[:50])
