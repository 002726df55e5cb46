"""What one generation round carries through the step: scored completions, then the batch
the optimizer steps of that round use."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from engine.rollout.backend import Rollout, concat_rollouts, select_rows


@dataclass(kw_only=True)
class Scored:
    """Completions of some prompts with their rewards, before advantages."""

    rollout: Rollout
    rows: list[dict]
    completions: list[str]
    rewards_total: torch.Tensor  # [N]
    rewards_per_func: torch.Tensor  # [N, F]
    keep: torch.Tensor  # [N / G] bool: the group has reward spread
    stats: dict[str, float] = field(default_factory=dict)  # how the round was gathered (dynamic sampling)
    ranks: list[list[int]] | None = None  # ranked groups: each group's given ranks, which set its advantages
    extra: dict[str, list] = field(default_factory=dict)  # reward functions' log_extra columns, one value a row
    episodes: list[dict] | None = None  # per row of a tool run: {"turns": [...], "episode": {...}} (samples.jsonl)


def merge_scored(parts: list[Scored], n_groups: int, g: int, pad_id: int, prefer_signal: bool) -> Scored:
    """``n_groups`` groups out of several scored parts: groups with reward spread first when
    ``prefer_signal`` (dynamic sampling), then the others to fill the round."""
    if len(parts) == 1 and not prefer_signal:
        return parts[0]
    rollout = concat_rollouts([p.rollout for p in parts], pad_id)
    keep = torch.cat([p.keep for p in parts])
    order = torch.cat([torch.nonzero(keep).squeeze(1), torch.nonzero(~keep).squeeze(1)]) if prefer_signal \
        else torch.arange(keep.numel())
    groups = order[:n_groups]
    rows_idx = (groups[:, None] * g + torch.arange(g)).reshape(-1)
    all_rows = [r for p in parts for r in p.rows]
    all_completions = [c for p in parts for c in p.completions]
    idx = rows_idx.tolist()
    extra = {}
    for column in dict.fromkeys(c for p in parts for c in p.extra):
        values = [v for p in parts for v in p.extra.get(column, [None] * len(p.rows))]
        extra[column] = [values[i] for i in idx]
    episodes = None
    if any(p.episodes is not None for p in parts):
        every = [e for p in parts for e in (p.episodes or [None] * len(p.rows))]
        episodes = [every[i] for i in idx]
    return Scored(
        episodes=episodes,
        rollout=select_rows(rollout, rows_idx.to(rollout.prompt_ids.device)),
        rows=[all_rows[i] for i in idx],
        completions=[all_completions[i] for i in idx],
        rewards_total=torch.cat([p.rewards_total for p in parts])[rows_idx],
        rewards_per_func=torch.cat([p.rewards_per_func for p in parts])[rows_idx],
        keep=keep[groups],
        extra=extra,
    )


@dataclass(kw_only=True)
class Batch:
    """One generation round, kept for the optimizer steps that use it (steps_per_generation × μ)."""

    rollout: Rollout
    rows: list[dict]
    advantages: torch.Tensor  # [N]
    mask: torch.Tensor  # [N, T] completion mask after truncation masking
    old_logps: torch.Tensor | None  # [N, T] when μ > 1
    ref_logps: torch.Tensor | None  # [N, T] when β > 0
    stats: dict[str, float]
    rewards_total: torch.Tensor
    rewards_per_func: torch.Tensor
    completions: list[str]
    token_logps: torch.Tensor  # [N, T] filled by the updates, for the inspector
    token_entropy: torch.Tensor  # [N, T]
    extra: dict[str, list] = field(default_factory=dict)  # reward functions' log_extra columns, one value a row
    episodes: list[dict] | None = None  # per row of a tool run: {"turns": [...], "episode": {...}}

    def select(self, index: torch.Tensor) -> "Batch":
        """The rows ``index`` of this batch, in that order."""
        def pick(x):
            return None if x is None else x[index.to(x.device)]
        idx = index.tolist()
        return Batch(
            rollout=select_rows(self.rollout, index.to(self.rollout.prompt_ids.device)),
            rows=[self.rows[i] for i in idx],
            advantages=pick(self.advantages),
            mask=pick(self.mask),
            old_logps=pick(self.old_logps),
            ref_logps=pick(self.ref_logps),
            stats=self.stats,
            rewards_total=pick(self.rewards_total),
            rewards_per_func=pick(self.rewards_per_func),
            completions=[self.completions[i] for i in idx],
            token_logps=pick(self.token_logps),
            token_entropy=pick(self.token_entropy),
            extra={column: [values[i] for i in idx] for column, values in self.extra.items()},
            episodes=None if self.episodes is None else [self.episodes[i] for i in idx],
        )
