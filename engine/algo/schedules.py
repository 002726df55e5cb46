"""Learning-rate schedules with warmup, as multipliers of the base learning rate."""

from __future__ import annotations

import math
from typing import Callable


def warmup_steps(cfg) -> int:
    """``warmup_steps`` when set, else ``ceil(warmup_ratio · max_steps)`` (transformers' rule).

    Example: a ratio of .05 of 50 steps → ceil(2.5) = 3 warmup steps::

        >>> from types import SimpleNamespace
        >>> warmup_steps(SimpleNamespace(warmup_steps=0, warmup_ratio=0.05, max_steps=50))
        3
    """
    if cfg.warmup_steps:
        return int(cfg.warmup_steps)
    return math.ceil(cfg.warmup_ratio * cfg.max_steps)


def lr_lambda(cfg) -> Callable[[int], float]:
    """Multiplier at optimizer step s (0-based): linear warmup to 1, then the schedule.

    With W warmup steps and S = ``max_steps``, ``progress = (s − W) / (S − W)``:
    constant: 1 (warmup ignored, as transformers) · otherwise s / W while s < W, then
    constant_with_warmup: 1 · linear: ``max(0, 1 − progress)`` · cosine: ``½(1 + cos(π·progress))``.

    Example: 10 steps, 2 of warmup; cosine is ½ halfway through the 8 after warmup (step 6)::

        >>> from types import SimpleNamespace
        >>> cfg = SimpleNamespace(lr_scheduler_type="cosine", max_steps=10, warmup_steps=2, warmup_ratio=0.0)
        >>> [round(lr_lambda(cfg)(s), 4) for s in range(11)]
        [0.0, 0.5, 1.0, 0.9619, 0.8536, 0.6913, 0.5, 0.3087, 0.1464, 0.0381, 0.0]
        >>> cfg.lr_scheduler_type = "linear"
        >>> [round(lr_lambda(cfg)(s), 4) for s in (0, 1, 2, 6, 10)]
        [0.0, 0.5, 1.0, 0.5, 0.0]
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
