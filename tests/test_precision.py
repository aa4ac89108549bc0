"""``training.precision``: autocast per precision, and the loss scaler's rules (those of
``torch.amp.GradScaler``), checked on the CPU with gradients made to overflow."""

from __future__ import annotations

import pytest
import torch

from mtlaug_lib.training.precision import LossScaler, Precision


def test_fp32_changes_nothing_and_bf16_autocasts_matmuls() -> None:
    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with Precision("fp32", "cpu").autocast():
        assert (a @ b).dtype == torch.float32
    with Precision("bf16", "cpu").autocast():
        assert (a @ b).dtype == torch.bfloat16
    assert not Precision("fp32", "cpu").enabled and Precision("bf16", "cpu").enabled
    assert Precision("bf16", "cpu").scaler is None


@pytest.mark.parametrize(("name", "device", "words"), [
    ("fp16", "cpu", "for CUDA devices; use precision='bf16'"),
    ("float16", "cpu", "argument 'precision'"),
    ("half", "cpu", "'fp32', 'bf16', 'fp16'"),
])
def test_bad_precision_is_refused_with_what_to_use(name, device, words) -> None:
    with pytest.raises(ValueError, match=words):
        Precision(name, device)


def test_unscale_divides_and_detects_overflow() -> None:
    scaler = LossScaler(scale=8.0)
    grads = [torch.full((3,), 16.0), None, torch.full((2,), 8.0)]
    assert scaler.unscale(grads)
    assert torch.equal(grads[0], torch.full((3,), 2.0)) and torch.equal(grads[2], torch.ones(2))
    assert not scaler.unscale([torch.tensor([1.0, float("inf")])])
    assert not scaler.unscale([torch.tensor([float("nan")])])


def test_the_scale_backs_off_after_an_overflow_and_grows_after_good_steps() -> None:
    scaler = LossScaler(scale=1024.0, growth_interval=3)
    scaler.update(False)
    assert scaler.scale == 512.0 and scaler.skipped == 1
    for _ in range(2):
        scaler.update(True)
    assert scaler.scale == 512.0  # two good steps: not yet
    scaler.update(True)
    assert scaler.scale == 1024.0 and scaler.good_steps == 0
    scaler.update(True)
    scaler.update(False)  # an overflow resets the count of good steps
    assert scaler.scale == 512.0 and scaler.good_steps == 0


def test_scaling_keeps_small_gradients_that_fp16_would_flush() -> None:
    # A gradient of 1e-8 is below float16's smallest subnormal (6e-8): it becomes 0 in fp16.
    g = torch.tensor([1e-8])
    assert g.half().item() == 0.0
    scaler = LossScaler()
    scaled = (g * scaler.scale).half()  # what a scaled backward would hold in fp16
    assert scaled.item() != 0.0
    back = scaled.float()
    assert scaler.unscale([back])
    assert back.item() == pytest.approx(1e-8, rel=1e-2)


def test_the_scaler_matches_torch_gradscaler_defaults() -> None:
    torch_scaler = torch.amp.GradScaler("cpu", enabled=True)
    ours = LossScaler()
    assert ours.scale == torch_scaler.get_scale()
    assert ours.growth_factor == torch_scaler.get_growth_factor()
    assert ours.backoff_factor == torch_scaler.get_backoff_factor()
    assert ours.growth_interval == torch_scaler.get_growth_interval()


def test_state_round_trip_and_resume_with_another_precision_is_refused() -> None:
    p = Precision("bf16", "cpu")
    state = p.state_dict()
    Precision("bf16", "cpu").load_state_dict(state)
    with pytest.raises(ValueError, match="trained with precision 'bf16', this run uses 'fp32'"):
        Precision("fp32", "cpu").load_state_dict(state)
    scaler = LossScaler(scale=4.0, good_steps=3, skipped=2)
    other = LossScaler()
    other.load_state_dict(scaler.state_dict())
    assert (other.scale, other.good_steps, other.skipped) == (4.0, 3, 2)


# ---------------------------------------------------------------- precision inside train

import mtlaug_lib as mtl  # noqa: E402
from mtlaug_lib.training.precision import active, optimizer_step  # noqa: E402
from mtlaug_lib.training.weighting import Weighted  # noqa: E402

STRATEGIES = {
    "joint": lambda: "joint",
    "alternating": lambda: "alternating",
    "sequential": lambda: "sequential",
    "uncertainty": lambda: Weighted("uncertainty", lr=0.1),
    "mgda": lambda: Weighted("mgda"),
    "pcgrad": lambda: Weighted("pcgrad"),
    "mgda, parameters": lambda: Weighted("mgda", source="parameters"),
}


@pytest.fixture(scope="module")
def digits():
    tasks = mtl.multidigits_tasks()
    data = mtl.MultiDigits("train", size=96)
    return tasks, data


def _run(digits, strategy, precision, steps_seed=0):
    tasks, data = digits
    net = mtl.make_model(tasks, seed=steps_seed)
    loader = mtl.TensorLoader(data, 32, shuffle=True, seed=steps_seed)
    history = mtl.train(net, tasks, loader, epochs=1, lr=3e-3, strategy=strategy,
                        progress=False, precision=precision)
    return net, history


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_loss_scaling_alone_is_fp32_bit_for_bit(digits, name) -> None:
    # A power-of-two scale multiplies every gradient exactly, and the division undoes it
    # exactly: with float32 compute, fp16's scaling path must give fp32's weights exactly.
    # This checks that every strategy scales before backward and unscales before it uses
    # or steps the gradients (a missing division would move the weights 65,536 times too far).
    plain, _ = _run(digits, STRATEGIES[name](), "fp32")
    scaled_precision = Precision("fp16", "cpu", autocast=False)
    scaled, _ = _run(digits, STRATEGIES[name](), scaled_precision)
    assert scaled_precision.scaler.skipped == 0
    for (n, a), b in zip(plain.state_dict().items(), scaled.state_dict().values(), strict=True):
        assert torch.equal(a, b), n


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("name", ["joint", "alternating", "uncertainty", "mgda",
                                  "mgda, parameters"])
def test_an_overflow_skips_the_update(digits, name) -> None:
    tasks, data = digits
    net = mtl.make_model(tasks, seed=0)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    precision = Precision("fp16", "cpu", autocast=False)
    # An infinite scale overflows every gradient (a finite float32 scale cannot be made to:
    # the gradients here are small), so the first update must be skipped.
    precision.scaler.scale = float("inf")
    strategy = STRATEGIES[name]()
    history = mtl.train(net, tasks, mtl.TensorLoader(data, 96), epochs=1, strategy=strategy,
                        schedule=None, progress=False, precision=precision)
    assert history.steps == 1 and precision.scaler.skipped == 1
    for k, v in net.state_dict().items():
        assert torch.equal(v, before[k]), k  # nothing moved
    if name == "uncertainty":  # its log-variances did not move from their start either
        assert torch.equal(strategy.method.parameters()[0].detach(), torch.zeros(len(tasks)))


def test_optimizer_step_without_a_precision_just_steps() -> None:
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=1.0)
    p.grad = torch.full((2,), 0.5)
    with active(None):
        assert optimizer_step(opt)
    assert torch.equal(p.detach(), torch.full((2,), 0.5))


@pytest.mark.usefixtures("one_thread")
def test_bf16_runs_the_forward_in_bf16_and_keeps_float32_weights(digits) -> None:
    tasks, data = digits
    net = mtl.make_model(tasks, seed=0)
    seen = []
    hook = net.backbone.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    mtl.train(net, tasks, mtl.TensorLoader(data, 32), epochs=1, progress=False,
              precision="bf16")
    hook.remove()
    assert seen and set(seen) == {torch.bfloat16}
    assert {p.dtype for p in net.parameters()} == {torch.float32}


@pytest.mark.usefixtures("one_thread")
def test_bf16_reaches_fp32_accuracy_within_3_points() -> None:
    # Measured (2,000 samples, 3 epochs, 3 seeds): bf16 within 0.016 of fp32 on every task,
    # while the seeds' own spread is about 0.04. One seed, a smaller run here; the margin, 0.03.
    tasks = mtl.multidigits_tasks()
    data = mtl.MultiDigits("train", size=1500)
    test = mtl.TensorLoader(mtl.MultiDigits("test", size=500), 500)
    scores = {}
    for precision in ("fp32", "bf16"):
        net = mtl.make_model(tasks, seed=1)
        mtl.train(net, tasks, mtl.TensorLoader(data, 64, shuffle=True, seed=1), epochs=2,
                  lr=3e-3, progress=False, precision=precision)
        metrics = mtl.evaluate(net, test, tasks)
        scores[precision] = {t: metrics[t][tasks[t].primary_metric] for t in tasks}
    assert min(scores["fp32"].values()) > 0.5  # it learned (chance: 0.1 and about 0.25)
    for t in tasks:
        assert abs(scores["bf16"][t] - scores["fp32"][t]) <= 0.03, (t, scores)


@pytest.mark.usefixtures("one_thread")
def test_resume_keeps_the_precision(digits, tmp_path) -> None:
    tasks, data = digits
    path = tmp_path / "run.pt"
    whole = mtl.make_model(tasks, seed=0)
    mtl.train(whole, tasks, mtl.TensorLoader(data, 32, shuffle=True, seed=0), epochs=2,
              progress=False, precision="bf16")
    def stop(history):  # an interruption after the first epoch's checkpoint
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mtl.train(mtl.make_model(tasks, seed=0), tasks,
                  mtl.TensorLoader(data, 32, shuffle=True, seed=0), epochs=2, progress=False,
                  precision="bf16", checkpoint=path, on_epoch_end=stop)
    resumed = mtl.make_model(tasks, seed=0)
    mtl.train(resumed, tasks, mtl.TensorLoader(data, 32, shuffle=True, seed=0), epochs=2,
              progress=False, precision="bf16", checkpoint=path, resume=True)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="trained with precision 'bf16', this run uses 'fp32'"):
        mtl.train(mtl.make_model(tasks, seed=0), tasks,
                  mtl.TensorLoader(data, 32, shuffle=True, seed=0), epochs=2, progress=False,
                  checkpoint=path, resume=True)


def test_train_refuses_fp16_on_a_cpu(digits) -> None:
    tasks, data = digits
    with pytest.raises(ValueError, match="argument 'precision' is 'fp16'.*use precision='bf16'"):
        mtl.train(mtl.make_model(tasks), tasks, mtl.TensorLoader(data, 32), epochs=1,
                  progress=False, precision="fp16")
