"""The course's figures. Each function returns its Figure; the notebook calls ``plt.show()``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

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
