"""The real NYUv2, in the preprocessed layout that MTAN and LibMTL use, for users who have a copy.

Nothing downloads and the course never needs it: ``Scenes`` is the course's dense example. This
loader reads a copy that a user already has (MTAN's README links it) and turns each sample into
the course's dense-scene conventions, so the same tasks, models and loaders run on it.

Where the layout comes from (read in the public code and issues, not guessed):

- folders: ``root/train`` and ``root/val``, each with ``image/``, ``label/``, ``depth/`` and
  ``normal/`` holding ``{index}.npy``, ``index = 0 .. N-1``, N the number of ``*.npy`` files in
  ``image/``: github.com/lorenmt/mtan, ``im2im_pred/create_dataset.py``, class ``NYUv2``; the
  same in github.com/median-research-group/LibMTL, ``examples/nyu/create_dataset.py``. The
  papers' test split is the ``val/`` folder (``train=False`` / ``mode != 'train'`` there).
- arrays, channels last: ``image`` H x W x 3, ``depth`` H x W x 1 and ``normal`` H x W x 3
  (both repositories move the last axis first), ``label`` H x W (no axis moved); H x W is
  288 x 384 (LibMTL issue #61: the data is MTAN's pre-processing, its README's 284 is a typo);
  795 training and 654 test samples (LibMTL ``examples/nyu/README.md``).
- values: the image is float in [0, 1] (MTAN issue #50 prints one: multiples of 1/255); labels
  are -1 .. 12, 13 classes and -1 for an unlabelled pixel, from the 13-class mapping of
  github.com/ankurhanda/SceneNetv1.0 (MTAN issue #11; both repositories' losses use
  ``ignore_index=-1``, LibMTL ``SegMetric(num_classes=13)``); depth and normals are invalid
  where they are 0 (both mask with "sum over channels != 0"); normals are Eigen & Fergus'
  precomputed ground truth (cs.nyu.edu/~deigen/dnl/; MTAN README and issue #10), unit vectors
  where valid (LibMTL ``examples/nyu/utils.py``: "gt has been normalized on the NYUv2 dataset").
- class names, indices 0 .. 12: bed, books, ceiling, chair, floor, furniture, objects, picture,
  sofa, table, tv, wall, window (the 13-class table of ankurhanda/SceneNetv1.0's README, whose
  label images number them 1 .. 13 with 0 for void: ``getAccuracyNYU.m``).

What could not be confirmed, and what this loader does about it:

- the normals' camera frame and signs. LibMTL's flip negates channel 0, so channel 0 is the
  horizontal axis; whether it points right or left, whether channel 1 points up or down, and
  whether a normal faces the camera is written nowhere we found (MTAN's pre-processing code was
  lost: MTAN README). The normals are LEFT AS STORED (no axis or sign change): check them
  against the course's frame (OpenCV: x right, y down, z forward, facing the camera) before
  mixing them with ``Scenes`` or with normals computed from depth.
- the depth unit: metres is what the NYU toolbox gives (up to 10 m) and what a third-party
  loader of the same files (found by code search, repository unnamed) records as measured,
  "-1 .. 12" for labels and "0 .. 9.99" for depth; neither MTAN nor LibMTL states it.
- that MTAN's labels 0 .. 12 are SceneNet's 1 .. 13 less one (the names' order assumes it).
- the stored dtypes (issue #50's print suggests float64 images; MTAN casts labels with
  ``.float()``, so they may be floats): any float dtype is read, and labels of any integer
  dtype or floats holding whole numbers.

Each sample becomes the course's dict (``NYUv2``). Files are memory-mapped and read one sample
at a time, so 795 + 654 samples never sit in memory together. Every ``.npy`` header is checked
when the data set is made (a missing, truncated or misshapen file is found at once, not in the
middle of training); the values are checked when a sample is read.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..core.checks import check_choice, check_positive_int, describe_value, is_int_tensor
from ..core.task_kinds import IGNORE_INDEX  # -1, as MTAN's files mark an unlabelled pixel
from ..core.tasks import DEPTH, NORMALS, SEGMENTATION, Task
from .loaders import Sample

NYUV2_NUM_CLASSES = 13
NYUV2_CLASSES = (
    "bed", "books", "ceiling", "chair", "floor", "furniture", "objects", "picture", "sofa",
    "table", "tv", "wall", "window",
)
NYUV2_SIZE = (288, 384)  # H x W of MTAN's pre-processed copy
NYUV2_SPLIT_SIZES = {"train": 795, "test": 654}  # samples in a complete copy
SPLIT_FOLDERS = {"train": "train", "test": "val"}  # the papers' test split is the val/ folder
SUBFOLDERS = ("image", "label", "depth", "normal")
MIN_NORMAL_LENGTH = 0.5  # a stored normal shorter than this is a hole (see ``_normals``)
MAX_NORMAL_LENGTH = 1.01  # longer than this: not a unit normal (a wrong encoding); float16 slack
IMAGE_SLACK = 1e-3  # an image value up to 1 + this is rounding (then clamped), beyond an error
_INDEX_FILE = re.compile(r"^(0|[1-9][0-9]*)\.npy$")  # exactly the names MTAN's '{:d}.npy' reads


def _expected_shapes(kind: str, height: int, width: int) -> tuple[tuple[int, ...], ...]:
    """The stored shapes accepted for ``kind`` (depth H x W x 1 as MTAN, or plain H x W)."""
    return {
        "image": ((height, width, 3),),
        "label": ((height, width),),
        "depth": ((height, width, 1), (height, width)),
        "normal": ((height, width, 3),),
    }[kind]


def _dtype_ok(kind: str, dtype: np.dtype) -> bool:
    """Floats for image, depth and normals; integers or floats (whole numbers) for labels."""
    if dtype.kind == "f":
        return True
    return kind == "label" and dtype.kind in "iu"


def _read_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a ``.npy`` file from its header alone, or a ``ValueError`` naming the
    file when it is not a ``.npy`` file or is shorter than its header says (a truncated copy)."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(f)
            else:  # rare newer versions: let numpy parse the header (memory-mapped, cheap)
                array = np.load(path, mmap_mode="r", allow_pickle=False)
                return tuple(array.shape), array.dtype
            data_start = f.tell()
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(f"NYUv2 file '{path}' is not a readable .npy array: {error}") from None
    needed = data_start + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = path.stat().st_size
    if dtype.hasobject:
        raise ValueError(f"NYUv2 file '{path}' holds Python objects (dtype {dtype}), expected "
                         "numbers")
    if size < needed:
        raise ValueError(f"NYUv2 file '{path}' is truncated: {size} bytes, its header needs "
                         f"{needed} (shape {shape}, dtype {dtype}); copy it again")
    return tuple(shape), dtype


def _indexed_files(folder: Path) -> int:
    """The number N of files ``0.npy .. N-1.npy`` in ``folder``, or a ``ValueError`` saying
    which indices are missing. Files with other names (``._0.npy`` from a macOS archive) are
    ignored; MTAN counts every ``*.npy`` and would then fail on a missing ``{index}.npy``."""
    indices = sorted(int(m.group(1)) for name in os.listdir(folder)
                     if (m := _INDEX_FILE.match(name)))
    if not indices:
        raise ValueError(f"NYUv2 folder '{folder}' holds no files named {{index}}.npy "
                         "(expected 0.npy, 1.npy, ...)")
    n = indices[-1] + 1
    if len(indices) != n:
        missing = sorted(set(range(n)) - set(indices))
        shown = ", ".join(f"{i}.npy" for i in missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise ValueError(
            f"NYUv2 folder '{folder}' is not contiguous: it holds {len(indices)} files "
            f"{{index}}.npy with indices up to {n - 1}, but {len(missing)} are missing "
            f"({shown}); expected 0.npy to {n - 1}.npy (a truncated copy?)")
    return n


def _check_image_size(image_size: object) -> tuple[int, int] | None:
    if image_size is None:
        return None
    if (not isinstance(image_size, Sequence) or isinstance(image_size, str)
            or len(image_size) != 2):
        raise ValueError(f"argument 'image_size' is {image_size!r}, expected None or a pair "
                         "(H, W) of positive integers")
    return (check_positive_int("image_size[0]", image_size[0]),
            check_positive_int("image_size[1]", image_size[1]))


class NYUv2:
    """NYUv2 (13 classes, depth, normals) from MTAN's pre-processed ``.npy`` files.

    Each sample is a dict (a batch: the same with a leading B):

    - ``image``: float32, 3 x H x W, values in [0, 1];
    - ``semantic``: int64, H x W, classes 0 .. 12 (``NYUV2_CLASSES``), ``IGNORE_INDEX`` (-1)
      where a pixel is unlabelled;
    - ``depth``: float32, H x W, metres, 0 where the depth is missing;
    - ``normals``: float32, 3 x H x W, unit vectors, (0, 0, 0) where missing; the axes and
      signs are AS STORED (not confirmed to be the course's camera frame: module docstring).

    Stored normals are renormalised to unit length (the stored ones are unit up to rounding);
    one shorter than ``MIN_NORMAL_LENGTH`` is a hole. A sample with non-finite values, an image
    outside [0, 1], a negative depth, a normal longer than ``MAX_NORMAL_LENGTH`` or a label
    outside [-1, 13) raises a ``ValueError`` naming the file.

    Args:
        root: the folder holding ``train/`` and ``val/`` (``~`` is expanded).
        split: "train" reads ``train/``; "test" reads ``val/`` (the papers' test set).
        image_size: None keeps the stored size (288 x 384 in MTAN's copy, too large for CPU
            training); (H, W) resizes every sample: the image with antialiased bilinear
            filtering, the semantic map, depth and normals with nearest-pixel sampling (pixel
            centres, ``nearest-exact``), so each output pixel takes all three labels from one
            stored pixel: no class, depth or normal is invented by blending across an edge or a
            hole, and holes stay holes. Resampling does not change depth or normals (the camera
            and its frame are the same; only its focal length in pixels scales).
    """

    def __init__(self, root: str | os.PathLike[str], split: str = "train",
                 image_size: Sequence[int] | None = None) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"argument 'root' is a {type(root).__name__}, expected a path")
        self.split = check_choice("split", split, tuple(SPLIT_FOLDERS))
        self.image_size = _check_image_size(image_size)
        self.root = Path(root).expanduser()
        self.folder = self.root / SPLIT_FOLDERS[split]
        self.num_classes = NYUV2_NUM_CLASSES
        self.class_names = NYUV2_CLASSES
        self.transform = None  # no per-sample transform: TensorLoader may slice whole batches
        self._find_folders()
        self._length = self._count_samples()
        self.stored_size = self._check_headers()

    # ----------------------------------------------------------------------------------------
    # The layout, checked once

    def _find_folders(self) -> None:
        layout = (f"the pre-processed NYUv2 of MTAN/LibMTL: '{self.root}/train' and "
                  f"'{self.root}/val', each with {', '.join(SUBFOLDERS)} sub-folders of "
                  "{index}.npy files; nothing is downloaded")
        if not self.root.exists():
            raise FileNotFoundError(f"NYUv2 root '{self.root}' does not exist; expected {layout}")
        if not self.root.is_dir():
            raise NotADirectoryError(f"NYUv2 root '{self.root}' is not a folder; expected "
                                     f"{layout}")
        if not self.folder.is_dir():
            found = sorted(p.name for p in self.root.iterdir())
            raise FileNotFoundError(
                f"NYUv2 split {self.split!r} is read from '{self.folder}', which does not "
                f"exist (found in '{self.root}': {found}); expected {layout}")
        missing = [kind for kind in SUBFOLDERS if not (self.folder / kind).is_dir()]
        if missing:
            found = sorted(p.name for p in self.folder.iterdir())
            raise FileNotFoundError(
                f"NYUv2 folder '{self.folder / missing[0]}' does not exist: '{self.folder}' "
                f"lacks {missing} (found: {found}); expected the sub-folders "
                f"{', '.join(SUBFOLDERS)}")

    def _count_samples(self) -> int:
        counts = {kind: _indexed_files(self.folder / kind) for kind in SUBFOLDERS}
        if len(set(counts.values())) > 1:
            listed = ", ".join(f"{kind}/ {n}" for kind, n in counts.items())
            raise ValueError(f"NYUv2 sub-folders of '{self.folder}' disagree on the number of "
                             f"samples ({listed}); a truncated copy?")
        return counts["image"]

    def _path(self, kind: str, index: int) -> Path:
        return self.folder / kind / f"{index}.npy"

    def _check_headers(self) -> tuple[int, int]:
        """Every file's shape and dtype against the first image's H x W; returns (H, W)."""
        first = self._path("image", 0)
        shape, _ = _read_header(first)
        if len(shape) != 3 or shape[2] != 3:
            raise ValueError(f"NYUv2 file '{first}' has shape {shape}, expected H x W x 3 "
                             "(an RGB image, channels last)")
        height, width = shape[:2]
        for index in range(self._length):
            for kind in SUBFOLDERS:
                path = self._path(kind, index)
                shape, dtype = _read_header(path)
                expected = _expected_shapes(kind, height, width)
                if shape not in expected:
                    raise ValueError(
                        f"NYUv2 file '{path}' has shape {shape}, expected "
                        f"{' or '.join(str(s) for s in expected)} (the size of "
                        f"'{first}', channels last)")
                if not _dtype_ok(kind, dtype):
                    wanted = "integers or floats" if kind == "label" else "floats"
                    raise ValueError(f"NYUv2 file '{path}' has dtype {dtype}, expected {wanted}")
        return height, width

    # ----------------------------------------------------------------------------------------
    # Samples

    def __len__(self) -> int:
        return self._length

    def _load(self, kind: str, index: int) -> tuple[np.ndarray, Path]:
        path = self._path(kind, index)
        return np.load(path, mmap_mode="r", allow_pickle=False), path

    def _read(self, index: int) -> Sample:
        """Sample ``index`` at the stored size, in the course's conventions, values checked."""
        image, path = self._load("image", index)
        image = torch.from_numpy(np.array(image, dtype=np.float32)).permute(2, 0, 1)
        _check_finite(image, path, "image")
        if image.numel() and (image.min() < 0 or image.max() > 1 + IMAGE_SLACK):
            raise ValueError(f"NYUv2 file '{path}' holds values in [{image.min():g}, "
                             f"{image.max():g}], expected an image in [0, 1]")
        image = image.clamp(0, 1)  # the slack above is rounding only

        label, path = self._load("label", index)
        semantic = _semantic(np.asarray(label), path)

        depth, path = self._load("depth", index)
        depth = torch.from_numpy(np.array(depth, dtype=np.float32)).reshape(semantic.shape)
        _check_finite(depth, path, "depth")
        if (depth < 0).any():
            raise ValueError(f"NYUv2 file '{path}' holds {int((depth < 0).sum())} negative "
                             "depths, expected metres >= 0 (0 for a missing depth)")

        normal, path = self._load("normal", index)
        normals = _normals(torch.from_numpy(np.array(normal, dtype=np.float32)), path)
        return {"image": image.contiguous(), "semantic": semantic, "depth": depth,
                "normals": normals}

    def batch(self, index: torch.Tensor | Sequence[int]) -> Sample:
        """Samples ``index`` (int64 B, or a list) stacked: image B x 3 x H x W, semantic and
        depth B x H x W, normals B x 3 x H x W, at ``image_size`` if one was given."""
        if not isinstance(index, torch.Tensor):
            if any(isinstance(i, bool) or not isinstance(i, (int, np.integer)) for i in index):
                raise ValueError(f"argument 'index' is {index!r}, expected ints")
            index = torch.tensor(list(index), dtype=torch.int64)
        if index.ndim != 1 or not is_int_tensor(index) or not len(index):
            raise ValueError(f"argument 'index' is a {describe_value(index)}, expected a 1-D "
                             "integer tensor of at least one index")
        bad = index[(index < -len(self)) | (index >= len(self))]
        if bad.numel():
            raise IndexError(f"argument 'index' holds {bad.tolist()[:5]}, expected indices in "
                             f"[-{len(self)}, {len(self)}) (the {self.split} split's size)")
        samples = [self._read(int(i) % len(self)) for i in index.tolist()]
        stacked = {key: torch.stack([s[key] for s in samples]) for key in samples[0]}
        return stacked if self.image_size is None else _resize(stacked, self.image_size)

    def __getitem__(self, index: int) -> Sample:
        """Sample ``index`` (negative counts from the end), as documented on the class."""
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"argument 'index' is a {type(index).__name__}, expected an int")
        if not -len(self) <= index < len(self):
            raise IndexError(f"argument 'index' is {index}, expected an int in "
                             f"[-{len(self)}, {len(self)}) (the {self.split} split's size)")
        return {key: value[0] for key, value in self.batch([int(index)]).items()}

    def __repr__(self) -> str:
        size = self.image_size or self.stored_size
        return (f"NYUv2(root='{self.root}', split={self.split!r}, {len(self)} samples, "
                f"stored {self.stored_size[0]} x {self.stored_size[1]}, served {size[0]} x "
                f"{size[1]})")


# --------------------------------------------------------------------------------------------
# Conversions and checks of one sample


def _check_finite(values: torch.Tensor, path: Path, what: str) -> None:
    bad = int((~torch.isfinite(values)).sum())
    if bad:
        raise ValueError(f"NYUv2 file '{path}' holds {bad} non-finite {what} values (NaN or "
                         "infinite); a missing value must be stored as 0")


def _semantic(label: np.ndarray, path: Path) -> torch.Tensor:
    """Stored labels (H x W, ints or whole floats, -1 .. 12) as int64 with ``IGNORE_INDEX``."""
    if label.dtype.kind == "f":
        whole = np.isfinite(label) & (label == np.round(label))
        if not whole.all():
            raise ValueError(f"NYUv2 file '{path}' holds {int((~whole).sum())} labels that are "
                             "not whole numbers, expected class indices -1 .. 12")
    semantic = torch.from_numpy(np.array(label, dtype=np.int64))
    outside = (semantic < -1) | (semantic >= NYUV2_NUM_CLASSES)
    if outside.any():
        values = torch.unique(semantic[outside]).tolist()
        raise ValueError(
            f"NYUv2 file '{path}' holds {int(outside.sum())} labels outside "
            f"[-1, {NYUV2_NUM_CLASSES}) (values {values[:5]}), expected classes "
            f"0 .. {NYUV2_NUM_CLASSES - 1} and -1 for unlabelled pixels")
    # MTAN's "unlabelled" is already -1; map explicitly so the course's constant rules
    return torch.where(semantic == -1, IGNORE_INDEX, semantic)


def _normals(stored: torch.Tensor, path: Path) -> torch.Tensor:
    """Stored normals (H x W x 3, channels last) as 3 x H x W unit vectors or (0, 0, 0).

    Renormalised because float16 or resized copies are unit only up to rounding; a vector
    shorter than ``MIN_NORMAL_LENGTH`` (a stored 0, or a blend across a hole) is a hole rather
    than a direction blown up from noise. Axes and signs are left as stored.
    """
    _check_finite(stored, path, "normal")
    normals = stored.permute(2, 0, 1)
    length = torch.linalg.vector_norm(normals, dim=0, keepdim=True)
    too_long = int((length > MAX_NORMAL_LENGTH).sum())
    if too_long:
        raise ValueError(f"NYUv2 file '{path}' holds {too_long} normals longer than "
                         f"{MAX_NORMAL_LENGTH} (up to {length.max():.3g}), expected unit "
                         "vectors with components in [-1, 1], or 0 where missing")
    valid = length >= MIN_NORMAL_LENGTH
    return torch.where(valid, normals / length.clamp_min(MIN_NORMAL_LENGTH), 0.0).contiguous()


def _resize(batch: Sample, size: tuple[int, int]) -> Sample:
    """A batch at ``size``: image antialiased bilinear; the three label maps nearest-exact."""
    if tuple(batch["image"].shape[-2:]) == size:
        return batch
    image = F.interpolate(batch["image"], size=size, mode="bilinear", align_corners=False,
                          antialias=True).clamp_(0, 1)
    # every label map is sampled at the same stored pixels, so they stay consistent
    semantic = F.interpolate(batch["semantic"][:, None].float(), size=size,
                             mode="nearest-exact")[:, 0].long()
    depth = F.interpolate(batch["depth"][:, None], size=size, mode="nearest-exact")[:, 0]
    normals = F.interpolate(batch["normals"], size=size, mode="nearest-exact")
    return {"image": image, "semantic": semantic, "depth": depth, "normals": normals}


def nyuv2_tasks() -> dict[str, Task]:
    """NYUv2's three tasks as the multi-task literature reports them: ``semantic`` (13 classes,
    ``NYUV2_CLASSES``), ``depth`` and ``normals``, with their kinds' default label effects."""
    return {
        "semantic": Task("semantic", SEGMENTATION, NYUV2_NUM_CLASSES, NYUV2_CLASSES),
        "depth": Task("depth", DEPTH),
        "normals": Task("normals", NORMALS),
    }
