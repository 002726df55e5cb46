"""Per-step metrics with TRL's names, from what a step produced (pure functions of tensors)."""

from __future__ import annotations

import torch


def nanmean(x: torch.Tensor) -> float:
    """Mean over the non-NaN entries (a reward function's None); NaN when there are none."""
    v = x[~torch.isnan(x)]
    return float(v.mean()) if v.numel() else float("nan")


def nanstd(x: torch.Tensor) -> float:
    """Bessel-corrected std over the non-NaN entries; 0 with one, NaN with none (missing)."""
    v = x[~torch.isnan(x)]
    return float(v.std()) if v.numel() > 1 else (0.0 if v.numel() else float("nan"))


def reward_metrics(rewards_total: torch.Tensor, rewards_per_func: torch.Tensor, names: list[str]) -> dict[str, float]:
    """``reward``, ``rewards/<fn>/mean|std`` (None rewards left out) and ``accuracy`` when an
    ``accuracy`` function is among them."""
    m = {"reward": float(rewards_total.mean())}
    for j, name in enumerate(names):
        m[f"rewards/{name}/mean"] = nanmean(rewards_per_func[:, j])
        m[f"rewards/{name}/std"] = nanstd(rewards_per_func[:, j])
    if "accuracy" in names:
        m["accuracy"] = m["rewards/accuracy/mean"]
    return m


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
