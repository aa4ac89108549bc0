"""Checkpoints: round trip, atomic writes, ``weights_only`` loading, refusing another model, and
resuming a run to exactly the weights of an uninterrupted one.

``tasks`` is the fixture of ``conftest.py``: the three MultiDigits tasks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from state_checks import equal_states

from mtlaug_lib.core.checkpoint import load_checkpoint, model_signature, save_checkpoint
from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import CLASSIFICATION, Task, select_tasks
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits
from mtlaug_lib.training.loop import History, evaluate, train
from mtlaug_lib.training.strategies import Joint


@pytest.fixture(scope="module")
def data() -> tuple[MultiDigits, MultiDigits]:
    return MultiDigits("train", size=64, seed=0), MultiDigits("test", size=16, seed=0)



def trained(tasks, steps: int = 2):
    """A model, Adam and a one-cycle schedule after ``steps`` joint updates."""
    model = make_model(tasks, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=10)
    data = MultiDigits("train", size=16, seed=0)
    for step in range(steps):
        Joint().step(model, data.batch(torch.arange(16)), MultiTaskLoss(tasks), opt, step)
        sched.step()
    return model, opt, sched


# ---- round trip and format ------------------------------------------------------------------


def test_round_trip_model_optimizer_scheduler_history(tasks, tmp_path: Path) -> None:
    model, opt, sched = trained(tasks)
    history = History(tasks=list(tasks), steps=2, images=32)
    history.train_loss["left"] += [2.3, 2.2]
    path = save_checkpoint(tmp_path / "sub" / "run.pt", model, opt, sched, history.to_dict(),
                           extra={"note": "x"})
    assert path == tmp_path / "sub" / "run.pt" and path.is_file()

    model2, opt2, sched2 = trained(tasks, steps=0)
    assert not equal_states(model.state_dict(), model2.state_dict())
    state = load_checkpoint(path, model2, opt2, sched2)
    assert equal_states(model.state_dict(), model2.state_dict())
    assert equal_states(opt.state_dict(), opt2.state_dict())
    assert equal_states(sched.state_dict(), sched2.state_dict())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert History.from_dict(state["history"]) == history
    assert state["extra"] == {"note": "x"}


def test_the_file_loads_with_plain_weights_only_torch_load(tasks, tmp_path: Path) -> None:
    model, opt, sched = trained(tasks)
    path = save_checkpoint(tmp_path / "run.pt", model, opt, sched, History(list(tasks)).to_dict())
    state = torch.load(path, weights_only=True)
    assert {"model", "optimizer", "scheduler", "history", "signature"} <= set(state)
    assert state["signature"] == model_signature(model)
    assert state["signature"]["tasks"] == ["left", "right", "mask"]
    assert equal_states(state["model"], model.state_dict())
    # Written with the permissions a plain open() would give, not mkstemp's owner-only 0600.
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_model_only_checkpoint(tasks, tmp_path: Path) -> None:
    model, _, _ = trained(tasks)
    path = save_checkpoint(tmp_path / "model.pt", model)
    fresh = make_model(tasks, seed=1)
    assert load_checkpoint(path, fresh) == {"history": None, "extra": {}}
    assert equal_states(model.state_dict(), fresh.state_dict())
    with pytest.raises(ValueError, match="holds no optimizer state to resume from"):
        load_checkpoint(path, fresh, torch.optim.Adam(fresh.parameters()))


def test_a_scheduler_is_not_silently_restarted(tasks, tmp_path: Path) -> None:
    model, opt, _ = trained(tasks)
    path = save_checkpoint(tmp_path / "run.pt", model, opt)  # no scheduler
    fresh, opt2, sched2 = trained(tasks, steps=0)
    with pytest.raises(ValueError, match="holds no learning-rate scheduler state"):
        load_checkpoint(path, fresh, opt2, sched2)


# ---- atomic writes --------------------------------------------------------------------------


@pytest.mark.parametrize("error", [OSError("No space left on device"), KeyboardInterrupt()])
def test_a_crash_while_saving_keeps_the_previous_checkpoint(tasks, tmp_path, monkeypatch, error):
    model, opt, sched = trained(tasks)
    path = save_checkpoint(tmp_path / "run.pt", model, opt, sched)
    good = path.read_bytes()

    def crash(obj, f, *args, **kwargs):
        f.write(b"half a checkpoint")
        raise error

    monkeypatch.setattr(torch, "save", crash)
    with torch.no_grad():
        next(model.parameters()).add_(1.0)  # something new to save
    with pytest.raises(type(error)):
        save_checkpoint(path, model, opt, sched)
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.pt"]  # no temporary file left
    monkeypatch.undo()
    load_checkpoint(path, make_model(tasks))  # still a good checkpoint


# ---- refusing what does not fit -------------------------------------------------------------


def test_refuses_another_task_set_and_changes_nothing(tasks, tmp_path: Path) -> None:
    two = make_model(select_tasks(tasks, ["left", "right"]), seed=0)
    path = save_checkpoint(tmp_path / "two.pt", two)
    three = make_model(tasks, seed=1)
    before = {k: v.clone() for k, v in three.state_dict().items()}
    with pytest.raises(ValueError, match=r"does not fit this model: it was saved from a model "
                                         r"with tasks \['left', 'right'\], this model has "
                                         r"\['left', 'right', 'mask'\]"):
        load_checkpoint(path, three)
    assert equal_states(before, three.state_dict())


def test_refuses_a_head_of_another_size_naming_the_parameters(tasks, tmp_path: Path) -> None:
    path = save_checkpoint(tmp_path / "ten.pt", make_model(tasks, seed=0))
    five = make_model({**tasks, "left": Task("left", CLASSIFICATION, 5)}, seed=0)
    opt = torch.optim.Adam(five.parameters())
    with pytest.raises(ValueError, match=r"shapes differ \(heads\.left\.fc2\.weight: saved "
                                         r"\[10, 128\], here \[5, 128\]; heads\.left\.fc2\.bias"):
        load_checkpoint(path, five, opt)
    assert opt.state_dict()["state"] == {}


def test_refuses_files_that_are_not_checkpoints(tasks, tmp_path: Path) -> None:
    model = make_model(tasks, seed=0)
    with pytest.raises(FileNotFoundError, match="argument 'path': no checkpoint file at"):
        load_checkpoint(tmp_path / "missing.pt", model)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="is not a checkpoint of this library"):
        load_checkpoint(other, model)
    good = save_checkpoint(tmp_path / "good.pt", model)
    damaged = tmp_path / "damaged.pt"
    damaged.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(RuntimeError, match="could not be read .* it may be damaged"):
        load_checkpoint(damaged, model)


class Payload:
    """Any class: unpickling it could run code, so ``weights_only`` must refuse it."""

    def __reduce__(self):
        return (print, ("this must not run",))


def test_refuses_pickled_code(tasks, tmp_path: Path, capsys) -> None:
    path = tmp_path / "evil.pt"
    torch.save({"format": 1, "x": Payload()}, path)  # pickles a call to print
    with pytest.raises(RuntimeError, match="could not be read"):
        load_checkpoint(path, make_model(tasks, seed=0))
    assert "this must not run" not in capsys.readouterr().out


# ---- resuming -------------------------------------------------------------------------------


class Stop(Exception):
    pass


def run(tasks, data, *, epochs=2, checkpoint=None, resume=False, on_epoch_end=None, **kwargs):
    """A fresh model and fresh loaders each time, as in a new process."""
    train_set, test_set = data
    model = make_model(tasks, seed=0)
    history = train(model, tasks, TensorLoader(train_set, 32, shuffle=True, seed=3),
                    TensorLoader(test_set, 16), epochs=epochs, lr=3e-3, checkpoint=checkpoint,
                    resume=resume, on_epoch_end=on_epoch_end, progress=False, **kwargs)
    return model, history


def stop_after(epochs: int):
    def callback(history: History) -> None:
        if history.epochs == epochs:
            raise Stop

    return callback


def test_resuming_ends_with_the_weights_of_an_uninterrupted_run(tasks, data, tmp_path) -> None:
    full_path, part_path = tmp_path / "full.pt", tmp_path / "part.pt"
    full_model, full = run(tasks, data, checkpoint=full_path)  # one-cycle schedule (default)

    with pytest.raises(Stop):
        run(tasks, data, checkpoint=part_path, on_epoch_end=stop_after(1))
    halfway = torch.load(part_path, weights_only=True)
    assert halfway["history"]["epochs"] == 1
    assert not equal_states(halfway["model"], full_model.state_dict())

    model, resumed = run(tasks, data, checkpoint=part_path, resume=True)
    assert equal_states(model.state_dict(), full_model.state_dict())
    assert (resumed.steps, resumed.epochs, resumed.images) == (full.steps, 2, full.images)
    assert resumed.train_loss == full.train_loss
    assert [e["test"] for e in resumed.evals] == [e["test"] for e in full.evals]
    # The optimizer and the one-cycle schedule went on from where they were.
    a, b = torch.load(full_path, weights_only=True), torch.load(part_path, weights_only=True)
    assert equal_states(a["optimizer"], b["optimizer"])
    assert equal_states(a["scheduler"], b["scheduler"])
    assert b["scheduler"]["last_epoch"] == full.steps


def test_a_restarted_schedule_would_differ(tasks, data, tmp_path) -> None:
    """The control for the test above: equality is not automatic. Loading only the model and
    optimizer, and training the last epoch with a fresh one-cycle schedule, ends elsewhere."""
    full_model, _ = run(tasks, data)
    path = tmp_path / "part.pt"
    with pytest.raises(Stop):
        run(tasks, data, checkpoint=path, on_epoch_end=stop_after(1))
    model = make_model(tasks, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    load_checkpoint(path, model, opt)
    loader = TensorLoader(data[0], 32, shuffle=True, seed=3)
    loader.set_epoch(1)
    for batch in loader:  # the second epoch's batches, at the peak learning rate
        loss = sum(t.loss(o, batch[n]) for (n, t), o in zip(tasks.items(),
                                                             model(batch["image"]).values(),
                                                             strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert not equal_states(model.state_dict(), full_model.state_dict())


def test_resume_of_a_finished_run_changes_nothing(tasks, data, tmp_path) -> None:
    path = tmp_path / "run.pt"
    model, history = run(tasks, data, checkpoint=path)
    again, resumed = run(tasks, data, checkpoint=path, resume=True)
    assert equal_states(model.state_dict(), again.state_dict())
    assert resumed == history


def test_resume_without_a_file_yet_starts_afresh(tasks, data, tmp_path) -> None:
    path = tmp_path / "new.pt"
    model, history = run(tasks, data, epochs=1, checkpoint=path, resume=True)
    assert history.epochs == 1 and path.is_file()
    assert torch.load(path, weights_only=True)["history"]["steps"] == history.steps


def test_resume_refuses_another_run_plan(tasks, data, tmp_path) -> None:
    path = tmp_path / "run.pt"
    with pytest.raises(Stop):
        run(tasks, data, checkpoint=path, on_epoch_end=stop_after(1))
    with pytest.raises(ValueError, match=r"schedule of 4 steps; this run has 2 batches an epoch "
                                         r"and 6 steps in all"):
        run(tasks, data, epochs=3, checkpoint=path, resume=True)
    two = select_tasks(tasks, ["left", "right"])
    with pytest.raises(ValueError, match="does not fit this model"):
        run(two, data, checkpoint=path, resume=True)
    constant = tmp_path / "constant.pt"
    with pytest.raises(Stop):
        run(tasks, data, checkpoint=constant, schedule=None, on_epoch_end=stop_after(1))
    with pytest.raises(ValueError, match="holds no learning-rate scheduler state"):
        run(tasks, data, checkpoint=constant, resume=True)  # the default schedule: one-cycle


class Counting(Joint):
    """A strategy with state (as a task schedule would have)."""

    def __init__(self) -> None:
        self.count = 0

    def step(self, model, batch, loss_fn, optimizer, step):
        self.count += 1
        return super().step(model, batch, loss_fn, optimizer, step)

    def state_dict(self):
        return {"count": self.count}

    def load_state_dict(self, state) -> None:
        self.count = state["count"]


def test_a_strategys_state_is_saved_and_restored(tasks, data, tmp_path) -> None:
    path = tmp_path / "run.pt"
    first = Counting()
    with pytest.raises(Stop):
        run(tasks, data, checkpoint=path, strategy=first, on_epoch_end=stop_after(1))
    assert torch.load(path, weights_only=True)["extra"]["strategy"] == {"count": 2}
    second = Counting()
    model, history = run(tasks, data, checkpoint=path, resume=True, strategy=second)
    assert second.count == history.steps == 4


def test_evaluate_after_loading_gives_the_saved_models_metrics(tasks, data, tmp_path) -> None:
    path = tmp_path / "run.pt"
    model, history = run(tasks, data, epochs=1, checkpoint=path)
    fresh = make_model(tasks, seed=5)
    load_checkpoint(path, fresh)
    assert evaluate(fresh, TensorLoader(data[1], 16), tasks) == history.final()
