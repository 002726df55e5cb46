"""Per-step metrics with TRL's names, from what a step produced (pure functions of tensors)."""

from __future__ import annotations

import math

import torch

from engine.algo import grpo

SPREAD_STATS = ("reward_std", "frac_reward_zero_std", "reward_std_within_group", "frac_group_reward_zero_std")
"""How a round's rewards spread (:func:`engine.algo.advantages.group_advantages`): TRL's two, then ours."""


def nanmean(x: torch.Tensor) -> float:
    """Mean over the non-NaN entries (a reward function's None); NaN when there are none."""
    v = x[~torch.isnan(x)]
    return float(v.mean()) if v.numel() else float("nan")


def reward_metrics(rewards_total: torch.Tensor, rewards_per_func: torch.Tensor, names: list[str]) -> dict[str, float]:
    """``reward``, ``rewards/<fn>/mean|std`` and ``accuracy`` when an ``accuracy`` function is
    among them, as TRL: None rewards (NaN) are left out, and so are the rows no function scored
    (NaN totals); a std of fewer than two values is NaN (missing, written as null), not 0.

    Example: ``fn`` scored 1 of 2 rows, so its std is missing::

        >>> m = reward_metrics(torch.tensor([1., float("nan")]), torch.tensor([[1.], [float("nan")]]), ["fn"])
        >>> m["reward"], m["rewards/fn/mean"], m["rewards/fn/std"]
        (1.0, 1.0, nan)
    """
    m = {"reward": nanmean(rewards_total)}
    for j, name in enumerate(names):
        m[f"rewards/{name}/mean"] = nanmean(rewards_per_func[:, j])
        m[f"rewards/{name}/std"] = float(grpo.nanstd(rewards_per_func[:, j]))
    if "accuracy" in names:
        m["accuracy"] = m["rewards/accuracy/mean"]
    return m


def mean_over_micro_batches(per_micro_batch: list[dict]) -> dict[str, float]:
    """A step's statistics from its micro-batches' (entropy, KL, clip ratios, ...): the mean of
    each one's values, NaN ones left out (NaN when none is left), as TRL averages the values each
    micro-batch logs. A micro-batch with few tokens weighs as much as one with many.

    Example: entropy 1 over 30 tokens and 2 over 10 → 1.5 (not 1.25)::

        >>> mean_over_micro_batches([{"entropy": 1.0, "kl": float("nan")}, {"entropy": torch.tensor(2.0), "kl": 0.5}])
        {'entropy': 1.5, 'kl': 0.5}
    """
    values: dict[str, list[float]] = {}
    for stats in per_micro_batch:
        for name, value in stats.items():
            values.setdefault(name, []).append(float(value))
    out = {}
    for name, vs in values.items():
        kept = [v for v in vs if not math.isnan(v)]
        out[name] = sum(kept) / len(kept) if kept else math.nan
    return out


def length_metrics(lengths: torch.Tensor, truncated: torch.Tensor) -> dict[str, float]:
    """``completions/{mean,min,max}_length``, ``clipped_ratio`` (share cut at the length limit)
    and ``mean_terminated_length`` (over those that ended with EOS)."""
    lengths = lengths.float()
    terminated = lengths[~truncated]
    return {
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(truncated.float().mean()),
        "completions/mean_terminated_length": float(terminated.mean()) if terminated.numel() else 0.0,
    }


def memory_metrics(device: torch.device) -> dict[str, float]:
    """On a GPU: this process's allocated memory and its high-water mark since the last call
    (``memory/allocated_gib``, ``memory/peak_gib``); nothing elsewhere."""
    if device.type != "cuda":
        return {}
    m = {
        "memory/allocated_gib": torch.cuda.memory_allocated(device) / 2**30,
        "memory/peak_gib": torch.cuda.max_memory_allocated(device) / 2**30,
    }
    torch.cuda.reset_peak_memory_stats(device)
    return m
