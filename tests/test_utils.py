"""Device choice and seeding."""

from __future__ import annotations

import pytest
import torch

from mtlaug_lib.utils import get_device, seed_everything


def test_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLAUG_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected


def test_env_var_picks_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLAUG_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_unknown_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLAUG_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"MTLAUG_DEVICE is 'tpu', expected one of cpu, cuda, mps"):
        get_device()
    with pytest.raises(ValueError, match=r"argument 'name' is 'gpu'"):
        get_device("gpu")


def test_unavailable_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("MTLAUG_DEVICE", "cuda")
    with pytest.raises(RuntimeError, match=r"asks for device 'cuda', but this machine has no CUDA"):
        get_device()


def test_cuda_index_beyond_the_visible_devices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"only 1 CUDA device"):
        get_device("cuda:3")


def test_seed_everything_repeats_draws() -> None:
    g1 = seed_everything(7)
    a = (torch.rand(3), torch.rand(3, generator=g1))
    g2 = seed_everything(7)
    b = (torch.rand(3), torch.rand(3, generator=g2))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    with pytest.raises(ValueError, match="argument 'seed'"):
        seed_everything(-1)
