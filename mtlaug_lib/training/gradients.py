"""Gradient combination: the mathematics of PCGrad, MGDA, CAGrad and IMTL-G as pure functions.

Every function takes a T x D matrix ``G`` of task gradients (row i: task i's gradient on the
shared part, flattened; D entries) and returns ``(d, w)``: the combined update direction ``d``
(a D-vector, the *descent* direction's negative, like any gradient: the optimizer steps along
``-d``) and the implied task weights ``w`` (a T-vector) with ``d = w @ G`` exactly. All four
methods combine the task gradients linearly, so each is decided by the T x T Gram matrix
``A = G G^T`` alone; the functions solve their small problems on ``A`` in float64 NumPy (T is a
handful, so this costs microseconds) and touch the D-dimensional gradients only twice: to form
``A`` and to form ``d``.

Written by hand because they are what notebook 05 teaches, and because the field's libraries for
them (LibMTL, torchjd) would be a dependency for ~200 lines; CAGrad's reference code uses
scipy's SLSQP, here an exact small active-set solve replaces it.

- ``mgda``: Sener & Koltun, "Multi-task learning as multi-objective optimization", NeurIPS 2018:
  the minimum-norm point of the convex hull of the task gradients.
- ``pcgrad``: Yu et al., "Gradient surgery for multi-task learning", NeurIPS 2020.
- ``cagrad``: Liu et al., "Conflict-averse gradient descent for multi-task learning",
  NeurIPS 2021.
- ``imtl_g``: Liu et al., "Towards impartial multi-task learning", ICLR 2021 (the gradient
  part, IMTL-G).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import torch

# Exact active-set solves enumerate the 2^T - 1 faces of the simplex; beyond this many tasks a
# projected-gradient solve replaces them.
MAX_EXACT_TASKS = 10


def check_gradients(G: torch.Tensor, name: str = "G") -> None:
    """A clear error unless ``G`` is a finite, floating T x D matrix (T >= 1, D >= 1)."""
    if not isinstance(G, torch.Tensor):
        raise TypeError(f"argument {name!r} is a {type(G).__name__}, expected a T x D tensor")
    if G.ndim != 2 or min(G.shape) < 1 or not G.is_floating_point():
        raise ValueError(
            f"argument {name!r} has shape {tuple(G.shape)} and dtype {G.dtype}, expected a "
            "floating T x D matrix (one row per task)"
        )
    finite = torch.isfinite(G).all(dim=1)
    if not bool(finite.all()):
        rows = [i for i, ok in enumerate(finite.tolist()) if not ok]
        raise ValueError(f"argument {name!r} has NaN or infinite entries in rows (tasks) {rows}")


def gram(G: torch.Tensor) -> np.ndarray:
    """``G G^T`` (T x T) in float64 NumPy: inner products of the task gradients."""
    g = G.detach().double()
    return (g @ g.T).cpu().numpy()


def _normalised(A: np.ndarray) -> np.ndarray | None:
    """``A`` divided by its largest diagonal entry (scale-free solves), or None if all zero."""
    scale = float(A.diagonal().max())
    return A / scale if scale > 0 else None


def _combine(G: torch.Tensor, w: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    weights = torch.as_tensor(w, dtype=G.dtype, device=G.device)
    return weights @ G, weights


def project_simplex(v: np.ndarray) -> np.ndarray:
    """The Euclidean projection of ``v`` (T) onto the probability simplex (Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.nonzero(u - css / k > 0)[0][-1]
    return np.maximum(v - css[rho] / (rho + 1), 0.0)


def _simplex_descent(grad, value, T: int, iters: int = 3000) -> np.ndarray:
    """Projected gradient descent on the simplex for many tasks (T > MAX_EXACT_TASKS); keeps
    the best point seen. ``grad`` and ``value`` are functions of the weights."""
    w = np.full(T, 1.0 / T)
    best, best_value = w, value(w)
    for k in range(iters):
        w = project_simplex(w - grad(w) / (1.0 + math.sqrt(k)))
        if (v := value(w)) < best_value:
            best, best_value = w, v
    return best


def _faces(T: int):
    """Index arrays of every non-empty subset of range(T), smallest first."""
    for size in range(1, T + 1):
        for face in itertools.combinations(range(T), size):
            yield np.array(face)


# ---- MGDA -------------------------------------------------------------------------------------


def min_norm_weights(A: np.ndarray) -> np.ndarray:
    """The weights ``w`` on the simplex minimising ``w^T A w`` (A: T x T Gram matrix, PSD).

    Two tasks: Sener & Koltun's closed form. Up to ``MAX_EXACT_TASKS``: exact, by solving the
    equality-constrained problem on every face of the simplex and keeping the best feasible
    solution (the optimum's smallest face always has a unique solution, so it is among them).
    All-zero gradients give uniform weights (every point is optimal).
    """
    T = len(A)
    An = _normalised(A)
    if An is None or T == 1:
        return np.full(T, 1.0 / T)
    if T == 2:
        a11, a12, a22 = An[0, 0], An[0, 1], An[1, 1]
        denom = a11 + a22 - 2 * a12  # |g1 - g2|^2
        gamma = 0.5 if denom <= 1e-15 else float(np.clip((a22 - a12) / denom, 0.0, 1.0))
        return np.array([gamma, 1.0 - gamma])
    if T > MAX_EXACT_TASKS:
        return _simplex_descent(lambda w: 2 * An @ w, lambda w: w @ An @ w, T)
    best, best_value = np.full(T, 1.0 / T), np.inf
    for face in _faces(T):
        k = len(face)
        # KKT of min w^T A w s.t. sum(w) = 1 on this face: [2A 1; 1^T 0] [w; mu] = [0; 1]
        K = np.zeros((k + 1, k + 1))
        K[:k, :k] = 2 * An[np.ix_(face, face)]
        K[:k, k] = K[k, :k] = 1.0
        rhs = np.zeros(k + 1)
        rhs[k] = 1.0
        sol = np.linalg.lstsq(K, rhs, rcond=1e-12)[0][:k]
        if sol.min() < -1e-9:
            continue  # the optimum of this face's plane lies outside the simplex
        w = np.zeros(T)
        w[face] = np.maximum(sol, 0.0) / np.maximum(sol, 0.0).sum()
        value = w @ An @ w
        if value < best_value - 1e-15:
            best, best_value = w, value
    return best


def mgda(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """MGDA (Sener & Koltun 2018): the minimum-norm point of the convex hull of the rows of G.

    Args:
        G: T x D task gradients.

    Returns:
        ``(d, w)``: d (D) = w @ G with w (T) on the simplex (w >= 0, sum 1) minimising ``|d|``.
        Then ``<g_i, d> >= |d|^2 >= 0`` for every task (no task's loss increases to first
        order), with equality where ``w_i > 0``; ``d = 0`` when some convex combination of the
        gradients vanishes (a Pareto-stationary point).
    """
    check_gradients(G)
    return _combine(G, min_norm_weights(gram(G)))


# ---- PCGrad ----------------------------------------------------------------------------------


def pcgrad_orders(T: int, generator: torch.Generator | None = None) -> list[list[int]]:
    """For each task i, the order in which PCGrad projects it against the other tasks: a random
    permutation drawn from ``generator`` (as in the paper), or ascending without one."""
    orders = []
    for i in range(T):
        others = [j for j in range(T) if j != i]
        if generator is not None:
            others = [others[k] for k in torch.randperm(T - 1, generator=generator).tolist()]
        orders.append(others)
    return orders


def pcgrad_coefficients(A: np.ndarray, orders: Sequence[Sequence[int]]) -> np.ndarray:
    """PCGrad's projections as a T x T matrix ``C``: task i's projected gradient is ``C[i] @ G``.

    Each projection ``g_i' <- g_i' - <g_i', g_j> / |g_j|^2 g_j`` (only if ``<g_i', g_j> < 0``)
    is a linear combination of the original gradients, so it can run on the Gram matrix ``A``.
    """
    T = len(A)
    C = np.eye(T)
    for i in range(T):
        for j in orders[i]:
            dot = C[i] @ A[:, j]  # <g_i', g_j>
            if dot < 0 and A[j, j] > 0:  # a conflict with a non-zero gradient: project it out
                C[i, j] -= dot / A[j, j]
    return C


def pcgrad_project(
    G: torch.Tensor,
    generator: torch.Generator | None = None,
    orders: Sequence[Sequence[int]] | None = None,
) -> torch.Tensor:
    """Each task's gradient after PCGrad's projections (T x D); see ``pcgrad``."""
    check_gradients(G)
    orders = pcgrad_orders(len(G), generator) if orders is None else orders
    C = torch.as_tensor(pcgrad_coefficients(gram(G), orders), dtype=G.dtype, device=G.device)
    return C @ G


def pcgrad(
    G: torch.Tensor,
    generator: torch.Generator | None = None,
    orders: Sequence[Sequence[int]] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """PCGrad (Yu et al. 2020): project each task's gradient off the gradients it conflicts with,
    then sum.

    For each task i, in a random order of the other tasks j: if ``<g_i', g_j> < 0``, remove the
    component of ``g_i'`` along ``g_j``, so that ``<g_i', g_j> = 0`` right after. With no
    conflicting pair the result is the plain sum of the gradients.

    Args:
        G: T x D task gradients.
        generator: draws each task's order (the paper's random order); None: ascending order.
        orders: the orders themselves (``orders[i]``: the other tasks, in projection order).

    Returns:
        ``(d, w)``: d (D) the sum of the projected gradients, d = w @ G.
    """
    check_gradients(G)
    orders = pcgrad_orders(len(G), generator) if orders is None else orders
    return _combine(G, pcgrad_coefficients(gram(G), orders).sum(axis=0))


# ---- CAGrad ----------------------------------------------------------------------------------


def _cagrad_objective(An: np.ndarray, b: np.ndarray, s: float):
    def value(w: np.ndarray) -> float:  # F(w) = <g_w, g_0> + c |g_0| |g_w|
        return float(w @ b + s * math.sqrt(max(w @ An @ w, 0.0)))

    def grad(w: np.ndarray) -> np.ndarray:
        return b + s * (An @ w) / max(math.sqrt(max(w @ An @ w, 0.0)), 1e-12)

    return value, grad


def cagrad_weights(A: np.ndarray, c: float) -> np.ndarray:
    """CAGrad's dual weights: ``w`` on the simplex minimising ``<g_w, g_0> + c |g_0| |g_w|``
    (g_w = w @ G, g_0 the mean gradient), from the Gram matrix ``A`` (T x T).

    Exact up to ``MAX_EXACT_TASKS``: on a face of the simplex the stationarity conditions
    reduce to a quadratic in the multiplier of ``sum(w) = 1``; every face's roots, the vertices
    and the min-norm point (where ``g_w = 0``) are candidates, and the best feasible one wins.
    """
    T = len(A)
    An = _normalised(A)
    if An is None or T == 1 or c == 0:
        return np.full(T, 1.0 / T)  # c = 0: any w gives d = g_0
    b = An.mean(axis=1)  # <g_i, g_0>
    s = c * math.sqrt(max(b.mean(), 0.0))  # c |g_0|
    value, grad = _cagrad_objective(An, b, s)
    if T > MAX_EXACT_TASKS:
        return _simplex_descent(grad, value, T)
    candidates = [np.eye(T)[i] for i in range(T)] + [min_norm_weights(An)]
    for face in _faces(T):
        if len(face) < 2:
            continue
        Af = An[np.ix_(face, face)]
        if np.linalg.cond(Af) > 1e12:
            continue  # a degenerate face: its optimum is also found on a smaller face
        # Stationarity on the face: b + s A w / |g_w| + mu 1 = 0, so w is proportional to
        # A^-1 (b + mu 1), and |g_w| = ... gives (b + mu 1)^T A^-1 (b + mu 1) = s^2.
        u, v = np.linalg.solve(Af, b[face]), np.linalg.solve(Af, np.ones(len(face)))
        qa, qb, qc = v.sum(), 2 * u.sum(), b[face] @ u - s * s
        for mu in np.roots([qa, qb, qc]):
            if abs(mu.imag) > 1e-12:
                continue
            x = -(u + mu.real * v)
            if x.sum() <= 0 or x.min() < -1e-9:
                continue
            w = np.zeros(T)
            w[face] = np.maximum(x, 0.0) / np.maximum(x, 0.0).sum()
            candidates.append(w)
    return min(candidates, key=value)


def conflict_free_weights(A: np.ndarray) -> np.ndarray:
    """``lam >= 0`` (T) such that ``g_0 + lam @ G`` is the point nearest to the mean gradient
    ``g_0`` among the directions that conflict with no task (``<g_i, d> >= 0`` for all i), from
    the Gram matrix ``A`` (T x T).

    That set is the cone ``K = {d: G d >= 0}``. The KKT conditions of ``min |d - g_0|^2`` over
    ``K`` give ``d = g_0 + lam @ G`` with ``lam >= 0``, and ``lam`` minimises
    ``|g_0 + lam @ G|^2`` over ``lam >= 0`` (the dual; it depends on ``A`` only, and the
    optimal ``d`` is unique). Exact up to ``MAX_EXACT_TASKS``: every face's unconstrained
    optimum is a candidate, the best non-negative one wins (the optimum has a support of
    linearly independent rows, where the face's solution is unique). Beyond: projected
    gradient descent.
    """
    T = len(A)
    An = _normalised(A)
    if An is None:
        return np.zeros(T)
    u = np.full(T, 1.0 / T)
    b = An @ u  # <g_i, g_0>

    def value(lam: np.ndarray) -> float:  # |g_0 + lam @ G|^2 (normalised)
        x = u + lam
        return float(x @ An @ x)

    best, best_value = np.zeros(T), value(np.zeros(T))
    if T > MAX_EXACT_TASKS:
        step = 1.0 / max(float(np.linalg.eigvalsh(An).max()), 1e-12)
        lam = best
        for _ in range(5000):
            lam = np.maximum(lam - step * (An @ (u + lam)), 0.0)
            if (v := value(lam)) < best_value:
                best, best_value = lam, v
        return best
    for face in _faces(T):
        # stationarity on the face: A_ff lam_f = -b_f (b_f lies in the range of A_ff)
        sol = np.linalg.lstsq(An[np.ix_(face, face)], -b[face], rcond=1e-12)[0]
        if sol.min() < -1e-9:
            continue
        lam = np.zeros(T)
        lam[face] = np.maximum(sol, 0.0)
        if (v := value(lam)) < best_value - 1e-15:
            best, best_value = lam, v
    return best


def cagrad(G: torch.Tensor, c: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    """CAGrad (Liu et al. 2021, https://arxiv.org/abs/2110.14048): the update ``d`` within
    distance ``c |g_0|`` of the mean gradient ``g_0`` that maximises the worst task's
    first-order improvement ``min_i <g_i, d>``.

    By duality (``max_d min_w = min_w max_d``), ``V = max_d min_i <g_i, d> = min_w F(w)`` with
    ``F(w) = <g_w, g_0> + c |g_0| |g_w|`` over the simplex (``g_w = w @ G``; the dual weights
    ``cagrad_weights``), and the paper's formula ``d = g_0 + c |g_0| g_w / |g_w|`` is the
    unique maximiser whenever an optimal ``w`` has ``g_w != 0``; ``c = 0`` gives the mean
    gradient, larger ``c`` moves towards MGDA. Unlike the reference code, ``d`` is not
    divided by ``1 + c^2`` (a constant factor).

    At a Pareto-stationary point the formula is 0/0: if 0 lies in the convex hull of the
    gradients (``sum_i v_i g_i = 0`` for some ``v`` on the simplex), every ``d`` has
    ``min_i <g_i, d> <= sum_i v_i <g_i, d> = 0``, so ``V <= 0``; and when the dual optimum is
    ``g_w = 0``, ``V = F(w) = 0``. The maximisers are then all ``d`` in the ball with
    ``<g_i, d> >= 0`` for every task (none conflicts; those with ``v_i > 0`` are orthogonal to
    ``d``), usually many, so the formula cannot pick one. Here: the one nearest to ``g_0``
    (``conflict_free_weights``): no task's loss rises to first order. The same choice is made
    whenever the formula's ``d`` would raise a task's loss although a conflict-free ``d``
    lies in the ball (with exact dual weights only at ``g_w = 0``; this also catches rounding
    and the approximate solve beyond ``MAX_EXACT_TASKS``); if no conflict-free ``d`` lies in
    the ball, ``V < 0``, every optimal ``w`` has ``g_w != 0`` and the formula's ``d`` is the
    maximiser. ``g_0 = 0`` (or ``c = 0``): the ball is the single point ``g_0``.

    Args:
        G: T x D task gradients.
        c: the radius, relative to ``|g_0|`` (the paper's default 0.5); ``c >= 0``.

    Returns:
        ``(d, weights)``: d (D) = weights @ G; weights >= 1/T.
    """
    check_gradients(G)
    if not (isinstance(c, (int, float)) and math.isfinite(c) and c >= 0):
        raise ValueError(f"argument 'c' is {c!r}, expected a finite number >= 0")
    return _combine(G, cagrad_update_weights(gram(G), c))


def cagrad_update_weights(A: np.ndarray, c: float) -> np.ndarray:
    """The weights of CAGrad's update ``d = weights @ G`` (see ``cagrad``) from the Gram matrix
    ``A = G G^T`` alone (T x T): what a distributed run solves on the global Gram matrix."""
    T = len(A)
    mean = np.full(T, 1.0 / T)
    radius = c * math.sqrt(max(mean @ A @ mean, 0.0))  # c |g_0|
    if radius == 0.0:
        return mean  # the ball is the single point g_0
    w = cagrad_weights(A, float(c))
    norm_w = math.sqrt(max(w @ A @ w, 0.0))
    formula = None
    if norm_w > 1e-12 * radius / c:  # the paper's formula is defined
        formula = mean + (radius / norm_w) * w
        if (A @ formula).min() >= 0:  # <g_i, d> >= 0: conflicts with no task
            return formula
    # Pareto-stationary (g_w = 0), or the formula's d raises a task's loss: the conflict-free
    # direction nearest to g_0, if it lies in the ball (then V = 0 and it is a maximiser).
    lam = conflict_free_weights(A)
    dist = math.sqrt(max(lam @ A @ lam, 0.0))  # |d - g_0|
    if dist <= radius * (1 + 1e-9) or formula is None:
        # (formula is None and dist > radius only through rounding: pull d into the ball)
        return mean + lam * min(1.0, radius / max(dist, 1e-300))
    return formula  # no conflict-free d in the ball: V < 0, the formula's d


# ---- IMTL-G ----------------------------------------------------------------------------------


def imtl_g(G: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """IMTL-G (Liu et al. 2021): the combination ``d = w @ G`` with ``sum(w) = 1`` whose
    projections on every task's unit gradient are equal: ``<d, g_i/|g_i|>`` is the same for
    all i, so no task's gradient direction is favoured (weights may be negative).

    Solved as the linear system ``<d, u_i - u_r> = 0`` (r: a reference task), ``sum(w) = 1``, on
    the Gram matrix; a least-squares solution where it is singular (parallel gradients: then any
    such combination qualifies and the minimum-norm weights are taken).

    Zero gradients (rows with norm below ``1e-12`` times the largest): they have no direction,
    so they impose no condition, and they get weight 0 (torchjd's convention); the other
    weights are solved on the non-zero rows alone and sum to one. So a zero row changes
    neither ``d`` nor the other rows' weights (otherwise part of the unit sum would go to rows
    that contribute nothing, and shrink the step). All rows zero: all weights 0, ``d = 0``.

    Returns:
        ``(d, w)``: d (D) = w @ G.
    """
    check_gradients(G)
    return _combine(G, imtl_g_weights(gram(G)))


def imtl_g_weights(A: np.ndarray) -> np.ndarray:
    """IMTL-G's weights (see ``imtl_g``) from the Gram matrix ``A = G G^T`` alone (T x T)."""
    T = len(A)
    An = _normalised(A)
    if An is None:
        return np.zeros(T)  # no task has a direction: weight 0 each, d = 0
    norms = np.sqrt(np.maximum(An.diagonal(), 0.0))
    live = np.nonzero(norms > 1e-12)[0]
    Al, nl = An[np.ix_(live, live)], norms[live]
    # Row k: <d, u_k - u_r> = sum_j w_j (A[k, j] / n_k - A[r, j] / n_r), for live k != r.
    rows = [Al[k] / nl[k] - Al[0] / nl[0] for k in range(1, len(live))]
    K = np.vstack([*rows, np.ones(len(live))])
    rhs = np.zeros(len(K))
    rhs[-1] = 1.0
    w = np.zeros(T)
    w[live] = np.linalg.lstsq(K, rhs, rcond=1e-10)[0]
    return w
