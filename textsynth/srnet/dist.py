"""Distributed training plumbing: the local rank's device, the process group, DDP wrapping, SyncBatchNorm.

torchrun (or any launcher setting RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT) starts
one process per GPU; each binds to GPU LOCAL_RANK (torch.cuda.set_device) so its CUDA context, pinned
memory thread and NCCL communicator live there and nowhere else.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


def env_info() -> DistInfo:
    """Rank, world size and local rank from the launcher's environment (1 process when unset)."""
    def num(name: str, default: str) -> int:
        v = os.environ.get(name, default)
        try:
            return int(v)
        except ValueError:
            raise ConfigError(f"environment variable {name}={v!r} is not an integer") from None
    return DistInfo(num("RANK", "0"), num("WORLD_SIZE", "1"), num("LOCAL_RANK", "0"))


def device_for(name: str, local_rank: int, cuda_available: bool, device_count: int,
               what: str = "train.device") -> torch.device:
    """The device this process trains on.

    auto: cuda:LOCAL_RANK when CUDA is available, else cpu; cuda: cuda:LOCAL_RANK; cuda:N: GPU N
    (one process only, or a launcher that gives each process its own visible GPU); cpu: cpu.
    """
    if name == "auto":
        name = "cuda" if cuda_available else "cpu"
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{what}={name!r}: not a device (auto, cpu, cuda, cuda:N)") from None
    if dev.type == "cpu":
        return dev
    if dev.type != "cuda":
        raise ConfigError(f"{what}={name!r}: use auto, cpu, cuda or cuda:N")
    if not cuda_available:
        raise ConfigError(f"{what}={name!r} but CUDA is not available (no GPU visible to this process)")
    index = local_rank if dev.index is None else dev.index
    if index >= device_count:
        raise ConfigError(f"{what}={name!r} with LOCAL_RANK={local_rank}: GPU {index} does not exist "
                          f"({device_count} visible)")
    return torch.device("cuda", index)


def setup(device_name: str) -> tuple[DistInfo, torch.device]:
    """Pick and bind this process's device, then join the process group when WORLD_SIZE > 1."""
    info = env_info()
    device = device_for(device_name, info.local_rank, torch.cuda.is_available(),
                        torch.cuda.device_count() if torch.cuda.is_available() else 0)
    if device.type == "cuda":
        torch.cuda.set_device(device)  # before any CUDA work: NCCL and pinned memory follow it
    if info.world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            import inspect

            backend = "nccl" if device.type == "cuda" else "gloo"
            # device_id binds NCCL's communicator to this GPU up front (torch >= 2.3)
            kw = {"device_id": device} if device.type == "cuda" and \
                "device_id" in inspect.signature(dist.init_process_group).parameters else {}
            dist.init_process_group(backend, **kw)
        global _control
        # stop/diverge flags travel on CPU over gloo: agreeing on them never waits for the GPU stream
        _control = dist.new_group(backend="gloo") if dist.get_backend() != "gloo" else None
        info = DistInfo(dist.get_rank(), dist.get_world_size(), info.local_rank)
    return info, device


_control = None  # gloo group for control flags when the main backend is NCCL


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks; the gradient of every rank's input is the sum of all ranks' output gradients."""

    @staticmethod
    def forward(ctx, t: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        t = t.clone()
        dist.all_reduce(t)
        return t

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


class CpuSyncBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics cover the whole global batch, for the gloo (CPU) backend.

    torch's nn.SyncBatchNorm accepts GPU inputs only; this computes the same statistics with one
    differentiable all_reduce of (sum, sum of squares, count) per call, in float32.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch.distributed as dist

        if not (self.training and dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
            return super().forward(x)
        xd = x.double()  # sums of squares in float64: no cancellation in E[x^2] - E[x]^2
        count = torch.tensor([xd.numel() / xd.shape[1]], dtype=torch.float64, device=x.device)
        packed = _AllReduceSum.apply(torch.cat([xd.sum((0, 2, 3)), (xd * xd).sum((0, 2, 3)), count]))
        c = x.shape[1]
        n = packed[-1]
        mean = packed[:c] / n
        var = (packed[c:2 * c] / n - mean * mean).clamp_min(0)
        mean, var, xf = mean.float(), var.float(), x.float()
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                m = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(mean.detach(), alpha=m)
                self.running_var.mul_(1 - m).add_(var.detach() * n / (n - 1).clamp_min(1), alpha=m)
        y = (xf - mean.view(1, c, 1, 1)) * torch.rsqrt(var.view(1, c, 1, 1) + self.eps)
        if self.affine:
            y = y * self.weight.view(1, c, 1, 1) + self.bias.view(1, c, 1, 1)
        return y.to(x.dtype)


def convert_sync_batchnorm(module: nn.Module, device: torch.device) -> nn.Module:
    """Every BatchNorm2d -> nn.SyncBatchNorm on GPU, CpuSyncBatchNorm on CPU (same parameters and buffers)."""
    if device.type == "cuda":
        return nn.SyncBatchNorm.convert_sync_batchnorm(module)

    def convert(m: nn.Module) -> nn.Module:
        if type(m) is nn.BatchNorm2d:
            new = CpuSyncBatchNorm(m.num_features, m.eps, m.momentum, m.affine, m.track_running_stats)
            if m.affine:  # the same Parameter objects: optimisers built before stay valid
                new.weight, new.bias = m.weight, m.bias
            if m.track_running_stats:
                new.running_mean, new.running_var = m.running_mean, m.running_var
                new.num_batches_tracked = m.num_batches_tracked
            new.train(m.training)
            return new
        for name, child in list(m.named_children()):
            setattr(m, name, convert(child))
        return m
    return convert(module)


def wrap(module: nn.Module, device: torch.device, sync_bn: bool) -> nn.Module:
    """DistributedDataParallel (bucketed all-reduce overlapped with backward) around `module`.

    With SyncBatchNorm every rank already holds the same running statistics, so buffers are not
    re-broadcast each forward; without it rank 0's buffers are broadcast (the saved ones).
    """
    from torch.nn.parallel import DistributedDataParallel as DDP

    import inspect

    ids = [device.index] if device.type == "cuda" else None
    # torch >= 2.13 renamed broadcast_buffers (initial sync from rank 0 happens either way)
    params = inspect.signature(DDP).parameters
    name = "forward_sync_buffers" if "forward_sync_buffers" in params else "broadcast_buffers"
    return DDP(module, device_ids=ids, output_device=ids[0] if ids else None, **{name: not sync_bn})


def inner(module: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (for calls that must not take part in gradient reduction)."""
    return getattr(module, "module", module)


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks in place (no-op on one process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(t)
    return t


def any_rank(*flags: bool) -> list[bool]:
    """Each flag True on every rank when it is True on any rank: one tiny CPU all_reduce, no GPU sync."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [bool(f) for f in flags]
    t = torch.tensor([1 if f else 0 for f in flags], dtype=torch.int32)
    dist.all_reduce(t, group=_control)
    return [bool(x > 0) for x in t.tolist()]


def barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
