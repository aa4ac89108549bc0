"""Update strategies (joint, alternating, sequential): what each does specifically, per-task
optimizers, gradient conflict, and a smoke test of the strategies benchmark.

The standard tests of every strategy (work reported, resuming, non-finite losses) are the
contract tests in ``test_contract_training.py``. Tiny data (tens of samples, batches of 16) and
the two digit tasks keep this file fast on 2 cores. Hand-written loops are the reference
wherever a strategy claims to do some arithmetic.
"""

from __future__ import annotations

import copy
import importlib
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from state_checks import equal_states
from torch import nn

from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import FeatureExtractor, make_model
from mtlaug_lib.core.tasks import CLASSIFICATION, Task, select_tasks
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits
from mtlaug_lib.training.conflict import (
    cosine_matrix,
    gradient_conflict,
    pairwise_cosines,
    task_gradients,
)
from mtlaug_lib.training.loop import History, train
from mtlaug_lib.training.optimizers import TaskOptimizers, make_optimizers
from mtlaug_lib.training.registry import make_strategy
from mtlaug_lib.training.strategies import Alternating, Joint, Sequential

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
train_module = importlib.import_module("mtlaug_lib.training.loop")


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=48, seed=0)  # 3 batches of 16: an odd number per epoch


@pytest.fixture(scope="module")
def batch(data) -> dict[str, torch.Tensor]:
    return data.batch(torch.arange(8))


def loader(data: MultiDigits) -> TensorLoader:
    return TensorLoader(data, 16, shuffle=True, seed=3)


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}



def sgd(model: nn.Module) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=0.1)


# ---- the work each strategy counts ----------------------------------------------------------


@pytest.mark.parametrize(
    ("strategy", "forward", "heads_run"),
    [(Joint(), 1, ["left", "right"]), (Alternating(), 1, ["left"]),
     (Sequential(), 2, ["left", "right"])],
)
def test_each_strategy_does_the_work_it_declares(digit_tasks, batch, strategy, forward, heads_run):
    """The numbers of each strategy's docstring (the contract tests check what a step reports
    against hooks): passes and images, and which heads run (alternating skips the other)."""
    model = make_model(digit_tasks, seed=0)
    ran = []
    for name in digit_tasks:
        model.heads[name].register_forward_hook(lambda m, i, o, name=name: ran.append(name))
    stats = strategy.step(model, batch, MultiTaskLoss(digit_tasks), sgd(model), step=0)
    assert (stats.forward, stats.backward, stats.images) == (forward, forward, 8 * forward)
    assert ran == heads_run  # each head of a trained task once, in the tasks' order
    assert stats.seen == {t: 8 for t in heads_run}
    assert set(stats.losses) == set(heads_run)


def test_history_counts_the_work_of_every_strategy(digit_tasks, data) -> None:
    for name, fwd, seen in [("joint", 1, (48, 48)), ("alternating", 1, (32, 16)),
                            ("sequential", 2, (48, 48))]:
        h = train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=1,
                  strategy=name, progress=False)
        assert (h.steps, h.forward, h.backward, h.images) == (3, 3 * fwd, 3 * fwd, 48 * fwd)
        assert (h.task_images["left"], h.task_images["right"]) == seen, name
        assert sum(map(len, h.train_loss.values())) == sum(map(len, h.loss_steps.values()))


# ---- alternating ----------------------------------------------------------------------------


def test_round_robin_visits_the_tasks_in_order(digit_tasks, data) -> None:
    h = train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=2,
              strategy="alternating", progress=False)
    assert h.loss_curve("left")[0] == [0, 2, 4] and h.loss_curve("right")[0] == [1, 3, 5]
    steps, losses = h.loss_curve("left")
    assert losses == h.train_loss["left"]

    custom = Alternating(["right", "left", "left"])
    model = make_model(digit_tasks, seed=0)
    order = [next(iter(custom.step(model, batch, MultiTaskLoss(digit_tasks), sgd(model), i).losses))
             for i, batch in enumerate([data.batch(torch.arange(4))] * 7)]
    assert order == ["right", "left", "left", "right", "left", "left", "right"]
    assert custom.last_task == "right"


def test_random_alternating_is_seeded_and_reproducible() -> None:
    def draws(strategy: Alternating, n: int = 60) -> list[str]:
        return [strategy.next_task(["a", "b", "c"]) for _ in range(n)]

    first = draws(Alternating(random=True, seed=7))
    assert first == draws(Alternating(random=True, seed=7))
    assert first != draws(Alternating(random=True, seed=8))
    assert set(first) == {"a", "b", "c"} and first != draws(Alternating(), 60)
    # Its generator is checkpointed: a restored copy goes on with the same draws.
    a = Alternating(random=True, seed=7)
    draws(a, 5)
    b = Alternating(random=True, seed=7)
    b.load_state_dict(a.state_dict())
    assert draws(a, 20) == draws(b, 20) and a.position == b.position == 25


def test_an_alternating_step_is_one_sgd_step_on_the_weighted_task_loss(digit_tasks, batch) -> None:
    model = make_model(digit_tasks, seed=0)
    reference = copy.deepcopy(model)
    loss_fn = MultiTaskLoss(digit_tasks, {"left": 0.5, "right": 3.0})
    strategy = Alternating(["right"])

    stats = strategy.step(model, batch, loss_fn, sgd(model), step=0)
    loss = F.cross_entropy(reference(batch["image"])["right"], batch["right"])
    (3.0 * loss).backward()
    for (name, p), q in zip(model.named_parameters(), reference.parameters(), strict=True):
        expected = q if q.grad is None else q - 0.1 * q.grad
        assert torch.allclose(p, expected, rtol=0, atol=1e-6), name
    assert not torch.equal(model.backbone.conv1.weight, reference.backbone.conv1.weight)
    assert stats.losses == pytest.approx({"right": loss.item()})  # reported unweighted


def test_alternating_with_one_adam_leaves_the_other_head_alone(digit_tasks, data) -> None:
    """The other head keeps grad None, so Adam skips it; zeroed grads would let momentum move
    it on the steps of the other task."""
    model = make_model(digit_tasks, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    strategy, loss_fn = Alternating(), MultiTaskLoss(digit_tasks)
    batches = [data.batch(torch.arange(i * 16, (i + 1) * 16)) for i in range(3)]
    strategy.step(model, batches[0], loss_fn, opt, 0)  # left
    strategy.step(model, batches[1], loss_fn, opt, 1)  # right: its head gets momentum
    right = clone_state(model.heads["right"])
    strategy.step(model, batches[2], loss_fn, opt, 2)  # left again
    assert equal_states(right, model.heads["right"].state_dict())


def test_a_zero_weight_task_is_left_out_of_the_default_schedule(digit_tasks, data) -> None:
    model = make_model(digit_tasks, seed=0)
    before = clone_state(model.heads["right"])
    h = train(model, digit_tasks, loader(data), epochs=1, strategy="alternating", progress=False,
              weights={"left": 1.0, "right": 0.0})
    assert h.loss_steps == {"left": [0, 1, 2], "right": []}
    assert equal_states(before, model.heads["right"].state_dict())


# ---- sequential: the article's loop done right ----------------------------------------------


def test_sequential_is_one_update_per_task_in_turn(digit_tasks, batch) -> None:
    model = make_model(digit_tasks, seed=0)
    by_hand = copy.deepcopy(model)
    joint = copy.deepcopy(model)
    stats = Sequential().step(model, batch, MultiTaskLoss(digit_tasks), sgd(model), step=0)

    opt = sgd(by_hand)
    losses = {}
    for name in ["left", "right"]:  # a fresh forward pass for each task, after the last update
        loss = F.cross_entropy(by_hand(batch["image"])[name], batch[name])
        losses[name] = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert equal_states(model.state_dict(), by_hand.state_dict())
    assert stats.losses == pytest.approx(losses)
    Joint().step(joint, batch, MultiTaskLoss(digit_tasks), sgd(joint), step=0)
    assert not equal_states(model.state_dict(), joint.state_dict())  # not the same as joint


def test_sequential_follows_its_schedule(digit_tasks, batch) -> None:
    a, b = make_model(digit_tasks, seed=0), make_model(digit_tasks, seed=0)
    Sequential(["right", "left"]).step(a, batch, MultiTaskLoss(digit_tasks), sgd(a), 0)
    Sequential().step(b, batch, MultiTaskLoss(digit_tasks), sgd(b), 0)
    assert not equal_states(a.state_dict(), b.state_dict())  # the order matters


# ---- one optimizer or one per task ----------------------------------------------------------


def test_per_task_optimizers_keep_separate_adam_moments(digit_tasks, data) -> None:
    batches = [data.batch(torch.arange(i * 16, (i + 1) * 16)) for i in range(2)]
    shared_w = "backbone.conv1.weight"

    model = make_model(digit_tasks, seed=0)
    opts = make_optimizers(model, list(digit_tasks), "per_task", lr=1e-3)
    assert isinstance(opts, TaskOptimizers) and list(opts) == ["left", "right"]
    strategy = Alternating(optimizers="per_task")
    for i, b in enumerate(batches):
        strategy.step(model, b, MultiTaskLoss(digit_tasks), opts, i)
    w = dict(model.named_parameters())[shared_w]
    left, right = opts["left"].state[w], opts["right"].state[w]
    assert float(left["step"]) == float(right["step"]) == 1  # each saw its own task's step
    assert not torch.equal(left["exp_avg"], right["exp_avg"])
    heads = {t: set(map(id, model.task_parameters(t))) for t in digit_tasks}
    assert {id(p) for p in opts["left"].state} & heads["right"] == set()

    model = make_model(digit_tasks, seed=0)  # sequential: each task's optimizer steps once a batch
    opts = make_optimizers(model, list(digit_tasks), "per_task", lr=1e-3)
    Sequential(optimizers="per_task").step(model, batches[0], MultiTaskLoss(digit_tasks), opts, 0)
    w = dict(model.named_parameters())[shared_w]
    assert [float(o.state[w]["step"]) for o in opts.values()] == [1, 1]
    assert not torch.equal(opts["left"].state[w]["exp_avg"], opts["right"].state[w]["exp_avg"])

    model = make_model(digit_tasks, seed=0)
    one = make_optimizers(model, list(digit_tasks), "shared", lr=1e-3)
    assert isinstance(one, torch.optim.Adam)
    for i, b in enumerate(batches):
        Alternating().step(model, b, MultiTaskLoss(digit_tasks), one, i)
    w = dict(model.named_parameters())[shared_w]
    assert float(one.state[w]["step"]) == 2  # one moment estimate, fed by both tasks


def test_per_task_optimizers_in_train_are_checkpointed(digit_tasks, data, tmp_path) -> None:
    path = tmp_path / "run.pt"
    train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=1, progress=False,
          strategy=Alternating(optimizers="per_task"), checkpoint=path)
    state = torch.load(path, weights_only=True)
    assert set(state["optimizer"]) == set(state["scheduler"]) == {"left", "right"}
    assert state["extra"]["strategy"] == {"strategy": "alternating", "schedule": None,
                                          "position": 3}


def test_optimizer_factories_and_dicts(digit_tasks) -> None:
    model = make_model(digit_tasks, seed=0)
    made = make_optimizers(model, list(digit_tasks), "per_task",
                           lambda params: torch.optim.SGD(params, lr=0.5))
    assert all(isinstance(o, torch.optim.SGD) for o in made.values())
    shared = set(map(id, model.shared_parameters()))
    for t, o in made.items():
        ids = {id(p) for g in o.param_groups for p in g["params"]}
        assert ids == shared | set(map(id, model.task_parameters(t)))
    given = {t: torch.optim.SGD(model.parameters(), lr=0.1) for t in digit_tasks}
    assert dict(make_optimizers(model, list(digit_tasks), "per_task", given)) == given
    one = torch.optim.SGD(model.parameters(), lr=0.1)
    assert make_optimizers(model, list(digit_tasks), "shared", one) is one


# ---- resuming -------------------------------------------------------------------------------


class Stop(Exception):
    pass


def stop_after_one_epoch(history: History) -> None:
    if history.epochs == 1:
        raise Stop


@pytest.mark.parametrize("options", [{"optimizers": "per_task"}, {"random": True, "seed": 4}])
def test_resuming_alternating_ends_with_the_weights_of_an_uninterrupted_run(
    digit_tasks, data, tmp_path, options
) -> None:
    def run(**kwargs):
        model = make_model(digit_tasks, seed=0)
        history = train(model, digit_tasks, loader(data), epochs=2, lr=3e-3, progress=False,
                        strategy=Alternating(**options), conflict_every=2, **kwargs)
        return model, history

    full_model, full = run(checkpoint=tmp_path / "full.pt")
    with pytest.raises(Stop):
        run(checkpoint=tmp_path / "part.pt", on_epoch_end=stop_after_one_epoch)
    model, resumed = run(checkpoint=tmp_path / "part.pt", resume=True)

    assert equal_states(model.state_dict(), full_model.state_dict())
    timeless = {"seconds": 0.0, "conflict_seconds": 0.0}
    # Same tasks at the same steps, same losses, same conflict records; times aside.
    assert {**resumed.to_dict(), **timeless} == {**full.to_dict(), **timeless}
    assert len(full.conflict) == 3
    if "random" not in options:  # 3 batches an epoch: epoch 2 starts with the right task
        assert 3 in full.loss_steps["right"]
    a = torch.load(tmp_path / "full.pt", weights_only=True)
    b = torch.load(tmp_path / "part.pt", weights_only=True)
    assert equal_states(a["optimizer"], b["optimizer"]) and equal_states(a["extra"], b["extra"])


class Forgetful(Alternating):
    """An alternating strategy that loses its position on resuming."""

    def load_state_dict(self, state) -> None:
        pass


def test_a_forgotten_round_robin_position_would_differ(digit_tasks, data, tmp_path) -> None:
    """The control for the test above: equality is not automatic. Resumed without its
    position, the round robin starts again with the left task on step 3, and ends elsewhere."""
    def run(strategy, checkpoint=tmp_path / "part.pt", **kwargs):
        model = make_model(digit_tasks, seed=0)
        history = train(model, digit_tasks, loader(data), epochs=2, progress=False,
                        strategy=strategy, checkpoint=checkpoint, **kwargs)
        return model, history

    full_model, full = run(Alternating(), checkpoint=tmp_path / "full.pt")
    with pytest.raises(Stop):
        run(Alternating(), on_epoch_end=stop_after_one_epoch)
    model, resumed = run(Forgetful(), resume=True)
    assert full.loss_steps["left"] == [0, 2, 4] and resumed.loss_steps["left"] == [0, 2, 3, 5]
    assert not equal_states(model.state_dict(), full_model.state_dict())


def test_resume_refuses_another_strategys_checkpoint(digit_tasks, data, tmp_path) -> None:
    def run(strategy, path):
        train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=2, progress=False,
              strategy=strategy, checkpoint=path, resume=path.is_file(),
              on_epoch_end=stop_after_one_epoch)

    per_task, joint = tmp_path / "per_task.pt", tmp_path / "joint.pt"
    with pytest.raises(Stop):
        run(Alternating(optimizers="per_task"), per_task)
    with pytest.raises(Stop):
        run("joint", joint)
    with pytest.raises(ValueError, match=r"holds per-task optimizer states \(\['left', "
                                         r"'right'\]\), but this run uses one shared optimizer"):
        run("alternating", per_task)
    with pytest.raises(ValueError, match=r"expected one optimizer state per task \['left', "
                                         r"'right'\] \(was it saved by a run with "
                                         r"optimizers='shared'"):
        run(Sequential(optimizers="per_task"), joint)
    with pytest.raises(ValueError, match=r"strategy state is \{\}, expected the state of "
                                         r"'alternating'"):
        run("alternating", joint)


# ---- gradient conflict ----------------------------------------------------------------------


def twin_tasks(opposite: bool) -> tuple[nn.Module, dict[str, Task], dict[str, torch.Tensor]]:
    """Two 2-class tasks with identical heads on one image: same labels give the same gradient;
    swapped labels give gradients of opposite sign (the logits' gradient is p - onehot(y), so
    (p0, -p0) for y = 1 against (-p1, p1) for y = 0)."""
    twins = {n: Task(n, CLASSIFICATION, 2) for n in ("a", "b")}
    model = make_model(twins, seed=0)
    model.heads["b"].load_state_dict(model.heads["a"].state_dict())
    image = MultiDigits("train", size=1, seed=0).batch(torch.arange(1))["image"]
    labels = {"a": torch.tensor([1]), "b": torch.tensor([0 if opposite else 1])}
    return model, twins, {"image": image, **labels}


@pytest.mark.parametrize(("opposite", "cosine"), [(False, 1.0), (True, -1.0)])
def test_cosine_of_identical_and_opposite_tasks(opposite, cosine) -> None:
    model, twins, batch = twin_tasks(opposite)
    grads = task_gradients(model, batch, twins)
    n_shared = sum(p.numel() for p in model.backbone.parameters())
    assert [g.shape for g in grads.values()] == [(n_shared,), (n_shared,)]
    assert grads["a"].abs().sum() > 0
    assert pairwise_cosines(grads) == {"a|b": pytest.approx(cosine, abs=1e-5)}
    assert all(p.grad is None for p in model.parameters())  # .grad untouched


def test_cosine_matrix_properties() -> None:
    g = {"x": torch.tensor([1.0, 0.0, 0.0]), "y": torch.tensor([0.0, 2.0, 0.0]),
         "z": torch.tensor([-3.0, 0.0, 0.0]), "zero": torch.zeros(3)}
    m = cosine_matrix(g)
    assert m.shape == (4, 4) and m.dtype == torch.float64
    assert torch.equal(m[:3, :3], torch.tensor([[1.0, 0, -1], [0, 1, 0], [-1, 0, 1]],
                                               dtype=torch.float64))
    assert m[3].isnan().all() and m[:, 3].isnan().all()  # a zero gradient has no direction
    r = torch.randn(5, 50, generator=torch.Generator().manual_seed(0))
    rand = {str(i): r[i] for i in range(5)}
    scaled = {k: (i + 1) * 0.5 * v for i, (k, v) in enumerate(rand.items())}
    assert torch.allclose(cosine_matrix(rand), cosine_matrix(scaled))  # scale-invariant
    assert torch.allclose(cosine_matrix(rand), cosine_matrix(rand).T)
    with pytest.raises(ValueError, match=r"gradients of sizes \[3, 2\], expected one size"):
        cosine_matrix({"x": torch.zeros(3), "y": torch.zeros(2)})
    with pytest.raises(ValueError, match="argument 'grads' is empty"):
        cosine_matrix({})


def test_conflict_is_recorded_at_the_interval_as_plain_values(digit_tasks, data) -> None:
    h = train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=2,
              conflict_every=2, progress=False)
    assert [r["step"] for r in h.conflict] == [0, 2, 4]
    assert all(set(r) == {"step", "cosine", "norm"} and set(r["cosine"]) == {"left|right"}
               and -1 <= r["cosine"]["left|right"] <= 1 for r in h.conflict)
    assert h.conflict_curve("right", "left") == ([0, 2, 4], [r["cosine"]["left|right"]
                                                             for r in h.conflict])
    assert History.from_dict(json.loads(json.dumps(h.to_dict()))) == h
    assert h.conflict_seconds > 0
    # The first record is the conflict of the initial weights on the first batch.
    model = make_model(digit_tasks, seed=0)
    first = next(iter(TensorLoader(data, 16, shuffle=True, seed=3)))
    assert h.conflict[0]["cosine"] == pytest.approx(
        gradient_conflict(model, first, digit_tasks)["cosine"])


def bn_dropout_model(tasks: dict[str, Task]) -> nn.Module:
    """A backbone with batch norm (buffers) and dropout (random draws): what an extra forward
    pass could silently change."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        backbone = nn.Sequential(FeatureExtractor(), nn.BatchNorm2d(64), nn.Dropout(0.3))
    return make_model(tasks, backbone=backbone, seed=0)


def test_measuring_conflict_does_not_change_training(digit_tasks, data) -> None:
    runs = []
    for every in (None, 1):
        torch.manual_seed(0)  # the dropout masks come from the global generator
        model = bn_dropout_model(digit_tasks)
        history = train(model, digit_tasks, loader(data), epochs=1, conflict_every=every,
                        strategy="alternating", progress=False)
        runs.append((clone_state(model), history))
    assert equal_states(runs[0][0], runs[1][0])
    assert runs[0][1].train_loss == runs[1][1].train_loss and len(runs[1][1].conflict) == 3
    # The control: the bare gradients do move the batch-norm statistics and the random state.
    model = bn_dropout_model(digit_tasks)
    before, rng = clone_state(model), torch.random.get_rng_state()
    task_gradients(model.train(), data.batch(torch.arange(8)), digit_tasks)
    assert not equal_states(before, model.state_dict())
    assert not torch.equal(rng, torch.random.get_rng_state())


def test_conflict_time_is_not_step_time(digit_tasks, data, monkeypatch) -> None:
    """A fake clock that only a (fake) slow measurement moves much: the steps' seconds must not
    see it. (A real sleep would race with other jobs on a shared machine.)"""

    class Clock:
        now = 0.0

        @classmethod
        def perf_counter(cls) -> float:
            cls.now += 0.001
            return cls.now

    def slow(*args):
        Clock.now += 100.0
        return gradient_conflict(*args)

    monkeypatch.setattr(train_module, "time", Clock)
    monkeypatch.setattr(train_module, "gradient_conflict", slow)
    h = train(make_model(digit_tasks, seed=0), digit_tasks, loader(data), epochs=1,
              conflict_every=1, progress=False)
    assert len(h.conflict) == 3 and h.conflict_seconds == pytest.approx(300, abs=0.1)
    assert h.seconds < 0.1


# ---- history --------------------------------------------------------------------------------


def test_a_history_saved_before_the_new_fields_still_loads() -> None:
    old = {"tasks": ["left", "right"], "steps": 2, "epochs": 1, "images": 32, "forward": 2,
           "backward": 2, "seconds": 0.1, "train_loss": {"left": [2.3, 2.2], "right": [2.4, 2.1]},
           "evals": []}
    h = History.from_dict(old)
    assert h.loss_curve("left") == ([0, 1], [2.3, 2.2])
    assert h.task_images == {"left": 0, "right": 0} and h.conflict == []


# ---- bad input ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"strategy": "alternate"}, ValueError,
         r"argument 'strategy' is 'alternate', expected one of \("),
        ({"strategy": Alternating(["left", "top"])}, ValueError,
         r"argument 'schedule' names unknown task\(s\) \['top'\], expected names from "
         r"\('left', 'right'\)"),
        ({"strategy": Sequential(["up"])}, ValueError, r"unknown task\(s\) \['up'\]"),
        ({"strategy": Alternating(["left", "right"]), "weights": {"left": 1, "right": 0}},
         ValueError, r"names task\(s\) \['right'\] whose weight is 0"),
        ({"strategy": "alternating", "weights": {"left": 1}}, ValueError,
         r"argument 'weights' names tasks \['left'\], expected exactly \['left', 'right'\]"),
        ({"strategy": "sequential", "weights": {"left": 1, "right": 1, "mask": 1}}, ValueError,
         r"argument 'weights' names tasks \['left', 'mask', 'right'\]"),
        ({"strategy": "alternating", "weights": {"left": -1, "right": 1}}, ValueError,
         r"the weight of task 'left' is -1, expected a finite number >= 0"),
        ({"strategy": Alternating(optimizers="per_task"), "optimizer": "adam"}, TypeError,
         r"argument 'optimizer' is a str, expected None, an optimizer"),
        ({"conflict_every": 0}, ValueError,
         r"argument 'conflict_every' is 0, expected a positive integer"),
        ({"conflict_every": True}, ValueError, r"argument 'conflict_every' is True"),
    ],
)
def test_bad_arguments_are_named_and_change_nothing(digit_tasks, data, kwargs, error, pattern):
    model = make_model(digit_tasks, seed=0)
    before = clone_state(model)
    with pytest.raises(error, match=pattern):
        train(model, digit_tasks, loader(data), epochs=1, progress=False, **kwargs)
    assert equal_states(before, model.state_dict())


def test_bad_strategy_options(digit_tasks, data) -> None:
    model = make_model(digit_tasks, seed=0)
    with pytest.raises(ValueError, match=r"argument 'optimizers' is 'each', expected one of"):
        Alternating(optimizers="each")
    with pytest.raises(ValueError, match=r"argument 'schedule' is 'left', expected None or a "
                                         r"non-empty list of task names"):
        Alternating("left")
    with pytest.raises(ValueError, match=r"argument 'schedule' is \[\]"):
        Sequential([])
    with pytest.raises(ValueError, match=r"expected each task at most once"):
        Sequential(["left", "left"])
    with pytest.raises(ValueError, match=r"argument 'seed' is -1"):
        Alternating(random=True, seed=-1)
    with pytest.raises(ValueError, match=r"options \['optimizers'\] were given with a Strategy"):
        make_strategy(Joint(), optimizers="per_task")
    with pytest.raises(ValueError, match=r"strategy 'joint' takes no options"):
        make_strategy("joint", optimizers="per_task")
    assert make_strategy("alternating-random", seed=3).random
    assert make_strategy("sequential", optimizers="per_task").optimizers == "per_task"
    with pytest.raises(ValueError, match=r"argument 'optimizer' is one SGD instance, but the "
                                         r"strategy uses one optimizer per task"):
        train(model, digit_tasks, loader(data), epochs=1, progress=False, optimizer=sgd(model),
              strategy=Alternating(optimizers="per_task"))
    with pytest.raises(ValueError, match=r"argument 'optimizer' has optimizers for tasks "
                                         r"\['left'\], expected exactly \['left', 'right'\]"):
        train(model, digit_tasks, loader(data), epochs=1, progress=False,
              optimizer={"left": sgd(model)}, strategy=Sequential(optimizers="per_task"))
    with pytest.raises(ValueError, match=r"a dict of optimizers, but the strategy uses one "
                                         r"shared optimizer"):
        train(model, digit_tasks, loader(data), epochs=1, progress=False,
              optimizer={t: sgd(model) for t in digit_tasks})
    with pytest.raises(TypeError, match=r"Joint makes one update .* got per-task optimizers"):
        Joint().step(model, data.batch(torch.arange(4)), MultiTaskLoss(digit_tasks),
                     {t: sgd(model) for t in digit_tasks}, 0)
    left = select_tasks(digit_tasks, ["left"])
    with pytest.raises(ValueError, match=r"only one task \('left',\): gradient conflict needs"):
        train(make_model(left, seed=0), left, loader(data), epochs=1, conflict_every=1,
              progress=False)


# ---- the benchmark still runs ---------------------------------------------------------------


def test_bench_strategies_runs(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_strategies",
                                                  BENCH / "bench_strategies.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "strategies.json"
    result = bench.main(["--size", "32", "--batch-size", "16", "--rounds", "1", "--out",
                         str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    work = result["work_per_round"]
    assert work["alternating"]["task_images"] == {"left": 16, "right": 16}
    assert work["sequential"]["forward"] == 2 * work["joint"]["forward"] == 4
    assert set(result["cost_ratio_per_image_seen_by_every_task (median of per-round ratios)"]) \
        == {"alternating/joint", "sequential/joint"}
    assert result["machine"]["torch"] == torch.__version__
