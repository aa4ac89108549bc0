"""Contract tests of the training registries: every strategy and every weighting method.

The cases are read from ``STRATEGIES``, ``WEIGHTING_METHODS`` and ``GRADIENT_SOURCES``, so a
new entry gets these tests at once. An entry that cannot be built without options needs a line
in ``REQUIRED_OPTIONS`` (its test says so).

- Every strategy, on a tiny model (``tiny_model``) and batches of 4 images with two digit
  tasks: one step changes the parameters and reports the work it did; a resumed run equals an
  uninterrupted one; it runs in ``train`` by name; a non-finite loss stops it before any change.
- Every weighting method: the weights it reports are the ones it applies (``d = w @ G``, or
  the loss's gradient), and it does not depend on the tasks' order.
- Every gradient source: the task gradients it gives agree with ``conflict.task_gradients``.
"""

from __future__ import annotations

import io
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import pytest
import torch
from state_checks import conflicting_G, equal_states, random_G
from torch import nn

from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import MultiTaskModel
from mtlaug_lib.core.tasks import Task
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits
from mtlaug_lib.training.conflict import task_gradients
from mtlaug_lib.training.gradient_source import GRADIENT_SOURCES, make_gradient_source
from mtlaug_lib.training.loop import train
from mtlaug_lib.training.optimizers import make_optimizers
from mtlaug_lib.training.registry import make_strategy
from mtlaug_lib.training.strategies import STRATEGIES
from mtlaug_lib.training.strategy import NonFiniteLossError, StepStats, Strategy
from mtlaug_lib.training.weighting import (
    WEIGHTING_METHODS,
    WeightingMethod,
    gradient_methods,
    make_weighting_method,
)
from mtlaug_lib.training.weighting.weighted import DEFAULT_SOURCE

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny tensors: one thread is faster

# Options an entry cannot be built without, as a function of the run's task names. Options of
# a weighting method that are set per task are keyed by name, so that they follow the tasks
# when their order changes.
REQUIRED_OPTIONS: dict[str, Callable[[Sequence[str]], dict[str, Any]]] = {
    "fixed": lambda tasks: {"weights": {t: 1.0 + 0.5 * i for i, t in enumerate(sorted(tasks))}},
}

STRATEGY_NAMES = [*STRATEGIES, *(m for m in WEIGHTING_METHODS if m not in STRATEGIES)]
GRADIENT_METHODS = list(gradient_methods())
LOSS_METHODS = [m for m in WEIGHTING_METHODS if m not in GRADIENT_METHODS]
# Every strategy with its default options, and every gradient method with each other source.
CASES = [(name, None) for name in STRATEGY_NAMES] + [
    (name, source) for name in GRADIENT_METHODS for source in GRADIENT_SOURCES
    if source != DEFAULT_SOURCE]
CASE_IDS = [name if source is None else f"{name}@{source}" for name, source in CASES]


def options_for(name: str, tasks: Sequence[str]) -> dict[str, Any]:
    return REQUIRED_OPTIONS[name](tasks) if name in REQUIRED_OPTIONS else {}


def built(factory: Callable[..., Any], name: str, tasks: Sequence[str], **extra: Any) -> Any:
    """``factory(name, **required options, **extra)``, or a failure that says what to add."""
    try:
        return factory(name, **options_for(name, tasks), **extra)
    except (TypeError, ValueError) as err:
        problem = f"{type(err).__name__}: {err}"
    pytest.fail(
        f"registry entry {name!r} cannot be built with the options of REQUIRED_OPTIONS "
        f"({problem}); add the options it needs to REQUIRED_OPTIONS in "
        "tests/test_contract_training.py", pytrace=False)


def strategy_for(name: str, source: str | None, tasks: Sequence[str]) -> Strategy:
    return built(make_strategy, name, tasks, **({} if source is None else {"source": source}))


def prepared(
    name: str, source: str | None, tasks: dict[str, Task]
) -> tuple[Strategy, MultiTaskLoss, MultiTaskModel, Any]:
    """A strategy set up for ``tasks``, a fresh tiny model, and the optimizer(s) it asks for."""
    strategy = strategy_for(name, source, list(tasks))
    loss_fn = MultiTaskLoss(tasks)
    strategy.setup(loss_fn)
    model = tiny_model(tasks)
    return strategy, loss_fn, model, make_optimizers(model, list(tasks), strategy.optimizers, sgd)


def method_for(name: str, tasks: Sequence[str]) -> WeightingMethod:
    method = built(make_weighting_method, name, tasks)
    method.reset(list(tasks))
    return method


@pytest.fixture(scope="module")
def data() -> MultiDigits:
    return MultiDigits("train", size=20, seed=0)


@pytest.fixture(scope="module")
def batches(data) -> list[dict[str, torch.Tensor]]:
    return [data.batch(torch.arange(4 * i, 4 * i + 4)) for i in range(3)]  # 3 batches of 4


def tiny_model(tasks: dict[str, Task]) -> MultiTaskModel:
    """A ``MultiTaskModel`` five times cheaper to step than ``make_model``'s: one convolution
    (N x 3 x 28 x 28 -> N x 4 x 7 x 7 features) and a linear head per task, drawn from seed 0."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        backbone = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(4))
        heads = {name: nn.Sequential(nn.Flatten(), nn.Linear(4 * 7 * 7, task.num_classes))
                 for name, task in tasks.items()}
        return MultiTaskModel(backbone, heads)



def count_work(model: nn.Module) -> dict[str, int]:
    """Counters that hooks on ``model``'s backbone fill: forward passes and their images, and
    backward passes through the whole backbone (a gradient reaching its first layer's output)."""
    work = {"forward": 0, "images": 0, "backward": 0}

    def on_backbone(module, inputs, output) -> None:
        work["forward"] += 1
        work["images"] += len(inputs[0])

    def on_first_layer(module, inputs, output) -> None:
        if output.requires_grad:
            output.register_hook(lambda grad: work.__setitem__("backward", work["backward"] + 1))

    model.backbone.register_forward_hook(on_backbone)
    first = next(m for m in model.backbone.modules() if list(m.parameters(recurse=False)))
    first.register_forward_hook(on_first_layer)
    return work


def sgd(params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """SGD with momentum: an optimizer with state to resume, cheaper than Adam on tiny steps."""
    return torch.optim.SGD(params, lr=0.05, momentum=0.9)


def through_checkpoint(state: Any) -> Any:
    """``state`` saved and loaded back as a checkpoint is (``weights_only=True``)."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


# ---- the options table -----------------------------------------------------------------------


@pytest.mark.parametrize("name", [*STRATEGIES, *WEIGHTING_METHODS])
def test_every_registry_entry_builds_with_the_options_table(name: str) -> None:
    factory = make_strategy if name in STRATEGIES else make_weighting_method
    assert built(factory, name, ["left", "right"]) is not None


def test_the_options_table_names_registry_entries_only() -> None:
    stale = set(REQUIRED_OPTIONS) - set(STRATEGIES) - set(WEIGHTING_METHODS)
    assert not stale, f"REQUIRED_OPTIONS names entries no registry has: {sorted(stale)}"


@pytest.mark.parametrize(("make", "argument", "names"), [
    (make_strategy, "strategy", STRATEGY_NAMES),
    (make_weighting_method, "method", list(WEIGHTING_METHODS)),
    (make_gradient_source, "source", list(GRADIENT_SOURCES)),
])
def test_an_unknown_name_is_refused_naming_every_registered_one(make, argument, names) -> None:
    pattern = rf"argument '{argument}' is 'nope', expected one of"
    with pytest.raises(ValueError, match=pattern) as info:
        make("nope")
    missing = [n for n in names if repr(n) not in str(info.value)]
    assert not missing, f"the message does not name {missing}"


# ---- every strategy --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "source"), CASES, ids=CASE_IDS)
def test_one_step_changes_the_parameters_and_reports_its_work(
    name, source, digit_tasks, batches
) -> None:
    strategy, loss_fn, model, optimizer = prepared(name, source, digit_tasks)
    before = {k: v.detach().clone() for k, v in model.named_parameters()}
    work = count_work(model)
    stats = strategy.step(model, batches[0], loss_fn, optimizer, step=0)

    assert isinstance(stats, StepStats)
    assert (stats.forward, stats.backward, stats.images) == (
        work["forward"], work["backward"], work["images"])
    assert stats.forward >= 1 and stats.backward >= 1
    assert stats.losses and set(stats.losses) <= set(digit_tasks)
    assert all(math.isfinite(v) for v in stats.losses.values())
    assert set(stats.seen) == set(stats.losses)
    assert all(0 < n <= stats.images for n in stats.seen.values())
    if stats.weights is not None:  # one finite weight per task
        assert set(stats.weights) == set(digit_tasks)
        assert all(math.isfinite(w) for w in stats.weights.values())
    moved = {k for k, p in model.named_parameters() if not torch.equal(p, before[k])}
    expected = {k for k, _ in model.backbone.named_parameters(prefix="backbone")}
    for task in stats.losses:  # the backbone, and the head of every task the step trained
        expected |= {k for k, _ in model.heads[task].named_parameters(prefix=f"heads.{task}")}
    assert expected <= moved, sorted(expected - moved)


@pytest.mark.parametrize(("name", "source"), CASES, ids=CASE_IDS)
def test_resuming_from_the_state_dict_equals_an_uninterrupted_run(
    name, source, digit_tasks, batches
) -> None:
    """One step, the states of model, optimizer and strategy (the strategy's through a
    checkpoint), two more steps from fresh objects: the same weights as three steps in one go.
    A strategy that forgot its state would differ (alternating: the left task again on step 1).
    """

    def start() -> tuple[Strategy, nn.Module, Any]:
        strategy, _, model, optimizer = prepared(name, source, digit_tasks)
        return strategy, model, optimizer

    loss_fn = MultiTaskLoss(digit_tasks)

    def run(strategy, model, optimizer, first: int, last: int) -> None:
        for i in range(first, last):
            strategy.step(model, batches[i], loss_fn, optimizer, step=i)

    full = start()
    run(*full, 0, 3)
    part = start()
    run(*part, 0, 1)
    resumed = start()
    resumed[1].load_state_dict(part[1].state_dict())
    resumed[2].load_state_dict(part[2].state_dict())
    resumed[0].load_state_dict(through_checkpoint(part[0].state_dict()))  # weights_only-safe
    run(*resumed, 1, 3)
    assert equal_states(resumed[1].state_dict(), full[1].state_dict())
    assert equal_states(through_checkpoint(resumed[0].state_dict()),
                        through_checkpoint(full[0].state_dict()))


@pytest.mark.parametrize(("name", "source"), CASES, ids=CASE_IDS)
def test_the_strategy_runs_in_train_by_name(name, source, digit_tasks, data) -> None:
    tasks = list(digit_tasks)
    built_strategy = strategy_for(name, source, tasks)  # a clear failure if options are missing
    by_name = source is None and not options_for(name, tasks)
    strategy = name if by_name else built_strategy  # the name itself where it needs no options
    history = train(tiny_model(digit_tasks), digit_tasks, TensorLoader(data, 10),
                    epochs=1, strategy=strategy, progress=False)
    assert history.steps == 2 and history.forward >= 2 and history.backward >= 2
    assert sum(map(len, history.train_loss.values())) >= 2
    assert all(math.isfinite(v) for losses in history.train_loss.values() for v in losses)
    if name in WEIGHTING_METHODS:  # strategies that set the task weights record them
        assert [r["step"] for r in history.weights] == [0, 1]


@pytest.mark.parametrize(("name", "source"), CASES, ids=CASE_IDS)
def test_a_non_finite_loss_stops_the_step_before_any_change(
    name, source, digit_tasks, batches
) -> None:
    strategy, loss_fn, model, optimizer = prepared(name, source, digit_tasks)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    batch = {**batches[0], "image": batches[0]["image"].clone()}
    batch["image"][0] = math.nan  # every task's loss is NaN
    with pytest.raises(NonFiniteLossError, match=r"the loss of task '\w+' is nan at step 4"):
        strategy.step(model, batch, loss_fn, optimizer, step=4)
    assert equal_states(before, model.state_dict())


# ---- every weighting method ------------------------------------------------------------------



@pytest.mark.parametrize("name", GRADIENT_METHODS)
@pytest.mark.parametrize(("T", "D", "seed"), [(2, 5, 0), (3, 20, 1), (4, 8, 2)])
def test_a_gradient_method_direction_is_its_weights_times_G(name, T, D, seed) -> None:
    tasks = ["a", "b", "c", "d"][:T]
    method = method_for(name, tasks)
    G = conflicting_G(T, D, seed)
    for _ in range(2):  # the first step and one after (methods with state)
        comb = method.combine(torch.tensor([0.7, 2.0, 1.3, 0.4][:T]), G)
        method.update()
        assert comb.weights.shape == (T,) and torch.isfinite(comb.weights).all()
        assert comb.direction.shape == (D,)
        assert torch.allclose(comb.direction, comb.weights.to(G) @ G, rtol=0,
                              atol=1e-9 * float(G.abs().sum()))


@pytest.mark.parametrize("name", LOSS_METHODS)
def test_a_loss_method_applies_the_weights_it_reports(name) -> None:
    """The loss it returns has gradient ``weights`` with respect to the task losses."""
    tasks = ["a", "b", "c"]
    method = method_for(name, tasks)
    for _ in range(2):
        losses = torch.tensor([0.7, 2.0, 1.3], requires_grad=True)
        comb = method.combine(losses)
        assert comb.direction is None and comb.loss.shape == ()
        (grad,) = torch.autograd.grad(comb.loss, losses, retain_graph=True)
        assert torch.isfinite(comb.weights).all()
        assert torch.allclose(grad, comb.weights, rtol=1e-6, atol=0)
        comb.loss.backward()  # trains learnable weights, as Weighted does
        method.update()


def run_method(name: str, tasks: list[str], L: torch.Tensor, G: torch.Tensor, steps: int = 3):
    method, comb = method_for(name, tasks), None
    for _ in range(steps):
        comb = method.combine(L, G if method.uses_gradients else None)
        if comb.loss is not None and comb.loss.requires_grad:  # learnable weights
            comb.loss.backward()
        method.update()
    return comb


@pytest.mark.parametrize("name", list(WEIGHTING_METHODS))
def test_every_method_permutes_with_the_tasks(name: str) -> None:
    if name == "rlw":
        pytest.skip("random weights are i.i.d. per task: equivariant in distribution only")
    T = 2 if name == "pcgrad" else 3  # PCGrad's random order: deterministic for two tasks
    tasks = ["a", "b", "c"][:T]
    G, L = conflicting_G(T, 20, 3), torch.tensor([0.7, 2.0, 1.3][:T])
    for perm in itertools.permutations(range(T)):
        perm = list(perm)
        base = run_method(name, tasks, L.clone(), G)
        permuted = run_method(name, [tasks[i] for i in perm], L[perm].clone(), G[perm])
        assert torch.allclose(permuted.weights, base.weights[perm], atol=1e-6), perm
        if base.direction is not None:  # one direction, whatever the tasks' order
            assert torch.allclose(permuted.direction, base.direction, atol=1e-9)


@pytest.mark.parametrize("name", list(WEIGHTING_METHODS))
@pytest.mark.parametrize("kind", ["zero", "one-zero", "parallel", "opposite"])
def test_every_method_is_finite_on_zero_and_parallel_gradients(name: str, kind: str) -> None:
    g = random_G(1, 20, 0)[0]
    G = {"zero": torch.zeros(3, 20, dtype=g.dtype),
         "one-zero": torch.stack([g, 0 * g, 2 * g]),
         "parallel": torch.stack([g, 2 * g, 0.5 * g]),
         "opposite": torch.stack([g, -2 * g, 0.5 * g])}[kind]
    comb = run_method(name, ["a", "b", "c"], torch.tensor([1.0, 2.0, 0.5]), G)
    assert torch.isfinite(comb.weights).all()
    if comb.direction is not None:
        assert torch.isfinite(comb.direction).all()
        if kind == "zero":
            assert torch.equal(comb.direction, torch.zeros(20, dtype=G.dtype))


# ---- every gradient source -------------------------------------------------------------------


@pytest.mark.parametrize("source_name", list(GRADIENT_SOURCES))
def test_a_gradient_source_agrees_with_task_gradients(source_name, digit_tasks, batches) -> None:
    """One forward pass whose outputs are the model's; applying row t of the source's G puts
    task t's gradient on the shared parameters (``conflict.task_gradients``) into their
    ``.grad``; a step costs the backward passes the source declares; the heads' gradients are
    those of their own task's loss. For the parameter source, G is those gradients exactly."""
    tasks, batch = list(digit_tasks), batches[1]
    loss_fn = MultiTaskLoss(digit_tasks)
    model = tiny_model(digit_tasks)
    expected = task_gradients(model, batch, loss_fn)  # {task: P}
    source = make_gradient_source(source_name)
    heads = {t: model.task_parameters(t) for t in tasks}

    def one_pass():
        shared_pass = source.forward(model, batch["image"], tasks)
        losses = loss_fn.per_task(shared_pass.outputs, batch)
        return shared_pass, source.task_gradients(shared_pass, losses, heads)

    def shared_grad() -> torch.Tensor:
        return torch.cat([p.grad.reshape(-1) for p in model.shared_parameters()])

    with torch.no_grad():
        plain = model(batch["image"])
    work = count_work(model)
    shared_pass, grads = one_pass()
    source.apply(shared_pass, grads.matrix.sum(0))
    assert work["forward"] == 1 and work["backward"] == source.backward_passes(len(tasks))
    assert all(torch.equal(shared_pass.outputs[t], plain[t]) for t in tasks)
    assert grads.matrix.shape[0] == len(tasks) and all(p.grad is None for p in heads["left"])
    if source_name == "parameters":
        assert torch.equal(grads.matrix, torch.stack([expected[t] for t in tasks]))
    for i, t in enumerate(tasks):
        model.zero_grad(set_to_none=True)
        shared_pass, grads = one_pass()
        source.apply(shared_pass, grads.matrix[i])
        scale = float(expected[t].abs().max())
        assert torch.allclose(shared_grad(), expected[t], rtol=1e-4, atol=1e-6 * scale), t
    for i, t in enumerate(tasks):  # the heads' own gradients: those of their task's loss alone
        model.zero_grad(set_to_none=True)
        loss_fn.per_task(model(batch["image"]), batch)[t].backward()
        assert grads.heads[i] and all(torch.allclose(g, p.grad) for p, g in grads.heads[i])
