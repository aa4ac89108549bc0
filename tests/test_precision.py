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
