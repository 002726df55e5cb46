r"""Search the sampled completions of every step: by text or regex, and by ranges of reward,
advantage, length and step.

A query is one line, as an ML engineer would type it into a search box::

    reward>0.5 adv<0 len>=100 the answer is      text, with filters
    /\\boxed\{-?\d+\}/ step>=200                 a regex between slashes
    reward=0 adv!=0                               filters only

Filters are ``FIELD OP NUMBER`` words (fields: ``reward``, ``adv``/``advantage``,
``len``/``length``, ``step``; ops: ``> >= < <= = !=``); two bounds on one field make a
range. What remains is the text, matched in completion texts, case-insensitive unless it
holds a capital letter (like ``less`` and vim's smartcase). A text between slashes is a
regular expression.

samples.jsonl can be hundreds of MB, so :func:`scan` streams it one step (line) at a time,
skips a line by its ``"step"`` prefix when a step filter rules it out, and skips parsing a
line whose raw bytes cannot hold the text. Pure Python, no Textual: the inspector runs it in
a worker thread and can stop it between any two lines.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from engine.run.jsonl import parse_record

FIELDS = {"reward": "reward", "adv": "advantage", "advantage": "advantage", "len": "length", "length": "length",
          "step": "step"}
OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, "<=": operator.le, "!=": operator.ne, "==": operator.eq,
    ">": operator.gt, "<": operator.lt, "=": operator.eq,
}
MAX_HITS = 5000  # enough to browse; a broad filter on a huge run stops here and says so
_FILTER = re.compile(r"(?<!\S)(" + "|".join(FIELDS) + r")(>=|<=|!=|==|>|<|=)(\S*)(?!\S)", re.IGNORECASE)
_STEP_PREFIX = re.compile(rb'^\{\s*"step"\s*:\s*(\d+)')
_UNSAFE = re.compile(r'["\\\x00-\x1f]')  # characters JSON may write escaped


class QueryError(ValueError):
    """A query the user typed that cannot run; its message says why in one line."""


@dataclass(frozen=True)
class Condition:
    field: str  # reward | advantage | length | step
    op: str
    value: float

    def holds(self, value: object) -> bool:
        """A missing or non-numeric value satisfies no condition."""
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
            return False
        return OPS[self.op](value, self.value)

    def __str__(self) -> str:
        return f"{self.field}{self.op}{self.value:g}"


@dataclass(frozen=True)
class SampleQuery:
    text: str = ""
    pattern: re.Pattern[str] | None = None
    conditions: tuple[Condition, ...] = ()
    raw_needle: bytes | None = None  # bytes every line holding a text match must contain
    fold_case: bool = False

    def __str__(self) -> str:
        return " ".join([f'"{self.text}"'] * bool(self.text) + [str(c) for c in self.conditions])

    def steps_allowed(self, step: int) -> bool:
        return all(c.holds(step) for c in self.conditions if c.field == "step")

    def may_hold(self, raw: bytes) -> bool:
        """False when this line of samples.jsonl cannot hold a text match (so it need not be parsed)."""
        if self.raw_needle is None:
            return True
        return self.raw_needle in (raw.lower() if self.fold_case else raw)


@dataclass(frozen=True)
class Hit:
    """One matching completion: where it is (step; group and completion, 0-based) and the
    character spans of the text match in its text (empty for a filters-only query)."""

    step: int
    group: int
    completion: int
    spans: tuple[tuple[int, int], ...] = ()


def parse_query(line: str) -> SampleQuery:
    """The query in ``line``; :class:`QueryError` for an empty line, a bad number or a bad regex."""
    conditions: list[Condition] = []
    for m in _FILTER.finditer(line):
        field, op, value = FIELDS[m.group(1).lower()], m.group(2), m.group(3)
        try:
            number = float(value)
        except ValueError:
            raise QueryError(f"{m.group(0)}: expected a number after {op!r} (e.g. {m.group(1)}{op}0.5)") from None
        conditions.append(Condition(field, op, number))
    text = _FILTER.sub("", line).strip()
    if not text and not conditions:
        raise QueryError("type text, /regex/ or filters such as reward>0.5 adv<0 len>100")
    fold = text == text.lower()
    flags = re.IGNORECASE if fold else 0
    needle: bytes | None = None
    if len(text) >= 2 and text.startswith("/") and text.endswith("/"):
        try:
            pattern = re.compile(text[1:-1], flags)
        except re.error as err:
            raise QueryError(f"not a valid regex {text}: {err}") from None
        if pattern.pattern == "":
            raise QueryError("the regex // is empty")
    elif text:
        pattern = re.compile(re.escape(text), flags)
        if not _UNSAFE.search(text) and (not fold or text.isascii()):
            needle = text.encode("utf-8")
    else:
        pattern = None
    return SampleQuery(text, pattern, tuple(conditions), needle, fold)


def completion_values(comp: dict, step: int) -> dict[str, object]:
    """What the filters compare: the total reward (None when no reward function scored it),
    the advantage, the length in tokens and the step."""
    per = comp.get("rewards")
    unscored = isinstance(per, dict) and per and all(not isinstance(v, (int, float)) for v in per.values())
    length = comp.get("length")
    if not isinstance(length, int) and isinstance(comp.get("tokens"), list):
        length = len(comp["tokens"])
    return {"reward": None if unscored else comp.get("reward"), "advantage": comp.get("advantage"),
            "length": length, "step": step}


def match_completion(query: SampleQuery, comp: dict, step: int) -> tuple[tuple[int, int], ...] | None:
    """The spans of the text match in the completion (() when the query has no text), or None
    when the completion does not match."""
    values = completion_values(comp, step)
    if not all(c.holds(values[c.field]) for c in query.conditions):
        return None
    if query.pattern is None:
        return ()
    text = comp.get("text")
    if not isinstance(text, str):
        return None
    spans = tuple(m.span() for m in query.pattern.finditer(text) if m.end() > m.start())
    return spans or None


def hits_in_record(query: SampleQuery, record: dict) -> list[Hit]:
    """Every matching completion of one step's record (one line of samples.jsonl)."""
    step = record.get("step")
    if not isinstance(step, int) or not query.steps_allowed(step):
        return []
    hits = []
    for g, group in enumerate(record.get("groups") or []):
        if not isinstance(group, dict):
            continue
        for c, comp in enumerate(group.get("completions") or []):
            if isinstance(comp, dict):
                spans = match_completion(query, comp, step)
                if spans is not None:
                    hits.append(Hit(step, g, c, spans))
    return hits


def scan(path: str | Path, query: SampleQuery, max_hits: int = MAX_HITS) -> Iterator[list[Hit]]:
    """Stream ``path`` (samples.jsonl) one complete line at a time, yielding the hits of each
    line (often []), so the caller can report progress and stop between any two lines; stops
    after ``max_hits`` hits. A missing file yields nothing; a torn last line is left for later."""
    found = 0
    try:
        f = open(path, "rb")
    except OSError:
        return
    with f:
        for raw in f:
            if not raw.endswith(b"\n"):
                break  # the writer has not finished this line
            prefix = _STEP_PREFIX.match(raw)
            if prefix and not query.steps_allowed(int(prefix.group(1))) or not query.may_hold(raw):
                yield []
                continue
            record = parse_record(raw)
            hits = hits_in_record(query, record) if record is not None else []
            hits = hits[: max_hits - found]
            found += len(hits)
            yield hits
            if found >= max_hits:
                return


def snippet(text: str, span: tuple[int, int], context: int = 30) -> tuple[str, str, str]:
    """(before, match, after) around one span, each side cut to ``context`` characters with
    an ellipsis and newlines shown as ⏎, for a one-line view of where the text matched."""
    start, end = span
    before, match, after = text[max(0, start - context):start], text[start:end], text[end:end + context]
    if start > context:
        before = "…" + before
    if end + context < len(text):
        after += "…"
    return tuple(part.replace("\n", "⏎") for part in (before, match, after))  # type: ignore[return-value]
