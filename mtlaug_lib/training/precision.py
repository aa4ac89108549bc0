"""Mixed precision: autocast for the forward pass, and dynamic loss scaling for fp16.

``train(..., precision="fp32" | "bf16" | "fp16")`` builds one ``Precision`` for the run.

- ``fp32``: nothing changes (the default; every number as without this module).
- ``bf16``: the forward pass runs under ``torch.autocast`` in bfloat16, on a CPU or a GPU.
  bfloat16 has float32's exponent range, so gradients neither underflow nor overflow and need
  no scaling; it has 8 bits of mantissa instead of 24, which is what the loss of accuracy, if
  any, comes from.
- ``fp16``: autocast in float16, on CUDA only. float16's range is small (largest 65,504,
  smallest normal 6e-5), so small gradients would flush to zero: the loss is multiplied by a
  scale before backward and the gradients divided by it before they are used (``LossScaler``).
  A step whose gradients overflow (inf or NaN after unscaling) is skipped and the scale halved;
  after ``growth_interval`` good steps in a row it doubles. These are ``torch.amp.GradScaler``'s
  rules and defaults, written out here so that every strategy, the gradient-combination
  methods included, unscales *before* it combines gradients and skips a bad step the same way.

Parameters and optimizer states stay in float32 in every mode (autocast only changes the dtype
of the operations' results).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from ..core.checks import check_choice

PRECISIONS = ("fp32", "bf16", "fp16")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class LossScaler:
    """Dynamic loss scaling (the rules of ``torch.amp.GradScaler``).

    ``scale`` multiplies the loss before backward; ``unscale(grads)`` divides the gradients in
    place and says whether they are all finite; ``update(finite)`` halves the scale after an
    overflow and doubles it after ``growth_interval`` finite steps in a row.
    """

    scale: float = 2.0**16
    growth_factor: float = 2.0
    backoff_factor: float = 0.5
    growth_interval: int = 2000
    good_steps: int = 0
    skipped: int = field(default=0)

    def scaled(self, loss: torch.Tensor) -> torch.Tensor:
        """``loss * scale`` (backpropagate this instead of the loss)."""
        return loss * self.scale

    def unscale(self, grads: Iterable[torch.Tensor | None]) -> bool:
        """Divide every gradient by the scale, in place; True if all of them are finite."""
        grads = [g for g in grads if g is not None]
        if not grads:
            return True
        inv = 1.0 / self.scale
        for g in grads:
            g.mul_(inv)
        # One sync for all: the sum of the per-tensor "all finite" flags.
        ok = torch.stack([torch.isfinite(g).all() for g in grads]).all()
        return bool(ok)

    def update(self, finite: bool) -> None:
        """After a step: back off after an overflow (the step was skipped), grow after
        ``growth_interval`` finite steps in a row."""
        if not finite:
            self.scale *= self.backoff_factor
            self.good_steps = 0
            self.skipped += 1
            return
        self.good_steps += 1
        if self.good_steps == self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0

    def state_dict(self) -> dict[str, Any]:
        return {"scale": self.scale, "good_steps": self.good_steps, "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.scale = float(state["scale"])
        self.good_steps = int(state["good_steps"])
        self.skipped = int(state["skipped"])


class Precision:
    """A run's numeric precision: its autocast context and, for fp16, its loss scaler.

    Args:
        name: ``"fp32"``, ``"bf16"`` or ``"fp16"``.
        device: where the model runs (fp16 needs CUDA).
        autocast: False keeps the forward pass in float32 and only scales the loss (fp16's
            loss scaling alone, on any device). With a power-of-two scale this computes what
            fp32 does, bit for bit, until an overflow: the tests check the scaling this way on
            a CPU.
    """

    def __init__(self, name: str, device: torch.device | str, *, autocast: bool = True) -> None:
        check_choice("precision", name, PRECISIONS)
        device = torch.device(device)
        self.use_autocast = bool(autocast)
        if name == "fp16" and device.type != "cuda" and self.use_autocast:
            raise ValueError(
                f"argument 'precision' is 'fp16', but the model is on {device.type!r}: fp16 "
                "training with loss scaling is for CUDA devices; use precision='bf16' on a CPU "
                "(or 'fp32')"
            )
        self.name = name
        self.device_type = device.type
        self.dtype = DTYPES[name]
        self.scaler = LossScaler() if name == "fp16" else None
        self.overflowed = False  # set by optimizer_step during a step; read by end_step

    @property
    def enabled(self) -> bool:
        """Whether anything differs from plain float32."""
        return self.name != "fp32"

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """The forward pass's context: autocast to ``dtype``, or nothing for fp32."""
        if not self.enabled or not self.use_autocast:
            yield
            return
        with torch.autocast(self.device_type, dtype=self.dtype):
            yield

    def end_step(self) -> None:
        """After a training step: update the loss scale (back off if any update of the step
        overflowed and was skipped)."""
        if self.scaler is not None:
            self.scaler.update(not self.overflowed)
        self.overflowed = False

    def state_dict(self) -> dict[str, Any]:
        return {"precision": self.name,
                "scaler": None if self.scaler is None else self.scaler.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("precision") != self.name:
            raise ValueError(
                f"the checkpoint was trained with precision {state.get('precision')!r}, this "
                f"run uses {self.name!r} (resume with the precision the run was started with)"
            )
        if self.scaler is not None:
            self.scaler.load_state_dict(state["scaler"])

    def __repr__(self) -> str:
        return f"Precision({self.name!r}, {self.device_type!r})"


# The run's precision, while ``train`` runs a step: the strategies backpropagate and step
# through ``backward`` and ``optimizer_step`` below, which scale and unscale when it says so.
_ACTIVE: contextvars.ContextVar[Precision | None] = contextvars.ContextVar("precision",
                                                                          default=None)


@contextlib.contextmanager
def active(precision: Precision | None) -> Iterator[None]:
    """Make ``precision`` the one ``backward``, ``loss_scale`` and ``optimizer_step`` use."""
    token = _ACTIVE.set(precision)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _scaler() -> LossScaler | None:
    precision = _ACTIVE.get()
    return None if precision is None else precision.scaler


def loss_scale() -> float:
    """The active loss scale (1.0 without fp16 loss scaling)."""
    scaler = _scaler()
    return 1.0 if scaler is None else scaler.scale


def backward(loss: torch.Tensor) -> None:
    """``loss.backward()``, of the scaled loss under fp16 (so the gradients are scaled until
    ``optimizer_step`` divides them)."""
    scaler = _scaler()
    (loss if scaler is None else scaler.scaled(loss)).backward()


def optimizer_step(optimizer: torch.optim.Optimizer,
                   extra: Iterable[torch.nn.Parameter] = ()) -> bool:
    """``optimizer.step()``; under fp16 first divide the gradients of its parameters (and of
    ``extra``, parameters another optimizer steps) by the scale, and skip the step if any is
    not finite (their gradients are then cleared). Returns whether the step was taken."""
    precision = _ACTIVE.get()
    scaler = None if precision is None else precision.scaler
    if scaler is None:
        optimizer.step()
        return True
    params = [p for group in optimizer.param_groups for p in group["params"]] + list(extra)
    if scaler.unscale(p.grad for p in params):
        optimizer.step()
        return True
    precision.overflowed = True
    for p in params:
        p.grad = None
    return False


def skip_step() -> None:
    """Record that this step's update was skipped for an overflow (a strategy that found its
    gradients not finite before stepping; ``end_step`` then backs the scale off)."""
    precision = _ACTIVE.get()
    if precision is not None:
        precision.overflowed = True
