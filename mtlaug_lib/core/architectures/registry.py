"""The architectures by name, and ``make_architecture`` to build one from the tasks.

Each entry of ``ARCHITECTURES`` is an ``ArchitectureSpec``: how to build it, the options it
takes (with their defaults; ``REQUIRED`` for none), an example configuration (the contract
tests build every entry with it) and what it shares, in one line. Adding an architecture is one
module and one entry here.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..checks import check_choice, check_int
from ..encoder_decoder import EncoderDecoder
from ..models import BACKBONES, FeatureExtractor, make_model
from ..tasks import CLASSIFICATION, SEGMENTATION, Task
from .branched import Branched
from .cross_stitch import CrossStitch
from .mmoe import MMoE
from .mtan import MTAN

REQUIRED = object()  # an option without a default


def _defaults(cls: type) -> dict[str, Any]:
    return {k: p.default for k, p in inspect.signature(cls).parameters.items()
            if p.default is not inspect.Parameter.empty}


# The backbone options make_model takes, with their defaults (EncoderDecoder's own).
BACKBONE_OPTIONS: dict[str, dict[str, Any]] = {
    "article": {},
    "encoder_decoder": {"width": _defaults(EncoderDecoder)["width"],
                        "depth": _defaults(EncoderDecoder)["depth"], "head_hidden": None},
}


@dataclass(frozen=True)
class ArchitectureSpec:
    """One entry of ``ARCHITECTURES``.

    Attributes:
        build: ``(tasks, backbone, backbone_options, **options) -> model``.
        options: the entry's own options and their defaults (``REQUIRED``: none; a function
            ``(backbone, backbone_options) -> default`` where it depends on the backbone).
        example: options the contract tests build it with (for either backbone).
        shares: what the tasks share, in one line.
    """

    build: Callable[..., nn.Module]
    options: Mapping[str, Any]
    example: Mapping[str, Any]
    shares: str


def _reference(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any]) -> nn.Module:
    return make_model(tasks, backbone, **opts)


def _hard(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any]) -> nn.Module:
    return _reference(tasks, backbone, opts)


def _branched(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any],
              branch_point: int) -> nn.Module:
    return Branched(_reference(tasks, backbone, opts), branch_point)


def _cross_stitch(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any]
                  ) -> nn.Module:
    return CrossStitch(_reference(tasks, backbone, opts))


def _mtan(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any]) -> nn.Module:
    return MTAN(_reference(tasks, backbone, opts))


def _experts(backbone: str, opts: Mapping[str, Any]) -> int:
    return 4 if backbone == "encoder_decoder" else 2  # four half-width, or two article's


def _expert_width(backbone: str, opts: Mapping[str, Any]) -> int | None:
    return max(1, opts["width"] // 2) if backbone == "encoder_decoder" else None


def _mmoe(tasks: Mapping[str, Task], backbone: str, opts: Mapping[str, Any],
          experts: int, expert_width: int | None) -> nn.Module:
    experts = check_int("experts", experts, minimum=1)
    if backbone != "encoder_decoder":
        if expert_width is not None:
            raise ValueError("argument 'expert_width' only applies to backbone='encoder_decoder' "
                             "(the article's heads need its 64-channel features)")
        first = make_model(tasks)  # the article's heads, then the first expert
        rest = [FeatureExtractor() for _ in range(experts - 1)]
        return MMoE([first.backbone, *rest], first.heads, 64)
    width = check_int("expert_width", expert_width, minimum=1)

    def expert() -> EncoderDecoder:
        return EncoderDecoder(width=width, depth=opts["depth"])

    first = make_model(tasks, expert(), head_hidden=opts["head_hidden"])
    rest = [expert() for _ in range(experts - 1)]
    return MMoE([first.backbone, *rest], first.heads, width)


ARCHITECTURES: dict[str, ArchitectureSpec] = {
    "hard": ArchitectureSpec(_hard, {}, {}, "the whole backbone (make_model's model)"),
    "branched": ArchitectureSpec(
        _branched, {"branch_point": REQUIRED}, {"branch_point": 1},
        "the backbone's first branch_point blocks; the rest copied per task"),
    "cross_stitch": ArchitectureSpec(
        _cross_stitch, {}, {},
        "nothing hard: one column per task, mixed after each block by learned units"),
    "mtan": ArchitectureSpec(
        _mtan, {}, {}, "the whole backbone, read through per-task attention masks"),
    "mmoe": ArchitectureSpec(
        _mmoe, {"experts": _experts, "expert_width": _expert_width}, {"experts": 2},
        "E expert backbones, mixed per task and per image by softmax gates"),
}


def _check_kinds(name: str, tasks: Mapping[str, Task], backbone: str) -> None:
    if backbone != "article":
        return
    other = [f"{t!r} ({task.kind})" for t, task in tasks.items()
             if task.kind not in (CLASSIFICATION, SEGMENTATION)]
    if other:
        raise ValueError(
            f"architecture {name!r} with backbone='article' cannot serve task(s) "
            f"{', '.join(other)}: they need full-resolution features, which the article's "
            "backbone does not give (it serves classification and segmentation); use "
            "backbone='encoder_decoder'"
        )


def make_architecture(
    name: str,
    tasks: Mapping[str, Task],
    backbone: str = "encoder_decoder",
    seed: int | None = None,
    **options: Any,
) -> nn.Module:
    """A multi-task model of architecture ``name`` (see ``ARCHITECTURES``) for ``tasks``.

    Every architecture has ``MultiTaskModel``'s interface: ``forward(x) -> {task: output}``
    (the output shapes ``make_model``'s heads give), ``tasks``, ``shared_parameters()``,
    ``task_parameters(task)``, ``parameter_report()``, and ``architecture``: ``{"name",
    "backbone", "options"}`` (every option, defaults filled in), which checkpoints record.

    Args:
        name: an entry of ``ARCHITECTURES``: ``"hard"``, ``"branched"`` (``branch_point``),
            ``"cross_stitch"``, ``"mtan"``, ``"mmoe"`` (``experts``, ``expert_width``).
        tasks: the tasks, by name (their order is the heads' order).
        backbone: ``"encoder_decoder"`` (dense tasks) or ``"article"`` (classification and
            segmentation at 28 x 28).
        seed: if given, the weights are drawn on the CPU from this seed without touching the
            global random state; the backbone and heads are then ``make_model``'s for the same
            seed (for ``"hard"``, ``"branched"``, ``"cross_stitch"``, ``"mtan"``).
        **options: the backbone's (``width``, ``depth``, ``head_hidden``: encoder-decoder only)
            and the architecture's.
    """
    check_choice("name", name, tuple(ARCHITECTURES))
    check_choice("backbone", backbone, BACKBONES)
    if not tasks:
        raise ValueError("argument 'tasks' is empty, expected at least one Task")
    spec = ARCHITECTURES[name]
    known = {**BACKBONE_OPTIONS[backbone], **spec.options}
    unknown = sorted(set(options) - set(known))
    if unknown:
        other = "; width, depth and head_hidden need backbone='encoder_decoder'" if (
            backbone == "article" and set(unknown) & set(BACKBONE_OPTIONS["encoder_decoder"])
        ) else ""
        raise ValueError(
            f"argument(s) {unknown} are not options of architecture {name!r} with backbone="
            f"{backbone!r}, expected some of {sorted(known)}{other}"
        )
    missing = [k for k, v in spec.options.items() if v is REQUIRED and k not in options]
    if missing:
        raise ValueError(f"architecture {name!r} needs argument(s) {missing}")
    _check_kinds(name, tasks, backbone)
    resolved = {**known, **options}
    backbone_opts = {k: resolved[k] for k in BACKBONE_OPTIONS[backbone]}
    for k, v in spec.options.items():  # defaults that depend on the backbone
        if k not in options and callable(v):
            resolved[k] = v(backbone, backbone_opts)
    own = {k: resolved[k] for k in spec.options}

    def build() -> nn.Module:
        return spec.build(tasks, backbone, backbone_opts, **own)

    if seed is None:
        model = build()
    else:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = build()
    model.architecture = {"name": name, "backbone": backbone, "options": resolved}
    return model
