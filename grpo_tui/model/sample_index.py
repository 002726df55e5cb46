"""Random access to samples.jsonl by step, without holding the file in memory.

The inspector browses any past step of a run that may still be growing: the index
remembers the byte offset of each step's line, reads only what was appended since
the last refresh (through the run directory's :class:`~engine.run.jsonl.JsonlTail`, so a
half-written last line waits for the next refresh), and loads one step's groups on demand.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from engine.run.jsonl import JsonlTail, parse_record

STEP_PREFIX = re.compile(rb'^\{\s*"step"\s*:\s*(\d+)')


class SampleIndex:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._offsets: dict[int, int] = {}
        self._tail = JsonlTail(self.path)

    def refresh(self) -> bool:
        """Index lines appended since the last call; True if new steps appeared."""
        before = len(self._offsets)
        for offset, raw in self._tail.read_lines():
            step = _step_of(raw)
            if step is not None:
                self._offsets[step] = offset
        return len(self._offsets) != before

    @property
    def steps(self) -> list[int]:
        return sorted(self._offsets)

    def load(self, step: int) -> dict | None:
        offset = self._offsets.get(step)
        if offset is None:
            return None
        try:
            with open(self.path, "rb") as f:
                f.seek(offset)
                return parse_record(f.readline())
        except OSError:
            return None


def _step_of(raw: bytes) -> int | None:
    match = STEP_PREFIX.match(raw)
    if match:
        return int(match.group(1))
    record = parse_record(raw)
    step = record.get("step") if record is not None else None
    return step if isinstance(step, int) else None
