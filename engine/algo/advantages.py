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


def nanstd(values: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Bessel-corrected std over the non-NaN entries (along ``dim``, or of them all); NaN where
    fewer than two are left, as TRL's ``nanstd`` (one value has no spread to speak of).

    Example: [1, 0, NaN, 1] → the std of [1, 0, 1] = √(1/3); a lone value → NaN::

        >>> round(float(nanstd(torch.tensor([1., 0., float("nan"), 1.]))), 4)
        0.5774
        >>> [round(x, 4) for x in nanstd(torch.tensor([[2., float("nan")], [1., 3.]]), dim=1).tolist()]
        [nan, 1.4142]
    """
    if dim is None:
        values, dim = values.reshape(-1), 0
    valid = ~torch.isnan(values)
    count = valid.sum(dim)
    mean = torch.nanmean(values, dim=dim, keepdim=True)
    squares = torch.where(valid, (values - mean) ** 2, torch.zeros_like(values))
    var = squares.sum(dim) / (count - 1).clamp(min=1)
    return torch.where(count > 1, var.sqrt(), torch.full_like(var, float("nan")))


def mark_unscorable(rewards: torch.Tensor, rewards_per_func: torch.Tensor) -> torch.Tensor:
    """The summed rewards [N] with NaN where every reward function gave None (or failed).

    ``nansum`` would score such a row 0.0, pulling its group's baseline towards 0 and handing
    it an advantage it did not earn; NaN keeps it out of its group's mean and std, and the
    advantage functions here give it A = 0, as TRL does.

    Example: the third completion was scored by no function::

        >>> none = float("nan")
        >>> per_func = torch.tensor([[1., none], [0., 0.], [none, none], [none, 1.]])
        >>> mark_unscorable(per_func.nansum(dim=1), per_func).tolist()
        [1.0, 0.0, nan, 1.0]
    """
    unscorable = torch.isnan(rewards_per_func).all(dim=1)
    return rewards.masked_fill(unscorable.to(rewards.device), float("nan"))


def _spread(rewards: torch.Tensor, row_std: torch.Tensor, flat_groups: torch.Tensor,
            num_generations: int) -> dict[str, torch.Tensor]:
    """The spread statistics both aggregations log (rewards [N] with NaN for unscorable rows)."""
    group_std = nanstd(rewards.view(-1, num_generations), dim=1)
    return {
        "reward_std": nanstd(rewards),
        "frac_reward_zero_std": torch.isclose(row_std, torch.zeros_like(row_std)).float().mean(),
        "reward_std_within_group": torch.nanmean(group_std),
        "frac_group_reward_zero_std": flat_groups.float().mean(),
        "group_std": group_std,
    }


def group_advantages(
    rewards: torch.Tensor, num_generations: int, scale_rewards: ScaleRewards = "group"
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Group-relative advantages, as TRL's ``sum_then_normalize``.

    ``A_i = (r_i − mean_group(r)) / (std + 1e-4)`` where std is the group's std
    (``scale_rewards="group"``), the whole batch's std (``"batch"``), or no scaling at all
    (``"none"``: ``A_i = r_i − mean_group``). Stds are Bessel-corrected, as TRL. A NaN reward
    (no function scored the row: :func:`mark_unscorable`) is left out of every mean and std and
    its advantage is 0; so is every advantage of a group with fewer than two scored rows
    under group scaling (their std is undefined).

    Returns the advantages [N] and statistics (scalars unless said):

    - ``reward_std``: the std of the rewards over the whole batch (TRL's);
    - ``frac_reward_zero_std``: the share of rows whose std (the one the advantage divides by:
      the group's, or the batch's with ``"batch"``, where it is 0 or 1) is 0 (TRL's);
    - ``reward_std_within_group``: the mean over groups of the group's std;
    - ``frac_group_reward_zero_std``: the share of groups whose (scored) rewards all agree;
    - ``group_std`` [B].

    Example: G = 4; group 1 has mean .25 and std .5, group 2 agrees (std 0, so A = 0)::

        >>> rewards = torch.tensor([1., 0., 0., 0., 1., 1., 1., 1.])
        >>> advantages, stats = group_advantages(rewards, num_generations=4)
        >>> [round(a, 4) for a in advantages.tolist()]
        [1.4997, -0.4999, -0.4999, -0.4999, 0.0, 0.0, 0.0, 0.0]
        >>> [round(float(stats[k]), 4) for k in ("reward_std", "frac_reward_zero_std", "reward_std_within_group")]
        [0.5175, 0.5, 0.25]
        >>> [round(a, 4) for a in group_advantages(rewards, 4, "none")[0].tolist()]
        [0.75, -0.25, -0.25, -0.25, 0.0, 0.0, 0.0, 0.0]

    An unscorable row: rewards [1, 0, NaN, 1] → mean 2/3 and std √(1/3) of [1, 0, 1]
    → A = (1/3)/.5774, (−2/3)/.5774, 0, (1/3)/.5774::

        >>> [round(a, 3) for a in group_advantages(torch.tensor([1., 0., float("nan"), 1.]), 4)[0].tolist()]
        [0.577, -1.155, 0.0, 0.577]
    """
    grouped = rewards.view(-1, num_generations)
    mean = torch.nanmean(grouped, dim=1).repeat_interleave(num_generations)
    group_std = nanstd(grouped, dim=1)
    if scale_rewards == "batch":
        std = nanstd(rewards).expand_as(rewards)
    else:
        std = group_std.repeat_interleave(num_generations)
    advantages = rewards - mean
    if scale_rewards != "none":
        advantages = advantages / (std + ADV_EPS)
    flat = ~(group_std > 0) | torch.isclose(group_std, torch.zeros_like(group_std))
    return torch.nan_to_num(advantages, nan=0.0), _spread(rewards, std, flat, num_generations)


def normalize_then_sum_advantages(
    rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GDPO-style multi-objective advantages: normalise each reward within its group, then sum
    (TRL's ``normalize_then_sum``).

    ``Â_k = (r_k − mean_group(r_k)) / (std_group(r_k) + 1e-4)`` for every reward function k
    over the rows it scored (a None counts 0 in the sum, as does a function that scored fewer
    than two rows of the group), ``s = Σ_k w_k·Â_k``, and the advantage is
    ``A = (s − mean_batch(s)) / (std_batch(s) + 1e-4)``, rows no function scored left out (A = 0).
    Unlike summing first, a reward with a large spread cannot drown out the others.

    Statistics as :func:`group_advantages`, of the weighted reward ``Σ_k w_k·r_k``, except
    ``frac_reward_zero_std`` (TRL's: 1 when the batch std of s is 0, else 0) and
    ``frac_group_reward_zero_std`` (the share of groups in which no function's reward varies).

    Example: G = 2, one group, rewards [N=2, F=2] = [[1, 0], [0, 0]], w = [1, 1] →
    Â_0 = ±.5/(.7071 + 1e-4) = [.7070, −.7070], Â_1 = [0, 0] → s = [.7070, −.7070]
    → A = s / (std(s) + 1e-4)::

        >>> advantages, stats = normalize_then_sum_advantages(
        ...     torch.tensor([[1., 0.], [0., 0.]]), torch.tensor([1., 1.]), num_generations=2)
        >>> [round(a, 4) for a in advantages.tolist()]
        [0.707, -0.707]
        >>> round(float(stats["reward_std"]), 4), float(stats["frac_reward_zero_std"])
        (0.7071, 0.0)
    """
    n, f = rewards_per_func.shape
    grouped = rewards_per_func.view(-1, num_generations, f)
    func_std = nanstd(grouped, dim=1)  # [B, F]
    normalised = (grouped - torch.nanmean(grouped, dim=1, keepdim=True)) / (func_std.unsqueeze(1) + ADV_EPS)
    weights = weights.to(rewards_per_func.device, rewards_per_func.dtype)
    summed = mark_unscorable((normalised * weights.view(1, 1, f)).nansum(dim=-1).view(-1), rewards_per_func)
    std = nanstd(summed)
    advantages = torch.nan_to_num((summed - torch.nanmean(summed)) / (std + ADV_EPS), nan=0.0)
    flat = (~(func_std > 0) | torch.isclose(func_std, torch.zeros_like(func_std))).all(dim=1)
    total = mark_unscorable((rewards_per_func * weights.view(1, f)).nansum(dim=1), rewards_per_func)
    return advantages, _spread(total, std.expand_as(summed), flat, num_generations)


def groups_with_signal(rewards: torch.Tensor, num_generations: int) -> torch.Tensor:
    """DAPO dynamic sampling: True for groups whose rewards are not all equal. [N] → [B] bool.

    A group where every completion got the same reward has zero advantage everywhere and
    teaches nothing; DAPO drops it and samples more prompts instead: ``max_group(r) ≠ min_group(r)``
    over the scored rows (NaN: none of the reward functions scored it), so a group with fewer
    than two scored rows has none either.

    Example::

        >>> groups_with_signal(torch.tensor([1., 1., 0., 1., .5, .5, float("nan"), 1.]), num_generations=2).tolist()
        [False, True, False, False]
    """
    grouped = rewards.view(-1, num_generations)
    scored = ~torch.isnan(grouped)
    highest = torch.where(scored, grouped, torch.full_like(grouped, -torch.inf)).max(dim=1).values
    lowest = torch.where(scored, grouped, torch.full_like(grouped, torch.inf)).min(dim=1).values
    return (scored.sum(dim=1) > 1) & ~torch.isclose(highest, lowest)


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
