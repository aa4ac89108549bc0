"""Gradient methods at the edges: CAGrad at Pareto-stationary gradients, IMTL-G with zero rows.

CAGrad is checked against brute force: the worst improvement ``min_i <g_i, d>`` of the returned
``d`` must match the best over a dense grid of the ball (a lower bound on the optimum ``V``) and
stay below the best value of the dual ``F(w) = <g_w, g_0> + c |g_0| |g_w|`` over a dense grid of
the simplex (an upper bound on ``V``, by weak duality). IMTL-G is checked against torchjd's
formula ``w = pinv(A) n / sum(pinv(A) n)`` (A: Gram matrix, n: the gradients' norms).
Gradients are float64 so that tolerances can be tight.
"""

from __future__ import annotations

import math
from functools import lru_cache

import pytest
import torch

from mtlaug_lib.training.gradients import cagrad, cagrad_weights, gram, imtl_g

F64 = torch.float64


def _rng(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def worst(G: torch.Tensor, d: torch.Tensor) -> float:
    """``min_i <g_i, d>``: the worst task's first-order improvement along d."""
    return float((G @ d).min())


def paper_formula(G: torch.Tensor, c: float) -> torch.Tensor:
    """The direction the old code returned: ``g_0 + c |g_0| g_w / |g_w|`` with CAGrad's dual
    weights, and ``g_0`` where ``|g_w|`` is (numerically) zero."""
    A = gram(G)
    w = torch.as_tensor(cagrad_weights(A, c), dtype=F64)
    g0, gw = G.mean(0), w @ G
    norm_w, norm_0 = float(gw.norm()), float(g0.norm())
    scale = c * norm_0 / norm_w if norm_w > 1e-12 * max(norm_0, 1e-300) else 0.0
    return g0 + scale * gw


@lru_cache
def _simplex_grid(T: int, n: int) -> torch.Tensor:
    """All points of the simplex with coordinates in multiples of 1/n (T = 2 or 3)."""
    if T == 2:
        a = torch.arange(n + 1, dtype=F64) / n
        return torch.stack([a, 1 - a], dim=1)
    i, j = torch.meshgrid(torch.arange(n + 1), torch.arange(n + 1), indexing="ij")
    keep = i + j <= n
    i, j = i[keep].to(F64) / n, j[keep].to(F64) / n
    return torch.stack([i, j, 1 - i - j], dim=1)


@lru_cache
def _unit_directions(k: int, n: int) -> torch.Tensor:
    """n roughly uniform unit vectors in R^k (k = 1, 2, 3)."""
    if k == 1:
        return torch.tensor([[1.0], [-1.0]], dtype=F64)
    if k == 2:
        t = torch.arange(n, dtype=F64) * (2 * math.pi / n)
        return torch.stack([t.cos(), t.sin()], dim=1)
    idx = torch.arange(n, dtype=F64) + 0.5  # Fibonacci sphere
    z = 1 - 2 * idx / n
    phi = idx * math.pi * (3 - math.sqrt(5))
    r = (1 - z * z).sqrt()
    return torch.stack([r * phi.cos(), r * phi.sin(), z], dim=1)


def brute_force_cagrad(G: torch.Tensor, c: float) -> tuple[float, float]:
    """Bounds ``(lower, upper)`` on ``V = max over |d - g_0| <= c|g_0| of min_i <g_i, d>``.

    ``lower``: the best d on a dense grid of the ball, restricted to the span of the gradients
    (components orthogonal to it change no ``<g_i, d>``, so an optimal d lies there).
    ``upper``: the smallest dual value on a dense grid of the simplex.
    """
    T = len(G)
    g0 = G.mean(0)
    radius = c * float(g0.norm())
    U, S, Vh = torch.linalg.svd(G, full_matrices=False)
    basis = Vh[S > 1e-10 * S.max()]  # k x D, orthonormal rows spanning the gradients
    Gk, c0 = G @ basis.T, basis @ g0  # coordinates in the span
    k = len(basis)
    dirs = _unit_directions(k, {1: 2, 2: 2000, 3: 3000}[k])
    radii = torch.linspace(0, 1, {1: 20001, 2: 200, 3: 60}[k], dtype=F64) * radius
    points = c0 + (radii[:, None, None] * dirs[None]).reshape(-1, k)
    lower = float((points @ Gk.T).min(dim=1).values.max())
    W = _simplex_grid(T, 300)
    gw = W @ G
    upper = float((gw @ g0 + radius * gw.norm(dim=1)).min())
    return lower, upper


# ---- CAGrad at Pareto-stationary gradients ---------------------------------------------------


OPPOSITE = torch.tensor([[1.0, 0.0], [-1.0, 0.0], [1.0, 2.0]], dtype=F64)


@pytest.mark.parametrize("c", [0.5, 0.9])
def test_cagrad_at_a_pareto_stationary_point_raises_no_loss(c: float) -> None:
    """g_1 = -g_2 (0 is in the hull) plus a third gradient: the dual optimum is g_w = 0.

    The paper's formula is 0/0 there; the old code then returned g_0 = (1/3, 2/3), which
    raises task 2's loss (<g_2, g_0> = -1/3), although d = (0, 2/3), inside the ball
    (|d - g_0| = 1/3 <= c |g_0| = 0.373 for c = 0.5), raises none: V = 0.
    """
    G = OPPOSITE
    g0, radius = G.mean(0), c * float(G.mean(0).norm())
    w = torch.as_tensor(cagrad_weights(gram(G), c), dtype=F64)
    assert float((w @ G).norm()) < 1e-12  # Pareto-stationary: the dual optimum has g_w = 0
    old = paper_formula(G, c)
    assert torch.allclose(old, g0)
    assert math.isclose(worst(G, old), -1 / 3, rel_tol=1e-12)  # the old d raised a loss
    conflict_free = torch.tensor([0.0, 2 / 3], dtype=F64)
    assert float((conflict_free - g0).norm()) <= radius and worst(G, conflict_free) == 0.0

    d, weights = cagrad(G, c)
    assert torch.allclose(d, weights @ G, atol=1e-15)
    assert float((d - g0).norm()) <= radius * (1 + 1e-12)
    assert worst(G, d) >= -1e-15  # no task's loss rises: the optimum V = 0 is attained
    # of the many maximisers, the one nearest to g_0: the projection of g_0 onto the cone
    assert torch.allclose(d, conflict_free, atol=1e-12)
    assert torch.allclose(G @ d, torch.tensor([0.0, 0.0, 4 / 3], dtype=F64), atol=1e-12)
    assert weights.min() >= 1 / 3 - 1e-15


def test_cagrad_when_no_conflict_free_direction_fits_keeps_the_paper_formula() -> None:
    """Same gradients, c = 0.3: the cone of conflict-free directions (d_1 = 0) is 1/3 away
    from g_0, beyond the radius 0.224, so V < 0 and the maximiser is unique: move d_1 as close
    to 0 as the ball allows, d = (1/3 - 0.224, 2/3)."""
    G, c = OPPOSITE, 0.3
    d, w = cagrad(G, c)
    radius = c * float(G.mean(0).norm())
    expected = torch.tensor([1 / 3 - radius, 2 / 3], dtype=F64)
    assert torch.allclose(d, expected, atol=1e-12) and torch.allclose(d, paper_formula(G, c))
    assert math.isclose(worst(G, d), -(1 / 3 - radius), rel_tol=1e-9)


def test_cagrad_with_a_zero_mean_gradient_returns_zero() -> None:
    g = torch.randn(6, generator=_rng(0), dtype=F64)
    d, w = cagrad(torch.stack([g, -g]), c=0.5)  # the ball is the point g_0 = 0
    assert torch.equal(d, torch.zeros(6, dtype=F64)) and torch.allclose(w, torch.full((2,), 0.5,
                                                                                      dtype=F64))


def test_cagrad_with_one_task_is_the_scaled_gradient() -> None:
    g = torch.randn(1, 5, generator=_rng(1), dtype=F64)
    d, w = cagrad(g, c=0.4)
    assert torch.allclose(d, 1.4 * g[0]) and torch.allclose(w, torch.tensor([1.4], dtype=F64))


def _stationary_G(kind: str, D: int, seed: int) -> torch.Tensor:
    """Three gradients with 0 in their convex hull (Pareto-stationary), or ordinary ones."""
    gen = _rng(seed)
    G = torch.randn(3, D, generator=gen, dtype=F64)
    if kind == "opposite":  # g_2 = -a g_1
        G[1] = -(0.2 + 2 * torch.rand(1, generator=gen, dtype=F64)) * G[0]
    elif kind == "hull":  # g_3 = -(a g_1 + b g_2), a, b > 0
        a, b = 0.2 + 2 * torch.rand(2, generator=gen, dtype=F64)
        G[2] = -(a * G[0] + b * G[1])
    return G


CASES = [(kind, D, seed) for kind in ("opposite", "hull", "ordinary") for D in (2, 3, 7)
         for seed in range(4)]


@pytest.mark.parametrize("c", [0.2, 0.5, 0.9])
@pytest.mark.parametrize(("kind", "D", "seed"), CASES)
def test_cagrad_attains_the_brute_force_optimum(kind: str, D: int, seed: int, c: float) -> None:
    G = _stationary_G(kind, D, seed)
    scale = float((G * G).sum(dim=1).max())
    g0 = G.mean(0)
    d, w = cagrad(G, c)
    assert torch.allclose(d, w @ G, atol=1e-12 * math.sqrt(scale))
    assert float((d - g0).norm()) <= c * float(g0.norm()) * (1 + 1e-9)  # inside the ball
    lower, upper = brute_force_cagrad(G, c)
    assert upper - lower < 2e-2 * scale  # the grids pin V down
    value = worst(G, d)
    assert value >= lower - 1e-9 * scale  # no grid point of the ball does better
    assert value <= upper + 1e-9 * scale  # weak duality: nothing can beat a dual value
    if lower >= 0:  # a conflict-free direction exists in the ball: d raises no task's loss
        assert value >= -1e-12 * scale


def nearest_conflict_free(G: torch.Tensor) -> torch.Tensor:
    """For g_2 = -a g_1 (a > 0): the direction nearest to g_0 with <g_i, d> >= 0 for all three
    tasks, in closed form. Such d are orthogonal to g_1 (<g_1, d> >= 0 and -a <g_1, d> >= 0) and
    have <g_3, d> >= 0: a half-space h of the hyperplane orthogonal to g_1."""
    u = G[0] / G[0].norm()
    p = G.mean(0) - (G.mean(0) @ u) * u  # g_0 projected onto the hyperplane
    h = G[2] - (G[2] @ u) * u  # the normal of the half-space within the hyperplane
    return p - min(float(h @ p), 0.0) / float(h @ h) * h


def test_cagrad_on_random_opposite_pairs_is_the_nearest_conflict_free_direction() -> None:
    """g_2 = -a g_1 plus a random g_3 (D = 3): whenever the nearest conflict-free direction
    lies in the ball (V = 0), CAGrad returns it; the old formula raised a task's loss on most
    of these inputs."""
    checked = old_failures = 0
    for seed in range(60):
        G = _stationary_G("opposite", 3, seed)
        scale = float((G * G).sum(dim=1).max())
        g0 = G.mean(0)
        target = nearest_conflict_free(G)
        for c in (0.5, 0.9):
            if float((target - g0).norm()) > c * float(g0.norm()):
                continue  # no conflict-free direction in the ball: V < 0
            checked += 1
            d, _ = cagrad(G, c)
            assert worst(G, d) >= -1e-12 * scale
            assert torch.allclose(d, target, atol=1e-10 * math.sqrt(scale))
            old_failures += worst(G, paper_formula(G, c)) < -1e-6 * scale
    assert checked >= 30 and old_failures >= 0.9 * checked, (checked, old_failures)


# ---- IMTL-G with zero rows -------------------------------------------------------------------


def torchjd_imtl_g(G: torch.Tensor) -> torch.Tensor:
    """torchjd's IMTL-G weights: ``pinv(A) n``, normalised to sum 1 (zero if the sum is 0)."""
    A = G @ G.T
    v = torch.linalg.pinv(A) @ A.diagonal().sqrt()
    return torch.zeros_like(v) if abs(float(v.sum())) < 1e-12 else v / v.sum()


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("where", [0, 1, 3])
def test_imtl_g_gives_zero_rows_weight_zero(seed: int, where: int) -> None:
    live = torch.randn(3, 10, generator=_rng(seed), dtype=F64)
    d_live, w_live = imtl_g(live)
    G = torch.cat([live[:where], torch.zeros(1, 10, dtype=F64), live[where:]])
    d, w = imtl_g(G)
    assert w[where] == 0.0  # the zero row gets weight 0
    others = torch.cat([w[:where], w[where + 1:]])
    assert torch.allclose(others, w_live, atol=1e-12)  # the other weights are unchanged...
    assert math.isclose(float(others.sum()), 1.0, abs_tol=1e-12)  # ...and sum to one
    assert torch.allclose(d, d_live, atol=1e-12)  # the combined update is unchanged
    assert torch.allclose(w, torchjd_imtl_g(G), atol=1e-9)  # torchjd's convention
    units = live / live.norm(dim=1, keepdim=True)
    proj = units @ d
    assert torch.allclose(proj, proj.mean().expand(3), atol=1e-10)


def test_imtl_g_zero_rows_no_longer_shrink_the_step() -> None:
    """The old solve spread the unit sum over all rows (minimum-norm weights), so zero rows
    took part of it and the update shrank; now two zero rows change nothing."""
    live = torch.randn(2, 6, generator=_rng(7), dtype=F64)
    G = torch.cat([live, torch.zeros(2, 6, dtype=F64)])
    d, w = imtl_g(G)
    assert torch.equal(w[2:], torch.zeros(2, dtype=F64))
    assert torch.allclose(d, imtl_g(live)[0], atol=1e-12)


def test_imtl_g_all_zero_rows() -> None:
    d, w = imtl_g(torch.zeros(3, 4, dtype=F64))
    assert torch.equal(d, torch.zeros(4, dtype=F64)) and torch.equal(w, torch.zeros(3, dtype=F64))


@pytest.mark.parametrize("seed", range(5))
def test_imtl_g_matches_torchjd_on_ordinary_gradients(seed: int) -> None:
    G = torch.randn(4, 9, generator=_rng(100 + seed), dtype=F64)
    _, w = imtl_g(G)
    assert torch.allclose(w, torchjd_imtl_g(G), atol=1e-9)
