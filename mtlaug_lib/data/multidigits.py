"""The course's running example: MultiDigits, MultiMNIST built the same way, and their tasks.

Both follow Sener & Koltun's MultiMNIST (NeurIPS 2018): two 28x28 digits on a 36x36 canvas,
one at the top left (offset 0) and one at the bottom right (offset 6), overlapping where the
brighter pixel wins, then resized to 28x28 with nearest-neighbour sampling. MultiDigits uses
the 1,797 real handwritten 8x8 digits that ship with scikit-learn, so nothing downloads.

Every sample is a dict:

- ``image``: float32, 3 x 28 x 28, values in [0, 1]; each digit drawn in its own tint;
- ``left``, ``right``: int64 scalars, the two digit classes (0-9);
- ``mask``: int64, 28 x 28; 0 background, 1 left digit, 2 right digit.

Generation runs on the CPU in integer arithmetic, so a seed gives the same bytes on every
machine (a test pins a checksum). ``multidigits_tasks`` declares the three tasks (``left``,
``right``, ``mask``); ``load_multidigits`` gives a train and a test loader.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from ..core.checks import check_choice, check_positive_int, check_seed
from ..core.tasks import CLASSIFICATION, SEGMENTATION, LabelEffect, Task
from .loaders import Sample, TensorLoader, tensors_checksum

SPLITS = ("train", "test")
CANVAS = 36  # Sener & Koltun's canvas side
RIGHT_OFFSET = 6  # the right digit's top-left corner on the canvas; the left digit sits at 0
DIGIT = 28  # MNIST's digit box, and the composed image's side
INK = 64  # an 8-bit intensity at or above which a pixel belongs to a digit in the mask
TEST_FRACTION = 0.3  # of each class's source digits, held out for the test split
SPLIT_SEED = 0  # fixes which source digits are test digits, whatever the data seed
PALETTE = torch.tensor(
    [
        [255, 99, 71],  # tomato
        [65, 105, 225],  # royal blue
        [50, 205, 50],  # lime green
        [255, 215, 0],  # gold
        [238, 130, 238],  # violet
        [0, 206, 209],  # turquoise
    ],
    dtype=torch.int32,
)
DEFAULT_SIZES = {"train": 10_000, "test": 2_000}
MASK_CLASSES = ("background", "left", "right")


# --------------------------------------------------------------------------------------------
# The sources: scikit-learn's 8x8 digits made MNIST-like


def _bilinear_weights(n_in: int, n_out: int, denominator: int) -> np.ndarray:
    """Integer bilinear-resampling matrix (n_out x n_in) whose rows sum to ``denominator``.

    Same sample positions as ``torch.nn.functional.interpolate(mode='bilinear',
    align_corners=False)``; for 8 -> 20 every weight is a multiple of 1/10, so integer
    weights with denominator 10 are exact and the result does not depend on float rounding.
    """
    weights = np.zeros((n_out, n_in), dtype=np.float64)
    for i in range(n_out):
        pos = min(max((i + 0.5) * n_in / n_out - 0.5, 0.0), n_in - 1.0)
        lo = int(np.floor(pos))
        hi = min(lo + 1, n_in - 1)
        frac = pos - lo
        weights[i, lo] += 1.0 - frac
        weights[i, hi] += frac
    scaled = np.rint(weights * denominator).astype(np.int64)
    assert np.allclose(scaled, weights * denominator), "weights are not exact integers"
    return scaled


def sklearn_digits_as_mnist() -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's 1,797 handwritten digits, resampled to look like MNIST.

    Each 8x8 digit (values 0-16) is upsampled bilinearly to 20x20 and padded by 4 pixels,
    as MNIST centres its digits in a 20x20 box inside 28x28.

    Returns:
        images: uint8, N x 28 x 28, values 0-255;
        labels: int64, N.
    """
    from sklearn.datasets import load_digits  # bundled with scikit-learn: no download

    bunch = load_digits()
    small = np.asarray(bunch.images, dtype=np.int64)  # N x 8 x 8, values 0..16
    w = _bilinear_weights(8, 20, denominator=10)
    big = np.einsum("ij,njk,lk->nil", w, small, w)  # N x 20 x 20, values 0..1600
    scale = 16 * 10 * 10
    big = (big * 255 + scale // 2) // scale
    images = np.zeros((len(small), DIGIT, DIGIT), dtype=np.uint8)
    images[:, 4:24, 4:24] = big.astype(np.uint8)
    return torch.from_numpy(images), torch.from_numpy(np.asarray(bunch.target, dtype=np.int64))


def source_split(
    labels: torch.Tensor, test_fraction: float = TEST_FRACTION
) -> dict[str, torch.Tensor]:
    """Split source-image indices into disjoint train and test sets, stratified by class.

    Args:
        labels: int64, N; the class of each source image.

    Returns:
        ``{"train": idx, "test": idx}``, int64 index tensors, sorted, disjoint, covering 0..N-1.
    """
    g = torch.Generator().manual_seed(SPLIT_SEED)
    train, test = [], []
    for c in labels.unique(sorted=True):
        idx = torch.nonzero(labels == c).flatten()
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_test = int(round(len(idx) * test_fraction))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return {"train": torch.cat(train).sort().values, "test": torch.cat(test).sort().values}


# --------------------------------------------------------------------------------------------
# The composition, shared by MultiDigits and MultiMNIST


def compose_pairs(
    digits: torch.Tensor,
    labels: torch.Tensor,
    size: int,
    generator: torch.Generator,
    tint: bool = True,
) -> dict[str, torch.Tensor]:
    """Compose ``size`` MultiMNIST samples from random pairs of source digits.

    Args:
        digits: uint8, M x 28 x 28; the source digit images.
        labels: int64, M; their classes.
        size: how many samples to compose.
        generator: a CPU generator; it alone decides the pairs and the tints.
        tint: draw each digit in a colour from ``PALETTE`` (else white).

    Returns:
        ``images`` uint8 N x 3 x 28 x 28, ``left`` and ``right`` int64 N, ``masks`` uint8
        N x 28 x 28 (0 background, 1 left, 2 right), ``sources`` int64 N x 2 (the indices into
        ``digits`` of the left and right digit).
    """
    if digits.dtype != torch.uint8 or digits.ndim != 3 or tuple(digits.shape[1:]) != (DIGIT, DIGIT):
        raise ValueError(
            f"argument 'digits' has dtype {digits.dtype} and shape {tuple(digits.shape)}, "
            f"expected uint8 M x {DIGIT} x {DIGIT}"
        )
    # One row of uniform draws per sample (left, right, left tint, right tint), so that sample i
    # is the same whatever ``size`` is: a smaller data set is a prefix of a larger one.
    draws = torch.rand(size, 4, generator=generator, dtype=torch.float64)
    pairs = (draws[:, :2] * len(digits)).long().clamp_max(len(digits) - 1)
    colours = (draws[:, 2:] * len(PALETTE)).long().clamp_max(len(PALETTE) - 1)
    if not tint:
        colours = torch.zeros_like(colours)
    # Place and resize every source digit once per canvas position, then gather per sample:
    # the same pixels as composing each 36x36 canvas (a test checks), in a few tensor ops.
    left = place_on_canvas(digits, 0)[pairs[:, 0]]  # N x 28 x 28, uint8
    right = place_on_canvas(digits, RIGHT_OFFSET)[pairs[:, 1]]

    # Each digit's tinted intensity (N x 3 x 28 x 28) from a lookup table, overlapping ink
    # keeping the brighter value, as Sener & Koltun's np.maximum does.
    table = _tint_table(tint)  # colours x 3 x 256
    channel = torch.arange(3)[None, :, None, None]
    tinted_left = table[colours[:, 0, None, None, None], channel, left[:, None].long()]
    tinted_right = table[colours[:, 1, None, None, None], channel, right[:, None].long()]
    images = torch.maximum(tinted_left, tinted_right)

    masks = torch.zeros(size, DIGIT, DIGIT, dtype=torch.uint8)
    is_ink = torch.maximum(left, right) >= INK
    masks[is_ink & (left >= right)] = 1
    masks[is_ink & (right > left)] = 2
    return {
        "images": images,
        "left": labels[pairs[:, 0]].clone(),
        "right": labels[pairs[:, 1]].clone(),
        "masks": masks,
        "sources": pairs,
    }


def place_on_canvas(digits: torch.Tensor, offset: int) -> torch.Tensor:
    """Put each digit on a blank 36x36 canvas at (offset, offset) and resize it to 28x28.

    Args:
        digits: uint8, M x 28 x 28.

    Returns:
        uint8, M x 28 x 28: what of the digit is left after nearest-neighbour resizing.
    """
    canvas = torch.zeros(len(digits), CANVAS, CANVAS, dtype=torch.uint8)
    canvas[:, offset:offset + DIGIT, offset:offset + DIGIT] = digits
    # Nearest-neighbour 36 -> 28 at pixel centres (as PIL's NEAREST). Image and mask are cut
    # from the same resized canvases, so they stay exactly aligned.
    pick = (torch.arange(DIGIT) * 2 + 1) * CANVAS // (2 * DIGIT)
    return canvas[:, pick][:, :, pick]


def _tint_table(tint: bool) -> torch.Tensor:
    """uint8 lookup table, colours x 3 x 256: a grey level drawn in each palette colour."""
    rgb = PALETTE if tint else torch.full((1, 3), 255, dtype=torch.int32)
    grey = torch.arange(256, dtype=torch.int32)
    return ((grey[None, None, :] * rgb[:, :, None] + 127) // 255).to(torch.uint8)


# --------------------------------------------------------------------------------------------
# The data sets


class ComposedDigits(Dataset):
    """A data set of composed two-digit samples held in memory as tensors.

    Attributes (N samples): ``images`` uint8 N x 3 x 28 x 28, ``left``/``right`` int64 N,
    ``masks`` uint8 N x 28 x 28, ``sources`` int64 N x 2 (indices of the source digits in
    ``source_ids``' numbering, i.e. into the full source set).
    """

    split: str
    seed: int
    transform: Callable[[Sample], Sample] | None

    def _store(self, tensors: dict[str, torch.Tensor]) -> None:
        self.images = tensors["images"]
        self.left = tensors["left"]
        self.right = tensors["right"]
        self.masks = tensors["masks"]
        self.sources = tensors["sources"]

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> Sample:
        """One sample: ``image`` float32 3 x 28 x 28 in [0, 1], ``left``/``right`` int64
        scalars, ``mask`` int64 28 x 28; passed through ``transform`` when one is set."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} is out of range for a data set of {len(self)} samples")
        sample = {
            "image": self.images[i].float() / 255,
            "left": self.left[i],
            "right": self.right[i],
            "mask": self.masks[i].long(),
        }
        return self.transform(sample) if self.transform is not None else sample

    def batch(self, index: torch.Tensor) -> Sample:
        """The samples at ``index`` (int64, B) stacked: like ``__getitem__`` with a leading B."""
        return {
            "image": self.images[index].float() / 255,
            "left": self.left[index],
            "right": self.right[index],
            "mask": self.masks[index].long(),
        }

    def checksum(self) -> str:
        """SHA-256 over the stored tensors: the same seed gives the same digest everywhere."""
        return tensors_checksum((self.images, self.left, self.right, self.masks))

    def class_counts(self, task: str) -> torch.Tensor:
        """How many samples have each class of ``task`` ('left' or 'right'): int64, 10."""
        task = check_choice("task", task, ("left", "right"))
        return torch.bincount(getattr(self, task), minlength=10)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(split={self.split!r}, size={len(self)}, seed={self.seed})"


class MultiDigits(ComposedDigits):
    """MultiMNIST-style pairs of scikit-learn's real handwritten digits; nothing downloads.

    Train and test are composed from disjoint sets of source digit images (70% / 30% of each
    class, fixed whatever the seed), so no handwritten digit appears in both.

    Args:
        split: ``"train"`` or ``"test"``.
        size: number of samples (default 10,000 for train, 2,000 for test).
        seed: decides which pairs and tints are drawn (the source split does not change).
        n_sources: use only the first ``n_sources`` source digits of the split (a smaller
            training set of distinct handwriting, for augmentation experiments).
        tint: draw each digit in a colour (else white on black).
        transform: a callable applied to each sample dict by ``__getitem__``.
    """

    _cache: tuple[torch.Tensor, torch.Tensor] | None = None

    def __init__(
        self,
        split: str = "train",
        size: int | None = None,
        seed: int = 0,
        n_sources: int | None = None,
        tint: bool = True,
        transform: Callable[[Sample], Sample] | None = None,
    ) -> None:
        self.split = check_choice("split", split, SPLITS)
        size = DEFAULT_SIZES[split] if size is None else check_positive_int("size", size)
        self.seed = check_seed(seed)
        digits, labels = self.source_digits()
        ids = source_split(labels)[split]
        if n_sources is not None:
            ids = ids[: check_positive_int("n_sources", n_sources, upper=len(ids))]
        self.source_ids = ids
        self.transform = transform
        g = torch.Generator().manual_seed(_stream(seed, split))
        tensors = compose_pairs(digits[ids], labels[ids], size, g, tint=tint)
        tensors["sources"] = ids[tensors["sources"]]
        self._store(tensors)

    @classmethod
    def source_digits(cls) -> tuple[torch.Tensor, torch.Tensor]:
        """scikit-learn's digits as MNIST-like uint8 1797 x 28 x 28 images and int64 labels."""
        if cls._cache is None:
            MultiDigits._cache = sklearn_digits_as_mnist()
        assert MultiDigits._cache is not None
        return MultiDigits._cache


MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


class MultiMNIST(ComposedDigits):
    """Sener & Koltun's MultiMNIST, composed from torchvision's MNIST.

    Needs MNIST's files under ``root/MNIST/raw`` (torchvision's layout); ``download=True``
    fetches them, which needs a network. The paper's sizes are the default: one sample per
    source image (60,000 train, 10,000 test).

    Args: as ``MultiDigits``, plus ``root`` (a folder) and ``download``.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        size: int | None = None,
        seed: int = 0,
        download: bool = False,
        tint: bool = True,
        transform: Callable[[Sample], Sample] | None = None,
    ) -> None:
        self.split = check_choice("split", split, SPLITS)
        self.seed = check_seed(seed)
        self.transform = transform
        digits, labels = load_mnist(root, split, download=download)
        size = len(digits) if size is None else check_positive_int("size", size)
        g = torch.Generator().manual_seed(_stream(seed, split))
        self.source_ids = torch.arange(len(digits))
        self._store(compose_pairs(digits, labels, size, g, tint=tint))


def load_mnist(
    root: str | os.PathLike, split: str, download: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """MNIST's ``split`` as uint8 M x 28 x 28 images and int64 M labels, via torchvision.

    A missing or unreadable folder is an error that says what was looked for and how to get it.
    """
    from torchvision.datasets import MNIST

    check_choice("split", split, SPLITS)
    raw = Path(root) / "MNIST" / "raw"
    wanted = MNIST_FILES[split]
    if not download:
        missing = [f for f in wanted if not (raw / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"MNIST's {split} files are not in {raw} (looked for {', '.join(wanted)}; "
                f"missing {', '.join(missing)}). Pass download=True to fetch them (needs a "
                "network), or copy the uncompressed IDX files there; MultiDigits needs no "
                "download at all."
            )
    try:
        mnist = MNIST(str(root), train=split == "train", download=download)
        images, labels = mnist.data, mnist.targets
    except (RuntimeError, ValueError, OSError, IndexError, AssertionError) as err:
        raise RuntimeError(
            f"MNIST's {split} files in {raw} could not be read ({err}); they may be corrupt or "
            "truncated. Delete them and fetch them again with download=True."
        ) from err
    if images.dtype != torch.uint8 or images.ndim != 3 or tuple(images.shape[1:]) != (DIGIT, DIGIT):
        raise RuntimeError(
            f"MNIST's {split} images in {raw} have shape {tuple(images.shape)} and dtype "
            f"{images.dtype}, expected uint8 M x 28 x 28; the files may be corrupt"
        )
    if len(labels) != len(images) or int(labels.min()) < 0 or int(labels.max()) > 9:
        raise RuntimeError(
            f"MNIST's {split} labels in {raw} do not match its images ({len(labels)} labels "
            f"for {len(images)} images, or a label outside 0-9); the files may be corrupt"
        )
    return images, labels.long()


def _stream(seed: int, split: str) -> int:
    """A generator seed per (seed, split): train and test never share random draws."""
    return seed * len(SPLITS) + SPLITS.index(split)


def load_multidigits(
    batch_size: int = 128,
    train_size: int | None = None,
    test_size: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> tuple[TensorLoader, TensorLoader]:
    """Train and test loaders of MultiDigits, as d2l's ``load_data_fashion_mnist``.

    The train loader reshuffles each epoch from ``seed``; the test loader keeps its order.
    """
    train = MultiDigits("train", size=train_size, seed=seed)
    test = MultiDigits("test", size=test_size, seed=seed)
    return (
        TensorLoader(train, batch_size, shuffle=True, seed=seed, device=device),
        TensorLoader(test, batch_size, shuffle=False, device=device),
    )


# --------------------------------------------------------------------------------------------
# The tasks


DIGIT_MAX_ROTATION = 30.0
"""The rotation, either way, under which the course takes a handwritten digit to keep its class.
A choice, not a measurement: the article rotates by up to 30 degrees, and at 180 degrees a 6
reads as a 9."""


def multidigits_tasks() -> dict[str, Task]:
    """The course's three tasks on MultiDigits: ``left``, ``right`` and ``mask``.

    A horizontal flip mirrors the digits and swaps the sides, so it breaks ``left`` and
    ``right`` (no map of digit classes repairs a mirrored digit); for the mask it moves the
    left digit's pixels to the right: it permutes the mask's classes 1 and 2, which a label map
    that swaps them back repairs. A vertical flip turns the digits upside down (it breaks
    ``left`` and ``right``), but each digit stays on its side, so the mask's labels move with
    the image. Each digit task names its digit's pixels in the mask (``region``), so the audit
    can measure how much of the digit a crop or shift leaves in view; all three take 28 x 28
    images (the article's head flattens 64 x 7 x 7 features; the dense head outputs 28 x 28).
    """
    digits = tuple(str(d) for d in range(10))
    flips_break = {"horizontal_flip": LabelEffect.BREAKS, "vertical_flip": LabelEffect.BREAKS}
    size = (28, 28)
    return {
        "left": Task("left", CLASSIFICATION, 10, digits, flips_break, region=("mask", 1),
                     max_rotation=DIGIT_MAX_ROTATION, input_size=size),
        "right": Task("right", CLASSIFICATION, 10, digits, flips_break, region=("mask", 2),
                      max_rotation=DIGIT_MAX_ROTATION, input_size=size),
        "mask": Task(
            "mask", SEGMENTATION, 3, MASK_CLASSES,
            # The canvas is black beyond its border: a pixel brought in is background (0).
            {"horizontal_flip": LabelEffect.PERMUTES}, input_size=size, fill=0,
        ),
    }
