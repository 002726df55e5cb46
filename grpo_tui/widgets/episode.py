"""An episode of a run with tools, read from its samples.jsonl record: its shape in a few
marks, its final answer, which tokens the model wrote and which a tool did.

A completion of a tool run is a whole multi-turn episode (assistant turns, tool results,
assistant turns…) decoded into one ``text``; a list line that printed that text would show
the first tool call's JSON, not what the model concluded. So a line shows the episode's
shape (``⚒2`` calls, ``✗1`` failed calls, ``⁉`` a malformed call ended it, ``↻`` the tool
rounds ran out) and then the final answer. Pure functions: dicts in, strings and parts out.
A completion without ``turns`` is not an episode and none of this applies to it.
"""

from __future__ import annotations

import json
from typing import Any

CALLS = "⚒"
FAILED = "✗"
PARSE_ERROR = "⁉"
TOOL_LIMIT = "↻"
STOPS = {  # the episode's stop reason, as a list line says it when there is no final answer
    "parse_error": "parse error",
    "tool_limit": "tool limit",
    "length": "max length",
    "env_error": "environment failed",
}
Part = tuple[str, str] | str


def is_episode(comp: dict) -> bool:
    """Whether the completion is a multi-turn episode (it has turns)."""
    turns = comp.get("turns")
    return isinstance(turns, list) and bool(turns)


def summary(comp: dict) -> dict[str, Any]:
    """The episode's summary: the engine's ``episode`` record, its missing counts taken from the turns.

    >>> summary({"turns": [{"role": "assistant", "start": 0, "end": 3, "tool_calls": [{"name": "add"}]},
    ...                    {"role": "tool", "start": 3, "end": 5, "error": "ValueError: x"},
    ...                    {"role": "assistant", "start": 5, "end": 6}]})
    {'calls': 1, 'failures': 1, 'turns': 2, 'masked_tokens': 2, 'stop': 'answer'}
    """
    turns = [t for t in comp.get("turns") or [] if isinstance(t, dict)]
    tools = [t for t in turns if t.get("role") == "tool"]
    parsed = any(t.get("parse_error") for t in turns)
    derived = {
        "calls": len(tools),
        "failures": sum(t.get("error") is not None for t in tools),
        "turns": sum(t.get("role") == "assistant" for t in turns),
        "masked_tokens": sum(_span(t) for t in tools),
        "stop": "parse_error" if parsed else ("length" if comp.get("truncated") else "answer"),
    }
    given = comp.get("episode") if isinstance(comp.get("episode"), dict) else {}
    return {key: given.get(key, value) for key, value in derived.items()}


def _span(turn: dict) -> int:
    start, end = turn.get("start"), turn.get("end")
    return end - start if isinstance(start, int) and isinstance(end, int) and end > start else 0


def final_answer(comp: dict) -> str | None:
    """The content of the episode's last turn when that is an assistant turn that called no
    tool and parsed, else None (the episode ended on a call, a tool result or a parse error).

    >>> final_answer({"turns": [{"role": "assistant", "tool_calls": [{"name": "add"}]},
    ...                         {"role": "tool", "content": "936"}, {"role": "assistant", "content": " 936\\n"}]})
    '936'
    >>> final_answer({"turns": [{"role": "assistant", "tool_calls": [{"name": "add"}]}, {"role": "tool"}]}) is None
    True
    """
    turns = comp.get("turns") or []
    last = turns[-1] if turns and isinstance(turns[-1], dict) else {}
    if last.get("role") != "assistant" or last.get("tool_calls") or last.get("parse_error"):
        return None
    return str(last.get("content") or "").strip()


def shape(comp: dict) -> list[Part]:
    """The marks before an episode's text: calls, failed calls, and how it stopped if not by an answer.

    >>> shape({"turns": [{"role": "assistant"}], "episode": {"calls": 2, "failures": 1, "stop": "tool_limit"}})
    [('⚒2', '$accent'), ('✗1', 'bold $error'), ('↻', 'bold $warning')]
    """
    info = summary(comp)
    calls, failures = info["calls"], info["failures"]
    parts: list[Part] = [(f"{CALLS}{calls}", "$accent" if calls else "$text-muted")]
    if failures:
        parts.append((f"{FAILED}{failures}", "bold $error"))
    if info["stop"] == "parse_error":
        parts.append((PARSE_ERROR, "bold $error"))
    elif info["stop"] == "tool_limit":
        parts.append((TOOL_LIMIT, "bold $warning"))
    return parts


def answer_part(comp: dict) -> Part:
    """The final answer, or (muted) why the episode has none."""
    answer = final_answer(comp)
    if answer is not None:
        return answer
    stop = summary(comp)["stop"]
    return (f"({STOPS.get(stop, 'no answer')})", "$error" if stop == "parse_error" else "$text-muted")


def call_text(call: Any) -> str:
    """A tool call as a reader writes one.

    >>> call_text({"name": "add", "arguments": {"a": 347, "b": "5"}})
    'add(a=347, b="5")'
    """
    if not isinstance(call, dict):
        return str(call)
    args = call.get("arguments")
    if isinstance(args, dict):
        inner = ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in args.items())
    else:
        inner = "" if args is None else json.dumps(args, ensure_ascii=False)
    return f"{call.get('name', '?')}({inner})"


def tool_tokens(comp: dict) -> list[bool]:
    """Per token, whether a tool's result wrote it (those are not trained on).

    >>> tool_tokens({"tokens": list("ab93x"), "turns": [{"role": "assistant", "start": 0, "end": 2},
    ...              {"role": "tool", "start": 2, "end": 4}, {"role": "assistant", "start": 4, "end": 5}]})
    [False, False, True, True, False]
    """
    mask = [False] * len(comp.get("tokens") or [])
    for turn in comp.get("turns") or []:
        if isinstance(turn, dict) and turn.get("role") == "tool":
            start, end = turn.get("start"), turn.get("end")
            if isinstance(start, int) and isinstance(end, int):
                for i in range(max(0, start), min(end, len(mask))):
                    mask[i] = True
    return mask


def environment_rewards(config: dict | None, rewards: dict) -> list[str]:
    """The reward columns an environment wrote (named after its class): those matching the
    class of ``environment`` or of an ``environments`` entry in the run's config; a built-in
    named in lower case ("calculator") matches the class that starts with it.

    >>> environment_rewards({"environment": "calculator"}, {"accuracy": 1.0, "CalculatorEnv": 0.5})
    ['CalculatorEnv']
    >>> environment_rewards({"environments": {"m": "envs/maze.py:MazeEnv"}}, {"MazeEnv": 1.0, "format": 0.0})
    ['MazeEnv']
    """
    config = config or {}
    specs = [config.get("environment")] + list((config.get("environments") or {}).values())
    names = [s.rsplit(":", 1)[-1].rsplit(".", 1)[-1].lower() for s in specs if isinstance(s, str) and s]
    return [key for key in rewards if any(key.lower() == n or key.lower().startswith(n) for n in names)]
