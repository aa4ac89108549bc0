"""Multi-task weighting: one small class per method, one interface, one training strategy.

Every method is a ``Weighting``. At each step it gets the T task losses (a T-vector, in the
tasks' order) and, if it ``uses_gradients``, the T x D matrix of task gradients on the shared
part; ``combine`` returns a ``Combination``: the step's task weights (recorded in the history)
and either a loss to backpropagate (loss-based methods) or the combined gradient of the shared
part (gradient-based methods). ``Weighted(method)`` is the ``Strategy`` that runs any of them,
so ``train`` needs no special case: ``train(..., strategy=Weighted("mgda"))`` or
``train(..., strategy="mgda")``.

| name            | class                    | task gradients      | the weights          |
|-----------------|--------------------------|---------------------|----------------------|
| ``equal``       | ``EqualWeighting``       | no                  | 1 each (= ``joint``) |
| ``fixed``       | ``FixedWeighting``       | no                  | as given             |
| ``uncertainty`` | ``UncertaintyWeighting`` | no (learns T)       | exp(-s_t), learned   |
| ``dwa``         | ``DWA``                  | no                  | sum T                |
| ``rlw``         | ``RandomWeighting``      | no                  | random, sum 1        |
| ``gradnorm``    | ``GradNorm``             | norms (learns T)    | learned, sum T       |
| ``pcgrad``      | ``PCGrad``               | yes                 | implied, 1 + ...     |
| ``mgda``        | ``MGDA``                 | yes                 | >= 0, sum 1          |
| ``cagrad``      | ``CAGrad``               | yes                 | >= 1/T, sum 1 + c..  |
| ``imtl-g``      | ``IMTLG``                | yes                 | sum 1, may be < 0 (*)|

(*) IMTL-G gives a zero task gradient weight 0 (all weights 0 if every gradient is zero).

For the gradient-combination methods the weights are *implied*: the combined gradient of the
shared part is ``weights @ G`` exactly (``gradients``).

Where task gradients come from (``Weighted(method, source=...)``, gradient-based methods only):

- ``"representation"`` (default): the gradients of each task's loss with respect to the shared
  features ``z = backbone(x)`` (B x 64 x 7 x 7, flattened over the batch: D = B * 3136). One
  forward pass, T cheap backward passes through the heads, then *one* backward pass through
  the backbone with the combined gradient ``z.backward(d)``. Sener & Koltun's MGDA-UB trick
  (the minimum-norm weights of the representation gradients bound those of the parameters').
- ``"parameters"``: the gradients on all shared (backbone) parameters, D = their count: one
  backward pass through the backbone per task (T in all), the combined gradient is written to
  the parameters' ``.grad``. The exact method as published (GradNorm's paper uses the last
  shared layer only; here all shared parameters).

Task heads are trained on their own loss's gradient: times the task's weight for loss-based
methods (GradNorm included: a plain backward of ``sum_t w_t L_t``), unweighted for the
gradient-combination methods (Sener & Koltun's Algorithm 2, as in LibMTL). Methods with
learnable parameters (uncertainty's log-variances, GradNorm's weights) own a small Adam
optimizer for them, stepped after the model's, so they train whatever optimizer the model uses
(they do not follow the model's learning-rate schedule). Their state is checkpointed with the
strategy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ..core.losses import MultiTaskLoss, check_weights
from ..core.models import MultiTaskModel
from .gradients import cagrad, check_gradients, imtl_g, mgda, pcgrad
from .strategies import Batch, OptimizerArg, StepStats, Strategy, check_finite

SOURCES = ("representation", "parameters")


class NonFiniteWeightError(RuntimeError):
    """A weighting method produced NaN or infinite weights or gradients; raised before the
    update that would spread them."""


@dataclass
class Combination:
    """What a method makes of one step.

    Attributes:
        weights: T, detached: the task weights of the step (for gradient-combination methods
            the implied weights: ``direction = weights @ G``).
        loss: a scalar to backpropagate through the whole model (loss-based methods).
        direction: D, the combined gradient of the shared part (methods that use gradients).
        head_weights: T, what each head's own gradient is multiplied by (with ``direction``).
    """

    weights: torch.Tensor
    loss: torch.Tensor | None = None
    direction: torch.Tensor | None = None
    head_weights: torch.Tensor | None = None


def _check_losses(losses: torch.Tensor, tasks: Sequence[str], who: str) -> None:
    if not isinstance(losses, torch.Tensor) or losses.shape != (len(tasks),):
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise ValueError(
            f"{who}: argument 'losses' is {shape}, expected a tensor of {len(tasks)} losses (one "
            f"per task {tuple(tasks)}); call reset(tasks) first if the tasks changed"
        )


class Weighting:
    """A multi-task weighting method (base class).

    ``reset(tasks)`` starts a run (``Weighted.setup`` calls it); ``combine(losses, grads)`` makes
    one step's ``Combination``; ``update()`` steps the method's own parameters after the model's
    update. ``losses`` is a T-vector of the tasks' losses (with their autograd graph), ``grads``
    the T x D task gradients (only for methods that ``uses_gradients``).
    """

    name = "weighting"
    uses_gradients = False

    def __init__(self) -> None:
        self.tasks: list[str] = []

    def reset(self, tasks: Sequence[str]) -> None:
        """Start a run on ``tasks`` (names, in the order of the losses): fresh state."""
        if not tasks or not all(isinstance(t, str) for t in tasks):
            raise ValueError(f"argument 'tasks' is {tasks!r}, expected a non-empty list of names")
        self.tasks = list(tasks)

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        raise NotImplementedError

    def parameters(self) -> list[nn.Parameter]:
        """The method's learnable parameters (trained by its own optimizer)."""
        return []

    def update(self) -> None:
        """Step the method's own parameters (after the model's update); nothing by default."""

    def to(self, device: torch.device) -> Weighting:
        """Move the learnable parameters to ``device`` (the optimizer keeps them: same objects)."""
        for p in self.parameters():
            if p.device != device:
                p.data = p.data.to(device)
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore ``state_dict()`` (after ``reset``)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _OwnParameters(Weighting):
    """A method with T learnable parameters and its own Adam optimizer over them."""

    init_value = 0.0

    def __init__(self, lr: float) -> None:
        super().__init__()
        if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"argument 'lr' is {lr!r}, expected a finite number > 0")
        self.lr = float(lr)
        self.param = nn.Parameter(torch.zeros(0))
        self.optimizer = torch.optim.Adam([self.param], lr=self.lr)

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.param = nn.Parameter(torch.full((len(self.tasks),), self.init_value))
        self.optimizer = torch.optim.Adam([self.param], lr=self.lr)

    def parameters(self) -> list[nn.Parameter]:
        return [self.param]

    def state_dict(self) -> dict[str, Any]:
        return {"param": self.param.detach().cpu().clone(),
                "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if tuple(state["param"].shape) != tuple(self.param.shape):
            raise ValueError(
                f"the saved {self.name} state has {tuple(state['param'].shape)} parameters, "
                f"expected {len(self.tasks)} (one per task)"
            )
        with torch.no_grad():
            self.param.copy_(state["param"])
        self.optimizer.load_state_dict(state["optimizer"])


# ---- loss-based methods ----------------------------------------------------------------------


class LossWeighting(Weighting):
    """A method that weights the losses: the update is the gradient of
    ``sum_t w_t L_t + regularizer()``. Subclasses implement ``weights(losses) -> w`` (T)."""

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regularizer(self) -> torch.Tensor | float:
        return 0.0

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        _check_losses(losses, self.tasks, self.name)
        w = self.weights(losses)
        return Combination(weights=w.detach(), loss=(w * losses).sum() + self.regularizer())


class EqualWeighting(LossWeighting):
    """Equal weighting: ``sum_t L_t`` (weight 1 each); the same update as ``Joint``."""

    name = "equal"

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.ones_like(losses)


class FixedWeighting(LossWeighting):
    """Fixed weights ``{task: w}`` (finite, >= 0, one positive): ``sum_t w_t L_t``."""

    name = "fixed"

    def __init__(self, weights: Mapping[str, float]) -> None:
        super().__init__()
        if not isinstance(weights, Mapping) or not weights:
            raise ValueError(f"argument 'weights' is {weights!r}, expected a dict {{task: w}}")
        self.given = check_weights(weights, dict.fromkeys(weights))  # finite and >= 0

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.given = check_weights(self.given, dict.fromkeys(self.tasks))  # names must match

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.tensor([self.given[t] for t in self.tasks], dtype=losses.dtype,
                            device=losses.device)

    def __repr__(self) -> str:
        return f"FixedWeighting({self.given!r})"


class UncertaintyWeighting(_OwnParameters, LossWeighting):
    """Uncertainty weighting (Kendall, Gal & Cipolla, CVPR 2018, arXiv 1705.07115).

    Learns a log-variance ``s_t = log sigma_t^2`` per task and minimises
    ``sum_t exp(-s_t) L_t + s_t = sum_t L_t / sigma_t^2 + log sigma_t^2``: exactly twice the
    paper's regression term ``L_t / (2 sigma_t^2) + log sigma_t`` (a Gaussian likelihood),
    written as in the authors' example code (github.com/yaringal/multi-task-learning-example).
    It is not the paper's classification term ``L_t / sigma_t^2 + log sigma_t``, whose
    regulariser is half as large. The task weights are ``exp(-s_t) = 1 / sigma_t^2``.

    For fixed losses the optimum is ``s_t = log L_t`` (the gradient ``1 - exp(-s_t) L_t``
    vanishes there), i.e. weight ``1 / L_t``. The regression term has the same optimum ``s_t``
    with weight ``1 / (2 L_t)``; the classification term has ``s_t = log(2 L_t)``, also weight
    ``1 / (2 L_t)``. So all three weight the tasks in the same ratio; the factor 2 doubles
    every gradient (model's and ``s``'s), which is a learning-rate factor of 2 under SGD and
    changes (almost) nothing under Adam, which is scale-invariant. (LibMTL's ``UW`` implements
    the regression term itself, weights ``1 / (2 sigma^2)``.) ``s`` starts at 0 (weight 1) and
    is trained by the method's own Adam (``lr``).
    """

    name = "uncertainty"

    def __init__(self, lr: float = 1e-2) -> None:
        super().__init__(lr)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        return torch.exp(-self.param)

    def regularizer(self) -> torch.Tensor:
        return self.param.sum()

    def update(self) -> None:
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @property
    def log_vars(self) -> torch.Tensor:
        """The learned log-variances ``s`` (T, detached)."""
        return self.param.detach()

    def __repr__(self) -> str:
        return f"UncertaintyWeighting(lr={self.lr})"


def dwa_weights(
    previous: torch.Tensor, before: torch.Tensor, temperature: float = 2.0
) -> torch.Tensor:
    """Dynamic weight average (Liu, Johns & Davison, CVPR 2019):
    ``w = T softmax(r / temperature)`` with ``r_t = previous_t / before_t`` the rate at which
    task t's loss changed (T-vectors of loss averages of the last two periods)."""
    return len(previous) * torch.softmax((previous / before) / temperature, dim=0)


class DWA(LossWeighting):
    """Dynamic weight average (Liu et al., CVPR 2019): a task whose loss falls more slowly gets
    more weight. The losses are averaged over periods of ``window`` steps (the paper: one
    epoch); the weights of a period come from the two periods before it (``dwa_weights``),
    and are 1 until two periods have passed. Weights sum to T."""

    name = "dwa"

    def __init__(self, temperature: float = 2.0, window: int = 10) -> None:
        super().__init__()
        if not (isinstance(temperature, (int, float)) and math.isfinite(temperature)
                and temperature > 0):
            raise ValueError(f"argument 'temperature' is {temperature!r}, expected a number > 0")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"argument 'window' is {window!r}, expected a positive integer")
        self.temperature, self.window = float(temperature), window
        self.reset(["_"])

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.sums = [0.0] * len(self.tasks)
        self.count = 0
        self.averages: list[list[float]] = []  # the last two periods' average losses

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        if len(self.averages) < 2:
            w = torch.ones_like(losses)
        else:
            before, previous = (torch.tensor(a, dtype=torch.float64) for a in self.averages)
            w = dwa_weights(previous, before, self.temperature).to(losses)
        self.sums = [s + v for s, v in zip(self.sums, losses.detach().tolist(), strict=True)]
        self.count += 1
        if self.count == self.window:
            self.averages = [*self.averages, [s / self.window for s in self.sums]][-2:]
            self.sums, self.count = [0.0] * len(self.tasks), 0
        return w

    def state_dict(self) -> dict[str, Any]:
        return {"sums": list(self.sums), "count": self.count, "averages": list(self.averages)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums, self.count = list(state["sums"]), int(state["count"])
        self.averages = [list(a) for a in state["averages"]]

    def __repr__(self) -> str:
        return f"DWA(temperature={self.temperature}, window={self.window})"


class RandomWeighting(LossWeighting):
    """Random loss weighting (Lin et al., "Reasonable effectiveness of random weighting",
    TMLR 2022): fresh weights ``softmax(N(0, I))`` every step (sum 1), from a generator
    seeded with ``seed`` (checkpointed)."""

    name = "rlw"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.generator = torch.Generator().manual_seed(self.seed)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        z = torch.randn(len(self.tasks), generator=self.generator)
        return torch.softmax(z, dim=0).to(losses)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"RandomWeighting(seed={self.seed})"


class GradNorm(_OwnParameters):
    """GradNorm (Chen et al., ICML 2018): learn loss weights that balance the tasks' gradient
    norms, ``|grad(w_t L_t)| = w_t |g_t|``, towards their mean times ``r_t^alpha``, where
    ``r_t`` is task t's loss ratio ``L_t / L_t(0)`` relative to the tasks' mean ratio (a task
    that trains more slowly gets a larger gradient).

    Each step: the model's update is the gradient of ``sum_t w_t L_t`` with the current
    weights; then one Adam step (``lr``) on ``sum_t |w_t |g_t| - mean(w |g|) r_t^alpha|``
    (the target held constant, as in the paper), and the weights are renormalised to sum to
    T. Needs the task gradients' norms: ``g_t`` from ``Weighted``'s source.
    """

    name = "gradnorm"
    uses_gradients = True
    init_value = 1.0

    def __init__(self, alpha: float = 1.5, lr: float = 0.025) -> None:
        super().__init__(lr)
        if not (isinstance(alpha, (int, float)) and math.isfinite(alpha) and alpha >= 0):
            raise ValueError(f"argument 'alpha' is {alpha!r}, expected a finite number >= 0")
        self.alpha = float(alpha)
        self.initial: torch.Tensor | None = None

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.initial = None  # the first step's losses, L_t(0)

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        _check_losses(losses, self.tasks, self.name)
        if grads is None:
            raise ValueError("GradNorm needs the task gradients: argument 'grads' is None")
        check_gradients(grads, "grads")
        losses = losses.detach()
        if self.initial is None:
            self.initial = losses.clone()
        ratio = losses / self.initial.to(losses).clamp_min(1e-12)
        r = ratio / ratio.mean().clamp_min(1e-12)
        used = self.param.detach().clone().to(grads)
        norms = grads.detach().norm(dim=1).to(self.param)
        balanced = self.param * norms  # w_t |g_t|
        target = (balanced.mean() * r.to(self.param) ** self.alpha).detach()
        self.optimizer.zero_grad(set_to_none=True)
        (balanced - target).abs().sum().backward()
        self.optimizer.step()
        with torch.no_grad():  # keep the weights positive and their sum at T
            self.param.clamp_(min=1e-6)
            self.param.mul_(len(self.tasks) / self.param.sum())
        return Combination(weights=used, direction=used @ grads, head_weights=used)

    def state_dict(self) -> dict[str, Any]:
        initial = None if self.initial is None else self.initial.cpu().clone()
        return {**super().state_dict(), "initial": initial}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        super().load_state_dict(state)
        self.initial = state["initial"]

    def __repr__(self) -> str:
        return f"GradNorm(alpha={self.alpha}, lr={self.lr})"


# ---- gradient-combination methods ------------------------------------------------------------


class GradientWeighting(Weighting):
    """A method that combines the task gradients ``G`` (T x D) into one direction ``d`` (D);
    subclasses implement ``solve(G) -> (d, w)`` with ``d = w @ G`` (see ``gradients``)."""

    uses_gradients = True

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def combine(self, losses: torch.Tensor, grads: torch.Tensor | None = None) -> Combination:
        _check_losses(losses, self.tasks, self.name)
        if grads is None:
            raise ValueError(f"{self.name} needs the task gradients: argument 'grads' is None")
        if len(grads) != len(self.tasks):
            raise ValueError(
                f"argument 'grads' has {len(grads)} rows, expected one per task {self.tasks}"
            )
        d, w = self.solve(grads.detach())
        return Combination(weights=w, direction=d, head_weights=torch.ones_like(w))


class PCGrad(GradientWeighting):
    """PCGrad (Yu et al., NeurIPS 2020): ``gradients.pcgrad``, each task's projection order
    drawn from a generator seeded with ``seed`` (checkpointed)."""

    name = "pcgrad"

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)

    def reset(self, tasks: Sequence[str]) -> None:
        super().reset(tasks)
        self.generator = torch.Generator().manual_seed(self.seed)

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return pcgrad(G, self.generator)

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.generator.set_state(state["generator"])

    def __repr__(self) -> str:
        return f"PCGrad(seed={self.seed})"


class MGDA(GradientWeighting):
    """MGDA (Sener & Koltun, NeurIPS 2018): ``gradients.mgda``, the minimum-norm point of the
    convex hull of the task gradients. With ``source="representation"``: MGDA-UB.

    The minimum-norm point leans toward the task with the smallest gradient, so a task whose
    loss has a small scale (a loss averaged over many pixels) can take almost all the weight.
    ``normalize="l2"`` solves on unit task gradients instead, as Sener & Koltun's own code can;
    the returned weights then apply to the raw gradients (``w_i / |g_i|``), so ``d = w @ G``.
    """

    name = "mgda"

    def __init__(self, normalize: str | None = None) -> None:
        super().__init__()
        if normalize not in (None, "l2"):
            raise ValueError(f"argument 'normalize' is {normalize!r}, expected None or 'l2'")
        self.normalize = normalize

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.normalize is None:
            return mgda(G)
        norms = G.norm(dim=1).clamp_min(1e-12)
        d, w = mgda(G / norms[:, None])
        return d, w / norms

    def __repr__(self) -> str:
        return f"MGDA(normalize={self.normalize!r})"


class CAGrad(GradientWeighting):
    """CAGrad (Liu et al., NeurIPS 2021): ``gradients.cagrad`` with radius ``c``."""

    name = "cagrad"

    def __init__(self, c: float = 0.5) -> None:
        super().__init__()
        if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
            raise ValueError(f"argument 'c' is {c!r}, expected a finite number >= 0")
        self.c = float(c)

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return cagrad(G, self.c)

    def __repr__(self) -> str:
        return f"CAGrad(c={self.c})"


class IMTLG(GradientWeighting):
    """IMTL-G (Liu et al., ICLR 2021): ``gradients.imtl_g``, equal projections of the update on
    every task's unit gradient."""

    name = "imtl-g"

    def solve(self, G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return imtl_g(G)


WEIGHTINGS: dict[str, Callable[..., Weighting]] = {
    "equal": EqualWeighting,
    "fixed": FixedWeighting,
    "uncertainty": UncertaintyWeighting,
    "dwa": DWA,
    "rlw": RandomWeighting,
    "gradnorm": GradNorm,
    "pcgrad": PCGrad,
    "mgda": MGDA,
    "cagrad": CAGrad,
    "imtl-g": IMTLG,
}


def make_weighting(method: str | Weighting, **options: Any) -> Weighting:
    """A ``Weighting`` from its name (options go to its class), or the instance as given.

    ``make_weighting("cagrad", c=0.4)`` is ``CAGrad(c=0.4)``.
    """
    if isinstance(method, Weighting):
        if options:
            raise ValueError(
                f"options {sorted(options)} were given with a Weighting instance; set them when "
                "creating it"
            )
        return method
    if method not in WEIGHTINGS:
        raise ValueError(
            f"argument 'method' is {method!r}, expected one of {tuple(WEIGHTINGS)} or a "
            "Weighting instance"
        )
    return WEIGHTINGS[method](**options)


# ---- the strategy ----------------------------------------------------------------------------


def _finite_weights(comb: Combination, method: str, tasks: Sequence[str], step: int) -> list:
    weights = comb.weights.detach().double().cpu().tolist()
    bad = {t: w for t, w in zip(tasks, weights, strict=True) if not math.isfinite(w)}
    if bad:
        raise NonFiniteWeightError(
            f"method {method!r} gave non-finite task weights {bad} at step {step}; training "
            "stopped before this update"
        )
    if comb.direction is not None and not bool(torch.isfinite(comb.direction).all()):
        raise NonFiniteWeightError(
            f"method {method!r} gave a non-finite combined gradient at step {step}; training "
            "stopped before this update"
        )
    return weights


class Weighted(Strategy):
    """Joint training with a weighting method: one forward pass, one update per batch.

    Args:
        method: a name from ``WEIGHTINGS`` or a ``Weighting`` instance.
        source: for methods that use task gradients: ``"representation"`` (default; gradients
            on the shared features, one backward through the backbone) or ``"parameters"``
            (gradients on all shared parameters, one backward through the backbone per task).
            Loss-based methods take none.
        **options: passed to the method's class (``Weighted("cagrad", c=0.4)``).

    Work per step: 1 forward; backward passes through the backbone: 1, or T with
    ``source="parameters"``. ``StepStats.weights`` holds the step's task weights (recorded in
    ``History.weights``). Needs ``train``'s ``weights`` to be left at 1 (use ``"fixed"``).
    """

    optimizers = "shared"

    def __init__(
        self, method: str | Weighting = "equal", *, source: str | None = None, **options: Any
    ) -> None:
        self.method = make_weighting(method, **options)
        if self.method.uses_gradients:
            source = "representation" if source is None else source
            if source not in SOURCES:
                raise ValueError(f"argument 'source' is {source!r}, expected one of {SOURCES}")
        elif source is not None:
            raise ValueError(
                f"argument 'source' is {source!r}, but method {self.method.name!r} weights the "
                "losses without task gradients; 'source' applies to "
                f"{tuple(k for k, v in WEIGHTINGS.items() if getattr(v, 'uses_gradients', 0))}"
            )
        self.source = source
        self.name = self.method.name

    def setup(self, loss_fn: MultiTaskLoss) -> None:  # noqa: D102 (see Strategy.setup)
        fixed = {t: w for t, w in loss_fn.weights.items() if w != 1.0}
        if fixed:
            raise ValueError(
                f"argument 'weights' is {loss_fn.weights}, but strategy {self!r} sets the task "
                "weights itself: leave 'weights' out, or use Weighted('fixed', weights=...)"
            )
        self.method.reset(list(loss_fn.tasks))

    def step(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: OptimizerArg,
        step: int,
    ) -> StepStats:
        """One update of ``model`` on ``batch`` (see ``Strategy.step``)."""
        if isinstance(optimizer, Mapping):
            raise TypeError(
                f"Weighted({self.name!r}) makes one update with one optimizer; it got per-task "
                f"optimizers for {tuple(optimizer)}"
            )
        tasks = list(loss_fn.tasks)
        if self.method.tasks != tasks:
            self.method.reset(tasks)
        images = batch["image"]
        if self.source is None:
            losses = loss_fn.per_task(model(images), batch)
            floats = check_finite(losses, step)
            self.method.to(images.device)
            comb = self.method.combine(torch.stack([losses[t] for t in tasks]))
            weights = _finite_weights(comb, self.name, tasks, step)
            optimizer.zero_grad(set_to_none=True)
            comb.loss.backward()
            backward = 1
        else:
            floats, weights = self._gradient_update(model, batch, loss_fn, optimizer, step, tasks)
            backward = 1 if self.source == "representation" else len(tasks)
        optimizer.step()
        self.method.update()
        return StepStats(floats, forward=1, backward=backward, images=len(images),
                         weights=dict(zip(tasks, weights, strict=True)))

    def _shared_and_outputs(
        self, model: nn.Module, images: torch.Tensor, tasks: list[str]
    ) -> tuple[list[torch.Tensor], dict[str, torch.Tensor]]:
        """What the task gradients are taken on (the features, or the shared parameters), and
        the outputs from the same single forward pass."""
        if not (hasattr(model, "shared_parameters") and hasattr(model, "task_parameters")):
            raise TypeError(
                f"method {self.name!r} needs per-task gradients, so a model with a shared "
                f"backbone and one head per task (a MultiTaskModel); got a {type(model).__name__}"
            )
        if self.source == "representation":
            if not isinstance(model, MultiTaskModel):
                raise TypeError(
                    f"source='representation' needs a MultiTaskModel (its backbone's features "
                    f"feed the heads); got a {type(model).__name__}: use source='parameters'"
                )
            features = model.backbone(images)
            return [features], {t: model.heads[t](features) for t in tasks}
        shared = [p for p in model.shared_parameters() if p.requires_grad]
        if not shared:
            raise ValueError("the model has no trainable shared parameters to combine gradients on")
        return shared, model(images)

    def _gradient_update(
        self,
        model: nn.Module,
        batch: Batch,
        loss_fn: MultiTaskLoss,
        optimizer: torch.optim.Optimizer,
        step: int,
        tasks: list[str],
    ) -> tuple[dict[str, float], list[float]]:
        shared, outputs = self._shared_and_outputs(model, batch["image"], tasks)
        losses = loss_fn.per_task(outputs, batch)
        floats = check_finite(losses, step)
        keep = self.source == "representation"  # the backbone's graph is needed afterwards
        rows, heads = [], []
        for i, t in enumerate(tasks):
            own = [p for p in model.task_parameters(t) if p.requires_grad]
            parts = torch.autograd.grad(losses[t], shared + own, allow_unused=True,
                                        retain_graph=keep or i < len(tasks) - 1)
            rows.append(torch.cat([(g if g is not None else torch.zeros_like(x)).reshape(-1)
                                   for g, x in zip(parts[:len(shared)], shared, strict=True)]))
            heads.append(list(zip(own, parts[len(shared):], strict=True)))
        G = torch.stack(rows)  # T x D
        finite = torch.isfinite(G).all(dim=1).tolist()
        if not all(finite):
            bad = [t for t, ok in zip(tasks, finite, strict=True) if not ok]
            raise NonFiniteWeightError(
                f"the gradients of task(s) {bad} are not finite at step {step} (method "
                f"{self.name!r}); training stopped before this update"
            )
        self.method.to(G.device)
        comb = self.method.combine(torch.stack([losses[t].detach() for t in tasks]), G)
        weights = _finite_weights(comb, self.name, tasks, step)
        optimizer.zero_grad(set_to_none=True)
        d = comb.direction
        if self.source == "representation":
            shared[0].backward(d.view_as(shared[0]))  # the one backward through the backbone
        else:
            offset = 0
            for p in shared:
                p.grad = d[offset:offset + p.numel()].view_as(p).clone()
                offset += p.numel()
        for w, pairs in zip(comb.head_weights.tolist(), heads, strict=True):
            for p, g in pairs:
                if g is not None:
                    p.grad = g * w if w != 1.0 else g
        return floats, weights

    def state_dict(self) -> dict[str, Any]:
        return {"strategy": "weighted", "method": self.name, "source": self.source,
                "state": self.method.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("method") != self.name or state.get("source") != self.source:
            raise ValueError(
                f"the checkpoint's strategy state is for method {state.get('method')!r} with "
                f"source {state.get('source')!r}, expected {self.name!r} with source "
                f"{self.source!r} (resume with the strategy the run was started with)"
            )
        self.method.load_state_dict(state["state"])

    def __repr__(self) -> str:
        source = f", source={self.source!r}" if self.source else ""
        return f"Weighted({self.method!r}{source})"
