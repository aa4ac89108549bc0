"""The course's figures. Each function returns its Figure; the notebook calls ``plt.show()``.

Titles in Chinese: call ``plots.use_cjk_fonts()`` once first (see ``course.fonts``); importing
this module changes no matplotlib setting.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.axes import Axes
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle
from torch import nn

from ..core.architectures import MTAN, Branched, CrossStitch, MMoE, stage
from ..core.models import MultiTaskModel
from .fonts import find_cjk_font as find_cjk_font  # re-exported: plots.find_cjk_font()
from .fonts import use_cjk_fonts as use_cjk_fonts  # re-exported: plots.use_cjk_fonts()

# Mask overlay colours: background transparent, left digit orange, right digit blue.
MASK_COLOURS = ((0.0, 0.0, 0.0, 0.0), (1.0, 0.55, 0.0, 0.6), (0.1, 0.45, 1.0, 0.6))
MASK_NAMES = ("background", "left", "right")


def _as_image(image: torch.Tensor) -> np.ndarray:
    """C x H x W tensor (float in [0, 1] or uint8) -> H x W x C array for imshow."""
    image = image.detach().cpu()
    if image.dtype == torch.uint8:
        image = image.float() / 255
    return image.clamp(0, 1).permute(1, 2, 0).numpy()


def show_samples(
    batch: Mapping[str, torch.Tensor],
    n: int = 8,
    title: str = "MultiDigits samples",
    predictions: Mapping[str, torch.Tensor] | None = None,
) -> Figure:
    """A grid of samples: the images with both labels above, and the masks overlaid below.

    Args:
        batch: ``image`` B x 3 x H x W, ``left``/``right`` B, optionally ``mask`` B x H x W.
        n: how many samples (columns) to show.
        title: the figure's title.
        predictions: optional ``left``/``right`` B predicted classes, shown after the labels
            (a wrong one is marked in red), and/or a predicted ``mask`` B x H x W, drawn in a
            row of its own under the true masks, so the two can be compared.
    """
    images = batch["image"]
    n = min(n, len(images))
    if n < 1:
        raise ValueError("argument 'batch' holds no samples to show")
    pred_mask = None if predictions is None else predictions.get("mask")
    has_masks = "mask" in batch or pred_mask is not None
    rows = 1 + ("mask" in batch) + (pred_mask is not None)
    fig, axes = plt.subplots(rows, n, figsize=(1.4 * n, 1.55 * rows + 0.5), squeeze=False)
    cmap = ListedColormap(MASK_COLOURS)
    for i in range(n):
        ax = axes[0, i]
        ax.imshow(_as_image(images[i]))
        label = f"L {int(batch['left'][i])} | R {int(batch['right'][i])}"
        colour = "black"
        if predictions is not None and "left" in predictions and "right" in predictions:
            pl, pr = int(predictions["left"][i]), int(predictions["right"][i])
            label += f"\npred {pl} | {pr}"
            if (pl, pr) != (int(batch["left"][i]), int(batch["right"][i])):
                colour = "red"
        ax.set_title(label, fontsize=9, color=colour)
        masks = [m for m in (batch.get("mask"), pred_mask) if m is not None]
        for row, mask in enumerate(masks, start=1):
            grey = _as_image(images[i]).max(axis=2)
            axes[row, i].imshow(grey, cmap="gray")
            axes[row, i].imshow(mask[i].cpu().numpy(), cmap=cmap, vmin=0, vmax=2,
                                interpolation="nearest")
    for ax in axes.flat:
        ax.axis("off")
    if pred_mask is not None:  # caption the rows, since truth and prediction look alike
        captions = ["image"] + (["true mask"] if "mask" in batch else []) + ["predicted mask"]
        for row, caption in enumerate(captions):
            axes[row, 0].text(-0.08, 0.5, caption, transform=axes[row, 0].transAxes,
                              rotation=90, ha="right", va="center", fontsize=9)
    if has_masks:
        handles = [Patch(color=MASK_COLOURS[k], label=MASK_NAMES[k]) for k in (1, 2)]
        fig.legend(handles=handles, loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.06 if has_masks else 0, 1, 1))
    return fig


def show_feature_maps(maps: torch.Tensor, n: int = 16, title: str = "Feature maps") -> Figure:
    """The first ``n`` channels of one sample's feature maps (C x H x W), one panel each."""
    if maps.ndim != 3:
        raise ValueError(f"argument 'maps' has shape {tuple(maps.shape)}, expected C x H x W")
    maps = maps.detach().cpu()
    n = min(n, maps.shape[0])
    cols = min(8, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.4 * rows + 0.4), squeeze=False)
    for k, ax in enumerate(axes.flat):
        ax.axis("off")
        if k < n:
            ax.imshow(maps[k].numpy(), cmap="viridis")
            ax.set_title(f"channel {k}", fontsize=8)
    fig.suptitle(f"{title} ({maps.shape[1]} x {maps.shape[2]} each)")
    fig.tight_layout()
    return fig


def plot_class_counts(
    counts: Mapping[str, torch.Tensor], title: str = "Class balance", xlabel: str = "digit class"
) -> Figure:
    """Side-by-side bars of per-class counts, one bar series per entry of ``counts``."""
    fig, ax = plt.subplots(figsize=(7, 3))
    k = len(counts)
    width = 0.8 / max(k, 1)
    for j, (name, c) in enumerate(counts.items()):
        c = torch.as_tensor(c).cpu().numpy()
        ax.bar(np.arange(len(c)) + (j - (k - 1) / 2) * width, c, width, label=name)
    ax.set_xticks(np.arange(len(c)))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("samples")
    ax.set_title(title)
    # Outside the axes, right: the bars fill the whole width, so no corner inside is free.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


def plot_bars(
    values: Sequence[float],
    labels: Sequence[str],
    title: str,
    ylabel: str,
    xlabel: str | None = None,
) -> Figure:
    """A simple labelled bar chart (parameter counts per layer, costs, ...)."""
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.bar(range(len(values)), values, color="tab:blue")
    ax.set_xticks(range(len(values)), labels, rotation=0)
    ax.set_ylabel(ylabel)
    if xlabel is not None:
        ax.set_xlabel(xlabel)
    ax.margins(y=0.12)  # room above the tallest bar for its value
    ax.set_title(title)
    for x, v in enumerate(values):
        ax.annotate(f"{v:,.0f}", (x, v), ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    return fig


EFFECT_COLOURS = {"keeps": "#d9f0d3", "moves": "#a6dba0", "mixes": "#c2a5cf", "breaks": "#f4a582",
                  "permutes": "#fddbc7", "transforms": "#92c5de"}


def plot_audit(audit: object, title: str = "Label-safety audit") -> Figure:
    """The audit's table as a figure: one row per transform, one column per task, each cell
    coloured by what the transform does to the task's labels, marked allowed or refused."""
    grid = audit.grid()  # type: ignore[attr-defined]
    tasks = list(audit.tasks)  # type: ignore[attr-defined]
    names = list(grid)
    fig, ax = plt.subplots(figsize=(1.9 * len(tasks) + 3.2, 0.55 * len(names) + 1.2))
    for r, name in enumerate(names):
        for c, task in enumerate(tasks):
            row = grid[name][task]
            ax.add_patch(plt.Rectangle((c, r), 1, 1, color=EFFECT_COLOURS[row.effect.value],
                                       ec="white", lw=2))
            label = row.effect.value + (" (mapped)" if row.label_map else "")
            mark = "ok" if row.allowed else "REFUSED"
            ax.text(c + 0.5, r + 0.5, f"{label}\n{mark}", ha="center", va="center", fontsize=8,
                    fontweight="normal" if row.allowed else "bold")
    ax.set_xlim(0, len(tasks))
    ax.set_ylim(len(names), 0)
    ax.set_xticks([c + 0.5 for c in range(len(tasks))], tasks)
    ax.set_yticks([r + 0.5 for r in range(len(names))], names, fontsize=8)
    ax.xaxis.tick_top()
    ax.set_xlabel("task")
    ax.set_ylabel("transform")
    ax.set_title(title, pad=22)
    for side in ax.spines.values():
        side.set_visible(False)
    fig.tight_layout()
    return fig


def plot_metric_spread(
    results: Mapping[str, Mapping[str, Sequence[float]]], title: str, ylabel: str = "test metric"
) -> Figure:
    """Grouped bars of the mean over seeds with min-max whiskers and each seed as a dot.

    ``results[setting][task]`` is the list of per-seed values.
    """
    settings = list(results)
    tasks = list(next(iter(results.values())))
    width = min(13.0, max(6.0, 0.9 * len(tasks) * len(settings) + 2))
    fig, ax = plt.subplots(figsize=(width, 3.4))
    width = 0.8 / len(settings)
    for j, setting in enumerate(settings):
        xs = np.arange(len(tasks)) + (j - (len(settings) - 1) / 2) * width
        values = [np.asarray(results[setting][t], dtype=float) for t in tasks]
        means = [v.mean() for v in values]
        low = [m - v.min() for m, v in zip(means, values, strict=True)]
        high = [v.max() - m for m, v in zip(means, values, strict=True)]
        ax.bar(xs, means, width, yerr=[low, high], capsize=4, label=setting, alpha=0.8)
        for x, v in zip(xs, values, strict=True):
            ax.plot([x] * len(v), v, "k.", markersize=4)
    ax.set_xticks(np.arange(len(tasks)), tasks)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    # Say what the whiskers and dots are in the legend itself (a reader sees no docstring).
    ax.errorbar([], [], yerr=[], fmt="none", ecolor="black", capsize=4,
                label="whiskers: min-max over seeds")
    ax.plot([], [], "k.", markersize=4, label="dots: one seed each")
    # Outside the axes, right: the bars fill the whole width, so no corner inside is free.
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    fig.tight_layout()
    return fig


# Scenes' semantic classes (floor, wall, sphere, box, cylinder) and, in grey, a pixel without a
# label (``IGNORE_INDEX``, which an augmentation brings in from outside the image).
SCENE_COLOURS = ((0.55, 0.35, 0.2), (0.75, 0.75, 0.7), (0.9, 0.2, 0.2), (0.2, 0.5, 0.9),
                 (0.95, 0.75, 0.1))
HOLE_COLOUR = (0.3, 0.3, 0.3)


def normals_to_rgb(normals: torch.Tensor) -> np.ndarray:
    """Unit normals 3 x H x W (camera frame) -> H x W x 3 colours: (n + 1) / 2 per component,
    so x to the right is red, y down is green and z towards the camera is dark blue; a hole,
    (0, 0, 0), is black."""
    n = normals.detach().cpu().float()
    hole = (n == 0).all(dim=0)
    rgb = ((n + 1) / 2).clamp(0, 1).masked_fill(hole, 0)
    return rgb.permute(1, 2, 0).numpy()


def show_scenes(
    batch: Mapping[str, torch.Tensor],
    n: int = 4,
    title: str = "Scenes: image and its three label maps",
    class_names: Sequence[str] = ("floor", "wall", "sphere", "box", "cylinder"),
) -> Figure:
    """One row per sample: the image, the semantic map, the depth and the normals.

    Args:
        batch: ``image`` B x 3 x H x W, ``semantic`` int B x H x W (-1: no label),
            ``depth`` B x H x W metres (0: hole), ``normals`` B x 3 x H x W.
        n: how many samples (rows).
        title: the figure's title.
        class_names: the semantic classes, for the legend.
    """
    n = min(n, len(batch["image"]))
    if n < 1:
        raise ValueError("argument 'batch' holds no samples to show")
    colours = ListedColormap([HOLE_COLOUR, *SCENE_COLOURS[:len(class_names)]])
    columns = ("image", "semantic", "depth (m)", "normals (x red, y green)")
    fig, axes = plt.subplots(n, 4, figsize=(8.4, 2.1 * n + 0.6), squeeze=False)
    for i in range(n):
        axes[i, 0].imshow(_as_image(batch["image"][i]))
        semantic = batch["semantic"][i].cpu().numpy() + 1  # -1 (no label) -> 0, grey
        axes[i, 1].imshow(semantic, cmap=colours, vmin=0, vmax=len(class_names),
                          interpolation="nearest")
        depth = batch["depth"][i].cpu().float().numpy()
        image = axes[i, 2].imshow(np.ma.masked_equal(depth, 0), cmap="viridis_r")
        fig.colorbar(image, ax=axes[i, 2], fraction=0.046, pad=0.02)
        axes[i, 3].imshow(normals_to_rgb(batch["normals"][i]))
    for j, name in enumerate(columns):
        axes[0, j].set_title(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    handles = [Patch(color=SCENE_COLOURS[k], label=name) for k, name in enumerate(class_names)]
    handles.append(Patch(color=HOLE_COLOUR, label="no label"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def plot_task_panels(
    results: Mapping[str, Mapping[str, Sequence[float]]],
    ylabels: Mapping[str, str],
    title: str,
) -> Figure:
    """One panel per task (tasks in different units get their own axis): for each setting the
    mean over seeds (a diamond), min-max whiskers, and each seed as a dot.

    Markers rather than bars, because each axis is zoomed onto the differences: a bar's length
    from a cut axis would exaggerate them. ``results[setting][task]`` is the list of per-seed
    values; ``ylabels[task]`` names the metric and says which way is better.
    """
    settings = list(results)
    tasks = list(ylabels)
    fig, axes = plt.subplots(1, len(tasks), figsize=(3.6 * len(tasks), 3.3), squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    xs = np.arange(len(settings))
    for ax, task in zip(axes[0], tasks, strict=True):
        for x, setting in zip(xs, settings, strict=True):
            v = np.asarray(results[setting][task], dtype=float)
            colour = colours[x % len(colours)]
            ax.errorbar([x], [v.mean()], yerr=[[v.mean() - v.min()], [v.max() - v.mean()]],
                        fmt="D", color=colour, capsize=5, markersize=7)
            ax.plot([x] * len(v), v, "k.", markersize=4)
        ax.set_xlim(-0.6, len(settings) - 0.4)
        ax.set_xticks(xs, settings, rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", alpha=0.3)
        ax.set_title(task)
        ax.set_ylabel(ylabels[task])
    fig.suptitle(f"{title}\n(diamonds: mean over seeds; whiskers: min-max; dots: one seed each)",
                 fontsize=10)
    fig.tight_layout()
    return fig


# Notebook 07: what each architecture shares, the cross-stitch units, the MTAN attention masks.

# One colour per task index (tab10 without its grey, which stands for "shared" here).
TASK_COLOURS = tuple(c for i, c in enumerate(plt.colormaps["tab10"].colors) if i != 7)
SHARED_COLOUR = (0.72, 0.72, 0.72)
SHARING_TYPES = (MultiTaskModel, Branched, CrossStitch, MTAN, MMoE)
_PAD_X, _PAD_Y = 0.08, 0.16  # the gap around a box in its cell (data units: 1 = a cell)


def task_colour(index: int) -> tuple[float, float, float]:
    """The colour of the task at ``index`` in a model's ``tasks`` (the same in every figure)."""
    return TASK_COLOURS[index % len(TASK_COLOURS)]


def _check_model(model: object, cls: type) -> None:
    if not isinstance(model, cls):
        raise TypeError(f"argument 'model' is a {type(model).__name__}, expected a {cls.__name__} "
                        f"(make_architecture({cls.name!r}, ...))")


def _block_names(entry: str, model: nn.Module) -> tuple[str, ...]:
    """The rows of ``model``'s panel, input first: its backbone's (or an expert's) blocks."""
    if isinstance(model, MultiTaskModel):
        backbone = model.backbone
    elif isinstance(model, MMoE):
        backbone = model.experts[0]
    else:
        return tuple(model.blocks)
    try:
        return stage(backbone).names
    except TypeError:
        if isinstance(model, MMoE):
            return ("expert",)  # an expert not cut into blocks: one box each
        raise TypeError(
            f"entry {entry!r} of argument 'models' has a {type(backbone).__name__} backbone, "
            "expected the article's FeatureExtractor or an EncoderDecoder (cut into blocks)"
        ) from None


def _box(ax: Axes, x: float, y: float, width: float, colour: object, gid: str,
         text: str | None = None) -> Rectangle:
    """A box in the cell [x, x + width] x [y, y + 1], inset by the gap; ``gid`` says what it
    stands for (``block:shared``, ``block:<task>``, ``head:<task>``, ``gate:<task>``,
    ``expert:<e>``, ``attention:<task>``), so that tests can count what is drawn."""
    patch = Rectangle((x + _PAD_X, y + _PAD_Y), width - 2 * _PAD_X, 1 - 2 * _PAD_Y,
                      facecolor=colour, edgecolor="0.3", linewidth=0.6, gid=gid)
    ax.add_patch(patch)
    if text is not None:
        ax.text(x + width / 2, y + 0.5, text, ha="center", va="center", fontsize=6.5)
    return patch


def _draw_sharing(ax: Axes, model: nn.Module, names: tuple[str, ...]) -> list[str]:
    """Draw ``model``'s panel; return its row labels, bottom (input) to top (heads)."""
    tasks = list(model.tasks)
    n_tasks = len(tasks)
    if isinstance(model, MMoE):
        experts = len(model.experts)
        width = n_tasks / experts
        for e in range(experts):
            for r in range(len(names)):
                _box(ax, e * width, r, width, SHARED_COLOUR, f"expert:{e + 1}")
        gate = len(names)
        for c, task in enumerate(tasks):
            _box(ax, c + 0.15, gate, 0.7, task_colour(c), f"gate:{task}", text="gate")
            for e in range(experts):  # every gate reads every expert
                ax.plot([(e + 0.5) * width, c + 0.5], [gate - _PAD_Y, gate + _PAD_Y],
                        color="0.45", linewidth=0.5, gid="mix")
        ax.set_xticks([(e + 0.5) * width for e in range(experts)],
                      [f"expert {e + 1}" for e in range(experts)], fontsize=6.5,
                      rotation=45 if experts > n_tasks else 0)
        rows = [*names, "gate"]
    else:
        if isinstance(model, Branched):
            shared = model.branch_point
        elif isinstance(model, CrossStitch):
            shared = 0
        else:  # hard sharing, MTAN
            shared = len(names)
        for r in range(len(names)):
            if r < shared:
                _box(ax, 0, r, n_tasks, SHARED_COLOUR, "block:shared")
            else:
                for c, task in enumerate(tasks):
                    _box(ax, c, r, 1, task_colour(c), f"block:{task}")
            if isinstance(model, MTAN):  # each task's attention module at this block
                for c, task in enumerate(tasks):
                    ax.add_patch(Rectangle((c + 0.33, r + 0.3), 0.34, 0.4, zorder=3,
                                           facecolor=task_colour(c), edgecolor="0.2",
                                           linewidth=0.5, gid=f"attention:{task}"))
            if isinstance(model, CrossStitch):  # the unit after this block mixes the columns
                ax.plot([c + 0.5 for c in range(n_tasks)], [r + 1] * n_tasks, "-o", zorder=4,
                        color="black", linewidth=1.2, markersize=3.5, gid="stitch")
        ax.set_xticks([])
        rows = list(names)
    for c, task in enumerate(tasks):
        _box(ax, c, len(rows), 1, task_colour(c), f"head:{task}", text=task)
    rows.append("head")
    ax.set_xlim(0, n_tasks)
    ax.set_ylim(0, len(rows))
    return rows


def plot_sharing(
    models: Mapping[str, nn.Module],
    title: str = "What each architecture shares (grey: shared by all tasks; colour: one task's)",
) -> Figure:
    """One panel per model, side by side, drawing what its tasks share.

    Rows are the backbone's blocks from the input (bottom) to the heads (top); columns are the
    model's tasks (``model.tasks`` order). A block shared by every task is one wide grey box,
    a block a task owns a box in its column, in its colour (``task_colour``). Hard sharing
    (``MultiTaskModel``): every block shared. ``Branched``: the blocks before ``branch_point``
    shared. ``CrossStitch``: every block per task, a black line with a dot per column after each
    block (the unit mixing the columns). ``MTAN``: every block shared, with a small square per
    task (its attention module at that block). ``MMoE``: E narrow grey stacks (the experts,
    each the expert's blocks), then a gate per task reading every expert, then the heads.

    Every box has a ``gid`` saying what it stands for (see ``_box``); the connectors are lines
    with ``gid`` ``"stitch"`` (cross-stitch units) and ``"mix"`` (expert to gate).

    Args:
        models: ``{panel title: model}``, each a ``MultiTaskModel``, ``Branched``,
            ``CrossStitch``, ``MTAN`` or ``MMoE`` (``make_architecture``'s).
        title: the figure's title.
    """
    if not isinstance(models, Mapping):
        raise TypeError(f"argument 'models' is a {type(models).__name__}, expected a mapping "
                        "{panel title: model}")
    if not models:
        raise ValueError("argument 'models' is empty, expected at least one {title: model}")
    names = {}
    for entry, model in models.items():
        if not isinstance(model, SHARING_TYPES):
            raise TypeError(
                f"entry {entry!r} of argument 'models' is a {type(model).__name__}, expected one "
                f"of {', '.join(t.__name__ for t in SHARING_TYPES)}")
        names[entry] = _block_names(entry, model)
    fig, axes = plt.subplots(1, len(models), figsize=(2.3 * len(models) + 0.4, 4.5),
                             squeeze=False)
    previous: list[str] | None = None
    task_names: dict[int, list[str]] = {}
    for ax, (entry, model) in zip(axes[0], models.items(), strict=True):
        rows = _draw_sharing(ax, model, names[entry])
        if rows != previous:  # the same rows as the panel on the left: not repeated
            ax.set_yticks([r + 0.5 for r in range(len(rows))], rows, fontsize=7)
        else:
            ax.set_yticks([])
        previous = rows
        ax.set_title(entry, fontsize=10)
        for side in ax.spines.values():
            side.set_visible(False)
        ax.tick_params(length=0)
        for c, task in enumerate(model.tasks):
            if task not in task_names.setdefault(c, []):
                task_names[c].append(task)
    axes[0, 0].set_ylabel("input  \u2192  heads", fontsize=8)
    handles: list[Patch | Line2D] = [Patch(facecolor=SHARED_COLOUR, edgecolor="0.3",
                                           label="shared")]
    handles += [Patch(facecolor=task_colour(c), edgecolor="0.3", label=" / ".join(task_names[c]))
                for c in sorted(task_names)]
    if any(isinstance(m, CrossStitch) for m in models.values()):
        handles.append(Line2D([], [], color="black", marker="o", markersize=3.5,
                              label="cross-stitch unit"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=8,
               frameon=False)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def cross_stitch_weights(model: CrossStitch) -> dict[str, torch.Tensor]:
    """The cross-stitch units' weights averaged over channels: ``{block: T x T}``, where
    ``[t, s]`` is the mean over channels of ``model.stitches[b].alpha[t][s]`` (how much task
    t's map after that block takes from column s). Detached, on the CPU."""
    _check_model(model, CrossStitch)
    return {name: torch.stack([a.detach().mean(dim=1) for a in unit.alpha]).cpu()
            for name, unit in zip(model.blocks, model.stitches, strict=True)}


def plot_cross_stitch(
    model: CrossStitch,
    title: str = "Cross-stitch units: how much each task's map takes from each column",
) -> Figure:
    """One heatmap per cross-stitch unit (one per block, titled with the block's name): the
    T x T weights of ``cross_stitch_weights`` (rows: the task that receives, "to"; columns: the
    column it takes from, "from"), each cell annotated, one colour scale (covering [0, 1] and
    every value) with one colourbar."""
    weights = cross_stitch_weights(model)
    tasks = list(model.tasks)
    n_tasks, n = len(tasks), len(weights)
    values = torch.stack(list(weights.values()))
    low, high = min(0.0, float(values.min())), max(1.0, float(values.max()))
    cols = min(4, n)
    rows = -(-n // cols)
    side = 0.5 * n_tasks + 1.3
    fig, axes = plt.subplots(rows, cols, figsize=(side * cols + 1.2, side * rows + 0.6),
                             squeeze=False, layout="constrained")
    for ax in axes.flat[n:]:
        fig.delaxes(ax)
    used = list(axes.flat[:n])
    for ax, (name, w) in zip(used, weights.items(), strict=True):
        image = ax.imshow(w.numpy(), cmap="Blues", vmin=low, vmax=high)
        for t in range(n_tasks):
            for s in range(n_tasks):
                v = float(w[t, s])
                dark = (v - low) / (high - low) > 0.6
                ax.text(s, t, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
        ax.set_title(name, fontsize=9)
        ax.set_xticks(range(n_tasks), tasks, fontsize=7, rotation=30, ha="right")
        ax.set_yticks(range(n_tasks), tasks, fontsize=7)
        ax.set_xlabel("from", fontsize=7)
        ax.set_ylabel("to", fontsize=7)
    fig.colorbar(image, ax=used, shrink=0.8, label="weight (mean over channels)")
    fig.suptitle(title, fontsize=11)
    return fig


def _chosen_blocks(names: Sequence[str], blocks: Sequence[str] | None) -> list[str]:
    """``blocks`` checked against ``names``, or the first, a middle and the last block."""
    if blocks is None:
        return [names[i] for i in sorted({0, len(names) // 2, len(names) - 1})]
    if isinstance(blocks, str):
        raise TypeError(f"argument 'blocks' is the string {blocks!r}, expected a sequence of "
                        f"block names, e.g. [{blocks!r}]")
    blocks = list(blocks)
    if not blocks:
        raise ValueError(f"argument 'blocks' is empty, expected some of {list(names)}")
    unknown = [b for b in blocks if b not in names]
    if unknown:
        raise ValueError(f"argument 'blocks' names {unknown}, which are not blocks of the model; "
                         f"expected some of {list(names)}")
    return blocks


def plot_attention(
    model: MTAN,
    image: torch.Tensor,
    blocks: Sequence[str] | None = None,
    title: str = "MTAN attention: each task's mask at a block, mean over channels",
) -> Figure:
    """The attention masks an MTAN gives one image: one row per task, the image first, then
    one column per block with the task's mask there (``model.last_attention``, 1 x C x h x w,
    averaged over channels and upsampled, nearest, to H x W), on one colour scale [0, 1].

    The model runs in eval mode without gradients; each module's previous train/eval mode is
    restored afterwards. ``model.last_attention`` then holds this image's masks.

    Args:
        model: an ``MTAN`` (``make_architecture("mtan", ...)``), on any device.
        image: 3 x H x W, float in [0, 1] or uint8, on any device (moved to the model's).
        blocks: the block names to show (``model.blocks``); default: the first, a middle one
            and the last.
        title: the figure's title.
    """
    _check_model(model, MTAN)
    if not isinstance(image, torch.Tensor):
        raise TypeError(f"argument 'image' is a {type(image).__name__}, expected a tensor "
                        "3 x H x W")
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"argument 'image' has shape {tuple(image.shape)}, expected 3 x H x W "
                         "(one RGB image: take batch['image'][i] from a batch)")
    chosen = _chosen_blocks(model.blocks, blocks)
    reference = next(model.parameters())
    x = image.detach()
    x = x.float() / 255 if x.dtype == torch.uint8 else x
    x = x.to(device=reference.device, dtype=reference.dtype)[None]
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            model(x)
    finally:
        for m, mode in modes:
            m.training = mode
    size = tuple(image.shape[1:])
    tasks = list(model.tasks)
    fig, axes = plt.subplots(len(tasks), 1 + len(chosen), squeeze=False, layout="constrained",
                             figsize=(1.9 * (1 + len(chosen)) + 1.0, 1.8 * len(tasks) + 0.6))
    picture = _as_image(image)
    for i, task in enumerate(tasks):
        axes[i, 0].imshow(picture)
        axes[i, 0].set_ylabel(task, fontsize=10)
        for j, block in enumerate(chosen, start=1):
            mask = model.last_attention[task][block].float().mean(dim=1, keepdim=True)
            mask = F.interpolate(mask, size=size, mode="nearest")[0, 0].cpu().numpy()
            shown = axes[i, j].imshow(mask, cmap="viridis", vmin=0, vmax=1,
                                      interpolation="nearest")
    axes[0, 0].set_title("image", fontsize=9)
    for j, block in enumerate(chosen, start=1):
        axes[0, j].set_title(block, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.colorbar(shown, ax=list(axes[:, 1:].flat), shrink=0.8,
                 label="attention (mean over channels)")
    fig.suptitle(title, fontsize=11)
    return fig
