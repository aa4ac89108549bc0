"""Checks of notebook 07 (architectures): a cross-stitch unit by hand, and the parameters of a
branch point.

The two exercises:

- ``cross_stitch(maps, alpha)``: ``maps`` a list of T feature maps (each N x C x H x W, one per
  task's column), ``alpha`` a T x T x C tensor; task t's mixed map is
  ``sum_s alpha[t, s, c] * maps[s][:, c]`` for every channel c. This is the library's
  ``CrossStitchUnit`` (per channel, ``unit.alpha[t][s, c]``), and the check takes its expected
  answers from one built with the same alpha; a second reference (one einsum) names the
  mistakes.
- ``count(block_params, head_params, num_tasks, k)``: the parameters of a model whose first k
  backbone blocks are shared and the rest copied per task, one head per task. Besides small
  made-up block counts, the check builds the library's ``branched`` models (the article's
  backbone, and a tiny encoder-decoder) and compares with their ``parameter_report()["total"]``.

A wrong answer is matched against the mistakes students make, so the hint names the slip.
"""

from __future__ import annotations

import functools
import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ...core.architectures import CrossStitchUnit, make_architecture
from ...core.tasks import DEPTH, Task, select_tasks
from ...data.multidigits import multidigits_tasks
from .common import ExerciseError, call_answer, correct

_ATOL = 1e-5  # float32 sums of a few products stay far below this

# --------------------------------------------------------------------------- exercise 07.1

_STITCH_HINT = (
    "Hint: task t's map is the sum over the columns s of alpha[t, s].view(1, -1, 1, 1) * "
    "maps[s] (the C weights viewed as 1 x C x 1 x 1, so that they weight the channels); one new "
    "map per task, alpha used as it is"
)


def _mix(maps: Sequence[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    """The reference formula: T maps N x C x H x W and alpha T x T x C -> T mixed maps,
    ``out[t][:, c] = sum_s alpha[t, s, c] * maps[s][:, c]``."""
    mixed = torch.einsum("tsc,snchw->tnchw", alpha.to(maps[0].dtype), torch.stack(list(maps)))
    return list(mixed.unbind(0))


def _unit_mix(maps: Sequence[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    """The library's answer: a ``CrossStitchUnit`` holding ``alpha`` (T x T x C) mixes ``maps``."""
    t_count, _, channels = alpha.shape
    unit = CrossStitchUnit(t_count, channels).to(alpha.dtype)
    with torch.no_grad():
        for t in range(t_count):
            unit.alpha[t].copy_(alpha[t])
        return [unit.mix(t, list(maps)) for t in range(t_count)]


def _initial_alpha(t_count: int, channels: int) -> torch.Tensor:
    """The library's initial weights (a fresh ``CrossStitchUnit``) as one T x T x C tensor."""
    unit = CrossStitchUnit(t_count, channels)
    return torch.stack([a.detach() for a in unit.alpha])


@dataclass
class _StitchCase:
    what: str
    maps: list[torch.Tensor]
    alpha: torch.Tensor


def _stitch_cases() -> list[_StitchCase]:
    """The cases, in order: T != C first (a confusion of the two then shows in the shapes),
    then T = C = W (where such a confusion runs without an error), T = 1, the library's
    initial weights."""
    g = torch.Generator().manual_seed(7)

    def maps(t_count: int, shape: tuple[int, ...], dtype: torch.dtype) -> list[torch.Tensor]:
        return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
                for _ in range(t_count)]

    def alpha(t_count: int, channels: int, dtype: torch.dtype) -> torch.Tensor:
        # positive, rows far from summing to 1, different per channel and not symmetric
        a = 0.1 + 1.5 * torch.rand(t_count, t_count, channels, generator=g, dtype=torch.float64)
        return a.to(dtype)

    f32, f64 = torch.float32, torch.float64
    return [
        _StitchCase("T = 2 columns of maps 1 x 3 x 4 x 5 (float32)", maps(2, (1, 3, 4, 5), f32),
                    alpha(2, 3, f32)),
        _StitchCase("T = 3 columns of maps 2 x 4 x 3 x 5 (float64)", maps(3, (2, 4, 3, 5), f64),
                    alpha(3, 4, f64)),
        _StitchCase("T = 3 columns of maps 2 x 3 x 2 x 3 (T = C = W, float32)",
                    maps(3, (2, 3, 2, 3), f32), alpha(3, 3, f32)),
        _StitchCase("T = 1 column of maps 2 x 3 x 4 x 4 with alpha = 1 (the identity)",
                    maps(1, (2, 3, 4, 4), f32), torch.ones(1, 1, 3)),
        _StitchCase("T = 3 columns of maps 1 x 2 x 3 x 3 with the library's initial alpha "
                    "(0.9 for the own column, 0.05 for each other)",
                    maps(3, (1, 2, 3, 3), f32), _initial_alpha(3, 2)),
    ]


def _describe(x: object) -> str:
    """How a message names a returned value: its type, and its shape if a tensor."""
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def _stitch_answer(fn: Callable, where: str, case: _StitchCase) -> list[torch.Tensor]:
    """Call a student's ``fn(maps, alpha)`` on copies and check what it may not do whatever
    the values: change its inputs in place, return anything but T tensors of the maps' shape
    and dtype. Returns the answer, detached, on the CPU."""
    if not callable(fn):
        call_answer(fn)  # raises the course's "expected a function" error
    given = [m.clone() for m in case.maps]
    items = list(given)
    alpha = case.alpha.clone()
    t_count = len(case.maps)
    # Called here, not through call_answer, whose message would print the whole input maps.
    try:
        got = fn(given, alpha)
    except NotImplementedError:  # an exercise left as given
        raise
    except Exception as err:  # a student's bug: a wrong answer, with the cause
        why = ""
        if isinstance(err, RuntimeError) and "must match the size" in str(err):
            why = (" (a weight vector alpha[t, s] of shape C broadcasts against the LAST dim of "
                   "an N x C x H x W map, the width, unless viewed as (1, C, 1, 1))")
        raise ExerciseError(f"{where}: cross_stitch raised {type(err).__name__}: {err}{why}. "
                            f"{_STITCH_HINT}.") from err
    in_place = ("Hint: build new tensors (*, + and sum() return new ones) instead of writing "
                "into the arguments (*=, +=, .mul_(...), maps[t] = ...)")
    if len(given) != t_count or any(a is not b for a, b in zip(given, items, strict=False)):
        raise ExerciseError(
            f"{where}: cross_stitch changed the list `maps` in place (its items were replaced): "
            "the caller's list no longer holds the columns it passed in, and a later task reads "
            f"an already mixed map. {in_place}")
    if any(not torch.equal(a, b) for a, b in zip(items, case.maps, strict=True)):
        raise ExerciseError(f"{where}: cross_stitch changed a map of `maps` in place. {in_place}")
    if not torch.equal(alpha, case.alpha):
        raise ExerciseError(f"{where}: cross_stitch changed `alpha` in place (the unit's learned "
                            f"weights). {in_place}")
    shape = tuple(case.maps[0].shape)
    expected = f"a list of T = {t_count} maps of shape {shape}, one per task"
    if got is None:
        raise ExerciseError(f"{where}: cross_stitch returned None; expected {expected} (did you "
                            "forget the return?)")
    if isinstance(got, torch.Tensor):
        stacked = " (list(x.unbind(0)) makes the list)" if got.shape == (t_count, *shape) else ""
        raise ExerciseError(f"{where}: cross_stitch returned {_describe(got)}; expected "
                            f"{expected}{stacked}")
    if not isinstance(got, (list, tuple)):
        raise ExerciseError(f"{where}: cross_stitch returned {_describe(got)}; expected {expected}")
    if len(got) != t_count:
        raise ExerciseError(f"{where}: cross_stitch returned a list of {len(got)} map"
                            f"{'' if len(got) == 1 else 's'}; expected {expected}")
    n, channels = shape[:2]
    for t, m in enumerate(got):
        if not isinstance(m, torch.Tensor):
            raise ExerciseError(f"{where}: task {t}'s map is {_describe(m)}; expected {expected}")
        if tuple(m.shape) != shape:
            why = ""
            if tuple(m.shape) == (n, t_count, *shape[2:]) and t_count != channels:
                why = (": you summed over the channels (size C) where the columns (size T) "
                       "should be summed; a cross-stitch unit mixes columns, channel by channel")
            raise ExerciseError(f"{where}: task {t}'s map has shape {tuple(m.shape)}; expected "
                                f"{expected}{why}. {_STITCH_HINT}.")
        if m.dtype != case.maps[0].dtype:
            raise ExerciseError(
                f"{where}: task {t}'s map has dtype {m.dtype}; expected the maps' dtype "
                f"{case.maps[0].dtype} (start a sum from 0 or from a product, not from a "
                "torch.zeros of another dtype)")
    return [m.detach().cpu() for m in got]


def _close(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> bool:
    """Whether two lists of maps agree."""
    return all(torch.allclose(x.to(torch.float64), y.to(torch.float64), atol=_ATOL, rtol=1e-5)
               for x, y in zip(a, b, strict=True))


def _along(alpha: torch.Tensor, maps: Sequence[torch.Tensor], dim: int) -> list[torch.Tensor]:
    """The mix with each weight vector alpha[t, s] (C) broadcast along ``dim`` of the maps
    instead of the channels (what a missing ``.view(1, -1, 1, 1)`` gives where the sizes fit)."""
    shape = [1, 1, 1, 1]
    shape[dim] = -1
    return [sum(alpha[t, s].view(shape) * m for s, m in enumerate(maps))
            for t in range(len(maps))]


def _leaks_channels(fn: Callable, case: _StitchCase) -> bool:
    """Whether the student's function puts a column's channel c into another channel: fed maps
    that are zero but for one channel of one column, its answer must be zero elsewhere."""
    t_count, channels = len(case.maps), case.maps[0].shape[1]
    for s in range(t_count):
        for c in range(channels):
            probe = [torch.zeros_like(m) for m in case.maps]
            probe[s][:, c] = 1.0
            try:
                got = fn(probe, case.alpha.clone())
                others = [m.detach().cpu()[:, [d for d in range(channels) if d != c]] for m in got]
            except Exception:  # only a diagnosis: an answer that fails here is wrong anyway
                return False
            if any(bool(o.abs().max() > _ATOL) for o in others if o.numel()):
                return True
    return False


def _stitch_mistake(fn: Callable, got: list[torch.Tensor], case: _StitchCase) -> str:
    """What a wrong ``cross_stitch`` answer ``got`` did (``fn`` is probed if nothing fits)."""
    maps, alpha = case.maps, case.alpha.to(torch.float64)
    m64 = [m.to(torch.float64) for m in maps]
    t_count, (h, w), channels = len(maps), maps[0].shape[2:], maps[0].shape[1]
    eye = torch.eye(t_count, dtype=torch.float64).unsqueeze(-1)
    if t_count > 1 and all(torch.allclose(got[0], m, atol=_ATOL) for m in got[1:]):
        return ("every task got the same map (the same sum returned for every task?): task t "
                "has its own row of weights, alpha[t], so each task gets its own mix")
    candidates: list[tuple[str, Callable[[], list[torch.Tensor]]]] = [
        ("you used alpha[s, t] (alpha transposed): the first index of alpha is the task that "
         "receives, the second the column it takes from", lambda: _mix(m64, alpha.transpose(0, 1))),
        ("you normalised alpha (divided by its sum over the columns); the unit uses its weights "
         "as they are: they are learned freely, nothing makes a row sum to 1",
         lambda: _mix(m64, alpha / alpha.sum(1, keepdim=True))),
        ("you took a softmax of alpha over the columns; the unit uses its weights as they are "
         "(they are learned freely, nothing makes a row sum to 1)",
         lambda: _mix(m64, alpha.softmax(1))),
        ("you took a softmax of alpha over the tasks; the unit uses its weights as they are",
         lambda: _mix(m64, alpha.softmax(0))),
        ("you used one weight per pair of columns (alpha[t, s, 0]); a per-channel unit has one "
         "for every channel: alpha[t, s, c] weights channel c",
         lambda: _mix(m64, alpha[:, :, :1].expand_as(alpha))),
        ("you used one weight per pair of columns (the mean over the channels); a per-channel "
         "unit has one for every channel: alpha[t, s, c] weights channel c",
         lambda: _mix(m64, alpha.mean(2, keepdim=True).expand_as(alpha))),
        ("you weighted task t's own map every time (maps[t] where maps[s] belongs): the sum "
         "runs over the columns s",
         lambda: [sum(alpha[t, s].view(1, -1, 1, 1) * m64[t] for s in range(t_count))
                  for t in range(t_count)]),
        ("you did not mix the columns: task t's map must take every column s, weighted by "
         "alpha[t, s]", lambda: _mix(m64, alpha * eye)),
        ("you left out task t's own column (s = t): the sum runs over every column, its own "
         "included", lambda: _mix(m64, alpha * (1 - eye))),
    ]
    if w == channels:
        candidates.append((
            "your weights vary along the width, not the channels: alpha[t, s] has C entries and "
            "broadcasts against the LAST dim of an N x C x H x W map; view it as (1, C, 1, 1)",
            lambda: _along(alpha, m64, 3)))
    if h == channels:
        candidates.append((
            "your weights vary along the height, not the channels: view alpha[t, s] as "
            "(1, C, 1, 1)", lambda: _along(alpha, m64, 2)))
    for what, candidate in candidates:
        if _close(got, candidate()):
            return what
    if _leaks_channels(fn, case):
        return ("your maps mix different channels (a column's channel c shows up in other "
                "channels): channel c of task t's map takes channel c of every column, and "
                "nothing else; a cross-stitch unit mixes columns, not channels")
    return "some values are wrong"


def check_cross_stitch(cross_stitch: Callable) -> None:
    """Exercise 07.1: ``cross_stitch(maps, alpha)`` -> the list of T mixed maps.

    ``maps``: a list of T feature maps, each N x C x H x W (one per task's column); ``alpha``:
    T x T x C, ``alpha[t, s, c]`` how much of column s's channel c goes into task t's channel
    c. Task t's map is ``sum_s alpha[t, s, c] * maps[s][:, c]``, the library's
    ``CrossStitchUnit`` (``unit.alpha[t][s, c]``), whose output for the same alpha is the
    expected answer. The inputs must not change.

    Cases: T = 2 and 3, C != T, float32 and float64; T = C = W (where a confusion of columns
    and channels, or weights broadcast along the width, runs without an error); T = 1 with
    alpha = 1 (the identity); the library's initial alpha. Mistakes named: alpha transposed,
    rows normalised (sum or softmax), one weight per pair of columns, the same map for every
    task, the own map weighted every time, no mixing, the own column left out, weights along
    the width or height, channels mixed (by probing the function with one-channel inputs),
    changing the inputs in place, a wrong type, length, shape or dtype.
    """
    for case in _stitch_cases():
        where = f"for {case.what}"
        got = _stitch_answer(cross_stitch, where, case)
        expected = _unit_mix(case.maps, case.alpha)
        if not _close(got, expected):
            raise ExerciseError(
                f"{where}: {_stitch_mistake(cross_stitch, got, case)}. {_STITCH_HINT}.")
    correct("a cross-stitch unit holds T x T weights per channel; started near the identity, each "
            "task begins with its own column, and training decides how much to take from the "
            "others.")


# --------------------------------------------------------------------------- exercise 07.2

_COUNT_HINT = (
    "Hint: the first k blocks exist once, each later block once per task, and every task has "
    "its own head: sum(block_params[:k]) + num_tasks * sum(block_params[k:]) + "
    "num_tasks * head_params"
)


def _count(blocks: Sequence[int], head: int, t_count: int, k: int) -> int:
    """The reference answer: shared blocks once, copied blocks and heads once per task."""
    return sum(blocks[:k]) + t_count * sum(blocks[k:]) + t_count * head


# Answers students give to exercise 07.2, each with the hint that explains its mistake.
_COUNT_MISTAKES: list[tuple[Callable[[Sequence[int], int, int, int], int], str]] = [
    (lambda b, h, t, k: t * sum(b) + t * h,
     "you counted the shared blocks T times: the first k blocks exist once, however many tasks "
     "read them"),
    (lambda b, h, t, k: sum(b) + t * h,
     "you counted the copied blocks once: each block after the branch point exists once per "
     "task"),
    (lambda b, h, t, k: t * sum(b[:k]) + sum(b[k:]) + t * h,
     "you swapped them: the shared blocks (the first k) exist once, the copied ones (the rest) "
     "once per task"),
    (lambda b, h, t, k: sum(b) + t * sum(b[k:]) + t * h,
     "you counted the copied blocks T + 1 times (the original and a copy per task): the copies "
     "replace the original"),
    (lambda b, h, t, k: sum(b[:k + 1]) + t * sum(b[k + 1:]) + t * h,
     "off by one: you shared the first k + 1 blocks; the branch point k shares the first k "
     "(block_params[:k])"),
    (lambda b, h, t, k: sum(b[:k - 1]) + t * sum(b[k - 1:]) + t * h,
     "off by one: you shared the first k - 1 blocks (and at k = 0, b[:-1] is all but the last); "
     "the branch point k shares the first k (block_params[:k])"),
    (lambda b, h, t, k: sum(b[:max(k - 1, 0)]) + t * sum(b[max(k - 1, 0):]) + t * h,
     "off by one: you shared the first k - 1 blocks; the branch point k shares the first k "
     "(block_params[:k])"),
    (lambda b, h, t, k: sum(b[len(b) - k:]) + t * sum(b[:len(b) - k]) + t * h,
     "you shared the LAST k blocks; the branch point shares the first k (the input's end) and "
     "copies the rest"),
    (lambda b, h, t, k: sum(b[:k]) + t * sum(b[k:]),
     "you forgot the heads: every task has its own head of head_params parameters"),
    (lambda b, h, t, k: sum(b[:k]) + t * sum(b[k:]) + h,
     "you counted one head; every task has its own: num_tasks * head_params"),
    (lambda b, h, t, k: sum(b[:k]) + 2 * sum(b[k:]) + 2 * h,
     "you used 2 tasks whatever num_tasks is"),
    (lambda b, h, t, k: sum(b[:k]) + 3 * sum(b[k:]) + 3 * h,
     "you used 3 tasks whatever num_tasks is"),
]


def _count_in(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@dataclass(frozen=True)
class _CountCase:
    blocks: tuple[int, ...]
    head: int
    tasks: int
    k: int
    expected: int
    library: str = ""  # which library model gives ``expected``, if one does
    backbone: str = ""  # that model's backbone

    @property
    def call(self) -> str:
        return f"count({list(self.blocks)}, {self.head}, {self.tasks}, {self.k})"


@functools.cache
def _library_cases() -> tuple[_CountCase, ...]:
    """The library's branched models at every branch point, with their per-block and head
    counts read from the model itself (its trunk, then one task's branch) and its
    ``parameter_report()["total"]``: the article's backbone with MultiDigits' two digit tasks,
    and a tiny encoder-decoder (width 2, depth 2) with three depth heads (heads alike)."""
    settings = [
        ("the article's backbone", "article", select_tasks(multidigits_tasks(), ["left", "right"]),
         {}),
        ("an encoder-decoder (width 2, depth 2)", "encoder_decoder",
         {n: Task(n, DEPTH) for n in ("depth_a", "depth_b", "depth_c")}, {"width": 2, "depth": 2}),
    ]
    cases = []
    for label, backbone, tasks, opts in settings:
        k = 0
        while True:
            model = make_architecture("branched", tasks, backbone, seed=0, branch_point=k, **opts)
            first = model.tasks[0]
            blocks = tuple(_count_in(b) for b in [*model.trunk, *model.branches[first]])
            heads = {_count_in(h) for h in model.heads.values()}
            if len(heads) != 1:  # the exercise assumes heads alike
                raise RuntimeError(f"{label}: the heads differ in size ({sorted(heads)})")
            names = ", ".join(model.blocks)
            cases.append(_CountCase(
                blocks, heads.pop(), len(tasks), k, model.parameter_report()["total"],
                f"the library's make_architecture('branched', ...) with {label} (blocks {names}) "
                f"and {len(tasks)} tasks, branch_point={k}: parameter_report()['total']",
                backbone))
            if k == len(blocks):
                break
            k += 1
    return tuple(cases)


def _count_cases() -> list[_CountCase]:
    made_up = [((120, 3400, 56000, 7800), 90, 3), ((5, 60, 700), 8, 2), ((11, 22), 3, 1)]
    cases = [_CountCase(b, h, t, k, _count(b, h, t, k))
             for b, h, t in made_up for k in range(len(b) + 1)]
    return cases + list(_library_cases())


def _count_mistake(answers: list[tuple[_CountCase, object]]) -> str:
    """The hint of the first known mistake that gives all the student's answers; else, if the
    answers are wrong only at k = 0 or only at k = n, that edge; else the general hint."""
    for wrong, hint in _COUNT_MISTAKES:
        if all(wrong(c.blocks, c.head, c.tasks, c.k) == got for c, got in answers):
            return hint
    wrong_at = {(c.k == 0, c.k == len(c.blocks)) for c, got in answers if got != c.expected}
    if wrong_at == {(True, False)}:
        return ("your answer is right for 0 < k < n but wrong at k = 0: nothing is shared, so "
                "the model is T separate networks, each with its own head: "
                "num_tasks * (sum(block_params) + head_params)")
    if wrong_at == {(False, True)}:
        return ("your answer is right for 0 < k < n but wrong at k = n (hard sharing): every "
                "block is shared and nothing is copied (block_params[n:] is empty; beware "
                "block_params[-0:], which is the whole list), so one backbone and T heads")
    return _COUNT_HINT.removeprefix("Hint: ")


def check_branch_parameters(count: Callable) -> None:
    """Exercise 07.2: ``count(block_params, head_params, num_tasks, k)`` -> the parameters of a
    multi-task model whose first ``k`` backbone blocks are shared and the others copied per
    task, with one head per task (all heads alike): ``block_params`` the blocks' parameter
    counts in order (a list of ints), ``head_params`` one head's; an int.

    Cases: made-up counts (T = 3, 2 and 1) at every k from 0 (separate networks) to n (hard
    sharing), and the library's ``branched`` models at every branch point (the article's
    backbone with two digit tasks, a tiny encoder-decoder with three heads), whose per-block and
    head counts are read from the model and whose ``parameter_report()["total"]`` is the
    expected answer. Mistakes named: shared blocks counted T times, copied ones once, the two
    swapped, copies counted T + 1 times, k off by one either way, the last k blocks shared,
    no heads, one head, a fixed number of tasks, an answer wrong only at k = 0 or only at k = n,
    changing ``block_params`` in place, a wrong type.
    """
    cases = _count_cases()
    # All answers first: the mistake is diagnosed from all of them (one case can fit several).
    answers: list[tuple[_CountCase, object]] = []
    for case in cases:
        given = list(case.blocks)
        try:
            got = call_answer(count, given, case.head, case.tasks, case.k)
        except ExerciseError as err:
            edge = ("at k = n every block is shared and nothing is copied: take the blocks with "
                    "slices (block_params[k:] is then empty), not with block_params[k]"
                    if case.k == len(case.blocks) else _COUNT_HINT.removeprefix("Hint: "))
            raise ExerciseError(f"{err}. Hint: {edge}.") from err
        if given != list(case.blocks):
            raise ExerciseError(f"{case.call} changed `block_params` in place (it became "
                                f"{given}); read the list, don't sort, pop or assign into it")
        if got is None:
            raise ExerciseError(f"{case.call} returned None. Hint: did you forget the `return`?")
        if isinstance(got, bool) or not isinstance(got, numbers.Integral):
            hint = (" (an answer computed with / is a float: use *, + and sum)"
                    if isinstance(got, float) else "")
            raise ExerciseError(f"{case.call} returned {got!r} ({type(got).__name__}); a number "
                                f"of parameters is a whole number: return a Python int{hint}")
        answers.append((case, got))
    for case, got in answers:
        if got != case.expected:
            source = f" ({case.library})" if case.library else ""
            raise ExerciseError(f"{case.call} returned {got!r}, expected {case.expected}{source}. "
                                f"Hint: {_count_mistake(answers)}.")
    article = [c for c in cases if c.backbone == "article"]
    separate, hard = article[0], article[-1]
    correct(f"with the article's backbone and two digit tasks, the heads hold "
            f"{2 * hard.head:,} of the {hard.expected:,} parameters: branching the backbone "
            f"costs little ({separate.expected:,} at k = 0, {hard.expected:,} at k = "
            f"{hard.k}); in a deep backbone without big heads, the branch point sets the size.")
