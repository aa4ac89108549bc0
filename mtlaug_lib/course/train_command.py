"""``mtlaug-train``: run an experiment from a TOML config and/or flags.

    mtlaug-train CONFIG.toml [--set table.key=value ...] [--epochs 3 --device cpu ...]
    mtlaug-train --dataset multidigits --epochs 2 --output runs/try
    mtlaug-train CONFIG.toml --resume          # continue an interrupted run
    torchrun --nproc-per-node 2 -m mtlaug_lib.course.train_command CONFIG.toml
    mtlaug-train --keys                        # every config key, its type and default

The file is read first, then each ``--set`` in order, then the flags: a flag overrides both.
Ready configs ship in ``mtlaug_lib/course/configs/`` (``--config-dir`` prints the folder).
A config the command cannot run is refused before anything trains, with exit status 2 and
one line on stderr naming the key and what it takes. The output folder gets the resolved
config, ``history.json``, ``metrics.json``, the figures and a checkpoint after every epoch
(``experiment.outputs``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from .experiment import runner
from .experiment.build import library_choices
from .experiment.schema import ConfigError, describe

PROG = "mtlaug-train"
CONFIG_DIR = Path(__file__).resolve().parent / "configs"

# flag -> (config key, type); a flag overrides the file and --set.
FLAGS: dict[str, tuple[str, type]] = {
    "dataset": ("data.dataset", str),
    "tasks": ("data.tasks", str),  # comma-separated
    "architecture": ("model.architecture", str),
    "backbone": ("model.backbone", str),
    "strategy": ("strategy.name", str),
    "epochs": ("training.epochs", int),
    "batch_size": ("training.batch_size", int),
    "lr": ("training.lr", float),
    "eval_every": ("training.eval_every", int),
    "device": ("device", str),
    "precision": ("precision", str),
    "seed": ("seed", int),
    "output": ("output", str),
}


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit status 2 (from main)
        raise _UsageError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Train a multi-task model from a config file "
                     "(TOML) and/or flags; write history, metrics, figures and checkpoints.")
    parser.add_argument("config", nargs="?", metavar="CONFIG",
                        help="a TOML config (or a run's config.json); default: flags only")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="set a config key, e.g. --set training.lr=3e-3 (repeatable)")
    for flag, (key, kind) in FLAGS.items():
        parser.add_argument(f"--{flag.replace('_', '-')}", dest=flag, type=kind,
                            metavar=kind.__name__.upper(), help=f"sets {key}")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run in the output folder from its checkpoint")
    parser.add_argument("--overwrite", action="store_true",
                        help="start again in an output folder that holds a run")
    parser.add_argument("--check", action="store_true",
                        help="check the config and print it resolved; load no data, train "
                        "nothing")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--keys", action="store_true",
                        help="print every config key with its type and default, and exit")
    parser.add_argument("--config-dir", action="store_true",
                        help="print the folder of the ready configs, and exit")
    return parser


def raw_config(args: argparse.Namespace) -> dict[str, Any]:
    """The file, then ``--set``, then the flags, as one raw (unchecked) config."""
    raw = runner.load_config(args.config) if args.config else {}
    runner.parse_sets(raw, args.set)
    for flag, (key, _) in FLAGS.items():
        value = getattr(args, flag)
        if value is None:
            continue
        if flag == "tasks":
            value = [t.strip() for t in value.split(",") if t.strip()]
        table, _, name = key.rpartition(".")
        (raw.setdefault(table, {}) if table else raw)[name] = value
    if args.no_progress:
        raw["progress"] = False
    return raw


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mtlaug-train``; returns the exit status (0 trained, 2 bad config or usage,
    1 training failed, 130 interrupted)."""
    try:
        args = _parser().parse_args(argv)
    except _UsageError as err:
        print(f"{PROG}: error: {err} (see {PROG} --help)", file=sys.stderr)
        return 2
    if args.keys:
        print(describe(library_choices()))
        return 0
    if args.config_dir:
        print(CONFIG_DIR)
        return 0
    name = Path(args.config).stem if args.config else "experiment"
    try:
        experiment = runner.prepare(raw_config(args), name, load_data=False)
        if args.check:
            import json

            print(json.dumps(experiment.config, indent=2))
            return 0
        if experiment.writes:
            print(f"{PROG}: {runner.summary(experiment)}", flush=True)
        history = runner.run(experiment, resume=args.resume, overwrite=args.overwrite)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted; the last epoch's checkpoint is kept: continue with "
              "--resume", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError) as err:
        print(f"{PROG}: error: training stopped: {' '.join(str(err).split())}",
              file=sys.stderr)
        return 1
    if experiment.writes:
        print(f"{PROG}: test {runner.report(history, experiment.tasks)}; results in "
              f"{experiment.output}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
