"""Notebook 08's exercise checks (scaling out): the right answers pass, and each wrong answer
students give is rejected with a message that names the mistake."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from mtlaug_lib import exercises
from mtlaug_lib.course.exercises import scaling as checks
from mtlaug_lib.training.gradients import gram, mgda, min_norm_weights
from mtlaug_lib.training.precision import LossScaler

pytestmark = pytest.mark.usefixtures("one_thread")

# ---- 08.1: the global Gram matrix -----------------------------------------------------------


def gram_right(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    total = sum(sizes)
    return sum((n / total) ** 2 * A for n, A in zip(sizes, grams, strict=True))


def gram_right_einsum(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """Also right: the weights as a tensor of the grams' dtype, one einsum."""
    w = torch.tensor(sizes, dtype=grams[0].dtype) / sum(sizes)
    return torch.einsum("p,pst->st", w**2, torch.stack(grams))


def gram_right_loop(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """Also right: an accumulator started as a new tensor, then += (not into an input)."""
    total = torch.zeros_like(grams[0])
    for n, A in zip(sizes, grams, strict=True):
        total += (n / sum(sizes)) ** 2 * A
    return total


def _gram_weights(weight: Callable[[int, int, int], float]) -> Callable:
    """``sum_r weight(n_r, N, P) * grams[r]``: the right sum with a wrong weight."""
    def answer(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
        total, p_count = sum(sizes), len(sizes)
        return sum(weight(n, total, p_count) * A for n, A in zip(sizes, grams, strict=True))
    return answer


def _gram_alias(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    total = grams[0]  # not a copy: += below writes into grams[0]
    total *= (sizes[0] / sum(sizes)) ** 2
    for n, A in zip(sizes[1:], grams[1:], strict=True):
        total += (n / sum(sizes)) ** 2 * A
    return total


def _gram_list_in_place(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    for r, n in enumerate(sizes):
        grams[r] = (n / sum(sizes)) ** 2 * grams[r]
    return sum(grams)


def _gram_sizes_in_place(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    total, out = sum(sizes), 0
    for A in grams:
        out = out + (sizes.pop(0) / total) ** 2 * A
    return out


def _gram_upper(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    """Entries (s, t) for s <= t only, the rest left at 0."""
    return torch.triu(gram_right(grams, sizes))


def _gram_float32_acc(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    t_count = grams[0].shape[0]
    total = torch.zeros(t_count, t_count)  # float32, whatever the grams' dtype
    for n, A in zip(sizes, grams, strict=True):
        total += (n / sum(sizes)) ** 2 * A
    return total


def _gram_float64_weights(grams: list[torch.Tensor], sizes: list[int]) -> torch.Tensor:
    w = torch.tensor(sizes, dtype=torch.float64) / sum(sizes)
    return torch.einsum("p,pst->st", w**2, torch.stack(grams))


GRAM_RIGHT = [gram_right, gram_right_einsum, gram_right_loop]

GRAM_WRONG: dict[str, tuple[Callable, str]] = {
    "plain sum": (lambda g, n: sum(g), "summed the local Gram matrices as they are"),
    "plain sum, stacked": (lambda g, n: torch.stack(g).sum(0),
                           "summed the local Gram matrices as they are"),
    "mean": (lambda g, n: sum(g) / len(g), "mean of the local Gram matrices"),
    "weights n_r / N, not squared": (_gram_weights(lambda n, t, p: n / t),
                                     "n_r / N are not squared"),
    "weights 1 / P^2": (_gram_weights(lambda n, t, p: 1 / p**2),
                        "1 / P\\^2 are right only when every shard has the same size"),
    "weights n_r^2 / N": (_gram_weights(lambda n, t, p: n**2 / t), "squared n_r but not N"),
    "weights n_r / N ** 2": (_gram_weights(lambda n, t, p: n / t**2), "put the parentheses"),
    "squared weights normalised": (
        lambda g, n: sum(m**2 * A for m, A in zip(n, g, strict=True)) / sum(m**2 for m in n),
        "normalised the squared weights"),
    "integer division": (_gram_weights(lambda n, t, p: (n // t) ** 2),
                         "all zeros.*integer division"),
    "upper triangle only": (_gram_upper, "not symmetric"),
    "stacked, not summed": (
        lambda g, n: torch.stack([(m / sum(n)) ** 2 * A for m, A in zip(n, g, strict=True)]),
        "shape \\(3, 2, 2\\).*stacked.*SUM"),
    "the diagonal": (lambda g, n: gram_right(g, n).diagonal(), "shape \\(2,\\).*diagonal"),
    "the grams side by side": (lambda g, n: torch.cat(g, dim=1), "shape \\(2, 6\\).*T x D"),
    "a list of weighted grams": (
        lambda g, n: [(m / sum(n)) ** 2 * A for m, A in zip(n, g, strict=True)],
        "returned a list; expected a 2 x 2 tensor"),
    "numpy": (lambda g, n: gram_right(g, n).numpy(), "returned a ndarray"),
    "no return": (lambda g, n: None, "returned None.*forget the return"),
    "a gram changed in place": (_gram_alias, "changed a matrix of `grams` in place"),
    "the list overwritten": (_gram_list_in_place, "changed the list `grams` in place"),
    "sizes popped": (_gram_sizes_in_place, "changed `sizes` in place"),
    "float32 accumulator": (_gram_float32_acc, "dtype torch.float32.*torch.zeros"),
    "float64 weights in einsum": (_gram_float64_weights,
                                  "raised RuntimeError.*dtype=grams\\[0\\].dtype"),
}


@pytest.mark.parametrize("answer", GRAM_RIGHT, ids=lambda f: f.__name__)
def test_gram_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_global_gram(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(GRAM_WRONG))
def test_gram_check_rejects_wrong_answers(wrong: str) -> None:
    answer, message = GRAM_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_global_gram(answer)


def _shard_gradients(sizes: list[int], t_count: int = 3) -> tuple[list[torch.Tensor],
                                                                  torch.Tensor]:
    """A small model of its own (not the check's): z = relu(x W + b) (N x 5), T heads with a
    mean cross-entropy-like loss each. Returns the P local G_r (gradients of each shard's mean
    losses with respect to its rows of z, flattened) and the global G (the global mean losses
    with respect to all of z)."""
    g = torch.Generator().manual_seed(3)
    total = sum(sizes)
    x = torch.randn(total, 6, generator=g, dtype=torch.float64)
    layer = torch.randn(6, 5, generator=g, dtype=torch.float64)
    heads = torch.randn(t_count, 5, 4, generator=g, dtype=torch.float64)
    labels = torch.randint(0, 4, (total, t_count), generator=g)
    z = torch.relu(x @ layer + 0.1)

    def grads(rows: slice) -> torch.Tensor:
        zr = z[rows].detach().requires_grad_(True)
        out = []
        for t in range(t_count):
            loss = torch.nn.functional.cross_entropy(zr @ heads[t], labels[rows, t])  # mean
            out.append(torch.autograd.grad(loss, zr)[0].flatten())
        return torch.stack(out)

    starts = np.cumsum([0, *sizes]).tolist()
    local = [grads(slice(a, b)) for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return local, grads(slice(0, total))


def test_global_gradient_is_the_weighted_concatenation() -> None:
    """Independent of the check: the gradient of the global mean loss on shard r's coordinates
    is (n_r / N) G_r, so its Gram matrix is sum_r (n_r / N)^2 G_r G_r^T; and MGDA solved on
    that T x T matrix gives the weights of MGDA on the full T x D gradients."""
    sizes = [5, 2, 9]
    local, global_grad = _shard_gradients(sizes)
    total = sum(sizes)
    weighted = torch.cat([(n / total) * G for n, G in zip(sizes, local, strict=True)], dim=1)
    assert torch.allclose(global_grad, weighted, atol=1e-12)
    grams = [G @ G.T for G in local]
    combined = gram_right(grams, sizes)
    assert torch.allclose(combined, global_grad @ global_grad.T, atol=1e-12)
    _, w = mgda(global_grad)
    assert np.allclose(min_norm_weights(combined.numpy()), w.numpy(), atol=1e-8)
    assert np.allclose(gram(global_grad), combined.numpy(), atol=1e-12)
    # the plain sum of the grams is a different matrix (else the exercise would be moot)
    assert not torch.allclose(sum(grams), combined, rtol=0.1)


def test_gram_cases_hold_the_global_gram() -> None:
    """Every case's expected answer is the formula's (the check's reference, built from the
    concatenated gradient or a global backward, agrees with the maths above), each case's
    grams are symmetric, and a P = 1 case expects the gram itself."""
    cases = checks._gram_cases()
    assert any(len(c.sizes) == 1 for c in cases)
    assert {c.expected.dtype for c in cases} == {torch.float32, torch.float64}
    assert {c.expected.shape[0] for c in cases} == {2, 3}
    for case in cases:
        assert checks._gram_close(gram_right(list(case.grams), list(case.sizes)), case.expected)
        assert all(torch.allclose(A, A.T) for A in case.grams)
        if len(case.sizes) == 1:
            assert checks._gram_close(case.grams[0], case.expected)


def test_gram_cases_tell_the_mistakes_apart() -> None:
    """Each named mistake's weights differ from the right ones on the first case (unequal
    shards); 1 / P^2 needs unequal shards: on equal ones it IS the right answer."""
    cases = checks._gram_cases()
    first = cases[0]
    assert len(set(first.sizes)) == len(first.sizes)
    for weights, hint in checks._GRAM_MISTAKES:
        assert not checks._gram_close(checks._weighted(first, weights(first.sizes)),
                                      first.expected), hint
    equal = next(c for c in cases if len(c.sizes) > 1 and len(set(c.sizes)) == 1)
    one_over_p2 = [1 / len(equal.sizes) ** 2] * len(equal.sizes)
    assert checks._gram_close(checks._weighted(equal, one_over_p2).to(equal.expected.dtype),
                              equal.expected)


def test_gram_check_depends_on_its_reference(monkeypatch) -> None:
    """Mutation: cases whose expected answer is built from the shards' SUMMED losses (a wrong
    reference) make the check reject the right answer; the check is as good as its cases."""
    right = checks._gram_cases()

    def broken() -> tuple:
        return tuple(checks._GramCase(c.what, c.grams, c.sizes, sum(c.grams)) for c in right)

    monkeypatch.setattr(checks, "_gram_cases", broken)
    with pytest.raises(exercises.ExerciseError):
        exercises.check_global_gram(gram_right)


# ---- 08.2: one step of dynamic loss scaling ------------------------------------------------


def step_right(scale: float, good_steps: int, grads_finite: bool,
               growth_interval: int = 2000) -> tuple[float, int, bool]:
    if not grads_finite:
        return scale * 0.5, 0, False
    good_steps += 1
    if good_steps == growth_interval:
        return scale * 2, 0, True
    return scale, good_steps, True


def step_right_list(scale, good_steps, grads_finite, growth_interval=2000) -> list:
    """Also right: arithmetic, NumPy's bool, and a list (lenient on the container)."""
    count = (good_steps + 1) * int(grads_finite)
    grow = count >= growth_interval
    new_scale = scale * (2.0 if grow else 1.0) if grads_finite else scale / 2
    return [new_scale, 0 if grow else count, np.bool_(grads_finite)]


def _step(overflow: Callable | None = None, good: Callable | None = None) -> Callable:
    """The right answer with one branch replaced: ``overflow(scale, good_steps)`` or
    ``good(scale, good_steps, growth_interval)`` returns that branch's triple."""
    def answer(scale, good_steps, grads_finite, growth_interval=2000):
        if not grads_finite and overflow is not None:
            return overflow(scale, good_steps)
        if grads_finite and good is not None:
            return good(scale, good_steps, growth_interval)
        return step_right(scale, good_steps, grads_finite, growth_interval)
    return answer


def _grow_late(scale, good_steps, interval):
    good_steps += 1
    if good_steps > interval:
        return scale * 2, 0, True
    return scale, good_steps, True


def _grow_early(scale, good_steps, interval):
    good_steps += 1
    if good_steps >= interval - 1:
        return scale * 2, 0, True
    return scale, good_steps, True


def _swapped(scale, good_steps, grads_finite, growth_interval=2000):
    return step_right(scale, good_steps, not grads_finite, growth_interval)


def _no_default(scale, good_steps, grads_finite, growth_interval):
    return step_right(scale, good_steps, grads_finite, growth_interval)


def _hard_coded(scale, good_steps, grads_finite, growth_interval=2000):
    return step_right(scale, good_steps, grads_finite, 2000)


_last_scale: list[float] = []


def _stateful(scale, good_steps, grads_finite, growth_interval=2000):
    """Remembers the scale it returned last and uses it instead of its argument."""
    out = step_right(_last_scale[-1] if _last_scale else scale, good_steps, grads_finite,
                     growth_interval)
    _last_scale.append(out[0])
    return out


STEP_RIGHT = [step_right, step_right_list]

STEP_WRONG: dict[str, tuple[Callable, str]] = {
    "step taken on overflow": (_step(overflow=lambda s, g: (s * 0.5, 0, True)),
                               "took the step on an overflow"),
    "back off without resetting the count": (_step(overflow=lambda s, g: (s * 0.5, g, False)),
                                             "backed off without resetting the count"),
    "overflow counted as good": (_step(overflow=lambda s, g: (s * 0.5, g + 1, False)),
                                 "counted the skipped step"),
    "scale kept on overflow": (_step(overflow=lambda s, g: (s, 0, False)),
                               "must halve.*kept the scale"),
    "floor division": (_step(overflow=lambda s, g: (s // 2, 0, False)), "floor division"),
    "grows on every good step": (_step(good=lambda s, g, i: (s * 2, g + 1, True)),
                                 "on every good step"),
    "grows when the count exceeds the interval": (_step(good=_grow_late),
                                                  "off by one.*one step later.*>"),
    "grows one step early": (_step(good=_grow_early), "one step early"),
    "doubles without resetting the count": (
        _step(good=lambda s, g, i: (s * 2, g + 1, True) if g + 1 == i else (s, g + 1, True)),
        "without resetting the count"),
    "never grows": (_step(good=lambda s, g, i: (s, g + 1, True)), "must double now"),
    "halves on a good step": (_step(good=lambda s, g, i: (s * 0.5, g + 1, True)),
                              "halved the scale on a good step"),
    "branches swapped": (_swapped, "treated a good step as an overflow"),
    "good step skipped": (_step(good=lambda s, g, i: (s, g + 1, False)),
                          "the step must be taken"),
    "good step not counted": (_step(good=lambda s, g, i: (s, g, True)),
                              "did not count the good step"),
    "count reset on a good step": (_step(good=lambda s, g, i: (s * 2, 0, True) if g + 1 == i
                                         else (s, 0, True)), "reset the count on a good step"),
    "growth_interval ignored": (_hard_coded, "ignored growth_interval"),
    "no default growth_interval": (_no_default, "growth_interval=2000"),
    "take_step as an int": (lambda *a: (*step_right(*a)[:2], int(step_right(*a)[2])),
                            "take_step = 1 \\(int\\).*True or False"),
    "count as a float": (lambda *a: (step_right(*a)[0], float(step_right(*a)[1]),
                                     step_right(*a)[2]), "new_good_steps = 5.0 .*int"),
    "take_step first": (lambda *a: (step_right(*a)[2], *step_right(*a)[:2]), "the order is"),
    "a dict": (lambda *a: dict(zip("sgt", step_right(*a), strict=True)), "as a tuple"),
    "two values": (lambda *a: step_right(*a)[:2], "returned 2 values"),
    "no return": (lambda *a: None, "returned None.*forget the return"),
    "state kept between calls": (_stateful, "keeps state of its own"),
}


@pytest.mark.parametrize("answer", STEP_RIGHT, ids=lambda f: f.__name__)
def test_scaler_check_accepts_right_answers(answer: Callable, capsys) -> None:
    exercises.check_scaler_step(answer)
    assert capsys.readouterr().out.startswith("Correct!")


@pytest.mark.parametrize("wrong", list(STEP_WRONG))
def test_scaler_check_rejects_wrong_answers(wrong: str) -> None:
    _last_scale.clear()
    answer, message = STEP_WRONG[wrong]
    with pytest.raises(exercises.ExerciseError, match=message):
        exercises.check_scaler_step(answer)


@pytest.mark.parametrize("wrong", ["step taken on overflow", "back off without resetting the "
                                   "count", "grows on every good step", "grows when the count "
                                   "exceeds the interval", "doubles without resetting the count",
                                   "halves on a good step", "never grows",
                                   "growth_interval ignored"])
def test_scaler_run_alone_rejects_wrong_answers(wrong: str, monkeypatch) -> None:
    """The 13-step run with the function's own state fed back catches the mistakes by itself."""
    _last_scale.clear()
    monkeypatch.setattr(checks, "_STEP_CASES", ())
    with pytest.raises(exercises.ExerciseError, match="step \\d+ of a run"):
        exercises.check_scaler_step(STEP_WRONG[wrong][0])


def test_scaler_reference_is_torchs_update() -> None:
    """Independent of the check: the reference (LossScaler.update) follows PyTorch's own scale
    update (the kernel behind torch.amp.GradScaler) over the check's run and its cases."""
    interval = checks._SEQUENCE_INTERVAL
    scale, tracker = torch.tensor([2.0**16]), torch.tensor([0], dtype=torch.int32)
    mine = LossScaler(scale=2.0**16, growth_interval=interval)
    for finite in checks._SEQUENCE:
        found_inf = torch.tensor([0.0 if finite else 1.0])
        torch._amp_update_scale_(scale, tracker, found_inf, 2.0, 0.5, interval)
        mine.update(finite)
        assert (mine.scale, mine.good_steps) == (float(scale), int(tracker))
    for case in checks._STEP_CASES:
        scale = torch.tensor([case.scale])
        tracker = torch.tensor([case.good_steps], dtype=torch.int32)
        torch._amp_update_scale_(scale, tracker, torch.tensor([float(not case.finite)]), 2.0,
                                 0.5, case.interval)
        expected = checks._reference(case.scale, case.good_steps, case.finite, case.interval)
        assert expected == (float(scale), int(tracker), case.finite)


def test_scaler_cases_cover_every_branch() -> None:
    """The single-step cases hold overflows, plain good steps, steps that grow, the default
    interval (growth_interval omitted) and interval 1."""
    kinds = set()
    for c in checks._STEP_CASES:
        scale, _, _ = checks._reference(c.scale, c.good_steps, c.finite, c.interval)
        kinds.add("overflow" if not c.finite else "grow" if scale > c.scale else "good")
    assert kinds == {"overflow", "grow", "good"}
    assert any(c.growth_interval is None for c in checks._STEP_CASES)
    assert any(c.growth_interval == 1 for c in checks._STEP_CASES)
    assert any(c.scale == 1.0 and not c.finite for c in checks._STEP_CASES)


class _GrowsLate(LossScaler):
    """A broken reference: grows one step late."""

    def update(self, finite: bool) -> None:
        if not finite:
            super().update(finite)
            return
        self.good_steps += 1
        if self.good_steps > self.growth_interval:
            self.scale *= self.growth_factor
            self.good_steps = 0


def test_scaler_check_depends_on_its_reference(monkeypatch) -> None:
    """Mutation: with a broken reference the right answer is rejected."""
    monkeypatch.setattr(checks, "LossScaler", _GrowsLate)
    with pytest.raises(exercises.ExerciseError):
        exercises.check_scaler_step(step_right)


# ---- both -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("check", "answer"), [(exercises.check_global_gram, gram_right),
                                               (exercises.check_scaler_step, step_right)],
                         ids=["global_gram", "scaler_step"])
def test_checks_leave_the_random_state_alone(check: Callable, answer: Callable, capsys) -> None:
    """A check in a notebook must not change what the cells after it draw (the case cache is
    cleared so that the cases are built in this call)."""
    checks._gram_cases.cache_clear()
    state = torch.get_rng_state()
    check(answer)
    assert torch.equal(torch.get_rng_state(), state)

