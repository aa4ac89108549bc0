"""One experiment from a config: read it, check and build everything, train, write the results.

``prepare`` does every check and builds every object before anything trains (``ConfigError``
otherwise); ``run`` trains and writes the output folder (``outputs``). Under ``torchrun``
(``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` set) ``run`` initialises the process group (gloo on
the CPU; nccl on CUDA, each process on ``cuda:LOCAL_RANK``), passes the same options to
``train`` on every process (``train`` shards the global batches itself), lets rank 0 alone
write files, and destroys the group at the end.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

from ...augment.batch import BatchAugment
from ...core.tasks import Task
from ...core.utils import seed_everything
from ...training.loop import History, train
from ...training.strategy import Strategy
from . import build
from .outputs import (
    CHECKPOINT,
    CONFIG,
    FIGURES,
    HISTORY,
    METRICS,
    read_json,
    write_figures,
    write_json,
)
from .schema import ConfigError, resolve

# Keys that may differ between a run and its resumption (they change no number).
RESUMABLE_CHANGES = ("progress", "device")


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A config file as a dict: TOML, or JSON (a run's own ``config.json``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r} could not be read ({err.strerror})") \
            from err
    try:
        value = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"config file {str(path)!r} is not valid "
                          f"{'JSON' if path.suffix == '.json' else 'TOML'}: {err}") from err
    if not isinstance(value, dict):
        raise ConfigError(f"config file {str(path)!r} holds a {type(value).__name__}, "
                          "expected a table of keys")
    return value


def _literal(text: str) -> Any:
    """A ``--set`` value: a TOML literal (``3``, ``1e-3``, ``true``, ``[1, 2]``, ``"x"``), else
    the text itself as a string (``--set data.dataset=scenes``)."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_set(raw: dict[str, Any], assignment: str) -> dict[str, Any]:
    """``raw`` with ``table.key=value`` (or ``key=value`` at the top level) set in place."""
    key, sep, text = assignment.partition("=")
    parts = key.strip().split(".")
    if not sep or not all(parts):
        raise ConfigError(f"--set {assignment!r} is not of the form key=value or "
                          "table.key=value")
    target = raw
    for part in parts[:-1]:
        target = target.setdefault(part, {})
        if not isinstance(target, dict):
            raise ConfigError(f"--set {assignment!r}: {part!r} is not a table")
    target[parts[-1]] = _literal(text.strip())
    return raw


@dataclass
class Distributed:
    """The torchrun environment: this process's rank, the world size, its local rank."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Distributed | None:
        env = os.environ if env is None else env
        if "RANK" not in env or "WORLD_SIZE" not in env:
            return None
        try:
            return cls(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0)))
        except ValueError as err:
            raise ConfigError(f"the torchrun variables RANK, WORLD_SIZE, LOCAL_RANK are not "
                              f"integers ({err})") from err


@dataclass
class Experiment:
    """Everything a run needs, built and checked (see ``prepare``)."""

    config: dict[str, Any]
    tasks: dict[str, Task]
    model: nn.Module
    strategy: Strategy
    augment: BatchAugment | None
    options: dict[str, Any]
    device: torch.device
    precision: str
    distributed: Distributed | None = None
    loaders: tuple[Any, Any] | None = field(default=None, repr=False)

    @property
    def output(self) -> Path:
        return Path(self.config["output"]).expanduser()

    @property
    def writes(self) -> bool:
        """Whether this process writes files (rank 0, or the only process)."""
        return self.distributed is None or self.distributed.rank == 0


def prepare(raw: Mapping[str, Any], name: str = "experiment", *, load_data: bool = True,
            env: Mapping[str, str] | None = None) -> Experiment:
    """Check ``raw`` and build the run's objects; nothing trains and nothing is written.

    Raises ``ConfigError`` for every mistake a config can hold: unknown keys, wrong types,
    values outside their choices, tasks the data set lacks, options the architecture, strategy
    or augmenter refuses (the label-safety audit included), a device this machine lacks, a
    precision this machine or ``train`` cannot run, and data files that are not there (with
    ``load_data``, which builds the data sets: the slow part).
    """
    config = resolve(raw, name, build.library_choices())
    dist = Distributed.from_env(env)
    device = build.resolve_device(config, None if dist is None else dist.local_rank)
    precision = build.check_precision(config, device)
    tasks = build.tasks_of(config)
    model = build.make_model(config, tasks)
    strategy = build.make_strategy_from(config)
    augment = build.make_augment(config, tasks)
    options = build.run_options(config, tasks)
    experiment = Experiment(config, tasks, model, strategy, augment, options, device, precision,
                            dist)
    if load_data:
        experiment.loaders = build.loaders(config, device)
    return experiment


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in RESUMABLE_CHANGES}


def _flatten(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in config.items():
        if isinstance(v, Mapping) and not prefix:  # the tables; their values stay whole
            out.update(_flatten(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


def check_output(experiment: Experiment, resume: bool, overwrite: bool) -> None:
    """Refuse to mix a new run with an old one's files; check a resumption's config."""
    folder = experiment.output
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"key 'output' is {str(folder)!r}, which is a file, expected a folder")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    if resume and not experiment.config["training"]["checkpoint"]:
        raise ConfigError("--resume needs key 'training.checkpoint' = true")
    previous = [n for n in (CHECKPOINT, METRICS) if (folder / n).exists()]
    if previous and not (resume or overwrite):
        raise ConfigError(f"the output folder {str(folder)!r} already holds a run "
                          f"({', '.join(previous)}): pass --resume to continue it, --overwrite "
                          "to start again there, or choose another output folder")
    if resume and (folder / CONFIG).is_file():
        saved = _comparable(read_json(folder / CONFIG))
        current = json.loads(json.dumps(_comparable(experiment.config)))
        if saved != current:
            flat_saved, flat_current = _flatten(saved), _flatten(current)
            keys = sorted(k for k in set(flat_saved) | set(flat_current)
                          if flat_saved.get(k) != flat_current.get(k))
            raise ConfigError(f"--resume: the config differs from the run's saved "
                              f"{CONFIG} in {', '.join(keys)}; resume with the same config")


def _resumed_step(path: Path) -> int:
    """The step a checkpoint stopped at (0 if there is none; ``train`` reports a bad one)."""
    if not path.is_file():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        return int(state["history"]["steps"])
    except Exception:  # noqa: BLE001 (train's load_checkpoint gives the clear error)
        return 0


def _init_process_group(experiment: Experiment) -> bool:
    """Initialise torch.distributed under torchrun; True if this call did it."""
    dist = experiment.distributed
    if dist is None:
        return False
    import torch.distributed as td

    if not td.is_available():
        raise ConfigError("torchrun set RANK and WORLD_SIZE, but this PyTorch build has no "
                          "torch.distributed")
    if td.is_initialized():
        return False
    if experiment.device.type == "cuda":
        torch.cuda.set_device(experiment.device)
        td.init_process_group("nccl")
    else:
        td.init_process_group("gloo")
    return True


def run(experiment: Experiment, *, resume: bool = False, overwrite: bool = False) -> History:
    """Train ``experiment`` and write its output folder (rank 0 only); return the history.

    Checks the output folder first (``check_output``). With ``resume``, a run whose checkpoint
    is there continues from it to the result the uninterrupted run gives.
    """
    check_output(experiment, resume, overwrite)
    config, folder = experiment.config, experiment.output
    if experiment.loaders is None:
        experiment.loaders = build.loaders(config, experiment.device)
    checkpoint = folder / CHECKPOINT if config["training"]["checkpoint"] else None
    if experiment.writes:
        folder.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for n in (CHECKPOINT, HISTORY, METRICS, *FIGURES):
                (folder / n).unlink(missing_ok=True)
        write_json(folder / CONFIG, config)
    augment = None
    if experiment.augment is not None:
        start = _resumed_step(checkpoint) if resume and checkpoint is not None else 0
        augment = build.SeededAugment(experiment.augment, config["seed"], start)
    extra = {"precision": experiment.precision}

    def on_epoch_end(history: History) -> None:
        if experiment.writes:
            write_json(folder / HISTORY, history.to_dict())

    initialised = _init_process_group(experiment)
    try:
        seed_everything(config["seed"])
        model = experiment.model.to(experiment.device)
        train_iter, test_iter = experiment.loaders
        history = train(model, experiment.tasks, train_iter, test_iter,
                        strategy=experiment.strategy, augment=augment, checkpoint=checkpoint,
                        resume=resume, on_epoch_end=on_epoch_end,
                        progress=config["progress"] and experiment.writes, desc="mtlaug-train",
                        **experiment.options, **extra)
        if experiment.writes:
            write_json(folder / HISTORY, history.to_dict())
            write_json(folder / METRICS, history.final())
            write_figures(folder, history, experiment.tasks)
    finally:
        if initialised:
            import torch.distributed as td

            td.destroy_process_group()
    return history


def summary(experiment: Experiment) -> str:
    """One line saying what will run."""
    c = experiment.config
    world = "" if experiment.distributed is None else (
        f" x {experiment.distributed.world_size} processes")
    return (f"{c['data']['dataset']} ({', '.join(experiment.tasks)}), "
            f"{c['model']['architecture']}/{c['model']['backbone']}, "
            f"{c['strategy']['name']}, {c['training']['epochs']} epoch(s) on "
            f"{experiment.device}{world} -> {c['output']}")


def report(history: History, tasks: Mapping[str, Task]) -> str:
    """The final test metrics, one line: each task's primary metric."""
    final = history.final()
    return ", ".join(f"{t} {task.primary_metric} {final[t][task.primary_metric]:.4g}"
                     for t, task in tasks.items())


def parse_sets(raw: dict[str, Any], assignments: Sequence[str]) -> dict[str, Any]:
    for a in assignments:
        apply_set(raw, a)
    return raw
