"""One episode turn by turn, for the group inspector.

What an engineer asks of an episode is what the model did at each turn: what it wrote
(coloured token by token as any completion is, by log-prob, entropy or advantage), which
tool it called with which arguments, what the tool answered, and where it went wrong. So
each turn is a block of its own with a bar down its left side: assistant turns a solid bar
in the primary colour, tool results a dashed one in the secondary colour, on a muted
background, labelled
"not trained on" (their tokens have no log-prob: the model only reads them), failed calls
and malformed calls in the error colour. A summary line above says the episode's counts,
how it stopped and what its environment paid.

:func:`episode_blocks` is pure (completion in, ``(kind, Content)`` blocks out);
:class:`EpisodeView` shows them, reusing its blocks as the selection moves.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Static

from grpo_tui.widgets.episode import FAILED, CALLS, call_text, summary
from grpo_tui.widgets.samples import fmt_num, short
from grpo_tui.widgets.tokens import colour_tokens, display_token

MAX_TURNS = 200  # blocks beyond are counted, not drawn
MAX_TOOL_TOKENS = 400  # of one tool result; a long web page need not fill the pane
STOP_WORDS = {"answer": "answered", "tool_limit": "tool limit", "length": "max length", "parse_error": "parse error",
              "env_error": "environment failed"}
Block = tuple[str, Content]


def _plural(n: object, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def summary_line(comp: dict, env_rewards: Iterable[str] = ()) -> Content:
    """``1 call · 1 failed · 2 turns · 33 tool tokens · stop: answered · CalculatorEnv 0.00``: short,
    so that it takes two lines of the inspector's pane at 80 columns."""
    info = summary(comp)
    stop = str(info["stop"])
    stop_style = {"parse_error": "bold $error", "env_error": "bold $error", "tool_limit": "bold $warning",
                  "length": "bold $warning"}.get(stop, "")
    parts: list = [
        (_plural(info["calls"], "call"), "bold"),
        " · ", (f"{info['failures']} failed", "bold $error" if info["failures"] else ""),
        " · ", _plural(info["turns"], "turn"),
        " · ", (f"{info['masked_tokens']} tool tokens", "$text-muted"),
        " · stop: ", (STOP_WORDS.get(stop, stop), stop_style),
    ]
    rewards = comp.get("rewards") or {}
    for name in env_rewards:
        parts += [" · ", (name, "bold"), f" {fmt_num(rewards.get(name), '.2f')}"]
    why = (comp.get("episode") or {}).get("error")
    if why:  # the environment could not start this episode (its reset raised)
        parts += ["\n", (str(why), "$error")]
    return Content.assemble(*parts)


def _slice(comp: dict, start: int, end: int) -> dict:
    """The part of a completion from token ``start`` to ``end``, for :func:`colour_tokens`."""
    return {"tokens": (comp.get("tokens") or [])[start:end], "logprobs": (comp.get("logprobs") or [])[start:end],
            "entropy": (comp.get("entropy") or [])[start:end], "advantage": comp.get("advantage")}


def _range(turn: dict) -> tuple[int, int]:
    start, end = turn.get("start"), turn.get("end")
    if not isinstance(start, int) or not isinstance(end, int):
        return 0, 0
    return max(0, start), max(0, end)


def assistant_block(comp: dict, turn: dict, number: int, last: bool, mode: str, theme: Mapping[str, str]) -> Block:
    start, end = _range(turn)
    calls = turn.get("tool_calls") or []
    error = turn.get("parse_error")
    label: list = [(f"assistant {number}", "bold")]
    if error:
        label += [" · ", (f"{FAILED} parse error", "bold $error")]
    elif calls:
        label += [" · ", (f"{CALLS} {_plural(len(calls), 'call')}", "$accent")]
    elif last and summary(comp)["stop"] == "length":
        label += [" · ", ("✂ max length", "bold $warning")]
    elif last:
        label += [" · ", ("answer", "$success")]
    label.append((f" · {_plural(end - start, 'token')}", "$text-muted"))  # last: where a narrow pane wraps
    body = colour_tokens(_slice(comp, start, end), mode, theme) if end > start else Content.styled("(no tokens)", "$text-muted")
    lines = [Content.assemble(*label), body]
    for call in calls:
        lines.append(Content.assemble((f"{CALLS} ", "$accent"), (call_text(call), "bold")))
    if error:
        lines.append(Content.styled(f"{FAILED} parse error: {error}", "$error"))
    return ("error" if error else "assistant"), Content("\n").join(lines)


def tool_block(comp: dict, turn: dict) -> Block:
    start, end = _range(turn)
    error = turn.get("error")
    name = str(turn.get("name") or "?")
    if error is not None:
        outcome = (f" {FAILED} {error}", "bold $error")
    else:
        outcome = (f" → {short(str(turn.get('content') or ''), 40)}", "")
    label = Content.assemble(("tool ", "bold"), (name, "bold"), outcome, (" · not trained on", "italic $text-muted"))
    tokens = (comp.get("tokens") or [])[start:end]
    text = "".join(display_token(t) for t in tokens[:MAX_TOOL_TOKENS])
    if len(tokens) > MAX_TOOL_TOKENS:
        text += f" … {len(tokens) - MAX_TOOL_TOKENS} more tokens"
    body = Content.styled(text or str(turn.get("content") or ""), "$text-muted")
    return ("tool-error" if error is not None else "tool"), Content("\n").join([label, body])


def episode_blocks(comp: dict, mode: str, theme: Mapping[str, str], env_rewards: Iterable[str] = ()) -> list[Block]:
    """The summary line, then one block per turn (assistant turns numbered), in order."""
    blocks: list[Block] = [("summary", summary_line(comp, env_rewards))]
    turns = [t for t in comp.get("turns") or [] if isinstance(t, dict)]
    number = 0
    for i, turn in enumerate(turns[:MAX_TURNS]):
        if turn.get("role") == "tool":
            blocks.append(tool_block(comp, turn))
        else:
            number += 1
            blocks.append(assistant_block(comp, turn, number, i == len(turns) - 1, mode, theme))
    if len(turns) > MAX_TURNS:
        blocks.append(("summary", Content.styled(f"… {len(turns) - MAX_TURNS} more turns", "$text-muted")))
    return blocks


class EpisodeView(Vertical):
    """An episode's blocks, one Static each, styled by kind (see the module docstring)."""

    DEFAULT_CSS = """
    EpisodeView { height: auto; margin-bottom: 1; }
    EpisodeView > Static { height: auto; width: 1fr; }
    EpisodeView > .-summary { margin-bottom: 1; }
    EpisodeView > .-assistant { border-left: outer $primary; padding-left: 1; }
    EpisodeView > .-error { border-left: outer $error; padding-left: 1; }
    EpisodeView > .-tool { border-left: dashed $secondary; padding-left: 1; background: $boost; }
    EpisodeView > .-tool-error { border-left: dashed $error; padding-left: 1; background: $boost; }
    """

    def show(self, blocks: list[Block]) -> None:
        shown = list(self.children)
        for i, (kind, content) in enumerate(blocks):
            classes = f"turn -{kind}"
            if i < len(shown):
                widget = shown[i]
                widget.set_classes(classes)
                widget.update(content)
                widget.display = True
            else:
                self.mount(Static(content, classes=classes))
        for widget in shown[len(blocks):]:
            widget.display = False

    def blocks(self) -> list[Static]:
        """The blocks shown now (for tests and the token table's neighbours)."""
        return [w for w in self.children if isinstance(w, Static) and w.display]
