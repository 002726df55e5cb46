"""GRPO as pure tensor functions: tensors in, tensors out, no I/O and no state.

The whole algorithm under one name, ``grpo.<function>``; its parts live by idea:
:mod:`engine.algo.advantages` (rewards → advantages), :mod:`engine.algo.token_weights`
(which tokens count, and how much), :mod:`engine.algo.losses` (the surrogate, the loss-type
registry, the policy loss). Here: log-probs and entropies from logits, the reference-model
update, pass@k.

Shapes: N = B·G completions (B prompts, G generations each, grouped contiguously so
rows ``g*G .. g*G+G-1`` are one group), T = completion length (padded), V = vocabulary.
Names and formulas follow TRL's GRPOTrainer so results can be checked against it.
"""

from __future__ import annotations

import torch

from engine.algo.advantages import (
    ADV_EPS,
    ScaleRewards,
    group_advantages,
    groups_with_signal,
    groups_without_advantage,
    mark_unscorable,
    nanstd,
    normalize_then_sum_advantages,
)
from engine.algo.losses import (
    CLIP_RATIO_STATS,
    LOSSES,
    SEQUENCE_CLIP_STATS,
    Loss,
    LossType,
    clip_ratios,
    clipped_surrogate,
    dapo_num_items,
    importance_ratio,
    k3_kl,
    loss_for,
    masked_mean,
    per_token_loss,
    policy_loss,
    register_loss,
    subset_loss_scale,
)
from engine.algo.token_weights import high_entropy_mask, off_policy_mask, sampling_correction, truncation_mask


def selective_log_softmax(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``log softmax(logits)[index]`` per position without materialising the full log-softmax.

    logits [N, T, V], index [N, T] → [N, T]: ``logit[y] − logsumexp(logits)``.

    Example: logits [1, 2, 3], token 2 → 3 − log(e + e² + e³)::

        >>> round(float(selective_log_softmax(torch.tensor([[[1., 2., 3.]]]), torch.tensor([[2]]))), 4)
        -0.4076
    """
    picked = torch.gather(logits, dim=-1, index=index.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution at each position: ``H = −Σ p log p``. [N, T, V] → [N, T].

    Example: uniform over 4 tokens → log 4; a near-certain token → ≈ 0::

        >>> [round(h, 4) for h in entropy_from_logits(torch.tensor([[[0., 0., 0., 0.], [20., 0., 0., 0.]]]))[0].tolist()]
        [1.3863, 0.0]
    """
    logp = torch.log_softmax(logits, dim=-1)
    return -(logp.exp() * logp).sum(dim=-1)


def completion_logits(
    model_logits: torch.Tensor, completion_len: int, temperature: float
) -> torch.Tensor:
    """The logits that predict the completion tokens, scaled by the sampling temperature.

    The model sees prompt+completion [N, P+T]; the logit at position t predicts token t+1,
    so the completion's logits are positions P−1 … P+T−2. Dividing by the temperature makes
    the log-probs those of the distribution the tokens were sampled from (TRL does the same).

    Example: 5 positions whose logit is their index, T = 2 (so P = 3) → positions P−1 = 2
    and P = 3, divided by the temperature 2::

        >>> completion_logits(torch.arange(5.).view(1, 5, 1), 2, temperature=2.0).flatten().tolist()
        [1.0, 1.5]
    """
    return model_logits[:, -completion_len - 1 : -1, :] / temperature


@torch.no_grad()
def mix_into_reference(ref_model: torch.nn.Module, model: torch.nn.Module, alpha: float) -> None:
    """``sync_ref_model`` (TR-DPO): ``θ_ref ← α·θ + (1 − α)·θ_ref`` for every parameter, in place.

    Example: θ_ref = 0, θ = 1, α = .6 → θ_ref = .6::

        >>> ref, policy = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
        >>> _ = ref.weight.data.fill_(0.0), policy.weight.data.fill_(1.0)
        >>> mix_into_reference(ref, policy, alpha=0.6)
        >>> round(ref.weight.item(), 4)
        0.6
    """
    for ref_p, p in zip(ref_model.parameters(), model.parameters()):
        ref_p.mul_(1.0 - alpha).add_(p.detach().to(ref_p.dtype), alpha=alpha)


def pass_at_k(num_samples: int, num_correct: int, k: int) -> float:
    """Unbiased pass@k from n samples with c correct (Chen et al., 2021): ``1 − C(n−c, k) / C(n, k)``.

    Example: n = 4, c = 1, k = 2 → 1 − C(3, 2)/C(4, 2) = 1 − 3/6::

        >>> pass_at_k(4, 1, 2), pass_at_k(4, 0, 2), pass_at_k(4, 3, 2)
        (0.5, 0.0, 1.0)
    """
    if num_samples - num_correct < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(num_samples - num_correct + 1, num_samples + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


__all__ = [
    "ADV_EPS", "CLIP_RATIO_STATS", "LOSSES", "Loss", "LossType", "SEQUENCE_CLIP_STATS", "ScaleRewards",
    "clip_ratios", "clipped_surrogate", "completion_logits", "dapo_num_items", "entropy_from_logits",
    "group_advantages", "groups_with_signal", "groups_without_advantage", "high_entropy_mask",
    "importance_ratio", "k3_kl", "loss_for", "mark_unscorable", "masked_mean", "mix_into_reference", "nanstd",
    "normalize_then_sum_advantages", "off_policy_mask", "pass_at_k", "per_token_loss",
    "policy_loss", "register_loss", "sampling_correction", "selective_log_softmax", "subset_loss_scale",
    "truncation_mask",
]
