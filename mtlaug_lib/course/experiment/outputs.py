"""What a run leaves in its output folder, each file written atomically.

- ``config.json``: the resolved config (every default filled in; runs again as is);
- ``history.json``: ``History.to_dict()``, rewritten after every epoch;
- ``metrics.json``: the final test metrics, ``{task: {metric: value}}``;
- ``loss_curves.png``, ``test_metrics.png`` (and ``task_weights.png`` for a weighting method
  that sets weights): the figures a notebook would show, drawn on matplotlib's Agg canvas
  (no pyplot, so no backend is chosen for the caller);
- ``checkpoint.pt``: written by ``train`` after every epoch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...core.files import atomic_write
from ...core.tasks import Task
from ...training.loop import History

CONFIG, HISTORY, METRICS, CHECKPOINT = ("config.json", "history.json", "metrics.json",
                                        "checkpoint.pt")
FIGURES = ("loss_curves.png", "test_metrics.png", "task_weights.png")


def write_json(path: Path, value: Any) -> Path:
    return atomic_write(path, lambda f: f.write(json.dumps(value, indent=2) + "\n"), text=True)


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def _smooth(values: list[float], window: int) -> list[float]:
    """A running mean over ``window`` values (the noisy per-step losses, as notebooks do)."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _panels(n: int, title: str) -> tuple[Any, list[Any]]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.6 * n, 3.2))
    axes = [fig.add_subplot(1, n, i + 1) for i in range(n)]
    fig.suptitle(title, fontsize=10)
    return fig, axes


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    return atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=100))


def write_figures(folder: Path, history: History, tasks: Mapping[str, Task]) -> list[Path]:
    """Loss curves per task, the primary test metric per task over training, and the task
    weights (when the strategy set them). One panel per task: tasks differ in units."""
    written = []
    window = max(1, min(20, history.steps // 20))
    fig, axes = _panels(len(tasks), f"Training loss per task (running mean of {window} steps)")
    for ax, t in zip(axes, tasks, strict=True):
        steps, losses = history.loss_curve(t)
        ax.plot(steps, _smooth(losses, window))
        ax.set(title=t, xlabel="training step", ylabel=f"{t} loss")
        if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
            ax.set_yscale("log")
    written.append(_save(fig, folder / FIGURES[0]))
    if history.evals:
        fig, axes = _panels(len(tasks), "Test metric per evaluation")
        for ax, (t, task) in zip(axes, tasks.items(), strict=True):
            metric = task.primary_metric
            x, y = history.curve(t, metric, x="steps")
            better = "higher" if task.higher_is_better(metric) else "lower"
            ax.plot(x, y, "o-")
            ax.set(title=t, xlabel="training step", ylabel=f"{metric} ({better} is better)")
        written.append(_save(fig, folder / FIGURES[1]))
    if history.weights:
        fig, axes = _panels(1, "Task weights during training")
        for t in tasks:
            axes[0].plot(*history.weight_curve(t), label=t)
        axes[0].set(xlabel="training step", ylabel="task weight")
        axes[0].legend()
        written.append(_save(fig, folder / FIGURES[2]))
    return written

