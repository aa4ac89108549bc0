"""The batch format: the image key, and what MixUp and CutMix leave in a batch for the loss.

A mixer (``mtlaug_lib.augment.mixing``) blends or pastes images; a class label cannot be blended,
so the batch carries the mixing under reserved keys and ``MultiTaskLoss`` mixes the loss of each
task that declares ``mixes`` for that kind of transform:

- ``"mix.lam"``: float B, the weight of each sample's own labels (CutMix: the area it keeps);
- ``"mix.perm"``: int64 B, the index of each sample's partner in the batch;
- ``"mix.kind"``: 0-dim int64 on the CPU, the index in ``TRANSFORM_KINDS`` of ``"mixing"``
  (MixUp) or ``"region_mixing"`` (CutMix).

The keys start with ``MIX_PREFIX`` and contain a dot, so no task name (a Python identifier) can
clash with them. The format lives in the core because the loss reads it and the augmenters
write it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch

from .checks import describe_value
from .tasks import TRANSFORM_KINDS, LabelEffect, Task

IMAGE = "image"  # the batch and sample key of the image
MIX_PREFIX = "mix."

MIX_LAM = MIX_PREFIX + "lam"
MIX_PERM = MIX_PREFIX + "perm"
MIX_KIND = MIX_PREFIX + "kind"
MIX_KEYS = (MIX_LAM, MIX_PERM, MIX_KIND)
MIX_KINDS = ("mixing", "region_mixing")


@dataclass(frozen=True)
class MixInfo:
    """The mixing that a batch carries: ``lam`` (float B), ``perm`` (int64 B), ``kind``."""

    lam: torch.Tensor
    perm: torch.Tensor
    kind: str

    def for_task(self, task: Task) -> tuple[torch.Tensor, torch.Tensor] | None:
        """``(lam, perm)`` if ``task``'s loss must be mixed, else None (its labels are right
        as they are: kept, or pasted with the image). A task that declares that this kind of
        mixing breaks its labels is an error."""
        effect = task.label_effects[self.kind]
        if effect is LabelEffect.MIXES:
            return self.lam, self.perm
        if effect is LabelEffect.BREAKS:
            mixer = "CutMix" if self.kind == "region_mixing" else "MixUp"
            raise ValueError(
                f"the batch was mixed ({mixer}, kind {self.kind!r}), but task {task.name!r} "
                f"declares that {self.kind} breaks its labels; leave the mixer out, or declare "
                "how the task's labels mix"
            )
        return None


def batch_mix(batch: Mapping[str, torch.Tensor]) -> MixInfo | None:
    """The mixing a batch carries (from ``MixUp``/``CutMix``), or None for a plain batch.

    Checks that the reserved keys come together and fit the batch (one entry per image).
    """
    present = [k for k in MIX_KEYS if k in batch]
    if not present:
        return None
    if len(present) != len(MIX_KEYS):
        raise KeyError(
            f"the batch holds {present} but not {[k for k in MIX_KEYS if k not in batch]}; "
            "the mixing keys come together (from mtlaug_lib.augment.mixing.MixUp or CutMix)"
        )
    lam, perm, kind = batch[MIX_LAM], batch[MIX_PERM], batch[MIX_KIND]
    n = len(batch[IMAGE]) if IMAGE in batch else len(lam)
    if lam.shape != (n,) or not lam.is_floating_point():
        raise ValueError(f"batch[{MIX_LAM!r}] is a {describe_value(lam)}, expected float ({n},)")
    if perm.shape != (n,) or perm.dtype != torch.int64:
        raise ValueError(
            f"batch[{MIX_PERM!r}] is a {describe_value(perm)}, expected int64 ({n},)"
        )
    index = int(kind)  # on the CPU, so no device sync
    if kind.ndim != 0 or not 0 <= index < len(TRANSFORM_KINDS) or (
        TRANSFORM_KINDS[index] not in MIX_KINDS
    ):
        raise ValueError(
            f"batch[{MIX_KIND!r}] is {kind!r}, expected the index in TRANSFORM_KINDS of one of "
            f"{MIX_KINDS}"
        )
    return MixInfo(lam, perm, TRANSFORM_KINDS[index])
