"""Learning-rate schedules with warmup, as multipliers of the base learning rate."""

from __future__ import annotations

import math
from typing import Callable


def warmup_steps(cfg) -> int:
    """``warmup_steps`` when set, else ``ceil(warmup_ratio · max_steps)`` (transformers' rule)."""
    if cfg.warmup_steps:
        return int(cfg.warmup_steps)
    return math.ceil(cfg.warmup_ratio * cfg.max_steps)


def lr_lambda(cfg) -> Callable[[int], float]:
    """Multiplier at optimizer step s (0-based): linear warmup to 1, then the schedule.

    constant: 1 (warmup ignored, as transformers) · constant_with_warmup: 1 after warmup ·
    linear: 1 → 0 at max_steps · cosine: ½(1 + cos(π·progress)).
    """
    kind, total, warm = cfg.lr_scheduler_type, max(1, cfg.max_steps), warmup_steps(cfg)

    def factor(step: int) -> float:
        if kind == "constant":
            return 1.0
        if step < warm:
            return step / warm
        if kind == "constant_with_warmup":
            return 1.0
        progress = (step - warm) / max(1, total - warm)
        if kind == "linear":
            return max(0.0, 1.0 - progress)
        if kind == "cosine":
            return max(0.0, 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0))))
        raise ValueError(f"unknown lr_scheduler_type {kind!r}")

    return factor
