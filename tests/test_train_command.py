"""mtlaug-train: a config end to end against a direct ``train`` call, overrides, resuming after
an interruption, bad configs refused before training (exit status 2, one line on stderr), the
shipped configs, and the entry point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import mtlaug_lib as mtl
from mtlaug_lib.course import train_command
from mtlaug_lib.course.experiment import SCHEMA, ConfigError, SeededAugment, load_config, prepare
from mtlaug_lib.course.experiment import runner as experiment_runner
from mtlaug_lib.course.train_command import CONFIG_DIR, main

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
QUICK = CONFIG_DIR / "multidigits_quick.toml"
pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions on a shared CPU
SMALL = ["--set", "data.train_size=256", "--set", "data.test_size=100", "--no-progress"]
OUTPUTS = ("config.json", "history.json", "metrics.json", "checkpoint.pt", "loss_curves.png",
           "test_metrics.png")


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quick") / "run"
    assert main([str(QUICK), "--output", str(out), "--no-progress", "--device", "cpu"]) == 0
    return out


def test_quick_config_writes_every_output(quick_run: Path) -> None:
    for name in OUTPUTS:
        assert (quick_run / name).is_file(), name
    for name in ("loss_curves.png", "test_metrics.png"):
        assert (quick_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = mtl.History.from_dict(_json(quick_run / "history.json"))
    config = _json(quick_run / "config.json")
    assert history.epochs == config["training"]["epochs"] == 2
    assert _json(quick_run / "metrics.json") == history.final()
    assert set(history.final()) == {"left", "right", "mask"}
    # The resolved config runs again as it is (a JSON config).
    assert main([str(quick_run / "config.json"), "--check"]) == 0


def test_quick_config_equals_a_direct_train_call(quick_run: Path) -> None:
    """The command adds nothing hidden: the same seed gives the same metrics as ``train``."""
    c = tomllib.loads(QUICK.read_text())
    data, t, aug = c["data"], c["training"], c["augment"]
    tasks = mtl.multidigits_tasks()
    train_iter = mtl.TensorLoader(mtl.MultiDigits("train", data["train_size"], seed=0),
                                  t["batch_size"], shuffle=True, seed=c["seed"])
    test_iter = mtl.TensorLoader(mtl.MultiDigits("test", data["test_size"], seed=0),
                                 t["test_batch_size"])
    model = mtl.make_architecture("hard", tasks, "article", seed=c["seed"])
    augment = mtl.BatchAugment(tasks, degrees=aug["degrees"], translate=tuple(aug["translate"]))
    mtl.seed_everything(c["seed"])
    history = mtl.train(model, tasks, train_iter, test_iter, epochs=t["epochs"], lr=t["lr"],
                        augment=SeededAugment(augment, c["seed"]), progress=False)
    assert _json(quick_run / "metrics.json") == history.final()


def test_resume_after_an_interruption_gives_the_uninterrupted_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert main([str(QUICK), "--output", str(whole), *SMALL]) == 0
    real_train = experiment_runner.train

    def interrupted(*args: object, **kwargs: object) -> mtl.History:
        chained = kwargs["on_epoch_end"]

        def stop(history: mtl.History) -> None:
            chained(history)
            raise KeyboardInterrupt  # as a Ctrl-C after the first epoch's checkpoint

        return real_train(*args, **{**kwargs, "on_epoch_end": stop})

    monkeypatch.setattr(experiment_runner, "train", interrupted)
    assert main([str(QUICK), "--output", str(parts), *SMALL]) == 130
    assert "--resume" in capsys.readouterr().err
    assert (parts / "checkpoint.pt").is_file() and not (parts / "metrics.json").exists()
    assert _json(parts / "history.json")["epochs"] == 1
    monkeypatch.setattr(experiment_runner, "train", real_train)
    # Without --resume, the command refuses to start over a run's files.
    assert main([str(QUICK), "--output", str(parts), *SMALL]) == 2
    assert "--resume" in capsys.readouterr().err
    # A resumption with another config is refused, naming the key.
    assert main([str(QUICK), "--output", str(parts), *SMALL, "--lr", "0.1", "--resume"]) == 2
    assert "training.lr" in capsys.readouterr().err
    assert main([str(QUICK), "--output", str(parts), *SMALL, "--resume"]) == 0
    assert _json(parts / "metrics.json") == _json(whole / "metrics.json")
    resumed, uninterrupted = _json(parts / "history.json"), _json(whole / "history.json")
    assert resumed["train_loss"] == uninterrupted["train_loss"]
    assert resumed["steps"] == uninterrupted["steps"]


def _resolved(capsys: pytest.CaptureFixture, *args: str) -> dict:
    assert main([*args, "--check"]) == 0
    return json.loads(capsys.readouterr().out)


def test_set_and_flags_override_the_file(capsys: pytest.CaptureFixture) -> None:
    base = _resolved(capsys, str(QUICK))
    assert base["training"]["epochs"] == 2 and base["output"] == "runs/multidigits_quick"
    c = _resolved(capsys, str(QUICK), "--set", "training.epochs=5", "--set", "training.lr=0.01",
                  "--set", 'data.tasks=["left", "mask"]', "--set", "strategy.name=mgda",
                  "--set", "strategy.source=parameters", "--set", "augment.enabled=false")
    assert c["training"]["epochs"] == 5 and c["training"]["lr"] == 0.01
    assert c["data"]["tasks"] == ["left", "mask"]
    assert c["strategy"] == {"name": "mgda", "source": "parameters"}
    assert c["augment"]["enabled"] is False
    # A flag overrides both the file and --set.
    c = _resolved(capsys, str(QUICK), "--set", "training.epochs=5", "--epochs", "7",
                  "--tasks", "right", "--batch-size", "32", "--seed", "3", "--output", "x")
    assert c["training"]["epochs"] == 7 and c["training"]["batch_size"] == 32
    assert c["data"]["tasks"] == ["right"] and c["seed"] == 3 and c["output"] == "x"
    # Flags alone, and defaults that depend on the data set.
    c = _resolved(capsys, "--dataset", "scenes", "--epochs", "1")
    assert c["model"]["backbone"] == "encoder_decoder" and c["output"] == "runs/experiment"
    assert "seed" in c["data"] and "image_size" not in c["data"]


def test_keys_lists_every_key(capsys: pytest.CaptureFixture) -> None:
    assert main(["--keys"]) == 0
    out = capsys.readouterr().out
    for table, keys in SCHEMA.items():
        for key in keys:
            assert f"{table}.{key}:" in out if table else f"\n{key}:" in f"\n{out}"


FP16_CPU = ["--precision", "fp16", "--device", "cpu"]
BAD = {
    "unknown key": (["--set", "training.epoch=3"],
                    ["'training.epoch'", "did you mean 'epochs'", "batch_size", "lr"]),
    "unknown top-level key": (["--set", "sead=1"], ["'sead'", "did you mean 'seed'"]),
    "unknown table": (["--set", "trainig.epochs=1"], ["'trainig'", "[training]"]),
    "wrong type": (["--set", "training.epochs=ten"], ["'training.epochs'", "an integer"]),
    "out of range": (["--epochs", "0"], ["'training.epochs'", ">= 1"]),
    "not a choice": (["--dataset", "mnist"],
                     ["'data.dataset'", "did you mean 'multimnist'", "'scenes'", "'nyuv2'"]),
    "unknown strategy": (["--strategy", "pcgrd"],
                         ["'strategy.name'", "did you mean 'pcgrad'", "'joint'", "'mgda'"]),
    "strategy option": (["--strategy", "mgda", "--set", "strategy.sourse=parameters"],
                        ["'strategy.sourse'", "did you mean 'source'"]),
    "strategy option value": (["--strategy", "mgda", "--set", "strategy.source=params"],
                              ["'strategy.source'", "'representation'", "'parameters'"]),
    "model option": (["--set", "model.width=8"], ["'model.width'", "backbone 'article'"]),
    "unknown task": (["--tasks", "left,top"],
                     ["'data.tasks'", "'top'", "multidigits", "left, right, mask"]),
    "fp16 on the CPU": (FP16_CPU, ["'precision'", "fp16", "CPU"]),
    "audit refuses": (["--set", "augment.hflip=0.5"], ["[augment]", "label-safety", "left"]),
    "augment option": (["--set", "augment.rotate=10"], ["'augment.rotate'", "degrees"]),
    "key of another data set": (["--set", "data.image_size=32"],
                                ["'data.image_size'", "multidigits"]),
    "data set needs files": (["--dataset", "multimnist", "--tasks", "left"],
                             ["'data.root'", "MNIST", "download"]),
    "weights with a weighting method": (["--strategy", "mgda", "--set",
                                         "training.weights={left = 2.0}"],
                                        ["'training.weights'", "'fixed'"]),
    "set syntax": (["--set", "training.epochs"], ["key=value"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_configs_exit_2_with_one_line(case: str, capsys: pytest.CaptureFixture) -> None:
    args, words = BAD[case]
    assert main([str(QUICK), *args, "--output", "never-written"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mtlaug-train: error: "), err
    for word in words:
        assert word in err, (word, err)
    assert not Path("never-written").exists()


def test_bf16_is_passed_to_train(capsys: pytest.CaptureFixture) -> None:
    assert _resolved(capsys, str(QUICK), "--precision", "bf16")["precision"] == "bf16"


def test_missing_mnist_files_say_how_to_get_them(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "run"
    assert main(["--dataset", "multimnist", "--set", f"data.root={json.dumps(str(tmp_path))}",
                 "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "MNIST" in err and "data.download = true" in err and err.count("\n") == 1
    assert not out.exists()  # refused before anything was written


def test_a_bad_config_file_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[training\nepochs = 1\n")
    assert main([str(bad)]) == 2
    assert "not valid TOML" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.toml")]) == 2
    assert main(["--no-such-flag"]) == 2
    assert capsys.readouterr().err.count("\n") == 2


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_configs_parse_and_validate(path: Path) -> None:
    """Every ready config resolves and builds its model, strategy and augmenter (no data, no
    training: the MultiMNIST one needs MNIST and a GPU)."""
    experiment = prepare(load_config(path), path.stem, load_data=False, env={})
    assert experiment.config["output"] == f"runs/{path.stem}"
    if path.stem == "sener_koltun_multimnist":
        text = path.read_text()
        assert "NOT BEEN RUN" in text and "arXiv:1810.04650" in text
        assert experiment.config["data"]["dataset"] == "multimnist"
        assert experiment.config["strategy"] == {"name": "mgda", "source": "representation"}


def test_torchrun_environment_makes_rank_0_the_only_writer() -> None:
    raw = {**load_config(QUICK), "device": "cpu"}
    env = {"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"}
    worker = prepare(raw, load_data=False, env=env)
    assert worker.distributed is not None and worker.distributed.world_size == 2
    assert not worker.writes and worker.device == torch.device("cpu")
    assert prepare(raw, load_data=False, env={**env, "RANK": "0"}).writes
    with pytest.raises(ConfigError, match="RANK"):
        prepare(raw, load_data=False, env={"RANK": "x", "WORLD_SIZE": "2"})


def test_entry_point_and_package_data_are_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["mtlaug-train"] == "mtlaug_lib.course.train_command:main"
    assert "configs/*.toml" in project["tool"]["setuptools"]["package-data"]["mtlaug_lib.course"]
    assert any(r.startswith("tomli") for r in project["project"]["dependencies"])
    assert main(["--config-dir"]) == 0 and train_command.CONFIG_DIR.is_dir()
