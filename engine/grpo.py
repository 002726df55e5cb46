"""GRPO as pure tensor functions: tensors in, tensors out, no I/O and no state.

Shapes: N = B·G completions (B prompts, G generations each, grouped contiguously so
rows ``g*G .. g*G+G-1`` are one group), T = completion length (padded).
Names and formulas follow TRL's GRPOTrainer so results can be checked against it.
"""

from __future__ import annotations

from typing import Literal

import torch

ScaleRewards = Literal["group", "batch", "none"]
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]

ADV_EPS = 1e-4


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

    Example: rewards [1, 0, 0, 0 | 1, 1, 1, 1], G=4, group scaling →
    group 1: mean .25, std .5 → A = [1.4997, −.4999, −.4999, −.4999]; group 2: std 0 → A = 0.
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


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[index]`` per position without materialising the full log-softmax.

    logits [N, T, V], index [N, T] → [N, T].  ``logit[y] − logsumexp(logits)``.
    """
    picked = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: ``H = −Σ p log p``. [N,T,V] → [N,T]."""
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def completion_logits(
    model_logits: torch.Tensor, completion_len: int, temperature: float
) -> torch.Tensor:
    """The logits that predict the completion tokens, scaled by the sampling temperature.

    The model sees prompt+completion [N, P+T]; the logit at position t predicts token t+1,
    so the completion's logits are positions P−1 … P+T−2. Dividing by the temperature makes
    the log-probs those of the distribution the tokens were sampled from (TRL does the same).
    """
    return model_logits[:, -completion_len - 1 : -1, :] / temperature


def k3_kl(logps: torch.Tensor, ref_logps: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimator of KL(π‖π_ref): ``exp(ref − logp) − (ref − logp) − 1`` (≥ 0).

    Example: logp = ref → 0; logp − ref = 0.1 → exp(−0.1) + 0.1 − 1 = 0.00484.
    """
    delta = ref_logps - logps
    return torch.exp(delta) - delta - 1


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``Σ values·mask / max(Σ mask, 1)`` — the mean over real (unpadded) tokens."""
    return (values * mask).sum() / mask.sum().clamp(min=1.0)


def truncation_mask(completion_mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """``mask_truncated_completions``: completions that never produced EOS contribute no tokens.

    completion_mask [N, T], truncated [N] bool → mask with truncated rows zeroed (DAPO's
    overlong filtering, as TRL)."""
    return completion_mask * (~truncated).unsqueeze(1).to(completion_mask.dtype)


def policy_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    loss_type: LossType = "dapo",
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logps: torch.Tensor | None = None,
    importance_sampling_level: Literal["token", "sequence"] = "token",
    delta: float | None = None,
    max_completion_length: int | None = None,
    num_items_in_batch: float | None = None,
    entropies: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO surrogate with an optional k3 KL penalty, normalised per ``loss_type``.

    Per token (token-level importance sampling)::

        ratio_t = exp(logp_t − old_logp_t)                       (sequence level, GSPO:
        ratio_t = exp(mean_t(logp − old_logp)) for every t of the completion)
        L_t = −min(ratio_t·A, clip(ratio_t, 1−ε_low, 1+ε_high)·A) + β·KL3_t

    with ``ratio`` first capped at ``delta`` when set (two-sided clipping). Normalisation over
    the mask M (N rows, T_max = ``max_completion_length``):

    - ``grpo``:    mean over rows of ``Σ_t L·M / Σ_t M``           (per-sequence mean, then mean)
    - ``bnpo``:    ``Σ L·M / Σ M``                                (token mean over this micro-batch)
    - ``dr_grpo``: ``Σ L·M / (N · T_max)``                         (constant normaliser, Dr. GRPO)
    - ``dapo``:    ``Σ L·M / num_items_in_batch``                 (token mean over the whole
      generation batch across gradient-accumulation steps; equals bnpo for one micro-batch)

    The caller divides grpo/bnpo/dr_grpo by the number of gradient-accumulation steps, as TRL.
    ``old_logps=None`` means the sampling policy is the current one (μ = 1): the ratio is 1
    but its gradient is the policy gradient.

    Statistics (scalars): ``kl`` (when β > 0), ``entropy`` (when entropies given),
    ``clip_ratio/low_mean`` (share of tokens with ratio < 1−ε_low and A < 0),
    ``clip_ratio/high_mean`` (ratio > 1+ε_high and A > 0), ``clip_ratio/region_mean`` (either).

    Example: one token, A = 1, logp − old = log 1.5, ε = 0.2 → ratio 1.5, clipped 1.2,
    L = −min(1.5, 1.2) = −1.2, high-clipped.
    """
    epsilon_high = epsilon_low if epsilon_high is None else epsilon_high
    mask = completion_mask.to(logps.dtype)
    if old_logps is None:
        old_logps = logps.detach()
    log_ratio = logps - old_logps
    if importance_sampling_level == "sequence":
        log_weights = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    else:
        log_weights = log_ratio
    ratio = torch.exp(log_weights)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    if delta is not None:
        ratio = torch.clamp(ratio, max=delta)
    adv = advantages.unsqueeze(1)
    per_token = -torch.min(ratio * adv, clipped * adv)

    stats: dict[str, torch.Tensor] = {}
    if beta != 0.0:
        if ref_logps is None:
            raise ValueError("beta > 0 needs ref_logps")
        kl = k3_kl(logps, ref_logps)
        per_token = per_token + beta * kl
        stats["kl"] = masked_mean(kl.detach(), mask)

    if loss_type == "grpo":
        loss = ((per_token * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()
    elif loss_type == "bnpo":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif loss_type == "dr_grpo":
        if max_completion_length is None:
            raise ValueError("dr_grpo needs max_completion_length")
        loss = (per_token * mask).sum() / (per_token.size(0) * max_completion_length)
    elif loss_type == "dapo":
        normaliser = num_items_in_batch if num_items_in_batch is not None else mask.sum().clamp(min=1.0)
        loss = (per_token * mask).sum() / normaliser
    else:
        raise ValueError(f"unknown loss_type {loss_type!r}")

    with torch.no_grad():
        ratio_d = ratio.detach().expand_as(per_token)
        low = ((ratio_d < 1 - epsilon_low) & (adv < 0)).to(mask.dtype)
        high = ((ratio_d > 1 + epsilon_high) & (adv > 0)).to(mask.dtype)
        stats["clip_ratio/low_mean"] = masked_mean(low, mask)
        stats["clip_ratio/high_mean"] = masked_mean(high, mask)
        stats["clip_ratio/region_mean"] = masked_mean(torch.clamp(low + high, max=1.0), mask)
        if entropies is not None:
            stats["entropy"] = masked_mean(entropies.detach(), mask)
    return loss, stats
