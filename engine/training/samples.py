"""The sampled groups a step writes to samples.jsonl: what the sample pane and inspector show."""

from __future__ import annotations

import math

import torch


def _num(x: float) -> float | None:
    return None if x is None or math.isnan(x) or math.isinf(x) else round(float(x), 5)


def _cell(value):
    """A log_extra value as JSON keeps it: numbers, text, booleans and null as they are; other
    objects (a parsed expression, a list) as their text."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return _num(value)
    return str(value)


def _model_only(values: list, env_mask: list[list[int]] | None, row: int) -> list:
    """Per-token values with None where an episode's tool or environment wrote the token (it
    has no log-prob of the model's, and is not trained on)."""
    if env_mask is None:
        return values
    return [v if env_mask[row][t] else None for t, v in enumerate(values)]


def sample_groups(batch, tokenizer, reward_names: list[str], num_generations: int, max_groups: int,
                  token_logps: torch.Tensor, token_entropy: torch.Tensor) -> list[dict]:
    """The first ``max_groups`` groups of a batch with per-completion rewards and token arrays.

    Each completion carries its tokens (as text pieces), the policy's log-prob of each token
    and the entropy at each position, so the inspector can colour them without the model.
    A completion that no reward function scored (they failed, or gave None) has ``reward``
    null and advantage 0, and is left out of its group's mean and std; a group with none
    scored has a null mean and std. Columns that reward functions added with ``log_extra``
    are each completion's ``extra``. An episode of a tool run also carries its ``turns`` (token
    ranges of each assistant turn and tool result) and an ``episode`` summary.
    """
    extra = getattr(batch, "extra", None) or {}
    episodes = getattr(batch, "episodes", None)
    rollout = batch.rollout
    env_mask = rollout.env_mask.tolist() if rollout.env_mask is not None else None
    n_groups = min(max_groups, rollout.completion_ids.size(0) // num_generations)
    names = reward_names
    ids_all = rollout.completion_ids.tolist()
    lengths = rollout.lengths.tolist()
    groups = []
    for g in range(n_groups):
        rows = range(g * num_generations, (g + 1) * num_generations)
        first = batch.rows[rows[0]]
        completions = []
        scored = [i for i in rows if not bool(torch.isnan(batch.rewards_per_func[i]).all())]
        for i in rows:
            n = int(lengths[i])
            ids = ids_all[i][:n]
            completions.append({
                "text": batch.completions[i],
                "reward": _num(float(batch.rewards_total[i])) if i in scored else None,
                "rewards": {name: _num(float(batch.rewards_per_func[i, j])) for j, name in enumerate(names)},
                "advantage": _num(float(batch.advantages[i])),
                "length": n,
                "truncated": bool(rollout.truncated[i]),
                "tokens": [tokenizer.decode([t]) for t in ids],
                "logprobs": _model_only([_num(v) for v in token_logps[i, :n].tolist()], env_mask, i),
                "entropy": _model_only([_num(v) for v in token_entropy[i, :n].tolist()], env_mask, i),
            })
            if episodes is not None and episodes[i] is not None:
                completions[-1]["turns"] = episodes[i]["turns"]
                completions[-1]["episode"] = episodes[i]["episode"]
            if extra:
                completions[-1]["extra"] = {column: _cell(values[i]) for column, values in extra.items()}
        rewards = batch.rewards_total[scored]  # the baseline its advantages were computed from
        group = {
            "prompt": first["prompt"] if isinstance(first["prompt"], str) else first["prompt"][-1].get("content", ""),
            "completions": completions,
            "reward_mean": _num(float(rewards.mean())) if scored else None,
            "reward_std": (_num(float(rewards.std())) if rewards.numel() > 1 else 0.0) if scored else None,
        }
        if "answer" in first:
            group["answer"] = str(first["answer"])
        groups.append(group)
    return groups
