"""Notebook 07's exercise checks (architectures): the right answers pass, and each wrong answer
students give is rejected with a message that names the mistake."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from mtlaug_lib import exercises
from mtlaug_lib.core.architectures import CrossStitchUnit, make_architecture, stage
from mtlaug_lib.core.models import make_model
from mtlaug_lib.core.tasks import DEPTH, Task, select_tasks
from mtlaug_lib.course.exercises import architectures as checks
from mtlaug_lib.data.multidigits import multidigits_tasks

pytestmark = pytest.mark.usefixtures("one_thread")

# ---- 07.1: a cross-stitch unit by hand ----------------------------------------------------------


def stitch_right(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    return [sum(alpha[t, s].view(1, -1, 1, 1) * m for s, m in enumerate(maps))
            for t in range(len(maps))]


def stitch_right_einsum(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    """Also right: one einsum over the stacked columns."""
    return list(torch.einsum("tsc,snchw->tnchw", alpha, torch.stack(maps)).unbind(0))


def stitch_right_tuple(maps: list[torch.Tensor], alpha: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Also right: broadcast T x T x C against T x N x C x H x W, a tuple returned."""
    x = torch.stack(maps)  # T x N x C x H x W
    w = alpha[:, :, None, :, None, None]  # T x T x 1 x C x 1 x 1
    return tuple((w * x.unsqueeze(0)).sum(1))


def _stitch_with(alpha_of: Callable[[torch.Tensor], torch.Tensor]) -> Callable:
    """The right formula with a wrong alpha (``alpha_of(alpha)``, T x T x C)."""
    return lambda maps, alpha: stitch_right(maps, alpha_of(alpha))


def _stitch_sum_channels(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    t_count, channels = alpha.shape[1:]
    x = torch.stack(maps, dim=1)  # N x T x C x H x W
    return [(x * alpha[t].view(1, t_count, channels, 1, 1)).sum(2) for t in range(t_count)]


def _stitch_view_order(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    x = torch.cat(maps, dim=1)  # N x (T C) x H x W, column-major: s * C + c
    n, _, h, w = x.shape
    t_count, channels = alpha.shape[1:]
    return [(x * alpha[t].reshape(1, -1, 1, 1)).view(n, channels, t_count, h, w).sum(2)
            for t in range(t_count)]


def _stitch_same_sum(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    mixed = sum(stitch_right(maps, alpha))
    return [mixed] * len(maps)


def _stitch_in_place(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    out = stitch_right(maps, alpha)
    maps[0].mul_(1.0)  # unchanged values, but then:
    maps[0].add_(1.0)
    return out


def _stitch_list_in_place(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    for t in range(len(maps)):
        maps[t] = sum(alpha[t, s].view(1, -1, 1, 1) * m for s, m in enumerate(maps))
    return maps


def _stitch_alpha_in_place(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    alpha /= alpha.sum(1, keepdim=True)
    return stitch_right(maps, alpha)


def _stitch_no_view(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    return [sum(alpha[t, s] * m for s, m in enumerate(maps)) for t in range(len(maps))]


def _stitch_no_view_where_it_fits(maps: list[torch.Tensor], alpha: torch.Tensor) -> list:
    """Weights along the width where W = C; right elsewhere (tests the diagnosis)."""
    if maps[0].shape[-1] == alpha.shape[-1]:
        return _stitch_no_view(maps, alpha)
    return stitch_right(maps, alpha)


def _stitch_own_map(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    return [sum(alpha[t, s].view(1, -1, 1, 1) * maps[t] for s in range(len(maps)))
            for t in range(len(maps))]


def _stitch_float32(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    out = []
    for t in range(len(maps)):
        acc = torch.zeros(maps[0].shape)  # float32, whatever the maps' dtype
        for s, m in enumerate(maps):
            acc += alpha[t, s].view(1, -1, 1, 1) * m  # in place: stays float32
        out.append(acc)
    return out


def _stitch_squeezed(maps: list[torch.Tensor], alpha: torch.Tensor) -> list[torch.Tensor]:
    """Right for T > 1, but squeeze() drops the T axis when T = 1."""
    return list(torch.einsum("tsc,snchw->tnchw", alpha, torch.stack(maps)).squeeze(0))


def _stitch_lone_map(maps: list[torch.Tensor], alpha: torch.Tensor) -> object:
    """One column has nothing to mix with: its map returned as it is, but not in a list."""
    if len(maps) == 1:
        return maps[0] * alpha[0, 0].view(1, -1, 1, 1)
    return stitch_right(maps, alpha)


STITCH_RIGHT = [stitch_right, stitch_right_einsum, stitch_right_tuple]

STITCH_WRONG: dict[str, tuple[Callable, str]] = {
    "alpha transposed": (_stitch_with(lambda a: a.transpose(0, 1)), "alpha transposed"),
    "sum over channels, not columns": (_stitch_sum_channels, "summed over the channels"),
    "columns and channels confused in a view": (_stitch_view_order, "mix different channels"),
    "one scalar per pair (channel 0)": (_stitch_with(lambda a: a[:, :, :1].expand_as(a)),
                                        "one weight per pair of columns \\(alpha\\[t, s, 0\\]"),
    "one scalar per pair (mean)": (_stitch_with(lambda a: a.mean(2, keepdim=True).expand_as(a)),
                                   "one weight per pair of columns \\(the mean"),
    "the same sum for every task": (_stitch_same_sum, "every task got the same map"),
    "the plain sum for every task": (lambda maps, a: [sum(maps)] * len(maps),
                                     "every task got the same map"),
    "rows divided by their sum": (_stitch_with(lambda a: a / a.sum(1, keepdim=True)),
                                  "normalised alpha"),
    "softmax over the columns": (_stitch_with(lambda a: a.softmax(1)), "softmax of alpha over "
                                 "the columns"),
    "a map changed in place": (_stitch_in_place, "changed a map of `maps` in place"),
    "the list overwritten": (_stitch_list_in_place, "changed the list `maps` in place"),
    "alpha normalised in place": (_stitch_alpha_in_place, "changed `alpha` in place"),
    "no view: weights along the width": (_stitch_no_view, "raised RuntimeError.*LAST dim.*view"),
    "weights along the width where W = C": (_stitch_no_view_where_it_fits,
                                            "T = C = W.*along the width"),
    "own map every time": (_stitch_own_map, "own map every time \\(maps\\[t\\]"),
    "no mixing": (_stitch_with(lambda a: a * torch.eye(a.shape[0]).unsqueeze(-1)),
                  "did not mix the columns"),
    "own column left out": (_stitch_with(lambda a: a * (1 - torch.eye(a.shape[0]).unsqueeze(-1))),
                            "left out task t's own column"),
    "a stacked tensor": (lambda maps, a: torch.stack(stitch_right(maps, a)),
                         "returned a tensor of shape \\(2, 1, 3, 4, 5\\).*unbind"),
    "a generator": (lambda maps, a: (m for m in stitch_right(maps, a)), "returned a generator"),
    "no return": (lambda maps, a: None, "returned None.*forget the return"),
    "numpy maps": (lambda maps, a: [m.numpy() for m in stitch_right(maps, a)], "a ndarray"),
    "one task only": (lambda maps, a: stitch_right(maps, a)[:1],
                      "returned a list of 1 map;.*T = 2"),
    "channels last": (lambda maps, a: [m.permute(0, 2, 3, 1) for m in stitch_right(maps, a)],
                      "has shape \\(1, 4, 5, 3\\)"),
    "float32 for float64 maps": (_stitch_float32, "dtype torch.float32.*float64"),
    "T = 1: squeezed away": (_stitch_squeezed, "T = 1 column.*returned a list of 2 maps"),
    "T = 1: a lone map, not a list": (_stitch_lone_map,
                                      "T = 1 column.*returned a tensor.*list of T = 1 maps"),
}


@pytest.mark.parametrize("answer", STITCH_RIGHT, ids=lambda f: f.__name__)
def test_stitch_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_cross_stitch(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(STITCH_WRONG))
def test_stitch_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = STITCH_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_cross_stitch(answer)


def test_stitch_reference_is_the_library_unit() -> None:
    """Independent of the checks: the library's CrossStitchUnit, given alpha row by row, gives
    the exercise's formula out[t][:, c] = sum_s alpha[t, s, c] * maps[s][:, c], element by
    element; and its initial weights are 0.9 for the own column and rows summing to 1."""
    g = torch.Generator().manual_seed(0)
    t_count, n, c, h, w = 3, 2, 4, 3, 2
    maps = [torch.randn(n, c, h, w, generator=g) for _ in range(t_count)]
    alpha = torch.randn(t_count, t_count, c, generator=g)
    unit = CrossStitchUnit(t_count, c)
    assert torch.allclose(torch.stack(list(unit.alpha)).sum(1), torch.ones(t_count, c))
    assert all(torch.all(unit.alpha[t][t] == 0.9) for t in range(t_count))
    with torch.no_grad():
        for t in range(t_count):
            unit.alpha[t].copy_(alpha[t])
        for t in range(t_count):
            out = unit.mix(t, maps)
            for ch in range(c):
                by_hand = sum(float(alpha[t, s, ch]) * maps[s][:, ch] for s in range(t_count))
                assert torch.allclose(out[:, ch], by_hand, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in
               zip(checks._mix(maps, alpha), checks._unit_mix(maps, alpha), strict=True))


def test_stitch_cases_tell_the_mistakes_apart() -> None:
    """Every case's expected answer differs from each named mistake somewhere (else that
    mistake would pass); checked on the first case, where they all apply."""
    case = checks._stitch_cases()[0]
    expected = checks._unit_mix(case.maps, case.alpha)
    for name in ["alpha transposed", "one scalar per pair (channel 0)", "rows divided by their sum",
                 "softmax over the columns", "own map every time", "no mixing"]:
        answer, _ = STITCH_WRONG[name]
        assert not checks._close(answer(case.maps, case.alpha), expected), name


# ---- 07.2: the parameters of a branch point -----------------------------------------------------


def count_right(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    return sum(blocks[:k]) + num_tasks * sum(blocks[k:]) + num_tasks * head


def count_right_extra_copies(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    """Also right: one whole network, plus T - 1 more copies of the branches and heads."""
    return sum(blocks) + head + (num_tasks - 1) * (sum(blocks[k:]) + head)


def count_right_loop(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    """Also right: block by block, with NumPy integers."""
    total = np.int64(0)
    for i, p in enumerate(blocks):
        total += p if i < k else num_tasks * p
    return total + num_tasks * head


def _count_edge_k0(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    if k == 0:  # separate networks... without their heads
        return num_tasks * sum(blocks)
    return count_right(blocks, head, num_tasks, k)


def _count_edge_kn(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    copied = blocks[-(len(blocks) - k):]  # blocks[-0:] is the whole list at k = n
    return sum(blocks[:k]) + num_tasks * sum(copied) + num_tasks * head


def _count_pops(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    shared = [blocks.pop(0) for _ in range(k)]
    return sum(shared) + num_tasks * (sum(blocks) + head)


def _count_index(blocks: list[int], head: int, num_tasks: int, k: int) -> int:
    return sum(blocks[:k]) + num_tasks * (blocks[k] + sum(blocks[k + 1:]) + head)


COUNT_RIGHT = [count_right, count_right_extra_copies, count_right_loop]

COUNT_WRONG: dict[str, tuple[Callable, str]] = {
    "shared blocks counted T times": (
        lambda b, h, t, k: t * (sum(b[:k]) + sum(b[k:])) + t * h, "shared blocks T times"),
    "copied blocks counted once": (lambda b, h, t, k: sum(b) + t * h, "copied blocks once"),
    "shared and copied swapped": (
        lambda b, h, t, k: t * sum(b[:k]) + sum(b[k:]) + t * h, "you swapped them"),
    "copies on top of the original": (
        lambda b, h, t, k: sum(b) + t * sum(b[k:]) + t * h, "T \\+ 1 times"),
    "shared = first k + 1": (
        lambda b, h, t, k: sum(b[:k + 1]) + t * sum(b[k + 1:]) + t * h, "first k \\+ 1 blocks"),
    "shared = first k - 1": (
        lambda b, h, t, k: sum(b[:k - 1]) + t * sum(b[k - 1:]) + t * h, "first k - 1 blocks"),
    "shared = first k - 1, clamped": (
        lambda b, h, t, k: sum(b[:max(0, k - 1)]) + t * sum(b[max(0, k - 1):]) + t * h,
        "first k - 1 blocks"),
    "shared = the last k": (
        lambda b, h, t, k: sum(b[len(b) - k:]) + t * sum(b[:len(b) - k]) + t * h,
        "LAST k blocks"),
    "no heads": (lambda b, h, t, k: sum(b[:k]) + t * sum(b[k:]), "forgot the heads"),
    "one head": (lambda b, h, t, k: sum(b[:k]) + t * sum(b[k:]) + h, "counted one head"),
    "two tasks hard-coded": (lambda b, h, t, k: sum(b[:k]) + 2 * (sum(b[k:]) + h),
                             "2 tasks whatever num_tasks"),
    "three tasks hard-coded": (lambda b, h, t, k: sum(b[:k]) + 3 * (sum(b[k:]) + h),
                               "3 tasks whatever num_tasks"),
    "wrong at k = 0 only": (_count_edge_k0, "wrong at k = 0.*separate networks"),
    "wrong at k = n only": (_count_edge_kn, "wrong at k = n.*-0:"),
    "a float": (lambda b, h, t, k: count_right(b, h, t, k) / 1, "float.*use \\*, \\+ and sum"),
    "a tensor": (lambda b, h, t, k: torch.tensor(b)[:k].sum() + t * (torch.tensor(b)[k:].sum() + h),
                 "\\(Tensor\\).*return a Python int"),
    "no return": (lambda b, h, t, k: None, "returned None.*forget the `return`"),
    "block_params changed in place": (_count_pops, "changed `block_params` in place"),
    "b[k] out of range at k = n": (_count_index, "raised IndexError.*nothing is copied"),
}


@pytest.mark.parametrize("answer", COUNT_RIGHT, ids=lambda f: f.__name__)
def test_count_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_branch_parameters(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(COUNT_WRONG))
def test_count_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = COUNT_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_branch_parameters(answer)


@pytest.mark.parametrize("wrong", list(COUNT_WRONG))
def test_count_made_up_cases_alone_reject_wrong_answers(wrong: str, monkeypatch) -> None:
    """The made-up block counts (every k from 0 to n, T = 3, 2 and 1) catch each mistake by
    themselves, whatever the library's models look like."""
    monkeypatch.setattr(checks, "_library_cases", lambda: ())
    answer, message = COUNT_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_branch_parameters(answer)


def test_count_check_compares_with_the_library() -> None:
    """An answer right on every made-up case but wrong on the library's models is rejected, and
    the message names the library model it was compared with."""
    made_up = {c.call for c in checks._count_cases() if not c.library}

    def right_on_made_up_only(b: list[int], h: int, t: int, k: int) -> int:
        right = count_right(b, h, t, k)
        return right if f"count({b}, {h}, {t}, {k})" in made_up else right + 1

    with pytest.raises(exercises.ExerciseError, match="make_architecture\\('branched'.*total"):
        exercises.check_branch_parameters(right_on_made_up_only)


@pytest.mark.parametrize("backbone", ["article", "encoder_decoder"])
def test_count_formula_matches_the_library(backbone: str) -> None:
    """Independent of the checks: the per-block counts of the backbone cut into blocks
    (``stage``) add up to the backbone, and the formula gives every branched model's total."""
    if backbone == "article":
        tasks, opts = select_tasks(multidigits_tasks(), ["left", "right"]), {}
    else:
        tasks = {n: Task(n, DEPTH) for n in ("a", "b", "c")}
        opts = {"width": 2, "depth": 2}
    reference = make_model(tasks, backbone, seed=0, **opts)
    blocks = [sum(p.numel() for p in b.parameters()) for b in stage(reference.backbone).blocks]
    assert sum(blocks) == sum(p.numel() for p in reference.backbone.parameters())
    head = sum(p.numel() for p in reference.heads[next(iter(tasks))].parameters())
    for k in range(len(blocks) + 1):
        model = make_architecture("branched", tasks, backbone, seed=0, branch_point=k, **opts)
        assert model.parameter_report()["total"] == count_right(blocks, head, len(tasks), k)
    cases = [c for c in checks._library_cases() if c.tasks == len(tasks)
             and len(c.blocks) == len(blocks)]
    assert [c.k for c in cases] == list(range(len(blocks) + 1))
    assert all(list(c.blocks) == blocks and c.head == head for c in cases)


# ---- both ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(("check", "answer"), [(exercises.check_cross_stitch, stitch_right),
                                               (exercises.check_branch_parameters, count_right)],
                         ids=["cross_stitch", "branch_parameters"])
def test_checks_leave_the_random_state_alone(check: Callable, answer: Callable, capsys) -> None:
    """A check in a notebook must not change what the cells after it draw (the first call
    builds the library's models: the cache is cleared so that this one does)."""
    checks._library_cases.cache_clear()
    state = torch.get_rng_state()
    check(answer)
    assert torch.equal(torch.get_rng_state(), state)
