"""From rewards to advantages: how much better each completion did than its group.

Shapes: N = B·G completions (B prompts, G generations each, grouped contiguously so rows
``g*G .. g*G+G-1`` are one group). Formulas follow TRL's GRPOTrainer.
"""

from __future__ import annotations

from typing import Literal

import torch

ScaleRewards = Literal["group", "batch", "none"]
"""How advantages are scaled; the names a user may choose are ``engine.config.schema.ScaleRewards``."""

ADV_EPS = 1e-4
"""Added to every std before dividing, so a group whose rewards agree gets A = 0, not NaN."""


def group_advantages(
    rewards: torch.Tensor, num_generations: int, scale_rewards: ScaleRewards = "group"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Group-relative advantages.

    ``A_i = (r_i − mean_group(r)) / (std + 1e-4)`` where std is the group's std
    (``scale_rewards="group"``), the whole batch's std (``"batch"``), or no scaling at all
    (``"none"``: ``A_i = r_i − mean_group``). Stds are Bessel-corrected (``torch.std``), as TRL.

    Returns the advantages [N] and statistics: ``reward_std`` (mean of the std used per row;
    the group std when unscaled), ``frac_reward_zero_std`` (share of groups whose rewards all agree),
    ``group_std`` [B].

    Example: G = 4; group 1 has mean .25 and std .5, group 2 agrees (std 0, so A = 0)::

        >>> rewards = torch.tensor([1., 0., 0., 0., 1., 1., 1., 1.])
        >>> advantages, stats = group_advantages(rewards, num_generations=4)
        >>> [round(a, 4) for a in advantages.tolist()]
        [1.4997, -0.4999, -0.4999, -0.4999, 0.0, 0.0, 0.0, 0.0]
        >>> float(stats["frac_reward_zero_std"]), float(stats["reward_std"])
        (0.5, 0.25)
        >>> [round(a, 4) for a in group_advantages(rewards, 4, "none")[0].tolist()]
        [0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]
    """
    grouped = rewards.view(-1, num_generations)
    mean = grouped.mean(dim=1).repeat_interleave(num_generations)
    group_std = grouped.std(dim=1)
    if scale_rewards == "batch":
        std = rewards.std().expand_as(rewards)
    else:
        std = group_std.repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale_rewards != "none":
        advantages = advantages / (std + ADV_EPS)
    zero = torch.isclose(group_std, torch.zeros_like(group_std))
    stats = {
        "reward_std": std.mean(),
        "frac_reward_zero_std": zero.float().mean(),
        "group_std": group_std,
    }
    return advantages, stats


def normalize_then_sum_advantages(
    rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GDPO-style multi-objective advantages: normalise each reward within its group, then sum.

    ``Â_k = (r_k − mean_group(r_k)) / (std_group(r_k) + 1e-4)`` for every reward function k
    (NaN = "not applicable" rows count as 0), ``s = Σ_k w_k·Â_k``, and the advantage is
    ``A = (s − mean_batch(s)) / (std_batch(s) + 1e-4)``. Unlike summing first, a reward with a
    large spread cannot drown out the others.

    Example: G = 2, one group, rewards [N=2, F=2] = [[1, 0], [0, 0]], w = [1, 1] →
    Â_0 = ±.5/(.7071 + 1e-4) = [.7070, −.7070], Â_1 = [0, 0] → s = [.7070, −.7070]
    → A = s / (std(s) + 1e-4)::

        >>> advantages, stats = normalize_then_sum_advantages(
        ...     torch.tensor([[1., 0.], [0., 0.]]), torch.tensor([1., 1.]), num_generations=2)
        >>> [round(a, 4) for a in advantages.tolist()]
        [0.707, -0.707]
        >>> round(float(stats["reward_std"]), 4), float(stats["frac_reward_zero_std"])
        (0.3536, 0.0)
    """
    n, f = rewards_per_func.shape
    grouped = rewards_per_func.view(-1, num_generations, f)
    valid = ~torch.isnan(grouped)
    filled = torch.where(valid, grouped, torch.zeros_like(grouped))
    count = valid.sum(dim=1, keepdim=True).clamp(min=1)
    mean = filled.sum(dim=1, keepdim=True) / count
    var = (torch.where(valid, grouped - mean, torch.zeros_like(grouped)) ** 2).sum(dim=1, keepdim=True) / (count - 1).clamp(min=1)
    normalised = torch.where(valid, (grouped - mean) / (var.sqrt() + ADV_EPS), torch.zeros_like(grouped))
    summed = (normalised * weights.view(1, 1, f)).sum(dim=-1).view(-1)
    advantages = (summed - summed.mean()) / (summed.std() + ADV_EPS) if n > 1 else summed * 0
    group_std = var.sqrt().squeeze(1)  # [B, F]
    zero = torch.isclose(group_std, torch.zeros_like(group_std)).all(dim=1)
    return advantages, {"frac_reward_zero_std": zero.float().mean(), "reward_std": group_std.mean(), "group_std": group_std.mean(dim=1)}


def groups_with_signal(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """DAPO dynamic sampling: True for groups whose rewards are not all equal. [N] → [B] bool.

    A group where every completion got the same reward has zero advantage everywhere and
    teaches nothing; DAPO drops it and samples more prompts instead: ``max_group(r) ≠ min_group(r)``.

    Example::

        >>> groups_with_signal(torch.tensor([1., 1., 0., 1., .5, .5]), num_generations=2).tolist()
        [False, True, False]
    """
    grouped = rewards.view(-1, num_generations)
    return ~torch.isclose(grouped.max(dim=1).values, grouped.min(dim=1).values)


def groups_without_advantage(advantages: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Rows [N] bool of groups whose every advantage is exactly 0.

    With β = 0 such a row's loss ``−min(ratio·0, clip(ratio)·0) = 0`` at every token, whatever
    the ratio, so its gradient is exactly zero and the update may leave it out (its tokens
    still count in the normaliser: see :func:`engine.algo.losses.subset_loss_scale`). Whole
    groups only, so the rows that are computed still share their prompt.

    Example: a tiny advantage (1e-9) is still a signal::

        >>> groups_without_advantage(torch.tensor([0., 0., .7, -.7, 0., 1e-9]), num_generations=2).tolist()
        [True, True, False, False, False, False]
    """
    flat = (advantages.view(-1, num_generations) == 0).all(dim=1)
    return flat.repeat_interleave(num_generations)
