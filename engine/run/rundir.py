"""The run directory: the one place a run lives on disk.

Its layout is a contract: a viewer in another process (``grpo-tui attach``), ``resume``,
the run listing and users' own scripts read it, and nothing else of the run.

```
runs/<name>/
  config.yaml        the resolved config
  metrics.jsonl      one object per optimizer step: step, wall time, the metric values
  samples.jsonl      the sampled groups of each step: prompt, completions, rewards, advantage,
                     lengths and the token-level arrays the inspector shows
  events.jsonl       status changes, adjustments, warnings, checkpoints, errors
  checkpoints/step-NNNNNN/   complete checkpoints only: written aside, renamed once whole
  final/             the trained model, save_pretrained format
```

The record on each line is built in :mod:`engine.run.records`. Writers append whole lines
and flush them; readers tolerate a partial last line (a process killed mid-write, or one
still writing), so another process can tail these files while a run goes on: the readers
are in :mod:`engine.run.jsonl`. The heartbeat and command channel beside them are
:mod:`engine.run.channel`.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.run import records
from engine.run.events import EvalResult, Event, LogEvent, RunState, StateChanged, StepMetrics, StepSamples
from engine.run.jsonl import dumps, read_jsonl

METRICS = "metrics.jsonl"
SAMPLES = "samples.jsonl"
EVENTS = "events.jsonl"
CONFIG = "config.yaml"
CHECKPOINTS = "checkpoints"
FINAL = "final"

BACKLOG_LINES = 100_000  # records kept in memory while the disk refuses them

UNKNOWN = "unknown"
"""The state of a run directory that holds no status yet: nothing says what the run is doing."""


class RunWriter:
    """Writes a run into its directory as the first subscriber of the run's events (rank 0
    only: ``control.subscribe(writer, first=True)``, so a line is on disk before a viewer
    hears of it, whoever published the event: the loop, or a signal handler on the main
    thread), one record per line as :mod:`engine.run.records` builds it:

    - ``StepMetrics`` → metrics.jsonl, and the held-out results before training
      (``EvalResult`` at step 0) as step 0's line; later results arrive inside their step's
      metrics (or, at a stop, belong to no step's line);
    - ``StepSamples`` → samples.jsonl;
    - ``LogEvent`` and ``StateChanged`` → events.jsonl; a state change carries no step, so
      ``step()`` says where the run stands. Nothing follows a terminal state: a run
      abandoned from the main thread may still have an engine thread that reports a state
      for a moment, and the last status on disk must stay the one that ended the run.

    A full disk (any ``OSError`` from a write) never stops the run: the lines that could not
    be written are kept in memory, in order (up to :data:`BACKLOG_LINES`; beyond, samples
    lines are dropped first and counted), and written before the next line once the disk takes
    them again; a line the failure tore is closed with a newline first (readers skip it), so
    each record still stands on a line of its own. :meth:`take_notices` tells the publisher
    when writing failed and when it recovered, for the events. Any other exception is a bug:
    the Control drops a subscriber that raises, so it is kept and raised on the engine thread
    by :meth:`raise_failure`.
    Events may come from two threads at once, so each is written under a lock.
    ``config.yaml`` is written directly (:meth:`write_config`), before any event."""

    def __init__(self, root: str | os.PathLike, step: Callable[[], int | None] = lambda: None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / CHECKPOINTS).mkdir(exist_ok=True)
        self._step = step
        self._failure: BaseException | None = None
        self._lock = threading.Lock()
        self._ended = False  # a terminal status was written: later ones are dropped
        self._files = {name: open(self.root / name, "ab", buffering=0) for name in (METRICS, SAMPLES, EVENTS)}
        self._backlog: deque[tuple[str, bytes]] = deque()
        self._torn: set[str] = set()  # files whose last write failed part-way
        self._dropped = 0  # samples lines given up while the backlog was full
        self._notices: list[tuple[str, str]] = []  # (level, message) for the events

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._write(event)

    def _write(self, event: Event) -> None:
        try:
            if isinstance(event, StepMetrics):
                self._append(METRICS, records.from_metrics(event))
            elif isinstance(event, EvalResult) and event.step == 0:
                self._append(METRICS, records.metrics_record(0, event.metrics, event.time))
            elif isinstance(event, StepSamples):
                self._append(SAMPLES, records.from_samples(event))
            elif isinstance(event, LogEvent):
                self._append(EVENTS, records.from_log(event))
            elif isinstance(event, StateChanged) and not self._ended:
                self._append(EVENTS, records.from_state(event, self._step()))
                self._ended = RunState(event.state).is_terminal
        except Exception as exc:  # noqa: BLE001 - raised on the engine thread by raise_failure
            self._failure = self._failure or exc

    def raise_failure(self) -> None:
        """Raise the first write that failed since the last call, if any."""
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def write_config(self, yaml_text: str) -> None:
        tmp = self.root / (CONFIG + ".tmp")
        tmp.write_text(yaml_text, encoding="utf-8")
        os.replace(tmp, self.root / CONFIG)

    def _append(self, name: str, record: dict) -> None:
        line = (dumps(record) + "\n").encode("utf-8")
        if self._backlog and not self._drain():
            self._keep(name, line)
            return
        error = self._write_line(name, line)
        if error is not None:
            self._keep(name, line)
            self._notices.append(("error", f"cannot write the run directory ({error}): the records are kept in "
                                           "memory and written when the disk takes them; training goes on"))

    def _write_line(self, name: str, line: bytes) -> str | None:
        """Write one whole line (closing a torn one first); the error, or None."""
        f = self._files[name]
        data = (b"\n" if name in self._torn else b"") + line
        try:
            while data:
                written = f.write(data)
                data = data[written or 0:]
        except OSError as exc:
            self._torn.add(name)
            return exc.strerror or str(exc)
        self._torn.discard(name)
        return None

    def _keep(self, name: str, line: bytes) -> None:
        if len(self._backlog) >= BACKLOG_LINES:
            victim = next((i for i, (n, _) in enumerate(self._backlog) if n == SAMPLES), None)
            if victim is None and name == SAMPLES:
                self._dropped += 1
                return
            if victim is not None:
                del self._backlog[victim]
                self._dropped += 1
        self._backlog.append((name, line))

    def _drain(self) -> bool:
        """Write the kept lines, oldest first; True once none is left."""
        count = len(self._backlog)
        while self._backlog:
            name, line = self._backlog[0]
            if self._write_line(name, line) is not None:
                return False
            self._backlog.popleft()
        lost = f"; {self._dropped} samples records were dropped to bound memory" if self._dropped else ""
        self._notices.append(("info", f"writing the run directory again: {count} kept records written{lost}"))
        self._dropped = 0
        return True

    def take_notices(self) -> list[tuple[str, str]]:
        """What happened to the writes since the last call: ``(level, message)`` for the events."""
        with self._lock:
            notices, self._notices = self._notices, []
        return notices

    def checkpoint_dir(self, step: int) -> Path:
        return self.root / CHECKPOINTS / f"step-{step:06d}"

    @property
    def final_dir(self) -> Path:
        return self.root / FINAL

    def close(self) -> None:
        for f in self._files.values():
            f.close()


class NullWriter(RunWriter):
    """What ranks other than 0 of a multi-process run write: nothing (rank 0 writes the run);
    its folder names are the same, so every rank agrees on where a checkpoint goes."""

    def __init__(self, root: str | os.PathLike, step: Callable[[], int | None] = lambda: None) -> None:
        self.root = Path(root)
        self._step = step
        self._failure = None
        self._lock = threading.Lock()
        self._ended = False
        self._files = {}
        self._notices = []

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
        """The last status the run wrote ("running", "finished", "stopped", ...), or ``UNKNOWN``."""
        return last_status(self.events, default=UNKNOWN)



def last_status_event(events: list[dict]) -> dict | None:
    """The newest ``status`` event that names a state, or None."""
    for event in reversed(events):
        if event.get("kind") == "status" and (event.get("data") or {}).get("state"):
            return event
    return None


def last_status(events: list[dict], default: str = "starting") -> str:
    """The state of the newest ``status`` event ("running", "paused", "finished", ...)."""
    event = last_status_event(events)
    return str(event["data"]["state"]) if event is not None else default


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
