"""Data-parallel training over ``torch.distributed``: the few collective operations ``train``
and the strategies need, and nothing when there is no process group.

``train`` never starts a process group: ``torchrun`` (or a test) does, with
``torch.distributed.init_process_group`` (gloo on a CPU, nccl on CUDA). When one is running,
every process takes its contiguous slice of every global batch (``shard``), and the replicas
stay identical because every update is made from gradients averaged over the processes:

- ``average_gradients(params)``: one all-reduce (mean) of the parameters' gradients packed in
  one flat bucket (a few buckets beyond ``BUCKET_BYTES``), for strategies that reduce the
  gradients themselves (alternating and sequential steps, gradient methods); DDP does the same
  for joint training, overlapped with the backward pass;
- ``average(values)``: the mean of a small float tensor (T losses, a T x T Gram matrix);
- ``broadcast_parameters(model)``: rank 0's parameters and buffers on every process;
- ``sum_meters(meters)``: evaluation meters summed over the processes (their state is sums);
- ``shard(batch, step)``: this process's slice of a global batch.

Every function here is a no-op (or the identity) without a process group, so a single process
computes exactly what it did before this module existed. ``CommLog`` counts the bytes reduced
(for the benchmark).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

BUCKET_BYTES = 25 * 2**20  # DDP's default bucket size: larger gradient sets go in several


class CommLog:
    """Bytes all-reduced (or broadcast) by this process since the last ``reset``: what one
    step sends, for the benchmark. ``calls`` counts the collective operations."""

    bytes = 0
    calls = 0

    @classmethod
    def add(cls, tensor: torch.Tensor) -> None:
        cls.bytes += tensor.numel() * tensor.element_size()
        cls.calls += 1

    @classmethod
    def reset(cls) -> None:
        cls.bytes = cls.calls = 0


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 without a process group)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes (1 without a process group)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def is_main() -> bool:
    """True on the process that shows progress and writes files (rank 0)."""
    return rank() == 0


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(batch: Mapping[str, torch.Tensor], step: int) -> dict[str, torch.Tensor]:
    """This process's contiguous slice of the global ``batch`` (every tensor's first dimension):
    rank r of W takes samples ``[r * B / W, (r + 1) * B / W)``. The batch as is without a
    process group; a clear error if B is not a multiple of W (``step``: for the message)."""
    if not is_distributed():
        return dict(batch)
    w, r = world_size(), rank()
    sizes = {len(v) for v in batch.values()}
    if len(sizes) != 1:
        raise ValueError(f"the batch of step {step} has tensors of different lengths {sizes}")
    b = sizes.pop()
    if b % w:
        raise ValueError(
            f"the global batch of step {step} has {b} samples, which {w} processes cannot "
            f"share equally: expected a multiple of {w}. Use a batch size divisible by {w} "
            "and a data set whose size is a multiple of it (or drop_last=True)"
        )
    n = b // w
    return {k: v[r * n:(r + 1) * n] for k, v in batch.items()}


def _collective_device() -> torch.device:
    """Where a collective's tensor must be: this process's GPU for nccl, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def average(values: torch.Tensor) -> torch.Tensor:
    """The mean over the processes of ``values`` (a small tensor, identical shape everywhere);
    ``values`` itself without a process group."""
    if not is_distributed():
        return values
    out = values.detach().to(_collective_device(), copy=True)
    CommLog.add(out)
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return (out / world_size()).to(values.device)


def _buckets(tensors: Sequence[torch.Tensor]) -> Iterable[list[torch.Tensor]]:
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        if bucket and (size + t.numel() * t.element_size() > BUCKET_BYTES
                       or t.dtype != bucket[0].dtype or t.device != bucket[0].device):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += t.numel() * t.element_size()
    if bucket:
        yield bucket


def average_tensors(tensors: Sequence[torch.Tensor]) -> None:
    """Replace each tensor by its mean over the processes, in place, through flat buckets
    (one all-reduce per bucket)."""
    if not is_distributed():
        return
    w = world_size()
    for bucket in _buckets(tensors):
        flat = torch.cat([t.reshape(-1) for t in bucket])
        CommLog.add(flat)
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= w
        offset = 0
        for t in bucket:
            t.copy_(flat[offset:offset + t.numel()].view_as(t))
            offset += t.numel()


def average_gradients(params: Iterable[nn.Parameter]) -> None:
    """Average the ``.grad`` of ``params`` over the processes (those whose grad is not None:
    every process must hold grads for the same parameters, as when all run the same task)."""
    if not is_distributed():
        return
    average_tensors([p.grad for p in params if p.grad is not None])


def broadcast_parameters(model: nn.Module) -> None:
    """Rank 0's parameters and buffers on every process (so the replicas start identical)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for t in [*model.parameters(), *model.buffers()]:
            CommLog.add(t)
            dist.broadcast(t.data, src=0)


def _numeric_state(meter: Any) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in vars(meter).items()
            if isinstance(v, (int, float, torch.Tensor)) and not isinstance(v, bool)
            or isinstance(v, list) and all(isinstance(x, (int, float)) for x in v)]


def sum_meters(meters: Mapping[str, Any]) -> None:
    """Sum the evaluation meters' state over the processes, in place, in one all-reduce.

    A ``TaskMeter`` keeps sums only (loss sums, sample counts, confusion matrices, histograms),
    so the meters of the test set's shards add up to the meter of the whole set. Packed in
    float64: integer counts stay exact below 2^53."""
    if not is_distributed():
        return
    fields = [(m, k, v) for m in meters.values() for k, v in _numeric_state(m)]
    flat = torch.cat([torch.as_tensor(v, dtype=torch.float64).reshape(-1).cpu()
                      for _, _, v in fields]).to(_collective_device())
    CommLog.add(flat)
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat = flat.cpu()
    offset = 0
    for m, k, v in fields:
        n = v.numel() if isinstance(v, torch.Tensor) else len(v) if isinstance(v, list) else 1
        part = flat[offset:offset + n]
        offset += n
        if isinstance(v, torch.Tensor):
            v.copy_(part.view(v.shape).round().to(v.dtype) if not v.is_floating_point()
                    else part.view(v.shape).to(v.dtype))
        elif isinstance(v, list):
            setattr(m, k, [type(x)(round(y) if isinstance(x, int) else y)
                           for x, y in zip(v, part.tolist(), strict=True)])
        else:
            setattr(m, k, int(round(part.item())) if isinstance(v, int) else part.item())


def gather(value: Any) -> list[Any]:
    """Every process's ``value`` (picklable), in rank order; ``[value]`` without a group."""
    if not is_distributed():
        return [value]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, value)
    return out


def wrap_ddp(model: nn.Module) -> nn.Module:
    """``model`` in a ``DistributedDataParallel`` (its gradients averaged during backward,
    overlapped with it); ``model`` itself without a process group."""
    if not is_distributed():
        return model
    device = next(model.parameters()).device
    ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)
