"""Health alarms: patterns in the step metrics that mean a run is not learning.

Each alarm fires once when its condition starts and can fire again only after it has
cleared, so the events pane gets one line per episode, not one per step.
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Alarm:
    name: str
    message: str
    suggestion: str


@dataclass
class HealthThresholds:
    zero_std_frac: float = 0.8  # share of groups with no reward spread
    zero_std_steps: int = 5
    kl_spike_factor: float = 5.0  # kl above this × its recent median …
    kl_spike_min: float = 0.05  # … and above this absolute value
    entropy_collapse_ratio: float = 0.1  # entropy below this share of its early value
    flat_steps: int = 50  # reward range below flat_tolerance over this many steps
    flat_tolerance: float = 1e-3
    truncated_frac: float = 0.5
    truncated_steps: int = 5


class HealthMonitor:
    """Feed it each step's metrics; it returns the alarms that start at that step."""

    def __init__(self, thresholds: HealthThresholds | None = None) -> None:
        self.t = thresholds or HealthThresholds()
        self.active: set[str] = set()
        self.zero_std_run = 0
        self.truncated_run = 0
        self.kl_window: deque[float] = deque(maxlen=20)
        self.rewards: deque[float] = deque(maxlen=self.t.flat_steps)
        self.entropy_start: list[float] = []

    def observe(self, step: int, m: dict[str, float]) -> list[Alarm]:
        conditions: dict[str, Alarm | None] = {
            "zero_std": self._zero_std(m),
            "kl_spike": self._kl_spike(m),
            "entropy_collapse": self._entropy(m),
            "reward_flat": self._flat(m),
            "truncated": self._truncated(m),
        }
        fired = []
        for name, alarm in conditions.items():
            if alarm is None:
                self.active.discard(name)
            elif name not in self.active:
                self.active.add(name)
                fired.append(alarm)
        return fired

    def _zero_std(self, m):
        # the share of groups, whatever the scaling (TRL's frac_reward_zero_std is 0 or 1 with batch scaling)
        frac = m.get("frac_group_reward_zero_std", 0.0)
        self.zero_std_run = self.zero_std_run + 1 if frac >= self.t.zero_std_frac else 0
        if self.zero_std_run >= self.t.zero_std_steps:
            return Alarm("zero_std", f"{frac:.0%} of groups have zero reward std: almost no learning signal",
                         "make the task harder/easier, raise num_generations or temperature, or use dynamic sampling")
        return None

    def _kl_spike(self, m):
        kl = m.get("kl")
        if kl is None or not math.isfinite(kl):
            return None
        baseline = statistics.median(self.kl_window) if len(self.kl_window) >= 5 else None
        self.kl_window.append(kl)
        if baseline is not None and kl > self.t.kl_spike_min and kl > self.t.kl_spike_factor * max(baseline, 1e-6):
            return Alarm("kl_spike", f"KL spiked to {kl:.3g} ({kl / max(baseline, 1e-6):.0f}× its recent median)",
                         "lower learning_rate or raise beta")
        return None

    def _entropy(self, m):
        ent = m.get("entropy")
        if ent is None or not math.isfinite(ent):
            return None
        if len(self.entropy_start) < 5:
            self.entropy_start.append(ent)
            return None
        start = statistics.mean(self.entropy_start)
        if start > 0 and ent < self.t.entropy_collapse_ratio * start:
            return Alarm("entropy_collapse", f"entropy collapsed to {ent:.3g} (from {start:.3g})",
                         "raise temperature, lower learning_rate, or use epsilon_high (clip-higher)")
        return None

    def _flat(self, m):
        reward = m.get("reward")
        if reward is None or not math.isfinite(reward):
            return None
        self.rewards.append(reward)
        if len(self.rewards) == self.rewards.maxlen and max(self.rewards) - min(self.rewards) < self.t.flat_tolerance:
            return Alarm("reward_flat", f"reward flat at {reward:.3g} for {len(self.rewards)} steps",
                         "check the reward function on a few samples (inspector) or raise learning_rate")
        return None

    def _truncated(self, m):
        frac = m.get("completions/clipped_ratio", 0.0)
        self.truncated_run = self.truncated_run + 1 if frac >= self.t.truncated_frac else 0
        if self.truncated_run >= self.t.truncated_steps:
            return Alarm("truncated", f"{frac:.0%} of completions hit max_completion_length",
                         "raise max_completion_length, add the length reward, or mask_truncated_completions")
        return None
