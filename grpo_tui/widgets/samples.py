"""The sample completions pane: the latest step's groups, one line per completion.

Each completion shows its advantage (coloured by sign), total reward, the per-function
rewards and its text; truncated completions are marked with ✂. An episode of a run with
tools shows its shape (``⚒2`` tool calls, ``✗`` failed calls, ``⁉`` a malformed call,
``↻`` the tool limit: see :mod:`grpo_tui.widgets.episode`) and its final answer instead of
the whole transcript. Colours are theme variables, so every Textual theme works. A reward that is missing (its function failed or
gave None) shows as ``—``, never as 0.
"""

from __future__ import annotations

import time

from textual.content import Content

from grpo_tui.model.run_model import RunModel
from grpo_tui.widgets.episode import answer_part, is_episode, shape
from grpo_tui.widgets.fixed_body import FixedHeightBody

FAST_STEPS_S = 1.0
"""While steps come faster than this, the samples pane shows a new step at most this often."""
clock = time.monotonic

TRUNCATED = "✂"
Part = tuple[str, str] | str


def short(text: str, width: int) -> str:
    """One line of at most ``width`` characters, newlines made visible."""
    text = text.replace("\n", "⏎")
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def fmt_num(value: object, spec: str = "+.2f") -> str:
    if isinstance(value, (int, float)) and value == value:  # not NaN
        return format(value, spec)
    return "—"


def completion_reward(comp: dict) -> float | None:
    """A completion's total reward, or None when no reward function scored it: its
    per-function rewards are all missing (files written before the engine wrote a missing
    total as null hold the 0.0 of an empty sum there)."""
    per = comp.get("rewards")
    if isinstance(per, dict) and per and all(not isinstance(v, (int, float)) for v in per.values()):
        return None
    reward = comp.get("reward")
    return reward if isinstance(reward, (int, float)) else None


def sign_style(value: object) -> str:
    if isinstance(value, (int, float)) and value > 0:
        return "$success"
    if isinstance(value, (int, float)) and value < 0:
        return "$error"
    return "$text-muted"


def group_header(index: int, group: dict, width: int) -> list[Part]:
    comps = group.get("completions") or []
    rewards = [r for r in map(completion_reward, comps) if r is not None]
    mean = sum(rewards) / len(rewards) if rewards else float("nan")
    parts: list[Part] = [(f"#{index + 1} ", "bold"), (short(str(group.get("prompt", "")), max(10, width // 2)), "bold")]
    if group.get("answer") is not None:
        parts.append((f" → {group.get('answer')}", "$accent"))
    std = group.get("reward_std") if rewards else None
    parts.append((f"  mean {fmt_num(mean, '.2f')}  std {fmt_num(std, '.2f')}", "$text-muted"))
    return parts


def completion_line(comp: dict, width: int) -> list[Part]:
    adv = comp.get("advantage")
    parts: list[Part] = ["  ", (f"{fmt_num(adv):>6}", f"bold {sign_style(adv)}"), f" {fmt_num(completion_reward(comp), '5.2f'):>5}"]
    used = 2 + 6 + 6
    per = comp.get("rewards") or {}
    if len(per) > 1:
        label = " [" + " ".join(f"{k[:4]} {fmt_num(v, '.1f')}" for k, v in per.items()) + "]"
        parts.append((label, "$text-muted"))
        used += len(label)
    parts.append(" ")
    used += 1
    if comp.get("truncated"):
        parts.append((TRUNCATED, "bold $warning"))
        used += 1
    parts.extend(text_parts(comp, max(8, width - used)))
    return parts


def text_parts(comp: dict, width: int) -> list[Part]:
    """A completion's text in one line of ``width`` cells; for an episode its shape and its
    final answer (the transcript is the inspector's to show)."""
    if not is_episode(comp):
        return [short(str(comp.get("text", "")), width)]
    parts = shape(comp)
    used = sum(len(text) for text, _ in parts) + 1
    answer = answer_part(comp)
    text, style = (answer, "") if isinstance(answer, str) else answer
    return [*parts, " ", (short(text, max(1, width - used)), style)]


def render_groups(record: dict | None, width: int) -> Content:
    """Content for one samples.jsonl record."""
    if not record:
        return Content.styled("waiting for the first step's samples…", "$text-muted")
    groups = record.get("groups") or []
    parts: list[Part] = [(f"step {record.get('step')}", "bold"), (f"  {len(groups)} groups", "$text-muted")]
    for gi, group in enumerate(groups):
        parts.append("\n")
        parts.extend(group_header(gi, group, width))
        for comp in group.get("completions") or []:
            parts.append("\n")
            parts.extend(completion_line(comp, width))
    return Content.assemble(*parts)


class SamplesPane(FixedHeightBody, can_focus=True):
    """Scrollable view of the latest step's sampled groups."""

    DEFAULT_CSS = """
    SamplesPane { height: 1fr; }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._key: tuple | None = None

    def update_from(self, model: RunModel) -> None:
        """Show the latest step's groups: at once when the pane's width changed or the run's
        steps are slow, at most every :data:`FAST_STEPS_S` while steps come faster (the tiny
        model makes ~14 a second: a pane of text composited at each tick costs training more
        than a reader gains)."""
        record = model.latest_samples()
        key = (id(record), self.size.width)
        if key == self._key or self.size.width == 0:
            return
        now = clock()
        if self._key is not None and key[1] == self._key[1] and now - self._shown_at < FAST_STEPS_S:
            return
        self._key, self._shown_at = key, now
        self.show(render_groups(record, self.size.width - 2), self.size.width - 2)

    _shown_at = 0.0
