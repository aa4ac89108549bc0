"""From a resolved config to the objects ``train`` takes: tasks, model, strategy, augmenter,
optimizer factory, device, precision and data loaders.

Every check here runs before any training, and every mistake becomes a ``ConfigError`` that
names the key: the library's own message (which names its argument) prefixed by the key's
table. Data come last (``loaders``), since building them is the slow part.
"""

from __future__ import annotations

import inspect
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch
from torch import nn

from ...augment.audit import LabelSafetyError
from ...augment.batch import BatchAugment
from ...core.architectures import ARCHITECTURES, make_architecture
from ...core.architectures.registry import BACKBONE_OPTIONS
from ...core.tasks import Task
from ...core.utils import get_device
from ...data import (
    MultiDigits,
    MultiMNIST,
    NYUv2,
    Scenes,
    TensorLoader,
    multidigits_tasks,
    nyuv2_tasks,
    scenes_tasks,
)
from ...training.registry import make_strategy
from ...training.strategies import STRATEGIES, Alternating
from ...training.strategy import Strategy
from ...training.weighting import WEIGHTING_METHODS
from .schema import ConfigError, unknown_key

TASKS: dict[str, Callable[[], dict[str, Task]]] = {
    "multidigits": multidigits_tasks, "multimnist": multidigits_tasks,
    "scenes": scenes_tasks, "nyuv2": nyuv2_tasks,
}
AUGMENT_OPTIONS = ("degrees", "translate", "scale", "shear", "brightness", "contrast",
                   "saturation", "channel_shuffle", "hflip", "label_maps")


def library_choices() -> dict[str, tuple[str, ...]]:
    """The allowed values that the library's registries decide."""
    names = tuple(dict.fromkeys([*STRATEGIES, *WEIGHTING_METHODS]))
    return {"model.architecture": tuple(ARCHITECTURES), "strategy.name": names}


def _message(err: BaseException) -> str:
    return " ".join(str(err).split())  # one line


def _library(table: str, err: BaseException, keys: Iterable[str] = ()) -> ConfigError:
    """The library's message, its "argument 'x'" named as the config key ``table.x``."""
    keys = set(keys)

    def name(match: re.Match) -> str:
        arg = match.group(1)
        return f"key '{table}.{arg}'" if arg in keys else match.group(0)

    return ConfigError(f"[{table}] " + re.sub(r"argument '(\w+)'", name, _message(err)))


# ------------------------------------------------------------------------------ tasks, model

def tasks_of(config: Mapping[str, Any]) -> dict[str, Task]:
    """The config's tasks (``data.tasks``, default all of the data set's), in the data set's
    order; an unknown or repeated task is a ``ConfigError``."""
    dataset = config["data"]["dataset"]
    every = TASKS[dataset]()
    wanted = config["data"].get("tasks")
    if wanted is None:
        return every
    if not wanted:
        raise ConfigError(f"key 'data.tasks' is empty, expected some of {', '.join(every)}")
    for t in wanted:
        if t not in every:
            raise ConfigError(f"key 'data.tasks' names {t!r}, which is not a task of dataset "
                              f"{dataset!r}; its tasks are {', '.join(every)}")
    if len(set(wanted)) != len(wanted):
        raise ConfigError(f"key 'data.tasks' is {wanted}, expected each task at most once")
    return {t: task for t, task in every.items() if t in wanted}


def model_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """``[model]``'s options beyond architecture and backbone, checked by name."""
    model = config["model"]
    options = {k: v for k, v in model.items() if k not in ("architecture", "backbone")}
    backbone = model["backbone"]
    if backbone not in BACKBONE_OPTIONS:
        raise ConfigError(f"key 'model.backbone' is {backbone!r}, expected one of "
                          f"{', '.join(map(repr, BACKBONE_OPTIONS))}")
    known = [*BACKBONE_OPTIONS[backbone], *ARCHITECTURES[model["architecture"]].options]
    for key in options:
        if key not in known:
            raise unknown_key("model", key, ["architecture", "backbone", *known],
                              f"architecture {model['architecture']!r} with backbone "
                              f"{backbone!r}")
    return options


def make_model(config: Mapping[str, Any], tasks: Mapping[str, Task]) -> nn.Module:
    """The model, on the CPU, its weights drawn from the run's seed."""
    model = config["model"]
    options = model_options(config)
    try:
        return make_architecture(model["architecture"], tasks, model["backbone"],
                                 seed=config["seed"], **options)
    except (ValueError, TypeError) as err:
        raise _library("model", err, options) from err


# ------------------------------------------------------------------------------ strategy

def _parameters(fn: Callable[..., Any]) -> list[str]:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def strategy_keys(name: str) -> list[str]:
    """The option names strategy ``name`` takes."""
    if name in STRATEGIES:
        if name.startswith("alternating"):
            return [k for k in _parameters(Alternating) if k != "random"]
        factory = STRATEGIES[name]
        return _parameters(factory) if inspect.isclass(factory) else []
    return ["source", *_parameters(WEIGHTING_METHODS[name])]


def make_strategy_from(config: Mapping[str, Any]) -> Strategy:
    options = {k: v for k, v in config["strategy"].items() if k != "name"}
    name = config["strategy"]["name"]
    allowed = strategy_keys(name)
    for key in options:
        if key not in allowed:
            what = f"options of strategy {name!r}" + ("" if allowed else ": none")
            raise unknown_key("strategy", key, ["name", *allowed], what)
    try:
        return make_strategy(name, **options)
    except (ValueError, TypeError) as err:
        raise _library("strategy", err, options) from err


# ------------------------------------------------------------------------------ augmentation

class SeededAugment:
    """A ``BatchAugment`` whose draws at training step s depend on (seed, s) only.

    ``train`` calls the augmenter once per step, so a run resumed at step s (``start``) draws
    what the uninterrupted run drew there: its augmentation, like its batch order, does not
    depend on where it was interrupted. ``BatchAugment``'s own generator would restart.
    """

    def __init__(self, augment: BatchAugment, seed: int, start: int = 0) -> None:
        self.augment = augment
        self.seed = seed
        self.step = start

    def __call__(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        image = batch["image"]
        b, c, h, w = image.shape
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.step)
        self.step += 1
        return self.augment(batch, self.augment.sample_params(b, h, w, c, generator=g))

    def __repr__(self) -> str:
        return f"SeededAugment({self.augment!r}, seed={self.seed})"


def make_augment(config: Mapping[str, Any], tasks: Mapping[str, Task]) -> BatchAugment | None:
    """``BatchAugment(tasks, **[augment])``, audited against the tasks; None without options
    or with ``enabled = false``."""
    options = {k: v for k, v in config["augment"].items() if k != "enabled"}
    for key in options:
        if key not in AUGMENT_OPTIONS:
            raise unknown_key("augment", key, ["enabled", *AUGMENT_OPTIONS])
    if not options or not config["augment"]["enabled"]:
        return None
    if "label_maps" in options:  # TOML keys are strings: {task: {"1": 2}} -> {task: {1: 2}}
        maps = options["label_maps"]
        try:
            options["label_maps"] = {t: {int(k): int(v) for k, v in m.items()}
                                     for t, m in maps.items()}
        except (AttributeError, TypeError, ValueError) as err:
            raise ConfigError(f"key 'augment.label_maps' is {maps!r}, expected a table "
                              "{task = {old = new, ...}} of class indices") from err
    for key in ("degrees", "shear", "translate", "scale"):  # TOML arrays -> pairs
        if isinstance(options.get(key), list):
            options[key] = tuple(options[key])
    try:
        return BatchAugment(tasks, generator=config["seed"], **options)
    except LabelSafetyError as err:
        raise ConfigError(f"[augment] the label-safety audit refuses it: "
                          f"{_message(err)}") from err
    except (ValueError, TypeError) as err:
        raise _library("augment", err, options) from err


# ------------------------------------------------------------------------------ run options

def optimizer_factory(config: Mapping[str, Any]) -> Callable[[list[nn.Parameter]], Any]:
    """``params -> optimizer`` as ``train`` takes it (lr set by ``train``'s schedule)."""
    t = config["training"]
    name, lr, decay = t["optimizer"], t["lr"], t["weight_decay"]
    if name == "sgd":
        momentum = t["momentum"]
        return lambda params: torch.optim.SGD(params, lr=lr, momentum=momentum,
                                              weight_decay=decay)
    cls = torch.optim.AdamW if name == "adamw" else torch.optim.Adam
    return lambda params: cls(params, lr=lr, weight_decay=decay)


def resolve_device(config: Mapping[str, Any], local_rank: int | None = None) -> torch.device:
    """The device; under torchrun on CUDA, ``cuda:LOCAL_RANK``. A missing device is an error."""
    name = config["device"]
    kind = name.split(":")[0]
    count = {"cuda": torch.cuda.device_count() if torch.cuda.is_available() else 0,
             "mps": int(bool(getattr(torch.backends, "mps", None)
                             and torch.backends.mps.is_available()))}
    index = int(name.split(":")[1]) if ":" in name else 0
    if kind in count and index >= count[kind]:
        has = f"{count[kind]} {kind.upper()} device(s)" if count[kind] else f"no {kind.upper()}"
        raise ConfigError(f"key 'device' is {name!r}, but this machine has {has} that PyTorch "
                          f"{torch.__version__} can use; expected 'auto', 'cpu' or a device it "
                          "has")
    try:
        device = get_device(None if name == "auto" else name)
    except (ValueError, RuntimeError) as err:  # 'auto' with a bad MTLAUG_DEVICE
        raise ConfigError(f"key 'device' is {name!r}: {_message(err)}") from err
    if local_rank is not None and device.type == "cuda":
        device = torch.device("cuda", local_rank)
    return device


def check_precision(config: Mapping[str, Any], device: torch.device) -> str:
    """The precision to pass to ``train``, checked against the device before training."""
    precision = config["precision"]
    if precision == "fp16" and device.type == "cpu":
        raise ConfigError("key 'precision' is 'fp16', but the device is the CPU: fp16 needs a "
                          "GPU (its gradient scaler is CUDA's); use 'bf16' or 'fp32' on a CPU")
    return precision


def run_options(config: Mapping[str, Any], tasks: Mapping[str, Task]) -> dict[str, Any]:
    """``train``'s keyword options from ``[training]`` (not the data, model or strategy)."""
    t = config["training"]
    weights = dict(t["weights"])
    for task, w in weights.items():
        if task not in tasks:
            raise ConfigError(f"key 'training.weights' names {task!r}, which is not one of "
                              f"this run's tasks {', '.join(tasks)}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0:
            raise ConfigError(f"key 'training.weights.{task}' is {w!r}, expected a number >= 0")
    name = config["strategy"]["name"]
    if weights and name not in STRATEGIES:
        raise ConfigError(f"key 'training.weights' applies to the strategies "
                          f"{', '.join(STRATEGIES)}; weighting method {name!r} sets the task "
                          "weights itself (for fixed weights: strategy 'fixed' with its "
                          "'weights' option)")
    if t["conflict_every"] and len(tasks) < 2:
        raise ConfigError("key 'training.conflict_every' needs two tasks or more")
    return {
        "epochs": t["epochs"],
        "lr": t["lr"],
        "optimizer": optimizer_factory(config),
        "schedule": None if t["schedule"] == "none" else t["schedule"],
        "weights": {k: float(v) for k, v in weights.items()} or None,
        "eval_every": t["eval_every"] or None,
        "conflict_every": t["conflict_every"] or None,
    }


# ------------------------------------------------------------------------------ data

def loaders(config: Mapping[str, Any], device: torch.device) -> tuple[TensorLoader,
                                                                      TensorLoader]:
    """Train and test loaders (the train loader reshuffles each epoch from the run's seed).

    MultiMNIST and NYUv2 read files the user has; a missing file is a ``ConfigError`` saying
    how to get them. Nothing downloads unless ``data.download = true`` (MultiMNIST).
    """
    data, seed = config["data"], config["seed"]
    name = data["dataset"]
    try:
        if name == "multidigits":
            train_set = MultiDigits("train", data.get("train_size"), seed=data["seed"])
            test_set = MultiDigits("test", data.get("test_size"), seed=data["seed"])
        elif name == "scenes":
            size = {"image_size": data["image_size"]} if "image_size" in data else {}
            train_set = Scenes("train", data.get("train_size"), seed=data["seed"], **size)
            test_set = Scenes("test", data.get("test_size"), seed=data["seed"], **size)
        elif name == "multimnist":
            root = os.path.expanduser(data["root"])
            train_set = MultiMNIST(root, "train", data.get("train_size"), seed=data["seed"],
                                   download=data["download"])
            test_set = MultiMNIST(root, "test", data.get("test_size"), seed=data["seed"],
                                  download=data["download"])
        else:
            size = data.get("image_size")
            train_set = NYUv2(data["root"], "train", image_size=size)
            test_set = NYUv2(data["root"], "test", image_size=size)
    except (OSError, RuntimeError) as err:
        hint = (" (in the config: data.download = true)"
                if name == "multimnist" and not data["download"] else "")
        raise ConfigError(f"[data] {_message(err)}{hint}") from err
    except (ValueError, TypeError) as err:
        raise _library("data", err) from err
    t = config["training"]
    return (TensorLoader(train_set, t["batch_size"], shuffle=True, seed=seed, device=device),
            TensorLoader(test_set, t["test_batch_size"], shuffle=False, device=device))
