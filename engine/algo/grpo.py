"""GRPO as pure tensor functions: tensors in, tensors out, no I/O and no state.

Shapes: N = B·G completions (B prompts, G generations each, grouped contiguously so
rows ``g*G .. g*G+G-1`` are one group), T = completion length (padded).
Names and formulas follow TRL's GRPOTrainer so results can be checked against it.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

ScaleRewards = Literal["group", "batch", "none"]
LossType = Literal["grpo", "bnpo", "dr_grpo", "dapo"]
CLIP_RATIO_STATS = ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean")

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


def sampling_correction(
    old_logps: torch.Tensor,
    sampling_logps: torch.Tensor,
    completion_mask: torch.Tensor,
    mode: str = "sequence_mask",
    clip_min: float | None = None,
    clip_max: float | None = 3.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Importance weights for the gap between the sampler's log-probs (vLLM) and the trainer's
    log-probs of the same policy, multiplied into the clipped surrogate (not the KL term)::

        d_t = (old_logp_t − sampling_logp_t) · M_t      (NaN → 0: no correction where the sampler gave none)
        token_*:    w_t = exp(d_t)                       [N, T]
        sequence_*: w   = exp(Σ_t d_t)                   [N, 1], the same for every token
        *_truncate: w ← clamp(w, C_min, C_max)
        *_mask:     w ← 0 where w < C_min or w > C_max   (the token or sequence drops out)

    Example: one sequence, d = (0.1, 0.2), sequence_mask with C_max = 3 → w = e^0.3 ≈ 1.35 (kept);
    with d = (1.0, 0.5) → w = e^1.5 ≈ 4.48 > 3 → 0.

    Statistics: ``sampling/importance_sampling_ratio/{min,mean,max}`` over the weights of real
    tokens (or sequences), ``sampling/sampling_logp_difference/{mean,max}`` of ``|d_t|``.
    """
    mask = completion_mask.to(old_logps.dtype)
    diff = torch.nan_to_num((old_logps - sampling_logps) * mask, nan=0.0)
    sequence_level = mode.startswith("sequence")
    log_w = diff.sum(-1, keepdim=True) if sequence_level else diff
    w = torch.exp(log_w)
    lo = -math.inf if clip_min is None else clip_min
    hi = math.inf if clip_max is None else clip_max
    if mode.endswith("truncate"):
        w = w.clamp(min=lo, max=hi)
    elif mode.endswith("mask"):
        w = w.masked_fill((w < lo) | (w > hi), 0.0)
    else:
        raise ValueError(f"unknown importance sampling mode {mode!r}")
    with torch.no_grad():
        real = (mask.sum(-1) > 0) if sequence_level else mask.bool()
        values = w.squeeze(-1)[real] if sequence_level else w[real]
        gap = diff.abs()[mask.bool()]
        empty = torch.zeros((), dtype=w.dtype, device=w.device)
        stats = {
            "sampling/importance_sampling_ratio/min": values.min() if values.numel() else empty,
            "sampling/importance_sampling_ratio/mean": values.mean() if values.numel() else empty,
            "sampling/importance_sampling_ratio/max": values.max() if values.numel() else empty,
            "sampling/sampling_logp_difference/mean": gap.mean() if gap.numel() else empty,
            "sampling/sampling_logp_difference/max": gap.max() if gap.numel() else empty,
        }
    return w.detach(), stats


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
    token_weights: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped GRPO surrogate with an optional k3 KL penalty, normalised per ``loss_type``.

    Per token (token-level importance sampling)::

        ratio_t = exp(logp_t − old_logp_t)                       (sequence level, GSPO:
        ratio_t = exp(mean_t(logp − old_logp)) for every t of the completion)
        L_t = −min(ratio_t·A, clip(ratio_t, 1−ε_low, 1+ε_high)·A) + β·KL3_t

    with ``ratio`` first capped at ``delta`` when set (two-sided clipping), and the clipped term
    multiplied by ``token_weights`` when given (e.g. the top-entropy mask). Normalisation over
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
    if token_weights is not None:
        per_token = per_token * token_weights

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
        for name, clipped_tokens in zip(CLIP_RATIO_STATS, (low, high, torch.clamp(low + high, max=1.0))):
            stats[name] = masked_mean(clipped_tokens, mask)
        if entropies is not None:
            stats["entropy"] = masked_mean(entropies.detach(), mask)
    return loss, stats


def normalize_then_sum_advantages(
    rewards_per_func: torch.Tensor, weights: torch.Tensor, num_generations: int
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GDPO-style multi-objective advantages: normalise each reward within its group, then sum.

    ``Â_k = (r_k − mean_group(r_k)) / (std_group(r_k) + 1e-4)`` for every reward function k
    (NaN = "not applicable" rows count as 0), ``s = Σ_k w_k·Â_k``, and the advantage is
    ``A = (s − mean_batch(s)) / (std_batch(s) + 1e-4)``. Unlike summing first, a reward with a
    large spread cannot drown out the others.

    Example: G=2, one group, rewards [[1, 0], [0, 0]], w = [1, 1] → Â_0 = ±.5/(.7071 + 1e-4)
    = [.7070, −.7070], Â_1 = [0, 0] → s = [.7070, −.7070] → A = s/(std(s) + 1e-4) = [.7070, −.7070].
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
    teaches nothing; DAPO drops it and samples more prompts instead."""
    grouped = rewards.view(-1, num_generations)
    return ~torch.isclose(grouped.max(dim=1).values, grouped.min(dim=1).values)


def groups_without_advantage(advantages: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Rows [N] bool of groups whose every advantage is exactly 0.

    With β = 0 such a row's loss ``−min(ratio·0, clip(ratio)·0) = 0`` at every token, whatever
    the ratio, so its gradient is exactly zero and the update may leave it out (its tokens
    still count in the normaliser: see :func:`subset_loss_scale`). Whole groups only, so the
    rows that are computed still share their prompt.

    Example: G = 2, A = [0, 0, .7, −.7, 0, 1e-9] → [True, True, False, False, False, False].
    """
    flat = (advantages.view(-1, num_generations) == 0).all(dim=1)
    return flat.repeat_interleave(num_generations)


def subset_loss_scale(loss_type: LossType, rows_kept: int, rows_all: int, tokens_kept: float,
                      tokens_all: float) -> float:
    """The factor turning the loss over some rows into the loss over all of them, when the
    rows left out contribute exactly 0 to every sum:

    - ``grpo`` (mean over rows) and ``dr_grpo`` (÷ N·T_max): ``rows_kept / rows_all``
    - ``bnpo`` (÷ this micro-batch's tokens): ``tokens_kept / tokens_all``
    - ``dapo`` (÷ ``num_items_in_batch``, already counted over every row): 1

    Example: grpo, 3 of 4 rows → a mean over 3 rows × 3/4 = the mean over 4 with one 0.
    """
    if loss_type in ("grpo", "dr_grpo"):
        return rows_kept / max(rows_all, 1)
    if loss_type == "bnpo":
        return tokens_kept / max(tokens_all, 1.0)
    return 1.0


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """``top_entropy_quantile`` ρ: keep only tokens whose entropy is in the top ρ share.

    The threshold is the (1 − ρ) quantile of the entropies of real (masked-in) tokens; tokens
    at or above it get weight 1, the rest 0. ρ = 1 keeps every token; ρ = 0.2 trains on the
    20% most uncertain "forking" tokens (Wang et al., 2025).

    Example: entropies [.1, .5, .9, .3], ρ = .5 → threshold = quantile(.5) = .4 → [0, 1, 1, 0].
    """
    if quantile >= 1.0:
        return torch.ones_like(entropies)
    real = entropies[mask.bool()]
    if real.numel() == 0:
        return torch.zeros_like(entropies)
    threshold = torch.quantile(real.float(), 1.0 - quantile)
    return (entropies >= threshold).to(entropies.dtype) * mask.to(entropies.dtype)


@torch.no_grad()
def mix_into_reference(ref_model: torch.nn.Module, model: torch.nn.Module, alpha: float) -> None:
    """``sync_ref_model`` (TR-DPO): ``θ_ref ← α·θ + (1 − α)·θ_ref`` for every parameter."""
    for ref_p, p in zip(ref_model.parameters(), model.parameters()):
        ref_p.mul_(1.0 - alpha).add_(p.detach().to(ref_p.dtype), alpha=alpha)


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021): ``1 − C(n−c, k) / C(n, k)``."""
    if num_samples - num_correct < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(num_samples - num_correct + 1, num_samples + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong
