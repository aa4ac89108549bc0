"""An experiment from a config file: the machinery behind the ``mtlaug-train`` command.

- ``schema``: every key of a config, its type, default and allowed values; ``resolve``;
- ``build``: the tasks, model, strategy, augmenter, optimizer, device and loaders of a config;
- ``runner``: ``prepare`` (every check, before anything trains), ``run`` (train, write, torchrun);
- ``outputs``: the files a run writes (config, history, metrics, figures).

The command itself is ``mtlaug_lib.course.train_command``.
"""

from .build import SeededAugment
from .runner import Distributed, Experiment, apply_set, load_config, prepare, run
from .schema import SCHEMA, ConfigError, describe, resolve

__all__ = [
    "SCHEMA",
    "ConfigError",
    "Distributed",
    "Experiment",
    "SeededAugment",
    "apply_set",
    "describe",
    "load_config",
    "prepare",
    "resolve",
    "run",
]
