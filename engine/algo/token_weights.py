"""Which tokens the loss counts, and how much: masks and weights multiplied into the surrogate.

Shapes: N completions, T tokens (padded); ``completion_mask`` [N, T] is 1 on real tokens.
"""

from __future__ import annotations

import math

import torch


def truncation_mask(completion_mask: torch.Tensor, truncated: torch.Tensor) -> torch.Tensor:
    """``mask_truncated_completions``: completions that never produced EOS contribute no tokens.

    ``M'_{i,t} = M_{i,t} · [row i ended with EOS]``; completion_mask [N, T], truncated [N] bool
    → the mask with truncated rows zeroed (DAPO's overlong filtering, as TRL).

    Example::

        >>> truncation_mask(torch.ones(3, 2), torch.tensor([False, True, False])).tolist()
        [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    """
    return completion_mask * (~truncated).unsqueeze(1).to(completion_mask.dtype)


def high_entropy_mask(entropies: torch.Tensor, mask: torch.Tensor, quantile: float) -> torch.Tensor:
    """``top_entropy_quantile`` ρ: keep only tokens whose entropy is in the top ρ share.

    The threshold is the (1 − ρ) quantile of the entropies of real (masked-in) tokens; tokens
    at or above it get weight 1, the rest 0. ρ = 1 keeps every token; ρ = 0.2 trains on the
    20% most uncertain "forking" tokens (Wang et al., 2025).

    Example: ρ = .5 → threshold = quantile(.5) of [.1, .5, .9, .3] = .4; padded tokens
    neither count nor set the threshold::

        >>> entropies = torch.tensor([[.1, .5, .9, .3]])
        >>> high_entropy_mask(entropies, torch.ones(1, 4), quantile=.5).tolist()
        [[0.0, 1.0, 1.0, 0.0]]
        >>> high_entropy_mask(entropies, torch.tensor([[1., 1., 0., 0.]]), quantile=.5).tolist()
        [[0.0, 1.0, 0.0, 0.0]]
    """
    if quantile >= 1.0:
        return torch.ones_like(entropies)
    real = entropies[mask.bool()]
    if real.numel() == 0:
        return torch.zeros_like(entropies)
    threshold = torch.quantile(real.float(), 1.0 - quantile)
    return (entropies >= threshold).to(entropies.dtype) * mask.to(entropies.dtype)


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

    Statistics: ``sampling/importance_sampling_ratio/{min,mean,max}`` over the weights of real
    tokens (or sequences), ``sampling/sampling_logp_difference/{mean,max}`` of ``|d_t|`` over
    the real tokens the sampler gave a log-prob (a NaN one would read as perfect agreement;
    as TRL, they are left out).

    Example: sequence_mask with C_max = 3; the first sequence has d = (.1, .2), so
    w = e^.3 ≈ 1.35 (kept); the second has d = (1, .5), so w = e^1.5 ≈ 4.48 > 3 → 0::

        >>> old = torch.tensor([[.1, .2], [1., .5]])
        >>> w, stats = sampling_correction(old, torch.zeros(2, 2), torch.ones(2, 2), "sequence_mask")
        >>> [round(x, 4) for x in w.flatten().tolist()]
        [1.3499, 0.0]
        >>> round(float(stats["sampling/sampling_logp_difference/max"]), 4)
        1.0
        >>> w, _ = sampling_correction(old, torch.zeros(2, 2), torch.ones(2, 2), "token_truncate", 1.2, 2.0)
        >>> [[round(x, 4) for x in row] for row in w.tolist()]
        [[1.2, 1.2214], [2.0, 1.6487]]

    A token the sampler could not score (NaN) is not a gap of 0: the mean of |d| over the
    others, (.1 + .2 + 1) / 3::

        >>> _, stats = sampling_correction(old, torch.tensor([[0., 0.], [0., float("nan")]]), torch.ones(2, 2))
        >>> round(float(stats["sampling/sampling_logp_difference/mean"]), 4)
        0.4333
    """
    mask = completion_mask.to(old_logps.dtype)
    raw = old_logps - sampling_logps
    diff = torch.nan_to_num(raw * mask, nan=0.0)
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
        gap = raw.abs()[mask.bool() & ~torch.isnan(raw)]
        empty = torch.zeros((), dtype=w.dtype, device=w.device)
        stats = {
            "sampling/importance_sampling_ratio/min": values.min() if values.numel() else empty,
            "sampling/importance_sampling_ratio/mean": values.mean() if values.numel() else empty,
            "sampling/importance_sampling_ratio/max": values.max() if values.numel() else empty,
            "sampling/sampling_logp_difference/mean": gap.mean() if gap.numel() else empty,
            "sampling/sampling_logp_difference/max": gap.max() if gap.numel() else empty,
        }
    return w.detach(), stats


def off_policy_mask(advantages: torch.Tensor, logps: torch.Tensor, sampling_logps: torch.Tensor,
                    completion_mask: torch.Tensor, threshold: float) -> torch.Tensor:
    """``off_policy_mask_threshold`` δ: DeepSeek-V3.2's off-policy sequence mask (arXiv:2512.02556, eq. 9).

    A sequence with a negative advantage whose sampling policy has drifted far from the current
    one teaches little but noise; it is dropped::

        KL_i = Σ_t (sampling_logp − logp)·M / Σ_t M      (NaN sampler log-probs count 0)
        keep_i = A_i ≥ 0  or  KL_i ≤ δ                    → [N, 1] of 1 (keep) and 0 (drop)

    ``sampling_logps`` are the sampler's own (a separate engine's), else the old policy's.

    Example: δ = .5; row 1 drifted by 1 nat per token with A < 0 → dropped; row 2 drifted as far
    but A > 0 → kept; row 3 A < 0 but drifted .2 → kept::

        >>> logps = torch.zeros(3, 2)
        >>> sampling = torch.tensor([[1., 1.], [1., 1.], [.2, .2]])
        >>> off_policy_mask(torch.tensor([-1., 1., -1.]), logps, sampling, torch.ones(3, 2), .5).flatten().tolist()
        [0.0, 1.0, 1.0]
    """
    mask = completion_mask.to(logps.dtype)
    drift = torch.nan_to_num(sampling_logps - logps.detach(), nan=0.0)
    mean_kl = (drift * mask).sum(-1, keepdim=True) / mask.sum(-1, keepdim=True).clamp(min=1.0)
    return ((advantages.unsqueeze(1) >= 0) | (mean_kl <= threshold)).to(mask.dtype)
