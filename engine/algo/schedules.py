"""The warm-up length of a learning-rate schedule (the schedules themselves are transformers':
``engine.training.optimizers.make_scheduler``)."""

from __future__ import annotations

import math


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
