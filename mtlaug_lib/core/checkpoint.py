"""Checkpoints: written atomically, loaded with ``weights_only=True``, refused when they do not fit.

A checkpoint is a dict of tensors and plain Python values (no pickled classes), so loading it
runs no code from the file. It records the model's signature (task names and every parameter's
shape) so that a checkpoint of another architecture or task set is refused with a message that
says what differs, instead of a long ``load_state_dict`` traceback or, worse, a silent partial
load. A model built by ``make_architecture`` also has its ``architecture`` (name, backbone and
options) recorded and compared first, so that the message names the architecture or option
that differs; checkpoints without one (older ones, ``make_model``'s models) are compared by
their signature alone, as before.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .files import atomic_write

FORMAT = 1


def model_signature(model: nn.Module) -> dict[str, Any]:
    """``{"tasks": [...], "shapes": {name: [dims]}}`` for every parameter and buffer."""
    tasks = list(getattr(model, "tasks", ()))
    shapes = {name: list(t.shape) for name, t in model.state_dict().items()}
    return {"tasks": tasks, "shapes": shapes}


def _describe_architecture(saved: Any, current: Any) -> str | None:
    """What differs between two ``architecture`` records, or None if they agree (or either is
    missing: then the signature decides)."""
    if not isinstance(saved, dict) or not isinstance(current, dict) or saved == current:
        return None
    parts = [f"{key}: saved {saved.get(key)!r}, here {current.get(key)!r}"
             for key in ("name", "backbone") if saved.get(key) != current.get(key)]
    s, c = saved.get("options", {}), current.get("options", {})
    parts += [f"option {k!r}: saved {s.get(k, 'not set')!r}, here {c.get(k, 'not set')!r}"
              for k in sorted(set(s) | set(c), key=str) if s.get(k) != c.get(k)]
    return (f"it was saved from architecture {saved.get('name')!r}, this model is "
            f"{current.get('name')!r} ({'; '.join(parts)})")


def _describe_mismatch(saved: dict[str, Any], current: dict[str, Any]) -> str:
    if saved["tasks"] != current["tasks"]:
        return (
            f"it was saved from a model with tasks {saved['tasks']}, this model has "
            f"{current['tasks']}"
        )
    s, c = saved["shapes"], current["shapes"]
    missing = [k for k in c if k not in s]
    extra = [k for k in s if k not in c]
    resized = [f"{k}: saved {s[k]}, here {c[k]}" for k in c if k in s and s[k] != c[k]]
    parts = []
    if missing:
        parts.append(f"it lacks {missing[:3]}")
    if extra:
        parts.append(f"it has parameters this model does not: {extra[:3]}")
    if resized:
        parts.append(f"shapes differ ({'; '.join(resized[:3])})")
    return ", ".join(parts) or "its architecture differs"


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
    history: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write model, optimizer, scheduler and history to ``path`` atomically.

    The file is written to a temporary name in the same folder and renamed over ``path``, so a
    crash mid-write leaves the previous checkpoint intact, never a truncated one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT,
        "signature": model_signature(model),
        "architecture": getattr(model, "architecture", None),
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "history": history,
        "extra": extra or {},
    }
    return atomic_write(path, lambda f: torch.save(state, f))


def load_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and optimizer, scheduler); return its ``history`` and
    ``extra`` entries as ``{"history": ..., "extra": ...}``.

    Loaded with ``weights_only=True``. Tensors go to the model's device. A checkpoint from
    another model is refused before anything is changed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"argument 'path': no checkpoint file at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several types for a damaged file
        raise RuntimeError(
            f"checkpoint {path} could not be read ({err}); it may be damaged"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path} is not a checkpoint of this library (format {FORMAT})")
    differs = _describe_architecture(state.get("architecture"), getattr(model, "architecture",
                                                                        None))
    if differs:
        raise ValueError(f"checkpoint {path} does not fit this model: {differs}")
    current = model_signature(model)
    if state["signature"] != current:
        raise ValueError(
            f"checkpoint {path} does not fit this model: "
            f"{_describe_mismatch(state['signature'], current)}"
        )
    if optimizer is not None and state["optimizer"] is None:
        raise ValueError(f"checkpoint {path} holds no optimizer state to resume from")
    if scheduler is not None and state["scheduler"] is None:
        raise ValueError(
            f"checkpoint {path} holds no learning-rate scheduler state, but argument "
            "'scheduler' was given (was it saved from a run with schedule=None?)"
        )
    if optimizer is not None:  # first: torch checks its parameter groups before changing it
        optimizer.load_state_dict(state["optimizer"])
    model.load_state_dict(state["model"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return {"history": state["history"], "extra": state["extra"]}
