"""JSON lines as a run directory writes and reads them: one object per line.

A writer appends whole lines (:func:`dumps` and a newline) and flushes them. A reader in
another process may meet a last line the writer has not finished, or one a killed process
left torn for good, so every reader here takes only complete lines (those ending in a
newline) and skips any line that is not a JSON object. The same rule serves a finished run,
a live one and a crashed one, in the three ways a run directory is read:

- :func:`read_jsonl` — the whole file (reading a run back, truncating it for a resume);
- :func:`tail_jsonl` — only its last bytes (a listing of long runs wants the newest records);
- :class:`JsonlTail` — what was appended since the last call (following a live run,
  indexing samples.jsonl by step).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any


def _clean(value: Any) -> Any:
    """JSON has no NaN/inf: write them as null so every reader can parse the line."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def dumps(record: dict) -> str:
    """One line's text (without the newline): compact, UTF-8 as is, non-finite floats as null."""
    return json.dumps(_clean(record), separators=(",", ":"), ensure_ascii=False)


def parse_record(raw: bytes) -> dict | None:
    """The JSON object on one line, or None for anything else (a torn or corrupt line)."""
    try:
        record = json.loads(raw)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def _complete_records(lines: list[bytes]) -> list[dict]:
    return [record for record in map(parse_record, lines) if record is not None]


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every record on a complete line of ``path``; [] when the file does not exist."""
    records = []
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # the last line, not finished
                record = parse_record(raw)
                if record is not None:
                    records.append(record)
    except FileNotFoundError:
        pass
    return records


def tail_jsonl(path: str | os.PathLike, max_bytes: int) -> list[dict]:
    """The records on the complete lines among the last ``max_bytes`` of ``path``.

    The first line read is dropped when the file is longer than ``max_bytes``: it may start
    mid-record. [] when the file cannot be read."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, os.SEEK_END)
            f.seek(max(0, size - max_bytes))
            data = f.read()
    except OSError:
        return []
    lines = data.split(b"\n")[:-1]  # what follows the last newline is not a complete line
    return _complete_records(lines[1:] if size > max_bytes else lines)


class JsonlTail:
    """Reads what another process appended to ``path`` since the last call.

    Only complete lines are taken: a half-written last line is read again, whole, on a
    later call. A missing file reads as nothing appended yet."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._offset = 0

    def read_lines(self) -> list[tuple[int, bytes]]:
        """The new complete lines, each with the byte offset it starts at (newline stripped)."""
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        lines, pos = [], self._offset
        for raw in data[:end].split(b"\n"):
            lines.append((pos, raw))
            pos += len(raw) + 1
        self._offset += end + 1
        return lines

    def read_new(self) -> list[dict]:
        """The records on the new complete lines (torn or corrupt lines skipped)."""
        return _complete_records([raw for _, raw in self.read_lines()])
