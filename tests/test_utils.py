"""Device choice and seeding."""

from __future__ import annotations

import math

import pytest
import torch

from mtlaug_lib.core.utils import KNOWN_DEVICES, get_device, seed_everything


def test_default_device(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MTLAUG_DEVICE", raising=False)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert get_device().type == expected


def test_env_var_picks_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLAUG_DEVICE", "cpu")
    assert get_device() == torch.device("cpu")


def test_unknown_device_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MTLAUG_DEVICE", "tpu")
    with pytest.raises(ValueError, match=r"MTLAUG_DEVICE is 'tpu', expected one of ") as err:
        get_device()
    assert all(kind in str(err.value) for kind in KNOWN_DEVICES)
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
    for bad in (-1, True, 1.5, "7"):
        with pytest.raises(ValueError, match=r"argument 'seed' is .*, expected a non-negative"):
            seed_everything(bad)


def test_stopwatch_times_the_block_and_synchronises_the_device(monkeypatch) -> None:
    import time

    from mtlaug_lib.core import utils

    calls = []
    monkeypatch.setattr(utils, "synchronize", lambda device: calls.append(str(device)))
    with utils.Stopwatch("cuda:0") as watch:  # synchronize is stubbed: no GPU needed
        time.sleep(0.02)
    assert calls == ["cuda:0", "cuda:0"]  # before starting and before stopping the clock
    assert watch.seconds >= 0.02
    assert math.isnan(utils.Stopwatch().seconds)  # nothing timed yet


def test_synchronize_on_the_cpu_is_a_no_op_and_a_bad_device_is_an_error() -> None:
    from mtlaug_lib.core.utils import synchronize

    synchronize("cpu")
    with pytest.raises(RuntimeError):
        synchronize("no-such-device")
