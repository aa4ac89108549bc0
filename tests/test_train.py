"""The training loop: one joint update, the history's counters, evaluation, the augment hook,
NaN losses, bad arguments; and a smoke test of the training benchmark.

``tasks`` (from ``conftest.py``) are the three MultiDigits tasks.

Tiny data (tens of samples, batch 32) and one or two epochs keep this file fast on 2 cores.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
import math
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from state_checks import equal_states
from torch import nn

from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import CLASSIFICATION, Task, select_tasks
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits
from mtlaug_lib.training.loop import History, evaluate, train
from mtlaug_lib.training.registry import make_strategy
from mtlaug_lib.training.strategies import Joint
from mtlaug_lib.training.strategy import NonFiniteLossError, Strategy, check_finite

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
# The module itself: the package re-exports the function ``train`` under the same name.
train_module = importlib.import_module("mtlaug_lib.training.loop")


@pytest.fixture(scope="module")
def train_data() -> MultiDigits:
    return MultiDigits("train", size=80, seed=0)  # 3 batches of 32, 32, 16


@pytest.fixture(scope="module")
def test_data() -> MultiDigits:
    return MultiDigits("test", size=48, seed=0)


def loader(data: MultiDigits, batch_size: int = 32, shuffle: bool = True) -> TensorLoader:
    return TensorLoader(data, batch_size, shuffle=shuffle, seed=0)



def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


class Spy(nn.Module):
    """Wraps a model: records the mode of each forward call, and can turn one task's output into
    NaN from the ``nan_from``-th training call on (0-based), keeping the weights it saw then."""

    def __init__(self, model: nn.Module, nan_task: str | None = None, nan_from: int = 0):
        super().__init__()
        self.model = model
        self.modes: list[bool] = []
        self.nan_task, self.nan_from = nan_task, nan_from
        self.train_calls = 0
        self.state_at_nan: dict[str, torch.Tensor] | None = None

    @property
    def tasks(self) -> tuple[str, ...]:
        return self.model.tasks

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        self.modes.append(self.training)
        out = self.model(x)
        if self.training:
            if self.nan_task is not None and self.train_calls == self.nan_from:
                self.state_at_nan = clone_state(self.model)
                out[self.nan_task] = out[self.nan_task] * math.nan
            self.train_calls += 1
        return out


# ---- one joint update -----------------------------------------------------------------------


def test_joint_step_is_one_sgd_step_on_the_weighted_sum(tasks, train_data) -> None:
    model = make_model(tasks, seed=0)
    reference = copy.deepcopy(model)
    batch = train_data.batch(torch.arange(8))
    weights = {"left": 0.5, "right": 2.0, "mask": 0.25}
    calls = []
    model.backbone.register_forward_hook(lambda *args: calls.append(1))

    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    stats = Joint().step(model, batch, MultiTaskLoss(tasks, weights), opt, step=0)

    out = reference(batch["image"])
    per_task = {t: F.cross_entropy(out[t], batch[t]) for t in tasks}
    sum(weights[t] * per_task[t] for t in tasks).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        assert torch.allclose(p, q - 0.1 * q.grad, rtol=0, atol=1e-6), name
    assert len(calls) == 1  # one forward pass through the shared backbone
    assert (stats.forward, stats.backward, stats.images) == (1, 1, 8)
    assert stats.losses == pytest.approx({t: v.item() for t, v in per_task.items()})


def test_make_strategy() -> None:
    assert isinstance(make_strategy("joint"), Joint)
    mine = Joint()
    assert make_strategy(mine) is mine
    with pytest.raises(ValueError, match=r"'strategy' is 'alternate', expected one of"):
        make_strategy("alternate")
    with pytest.raises(NotImplementedError):
        Strategy().step(None, {}, None, None, 0)


# ---- training -------------------------------------------------------------------------------


def test_loss_goes_down_on_a_tiny_set(tasks) -> None:
    data = MultiDigits("train", size=64, seed=0)
    model = make_model(tasks, seed=0)
    fixed = loader(data, shuffle=False)
    before = evaluate(model, fixed, tasks)
    train(model, tasks, loader(data), epochs=3, lr=3e-3, schedule=None, progress=False)
    after = evaluate(model, fixed, tasks)
    for t in tasks:
        assert after[t]["loss"] < 0.99 * before[t]["loss"], t


def test_history_counts_the_work(tasks, train_data, test_data) -> None:
    model = make_model(tasks, seed=0)
    train_iter, test_iter = loader(train_data), loader(test_data, 48, shuffle=False)
    history = train(model, tasks, train_iter, test_iter, epochs=2, progress=False)
    steps = 2 * len(train_iter)
    assert (history.steps, history.epochs) == (steps, 2)
    assert history.images == 2 * len(train_data)  # the short last batch counted as it is
    assert history.forward == history.backward == steps
    assert all(len(history.train_loss[t]) == steps for t in tasks)
    assert [e["steps"] for e in history.evals] == [len(train_iter), steps]  # one per epoch
    assert [e["epochs"] for e in history.evals] == [1, 2]
    assert 0 < history.evals[0]["seconds"] <= history.evals[1]["seconds"] == history.seconds
    final = history.final()
    assert final is history.evals[-1]["test"]
    assert set(final) == set(tasks)
    assert set(final["left"]) == {"loss", "accuracy"}
    assert set(final["mask"]) == {"loss", "miou", "pixel_accuracy"}
    assert all(0 <= final["mask"][m] <= 1 for m in ("miou", "pixel_accuracy"))
    xs, ys = history.curve("mask", "miou", x="images")
    assert xs == [len(train_data), 2 * len(train_data)] and ys[-1] == final["mask"]["miou"]
    with pytest.raises(KeyError, match="task 'sum' is not one of this run's tasks"):
        history.curve("sum", "accuracy")
    again = History.from_dict(json.loads(json.dumps(history.to_dict())))
    assert again == history  # plain values only


@pytest.mark.parametrize("eval_every", [1, 2, 4])
def test_eval_every_adds_evaluations_without_duplicates(tasks, train_data, eval_every) -> None:
    small_test = MultiDigits("test", size=8, seed=0)
    model = make_model(tasks, seed=0)
    train_iter = loader(train_data)
    history = train(model, tasks, train_iter, loader(small_test), epochs=2, eval_every=eval_every,
                    progress=False)
    steps, per_epoch = history.steps, len(train_iter)
    expected = set(range(eval_every, steps + 1, eval_every)) | {per_epoch, 2 * per_epoch}
    assert [e["steps"] for e in history.evals] == sorted(expected)


def test_without_a_test_loader_nothing_is_evaluated(tasks, train_data) -> None:
    history = train(make_model(tasks, seed=0), tasks, loader(train_data), epochs=1,
                    eval_every=1, progress=False)
    assert history.evals == []
    with pytest.raises(ValueError, match="this history has no evaluation"):
        history.final()


def test_seconds_include_fetching_the_batches(tasks, train_data) -> None:
    class SlowLoader:
        def __init__(self, inner: TensorLoader, delay: float) -> None:
            self.inner, self.delay = inner, delay

        def __len__(self) -> int:
            return len(self.inner)

        def __iter__(self):
            for batch in self.inner:
                time.sleep(self.delay)
                yield batch

    slow = SlowLoader(loader(train_data), 0.05)
    history = train(make_model(tasks, seed=0), tasks, slow, epochs=1, progress=False)
    assert history.seconds >= 0.05 * len(slow)


def test_a_zero_weight_leaves_its_head_untouched(tasks, train_data) -> None:
    model = make_model(tasks, seed=0)
    before = clone_state(model)
    history = train(model, tasks, loader(train_data), epochs=1, progress=False,
                    weights={"left": 1, "right": 1, "mask": 0})
    after = model.state_dict()
    for k in before:
        assert torch.equal(before[k], after[k]) == k.startswith("heads.mask."), k
    assert len(history.train_loss["mask"]) == history.steps  # still measured


def test_single_task_training(tasks, train_data) -> None:
    left = select_tasks(tasks, ["left"])
    model = make_model(left, seed=0)
    history = train(model, left, loader(train_data), loader(train_data), epochs=1,
                    progress=False)
    assert history.tasks == ["left"] and set(history.final()) == {"left"}


# ---- evaluation -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", [True, False])
def test_evaluate_uses_eval_mode_restores_the_mode_and_matches_hand_metrics(
    tasks, test_data, mode
) -> None:
    spy = Spy(make_model(tasks, seed=0))
    spy.train(mode)
    got = evaluate(spy, loader(test_data, 32, shuffle=False), tasks)  # batches of 32 and 16
    assert spy.modes == [False, False]
    assert spy.training is mode and spy.model.training is mode

    with torch.no_grad():
        out = spy.model(test_data.batch(torch.arange(len(test_data)))["image"])
    for t in ("left", "right"):
        labels = getattr(test_data, t)
        assert got[t]["accuracy"] == pytest.approx((out[t].argmax(1) == labels).float().mean())
        assert got[t]["loss"] == pytest.approx(F.cross_entropy(out[t], labels).item(), rel=1e-5)
    masks = test_data.masks.long()
    pred = out["mask"].argmax(1)
    assert got["mask"]["pixel_accuracy"] == pytest.approx((pred == masks).float().mean())
    ious = [((pred == c) & (masks == c)).sum() / ((pred == c) | (masks == c)).sum()
            for c in range(3) if ((pred == c) | (masks == c)).any()]
    assert got["mask"]["miou"] == pytest.approx(torch.stack(ious).mean().item())


def test_training_calls_the_model_in_train_mode_and_evaluates_in_eval_mode(
    tasks, train_data
) -> None:
    spy = Spy(make_model(tasks, seed=0))
    spy.eval()
    train(spy, tasks, loader(train_data), loader(MultiDigits("test", size=8)), epochs=1,
          progress=False)
    assert spy.modes == [True, True, True, False]  # three training batches, one evaluation


# ---- the augment hook -----------------------------------------------------------------------


def test_augment_sees_every_training_batch_and_no_test_batch(tasks) -> None:
    train_data = MultiDigits("train", size=64, seed=0)
    seen: list[int] = []

    def augment(batch):
        seen.append(len(batch["image"]))
        return batch

    history = train(make_model(tasks, seed=0), tasks, loader(train_data),
                    loader(MultiDigits("test", size=24), 24), epochs=2, augment=augment,
                    progress=False)
    assert seen == [32, 32, 32, 32]  # a test batch (of 24) would show
    assert history.images == sum(seen)


def test_the_augmented_batch_is_the_one_trained_on(tasks, train_data) -> None:
    def corrupt(batch):
        return {**batch, "left": batch["left"] + 10}

    model = make_model(tasks, seed=0)
    before = clone_state(model)
    with pytest.raises(ValueError, match=r"task 'left': labels range over \[1\d, 19\]"):
        train(model, tasks, loader(train_data), epochs=1, augment=corrupt, progress=False)
    assert equal_states(before, model.state_dict())


# ---- NaN and infinite losses ----------------------------------------------------------------


def test_nan_loss_stops_before_the_update_naming_task_and_step(tasks, train_data) -> None:
    spy = Spy(make_model(tasks, seed=0), nan_task="right", nan_from=4)  # second epoch
    initial = clone_state(spy.model)
    with pytest.raises(NonFiniteLossError, match=r"the loss of task 'right' is nan at step 4"):
        train(spy, tasks, loader(train_data), epochs=2, progress=False)
    assert spy.state_at_nan is not None
    assert not equal_states(initial, spy.state_at_nan)  # the four steps before did update
    assert equal_states(spy.state_at_nan, spy.model.state_dict())  # this one did not


def test_check_finite_names_the_first_bad_task_and_the_step() -> None:
    good = {"a": torch.tensor(1.5), "b": torch.tensor(2.0, dtype=torch.float16)}
    assert check_finite(good, 0) == {"a": 1.5, "b": 2.0}
    bad = {"a": torch.tensor(1.0), "b": torch.tensor(math.inf), "c": torch.tensor(math.nan)}
    with pytest.raises(NonFiniteLossError, match=r"task 'b' is inf at step 7"):
        check_finite(bad, 7)
    assert issubclass(NonFiniteLossError, RuntimeError)


# ---- bad input ------------------------------------------------------------------------------


def test_model_heads_must_match_the_tasks(tasks, train_data) -> None:
    two = make_model(select_tasks(tasks, ["left", "right"]), seed=0)
    with pytest.raises(ValueError, match=r"the model has heads for \('left', 'right'\), but "
                                         r"'tasks' names \('left', 'right', 'mask'\)"):
        train(two, tasks, loader(train_data), epochs=1, progress=False)


def test_a_head_of_the_wrong_size_is_named(tasks, train_data) -> None:
    model = make_model(tasks, seed=0)
    five = {**tasks, "left": Task("left", CLASSIFICATION, 5)}
    before = clone_state(model)
    with pytest.raises(ValueError, match=r"task 'left': the output has shape \(32, 10\), "
                                         r"expected B x C with C = 5"):
        train(model, five, loader(train_data), epochs=1, progress=False)
    assert equal_states(before, model.state_dict())


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"epochs": 0}, r"argument 'epochs' is 0, expected a positive integer"),
        ({"epochs": 1.5}, r"argument 'epochs' is 1.5"),
        ({"epochs": True}, r"argument 'epochs' is True"),
        ({"eval_every": 0}, r"argument 'eval_every' is 0, expected a positive integer"),
        ({"eval_every": 2.5}, r"argument 'eval_every' is 2.5"),
        ({"eval_every": True}, r"argument 'eval_every' is True"),
        ({"strategy": "alternate"}, r"argument 'strategy' is 'alternate'"),
        ({"schedule": "cosine"}, r"argument 'schedule' is 'cosine', expected 'onecycle'"),
        ({"resume": True}, r"argument 'resume' is True, but no 'checkpoint' file was given"),
        ({"weights": {"left": 1}}, r"argument 'weights' names tasks \['left'\]"),
    ],
)
def test_bad_arguments(tasks, train_data, kwargs, pattern) -> None:
    model = make_model(tasks, seed=0)
    before = clone_state(model)
    args = {"epochs": 1, "progress": False, **kwargs}
    with pytest.raises(ValueError, match=pattern):
        train(model, tasks, loader(train_data), **args)
    assert equal_states(before, model.state_dict())


@pytest.mark.parametrize("train_iter", [[], iter([{"image": torch.zeros(1, 3, 28, 28)}])])
def test_a_loader_without_batches_or_len(tasks, train_iter) -> None:
    with pytest.raises(ValueError, match=r"argument 'train_iter' \(\w+\) has no batches or no "
                                         r"len\(\)"):
        train(make_model(tasks, seed=0), tasks, train_iter, epochs=1, progress=False)


def test_the_progress_bar_is_closed_when_training_fails(tasks, train_data, monkeypatch) -> None:
    bars = []

    class FakeBar:
        def __init__(self, **kwargs) -> None:
            self.kwargs, self.updates, self.closed = kwargs, 0, False
            bars.append(self)

        def update(self, n: int) -> None:
            self.updates += n

        def set_postfix(self, **kwargs) -> None:
            pass

        def close(self) -> None:
            self.closed = True

    def stop(history: History) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "tqdm", FakeBar)
    with pytest.raises(KeyboardInterrupt):
        train(make_model(tasks, seed=0), tasks, loader(train_data), epochs=2, on_epoch_end=stop)
    (bar,) = bars
    assert bar.closed and bar.updates == 3
    assert bar.kwargs["total"] == 6 and bar.kwargs["disable"] is False


# ---- the benchmark still runs ---------------------------------------------------------------


def test_bench_train_runs_and_compares_equal_work(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_train", BENCH / "bench_train.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "train.json"
    result = bench.main(["--size", "48", "--batch-size", "16", "--rounds", "1", "--out",
                         str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    assert result["same_final_weights"] is True  # the library did the bare loop's arithmetic
    assert set(result["images_per_s (median)"]) == {"bare", "library", "library_tqdm"}
    assert all(v > 0 for v in result["images_per_s (median)"].values())
    assert result["machine"]["torch"] == torch.__version__
