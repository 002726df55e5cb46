"""Ranked groups: train on given responses whose order a judge (or a person) decided.

The data format is the NeMo RL GRPO tutorial's, one prompt per row with its group::

    {"prompt": "...", "group": [{"response": "...", "rank": 1}, {"response": "...", "rank": 2}]}

Rank 1 is the best; equal ranks are ties. Nothing is generated: the responses are the
group, their advantages come from the ranks (:func:`rank_advantages`), and a held-out
split is judged by how often the policy's log-probability order agrees with the ranks
(:func:`ranking_accuracy`).

The tensor functions are pure (tensors in, tensors out), like ``engine.grpo``.
"""

from __future__ import annotations

import json
import math
import numbers
from pathlib import Path
from typing import Any, Iterable

import torch

from engine import grpo


class RankedDataError(ValueError):
    """A ranked-groups row that cannot be used; the message names the row and the field."""


# --------------------------------------------------------------------------- data


def normalize_ranked_rows(rows: Iterable[dict], *, min_group: int = 2) -> list[dict]:
    """Check ranked rows and flatten each group: ``{"prompt", "responses": [str], "ranks": [int], ...}``.

    Other keys of a row are kept (they reach reward-style code as columns). Raises
    RankedDataError naming the first bad row: missing prompt or group, a group smaller than
    ``min_group``, a response that is not text, a rank that is not a whole number >= 1.
    """
    out = []
    for i, row in enumerate(rows):
        where = f"row {i}"
        if not isinstance(row, dict):
            raise RankedDataError(f"{where}: expected an object with 'prompt' and 'group', got {type(row).__name__}")
        if "prompt" not in row:
            raise RankedDataError(f"{where}: no 'prompt' (keys: {', '.join(map(str, row)) or 'none'})")
        group = row.get("group")
        if not isinstance(group, list):
            raise RankedDataError(f"{where}: 'group' must be a list of {{response, rank}} objects")
        if len(group) < min_group:
            raise RankedDataError(f"{where}: a group needs at least {min_group} responses, got {len(group)}")
        responses, ranks = [], []
        for j, item in enumerate(group):
            at = f"{where}, group[{j}]"
            if not isinstance(item, dict) or "response" not in item or "rank" not in item:
                raise RankedDataError(f"{at}: expected {{\"response\": ..., \"rank\": ...}}")
            response, rank = item["response"], item["rank"]
            if not isinstance(response, str):
                raise RankedDataError(f"{at}: response must be text, got {type(response).__name__}")
            if isinstance(rank, bool) or not isinstance(rank, numbers.Real) or not math.isfinite(rank) \
                    or rank != int(rank) or rank < 1:
                raise RankedDataError(f"{at}: rank must be a whole number >= 1 (1 = best), got {rank!r}")
            responses.append(response)
            ranks.append(int(rank))
        extra = {k: v for k, v in row.items() if k not in ("prompt", "group")}
        out.append({"prompt": row["prompt"], "responses": responses, "ranks": ranks, **extra})
    if not out:
        raise RankedDataError("no rows: a ranked-groups file needs at least one {prompt, group} row")
    return out


def load_ranked_file(path: str | Path, *, min_group: int = 2) -> list[dict]:
    """Read a .jsonl (one row per line) or .json (a list of rows) file of ranked groups."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RankedDataError(f"{path}: cannot read: {exc}") from None
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except ValueError as exc:
            raise RankedDataError(f"{path}: invalid JSON: {exc}") from None
        if not isinstance(rows, list):
            raise RankedDataError(f"{path}: expected a list of rows")
    else:
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise RankedDataError(f"{path}: line {n}: invalid JSON: {exc}") from None
    return normalize_ranked_rows(rows, min_group=min_group)


# --------------------------------------------------------------------------- advantages


def rank_scores(ranks: torch.Tensor) -> torch.Tensor:
    """Ranks [G] (1 = best) to scores in [0, 1]: ``s_i = (G − rank_i) / (G − 1)``.

    The best response scores 1, rank G scores 0; ties share a score because they share a
    rank. Gaps in the ranks are kept (ranks 1, 1, 3 score 1, 1, 0). A group of one scores 0.

    Example: ranks [1, 2, 3, 4] → [1, 2/3, 1/3, 0]; ranks [2, 1, 1] → [0.5, 1, 1].
    """
    ranks = ranks.to(torch.float32)
    g = ranks.numel()
    if g < 2:
        return torch.zeros_like(ranks)
    return (g - ranks) / (g - 1)


def rank_advantages(ranks: torch.Tensor, scale_rewards: grpo.ScaleRewards = "group") -> torch.Tensor:
    """Advantages [G] for one ranked group, as GRPO computes them from rewards.

    ``s = rank_scores(ranks)`` (``s_i = (G − rank_i) / (G − 1)``), then the group-relative
    advantage of :func:`engine.grpo.group_advantages`::

        A_i = (s_i − mean(s)) / (std(s) + 1e-4)        (Bessel-corrected std; "none": no division)

    Ties share an advantage; an all-tied group has A = 0. Because the scores are an affine
    map of the ranks, group scaling makes A depend only on the ranks' spacing.

    Example: ranks [1, 2, 3, 4] → s = [1, 2/3, 1/3, 0], mean 0.5, std 0.43033
    → A ≈ [1.16163, 0.38721, −0.38721, −1.16163].
    """
    scores = rank_scores(ranks)
    if scores.numel() < 2:
        return torch.zeros_like(scores)
    mode = "group" if scale_rewards == "batch" else scale_rewards  # one group: batch = group
    advantages, _ = grpo.group_advantages(scores, scores.numel(), mode)
    return advantages


def ranked_advantages(groups: list[list[int]] | list[torch.Tensor], scale_rewards: grpo.ScaleRewards = "group") -> torch.Tensor:
    """Advantages [N] for a batch of ranked groups of any sizes, concatenated in order."""
    parts = [rank_advantages(torch.as_tensor(g), scale_rewards) for g in groups]
    return torch.cat(parts) if parts else torch.zeros(0)


def ranking_accuracy(seq_logps: torch.Tensor, ranks: torch.Tensor) -> float:
    """Share of response pairs with different ranks that the policy orders as the ranks do.

    Over every pair (i, j) with ``rank_i < rank_j`` (i judged better), the pair agrees when
    ``seq_logps_i > seq_logps_j``; equal log-probs do not agree. ``seq_logps`` [G] are the
    responses' sequence log-probabilities under the policy (sum of token log-probs; a
    length-normalised mean works the same way). NaN when every rank is tied.

    Example: ranks [1, 2, 3], logps [−1, −3, −2]: pairs (1,2) ✓, (1,3) ✓, (2,3) ✗ → 2/3.
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
    """Sequence log-probabilities [N] from per-token log-probs [N, T] and the completion mask."""
    return (token_logps * mask.to(token_logps.dtype)).sum(dim=-1)


# --------------------------------------------------------------------------- a rollout from given responses


def ranked_rollout(
    rows: list[dict],
    prompt_ids: list[list[int]],
    tokenizer: Any,
    eos_id: int,
    pad_id: int,
    max_completion_length: int,
    device: torch.device | str = "cpu",
):
    """A :class:`engine.rollout.Rollout` holding the given responses instead of sampled ones.

    ``rows`` are normalised rows, ``prompt_ids`` each row's rendered prompt (the trainer's
    ``PromptRenderer.ids``). Each response is tokenized without special tokens and followed by
    ``eos_id``; one longer than ``max_completion_length`` is cut there and marked truncated.
    Rows are grouped contiguously, a group per prompt, with the groups' own sizes:
    returns ``(rollout, group_sizes)``. ``logprobs`` are zeros (nothing was sampled).
    """
    from engine.rollout import rollout_from_lists

    prompts: list[list[int]] = []
    completions: list[list[int]] = []
    truncated: list[bool] = []
    sizes: list[int] = []
    for row, ids in zip(rows, prompt_ids):
        sizes.append(len(row["responses"]))
        for response in row["responses"]:
            tokens = list(tokenizer(response, add_special_tokens=False)["input_ids"]) + [eos_id]
            cut = len(tokens) > max_completion_length
            prompts.append(list(ids))
            completions.append(tokens[:max_completion_length])
            truncated.append(cut)
    rollout = rollout_from_lists(prompts, completions, truncated, pad_id, device)
    return rollout, sizes
