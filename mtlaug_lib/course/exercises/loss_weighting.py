"""Checks of notebook 05 (loss weighting and gradient combination): the two-task MGDA weight
and the PCGrad projection."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .common import ExerciseError, call_answer, correct


def _vec(x: torch.Tensor) -> str:
    """A short readable form of a small vector for a message: [1.0, -0.5, 2.25]."""
    return "[" + ", ".join(f"{v:.4g}" for v in x.tolist()) + "]"


def _mgda_weight(g1: torch.Tensor, g2: torch.Tensor) -> float:
    """The reference answer of exercise 05.1 (0.5 where g1 == g2: every a gives the same point)."""
    diff = g1 - g2
    if float(diff @ diff) == 0.0:
        return 0.5
    return min(1.0, max(0.0, float((g2 - g1) @ g2 / (diff @ diff))))


def check_mgda_two_tasks(mgda_two: Callable) -> None:
    """Exercise 05.1: ``mgda_two(g1, g2)`` -> the weight ``a`` of g1 in the minimum-norm point
    ``a * g1 + (1 - a) * g2`` of the segment between two gradients (a float in [0, 1]).

    ``g1`` and ``g2`` are 1-D float64 tensors of one length D. The cases cover an interior
    minimum far from 0.5 (so that ``0.5`` and ``1 - a`` fail), minima clipped at 1 and at 0
    (so that a missing or one-sided clip fails), random 6-D pairs, and ``g1 == g2``, where
    ``|g1 - g2|^2 = 0`` and every ``a`` is right (so that a division by zero fails).
    """
    f64 = torch.float64
    g = torch.Generator().manual_seed(0)
    cases = [
        ("an interior minimum", torch.tensor([[2.0, 0.0], [-0.5, 1.0]], dtype=f64)),  # a = 0.31
        ("g1 shorter, same direction", torch.tensor([[1.0, 0.0], [3.0, 0.0]], dtype=f64)),  # 1
        ("g2 the minimum-norm point", torch.tensor([[3.0, 1.0], [1.0, 0.0]], dtype=f64)),  # 0
        *(("random gradients", torch.randn(2, 6, generator=g, dtype=f64)) for _ in range(3)),
        ("g1 == g2", torch.tensor([[1.0, 2.0], [1.0, 2.0]], dtype=f64)),
    ]
    hint = ("Hint: minimise |a g1 + (1 - a) g2|^2 over a: the derivative vanishes at "
            "a = (g2 - g1) . g2 / |g1 - g2|^2; then clip a to [0, 1].")
    for what, G in cases:
        g1, g2 = G[0], G[1]
        expected = _mgda_weight(g1, g2)
        where = f"for g1={_vec(g1)}, g2={_vec(g2)} ({what})"
        try:
            got = call_answer(mgda_two, g1.clone(), g2.clone())
        except ExerciseError as err:
            if what != "g1 == g2":
                raise
            raise ExerciseError(
                f"{err}. Hint: here g1 == g2, so |g1 - g2|^2 = 0 and every a gives the same "
                "point: return any a in [0, 1] (0.5, say) instead of dividing by zero."
            ) from err
        if isinstance(got, torch.Tensor) and got.numel() != 1:
            raise ExerciseError(
                f"{where} you returned a tensor of shape {tuple(got.shape)}; return the weight "
                "a of g1 (one number), not the point a g1 + (1 - a) g2"
            )
        if isinstance(got, torch.Tensor) or (isinstance(got, (int, float))
                                             and not isinstance(got, bool)):
            got = float(got)
        else:
            raise ExerciseError(f"{where} you returned {got!r}; expected a float a in [0, 1]")
        if math.isnan(got):
            extra = (" |g1 - g2|^2 = 0 here: every a gives the same point, so return any a in "
                     "[0, 1] (0.5, say) instead of dividing by zero." if what == "g1 == g2"
                     else "")
            raise ExerciseError(f"{where} you returned nan.{extra} {hint}")
        if not 0.0 <= got <= 1.0:
            raise ExerciseError(
                f"{where} you returned {got:.4f}, outside [0, 1]: the point must lie on the "
                f"segment between g1 and g2 (the expected weight is {expected:.4f}). Clip the "
                "unconstrained minimiser to [0, 1] (at both ends)."
            )
        point, best = got * g1 + (1 - got) * g2, expected * g1 + (1 - expected) * g2
        if float(point.norm()) - float(best.norm()) > 1e-6 * (1 + float(best.norm())):
            if abs(got - (1 - expected)) < 1e-6:
                problem = ("that is 1 - a, the weight of g2: the exercise asks for a, the weight "
                           "of g1 (check which of g1, g2 your formula's numerator uses)")
            elif got == 0.5:
                problem = "0.5 is the answer only where |g1| = |g2|"
            else:
                problem = "that point of the segment is longer than the shortest one"
            raise ExerciseError(
                f"{where} you returned {got:.4f}, expected {expected:.4f}: {problem}. {hint}"
            )
    correct("the two-task MGDA weight has a closed form: no solver needed.")


def check_pcgrad_projection(project: Callable) -> None:
    """Exercise 05.2: ``project(g1, g2)`` -> g1 with its component against g2 removed when the
    two conflict (negative inner product), else g1 unchanged.

    ``g1`` and ``g2`` are 1-D float64 tensors of one length; the answer is a tensor of their
    shape. The cases include conflicting and non-conflicting pairs (so that a projection made
    always, or under the wrong sign of the condition, fails), gradients of different lengths,
    none of unit length (so that projecting onto g1, or dividing by |g2| instead of |g2|^2,
    fails), and orthogonal gradients (either branch is right there).
    """
    f64 = torch.float64
    g = torch.Generator().manual_seed(1)
    pairs = [
        torch.tensor([[1.0, 0.5, 0.0], [-2.0, 1.0, 1.0]], dtype=f64),  # conflict: dot = -1.5
        torch.tensor([[1.0, 2.0, 0.0], [0.5, 1.0, 3.0]], dtype=f64),  # no conflict: dot = 2.5
        torch.tensor([[3.0, 0.0, 1.0], [-0.2, 0.4, 0.1]], dtype=f64),  # conflict, small g2
        torch.tensor([[1.0, 1.0, 0.0], [1.0, -1.0, 2.0]], dtype=f64),  # orthogonal: dot = 0
    ]
    while len(pairs) < 8:  # random pairs, 4 conflicting and 4 not in all
        G = 2 * torch.randn(2, 5, generator=g, dtype=f64)
        conflicting = sum(float(p[0] @ p[1]) < 0 for p in pairs)
        if (float(G[0] @ G[1]) < 0) == (conflicting < 4):
            pairs.append(G)
    hint = ("Hint: only when g1 . g2 < 0, subtract from g1 its component along g2, "
            "(g1 . g2 / |g2|^2) g2; otherwise return g1 as it is.")
    for G in pairs:
        g1, g2 = G[0], G[1]
        dot = float(g1 @ g2)
        along = dot / float(g2 @ g2) * g2
        expected = g1 - along if dot < 0 else g1
        where = f"project({_vec(g1)}, {_vec(g2)}) (g1 . g2 = {dot:.4g})"
        got = call_answer(project, g1.clone(), g2.clone())
        if not isinstance(got, torch.Tensor) or got.shape != g1.shape:
            what = (f"a tensor of shape {tuple(got.shape)}" if isinstance(got, torch.Tensor)
                    else f"a {type(got).__name__}")
            raise ExerciseError(
                f"{where} returned {what}; expected a tensor of g1's shape {tuple(g1.shape)}"
            )
        got = got.detach().to(f64)
        if torch.allclose(got, expected, atol=1e-6):
            continue
        def close(v: torch.Tensor, got: torch.Tensor = got) -> bool:
            return torch.allclose(got, v, atol=1e-6)

        if dot >= 0:
            problem = ("the gradients do not conflict (g1 . g2 >= 0), so g1 must come back "
                       "unchanged: project only when g1 . g2 < 0")
        elif close(g1):
            problem = "the gradients conflict (g1 . g2 < 0), but you returned g1 unchanged"
        elif close(g1 - dot / float(g1 @ g1) * g1):
            problem = "you removed g1's component along g1 itself; remove its component along g2"
        elif close(g1 - dot / float(g2.norm()) * g2):
            problem = ("you divided by |g2| once; the component of g1 along g2 is (g1 . u) u "
                       "with the unit vector u = g2 / |g2|, that is (g1 . g2 / |g2|^2) g2")
        elif close(g1 + along):
            problem = "you added the component along g2; subtract it (g1 - ...)"
        elif close(along):
            problem = "you returned the component along g2; return g1 minus it"
        else:
            problem = (f"after the projection, g1' . g2 should be 0; yours gives "
                       f"{float(got @ g2):.4g}")
        raise ExerciseError(
            f"{where} returned {_vec(got)}, expected {_vec(expected)}: {problem}. {hint}"
        )
    correct("after the projection, the conflicting component is gone: g1' . g2 = 0.")
