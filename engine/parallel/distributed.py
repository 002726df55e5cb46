"""Data parallelism across processes, through accelerate (``accelerate launch``).

Every rank runs the same loop on its own share of the prompts. What crosses ranks is small
and happens at fixed points of a step, identically on every rank:

- **prompts**: every rank draws the same global list (same seed) and keeps its own slice;
- **rewards**: gathered before advantages, so ``scale_rewards: batch`` and GDPO see the
  whole batch (groups never straddle ranks, so group statistics are local anyway);
- **loss normaliser**: the token count of the whole batch (DAPO), so the averaged gradients
  equal those of one process on the same global batch;
- **gradients**: averaged by DDP, or reduce-scattered by FSDP2 (accelerate's ``prepare``;
  see :mod:`engine.parallel.sharding` for what runs on full weights);
- **metrics**: reduced (mean, or min / max / sum where that is the meaning);
- **viewer requests** (pause, adjust, checkpoint, stop): taken on rank 0, which alone
  talks to the dashboard and writes the run directory, and broadcast to all ranks at the
  step boundary so every rank applies them at the same step;
- **evaluation**: each rank judges its share of the held-out prompts; the tallies are gathered.

With one process every function here is the identity and nothing is imported eagerly.
"""

from __future__ import annotations

import contextlib
import math
import warnings
from datetime import timedelta
from typing import Any

import torch

from engine.parallel.sharding import is_sharded

# How a metric combines across ranks (the default is the mean, NaN-aware).
_MIN = ("completions/min_length", "clip_ratio/low_min", "sampling/importance_sampling_ratio/min")
_MAX = ("completions/max_length", "step_time", "time/", "memory/", "clip_ratio/high_max",
        "sampling/importance_sampling_ratio/max", "sampling/sampling_logp_difference/max")
_SUM = ("num_tokens", "completions_per_s")


def _rule(name: str) -> str:
    if name.startswith(_MIN):
        return "min"
    if name.startswith(_MAX):
        return "max"
    if name.startswith(_SUM):
        return "sum"
    return "mean"


UNSUPPORTED = ("DEEPSPEED", "MEGATRON_LM")


def unsupported_message(kind: str) -> str:
    """Why a distributed setup is refused, and what to use instead."""
    return (f"{kind} is not supported: use FSDP2 to shard parameters, gradients and optimizer state "
            f"(presets/accelerate/fsdp.yaml) or data parallelism (--num-processes N or presets/accelerate/ddp.yaml)")


FSDP_CHECKPOINTING_MESSAGE = ("fsdp_activation_checkpointing is not supported (its wrappers rename the parameters): "
                              "keep it false and set gradient_checkpointing: true in the preset")

FSDP1_MESSAGE = ("FSDP version 1 is not supported: set fsdp_version: 2 under fsdp_config in the accelerate config "
                 "(presets/accelerate/fsdp.yaml)")


COLLECTIVE_TIMEOUT = timedelta(hours=3)
"""How long a process waits in a collective. Rank 0 alone writes checkpoints and the final
model (and runs the ranked-data evaluation) while the others wait in the next collective: a 7B
checkpoint on a slow disk must not trip torch's default (10-30 minutes) and kill the run."""


def process_state():
    """accelerate's view of this process (rank, world, device), created on first use.

    ``ACCELERATE_USE_CPU`` (set by ``accelerate launch --cpu`` and by ``grpo-tui train
    --num-processes`` on a machine without GPUs) makes several CPU processes one gloo group."""
    from accelerate import PartialState
    from accelerate.utils import parse_flag_from_env

    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"), timeout=COLLECTIVE_TIMEOUT)


class Dist:
    """This process's place in the run: ``rank`` of ``world``; collectives that are no-ops alone."""

    def __init__(self) -> None:
        state = process_state()
        self.rank = state.process_index
        self.world = state.num_processes
        self.is_main = state.is_main_process
        self.accelerator = None

    @property
    def enabled(self) -> bool:
        return self.world > 1

    def shard(self, items: list) -> list:
        """This rank's contiguous slice of a list every rank holds in the same order.

        ``[p0 p1 p2 p3]`` over 2 ranks: rank 0 keeps ``[p0 p1]``, rank 1 ``[p2 p3]``."""
        if not self.enabled:
            return items
        n = len(items) // self.world
        return items[self.rank * n : (self.rank + 1) * n]

    def local_slice(self, n_local: int) -> slice:
        """Where this rank's rows sit in a tensor gathered from every rank."""
        return slice(self.rank * n_local, (self.rank + 1) * n_local)

    def gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Concatenate equal-shaped tensors from every rank along dim 0 (rank order)."""
        if not self.enabled:
            return tensor
        from accelerate.utils import gather

        return gather(tensor.contiguous().to(self.device_for_collectives())).to(tensor.device)

    def sum(self, value: torch.Tensor) -> torch.Tensor:
        """Sum of a scalar tensor over ranks."""
        if not self.enabled:
            return value
        from accelerate.utils import reduce

        return reduce(value.detach().to(self.device_for_collectives()), reduction="sum").to(value.device)

    def max_int(self, value: int) -> int:
        """The largest of every rank's ``value``."""
        if not self.enabled:
            return value
        return int(self.gather(torch.tensor([value], dtype=torch.long)).max())

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        from accelerate.utils import broadcast_object_list

        box = [obj]
        broadcast_object_list(box, from_process=0)
        return box[0]

    def gather_object(self, obj: Any) -> list:
        """``[obj of rank 0, obj of rank 1, …]`` on every rank."""
        if not self.enabled:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])

    def barrier(self) -> None:
        if self.enabled:
            from accelerate.utils import wait_for_everyone

            wait_for_everyone()

    def reduce_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """One step's metrics over all ranks: NaN-aware mean, except lengths' and TRL's per-sequence
        clip extremes' and sampler ratios' min/max (NaN-aware), timings' max (the slowest rank sets
        the pace), token counts and throughput summed."""
        if not self.enabled:
            return metrics
        keys = sorted(metrics)
        values = torch.tensor([float(metrics[k]) for k in keys], dtype=torch.float64)
        table = self.gather(values.unsqueeze(0))
        out = {}
        for j, key in enumerate(keys):
            col = table[:, j]
            rule = _rule(key)
            kept = col[~torch.isnan(col)]  # a rank without a value (NaN) has no say in a min or max
            if rule in ("min", "max") and kept.numel() == 0:
                out[key] = math.nan
            elif rule == "min":
                out[key] = float(kept.min())
            elif rule == "max":
                out[key] = float(kept.max())
            elif rule == "sum":
                out[key] = float(col.sum())
            else:
                out[key] = float(torch.nanmean(col))
        return out

    def device_for_collectives(self) -> torch.device:
        return process_state().device

    # ------------------------------------------------------------------ the model
    def prepare(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer):
        """``(training model, optimizer)``: DDP around the model, or the model sharded in place
        by FSDP2 with the optimizer moved onto its shards, as ``accelerate launch`` was
        configured; the two unchanged in one process."""
        if not self.enabled:
            return model, optimizer
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        # No buffer broadcast on each forward: ranks make different numbers of forward calls
        # per step (length buckets, shared prompts), and buffers (rotary tables) never change.
        # torch 2.13 names it forward_sync_buffers and warns on every rank's screen; accelerate
        # passes only the old name, which keeps its meaning.
        warnings.filterwarnings("ignore", message="`broadcast_buffers` is deprecated", category=FutureWarning)
        self.accelerator = Accelerator(kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])
        kind = str(self.accelerator.distributed_type).rpartition(".")[2]
        if kind in UNSUPPORTED:
            raise RuntimeError(unsupported_message(kind))
        if kind == "FSDP":
            if not self.accelerator.is_fsdp2:
                raise RuntimeError(FSDP1_MESSAGE)
            if self.accelerator.state.fsdp_plugin.activation_checkpointing:
                raise RuntimeError(FSDP_CHECKPOINTING_MESSAGE)
            model, wrapped = self.accelerator.prepare(model, optimizer)
            return model, wrapped.optimizer  # the update steps it itself (no accelerate bookkeeping)
        return self.accelerator.prepare_model(model), optimizer

    def no_sync(self, model: torch.nn.Module, last_micro_batch: bool):
        """Skip the gradient all-reduce on all but the last micro-batch of an optimizer step
        (DDP). Not under FSDP: skipping its reduce-scatter would keep every parameter's whole
        gradient on every rank until the last micro-batch."""
        if not self.enabled or last_micro_batch or self.accelerator is None or is_sharded(model):
            return contextlib.nullcontext()
        return self.accelerator.no_sync(model)
