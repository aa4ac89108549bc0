"""Distributed data-parallel training: two real processes (``torch.multiprocessing``, gloo on
this CPU) against one process on the same global batches.

One launch of two processes runs every case of ``distributed_worker.RUNS`` (2 epochs of 2 global
batches of 16 on the MultiDigits article model), the indivisible-batch error, a checkpoint and
resume, and the DDP pitfall; the single-process references run here. The tests then check:
the final weights equal one process's within ``ATOL`` (float32 sums in another order), every
step leaves the two replicas bit-identical, the history is the same, and the naive port
(weights from each process's shard) does not match, so the check can fail.
"""

from __future__ import annotations

import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
from distributed_worker import RUNS, run, worker

from mtlaug_lib.training import distributed
from mtlaug_lib.training.gradients import gram
from mtlaug_lib.training.weighting import make_weighting_method

ATOL = 1e-5  # on weights of order 0.1 after 4 Adam steps of lr 1e-3
WORLD = 2
LAUNCH_TIMEOUT = 90  # seconds; the launch takes about 15 on this CPU
CORRECT = [n for n in RUNS if not n.startswith("naive")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def launched(tmp_path_factory):
    """What two processes measured (rank 0's report), started once for the module."""
    out = tmp_path_factory.mktemp("ddp") / "results.pt"
    context = mp.start_processes(worker, args=(WORLD, free_port(), str(out), list(RUNS)),
                                 nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the two processes did not finish in {LAUNCH_TIMEOUT} s")
    finally:
        for process in context.processes:  # never leave one behind
            if process.is_alive():
                process.kill()
                process.join()
    results = torch.load(out, weights_only=False)
    assert "error" not in results, results.get("error")
    return results


@pytest.fixture(scope="module")
def single():
    """The same runs in this one process (no process group)."""
    assert not distributed.is_distributed()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {name: run(name) for name in RUNS}
    finally:
        torch.set_num_threads(threads)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a)


@pytest.mark.parametrize("name", CORRECT)
def test_two_processes_equal_one(launched, single, name):
    got, want = launched[name], single[name]
    assert max_difference(got["state"], want["state"]) < ATOL
    for a, b in zip(got["method"], want["method"], strict=True):
        assert torch.allclose(a, b, atol=ATOL)
    # the replicas were bit-identical after every step, and so were their task weights
    assert got["identical"] == [True] * 4
    assert all(w == got["weights_by_rank"][0] for w in got["weights_by_rank"])
    # the history: global batch losses, images of both processes, the same evaluations
    h, s = got["history"], want["history"]
    assert (h["steps"], h["images"], h["task_images"]) == (s["steps"], s["images"],
                                                          s["task_images"])
    for task, losses in s["train_loss"].items():
        assert h["train_loss"][task] == pytest.approx(losses, abs=1e-5)
    assert h["loss_steps"] == s["loss_steps"]
    for e, f in zip(h["evals"], s["evals"], strict=True):
        for task, metrics in f["test"].items():
            assert e["test"][task] == pytest.approx(metrics, abs=1e-4)
    for e, f in zip(h["weights"], s["weights"], strict=True):
        assert e["weights"] == pytest.approx(f["weights"], abs=1e-4)


@pytest.mark.parametrize("name", ["mgda", "uncertainty"])
def test_naive_port_drifts(launched, single, name):
    """Weights from each process's shard: the processes disagree on the task weights, and
    the model is not the one-process model (so the equality test above can fail)."""
    naive = launched[f"naive-{name}"]
    assert naive["weights_by_rank"][0] != naive["weights_by_rank"][1]
    if name == "mgda":  # the averaged update is not MGDA's on the global batch
        assert max_difference(naive["state"], single[name]["state"]) > 10 * ATOL
    else:  # the log-variances, trained on each shard's losses, drift apart on the replicas
        a, b = naive["method_by_rank"]
        assert float((a[0] - b[0]).abs().max()) > ATOL
        assert float((a[0] - single[name]["method"][0]).abs().max()) > ATOL
        assert naive["identical"] == [False] * 4


def test_indivisible_global_batch_is_refused(launched):
    message = launched["indivisible"]
    assert "15 samples" in message and "multiple of 2" in message and "batch size" in message


def test_resume_under_two_processes(launched):
    """Rank 0's checkpoint after epoch 1, resumed by both: the uninterrupted run's weights."""
    got, want = launched["resumed"], launched["joint"]
    assert max_difference(got["state"], want["state"]) == 0.0
    assert got["history"]["train_loss"] == want["history"]["train_loss"]


def test_plain_ddp_on_an_alternating_step_fails(launched):
    """The pitfall: DDP waits for the gradients of the heads that did not run, and the next
    step refuses to start (our alternating steps average exactly the gradients they made)."""
    assert "finished reduction in the prior iteration" in launched["pitfall"]


def test_helpers_without_a_process_group():
    batch = {"image": torch.zeros(5, 3), "left": torch.zeros(5)}
    assert distributed.shard(batch, 0)["image"] is batch["image"]
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    values = torch.ones(3)
    assert distributed.average(values) is values
    assert distributed.gather(7) == [7]


@pytest.mark.parametrize("name", ["mgda", "pcgrad", "cagrad", "imtl-g", "gradnorm"])
def test_weights_from_the_gram_matrix_alone(name):
    """What two processes solve on (the Gram matrix) gives the weights of the whole G."""
    G = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    losses = torch.tensor([1.0, 2.0, 0.5])
    whole, by_gram = make_weighting_method(name), make_weighting_method(name)
    for method in (whole, by_gram):
        method.reset(["a", "b", "c"])
    want = whole.combine(losses, G)
    got = by_gram.combine_gram(losses, G, gram(G))
    assert torch.allclose(got.weights, want.weights, atol=1e-5)
    assert torch.allclose(got.direction, want.direction, atol=1e-5)
