"""The article's networks made real: the shared feature extractor, task heads, the multi-task
model; and the heads that sit on the encoder-decoder (``encoder_decoder``) for dense tasks.

``FeatureExtractor`` and ``Classifier`` keep the article's layers and names exactly (so its
state dicts load), adding only checks that turn a shape mismatch deep inside ``F.linear`` into
a message that says what was expected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .checks import check_choice, check_int
from .encoder_decoder import EncoderDecoder
from .tasks import CLASSIFICATION, SEGMENTATION, Task

FEATURE_SHAPE = (64, 7, 7)  # what the article's extractor gives for a 3 x 28 x 28 input
INPUT_SHAPE = (3, 28, 28)


def _check_images(x: torch.Tensor, channels: int, size: tuple[int, int] | None, who: str) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        got = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"{who} expects a batch of images N x C x H x W, got {got}")
    if x.shape[1] != channels:
        raise ValueError(
            f"{who} expects {channels} input channels (N x {channels} x H x W), got "
            f"{x.shape[1]} (input shape {tuple(x.shape)})"
        )
    if size is not None and tuple(x.shape[2:]) != size:
        raise ValueError(
            f"{who} expects {size[0]} x {size[1]} images, got {x.shape[2]} x {x.shape[3]} "
            f"(input shape {tuple(x.shape)}): its output must be 64 x 7 x 7 to fit the article's "
            "Classifier (Linear(64 * 7 * 7, 128)); resize the images, or use "
            "AdaptiveFeatureExtractor for other sizes"
        )


class FeatureExtractor(nn.Module):
    """The article's shared CNN: two 3x3 convolutions with ReLU, each followed by 2x2 max-pooling.

    Shapes: N x 3 x 28 x 28 in, N x 64 x 7 x 7 out (28 -> 14 -> 7). Other sizes are refused,
    because the article's heads hard-code ``64 * 7 * 7`` input features.
    """

    in_channels = 3
    input_size: tuple[int, int] | None = (28, 28)

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 32, kernel_size=3, stride=1, padding=1)
        self.conv2 = nn.Conv2d(32, 64, kernel_size=3, stride=1, padding=1)
        self.pool = nn.MaxPool2d(2, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x 28 x 28 -> N x 64 x 7 x 7."""
        _check_images(x, self.in_channels, self.input_size, type(self).__name__)
        x = self.pool(F.relu(self.conv1(x)))
        x = self.pool(F.relu(self.conv2(x)))
        return x


class AdaptiveFeatureExtractor(FeatureExtractor):
    """The article's extractor made size-agnostic: adaptive average pooling to 64 x 7 x 7.

    Any input of at least 4 x 4 pixels gives N x 64 x 7 x 7, so the article's heads fit. For
    28 x 28 inputs the extra pooling is the identity, so weights carry over from the article's
    ``FeatureExtractor`` and give the same features.
    """

    input_size = None

    def __init__(self, out_size: int = 7) -> None:
        super().__init__()
        self.fit = nn.AdaptiveAvgPool2d(out_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 3 x H x W (H, W >= 4) -> N x 64 x out_size x out_size."""
        _check_images(x, self.in_channels, None, type(self).__name__)
        if min(x.shape[2:]) < 4:
            raise ValueError(
                f"AdaptiveFeatureExtractor expects images of at least 4 x 4 pixels (two 2x2 "
                f"poolings), got {x.shape[2]} x {x.shape[3]}"
            )
        return self.fit(super().forward(x))


class Classifier(nn.Module):
    """The article's classification head: flatten 64 x 7 x 7 -> 128 (ReLU) -> ``num_classes``.

    Shapes: N x 64 x 7 x 7 features in, N x num_classes logits out.
    """

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, minimum=2)
        self.fc1 = nn.Linear(64 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 64 x 7 x 7 -> N x num_classes."""
        if x.ndim < 2 or x[0].numel() != self.fc1.in_features:
            raise ValueError(
                f"Classifier expects features N x 64 x 7 x 7 ({self.fc1.in_features} per "
                f"sample), got shape {tuple(x.shape)}"
            )
        x = x.view(x.size(0), -1)
        x = F.relu(self.fc1(x))
        return self.fc2(x)


class DenseHead(nn.Module):
    """A segmentation head: 64 x 7 x 7 features -> ``num_classes`` x 28 x 28 per-pixel logits.

    Two stride-2 transposed convolutions undo the backbone's two poolings (7 -> 14 -> 28).
    It only sees the 7 x 7 bottleneck, so detail finer than 4 x 4 pixels must be re-invented:
    the limit notebook 02 measures.
    """

    def __init__(self, num_classes: int, in_channels: int = 64) -> None:
        super().__init__()
        num_classes = check_int("num_classes", num_classes, minimum=2)
        self.up1 = nn.ConvTranspose2d(in_channels, 32, kernel_size=2, stride=2)
        self.up2 = nn.ConvTranspose2d(32, 16, kernel_size=2, stride=2)
        self.out = nn.Conv2d(16, num_classes, kernel_size=3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x 64 x 7 x 7 -> N x num_classes x 28 x 28."""
        if x.ndim != 4 or x.shape[1] != self.up1.in_channels:
            raise ValueError(
                f"DenseHead expects features N x {self.up1.in_channels} x H x W, got shape "
                f"{tuple(x.shape)}"
            )
        x = F.relu(self.up1(x))
        x = F.relu(self.up2(x))
        return self.out(x)


class ConvHead(nn.Module):
    """A dense head on full-resolution features: a 3x3 convolution with ReLU, then a 1x1
    convolution to the task's output channels (``hidden=0``: the 1x1 convolution alone).

    Shapes: N x in_channels x H x W -> N x out_channels x H x W (logits for segmentation,
    depth for depth, an unnormalised normal for normals: the task's loss and metrics take it
    from there). The 3x3 layer gives each task a little capacity of its own on top of what the
    tasks share.
    """

    def __init__(self, in_channels: int, out_channels: int, hidden: int | None = None) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        out_channels = check_int("out_channels", out_channels, minimum=1)
        hidden = in_channels if hidden is None else check_int("hidden", hidden, minimum=0)
        self.hidden = (
            nn.Conv2d(in_channels, hidden, kernel_size=3, padding=1) if hidden else None
        )
        self.out = nn.Conv2d(hidden or in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x in_channels x H x W -> N x out_channels x H x W."""
        first = self.hidden if self.hidden is not None else self.out
        if x.ndim != 4 or x.shape[1] != first.in_channels:
            raise ValueError(
                f"ConvHead expects features N x {first.in_channels} x H x W, got shape "
                f"{tuple(x.shape)}"
            )
        if self.hidden is not None:
            x = F.relu(self.hidden(x))
        return self.out(x)


class PooledClassifier(nn.Module):
    """A classification head on feature maps of any size: global average pooling, then a
    linear layer.

    Shapes: N x in_channels x H x W -> N x num_classes.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=2)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: N x in_channels x H x W -> N x num_classes."""
        if x.ndim != 4 or x.shape[1] != self.fc.in_features:
            raise ValueError(
                f"PooledClassifier expects features N x {self.fc.in_features} x H x W, got "
                f"shape {tuple(x.shape)}"
            )
        return self.fc(x.mean(dim=(2, 3)))


class MultiTaskModel(nn.Module):
    """Hard parameter sharing: one backbone, one head per task.

    ``forward(x)`` returns ``{task: head(backbone(x))}``; a single-task model is the same class
    with one head.

    Args:
        backbone: maps N x 3 x H x W images to features (N x 64 x 7 x 7 for the article's).
        heads: one module per task name, each mapping the features to that task's output.
    """

    def __init__(self, backbone: nn.Module, heads: Mapping[str, nn.Module]) -> None:
        super().__init__()
        if not isinstance(heads, Mapping) or not heads:
            raise ValueError(f"argument 'heads' is {heads!r}, expected a non-empty dict of modules")
        for name, head in heads.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"head name {name!r} must be a valid identifier string")
            if not isinstance(head, nn.Module):
                raise TypeError(f"head {name!r} is a {type(head).__name__}, expected an nn.Module")
        self.backbone = backbone
        self.heads = nn.ModuleDict(dict(heads))

    @property
    def tasks(self) -> tuple[str, ...]:
        return tuple(self.heads.keys())

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> dict[str, torch.Tensor] | tuple[dict[str, torch.Tensor], torch.Tensor]:
        """x: N x 3 x H x W -> ``{task: output}`` (and the shared features if asked)."""
        features = self.backbone(x)
        outputs = {name: head(features) for name, head in self.heads.items()}
        return (outputs, features) if return_features else outputs

    def shared_representation(self, x: torch.Tensor) -> torch.Tensor:
        """The one representation every task reads: the backbone's features (N x 64 x 7 x 7,
        or N x width x H x W for an encoder-decoder). With ``heads_from`` it splits
        ``forward`` where representation gradients are taken (``training.gradient_source``)."""
        return self.backbone(x)

    def heads_from(
        self, z: torch.Tensor, tasks: tuple[str, ...] | list[str] | None = None
    ) -> dict[str, torch.Tensor]:
        """``{task: head(z)}`` for ``tasks`` (default: all) from ``shared_representation``'s
        features ``z``."""
        return {name: self.heads[name](z) for name in (self.tasks if tasks is None else tasks)}

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        if task not in self.heads:
            raise KeyError(f"task {task!r} is not one of this model's tasks {self.tasks}")
        return list(self.heads[task].parameters())

    def parameter_report(self) -> dict[str, int]:
        """Parameter counts: ``{"shared": n, <task>: n, ..., "total": n}``."""
        report = {"shared": count_parameters(self.backbone)}
        report.update({name: count_parameters(head) for name, head in self.heads.items()})
        report["total"] = count_parameters(self)
        return report


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable) scalar parameters in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def shape_trace(model: nn.Module, x: torch.Tensor) -> list[tuple[str, tuple[int, ...], int]]:
    """Run ``model`` on ``x`` and list every leaf module call in order.

    Returns rows ``(name, output shape, parameters)``; a module called twice (the article's one
    ``pool``) appears twice, and functional calls such as ``F.relu`` do not appear at all.
    """
    rows: list[tuple[str, tuple[int, ...], int]] = []
    hooks = []
    for name, module in model.named_modules():
        if name and not list(module.children()):
            def record(
                mod: nn.Module, inputs: object, output: torch.Tensor, name: str = name
            ) -> None:
                rows.append((name, tuple(output.shape), count_parameters(mod)))

            hooks.append(module.register_forward_hook(record))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return rows


BACKBONES = ("article", "encoder_decoder")  # make_model's backbones by name


def make_model(
    tasks: Mapping[str, Task],
    backbone: nn.Module | str | None = None,
    seed: int | None = None,
    *,
    width: int | None = None,
    depth: int | None = None,
    head_hidden: int | None = None,
) -> MultiTaskModel:
    """A ``MultiTaskModel`` with one head per task.

    With the article's backbone (the default, or ``backbone="article"``): the article's
    ``Classifier`` for classification tasks and ``DenseHead`` (28 x 28 masks) for segmentation
    tasks. With ``backbone="encoder_decoder"`` (or an ``EncoderDecoder`` instance): full-
    resolution features, a ``ConvHead`` with ``task.out_channels`` outputs for each dense task
    (segmentation, depth, normals) and a ``PooledClassifier`` for each classification task.

    Args:
        tasks: the tasks, by name (their order is the heads' order).
        backbone: ``None`` or ``"article"`` (the article's ``FeatureExtractor``),
            ``"encoder_decoder"``, or the shared extractor as a module (an ``EncoderDecoder``
            gets the dense heads, any other module the article's heads).
        seed: if given, the initial weights are drawn on the CPU from this seed without
            touching the global random state, so the same seed gives the same model anywhere.
        width, depth: the ``EncoderDecoder``'s options (its defaults if not given: width 8,
            depth 3); only with ``backbone="encoder_decoder"``.
        head_hidden: channels of each ``ConvHead``'s 3x3 layer (default: the backbone's width;
            0: a 1x1 convolution alone, which makes a step about a third cheaper at width 8
            (``benchmarks/bench_dense_model.py``) but leaves each task only a linear map of the
            shared features); only with an encoder-decoder.
    """
    if not tasks:
        raise ValueError("argument 'tasks' is empty, expected at least one Task")
    if backbone is None or isinstance(backbone, str):
        check_choice("backbone", "article" if backbone is None else backbone, BACKBONES)
    options = {"width": width, "depth": depth}
    given = [k for k, v in options.items() if v is not None]
    if given and backbone != "encoder_decoder":
        shown = backbone if backbone is None or isinstance(backbone, str) else type(backbone)
        raise ValueError(
            f"argument(s) {given} only apply to backbone='encoder_decoder', got backbone="
            f"{getattr(shown, '__name__', shown)!r}"
        )
    dense = backbone == "encoder_decoder" or isinstance(backbone, EncoderDecoder)
    if head_hidden is not None:
        if not dense:
            raise ValueError("argument 'head_hidden' only applies to an encoder-decoder backbone")
        check_int("head_hidden", head_hidden, minimum=0)
    if not dense:
        other = [f"{name!r} ({t.kind})" for name, t in tasks.items()
                 if t.kind not in (CLASSIFICATION, SEGMENTATION)]
        if other:
            raise ValueError(
                f"task(s) {', '.join(other)} need full-resolution features, which the article's "
                "backbone does not give (its DenseHead draws 28 x 28 class maps from 7 x 7 "
                "features): use make_model(tasks, backbone='encoder_decoder')"
            )

    def build() -> MultiTaskModel:
        if dense:
            net = backbone if isinstance(backbone, EncoderDecoder) else EncoderDecoder(
                **{k: v for k, v in options.items() if v is not None})
            dense_heads = {
                name: PooledClassifier(net.out_channels, t.num_classes)
                if t.kind == CLASSIFICATION
                else ConvHead(net.out_channels, t.out_channels, head_hidden)
                for name, t in tasks.items()
            }
            return MultiTaskModel(net, dense_heads)
        # The article's model: the heads are drawn before the backbone, as they always were,
        # so seeded models (and every number the notebooks store) stay the same.
        heads = {
            name: (Classifier if t.kind == CLASSIFICATION else DenseHead)(t.num_classes)
            for name, t in tasks.items()
        }
        extractor = backbone if isinstance(backbone, nn.Module) else FeatureExtractor()
        return MultiTaskModel(extractor, heads)

    if seed is None:
        return build()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def count_macs(
    model: nn.Module, x: torch.Tensor, tasks: Sequence[str] | None = None
) -> dict[str, int]:
    """Multiply-accumulates per image of each top-level part of ``model`` for input ``x``.

    Counts convolutions, transposed convolutions and linear layers (pooling and activations are
    cheap by comparison). For a ``MultiTaskModel`` the parts are ``backbone`` and
    ``heads.<task>``. Shapes: x is 1 x 3 x H x W (or any batch; the result is per image).

    With ``tasks``, only what those tasks' outputs need runs (a ``MultiTaskModel``'s backbone
    and those heads; an architecture's ``forward_tasks``): the compute of serving them alone.
    """
    run_model = _task_forward(model, tasks)
    totals: dict[str, int] = {}
    hooks = []

    def part_of(name: str) -> str:
        bits = name.split(".")
        return ".".join(bits[:2]) if bits[0] == "heads" else bits[0]

    for name, module in model.named_modules():
        if not isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            continue

        def count(mod: nn.Module, inputs: tuple, output: torch.Tensor, part: str = part_of(name)):
            n = output.shape[0]
            if isinstance(mod, nn.Linear):
                macs = output.numel() // n * mod.in_features
            elif isinstance(mod, nn.Conv2d):
                k = mod.kernel_size[0] * mod.kernel_size[1]
                macs = output.numel() // n * (mod.in_channels // mod.groups) * k
            else:  # transposed convolution: every input pixel is spread over a k x k patch
                k = mod.kernel_size[0] * mod.kernel_size[1]
                macs = inputs[0].numel() // n * (mod.out_channels // mod.groups) * k
            totals[part] = totals.get(part, 0) + macs

        hooks.append(module.register_forward_hook(count))
    try:
        with torch.no_grad():
            run_model(x)
    finally:
        for h in hooks:
            h.remove()
    return totals


def _task_forward(
    model: nn.Module, tasks: Sequence[str] | None
) -> Callable[[torch.Tensor], object]:
    """``x -> outputs`` of ``tasks`` only (all of ``model`` when ``tasks`` is None)."""
    if tasks is None:
        return model
    if isinstance(tasks, str) or not tasks:
        raise ValueError(f"argument 'tasks' is {tasks!r}, expected a non-empty list of task names")
    names = list(getattr(model, "tasks", ()))
    unknown = [t for t in tasks if t not in names]
    if unknown:
        raise ValueError(f"argument 'tasks' has {unknown}, not tasks of this model; expected some "
                         f"of {names}")
    if isinstance(model, MultiTaskModel) and type(model).forward is MultiTaskModel.forward:
        def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
            features = model.backbone(x)
            return {t: model.heads[t](features) for t in tasks}
        return run
    forward_tasks = getattr(model, "forward_tasks", None)
    if not callable(forward_tasks):
        raise TypeError(f"argument 'tasks' needs a MultiTaskModel or a model with "
                        f"forward_tasks(x, tasks), got {type(model).__name__}")
    return lambda x: forward_tasks(x, list(tasks))
