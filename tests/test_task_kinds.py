"""Task kinds: a contract over ``TASK_KINDS`` (labels, loss, holes, meters, metric directions),
then each kind's metrics against constructions whose answer is known (an offset, a scale, a
rotation), the multi-task score with lower-is-better metrics, and evaluation of dense
regression tasks through the training loop."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mtlaug_lib.core.task_kinds import (
    IGNORE_INDEX,
    TASK_KINDS,
    TRANSFORM_KINDS,
    LabelEffect,
    NormalsMeter,
    TaskMeter,
    angles,
)
from mtlaug_lib.core.tasks import (
    CLASSIFICATION,
    DEPTH,
    KINDS,
    NORMALS,
    SEGMENTATION,
    Task,
    multitask_score,
)
from mtlaug_lib.training.loop import History, evaluate, train

B, H, W, K = 4, 5, 6, 4  # batch, height, width, classes


def task_of(kind: str) -> Task:
    return Task("t", kind, K if TASK_KINDS[kind].has_classes else None)


def unit_normals(g: torch.Generator, *shape: int) -> torch.Tensor:
    """B x 3 x H x W random unit vectors."""
    return F.normalize(torch.randn(shape[0], 3, *shape[1:], generator=g), dim=1)


def labels_of(kind: str, g: torch.Generator, b: int = B) -> torch.Tensor:
    """Valid labels of ``kind``'s layout for a batch of ``b``, with holes where a kind has them
    (about a fifth of the pixels)."""
    hole = torch.rand(b, H, W, generator=g) < 0.2
    if kind == CLASSIFICATION:
        return torch.randint(K, (b,), generator=g)
    if kind == SEGMENTATION:
        return torch.randint(K, (b, H, W), generator=g).masked_fill(hole, IGNORE_INDEX)
    if kind == DEPTH:
        return (0.5 + 5 * torch.rand(b, H, W, generator=g)).masked_fill(hole, 0.0)
    if kind == NORMALS:
        return unit_normals(g, b, H, W).masked_fill(hole[:, None], 0.0)
    raise AssertionError(f"no test labels for the kind {kind!r}: add them here")


def case(kind: str, seed: int = 0, b: int = B) -> tuple[Task, torch.Tensor, torch.Tensor]:
    """A task of ``kind``, a random output and valid labels of its layout."""
    g = torch.Generator().manual_seed(seed)
    task = task_of(kind)
    labels = labels_of(kind, g, b)
    spec = task.kind_spec
    shape = (b, task.out_channels) + ((H, W) if spec.dense else ())
    return task, torch.randn(shape, generator=g), labels


def holes(task: Task, labels: torch.Tensor) -> torch.Tensor:
    """B x H x W bool: the pixels of ``labels`` that hold no label."""
    if labels.ndim == 4:
        return (labels == task.kind_spec.hole_value).all(dim=1)
    return labels == task.kind_spec.hole_value


# Labels that break each kind's rules, with the words the error must hold.
BAD_VALUES: dict[str, list[tuple[Callable[[torch.Tensor], torch.Tensor], str]]] = {
    CLASSIFICATION: [(lambda y: y.index_fill(0, torch.tensor([1]), K), r"range over"),
                     (lambda y: y.index_fill(0, torch.tensor([1]), -1), r"range over \[-1")],
    SEGMENTATION: [(lambda y: y.index_fill(1, torch.tensor([2]), K), r"range over"),
                   (lambda y: y.index_fill(1, torch.tensor([2]), -2), r"range over \[-2")],
    DEPTH: [(lambda y: y.index_fill(1, torch.tensor([2]), -0.5), r"depth of -0.5"),
            (lambda y: y.index_fill(1, torch.tensor([2]), math.nan), r"NaN or infinite"),
            (lambda y: y.index_fill(2, torch.tensor([0]), math.inf), r"NaN or infinite")],
    NORMALS: [(lambda y: y * 2, r"normal of length 2"),
              (lambda y: y.index_fill(1, torch.tensor([0]), 0.3), r"normal of length"),
              (lambda y: y.index_fill(3, torch.tensor([1]), math.nan), r"NaN or infinite")],
}


# ---- the registry's contract ----------------------------------------------------------------


def test_the_registry_holds_the_four_kinds_and_kinds_are_its_keys() -> None:
    assert set(TASK_KINDS) == {CLASSIFICATION, SEGMENTATION, DEPTH, NORMALS}
    assert KINDS == tuple(TASK_KINDS)
    assert all(spec.name == name for name, spec in TASK_KINDS.items())


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_a_kind_declares_effects_metrics_and_directions(kind: str) -> None:
    spec = TASK_KINDS[kind]
    assert set(spec.default_effects) == set(TRANSFORM_KINDS)
    assert all(isinstance(e, LabelEffect) for e in spec.default_effects.values())
    assert task_of(kind).label_effects == dict(spec.default_effects)
    assert spec.primary_metric in spec.metrics
    assert set(spec.higher_is_better) == {"loss", *spec.metrics}
    assert spec.higher_is_better["loss"] is False
    assert spec.meter_class is not TaskMeter and issubclass(spec.meter_class, TaskMeter)


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_good_labels_pass_in_the_declared_layout(kind: str) -> None:
    task, output, labels = case(kind)
    assert labels.dtype == task.kind_spec.label_dtype
    assert tuple(labels.shape) == task.kind_spec.label_shape(B, H, W)
    assert output.shape[1] == task.out_channels
    task.check_labels(output, labels)
    task.check_labels(output[:0], labels[:0])  # an empty batch


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_labels_of_the_wrong_dtype_or_shape_are_refused_naming_the_task(kind: str) -> None:
    task, output, labels = case(kind)
    other = labels.long() if labels.is_floating_point() else labels.float()
    with pytest.raises(TypeError, match=r"task 't': labels have dtype"):
        task.check_labels(output, other)
    with pytest.raises(ValueError, match=r"task 't': labels have shape"):
        task.check_labels(output, labels[:-1])
    wider = torch.cat([output, output[:, :1]], dim=1)  # one channel too many
    with pytest.raises(ValueError, match=r"task 't': the output has shape"):
        task.check_labels(wider, labels)


@pytest.mark.parametrize(("kind", "index"), [(k, i) for k in TASK_KINDS
                                             for i in range(len(BAD_VALUES[k]))])
def test_labels_out_of_range_are_refused_naming_the_task(kind: str, index: int) -> None:
    task, output, labels = case(kind)
    spoil, words = BAD_VALUES[kind][index]
    with pytest.raises(ValueError, match=r"task 't': .*" + words):
        task.check_labels(output, spoil(labels))
    with pytest.raises(ValueError, match=r"task 't'"):  # the meter checks before counting
        task.meter().update(output, spoil(labels))


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_the_loss_is_a_finite_scalar_with_a_gradient(kind: str) -> None:
    task, output, labels = case(kind)
    output.requires_grad_(True)
    loss = task.loss(output, labels)
    assert loss.ndim == 0 and torch.isfinite(loss) and loss > 0
    loss.backward()
    assert torch.isfinite(output.grad).all() and output.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", [k for k, s in TASK_KINDS.items() if not s.has_classes])
def test_a_regression_loss_is_zero_when_the_output_is_the_labels(kind: str) -> None:
    task, output, labels = case(kind)
    perfect = labels.reshape(output.shape)  # depth B x H x W -> B x 1 x H x W
    assert float(task.loss(perfect, labels)) == pytest.approx(0, abs=1e-6)
    assert float(task.loss(output, labels)) > 0.1


@pytest.mark.parametrize("kind", [k for k, s in TASK_KINDS.items() if s.dense])
def test_a_hole_changes_neither_loss_nor_metrics(kind: str) -> None:
    task, output, labels = case(kind)
    hole = holes(task, labels)
    assert 0 < hole.sum() < hole.numel()
    other = output.clone()
    other.masked_scatter_(hole[:, None].expand_as(output), torch.randn(output.shape) * 100)
    assert not torch.equal(other, output)
    assert torch.equal(task.loss(other, labels), task.loss(output, labels))
    a, b = task.meter(), task.meter()
    a.update(output, labels)
    b.update(other, labels)
    assert a.compute() == b.compute()
    # the gradient at a hole is zero
    other.requires_grad_(True)
    task.loss(other, labels).backward()
    assert other.grad[hole[:, None].expand_as(other)].abs().max() == 0


@pytest.mark.parametrize("kind", [k for k, s in TASK_KINDS.items() if s.dense])
def test_a_batch_of_only_holes_gives_a_zero_loss_with_a_gradient_and_nan_metrics(
    kind: str,
) -> None:
    task, output, labels = case(kind)
    empty = torch.full_like(labels, task.kind_spec.hole_value)
    output.requires_grad_(True)
    loss = task.loss(output, empty)
    assert float(loss.detach()) == 0 and loss.requires_grad
    loss.backward()
    assert torch.equal(output.grad, torch.zeros_like(output))
    meter = task.meter()
    meter.update(output, empty, loss)
    got = meter.compute()
    assert got["loss"] == 0 and all(math.isnan(got[m]) for m in task.kind_spec.metrics)


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_the_meter_over_two_batches_equals_the_meter_over_their_concatenation(kind: str) -> None:
    task, output, labels = case(kind, seed=3, b=7)
    whole, parts = task.meter(), TaskMeter(task)  # TaskMeter(task) builds the kind's meter
    assert type(whole) is type(parts) is task.kind_spec.meter_class
    whole.update(output, labels, task.loss(output, labels))
    for part in (slice(0, 2), slice(2, 7)):  # unequal parts: pooled, not a mean of means
        parts.update(output[part], labels[part], task.loss(output[part], labels[part]))
    a, b = whole.compute(), parts.compute()
    assert set(a) == set(b) == {"loss", *task.kind_spec.metrics}
    for key in task.kind_spec.metrics:
        assert a[key] == pytest.approx(b[key], rel=1e-9, abs=1e-12), key
        assert math.isfinite(a[key])
    assert set(a) <= set(task.kind_spec.higher_is_better)  # every key has a direction


@pytest.mark.parametrize("kind", TASK_KINDS)
def test_task_higher_is_better_reads_the_kind_and_refuses_unknown_metrics(kind: str) -> None:
    task = task_of(kind)
    for metric, higher in task.kind_spec.higher_is_better.items():
        assert task.higher_is_better(metric) is higher
    with pytest.raises(KeyError, match=r"task 't': unknown metric 'bogus', expected one of"):
        task.higher_is_better("bogus")


# ---- declaring a task of each kind ------------------------------------------------------------


def test_out_channels_and_the_optional_classes() -> None:
    assert Task("d", DEPTH).out_channels == 1 and Task("n", NORMALS).out_channels == 3
    assert Task("c", CLASSIFICATION, 7).out_channels == 7
    assert Task("m", SEGMENTATION, 3).out_channels == 3
    assert Task("d", DEPTH).num_classes is None


@pytest.mark.parametrize(
    ("args", "kwargs", "pattern"),
    [
        (("x", CLASSIFICATION), {}, r"task 'x': num_classes is None, expected an int >= 2 \(a "
                                    r"classification task needs its number of classes\)"),
        (("x", SEGMENTATION), {}, r"num_classes is None, expected an int >= 2 \(a segm"),
        (("x", DEPTH, 3), {}, r"task 'x': num_classes is 3, but a depth task has no classes"),
        (("x", NORMALS), {"class_names": ("a",)}, r"class_names is \('a',\), but a normals"),
        (("x", DEPTH), {"label_effects": {"mixing": "mixes"}},
         r"task 'x': a depth task's labels cannot be mixed .* mixing cannot declare 'mixes'"),
        (("x", NORMALS), {"label_effects": {"horizontal_flip": "permutes"}},
         r"task 'x': a normals task has no classes, so horizontal_flip cannot permute them"),
        (("x", DEPTH), {"region": ("mask", 1)}, r"task 'x': region is .* on a classification"),
        (("x", "Depth"), {}, r"task 'x': kind is 'Depth', expected one of \('classification'"),
    ],
)
def test_a_task_that_does_not_fit_its_kind_is_refused(args, kwargs, pattern) -> None:
    with pytest.raises(ValueError, match=pattern):
        Task(*args, **kwargs)


def test_the_regression_kinds_default_effects() -> None:
    for kind in (DEPTH, NORMALS):
        effects = Task("x", kind).label_effects
        assert effects["photometric"] is LabelEffect.KEEPS
        assert effects["region_mixing"] is LabelEffect.MOVES  # a pasted region keeps its values
        for transform in ("geometric", "horizontal_flip", "vertical_flip"):
            assert effects[transform] is LabelEffect.TRANSFORMS, transform  # values change
        for transform in ("occlusion", "mixing"):
            assert effects[transform] is LabelEffect.BREAKS, transform


@pytest.mark.parametrize("kind", [DEPTH, NORMALS])
def test_a_regression_loss_refuses_a_mix(kind: str) -> None:
    task, output, labels = case(kind)
    mix = (torch.full((B,), 0.5), torch.arange(B))
    with pytest.raises(ValueError, match=rf"task 't': argument 'mix' is given, but a {kind}"):
        task.loss(output, labels, mix=mix)


# ---- segmentation with IGNORE_INDEX ---------------------------------------------------------


def test_segmentation_without_holes_gives_the_plain_cross_entropy_bit_for_bit() -> None:
    g = torch.Generator().manual_seed(5)
    out, labels = torch.randn(3, K, H, W, generator=g), torch.randint(K, (3, H, W), generator=g)
    task = Task("m", SEGMENTATION, K)
    assert torch.equal(task.loss(out, labels), F.cross_entropy(out, labels))
    lam, perm = torch.rand(3, generator=g), torch.tensor([1, 2, 0])  # and mixed, as before
    own = F.cross_entropy(out, labels, reduction="none")
    partner = F.cross_entropy(out, labels[perm], reduction="none")
    before = (lam.view(-1, 1, 1) * own + (1 - lam.view(-1, 1, 1)) * partner).mean()
    assert torch.equal(task.loss(out, labels, mix=(lam, perm)), before)


def test_segmentation_loss_and_metrics_count_only_labelled_pixels() -> None:
    task, out, labels = case(SEGMENTATION, seed=6)
    valid = labels != IGNORE_INDEX
    per_pixel = F.cross_entropy(out, labels.clamp(min=0), reduction="none")
    assert torch.allclose(task.loss(out, labels), per_pixel[valid].mean())
    meter = task.meter()
    meter.update(out, labels)
    got = meter.compute()
    pred, target = out.argmax(1)[valid], labels[valid]
    assert got["pixel_accuracy"] == pytest.approx(float((pred == target).double().mean()))
    ious = [float(((pred == c) & (target == c)).sum() / ((pred == c) | (target == c)).sum())
            for c in range(K) if ((pred == c) | (target == c)).any()]
    assert got["miou"] == pytest.approx(sum(ious) / len(ious))
    assert int(meter.confusion.sum()) == int(valid.sum())


def test_a_mixed_segmentation_loss_with_holes_weighs_each_label_by_its_share() -> None:
    task, out, labels = case(SEGMENTATION, seed=7)
    perm = torch.tensor([2, 3, 0, 1])
    plain, partner = task.loss(out, labels), task.loss(out, labels[perm])
    # lam = 1: only the sample's own labels; lam = 0: only its partner's.
    assert torch.allclose(task.loss(out, labels, mix=(torch.ones(B), perm)), plain)
    assert torch.allclose(task.loss(out, labels, mix=(torch.zeros(B), perm)), partner)
    half = task.loss(out, labels, mix=(torch.full((B,), 0.5), perm))
    own_ce = F.cross_entropy(out, labels.clamp(min=0), reduction="none")
    partner_ce = F.cross_entropy(out, labels[perm].clamp(min=0), reduction="none")
    own_ok, partner_ok = labels != IGNORE_INDEX, labels[perm] != IGNORE_INDEX
    by_hand = (0.5 * own_ce * own_ok + 0.5 * partner_ce * partner_ok).sum() / (
        0.5 * own_ok.sum() + 0.5 * partner_ok.sum())
    assert torch.allclose(half, by_hand)


# ---- depth --------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0.3, -1.25])
def test_depth_abs_err_of_a_constant_offset_is_the_offset(offset: float) -> None:
    task, _, labels = case(DEPTH, seed=8)
    pred = (labels + offset)[:, None]
    meter = task.meter()
    meter.update(pred, labels)
    assert meter.compute()["abs_err"] == pytest.approx(abs(offset))
    assert float(task.loss(pred, labels)) == pytest.approx(abs(offset))  # L1 in metres


@pytest.mark.parametrize("scale", [1.1, 0.75])
def test_depth_rel_err_of_a_scaled_prediction_is_the_scale_minus_one(scale: float) -> None:
    task, _, labels = case(DEPTH, seed=9)
    meter = task.meter()
    meter.update((scale * labels)[:, None], labels)
    assert meter.compute()["rel_err"] == pytest.approx(abs(scale - 1))


def test_depth_errors_are_pooled_over_pixels_not_averaged_over_batches() -> None:
    task = Task("d", DEPTH)
    one = torch.tensor([[[2.0, 0.0, 0.0, 0.0]]])  # 1 valid pixel
    four = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # 4 valid pixels
    meter = task.meter()
    meter.update((one + 1)[:, None], one)  # error 1 on its pixel
    meter.update(four[:, None], four)  # no error
    assert meter.compute()["abs_err"] == pytest.approx(1 / 5)
    assert meter.compute()["rel_err"] == pytest.approx(0.5 / 5)


# ---- normals -----------------------------------------------------------------------------------


def rotated(normals: torch.Tensor, degrees: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Each normal turned by its angle (B x H x W degrees) toward a random perpendicular."""
    side = torch.linalg.cross(normals, torch.randn(normals.shape, generator=g), dim=1)
    side = F.normalize(side, dim=1)
    rad = torch.deg2rad(degrees)[:, None]
    return torch.cos(rad) * normals + torch.sin(rad) * side


def test_normals_angle_of_a_known_rotation_is_that_rotation() -> None:
    g = torch.Generator().manual_seed(10)
    task, labels = Task("n", NORMALS), unit_normals(g, B, H, W)
    pred = 5 * rotated(labels, torch.full((B, H, W), 17.0), g)  # any length: normalised
    meter = task.meter()
    meter.update(pred, labels)
    got = meter.compute()
    assert got["mean_angle"] == pytest.approx(17, abs=1e-4)
    assert got["median_angle"] == pytest.approx(17, abs=NormalsMeter.BIN / 2 + 1e-4)
    assert (got["within_11.25"], got["within_22.5"], got["within_30"]) == (0, 1, 1)
    assert float(task.loss(pred, labels)) == pytest.approx(1 - math.cos(math.radians(17)))


def test_normals_within_fractions_and_mean_on_a_constructed_set() -> None:
    g = torch.Generator().manual_seed(11)
    chosen = torch.tensor([5.0, 10, 15, 20, 25, 29, 40, 90]).view(2, 2, 2)
    labels = unit_normals(g, 2, 2, 2)
    meter = Task("n", NORMALS).meter()
    meter.update(rotated(labels, chosen, g), labels)
    got = meter.compute()
    assert (got["within_11.25"], got["within_22.5"], got["within_30"]) == (2 / 8, 4 / 8, 6 / 8)
    assert got["mean_angle"] == pytest.approx(float(chosen.mean()), abs=1e-4)


def test_normals_median_matches_torch_median_within_the_histogram_resolution() -> None:
    g = torch.Generator().manual_seed(12)
    meter, exact = Task("n", NORMALS).meter(), []
    for _ in range(3):  # over batches
        chosen = 180 * torch.rand(B, H, W, generator=g) ** 2  # skewed toward small angles
        labels = unit_normals(g, B, H, W)
        meter.update(rotated(labels, chosen, g), labels)
        exact.append(chosen.flatten())
    median = float(torch.cat(exact).median())
    assert meter.compute()["median_angle"] == pytest.approx(median, abs=NormalsMeter.BIN / 2 + 1e-4)


def test_a_zero_output_vector_counts_as_90_degrees_without_nan() -> None:
    g = torch.Generator().manual_seed(13)
    task, labels = Task("n", NORMALS), unit_normals(g, 1, 2, 2)
    pred = torch.zeros(1, 3, 2, 2, requires_grad=True)
    loss = task.loss(pred, labels)
    loss.backward()
    assert float(loss.detach()) == 1 and torch.isfinite(pred.grad).all()
    assert torch.equal(angles(pred, labels), torch.full((1, 2, 2), 90.0, dtype=torch.float64))


def test_normals_stored_in_float16_add_no_phantom_angle() -> None:
    # The labels come back from float16 storage a little off unit length; the output equals
    # them. acos of the raw dot product would report about a degree of error (see COURSE.md).
    g = torch.Generator().manual_seed(14)
    labels = unit_normals(g, B, H, W).half().float()
    meter = Task("n", NORMALS).meter()
    meter.update(labels.clone(), labels)
    assert meter.compute()["mean_angle"] < 1e-3


# ---- the multi-task score with lower-is-better metrics ---------------------------------------


def test_a_smaller_error_than_single_task_is_a_positive_gain() -> None:
    tasks = {"d": Task("d", DEPTH), "c": Task("c", CLASSIFICATION, 3)}
    assert multitask_score({"d": 0.9, "c": 0.5}, {"d": 1.0, "c": 0.5}, tasks) == (
        pytest.approx(0.1 / 2))  # 10% less error on one of two tasks
    assert multitask_score({"d": 1.2, "c": 0.5}, {"d": 1.0, "c": 0.5}, tasks) == (
        pytest.approx(-0.2 / 2))
    # 10% less depth error and 10% less accuracy cancel out
    assert multitask_score({"d": 0.9, "c": 0.45}, {"d": 1.0, "c": 0.5}, tasks) == (
        pytest.approx(0))


def test_the_score_of_higher_is_better_tasks_is_the_plain_formula_exactly() -> None:
    tasks = {"a": Task("a", CLASSIFICATION, 3), "m": Task("m", SEGMENTATION, 3)}
    multi, single = {"a": 0.91, "m": 0.37}, {"a": 0.83, "m": 0.41}
    plain = sum((multi[t] - single[t]) / single[t] for t in tasks) / len(tasks)
    assert multitask_score(multi, single, tasks) == plain


def test_the_score_over_metric_dicts_signs_every_metric_and_ignores_the_loss() -> None:
    tasks = {"n": Task("n", NORMALS), "d": Task("d", DEPTH)}
    single = {"n": {"mean_angle": 20.0, "median_angle": 15.0, "within_11.25": 0.3,
                    "within_22.5": 0.6, "within_30": 0.7, "loss": 0.2},
              "d": {"abs_err": 0.5, "rel_err": 0.2, "loss": 0.5}}
    better = {t: {m: v * (1.1 if tasks[t].higher_is_better(m) else 0.9) for m, v in d.items()}
              for t, d in single.items()}  # every metric 10% better (the loss too)
    assert multitask_score(better, single, tasks) == pytest.approx(0.1)
    worse_loss = {t: {**d, "loss": 100.0} for t, d in better.items()}
    assert multitask_score(worse_loss, single, tasks) == pytest.approx(0.1)
    one_worse = {**better, "d": {**better["d"], "abs_err": 0.6}}  # 20% more error: 7 metrics
    assert multitask_score(one_worse, single, tasks) == pytest.approx((6 * 0.1 - 0.2) / 7)


def test_the_score_refuses_missing_metrics_and_mixed_forms() -> None:
    tasks = {"d": Task("d", DEPTH)}
    with pytest.raises(KeyError, match=r"task 'd' has no metric 'rel_err' in \['multi'\]"):
        multitask_score({"d": {"abs_err": 1.0}}, {"d": {"abs_err": 1.0, "rel_err": 1.0}}, tasks)
    with pytest.raises(TypeError, match=r"task 'd' has a float in 'multi' and a dict"):
        multitask_score({"d": 1.0}, {"d": {"abs_err": 1.0, "rel_err": 1.0}}, tasks)
    with pytest.raises(ValueError, match=r"single-task metric of task\(s\) \['d'\] is 0"):
        multitask_score({"d": {"abs_err": 1.0, "rel_err": 1.0}},
                        {"d": {"abs_err": 1.0, "rel_err": 0.0}}, tasks)


# ---- evaluation and training with dense regression tasks ----------------------------------


class TinyDense(nn.Module):
    """A 1 x 1 convolution per task: B x 3 x H x W -> {task: B x C x H x W}."""

    def __init__(self, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.tasks = tuple(tasks)
        self.heads = nn.ModuleDict({n: nn.Conv2d(3, t.out_channels, 1) for n, t in tasks.items()})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: head(x) for name, head in self.heads.items()}


def dense_batches(seed: int, n: int) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"image": torch.rand(B, 3, H, W, generator=g), "depth": labels_of(DEPTH, g),
             "normals": labels_of(NORMALS, g)} for _ in range(n)]


def test_evaluate_and_train_report_the_dense_regression_metrics() -> None:
    tasks = {"depth": Task("depth", DEPTH), "normals": Task("normals", NORMALS)}
    torch.manual_seed(0)
    model, batches = TinyDense(tasks), dense_batches(15, 3)
    got = evaluate(model, batches, tasks)
    assert {t: set(m) for t, m in got.items()} == {
        t: {"loss", *task.kind_spec.metrics} for t, task in tasks.items()}
    # evaluate pools every valid pixel: the same as one meter over the concatenated set
    with torch.no_grad():
        whole = {k: torch.cat([b[k] for b in batches]) for k in batches[0]}
        out = model(whole["image"])
    for name, task in tasks.items():
        meter = task.meter()
        meter.update(out[name], whole[name])
        for metric, value in meter.compute().items():
            assert got[name][metric] == pytest.approx(value, rel=1e-6), (name, metric)
    history = train(model, tasks, batches, batches, epochs=1, lr=1e-2, progress=False)
    final = history.final()
    assert final["depth"]["abs_err"] < got["depth"]["abs_err"]  # training lowers the L1 error
    steps, values = History.from_dict(history.to_dict()).curve("normals", "median_angle")
    assert steps == [3] and values == [final["normals"]["median_angle"]]
