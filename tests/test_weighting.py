"""Weighting methods: mathematical properties on random gradient matrices (not fixed numbers),
what particular methods do in ``train`` with both gradient sources, bad input, and a smoke test
of the weighting benchmark.

The standard tests of every method (weights applied as reported, permutation, degenerate
gradients, a step, resuming, non-finite losses) are the contract tests in
``test_contract_training.py``. Gradient matrices come from seeded generators, in float64 so
that tolerances can be tight.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
import torch
from state_checks import conflicting_G, random_G
from torch import nn

from mtlaug_lib.core.losses import MultiTaskLoss
from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import select_tasks
from mtlaug_lib.data.loaders import TensorLoader
from mtlaug_lib.data.multidigits import MultiDigits, multidigits_tasks
from mtlaug_lib.training.gradient_source import GRADIENT_SOURCES
from mtlaug_lib.training.gradients import cagrad, imtl_g, mgda, pcgrad, pcgrad_project
from mtlaug_lib.training.loop import train
from mtlaug_lib.training.weighting import (
    NonFiniteWeightError,
    Weighted,
    make_weighting_method,
)
from mtlaug_lib.training.weighting.gradient_based import MGDA
from mtlaug_lib.training.weighting.gradnorm import GradNorm
from mtlaug_lib.training.weighting.loss_based import DWA, UncertaintyWeighting, dwa_weights

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SOURCES = list(GRADIENT_SOURCES)



SHAPES = [(T, D, seed) for T, D in [(3, 3), (3, 20), (4, 2), (4, 50), (5, 8)] for seed in (0, 1)]


# ---- MGDA ------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_mgda_two_tasks_is_the_min_norm_point_of_the_segment(seed: int) -> None:
    G = random_G(2, 7, seed)
    if seed % 2:
        G[1] = G[0] * 0.3 + 0.2 * G[1]  # sometimes an endpoint is the minimum
    d, w = mgda(G)
    gammas = torch.linspace(0, 1, 20001, dtype=torch.float64)
    segment = gammas[:, None] * G[0] + (1 - gammas[:, None]) * G[1]
    assert d.norm() <= segment.norm(dim=1).min() + 1e-9
    assert torch.allclose(d, w @ G) and w.min() >= 0 and math.isclose(w.sum(), 1, abs_tol=1e-12)


@pytest.mark.parametrize(("T", "D", "seed"), SHAPES)
def test_mgda_satisfies_the_optimality_conditions_and_conflicts_with_no_task(T, D, seed) -> None:
    G = random_G(T, D, seed)
    d, w = mgda(G)
    scale = float((G * G).sum(dim=1).max())
    tol = 1e-9 * scale
    assert w.min() >= 0 and math.isclose(float(w.sum()), 1.0, abs_tol=1e-12)
    inner = G @ d  # <g_i, d>
    norm2 = float(d @ d)
    # KKT of min |w G|^2 on the simplex: <g_i, d> = |d|^2 where w_i > 0, >= |d|^2 elsewhere.
    assert (inner >= norm2 - tol).all()
    active = w > 1e-9
    assert torch.allclose(inner[active], torch.full_like(inner[active], norm2), atol=1e-7 * scale)
    assert (inner >= -tol).all()  # no task's loss increases to first order
    # and no other point of the hull is shorter
    others = torch.distributions.Dirichlet(torch.ones(T, dtype=torch.float64)).sample((2000,))
    assert d.norm() <= (others @ G).norm(dim=1).min() + 1e-9


def test_mgda_is_zero_when_the_hull_holds_zero() -> None:
    G = random_G(3, 10, 0)
    G[2] = -(G[0] + G[1]) / 2  # 0 = (g0 + g1 + 2 g2) / 4
    d, _ = mgda(G)
    assert d.norm() < 1e-9 * G.norm()


# ---- PCGrad ----------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(6))
def test_pcgrad_two_conflicting_tasks_end_orthogonal(seed: int) -> None:
    G = conflicting_G(2, 12, seed)
    P = pcgrad_project(G)
    assert abs(float(P[0] @ G[1])) < 1e-10 and abs(float(P[1] @ G[0])) < 1e-10
    d, w = pcgrad(G)
    assert torch.allclose(d, P.sum(0)) and torch.allclose(d, w @ G)


@pytest.mark.parametrize(("T", "seed"), [(3, 0), (4, 1), (5, 2)])
def test_pcgrad_without_conflict_is_the_plain_sum(T: int, seed: int) -> None:
    G = random_G(T, 30, seed).abs()  # non-negative entries: every inner product is >= 0
    d, w = pcgrad(G, torch.Generator().manual_seed(seed))
    assert torch.allclose(d, G.sum(0)) and torch.allclose(w, torch.ones(T, dtype=G.dtype))


@pytest.mark.parametrize(("T", "D", "seed"), SHAPES)
def test_pcgrad_removes_the_conflict_with_the_last_task_it_projects_on(T, D, seed) -> None:
    G = conflicting_G(T, D, seed)
    gen = torch.Generator().manual_seed(seed)
    orders = [[j for j in torch.randperm(T, generator=gen).tolist() if j != i] for i in range(T)]
    P = pcgrad_project(G, orders=orders)
    for i in range(T):
        last = orders[i][-1]  # a later projection cannot re-introduce this conflict
        assert float(P[i] @ G[last]) >= -1e-9 * float(G.norm()) ** 2
        if float(G[i] @ G[last]) >= 0 and all(float(G[i] @ G[j]) >= 0 for j in orders[i]):
            assert torch.allclose(P[i], G[i])  # no conflict: left alone


# ---- CAGrad, IMTL-G --------------------------------------------------------------------------


@pytest.mark.parametrize(("T", "D", "seed"), SHAPES)
def test_cagrad_with_c_zero_is_the_mean_gradient(T, D, seed) -> None:
    G = random_G(T, D, seed)
    d, w = cagrad(G, c=0.0)
    assert torch.allclose(d, G.mean(0)) and torch.allclose(w, torch.full((T,), 1 / T).double())


@pytest.mark.parametrize(("T", "D", "seed"), SHAPES)
@pytest.mark.parametrize("c", [0.2, 0.5, 0.9])
def test_cagrad_maximises_the_worst_improvement_within_its_ball(T, D, seed, c) -> None:
    G = random_G(T, D, seed)
    g0 = G.mean(0)
    d, w = cagrad(G, c=c)
    assert torch.allclose(d, w @ G)
    radius = c * float(g0.norm())
    assert float((d - g0).norm()) <= radius * (1 + 1e-9)
    worst = float((G @ d).min())
    assert worst >= float((G @ g0).min()) - 1e-9  # at least as good as the mean gradient
    v = torch.randn(4000, D, generator=torch.Generator().manual_seed(seed), dtype=G.dtype)
    sphere = g0 + radius * v / v.norm(dim=1, keepdim=True)
    assert (sphere @ G.T).min(dim=1).values.max() <= worst + 1e-7 * float(G.norm()) ** 2


@pytest.mark.parametrize(("T", "D", "seed"), SHAPES)
def test_imtl_g_projects_equally_on_every_unit_gradient(T, D, seed) -> None:
    G = random_G(T, D, seed)
    if D < T:
        pytest.skip("with D < T the conditions are over-determined (least squares)")
    d, w = imtl_g(G)
    proj = (G / G.norm(dim=1, keepdim=True)) @ d
    assert torch.allclose(proj, proj.mean().expand(T), atol=1e-9 * float(d.norm()))
    assert math.isclose(float(w.sum()), 1.0, abs_tol=1e-9) and torch.allclose(d, w @ G)


# ---- loss-based methods ----------------------------------------------------------------------


def test_uncertainty_parameters_follow_its_loss() -> None:
    uw = UncertaintyWeighting(lr=0.05)
    uw.reset(["a", "b", "c"])
    L = torch.tensor([0.5, 2.0, 4.0])
    with torch.no_grad():
        uw.param.copy_(L.log())  # the optimum s = log L: the gradient vanishes there
    uw.combine(L).loss.backward()
    assert torch.allclose(uw.param.grad, torch.zeros(3), atol=1e-6)
    uw.reset(["a", "b", "c"])  # from s = 0, training moves s towards log L and stays finite
    for _ in range(300):
        comb = uw.combine(L)
        comb.loss.backward()
        uw.update()
    assert torch.allclose(uw.log_vars, L.log(), atol=0.05)
    assert torch.allclose(comb.weights, torch.exp(-uw.log_vars), atol=0.05)


def _uncertainty_loss(L: float, s: torch.Tensor) -> torch.Tensor:
    """The method's own loss for one task with loss L, at each log-variance in ``s``."""
    uw = UncertaintyWeighting()
    uw.reset(["a"])
    out = []
    for value in s.tolist():
        with torch.no_grad():
            uw.param.fill_(value)
        out.append(uw.combine(torch.tensor([L], dtype=torch.float64)).loss.detach())
    return torch.stack(out).double()


@pytest.mark.parametrize("L", [0.05, 0.7, 3.0])
def test_uncertainty_loss_is_twice_kendalls_regression_term(L: float) -> None:
    """The implemented loss is L / sigma^2 + log sigma^2 (s = log sigma^2): twice Kendall et
    al.'s regression term L / (2 sigma^2) + log sigma, so the same optimum s = log L, where
    the learned weight exp(-s) is 1 / L. Kendall's classification term L / sigma^2 + log sigma
    is a different function, with its optimum at s = log(2 L)."""
    s = torch.linspace(-6, 4, 2001, dtype=torch.float64)  # step 0.005
    loss = _uncertainty_loss(L, s)
    sigma2 = s.exp()
    regression = L / (2 * sigma2) + 0.5 * s  # log sigma = s / 2
    classification = L / sigma2 + 0.5 * s
    assert torch.allclose(loss, 2 * regression, rtol=1e-6, atol=1e-6)
    assert not torch.allclose(loss, classification, rtol=1e-2)
    s_best = float(s[loss.argmin()])
    assert abs(s_best - math.log(L)) <= 0.005
    assert math.isclose(math.exp(-s_best), 1 / L, rel_tol=0.01)  # the optimal weight: 1 / L
    assert float(s[regression.argmin()]) == s_best  # the same minimiser
    assert abs(float(s[classification.argmin()]) - math.log(2 * L)) <= 0.005


def test_dwa_weights_follow_the_loss_ratio() -> None:
    prev, before = torch.tensor([1.0, 0.9, 0.5]), torch.tensor([1.0, 1.0, 1.0])
    w = dwa_weights(prev, before, temperature=2.0)
    expected = 3 * torch.exp(prev / 2) / torch.exp(prev / 2).sum()
    assert torch.allclose(w, expected) and math.isclose(float(w.sum()), 3, rel_tol=1e-6)
    assert w[0] > w[1] > w[2]  # the task whose loss fell least gets the most weight
    assert torch.allclose(dwa_weights(before * 2, before), torch.ones(3))  # same ratios: 1 each
    dwa = DWA(temperature=2.0, window=2)
    dwa.reset(["a", "b"])
    seen = [dwa.combine(torch.tensor(x)).weights for x in ([4.0, 4.0], [4.0, 4.0],
                                                             [4.0, 1.0], [4.0, 1.0], [1.0, 1.0])]
    assert all(torch.equal(s, torch.ones(2)) for s in seen[:4])  # two windows to go
    assert torch.allclose(seen[4], dwa_weights(torch.tensor([4.0, 1.0]), torch.tensor([4.0, 4.0])))


def test_gradnorm_keeps_the_sum_and_favours_the_slower_task() -> None:
    gn = GradNorm(alpha=1.5, lr=0.05)
    gn.reset(["a", "b", "c"])
    G = random_G(3, 40, 0).float()
    G = G / G.norm(dim=1, keepdim=True)  # equal gradient norms
    for step in range(20):
        L = torch.tensor([1.0, 1.0 / (1 + step), 1.0 / (1 + step)])  # task a stops improving
        gn.combine(L, G)
        assert math.isclose(float(gn.param.detach().sum()), 3.0, rel_tol=1e-5)
    w = gn.param.detach()
    assert w[0] > w[1] and w[0] > w[2] and w.min() > 0


# ---- the strategy in train -------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny() -> MultiDigits:
    return MultiDigits("train", size=64, seed=0)  # 2 batches of 32


def test_fixed_weights_are_recorded_as_given(tiny) -> None:
    tasks = multidigits_tasks()
    strategy = Weighted("fixed", weights={"left": 1.0, "right": 0.5, "mask": 2.0})
    history = train(make_model(tasks, seed=0), tasks, TensorLoader(tiny, 32), epochs=1,
                    strategy=strategy, progress=False)
    assert history.weight_curve("right") == ([0, 1], [0.5, 0.5])
    assert history.weight_curve("mask") == ([0, 1], [2.0, 2.0])


@pytest.mark.parametrize("source", SOURCES)
def test_gradnorm_first_step_equals_joint_from_either_source(source: str, tiny) -> None:
    """GradNorm's first weights are 1, so its first update must be joint training's exactly:
    this checks how each source writes the combined gradient and the heads' gradients."""
    tasks = select_tasks(multidigits_tasks(), ["left", "mask"])
    data = TensorLoader(MultiDigits("train", size=32, seed=1), 32, shuffle=False)
    models = []
    for strategy in ("joint", Weighted("gradnorm", source=source)):
        model = make_model(tasks, seed=0)
        train(model, tasks, data, epochs=1, strategy=strategy, schedule=None, progress=False,
              optimizer=lambda params: torch.optim.SGD(params, lr=0.1))
        models.append(model)
    for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_train_takes_a_method_name_and_options(tiny) -> None:
    tasks = multidigits_tasks()
    h = train(make_model(tasks, seed=0), tasks, TensorLoader(tiny, 32), epochs=1,
              strategy="mgda", progress=False)
    assert h.backward == 2 and len(h.weights) == 2
    w = [sum(r["weights"].values()) for r in h.weights]
    assert all(math.isclose(s, 1.0, rel_tol=1e-5) for s in w)  # MGDA's weights: the simplex


# ---- bad input -------------------------------------------------------------------------------


class _DictModel(nn.Module):
    """A model without a shared backbone: per-task gradients on a shared part cannot be had."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3 * 28 * 28, 10)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self.lin(x.flatten(1))
        return {"left": out, "right": out}


class _FlatMultiTask(_DictModel):
    """Shared parameters and (empty) heads, but no backbone whose features feed the heads."""

    tasks = ("left", "right")

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.lin.parameters())

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        return []


def test_representation_gradients_need_a_multitask_model(tiny) -> None:
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    with pytest.raises(TypeError, match=r"source='representation' needs a MultiTaskModel .*got "
                                        r"a _FlatMultiTask: use source='parameters'"):
        train(_FlatMultiTask(), tasks, TensorLoader(tiny, 32), epochs=1, strategy="pcgrad",
              progress=False)
    h = train(_FlatMultiTask(), tasks, TensorLoader(tiny, 32), epochs=1, progress=False,
              strategy=Weighted("pcgrad", source="parameters"))
    assert h.steps == 2 and h.backward == 2 * 2  # one backward pass per task and step


def test_bad_input_gives_clear_errors(tiny) -> None:
    with pytest.raises(ValueError, match=r"argument 'method' is 'mgda-ub', expected one of \("):
        Weighted("mgda-ub")
    mine = MGDA()
    assert make_weighting_method(mine) is mine and Weighted(mine).method is mine
    with pytest.raises(ValueError, match=r"options \['normalize'\] were given with a "
                                         r"WeightingMethod instance"):
        make_weighting_method(mine, normalize="l2")
    with pytest.raises(ValueError, match=r"argument 'strategy' is 'pcgard', expected one of .*"
                                         r"a weighting method \("):
        train(make_model(multidigits_tasks()), multidigits_tasks(), TensorLoader(tiny, 32),
              epochs=1, strategy="pcgard", progress=False)
    with pytest.raises(ValueError, match=r"argument 'source' is 'params', expected one of"):
        Weighted("mgda", source="params")
    with pytest.raises(ValueError, match=r"'source' is 'parameters', but method 'dwa' weights"):
        Weighted("dwa", source="parameters")
    with pytest.raises(ValueError, match=r"the weight of task 'b' is nan"):
        Weighted("fixed", weights={"a": 1.0, "b": float("nan")})
    with pytest.raises(ValueError, match=r"argument 'c' is -1"):
        Weighted("cagrad", c=-1)
    with pytest.raises(ValueError, match=r"rows \(tasks\) \[1\]"):
        mgda(torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]))
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    loader = TensorLoader(tiny, 32)
    with pytest.raises(TypeError, match=r"method 'pcgrad' needs per-task gradients.*got a "
                                        r"_DictModel"):
        train(_DictModel(), tasks, loader, epochs=1, strategy="pcgrad", progress=False)
    with pytest.raises(ValueError, match=r"sets the task weights itself: leave 'weights' out"):
        train(make_model(tasks), tasks, loader, epochs=1, strategy="mgda", progress=False,
              weights={"left": 1.0, "right": 2.0})
    with pytest.raises(ValueError, match=r"names tasks \['a', 'b'\], expected exactly"):
        train(make_model(tasks), tasks, loader, epochs=1, progress=False,
              strategy=Weighted("fixed", weights={"a": 1.0, "b": 1.0}))


def test_nan_weights_are_caught_with_the_method_and_step(tiny) -> None:
    strategy = Weighted("uncertainty")
    tasks = select_tasks(multidigits_tasks(), ["left", "right"])
    strategy.setup(MultiTaskLoss(tasks))
    with torch.no_grad():
        strategy.method.param.fill_(float("nan"))
    with pytest.raises(NonFiniteWeightError, match=r"method 'uncertainty' gave non-finite task "
                                                   r"weights .* at step 0"):
        train(make_model(tasks), tasks, TensorLoader(tiny, 32), epochs=1, progress=False,
              strategy=_NoReset(strategy))


class _NoReset(Weighted):
    """Wraps a prepared Weighted strategy, keeping its (deliberately broken) state."""

    def __init__(self, inner: Weighted) -> None:
        self.__dict__.update(inner.__dict__)

    def setup(self, loss_fn) -> None:  # keep the NaN parameters
        pass


# ---- the benchmark ---------------------------------------------------------------------------


def test_bench_weighting_runs_and_records(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("bench_weighting", BENCH / "bench_weighting.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "weighting.json"
    result = module.main(["--size", "32", "--batch-size", "16", "--rounds", "1",
                          "--steps-per-round", "1", "--methods", "equal,mgda,dwa",
                          "--out", str(out)])
    saved = json.loads(out.read_text())
    assert set(saved["ms_per_step (median)"]) == {"joint", "equal", "mgda@representation",
                                                  "mgda@parameters", "dwa"}
    assert "mgda@representation" in saved["representation_within_1.5x"]
    assert result["machine"]["torch"]


def test_mgda_l2_normalised_solves_on_unit_gradients() -> None:
    """With normalize='l2' the direction is the min-norm point of the unit gradients' hull: it
    makes equal angles (equal projections) with the active unit gradients, and d = w @ G."""
    g = torch.Generator().manual_seed(4)
    G = torch.randn(3, 40, generator=g, dtype=torch.float64) * torch.tensor([[1.0], [10.0], [0.01]],
                                                                          dtype=torch.float64)
    d, w = MGDA(normalize="l2").solve(G)
    assert torch.allclose(w @ G, d, atol=1e-9)
    units = G / G.norm(dim=1, keepdim=True)
    proj = units @ d
    active = w > 1e-9
    assert torch.all(proj >= (d @ d) - 1e-7)
    assert torch.allclose(proj[active], (d @ d).expand(int(active.sum())), atol=1e-7)
    # Unnormalised MGDA puts nearly all weight on the tiny gradient; normalised does not.
    _, w_raw = MGDA().solve(G)
    assert float(w_raw[2] / w_raw.sum()) > 0.9
    assert float((w * G.norm(dim=1))[2] / (w * G.norm(dim=1)).sum()) < 0.9
    with pytest.raises(ValueError, match="normalize"):
        MGDA(normalize="loss")
