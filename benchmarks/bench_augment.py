"""Benchmark: augmentation throughput (images/s, image and mask together), side by side.

All contenders augment MultiDigits training samples with the same recipe, in the spirit of the
article's pipeline: a random rotation (+-30 degrees), a random zoom and shift
(``RandomResizedCrop(28, scale=(0.8, 1))`` for torchvision; an affine zoom in [1, 1.1] with
shifts up to 6% for the batched contenders: sizes that the label-safety audit allows for the
digit tasks; wider ones crop digits away), a colour jitter (brightness, contrast and
saturation 0.3), conversion to float and ``Normalize``. Each pass goes over the whole data set
in batches of ``--batch-size`` and counts images per second.

Contenders:
    a_pil_dataloader: torchvision v2 on PIL images (the mask as ``tv_tensors.Mask``), one
        sample at a time, in a ``DataLoader`` with ``--workers`` worker processes (the article's
        way: a PIL data set such as torchvision's MNIST, a transform per sample);
    b_tensor_per_sample: torchvision v2 on uint8 ``tv_tensors`` per sample through
        ``SampleTransform``, in the main process (``DataLoader`` with no workers);
    c_batch_augment: ``mtlaug_lib.augment.batch.BatchAugment`` on whole batches from
        ``TensorLoader``, in the main process (on the CPU here; the batch's device in training);
    d_kornia: ``kornia.augmentation`` (``RandomAffine`` + ``ColorJitter``, the mask as an extra
        input) on the same batches, when kornia is importable.

The rounds alternate the contenders (their order rotates each round), so a slow spell on this
shared machine hits all of them; the result is each contender's median images/s and the
median of the per-round ratios to (a).

Threads: (a)'s workers run one torch thread each (torch's default in ``DataLoader`` workers),
and by default so does the main process (``--threads 1``): on this shared 2-core machine,
torch's second intra-op thread makes small tensor operations collapse whenever another process
holds a core (measured here: (b) fell from about 1,100 to 25 images/s, (c) from about 35,000
to 700). ``--threads 0`` keeps torch's default, to see that effect.

    python benchmarks/bench_augment.py [--size 4096] [--batch-size 256] [--rounds 5]
        [--workers 2] [--threads 1] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import PIL
import PIL.Image
import torch
import torchvision
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2

from mtlaug_lib.augment.batch import BatchAugment
from mtlaug_lib.augment.sample import SampleTransform
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits

sys.path.insert(0, str(Path(__file__).resolve().parent))  # `common` beside this file
from common import machine, record  # noqa: E402

HERE = Path(__file__).resolve().parent
MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def v2_recipe(on_pil: bool) -> v2.Compose:
    """The article-style v2 pipeline; ``on_pil``: the image arrives as a PIL image."""
    steps: list[Callable] = [
        v2.RandomRotation(30, interpolation=v2.InterpolationMode.BILINEAR),
        v2.RandomResizedCrop(28, scale=(0.8, 1.0), antialias=True),
        v2.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3),
    ]
    if on_pil:
        steps.append(v2.ToImage())
    steps += [v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD)]
    return v2.Compose(steps)


class PILDigits(Dataset):
    """MultiDigits as a PIL data set (as torchvision's MNIST returns ``Image.fromarray``)."""

    def __init__(self, data: MultiDigits) -> None:
        self.images = data.images.permute(0, 2, 3, 1).contiguous().numpy()  # N x H x W x 3
        self.masks, self.left, self.right = data.masks, data.left, data.right
        self.transform = v2_recipe(on_pil=True)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        image = PIL.Image.fromarray(self.images[i])
        mask = tv_tensors.Mask(self.masks[i].long())
        image, mask = self.transform(image, mask)
        return {"image": image.as_subclass(torch.Tensor), "mask": mask.as_subclass(torch.Tensor),
                "left": self.left[i], "right": self.right[i]}


class Uint8Digits(Dataset):
    """MultiDigits samples as uint8 tensors, through ``SampleTransform`` (v2 per sample)."""

    def __init__(self, data: MultiDigits) -> None:
        self.data = data
        self.transform = SampleTransform(v2_recipe(on_pil=False))

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        d = self.data
        sample = {"image": d.images[i], "mask": d.masks[i].long(), "left": d.left[i],
                  "right": d.right[i]}
        return self.transform(sample)


def batch_recipe(seed: int = 0) -> Callable[[dict], dict]:
    aug = BatchAugment(degrees=30, translate=(0.06, 0.06), scale=(1.0, 1.1), brightness=0.3,
                       contrast=0.3, saturation=0.3, generator=seed)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)

    def run(batch: dict) -> dict:
        out = aug(batch)
        out["image"] = (out["image"] - mean) / std
        return out

    return run


def kornia_recipe() -> Callable[[dict], dict] | None:
    try:
        import kornia.augmentation as K
    except ImportError:
        return None
    aug = K.AugmentationSequential(
        K.RandomAffine(degrees=30, translate=(0.06, 0.06), scale=(1.0, 1.1), p=1.0),
        K.ColorJitter(brightness=0.3, contrast=0.3, saturation=0.3, p=1.0),
        K.Normalize(mean=torch.tensor(MEAN), std=torch.tensor(STD)),
        data_keys=["input", "mask"],
    )

    def run(batch: dict) -> dict:
        image, mask = aug(batch["image"], batch["mask"][:, None].float())
        return {**batch, "image": image, "mask": mask[:, 0].round().long()}

    return run


def images_per_second(batches: Iterable[dict], fn: Callable[[dict], dict] | None) -> float:
    """One pass: fetch (and augment) every batch; images/s."""
    start = time.perf_counter()
    n = 0
    for batch in batches:
        if fn is not None:
            batch = fn(batch)
        n += len(batch["image"])
    return n / (time.perf_counter() - start)


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4096)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads of the main process (0: torch's default)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "augment.json")
    args = parser.parse_args(argv)
    host = machine()  # before set_num_threads: it records torch's default thread count
    if args.threads:
        torch.set_num_threads(args.threads)

    data = MultiDigits("train", size=args.size)
    pil_loader = DataLoader(PILDigits(data), batch_size=args.batch_size, shuffle=True,
                            num_workers=args.workers, persistent_workers=args.workers > 0)
    tensor_loader = DataLoader(Uint8Digits(data), batch_size=args.batch_size, shuffle=True)
    batches = TensorLoader(data, batch_size=args.batch_size, shuffle=True)
    batch_fn = batch_recipe()
    contenders: dict[str, Callable[[], float]] = {
        "a_pil_dataloader": lambda: images_per_second(pil_loader, None),
        "b_tensor_per_sample": lambda: images_per_second(tensor_loader, None),
        "c_batch_augment": lambda: images_per_second(batches, batch_fn),
    }
    kornia_fn = kornia_recipe()
    if kornia_fn is not None:
        contenders["d_kornia"] = lambda: images_per_second(batches, kornia_fn)
    loading = images_per_second(batches, None)  # TensorLoader alone: the floor of (c) and (d)

    for run in contenders.values():  # warm-up: worker start, first-call overheads
        run()
    names = list(contenders)
    rates: dict[str, list[float]] = {n: [] for n in names}
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[:r % len(names)]:
            rates[name].append(contenders[name]())
    ratios = {
        f"{n}_over_a": round(statistics.median(
            x / a for x, a in zip(rates[n], rates["a_pil_dataloader"], strict=True)), 2)
        for n in names if n != "a_pil_dataloader"
    }
    kornia_version = None
    if kornia_fn is not None:
        import kornia

        kornia_version = kornia.__version__
    result = {
        "benchmark": "augmentation throughput, image and mask together (images/s)",
        "size": args.size,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "workers_for_a": args.workers,
        "main_process_threads": torch.get_num_threads(),
        "images_per_s (median)": {n: round(statistics.median(v)) for n, v in rates.items()},
        "images_per_s (all rounds)": {n: [round(x) for x in v] for n, v in rates.items()},
        "ratios (median of per-round ratios)": ratios,
        "tensorloader_alone_images_per_s": round(loading),
        "c_reaches_5x_a": ratios["c_batch_augment_over_a"] >= 5,
        "machine": {**host, "torchvision": torchvision.__version__,
                    "pillow": PIL.__version__, "kornia": kornia_version},
    }
    return record(result, args.out)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main(sys.argv[1:])
