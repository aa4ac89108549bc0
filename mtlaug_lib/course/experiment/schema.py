"""The config schema of ``mtlaug-train``: every key, its type, default and allowed values.

A config is a TOML (or JSON) document of five tables and a few top-level keys (``describe()``
prints them all). ``resolve`` checks a raw config against the schema (unknown keys, types,
choices) and fills in every default, some of which depend on the data set; it needs no torch
work and changes nothing, so every mistake it finds is reported before anything runs. The
options of an architecture, a strategy and the augmenter pass through to the library, which
checks them when ``build`` builds those objects (still before any training).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# The data sets the command knows: their tasks and the data keys that apply to each.
DATASETS = ("multidigits", "scenes", "multimnist", "nyuv2")
DATASET_KEYS = {  # data keys beyond 'dataset' and 'tasks'
    "multidigits": ("train_size", "test_size", "seed"),
    "scenes": ("train_size", "test_size", "seed", "image_size"),
    "multimnist": ("train_size", "test_size", "seed", "root", "download"),
    "nyuv2": ("root", "image_size"),
}
DEFAULT_BACKBONE = {"multidigits": "article", "multimnist": "article",
                    "scenes": "encoder_decoder", "nyuv2": "encoder_decoder"}
PRECISIONS = ("fp32", "bf16", "fp16")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("onecycle", "none")
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
# Tables whose other keys are options passed through to the library (checked when built).
PASS_THROUGH = {"model": "the architecture's and the backbone's options",
                "strategy": "the strategy's or weighting method's options",
                "augment": "BatchAugment's options"}


class ConfigError(ValueError):
    """A config the command cannot run: one sentence naming the key and what it takes."""


@dataclass(frozen=True)
class Key:
    """One key of the schema.

    ``kind``: ``"int"``, ``"float"`` (an int is accepted), ``"str"``, ``"bool"``, ``"strs"``
    (a list of strings), ``"table"`` or ``"any"`` (checked later by the library). ``default``:
    the value when the key is absent (None: absent, or decided from the data set).
    """

    kind: str
    default: Any = None
    doc: str = ""
    choices: Sequence[str] | None = None
    minimum: float | None = None
    check: Callable[[Any], bool] | None = None
    expected: str = ""


SCHEMA: dict[str, dict[str, Key]] = {
    "": {
        "seed": Key("int", 0, "the run's seed: model weights, batch order, augmentation draws",
                    minimum=0),
        "device": Key("str", "auto", "'auto' (MTLAUG_DEVICE, else CUDA when present, else CPU), "
                      "'cpu', 'cuda', 'cuda:N' or 'mps'",
                      check=lambda v: bool(DEVICE_PATTERN.match(v)),
                      expected="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"),
        "precision": Key("str", "fp32", "arithmetic of the training steps", choices=PRECISIONS),
        "output": Key("str", None, "the output folder (default: runs/<config file's name>)"),
        "progress": Key("bool", True, "show a progress bar (rank 0 only)"),
    },
    "data": {
        "dataset": Key("str", "multidigits", "the data set", choices=DATASETS),
        "tasks": Key("strs", None, "a subset of the data set's tasks (default: all)"),
        "train_size": Key("int", None, "training samples (default: the data set's)", minimum=1),
        "test_size": Key("int", None, "test samples (default: the data set's)", minimum=1),
        "seed": Key("int", 0, "which samples are drawn (not the run's seed)", minimum=0),
        "image_size": Key("any", None, "scenes: the side in pixels (default 48); nyuv2: [H, W] "
                          "(default: as stored, 288 x 384)"),
        "root": Key("str", None, "multimnist: the folder holding MNIST/raw; nyuv2: the folder "
                    "holding train/ and val/ (required for both)"),
        "download": Key("bool", False, "multimnist only: let torchvision download MNIST "
                        "(needs a network; never done unless set)"),
    },
    "model": {
        "architecture": Key("str", "hard", "an entry of ARCHITECTURES", choices=None),
        "backbone": Key("str", None, "'article' or 'encoder_decoder' (default: article for the "
                        "digit data sets, encoder_decoder for the scene ones)"),
    },
    "strategy": {
        "name": Key("str", "joint", "a strategy (STRATEGIES) or a weighting method "
                    "(WEIGHTING_METHODS)"),
    },
    "training": {
        "epochs": Key("int", 10, "passes over the training set", minimum=1),
        "batch_size": Key("int", 128, "training batch (the global batch under torchrun)",
                          minimum=1),
        "test_batch_size": Key("int", 500, "evaluation batch", minimum=1),
        "lr": Key("float", 1e-3, "learning rate (the one-cycle schedule's peak)", minimum=0.0),
        "optimizer": Key("str", "adam", "the optimizer", choices=OPTIMIZERS),
        "weight_decay": Key("float", 0.0, "weight decay", minimum=0.0),
        "momentum": Key("float", None, "sgd only (default 0.9)", minimum=0.0),
        "schedule": Key("str", "onecycle", "learning-rate schedule", choices=SCHEDULES),
        "weights": Key("table", {}, "per-task loss weights {task = w} (joint, alternating, "
                       "sequential)"),
        "eval_every": Key("int", 0, "also evaluate every this many steps (0: after each epoch "
                          "only)", minimum=0),
        "conflict_every": Key("int", 0, "record gradient conflict every this many steps (0: "
                              "never)", minimum=0),
        "checkpoint": Key("bool", True, "write <output>/checkpoint.pt after every epoch"),
    },
    "augment": {
        "enabled": Key("bool", True, "apply the augmenter (when the table sets any option)"),
    },
}

KINDS = {"int": "an integer", "float": "a number", "str": "a string", "bool": "true or false",
         "strs": "a list of strings", "table": "a table", "any": "a value"}


def _where(table: str, key: str) -> str:
    return f"{table}.{key}" if table else key


def closest(name: str, names: Sequence[str]) -> str:
    """' (did you mean 'x'?)' for the closest of ``names``, or ''."""
    near = difflib.get_close_matches(name, list(names), n=1, cutoff=0.6)
    return f" (did you mean {near[0]!r}?)" if near else ""


def unknown_key(table: str, key: str, allowed: Sequence[str], what: str = "") -> ConfigError:
    section = f"table [{table}]" if table else "the top level"
    extra = f" ({what})" if what else ""
    return ConfigError(
        f"unknown key {_where(table, key)!r}{closest(key, allowed)}; the keys of {section}"
        f"{extra} are {', '.join(sorted(allowed))}")


def _type_ok(kind: str, value: Any) -> bool:
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "str":
        return isinstance(value, str)
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "strs":
        return isinstance(value, list) and all(isinstance(v, str) for v in value)
    if kind == "table":
        return isinstance(value, Mapping)
    return True


def check_value(table: str, key: str, spec: Key, value: Any) -> Any:
    """``value`` if it fits ``spec``, else a ``ConfigError`` naming the key."""
    where = _where(table, key)
    if not _type_ok(spec.kind, value):
        raise ConfigError(f"key {where!r} is {value!r} ({type(value).__name__}), expected "
                          f"{KINDS[spec.kind]}")
    if spec.choices is not None and value not in spec.choices:
        raise ConfigError(f"key {where!r} is {value!r}{closest(value, spec.choices)}, expected "
                          f"one of {', '.join(repr(c) for c in spec.choices)}")
    if spec.minimum is not None and value < spec.minimum:
        raise ConfigError(f"key {where!r} is {value!r}, expected {KINDS[spec.kind]} >= "
                          f"{spec.minimum:g}")
    if spec.check is not None and not spec.check(value):
        raise ConfigError(f"key {where!r} is {value!r}, expected {spec.expected}")
    return float(value) if spec.kind == "float" else value


def resolve(raw: Mapping[str, Any], name: str = "experiment",
            choices: Mapping[str, Sequence[str]] | None = None) -> dict[str, Any]:
    """The config with every key checked and every default filled in (plain values only).

    ``name`` names the default output folder (``runs/<name>``); ``choices`` adds allowed values
    known only to the library (``{"model.architecture": (...), "strategy.name": (...)}``).
    Raises ``ConfigError`` for an unknown table or key, a wrong type, a value outside its
    choices, and a data key that does not apply to the data set.
    """
    choices = dict(choices or {})
    tables = [t for t in SCHEMA if t]
    out: dict[str, Any] = {t: {} for t in tables}
    for key, value in raw.items():
        if key in tables:
            if not isinstance(value, Mapping):
                raise ConfigError(f"key {key!r} is {value!r}, expected a table [{key}]")
            continue
        if key not in SCHEMA[""]:
            raise unknown_key("", key, [*SCHEMA[""], *(f"[{t}]" for t in tables)])
        out[key] = check_value("", key, SCHEMA[""][key], value)
    for table in tables:
        given = raw.get(table, {})
        for key, value in given.items():
            spec = SCHEMA[table].get(key)
            if spec is None:
                if table in PASS_THROUGH:
                    out[table][key] = value  # checked by the library when built
                    continue
                raise unknown_key(table, key, list(SCHEMA[table]))
            allowed = choices.get(f"{table}.{key}")
            if allowed is not None:
                spec = Key(spec.kind, spec.default, spec.doc, tuple(allowed))
            out[table][key] = check_value(table, key, spec, value)
    for table, keys in SCHEMA.items():
        target = out if not table else out[table]
        for key, spec in keys.items():
            if key not in target and spec.default is not None:
                target[key] = dict(spec.default) if spec.kind == "table" else spec.default
    data = out["data"]
    dataset = data["dataset"]
    for key in [k for k in data if k not in ("dataset", "tasks")]:
        if key not in DATASET_KEYS[dataset] and key in raw.get("data", {}):
            raise ConfigError(
                f"key 'data.{key}' does not apply to dataset {dataset!r}; its data keys are "
                f"{', '.join(('tasks', *DATASET_KEYS[dataset]))}")
    for key in [k for k in data if k not in ("dataset", "tasks")]:
        if key not in DATASET_KEYS[dataset]:
            del data[key]  # defaults of keys that do not apply (seed, download)
    if dataset in ("multimnist", "nyuv2") and "root" not in data:
        how = ("MNIST's IDX files under <root>/MNIST/raw (or set data.download = true to let "
               "torchvision fetch them; needs a network)" if dataset == "multimnist" else
               "MTAN's pre-processed NYUv2 (train/ and val/ folders of .npy files; nothing is "
               "downloaded)")
        raise ConfigError(f"dataset {dataset!r} needs key 'data.root': the folder holding "
                          f"{how}")
    out["model"].setdefault("backbone", DEFAULT_BACKBONE[dataset])
    if out["training"]["optimizer"] == "sgd":
        out["training"].setdefault("momentum", 0.9)
    elif "momentum" in out["training"]:
        raise ConfigError(f"key 'training.momentum' applies to optimizer 'sgd' only, not "
                          f"{out['training']['optimizer']!r}")
    out.setdefault("output", f"runs/{name}")
    return out


def describe(choices: Mapping[str, Sequence[str]] | None = None) -> str:
    """Every key of the schema, one a line: ``table.key: kind = default (choices); what``
    (``choices`` as in ``resolve``)."""
    choices = dict(choices or {})
    lines = []
    for table, keys in SCHEMA.items():
        for key, spec in keys.items():
            listed = choices.get(_where(table, key), spec.choices)
            allowed = f" (one of {', '.join(listed)})" if listed else ""
            default = "" if spec.default is None else f" = {spec.default!r}"
            lines.append(f"{_where(table, key)}: {KINDS[spec.kind]}{default}{allowed}; "
                         f"{spec.doc}")
        if table in PASS_THROUGH:
            lines.append(f"{table}.<other keys>: {PASS_THROUGH[table]}")
    return "\n".join(lines)
