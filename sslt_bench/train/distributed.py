"""One run on several processes with torch.distributed (DistributedDataParallel).

``torchrun --nproc-per-node N -m sslt_bench run ...`` (or ``sslt-bench run --nproc N``, which
launches exactly that through ``torch.distributed.run``) trains one run on N ranks: NCCL on
GPUs (one GPU per rank, ``cuda:LOCAL_RANK``), gloo on CPU. The runner calls the hooks of
:class:`Dist`; with one process they do nothing, so single-process runs are unchanged.

* Training: every rank draws the same global sample order (same seeded generator) and takes a
  disjoint share of each global batch (``samplers.to_batches``); the method's whole loss
  function runs inside one ``DistributedDataParallel`` forward (so a loss may call the model
  several times), gradients are averaged across ranks, and all replicas stay identical.
  BatchNorm statistics are per rank (as in the reference DDP code of FixMatch); buffers are
  broadcast from rank 0 at every forward and after every epoch.
* Pseudo-labelling, classifier re-training features and evaluation: the items are cut into N
  contiguous shards, each rank embeds its shard, and the features are gathered in the original
  order; the gathered item ids are checked to be every item exactly once.
* Method state (``ctx.state``, e.g. the alternate method's per-sample previous-epoch
  probabilities): after each epoch, the entries a rank changed are combined across ranks (the
  mean for floating-point tensors where several ranks wrote the same entry, the maximum for
  integer/bool ones) so every rank holds the same state.
* Only rank 0 writes checkpoints and the result record; all ranks resume from the same
  checkpoint. A non-finite loss on any rank stops all ranks.
"""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as tdist
from torch import nn

ENV_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


def is_main_process() -> bool:
    """True unless this process is a torch.distributed rank other than 0."""
    return int(os.environ.get("RANK", "0")) == 0


class _LossModule(nn.Module):
    """Lets DDP run a whole loss function as one forward (several model calls allowed)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, loss_fn: Callable, batch: Any, ctx: Any) -> Any:
        """``loss_fn(batch, ctx)``; the loss reaches the model through ``ctx.model``."""
        return loss_fn(batch, ctx)


@dataclass
class Dist:
    """This process's place in a distributed run (single process: rank 0 of 1, all no-ops)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None
    shards: list[dict[str, Any]] = field(default_factory=list)
    replica_max_diff: float = 0.0
    state_max_mismatch: float = 0.0

    @classmethod
    def from_env(cls, device: torch.device) -> Dist:
        """Join the process group torchrun describes in the environment (if any).

        Args:
            device: the resolved device type; CUDA ranks use NCCL and ``cuda:LOCAL_RANK``.
        """
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        if not tdist.is_initialized():
            tdist.init_process_group(backend=backend)
            atexit.register(_destroy)
        return cls(rank, world, local, tdist.get_backend())

    @property
    def enabled(self) -> bool:
        """More than one rank."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """Rank 0 (writes checkpoints, records, progress)."""
        return self.rank == 0

    def device(self, device: torch.device) -> torch.device:
        """The rank's device: ``cuda:LOCAL_RANK`` on GPUs."""
        if self.enabled and device.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return device

    def _comm(self, t: torch.Tensor) -> torch.Tensor:
        return t.cuda() if self.backend == "nccl" else t.cpu()

    # -- training -----------------------------------------------------------------------------
    def wrap_step(self, step: Any, model: nn.Module) -> Any:
        """A copy of Train ``step`` whose loss runs inside a DDP forward (identity if 1 rank)."""
        if not self.enabled:
            return step
        from torch.nn.parallel import DistributedDataParallel as DDP

        ddp = DDP(_LossModule(model), device_ids=None, find_unused_parameters=True)
        # 1-channel first convs have ambiguous strides; the layouts agree where it matters.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view")
        loss_fn = step.loss

        def ddp_loss(batch: Any, ctx: Any) -> Any:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*find_unused_parameters=True.*")
                out = ddp(loss_fn, batch, ctx)
            loss = out[0] if isinstance(out, tuple) else out
            ok = self._comm(torch.isfinite(loss.detach()).float().reshape(1))
            tdist.all_reduce(ok, op=tdist.ReduceOp.MIN)
            if ok.item() < 1 and torch.isfinite(loss):  # another rank diverged: stop here too
                loss = loss * float("nan")
                out = (loss, *out[1:]) if isinstance(out, tuple) else loss
            return out

        return replace(step, loss=ddp_loss)

    def reduce_stats(self, stats: dict[str, float]) -> dict[str, float]:
        """Epoch statistics over all ranks: ``images`` summed, the rest averaged.

        A value is averaged over the ranks that logged it (a method may log it on some only).
        """
        if not self.enabled:
            return stats
        names: list[list[str]] = [[] for _ in range(self.world_size)]
        tdist.all_gather_object(names, sorted(stats))
        keys = sorted(set().union(*names))
        vals = [float(stats.get(k, 0.0)) for k in keys] + [float(k in stats) for k in keys]
        t = self._comm(torch.tensor(vals, dtype=torch.float64))
        tdist.all_reduce(t)
        sums, counts = t[: len(keys)].tolist(), t[len(keys) :].tolist()
        return {
            k: v if k == "images" else v / max(n, 1)
            for k, v, n in zip(keys, sums, counts, strict=True)
        }

    def snapshot(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Copy of the method state before an epoch (empty with one rank)."""
        return {k: v.clone() for k, v in state.items()} if self.enabled else {}

    def sync_state(self, state: dict[str, torch.Tensor], before: dict[str, torch.Tensor]) -> None:
        """Combine what each rank changed in ``state`` since ``before`` (see module doc)."""
        if not self.enabled:
            return
        for key in sorted(state):
            new = state[key]
            old = before.get(key)
            if old is None or old.shape != new.shape:
                old = torch.zeros_like(new)
            changed = self._comm(new != old)
            count = changed.to(torch.int32)
            tdist.all_reduce(count)
            if new.is_floating_point():
                total = self._comm(torch.where(changed, new.to(changed.device), 0).double())
                tdist.all_reduce(total)
                merged = (total / count.clamp_min(1)).to(new.dtype)
            else:
                as_int = new.to(torch.int64)
                low = torch.iinfo(torch.int64).min
                val = self._comm(torch.where(changed, as_int.to(changed.device), low))
                tdist.all_reduce(val, op=tdist.ReduceOp.MAX)
                merged = val.to(new.dtype)
            keep = old.to(merged.device)
            state[key] = torch.where(count > 0, merged, keep).to(new.device)
        if state:  # every rank must now hold the same state: compare checksums
            sums = self._comm(torch.stack([state[k].double().sum() for k in sorted(state)]))
            lo, hi = sums.clone(), sums.clone()
            tdist.all_reduce(lo, op=tdist.ReduceOp.MIN)
            tdist.all_reduce(hi, op=tdist.ReduceOp.MAX)
            gap = float((hi - lo).abs().max().item())
            self.state_max_mismatch = max(self.state_max_mismatch, gap)

    def sync_modules(self, *modules: nn.Module | None) -> None:
        """Broadcast parameters and buffers from rank 0, tracking how far replicas drifted.

        ``replica_max_diff`` keeps the largest parameter difference to rank 0 seen before a
        broadcast: DDP keeps it at 0 (identical gradients, identical updates).
        """
        if not self.enabled:
            return
        for module in modules:
            if module is None:
                continue
            for t in module.state_dict(keep_vars=True).values():
                data = t.data if isinstance(t, nn.Parameter) else t
                buf = self._comm(data.detach().clone())
                tdist.broadcast(buf, src=0)
                if isinstance(t, nn.Parameter) and data.is_floating_point():
                    diff = (buf.to(data.device) - data).abs().max().item() if data.numel() else 0.0
                    self.replica_max_diff = max(self.replica_max_diff, diff)
                data.copy_(buf.to(data.device))
        diff = self._comm(torch.tensor([self.replica_max_diff], dtype=torch.float64))
        tdist.all_reduce(diff, op=tdist.ReduceOp.MAX)
        self.replica_max_diff = float(diff.item())

    # -- sharded inference --------------------------------------------------------------------
    def sharded(self, embed: Callable[..., torch.Tensor]) -> Callable[..., torch.Tensor]:
        """Wrap ``engine.embed_items``: each rank embeds a contiguous shard, results gathered."""
        if not self.enabled:
            return embed

        def run(model, source, src_idx, *args, **kwargs) -> torch.Tensor:
            parts = np.array_split(np.arange(len(src_idx)), self.world_size)
            mine = parts[self.rank]
            feats = embed(model, source, np.asarray(src_idx)[mine], *args, **kwargs)
            full = self.gather_rows(feats, [len(p) for p in parts])
            ids = self.gather_rows(torch.as_tensor(mine, device=feats.device)[:, None],
                                   [len(p) for p in parts])  # fmt: skip
            if not torch.equal(ids.flatten().cpu(), torch.arange(len(src_idx))):
                raise RuntimeError("sharded inference did not cover every item exactly once")
            entry = {"items": len(src_idx), "per_rank": [len(p) for p in parts]}
            if entry not in self.shards:
                self.shards.append(entry)
            return full

        return run

    def gather_rows(self, rows: torch.Tensor, counts: list[int]) -> torch.Tensor:
        """Concatenate every rank's ``rows`` (rank r has ``counts[r]``) in rank order."""
        width = max(counts)
        pad = self._comm(rows.new_zeros((width, *rows.shape[1:])))
        pad[: len(rows)] = rows.to(pad.device)
        out = [torch.empty_like(pad) for _ in range(self.world_size)]
        tdist.all_gather(out, pad)
        return torch.cat([o[:n] for o, n in zip(out, counts, strict=True)]).to(rows.device)

    def record_fields(self) -> dict[str, Any]:
        """What the result record says about the distributed run (nothing for one process)."""
        if not self.enabled:
            return {}
        return {
            "distributed": {
                "world_size": self.world_size,
                "backend": self.backend,
                "sharded_inference": self.shards,
                "replica_param_max_diff": self.replica_max_diff,
                "state_checksum_max_mismatch": self.state_max_mismatch,
            }
        }


def _destroy() -> None:
    if tdist.is_initialized():
        tdist.destroy_process_group()


def launch(nproc: int, args: list[str], device: torch.device | None = None) -> int:
    """Run ``sslt-bench ARGS`` on ``nproc`` local ranks via ``torch.distributed.run``.

    CPU ranks get ``cores // nproc`` threads each unless ``OMP_NUM_THREADS`` is set; CUDA
    ranks need one GPU each.
    """
    if device is not None and device.type == "cuda" and nproc > torch.cuda.device_count():
        from ..errors import UsageError

        raise UsageError(
            f"--nproc {nproc} needs {nproc} GPUs but {torch.cuda.device_count()} are visible; "
            "use --nproc <= that number or --device cpu"
        )
    args = _without_option(args, "--nproc")
    env = dict(os.environ)
    if "OMP_NUM_THREADS" not in env:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:
            cores = os.cpu_count() or 1
        env["OMP_NUM_THREADS"] = str(max(1, cores // nproc))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    cmd += ["--nproc-per-node", str(nproc), "-m", "sslt_bench", *args]
    return subprocess.call(cmd, env=env)


def _without_option(args: list[str], name: str) -> list[str]:
    """``args`` without ``name VALUE`` / ``name=VALUE`` (torchrun would parse it as its own)."""
    out, skip = [], False
    for a in args:
        if skip:
            skip = False
        elif a == name:
            skip = True
        elif not a.startswith(name + "="):
            out.append(a)
    return out
