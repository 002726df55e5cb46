"""Ranked groups' maths: advantages from ranks, and how often the policy agrees with them.

A ranked group's responses come with the order a judge (or a person) gave them (rank 1 is
the best; equal ranks are ties). Their advantages come from the ranks
(:func:`rank_advantages`), and a held-out split is judged by how often the policy's
log-probability order agrees with the ranks (:func:`ranking_accuracy`). Reading the data
is :mod:`engine.data.ranked`. Pure functions: tensors in, tensors out, like
:mod:`engine.algo.advantages`.
"""

from __future__ import annotations

import math

import torch

from engine.algo.advantages import ScaleRewards, group_advantages


# --------------------------------------------------------------------------- advantages


def rank_scores(ranks: torch.Tensor) -> torch.Tensor:
    """Ranks [G] (1 = best) to scores in [0, 1]: ``s_i = (G − rank_i) / (G − 1)``.

    The best response scores 1, rank G scores 0; ties share a score because they share a
    rank. Gaps in the ranks are kept (ranks 1, 1, 3 score 1, 1, 0). A group of one scores 0.

    Example::

        >>> [round(s, 4) for s in rank_scores(torch.tensor([1, 2, 3, 4])).tolist()]
        [1.0, 0.6667, 0.3333, 0.0]
        >>> rank_scores(torch.tensor([2, 1, 1])).tolist(), rank_scores(torch.tensor([1, 1, 3])).tolist()
        ([0.5, 1.0, 1.0], [1.0, 1.0, 0.0])
    """
    ranks = ranks.to(torch.float32)
    g = ranks.numel()
    if g < 2:
        return torch.zeros_like(ranks)
    return (g - ranks) / (g - 1)


def rank_advantages(ranks: torch.Tensor, scale_rewards: ScaleRewards = "group") -> torch.Tensor:
    """Advantages [G] for one ranked group, as GRPO computes them from rewards.

    ``s = rank_scores(ranks)`` (``s_i = (G − rank_i) / (G − 1)``), then the group-relative
    advantage of :func:`engine.algo.advantages.group_advantages`::

        A_i = (s_i − mean(s)) / (std(s) + 1e-4)        (Bessel-corrected std; "none": no division)

    Ties share an advantage; an all-tied group has A = 0. Because the scores are an affine
    map of the ranks, group scaling makes A depend only on the ranks' spacing.

    Example: ranks [1, 2, 3, 4] → s = [1, 2/3, 1/3, 0], mean 0.5, std 0.43033; ties share::

        >>> [round(a, 5) for a in rank_advantages(torch.tensor([1, 2, 3, 4])).tolist()]
        [1.16163, 0.38721, -0.38721, -1.16163]
        >>> [round(a, 4) for a in rank_advantages(torch.tensor([1, 1, 3])).tolist()]
        [0.5773, 0.5773, -1.1545]
    """
    scores = rank_scores(ranks)
    if scores.numel() < 2:
        return torch.zeros_like(scores)
    mode = "group" if scale_rewards == "batch" else scale_rewards  # one group: batch = group
    advantages, _ = group_advantages(scores, scores.numel(), mode)
    return advantages


def ranked_advantages(groups: list[list[int]] | list[torch.Tensor], scale_rewards: ScaleRewards = "group") -> torch.Tensor:
    """Advantages [N] for a batch of ranked groups of any sizes: :func:`rank_advantages` of each,
    concatenated in order.

    Example: a group of two, then a group of three with one tie::

        >>> [round(a, 4) for a in ranked_advantages([[2, 1], [1, 2, 2]]).tolist()]
        [-0.707, 0.707, 1.1543, -0.5772, -0.5772]
    """
    parts = [rank_advantages(torch.as_tensor(g), scale_rewards) for g in groups]
    return torch.cat(parts) if parts else torch.zeros(0)


def ranking_accuracy(seq_logps: torch.Tensor, ranks: torch.Tensor) -> float:
    """Share of response pairs with different ranks that the policy orders as the ranks do.

    Over every pair (i, j) with ``rank_i < rank_j`` (i judged better), the pair agrees when
    ``seq_logps_i > seq_logps_j``; equal log-probs do not agree. ``seq_logps`` [G] are the
    responses' sequence log-probabilities under the policy (sum of token log-probs; a
    length-normalised mean works the same way). NaN when every rank is tied.

    Example: ranks [1, 2, 3], logps [−1, −3, −2]: pairs (1,2) ✓, (1,3) ✓, (2,3) ✗ → 2/3::

        >>> round(ranking_accuracy(torch.tensor([-1., -3., -2.]), torch.tensor([1, 2, 3])), 4)
        0.6667
        >>> ranking_accuracy(torch.tensor([-1., -2.]), torch.tensor([1, 1]))
        nan
    """
    logps = seq_logps.detach().to(torch.float64).reshape(-1)
    r = ranks.to(torch.float64).reshape(-1)
    if logps.numel() != r.numel():
        raise ValueError(f"seq_logps has {logps.numel()} values for {r.numel()} ranks")
    better = r.unsqueeze(1) < r.unsqueeze(0)  # [i, j]: i ranked above j
    pairs = int(better.sum())
    if pairs == 0:
        return math.nan
    agree = better & (logps.unsqueeze(1) > logps.unsqueeze(0))
    return int(agree.sum()) / pairs


def sequence_logps(token_logps: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Sequence log-probabilities [N] from per-token log-probs [N, T] and the completion mask:
    ``log π(y) = Σ_t logp_t · M_t``.

    Example: the padded third token does not count::

        >>> sequence_logps(torch.tensor([[-1., -.5, -9.]]), torch.tensor([[1, 1, 0]])).tolist()
        [-1.5]
    """
    return (token_logps * mask.to(token_logps.dtype)).sum(dim=-1)
