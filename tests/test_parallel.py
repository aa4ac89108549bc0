"""``course.parallel``: processes started from a notebook (one spawn of two gloo processes)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist

from mtlaug_lib import parallel


def ranks_and_sum(value: float) -> dict:
    """Run in each process: its rank, the group's size and the all-reduced sum of value."""
    total = torch.tensor([value * (dist.get_rank() + 1)])
    dist.all_reduce(total)
    return {"rank": dist.get_rank(), "size": dist.get_world_size(), "sum": total.item()}


def test_launch_runs_the_function_in_each_process_of_one_group() -> None:
    results = parallel.launch(ranks_and_sum, 2, 1.5, timeout=120)
    assert [r["rank"] for r in results] == [0, 1]
    assert all(r["size"] == 2 and r["sum"] == 1.5 + 3.0 for r in results)


def test_launch_refuses_a_bad_process_count() -> None:
    with pytest.raises(ValueError, match="argument 'nprocs'"):
        parallel.launch(ranks_and_sum, 0, 1.0)


@pytest.mark.usefixtures("one_thread")
def test_replica_runs_in_one_process_have_no_spread() -> None:
    out = parallel.replica_runs([("joint", "joint", False), ("mgda", "mgda", True)], size=64,
                                batch=32, epochs=1)
    assert set(out) == {"joint", "mgda"}
    for run in out.values():
        assert run["spread"] == [0.0, 0.0]  # two steps, one process
        assert run["parameters"].ndim == 1 and torch.isfinite(run["parameters"]).all()
    # Without a process group the per-shard port is the method itself.
    again = parallel.replica_runs([("mgda", "mgda", False)], size=64, batch=32, epochs=1)
    assert torch.equal(again["mgda"]["parameters"], out["mgda"]["parameters"])
    assert parallel.max_difference(out["joint"]["parameters"], out["mgda"]["parameters"]) > 0
