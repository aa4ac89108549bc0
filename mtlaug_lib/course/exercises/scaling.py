"""Checks of notebook 08 (scaling out): the global Gram matrix of a data-parallel step, and one
step of fp16 dynamic loss scaling.

The two exercises:

- ``global_gram(grams, sizes)``: P processes each hold a shard of n_r samples of a global batch
  of N = sum n_r samples, and the T x T Gram matrix ``G_r G_r^T`` of the task gradients of the
  shard's MEAN losses with respect to the shard's representation (per-sample coordinates). The
  global loss of a task is the global mean, sum_r (n_r / N) L_r, so its gradient on shard r's
  coordinates is (n_r / N) G_r, and the Gram matrix of the global gradients (the concatenation
  of the shards') is ``sum_r (n_r / N)^2 G_r G_r^T``. The check builds real G_r (random, and
  from a tiny model's representation gradients) and takes its expected answer from the Gram of
  the global gradient itself (for the model, from a backward of the global mean loss), never
  from the formula.
- ``scaler_step(scale, good_steps, grads_finite, growth_interval=2000)``: the update of the
  library's ``LossScaler`` (``torch.amp.GradScaler``'s rules), which gives the expected answers.

A wrong answer is matched against the mistakes students make, so the hint names the slip.
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ...training.precision import LossScaler
from .common import ExerciseError, call_answer, correct

# --------------------------------------------------------------------------- exercise 08.1

_GRAM_HINT = (
    "Hint: process r's gradient counts (n_r / N) in the global mean's gradient, and a Gram "
    "matrix is quadratic in the gradients, so: sum over r of (n_r / N) ** 2 * grams[r], with "
    "N = sum(sizes)"
)


def _mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a @ b`` (m x k times k x n) as a broadcast product and sum: tiny float64 matmuls go to a
    threaded BLAS that stalls for tens of milliseconds on a busy 2-core machine."""
    return (a.unsqueeze(-1) * b.unsqueeze(0)).sum(-2)


@dataclass(frozen=True)
class _GramCase:
    what: str
    grams: tuple[torch.Tensor, ...]  # P local T x T Gram matrices G_r G_r^T
    sizes: tuple[int, ...]  # the shards' sample counts n_r
    expected: torch.Tensor  # T x T: the Gram matrix of the global gradient, computed directly

    @property
    def call(self) -> str:
        t_count = self.expected.shape[0]
        return (f"global_gram(grams, sizes={list(self.sizes)}) with T = {t_count} tasks "
                f"({self.what}, {str(self.expected.dtype).removeprefix('torch.')})")


def _random_case(what: str, sizes: Sequence[int], t_count: int, dtype: torch.dtype,
                 g: torch.Generator, features: int = 3) -> _GramCase:
    """Random per-sample shard gradients G_r (T x n_r * features); the expected answer is the
    Gram matrix of their concatenation weighted as in the global mean, (n_r / N) G_r."""
    total = sum(sizes)
    local = [torch.randn(t_count, n * features, generator=g, dtype=torch.float64) for n in sizes]
    global_grad = torch.cat([(n / total) * G for n, G in zip(sizes, local, strict=True)], dim=1)
    grams = tuple(_mm(G, G.T).to(dtype) for G in local)
    return _GramCase(what, grams, tuple(sizes), _mm(global_grad, global_grad.T).to(dtype))


def _model_case(what: str, sizes: Sequence[int], t_count: int, dtype: torch.dtype,
                g: torch.Generator) -> _GramCase:
    """A tiny model: a shared representation z = tanh(x W) (N x 3) and T linear heads with mean
    squared-error losses. Each shard's G_r is the gradient of its shard's mean losses with
    respect to its own rows of z; the expected answer is the Gram matrix of the gradient of the
    GLOBAL mean losses with respect to all of z (one backward over the whole batch)."""
    total, features = sum(sizes), 3
    x = torch.randn(total, 4, generator=g, dtype=dtype)
    w = torch.randn(4, features, generator=g, dtype=dtype)
    heads = torch.randn(t_count, features, generator=g, dtype=dtype)
    y = torch.randn(total, t_count, generator=g, dtype=dtype)
    z = torch.tanh(_mm(x, w))

    def task_grads(rows: slice) -> torch.Tensor:
        """T x (rows * features): each task's mean loss over ``rows``, differentiated with
        respect to those rows of z."""
        zr = z[rows].detach().requires_grad_(True)
        losses = ((_mm(zr, heads.T) - y[rows]) ** 2).mean(dim=0)  # T mean losses over the rows
        return torch.stack([torch.autograd.grad(loss, zr, retain_graph=True)[0].flatten()
                            for loss in losses])

    starts = np.cumsum([0, *sizes]).tolist()
    local = [task_grads(slice(a, b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    global_grad = task_grads(slice(0, total))
    grams = tuple(_mm(G, G.T) for G in local)
    return _GramCase(what, grams, tuple(sizes), _mm(global_grad, global_grad.T))


@functools.cache
def _gram_cases() -> tuple[_GramCase, ...]:
    """The cases, in order: unequal shards first (where every known mistake shows, weights 1/P^2
    included), then equal shards, a tiny model's gradients, and P = 1 (the gram itself)."""
    g = torch.Generator().manual_seed(8)
    f32, f64 = torch.float32, torch.float64
    return (
        _random_case("3 unequal shards", (5, 2, 9), 2, f64, g),
        _random_case("2 equal shards", (4, 4), 3, f32, g),
        _model_case("a tiny model's representation gradients, 4 unequal shards", (3, 1, 6, 2), 3,
                    f32, g),
        _model_case("a tiny model's representation gradients, 2 unequal shards", (7, 3), 2, f64,
                    g),
        _random_case("one process: P = 1", (6,), 3, f32, g),
    )


def _weighted(case: _GramCase, weights: Sequence[float]) -> torch.Tensor:
    """sum_r weights[r] * grams[r], in float64."""
    return sum(w * A.to(torch.float64) for w, A in zip(weights, case.grams, strict=True))


# Answers students give to exercise 08.1: each the weights of the local grams, and its hint.
_GRAM_MISTAKES: list[tuple[Callable[[Sequence[int]], list[float]], str]] = [
    (lambda n: [1.0] * len(n),
     "you summed the local Gram matrices as they are: each G_r is the gradient of its SHARD's "
     "mean loss, while the global loss is the mean over all N samples, which weights shard r by "
     "n_r / N"),
    (lambda n: [1.0 / len(n)] * len(n),
     "you took the mean of the local Gram matrices: a Gram matrix is quadratic in the "
     "gradients, so a weight on the gradients comes in squared, and unequal shards weigh "
     "n_r / N each, not 1 / P"),
    (lambda n: [m / sum(n) for m in n],
     "your weights n_r / N are not squared: the global gradient on shard r is (n_r / N) G_r, "
     "and its Gram matrix is (n_r / N)^2 G_r G_r^T"),
    (lambda n: [1.0 / len(n) ** 2] * len(n),
     "your weights 1 / P^2 are right only when every shard has the same size: shard r holds "
     "n_r of the N samples, so its weight is (n_r / N)^2"),
    (lambda n: [m ** 2 / sum(n) for m in n],
     "you squared n_r but not N: the weight is (n_r / N) ** 2 = n_r ** 2 / N ** 2"),
    (lambda n: [m / sum(n) ** 2 for m in n],
     "you wrote n_r / N ** 2, which Python reads as n_r / (N ** 2): put the parentheses, "
     "(n_r / N) ** 2"),
    (lambda n: [m ** 2 / sum(k ** 2 for k in n) for m in n],
     "you normalised the squared weights to sum to 1: the weights are (n_r / N)^2, whose sum "
     "is below 1 (the mean over N samples averages out part of the gradients)"),
]


def _gram_answer(fn: Callable, case: _GramCase) -> torch.Tensor:
    """Call a student's ``fn(grams, sizes)`` on copies and check what it may not do whatever
    the values: change its inputs, return anything but a T x T tensor of the grams' dtype.
    Returns the answer, detached, on the CPU."""
    if not callable(fn):
        call_answer(fn)  # raises the course's "expected a function" error
    grams = [A.clone() for A in case.grams]
    items = list(grams)
    sizes = list(case.sizes)
    where = case.call
    try:
        got = fn(grams, sizes)
    except NotImplementedError:  # an exercise left as given
        raise
    except Exception as err:  # a student's bug: a wrong answer, with the cause
        why = ""
        if "dtype" in str(err) or "scalar type" in str(err):
            why = (" (make the weights Python floats, or tensors of the grams' dtype: "
                   "torch.tensor(..., dtype=grams[0].dtype))")
        raise ExerciseError(f"{where}: global_gram raised {type(err).__name__}: {err}{why}. "
                            f"{_GRAM_HINT}.") from err
    in_place = ("Hint: build a new matrix (w * A and + return new tensors) instead of writing "
                "into the arguments (total = grams[0] then total += ... writes into grams[0])")
    if len(grams) != len(items) or any(a is not b for a, b in zip(grams, items, strict=False)):
        raise ExerciseError(f"{where}: global_gram changed the list `grams` in place (its items "
                            f"were replaced or removed). {in_place}")
    if any(not torch.equal(a, b) for a, b in zip(items, case.grams, strict=True)):
        raise ExerciseError(f"{where}: global_gram changed a matrix of `grams` in place: a "
                            "caller that reuses its local Gram matrix gets a wrong one. "
                            f"{in_place}")
    if sizes != list(case.sizes):
        raise ExerciseError(f"{where}: global_gram changed `sizes` in place (it became {sizes}); "
                            "read the list, don't pop, sort or assign into it")
    t_count = case.expected.shape[0]
    expected = f"a {t_count} x {t_count} tensor (T x T, one row and column per task)"
    if got is None:
        raise ExerciseError(f"{where}: global_gram returned None; expected {expected} (did you "
                            "forget the return?)")
    if not isinstance(got, torch.Tensor):
        raise ExerciseError(f"{where}: global_gram returned a {type(got).__name__}; expected "
                            f"{expected}")
    shape = tuple(got.shape)
    if shape != (t_count, t_count):
        p_count = len(case.sizes)
        if shape == (p_count, t_count, t_count):
            why = (": one weighted matrix per process, stacked; the global Gram matrix is their "
                   "SUM over the processes (.sum(0))")
        elif shape == (t_count,):
            why = ": that is a vector (the diagonal?), the squared norms only"
        elif len(shape) == 2 and shape[0] == t_count:
            why = (": a T x D matrix of gradients; the global Gram matrix is T x T, the inner "
                   "products of the task gradients, and only the local T x T grams are needed")
        else:
            why = ""
        raise ExerciseError(f"{where}: global_gram returned a tensor of shape {shape}; expected "
                            f"{expected}{why}. {_GRAM_HINT}.")
    if got.dtype != case.expected.dtype:
        raise ExerciseError(
            f"{where}: global_gram returned dtype {got.dtype}; expected the grams' dtype "
            f"{case.expected.dtype} (Python floats as weights keep it; a torch.zeros(T, T) "
            "started in float32, or weights built in another dtype, change it)")
    return got.detach().cpu()


def _gram_close(got: torch.Tensor, expected: torch.Tensor) -> bool:
    """Whether two T x T matrices agree, at the precision of their dtype."""
    rtol = 1e-4 if expected.dtype == torch.float32 else 1e-9
    a, b = got.to(torch.float64), expected.to(torch.float64)
    return torch.allclose(a, b, rtol=rtol, atol=rtol * float(b.abs().max()))


def _gram_mistake(got: torch.Tensor, case: _GramCase) -> str:
    """What a wrong ``global_gram`` answer ``got`` did on ``case``."""
    if not bool(got.abs().max() > 0):
        return ("your answer is all zeros: did you use integer division (n_r // N, which is 0 "
                "when n_r < N)? Use n_r / N")
    if not _gram_close(got, got.T):
        return ("your answer is not symmetric, but a Gram matrix is (entry (s, t) is the inner "
                "product of task s's and task t's gradients, and so is entry (t, s)); a weighted "
                "sum of the local grams is symmetric too")
    for weights, hint in _GRAM_MISTAKES:
        if _gram_close(got, _weighted(case, weights(case.sizes)).to(got.dtype)):
            return hint
    return "some values are wrong"


def check_global_gram(global_gram: Callable) -> None:
    """Exercise 08.1: ``global_gram(grams, sizes)`` -> the global T x T Gram matrix of a
    data-parallel step.

    ``grams``: a list of P tensors T x T, process r's ``G_r G_r^T``, where ``G_r`` (T x D_r)
    holds the gradients of its shard's mean task losses with respect to its shard's
    representation; ``sizes``: the list of the P shard sizes n_r (ints). The answer is
    ``sum_r (n_r / N)^2 G_r G_r^T`` with N = sum n_r, a T x T tensor of the grams' dtype; the
    inputs must not change.

    Cases: 3 unequal shards (T = 2, float64), 2 equal shards (T = 3, float32), a tiny model's
    representation gradients on 4 and 2 unequal shards (float32 and float64; the expected answer
    from one backward of the global mean losses), P = 1 (the gram itself). Mistakes named: the
    plain sum, the mean, weights n_r / N not squared, weights 1 / P^2 (seen with unequal shards
    only), n_r^2 / N, n_r / N^2, squared weights normalised, integer division (all zeros), an
    asymmetric answer, per-process matrices stacked instead of summed, a wrong type, shape or
    dtype, changing ``grams`` or ``sizes`` in place.
    """
    for case in _gram_cases():
        got = _gram_answer(global_gram, case)
        if not _gram_close(got, got.T):
            raise ExerciseError(f"{case.call}: {_gram_mistake(got, case)}. {_GRAM_HINT}.")
        if not _gram_close(got, case.expected):
            raise ExerciseError(f"{case.call}: {_gram_mistake(got, case)}. {_GRAM_HINT}.")
    correct("the global Gram matrix is a weighted sum of the local ones: T x T numbers to "
            "all-reduce per step instead of T full gradients, and MGDA, PCGrad or IMTL-G then "
            "find the same weights on every process as on one.")


# --------------------------------------------------------------------------- exercise 08.2

_SCALER_HINT = (
    "Hint: if the gradients are not all finite, skip the step, halve the scale and reset the "
    "count to 0; otherwise take the step and add 1 to the count, and when the count reaches "
    "growth_interval, double the scale and reset the count to 0. Return "
    "(new_scale, new_good_steps, take_step)"
)


def _reference(scale: float, good_steps: int, finite: bool,
               growth_interval: int) -> tuple[float, int, bool]:
    """The expected answer: the library's ``LossScaler.update`` from this state."""
    scaler = LossScaler(scale=scale, growth_interval=growth_interval, good_steps=good_steps)
    scaler.update(finite)
    return scaler.scale, scaler.good_steps, finite


@dataclass(frozen=True)
class _StepCase:
    scale: float
    good_steps: int
    finite: bool
    growth_interval: int | None  # None: left to the function's default (2000)

    @property
    def interval(self) -> int:
        return 2000 if self.growth_interval is None else self.growth_interval

    @property
    def args(self) -> tuple:
        head = (self.scale, self.good_steps, self.finite)
        return head if self.growth_interval is None else (*head, self.growth_interval)

    @property
    def call(self) -> str:
        gi = "" if self.growth_interval is None else f", growth_interval={self.growth_interval}"
        what = ("finite gradients" if self.finite else "an overflow")
        steps = "1 good step" if self.good_steps == 1 else f"{self.good_steps} good steps"
        return (f"scaler_step({self.scale!r}, {self.good_steps}, {self.finite}{gi}) ({what}, "
                f"{steps} so far)")


# In order: a plain good step and a plain overflow first (where the basic slips show), then the
# step that reaches the interval, the one before it, the default interval, interval 1, and an
# overflow at scale 1 (where floor division gives 0).
_STEP_CASES = (
    _StepCase(65536.0, 4, True, 2000),
    _StepCase(65536.0, 5, False, 2000),
    _StepCase(1024.0, 2, True, 3),
    _StepCase(1024.0, 1, True, 3),
    _StepCase(512.0, 3, True, 5),
    _StepCase(4096.0, 6, True, 7),
    _StepCase(2.0**16, 1999, True, None),
    _StepCase(2.0**16, 1998, True, None),
    _StepCase(2.0**16, 17, False, None),
    _StepCase(8.0, 0, True, 1),
    _StepCase(1.0, 2, False, 4),
    _StepCase(0.25, 0, False, 3),
)

# A short run, the student's own state fed back each step: the overflow pattern of a real fp16
# run (a few early overflows while the scale comes down, then growth).
_SEQUENCE = (False, False, True, True, False, True, True, True, True, True, True, True, True)
_SEQUENCE_INTERVAL = 3


def _is_bool(x: object) -> bool:
    return isinstance(x, (bool, np.bool_))


def _scaler_answer(fn: Callable, case: _StepCase, where: str) -> tuple[float, int, bool]:
    """Call a student's ``scaler_step`` and check the form of its answer: three values, a number,
    an int and a bool (a tuple or any sequence)."""
    try:
        got = call_answer(fn, *case.args)
    except ExerciseError as err:
        if case.growth_interval is None and isinstance(err.__cause__, TypeError):
            raise ExerciseError(f"{err}. Hint: give growth_interval a default, "
                                "def scaler_step(scale, good_steps, grads_finite, "
                                "growth_interval=2000) (torch.amp.GradScaler's default).") from err
        raise ExerciseError(f"{err}. {_SCALER_HINT}.") from err
    form = "three values (new_scale, new_good_steps, take_step)"
    if got is None:
        raise ExerciseError(f"{where} returned None; expected {form} (did you forget the return?)")
    if isinstance(got, (dict, str, torch.Tensor)) or not isinstance(got, Sequence):
        raise ExerciseError(f"{where} returned {got!r}; expected {form}, as a tuple")
    if len(got) != 3:
        raise ExerciseError(f"{where} returned {len(got)} values ({got!r}); expected {form}")
    scale, good, take = got
    if _is_bool(scale) and not _is_bool(take):
        raise ExerciseError(f"{where} returned {tuple(got)!r}: the order is (new_scale, "
                            "new_good_steps, take_step), the bool last")
    if isinstance(scale, torch.Tensor) and scale.numel() == 1:
        scale = float(scale)
    if _is_bool(scale) or not isinstance(scale, numbers.Real):
        raise ExerciseError(f"{where} returned new_scale = {scale!r}; expected a number")
    if _is_bool(good) or not isinstance(good, numbers.Integral):
        hint = (" (count with + 1 from the int you were given; a float comes from a / or a "
                "float start)" if isinstance(good, float) else "")
        raise ExerciseError(f"{where} returned new_good_steps = {good!r} "
                            f"({type(good).__name__}); expected an int, a count of steps{hint}")
    if not _is_bool(take):
        raise ExerciseError(f"{where} returned take_step = {take!r} ({type(take).__name__}); "
                            "expected True or False (a bool: whether the optimizer steps)")
    return float(scale), int(good), bool(take)


def _grows(fn: Callable, scale: float, good_steps: int, interval: int) -> bool:
    """Whether a student's ``scaler_step`` doubles ``scale`` after a finite step from
    ``good_steps`` with ``interval`` (a probe for the diagnosis; False if it fails)."""
    try:
        got = fn(scale, good_steps, True, interval)
        return float(got[0]) == 2 * scale
    except Exception:  # only a diagnosis: an answer that fails here is wrong anyway
        return False


def _scaler_mistake(fn: Callable, case: _StepCase, got: tuple[float, int, bool]) -> str:
    """What a wrong ``scaler_step`` answer ``got`` did on ``case`` (``fn`` is probed to tell a
    late growth from an ignored ``growth_interval``)."""
    scale, good, take = got
    s0, g0, gi = case.scale, case.good_steps, case.interval
    exp_scale, exp_good, _ = _reference(s0, g0, case.finite, gi)
    if not case.finite:
        if take:
            return ("you took the step on an overflow: its gradients hold inf or NaN, and a "
                    "step would write them into the weights; skip it (take_step False)")
        if scale == math.floor(s0 / 2) and scale != s0 / 2:
            return (f"you halved {s0} with floor division (//), which gives {scale}: use "
                    "scale * 0.5 (or scale / 2); the scale is a float and may go below 1")
        if scale != exp_scale:
            what = ("kept the scale" if scale == s0 else "doubled the scale" if scale == 2 * s0
                    else f"returned the scale {scale}")
            return (f"after an overflow the scale must halve (to {exp_scale}); you {what}: too "
                    "large a scale is what made the gradients overflow")
        if good == g0:
            return ("you backed off without resetting the count: after an overflow the count of "
                    "good steps in a row starts again from 0")
        if good == g0 + 1:
            return ("you counted the skipped step as a good one: after an overflow the count "
                    "of good steps in a row starts again from 0")
        return f"after an overflow the count of good steps starts again from 0 (you gave {good})"
    if not take and scale == s0 / 2:
        return ("you treated a good step as an overflow (skipped it and halved the scale): are "
                "the branches of your if swapped? The overflow branch is where grads_finite is "
                "False")
    if not take:
        return "the gradients are finite, so the step must be taken (take_step True)"
    if scale == s0 / 2:
        return ("you halved the scale on a good step: the scale halves only after an overflow "
                "(check which branch of your if is which)")
    grows = exp_scale == 2 * s0
    if not grows and scale == 2 * s0:
        if g0 + 2 == gi:
            return (f"off by one: you doubled the scale one step early, when the count became "
                    f"{g0 + 1} = growth_interval - 1; it doubles when the count REACHES "
                    "growth_interval")
        return ("you doubled the scale on every good step: it doubles only when the count of "
                "good steps in a row reaches growth_interval")
    if grows and scale == s0:
        late = _grows(fn, s0, gi, gi)  # grows one step past the interval
        if gi < 1999 and not late and _grows(fn, s0, 1999, gi):
            return (f"you ignored growth_interval: your scale grows after 2000 good steps "
                    f"whatever it is; here it grows after {gi}")
        if late:
            return (f"off by one: the count reached growth_interval ({gi}) and the scale did "
                    "not double; yours doubles one step later (a test with > waits one step "
                    "too many): double when the count == growth_interval")
        return (f"the count of good steps reached growth_interval ({gi}): the scale must double "
                "now (and the count start again from 0)")
    if grows and scale == 2 * s0 and good != 0:
        return (f"you doubled the scale without resetting the count (you returned {good}): after "
                "growing, the count of good steps starts again from 0")
    stale = (" (compute it from the arguments only: a function that keeps state of its own "
             "between calls goes wrong)")
    if scale != exp_scale:
        return f"the scale should be {exp_scale} after this step, you returned {scale}{stale}"
    if good == g0:
        return "you did not count the good step: the count grows by one on every finite step"
    if good == 0:
        return ("you reset the count on a good step that did not grow the scale: it starts "
                "again from 0 only after an overflow or after growing")
    return (f"the count of good steps should be {exp_good} after this step, you returned "
            f"{good}{stale}")


def check_scaler_step(scaler_step: Callable) -> None:
    """Exercise 08.2: ``scaler_step(scale, good_steps, grads_finite, growth_interval=2000)`` ->
    ``(new_scale, new_good_steps, take_step)``, one update of fp16 dynamic loss scaling.

    When the unscaled gradients are not all finite the step is skipped (``take_step`` False),
    the scale halves and the count of good steps resets to 0; otherwise the step is taken, the
    count grows by one, and when it reaches ``growth_interval`` the scale doubles and the count
    resets to 0: the library's ``LossScaler.update`` (``torch.amp.GradScaler``'s rules), which
    gives the expected answers. A tuple or a list is fine; the values and the bool are checked
    strictly.

    Cases: single steps from given states (good steps, overflows, the step that reaches the
    interval and the one before, the default interval 2000, interval 1, an overflow at scale 1),
    then a 13-step run with the function's own state fed back. Mistakes named: the step taken on
    an overflow, backing off without resetting the count (or counting the skipped step),
    growing on every good step, growing one step late (> instead of ==) or early, doubling
    without resetting the count, halving on a good step, a good step not counted or resetting
    the count, growth_interval ignored or without its default, floor division, a wrong form.
    """
    for case in _STEP_CASES:
        got = _scaler_answer(scaler_step, case, case.call)
        expected = _reference(case.scale, case.good_steps, case.finite, case.interval)
        if got != expected:
            raise ExerciseError(f"{case.call} returned {got}, expected {expected}: "
                                f"{_scaler_mistake(scaler_step, case, got)}. {_SCALER_HINT}.")
    scale, good = 2.0**16, 0
    ref = LossScaler(scale=scale, growth_interval=_SEQUENCE_INTERVAL)
    for i, finite in enumerate(_SEQUENCE):
        case = _StepCase(scale, good, finite, _SEQUENCE_INTERVAL)
        where = f"step {i + 1} of a run with growth_interval={_SEQUENCE_INTERVAL}: {case.call}"
        scale, good, take = _scaler_answer(scaler_step, case, where)
        ref.update(finite)
        expected = (ref.scale, ref.good_steps, finite)
        if (scale, good, take) != expected:
            raise ExerciseError(
                f"{where} returned {(scale, good, take)}, expected {expected}: with your own "
                "state fed back, the run drifts from the scaler's (does your function keep "
                f"state of its own between calls?). {_SCALER_HINT}.")
    correct(f"after {len(_SEQUENCE)} steps ({_SEQUENCE.count(False)} overflows) the scale is "
            f"{ref.scale:g}: it comes down quickly after overflows and creeps back up, so it "
            "stays near the largest value that does not overflow.")
