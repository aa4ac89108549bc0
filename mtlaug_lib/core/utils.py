"""Seeding, determinism, device choice and timing: what every notebook's setup cell needs."""

from __future__ import annotations

import os
import random
import time

import numpy as np
import torch

from .checks import check_seed

DEVICE_ENV = "MTLAUG_DEVICE"
KNOWN_DEVICES = ("cpu", "cuda", "mps")


def _available(kind: str) -> bool:
    if kind == "cpu":
        return True
    if kind == "cuda":
        return torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def get_device(name: str | None = None) -> torch.device:
    """Return the device the course runs on.

    The choice comes from ``name`` if given, else from the ``MTLAUG_DEVICE`` environment
    variable (``cpu``, ``cuda``, ``cuda:1``, ``mps``), else CUDA when present, else the CPU.
    Asking for a device that this machine does not have is an error, never a silent fallback:
    a GPU test run that quietly ran on the CPU would prove nothing.
    """
    source = "argument 'name'"
    if name is None:
        name = os.environ.get(DEVICE_ENV, "").strip() or None
        source = f"environment variable {DEVICE_ENV}"
    if name is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    kind = name.split(":", 1)[0].lower()
    if kind not in KNOWN_DEVICES:
        raise ValueError(
            f"{source} is {name!r}, expected one of {', '.join(KNOWN_DEVICES)} "
            "(optionally with an index, such as 'cuda:1')"
        )
    if not _available(kind):
        raise RuntimeError(
            f"{source} asks for device {name!r}, but this machine has no {kind.upper()} "
            f"device that PyTorch {torch.__version__} can use; unset {DEVICE_ENV} or set it "
            "to 'cpu'"
        )
    device = torch.device(name.lower())
    if kind == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise RuntimeError(
            f"{source} asks for {name!r}, but only {torch.cuda.device_count()} CUDA "
            "device(s) are visible"
        )
    return device


def seed_everything(seed: int = 0) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded with ``seed``.

    Course code creates data and initial weights on the CPU from such a generator, then moves
    them to the device, so CPU and GPU runs start from the same numbers.
    """
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def set_deterministic(enabled: bool = True) -> None:
    """Ask PyTorch for deterministic kernels (cuDNN included), warning where none exists.

    Determinism makes reruns on one machine repeat exactly; it does not make a GPU match a
    CPU bit for bit, which is why notebooks never print raw training floats.
    """
    torch.backends.cudnn.benchmark = not enabled
    torch.backends.cudnn.deterministic = enabled
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    if enabled:
        # cuBLAS needs this workspace setting to be deterministic; it must be set before the
        # first CUDA matmul, so setting it here only helps when called early (the setup cell).
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def synchronize(device: torch.device | str) -> None:
    """Wait until every kernel queued on ``device`` has finished (a no-op on the CPU).

    CUDA and MPS run kernels asynchronously: a Python call returns when the work is queued,
    not done. Reading a clock without synchronising times the queueing, not the work.
    """
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Stopwatch:
    """Wall-clock time of a block of code on ``device``, synchronised at both ends.

    Example::

        with mtl.Stopwatch(device) as watch:
            model(x)
        watch.seconds  # float: the block's time, queued device work included
    """

    def __init__(self, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.seconds = float("nan")
        self._start = 0.0

    def __enter__(self) -> Stopwatch:
        synchronize(self.device)
        self._start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        synchronize(self.device)
        self.seconds = time.perf_counter() - self._start
