"""TRL's reward-function contract: what every call passes, and collecting what a function logs.

TRL 1.16 calls each reward function with keyword arguments only::

    fn(prompts=..., completions=..., completion_ids=..., trainer_state=..., log_extra=...,
       log_metric=..., **columns)

(``environments`` too, when the trainer runs environments; this engine has none, so it is never
passed.) ``trainer_state`` is transformers' ``TrainerState``; here it is
:class:`RewardTrainerState`, a plain dataclass with the same field names, so a function reading
``trainer_state.global_step / trainer_state.max_steps`` works without a ``Trainer`` and the
object pickles into a worker process without importing transformers. ``log_extra(column,
values)`` adds a column (one value per completion) to the recorded samples; ``log_metric(name,
value)`` adds a scalar to the step's metrics (averaged when called several times in a round).

What a call returns may be awaitable (``async def`` functions, callable objects whose
``__call__`` is async): those of one batch are awaited concurrently on one event loop
(:func:`run_coroutines`).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import math
import numbers
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RewardTrainerState:
    """What ``trainer_state`` holds: transformers' ``TrainerState`` field names and meanings.

    ``global_step``: optimizer steps completed before this batch was generated (0 on the first);
    ``epoch``: fractional passes over the training rows; ``log_history``: one dict per step
    logged so far (``{"step": ..., "loss": ..., "reward": ...}``)."""

    epoch: float | None = None
    global_step: int = 0
    max_steps: int = 0
    logging_steps: int = 1
    eval_steps: int | None = None
    save_steps: int = 0
    train_batch_size: int | None = None
    num_train_epochs: int = 0
    num_input_tokens_seen: int = 0
    total_flos: float = 0.0
    log_history: list[dict[str, float]] = field(default_factory=list)
    best_metric: float | None = None
    best_global_step: int | None = None
    best_model_checkpoint: str | None = None
    is_local_process_zero: bool = True
    is_world_process_zero: bool = True
    is_hyper_param_search: bool = False
    trial_name: str | None = None
    trial_params: dict[str, Any] | None = None
    stateful_callbacks: dict[str, Any] = field(default_factory=dict)


class RewardLog:
    """What one reward function logged during one call: ``log_extra`` columns and
    ``log_metric`` values (non-numbers are refused with a one-line error, as the call's)."""

    def __init__(self) -> None:
        self.extra: dict[str, list] = {}
        self.metrics: dict[str, list[float]] = {}

    def log_extra(self, column: str, values: list) -> None:
        """A column of the samples table: one value per completion of the batch."""
        self.extra[str(column)] = list(values)

    def log_metric(self, name: str, value: float) -> None:
        """A scalar for this step's metrics (metrics.jsonl and the charts)."""
        if isinstance(value, bool) or not isinstance(value, numbers.Real):
            try:  # a 0-d tensor or numpy scalar
                value = float(value)
            except (TypeError, ValueError):
                raise TypeError(f"log_metric({name!r}, ...): expected a number, got {type(value).__name__}") from None
        self.metrics.setdefault(str(name), []).append(float(value))

    def merge(self, other: "RewardLog") -> None:
        self.extra.update(other.extra)
        for name, values in other.metrics.items():
            self.metrics.setdefault(name, []).extend(values)

    def metric_means(self) -> dict[str, float]:
        """Each logged metric's mean over the calls (finite values only; NaN when none)."""
        out = {}
        for name, values in self.metrics.items():
            finite = [v for v in values if math.isfinite(v)]
            out[name] = sum(finite) / len(finite) if finite else math.nan
        return out


def call_kwargs(prompts: list, completions: list, completion_ids, columns: dict[str, list], trainer_state,
                step: int) -> dict[str, Any]:
    """The keyword arguments of every call, less ``log_extra``/``log_metric`` (one pair per
    function, :class:`RewardLog`). ``step`` (the step being trained, from 1) is this engine's
    own addition; TRL's functions ignore it through ``**kwargs``."""
    kwargs = dict(columns)
    kwargs.update(prompts=prompts, completions=completions, completion_ids=completion_ids,
                  trainer_state=trainer_state, step=step)
    return kwargs


def run_coroutines(coros: list) -> list:
    """Await ``coros`` concurrently on one event loop; each result or the exception it raised.

    A thread with a loop already running (a notebook's) cannot start another: the loop then
    runs on a helper thread."""
    async def gather() -> list:
        return await asyncio.gather(*coros, return_exceptions=True)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(gather())
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="reward-async") as pool:
        return pool.submit(asyncio.run, gather()).result()
