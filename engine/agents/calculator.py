"""The built-in calculator environment: one tool, `add`, for "347+589=" problems.

An environment follows TRL 1.16's `environment_factory` contract, so the same class works
here and in `trl.GRPOTrainer(environment_factory=...)`. The engine makes one instance per
episode slot and, for each episode:

  1. calls `reset(**row)` with the dataset row's columns (`prompt`, `answer`, ...): store
     what the episode is about; return None (or a string, which TRL appends to the prompt);
  2. offers every *public* method except `reset` and `get_reward` to the model as a tool:
     its JSON schema comes from the type hints and the Google-style docstring (`Args:`,
     `Returns:`) via `transformers.utils.get_json_schema`, and a call runs the method with
     the model's arguments; what it returns is shown to the model as the tool message, and
     what it raises is shown as {"error": "..."};
  3. calls `get_reward()` when the episode ends; its value is logged as
     `rewards/<ClassName>/mean` and added to the episode's reward like any reward function.

To write your own, copy this shape: keep helpers private (a leading underscore), give each
tool method type hints and an `Args:`/`Returns:` docstring, and keep per-episode state on
`self`, cleared in `reset`.

This one rewards *using the tool well*: 1.0 when `add` was called with exactly the
problem's two operands (either order), so the share of episodes that use the calculator
correctly can be watched and trained apart from whether the final answer is right (the
task's `accuracy` reward checks that).
"""

from __future__ import annotations

import re
from typing import Any

_PROBLEM = re.compile(r"^\s*(\d+)\s*\+\s*(\d+)\s*=\s*$")


def _prompt_text(prompt: Any) -> str:
    """A plain prompt, or the last user message's content of a conversational one."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, (list, tuple)):
        users = [m for m in prompt if isinstance(m, dict) and m.get("role") == "user"]
        return str(users[-1].get("content") or "") if users else ""
    return ""


class CalculatorEnv:
    """A calculator with one tool, `add`; rewards calling it with the problem's operands."""

    def __init__(self) -> None:
        self._operands: tuple[int, int] | None = None
        self._calls: list[tuple[int, int]] = []

    def reset(self, **row: Any) -> None:
        """Start an episode on `row["prompt"]` ("347+589=", or a message list ending with it)."""
        match = _PROBLEM.match(_prompt_text(row.get("prompt")))
        self._operands = (int(match.group(1)), int(match.group(2))) if match else None
        self._calls = []

    def add(self, a: int, b: int) -> int:
        """Add two integers.

        Args:
            a: The first number.
            b: The second number.

        Returns:
            The sum of a and b.
        """
        for name, value in (("a", a), ("b", b)):
            # JSON gives bools and strings too; "347" + "589" must not quietly concatenate.
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an integer, got {value!r}")
        self._calls.append((a, b))
        return a + b

    def get_reward(self) -> float:
        """1.0 if `add` was called with exactly the problem's two operands (either order), else 0.0."""
        if self._operands is None:
            return 0.0
        want = sorted(self._operands)
        return 1.0 if any(sorted(call) == want for call in self._calls) else 0.0
