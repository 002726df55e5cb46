"""The loss types whose surrogate is not GRPO's clipped ratio: cispo, sapo, luspo and vespo.

Each is a pure surrogate (per-token terms from log-probs, advantages and the mask) registered
in :data:`engine.algo.losses.LOSSES` with its normaliser and statistics, so that choosing one
is ``loss_type: <name>``. The maths, defaults and metric names are TRL 1.16's
(``GRPOTrainer._compute_loss``); the papers are cited in each function.

Shapes: N completions, T tokens (padded); ``mask`` [N, T] is 1 on real tokens, ``advantages`` [N].
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from engine.algo.losses import batch_token_mean, masked_mean, register_loss

LOG_WEIGHT_FLOOR = math.log(1e-8)
"""VESPO's lower clamp of a log importance weight (TRL's, after the paper's code): w ≥ 1e-8."""


def _log_importance_weights(logps: torch.Tensor, old_logps: torch.Tensor, mask: torch.Tensor,
                            level: Literal["token", "sequence"]) -> torch.Tensor:
    """``logp − old_logp`` per token, or its mean over the real tokens of each row ([N, 1], GSPO)."""
    log_ratio = logps - old_logps
    if level == "sequence":
        return ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return log_ratio


# --------------------------------------------------------------------------- CISPO


def cispo_surrogate(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                    epsilon_low: float, epsilon_high: float, delta: float | None = None,
                    importance_sampling_level: Literal["token", "sequence"] = "token") -> tuple[torch.Tensor, torch.Tensor]:
    """CISPO (MiniMax-M1, arXiv:2506.13585): clip the importance weight, not the update, and
    keep every token's gradient::

        r_t = exp(logp_t − old_logp_t)              (sequence level: exp of the row's mean)
        L_t = −sg(min(r_t, ε_max)) · A · logp_t      sg = stop-gradient

    so ∂L/∂logp_t = −min(r_t, ε_max)·A: a token far off-policy is down-weighted but never
    dropped, unlike the clipped surrogate whose gradient is 0 outside [1−ε, 1+ε]. ε_max is
    ``epsilon_high`` (an absolute cap on r, not 1 + ε; ScaleRL recommends 5.0; TRL's default
    is ``epsilon``). ``epsilon_low`` and ``delta`` play no part. Returns the terms and r.

    Example: ratios 1.5 and .5, A = 1, ε_max = 1.2 → weights 1.2 and .5;
    L = (−1.2·log 1.5, −.5·log .5) = (−.4866, .3466), gradients (−1.2, −.5)::

        >>> logps = torch.log(torch.tensor([[1.5, .5]])).requires_grad_()
        >>> terms, ratio = cispo_surrogate(logps, torch.zeros(1, 2), torch.tensor([1.]), torch.ones(1, 2),
        ...                                epsilon_low=.2, epsilon_high=1.2)
        >>> [round(x, 4) for x in terms.flatten().tolist()]
        [-0.4866, 0.3466]
        >>> terms.sum().backward(); [round(x, 4) for x in logps.grad.flatten().tolist()]
        [-1.2, -0.5]
    """
    ratio = torch.exp(_log_importance_weights(logps, old_logps, mask, importance_sampling_level))
    weight = torch.clamp(ratio, max=epsilon_high).detach()
    return -weight * advantages.unsqueeze(1) * logps, ratio


def cispo_clip_ratio(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, epsilon_low: float,
                     epsilon_high: float) -> dict[str, torch.Tensor]:
    """TRL's ``cispo_clip_ratio``: the share of real tokens (of rows, at sequence level) whose
    weight was capped, ``r > ε_max`` with ``A > 0``.

    Example: A = 1, ratios [1.5, 1, .5], ε_max = 1.2 → one token of three::

        >>> stats = cispo_clip_ratio(torch.tensor([[1.5, 1., .5]]), torch.tensor([1.]), torch.ones(1, 3), .2, 1.2)
        >>> round(float(stats["cispo_clip_ratio"]), 4)
        0.3333
    """
    with torch.no_grad():
        capped = ((ratio.detach() > epsilon_high) & (advantages.unsqueeze(1) > 0)).to(mask.dtype)
        if capped.size(1) == 1 and mask.size(1) != 1:  # one weight per sequence: count sequences
            return {"cispo_clip_ratio": capped.mean()}
        return {"cispo_clip_ratio": masked_mean(capped, mask)}


register_loss("cispo", divides_by="batch", surrogate=cispo_surrogate, statistics=cispo_clip_ratio,
              stat_names=("cispo_clip_ratio",))(batch_token_mean)


# --------------------------------------------------------------------------- SAPO


def sapo_surrogate(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                   epsilon_low: float, epsilon_high: float, delta: float | None = None,
                   importance_sampling_level: Literal["token", "sequence"] = "token",
                   sapo_temperature_neg: float = 1.05, sapo_temperature_pos: float = 1.0,
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """SAPO (Soft Adaptive Policy Optimization, arXiv:2511.20347): a smooth gate in place of the
    hard clip::

        r_t = exp(logp_t − old_logp_t),   τ = τ_pos if A > 0 else τ_neg
        L_t = −A · σ(τ·(r_t − 1)) · 4/τ

    ∂L/∂r = −A·4·σ(1−σ), which is −A at r = 1 (the policy gradient, as GRPO's on-policy) and
    fades smoothly as r leaves 1 instead of dropping to 0 at 1 ± ε. τ_neg > τ_pos (TRL: 1.05,
    1.0) fades negative updates faster. ε and δ play no part; no clip statistics.

    Example: r = 1 → L = −A·σ(0)·4/τ = −2A/τ, gradient −A; A = −1 with τ_neg = 1.05 → 2/1.05;
    r = 1.5, A = 1, τ_pos = 1 → −4·σ(.5) = −2.4898::

        >>> logps = torch.log(torch.tensor([[1., 1.5]])).requires_grad_()
        >>> terms, _ = sapo_surrogate(logps, torch.zeros(1, 2), torch.tensor([1.]), torch.ones(1, 2),
        ...                           epsilon_low=.2, epsilon_high=.2)
        >>> [round(x, 4) for x in terms.flatten().tolist()]
        [-2.0, -2.4898]
        >>> terms.sum().backward(); round(float(logps.grad[0, 0]), 4)
        -1.0
        >>> terms, _ = sapo_surrogate(torch.zeros(1, 1), torch.zeros(1, 1), torch.tensor([-1.]), torch.ones(1, 1),
        ...                           epsilon_low=.2, epsilon_high=.2)
        >>> round(float(terms), 4)
        1.9048
    """
    ratio = torch.exp(_log_importance_weights(logps, old_logps, mask, importance_sampling_level))
    adv = advantages.unsqueeze(1)
    temperature = torch.where(adv > 0, sapo_temperature_pos, sapo_temperature_neg)
    gate = torch.sigmoid(temperature * (ratio - 1)) * 4 / temperature
    return -gate * adv, ratio


def no_statistics(ratio: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, epsilon_low: float,
                  epsilon_high: float) -> dict[str, torch.Tensor]:
    """Nothing to log about the ratio (SAPO clips nothing).

    >>> no_statistics(torch.ones(1, 1), torch.ones(1), torch.ones(1, 1), .2, .2)
    {}
    """
    return {}


@register_loss("sapo", divides_by="rows", surrogate=sapo_surrogate, statistics=no_statistics, stat_names=(),
               options=("sapo_temperature_neg", "sapo_temperature_pos"))
def sapo_sequence_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
                       num_items_in_batch: float | None = None) -> torch.Tensor:
    """``sapo`` reduces as ``grpo`` (TRL): each sequence's token mean, then the mean over rows.

    Example: (6/3 + 4/1) / 2::

        >>> float(sapo_sequence_mean(torch.tensor([[1., 2., 3.], [4., 9., 9.]]),
        ...                          torch.tensor([[1., 1., 1.], [1., 0., 0.]])))
        3.0
    """
    return ((terms * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean()


# --------------------------------------------------------------------------- LUSPO


@register_loss("luspo", divides_by="rows")
def sequence_sum_mean(terms: torch.Tensor, mask: torch.Tensor, *, max_completion_length: int | None = None,
                      num_items_in_batch: float | None = None) -> torch.Tensor:
    """``luspo`` (Length-Unbiased Sequence Policy Optimization, arXiv:2602.05261): GSPO's clipped
    sequence-ratio surrogate, each sequence's loss scaled by its length — ``mean_i(Σ_t L·M)``,
    the sum over a row's tokens (not their mean), then the mean over rows. Meant with
    ``importance_sampling_level: sequence`` (TRL warns otherwise; so does the config check).

    Example: rows of 3 and 1 real tokens → (6 + 4) / 2::

        >>> float(sequence_sum_mean(torch.tensor([[1., 2., 3.], [4., 9., 9.]]),
        ...                         torch.tensor([[1., 1., 1.], [1., 0., 0.]])))
        5.0
    """
    return (terms * mask).sum(-1).mean()


# --------------------------------------------------------------------------- VESPO


@torch.no_grad()
def gamma_weights(advantages: torch.Tensor, log_ratio: torch.Tensor, mask: torch.Tensor,
                  importance_sampling_ratio: torch.Tensor | None = None, *, k_pos: float = 2.0,
                  lambda_pos: float = 3.0, k_neg: float = 3.0, lambda_neg: float = 2.0) -> torch.Tensor:
    """VESPO's sequence weight φ(w) = e^λ · w^k · e^(−λw) (φ(1) = 1), in log space, no gradient::

        log w = clamp(Σ_t clamp(logp − old_logp, ±20)·M + Σ_t log ρ_t, log 1e-8, 20)
        (k, λ) = (k_pos, λ_pos) if A ≥ 0 else (k_neg, λ_neg)

    ρ is the sampler correction per token (when a separate engine samples), folded into w rather
    than multiplied into the loss. φ rises as w^k below 1 and decays as e^(−λw) above, so samples
    far off-policy either way count little. Returns φ [N, 1] (NaN or ∞ → 0).

    Example: w = .5, A = 1 → e³·.25·e^(−1.5) = 1.1204; w = 2, A = −1 → e²·8·e^(−4) = 1.0827::

        >>> log_ratio = torch.log(torch.tensor([[.5], [2.]]))
        >>> [round(x, 4) for x in gamma_weights(torch.tensor([1., -1.]), log_ratio, torch.ones(2, 1)).flatten().tolist()]
        [1.1204, 1.0827]
    """
    seq_log_ratio = (torch.clamp(log_ratio, -20.0, 20.0) * mask).sum(-1, keepdim=True)
    if importance_sampling_ratio is not None:
        log_rho = torch.clamp(torch.log(importance_sampling_ratio), LOG_WEIGHT_FLOOR, 20.0)
        seq_log_ratio = seq_log_ratio + log_rho.sum(-1, keepdim=True)
    log_w = torch.clamp(seq_log_ratio, LOG_WEIGHT_FLOOR, 20.0)
    nonneg = advantages.unsqueeze(1) >= 0
    k = torch.where(nonneg, k_pos, k_neg)
    lam = torch.where(nonneg, lambda_pos, lambda_neg).clamp(min=1e-4)
    phi = torch.exp(lam + k * log_w - lam * torch.exp(log_w))
    return phi.nan_to_num(nan=0.0, posinf=0.0, neginf=0.0)


def vespo_surrogate(logps: torch.Tensor, old_logps: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, *,
                    epsilon_low: float, epsilon_high: float, delta: float | None = None,
                    importance_sampling_level: Literal["token", "sequence"] = "token",
                    vespo_k_pos: float = 2.0, vespo_lambda_pos: float = 3.0, vespo_k_neg: float = 3.0,
                    vespo_lambda_neg: float = 2.0, importance_sampling_ratio: torch.Tensor | None = None,
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """VESPO (Variational Sequence-Level Soft Policy Optimization, arXiv:2602.10693)::

        L_t = −φ(w) · A · logp_t        φ = :func:`gamma_weights` of the sequence ratio w

    so ∂L/∂logp_t = −φ(w)·A: a smooth, asymmetric weight on the policy gradient in place of
    clipping. It makes its own sequence ratio (a sum of log-ratios), so
    ``importance_sampling_level``, ε and δ play no part. Returns the terms and φ [N, 1].

    Example: on-policy (w = 1, φ = 1), A = 2, logp = −.5 → L = 1, gradient −2::

        >>> logps = torch.tensor([[-.5]], requires_grad=True)
        >>> terms, phi = vespo_surrogate(logps, logps.detach(), torch.tensor([2.]), torch.ones(1, 1),
        ...                              epsilon_low=.2, epsilon_high=.2)
        >>> round(terms.item(), 4), round(phi.item(), 4)
        (1.0, 1.0)
        >>> terms.sum().backward(); round(logps.grad.item(), 4)
        -2.0
    """
    phi = gamma_weights(advantages, logps - old_logps, mask, importance_sampling_ratio, k_pos=vespo_k_pos,
                        lambda_pos=vespo_lambda_pos, k_neg=vespo_k_neg, lambda_neg=vespo_lambda_neg)
    return -phi * advantages.unsqueeze(1) * logps, phi


def phi_mean(phi: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor, epsilon_low: float,
             epsilon_high: float) -> dict[str, torch.Tensor]:
    """TRL's ``vespo/phi_seq_mean``: the mean of φ over the rows.

    >>> phi_mean(torch.tensor([[1.], [.5]]), torch.ones(2), torch.ones(2, 3), .2, .2)
    {'vespo/phi_seq_mean': tensor(0.7500)}
    """
    return {"vespo/phi_seq_mean": phi.detach().mean()}


register_loss("vespo", divides_by="batch", surrogate=vespo_surrogate, statistics=phi_mean,
              stat_names=("vespo/phi_seq_mean",), exact_without_flat_groups=False,
              options=("vespo_k_pos", "vespo_lambda_pos", "vespo_k_neg", "vespo_lambda_neg",
                       "importance_sampling_ratio"))(batch_token_mean)

__all__ = ["cispo_clip_ratio", "cispo_surrogate", "gamma_weights", "no_statistics", "phi_mean",
           "sapo_sequence_mean", "sapo_surrogate", "sequence_sum_mean", "vespo_surrogate"]
