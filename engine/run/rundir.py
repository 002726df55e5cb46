"""The run directory: the one place a run lives on disk (a contract, see DESIGN.md).

```
runs/<name>/
  config.yaml        the resolved config
  metrics.jsonl      one object per optimizer step
  samples.jsonl      the sampled groups of each step
  events.jsonl       status changes, adjustments, warnings, checkpoints, errors
  checkpoints/step-NNNNNN/
  final/             the trained model, save_pretrained format
```

Writers append whole lines and flush them; readers tolerate a partial last line (a
process killed mid-write), so another process can tail these files while a run goes on.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"
EVENTS = "events.jsonl"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
FINAL = "final"


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
    return json.dumps(_clean(record), separators=(",", ":"), ensure_ascii=False)


def parse_lines(lines: list[bytes]) -> list[dict]:
    """The JSON objects among ``lines``; anything else (a torn or corrupt line) is skipped."""
    records = []
    for raw in lines:
        try:
            record = json.loads(raw)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every complete record of a JSON-lines file; a torn or corrupt line is skipped."""
    return list(iter_jsonl(path))


def iter_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    try:
        with open(path, "rb") as f:
            for raw in f:
                if not raw.endswith(b"\n"):
                    break  # partial last line: the writer has not finished it
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
    except FileNotFoundError:
        return


class JsonlTail:
    """Incremental reader for a file another process appends to (attach, the dashboard)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._offset = 0

    def read_new(self) -> list[dict]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        return parse_lines(data[: end + 1].splitlines())


class RunWriter:
    """Appends records to a run directory. Used by the trainer only (rank 0)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / CHECKPOINTS).mkdir(exist_ok=True)
        self._files = {
            name: open(self.root / name, "a", encoding="utf-8") for name in (METRICS, SAMPLES, EVENTS)
        }

    def write_config(self, yaml_text: str) -> None:
        tmp = self.root / (CONFIG + ".tmp")
        tmp.write_text(yaml_text, encoding="utf-8")
        os.replace(tmp, self.root / CONFIG)

    def _append(self, name: str, record: dict) -> None:
        f = self._files[name]
        f.write(dumps(record) + "\n")
        f.flush()

    def metrics(self, step: int, metrics: dict[str, float]) -> None:
        self._append(METRICS, {"step": step, "time": time.time(), **metrics})

    def samples(self, step: int, groups: list[dict]) -> None:
        self._append(SAMPLES, {"step": step, "groups": groups})

    def event(self, level: str, category: str, message: str, step: int | None = None, data: dict | None = None) -> None:
        self._append(
            EVENTS,
            {"time": time.time(), "step": step, "level": level, "kind": category, "message": message, "data": data or {}},
        )

    def checkpoint_dir(self, step: int) -> Path:
        return self.root / CHECKPOINTS / f"step-{step:06d}"

    @property
    def final_dir(self) -> Path:
        return self.root / FINAL

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class NullWriter(RunWriter):
    """What ranks other than 0 of a multi-process run write: nothing (rank 0 writes the run)."""

    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self._files = {}

    def write_config(self, yaml_text: str) -> None:
        pass

    def _append(self, name: str, record: dict) -> None:
        pass


@dataclass
class RunRecord:
    """What a finished, failed or live run directory holds, read back (dashboard, `runs`)."""

    root: Path
    metrics: list[dict]
    samples: list[dict]
    events: list[dict]
    config_text: str

    @property
    def name(self) -> str:
        return self.root.name

    @property
    def state(self) -> str:
        """The last status the run wrote ("running", "finished", "failed", ...), or "unknown"."""
        return last_status(self.events, default="unknown")



def last_status(events: list[dict], default: str = "starting") -> str:
    """The state of the newest ``status`` event ("running", "paused", "finished", ...)."""
    for event in reversed(events):
        state = (event.get("data") or {}).get("state") if event.get("kind") == "status" else None
        if state:
            return str(state)
    return default


def read_run(root: str | os.PathLike) -> RunRecord:
    root = Path(root)
    config_path = root / CONFIG
    return RunRecord(
        root=root,
        metrics=read_jsonl(root / METRICS),
        samples=read_jsonl(root / SAMPLES),
        events=read_jsonl(root / EVENTS),
        config_text=config_path.read_text(encoding="utf-8") if config_path.exists() else "",
    )


def list_runs(runs_root: str | os.PathLike = "runs") -> list[Path]:
    """Run directories under ``runs_root``, newest first."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = [p for p in root.iterdir() if p.is_dir() and (p / CONFIG).exists()]
    return sorted(runs, key=lambda p: p.stat().st_mtime, reverse=True)


def truncate_after(root: str | os.PathLike, step: int) -> dict[str, int]:
    """Drop every record after ``step`` (and any torn last line) so a resumed run writes each
    step exactly once. Each file is rewritten to a temporary file and renamed over the old one.
    Returns how many records each file lost."""
    root = Path(root)
    dropped = {}
    for name in (METRICS, SAMPLES, EVENTS):
        path = root / name
        if not path.exists():
            continue
        records = read_jsonl(path)
        keep = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= step]
        dropped[name] = len(records) - len(keep)
        tmp = path.with_suffix(path.suffix + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            for record in keep:
                f.write(dumps(record) + "\n")
        os.replace(tmp, path)
    return dropped
