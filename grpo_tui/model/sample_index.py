"""Random access to samples.jsonl by step, without holding the file in memory.

The inspector browses any past step of a run that may still be growing: the index
remembers the byte offset of each step's line, reads only what was appended since
the last refresh, and loads one step's groups on demand.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

STEP_PREFIX = re.compile(rb'^\{\s*"step"\s*:\s*(\d+)')


class SampleIndex:
    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._offsets: dict[int, int] = {}
        self._end = 0

    def refresh(self) -> bool:
        """Index lines appended since the last call; True if new steps appeared."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._end)
                data = f.read()
        except FileNotFoundError:
            return False
        last_newline = data.rfind(b"\n")
        if last_newline < 0:
            return False
        before = len(self._offsets)
        pos = self._end
        for raw in data[: last_newline + 1].split(b"\n")[:-1]:
            step = _step_of(raw)
            if step is not None:
                self._offsets[step] = pos
            pos += len(raw) + 1
        self._end += last_newline + 1
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
                record = json.loads(f.readline())
        except (OSError, ValueError):
            return None
        return record if isinstance(record, dict) else None


def _step_of(raw: bytes) -> int | None:
    match = STEP_PREFIX.match(raw)
    if match:
        return int(match.group(1))
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    step = record.get("step") if isinstance(record, dict) else None
    return step if isinstance(step, int) else None
