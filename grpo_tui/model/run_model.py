"""A pure, Textual-free model of one run: metric series, recent samples, events, state.

The dashboard draws only from this model. It is fed either by live engine events
(converted to the same record shapes the run directory holds) or by reading a run
directory, so a live run, a read-only finished run and the snapshot tests all go
through the same code. Memory stays flat: metric series are floats (a few per step),
only the latest few steps of samples are kept (older ones are read back from
samples.jsonl by the inspector), and the events list is capped.
"""

from __future__ import annotations

import math
from array import array
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from engine.run.channel import CRASHED
from engine.run.checkpoints import resume_point
from engine.run.events import RunState

EMA_ALPHA = 0.1  # weight of the newest point in the smoothed series
MAX_EVENTS = 2000
KEEP_SAMPLE_STEPS = 4

TERMINAL_STATES = (RunState.FINISHED, RunState.STOPPED, RunState.ABANDONED, RunState.FAILED, CRASHED)
"""States in which no process trains the run: nothing moves, no control acts. CRASHED is
inferred by a reader (the process is gone), the others are written by the process."""
RESUMABLE_STATES = (RunState.STOPPED, RunState.ABANDONED, RunState.FAILED, CRASHED)


def ended_state(summary: dict) -> str:
    """The terminal state a run's summary stands for: finished at ``max_steps``, else stopped."""
    steps, max_steps = summary.get("steps"), summary.get("max_steps")
    if isinstance(steps, int) and isinstance(max_steps, int) and steps < max_steps:
        return RunState.STOPPED.value
    return RunState.FINISHED.value


@dataclass
class Adjustment:
    """One live change of one config field: the config view shows each field's history."""

    field: str
    old: Any  # the value before (None when the config did not hold the field)
    new: Any
    step: int | None  # optimizer steps done when it was applied (it acts from the next step)
    time: float | None = None


class Series:
    """One metric over steps, with an incrementally kept exponential moving average.

    Packed arrays (8 bytes a point) rather than lists of floats, so a 10,000-step run
    with forty metrics stays a few megabytes.
    """

    __slots__ = ("steps", "values", "ema")

    def __init__(self) -> None:
        self.steps = array("q")
        self.values = array("d")
        self.ema = array("d")

    def append(self, step: int, value: float) -> None:
        if self.steps and step <= self.steps[-1]:
            # A resumed run may repeat steps: the newest value wins, order is kept.
            while self.steps and self.steps[-1] >= step:
                self.steps.pop()
                self.values.pop()
                self.ema.pop()
        prev = self.ema[-1] if self.ema else value
        if not math.isfinite(prev):
            prev = value
        self.steps.append(step)
        self.values.append(value)
        self.ema.append(prev + EMA_ALPHA * (value - prev) if math.isfinite(value) else prev)

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def last(self) -> float | None:
        return self.values[-1] if self.values else None


@dataclass
class EventLine:
    """One line of the events pane (and one record of events.jsonl)."""

    level: str
    kind: str
    message: str
    step: int | None = None
    time: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Marker:
    """A labelled point on the charts' step axis: what happened to the run at that step."""

    step: int
    kind: str  # one of MARKER_KINDS
    label: str = ""  # "step 262: learning_rate 5e-05 → 0.0001"


MARKER_KINDS = ("adjust", "checkpoint", "pause", "resume", "handover", "fault")


def _short(value: Any) -> str:
    """A config value in a marker's label: ``5e-05`` as ``5e-5``."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return text.replace("e-0", "e-").replace("e+0", "e")


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


class RunModel:
    """Everything the dashboard knows about one run; updated on the UI thread only."""

    def __init__(self) -> None:
        self.run_dir: str | None = None
        self.name: str = ""
        self.model_name: str = ""
        self.device: str = ""
        self.config: dict[str, Any] = {}
        self.total_steps: int = 0
        self.start_step: int = 0
        self.state: str = RunState.STARTING.value  # a RunState value, or a listed state (CRASHED, UNKNOWN)
        self.state_message: str = ""
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.last_time: float | None = None
        self.summary: dict[str, Any] = {}
        self.error: str = ""
        self.traceback_path: str | None = None
        self.series: dict[str, Series] = {}
        self.samples: deque[dict] = deque(maxlen=KEEP_SAMPLE_STEPS)
        self.events: deque[EventLine] = deque(maxlen=MAX_EVENTS)
        self.events_total = 0  # events ever added (the pane appends only the new ones)
        self.markers: list[Marker] = []
        self.adjustments: list[Adjustment] = []  # live changes, oldest first
        self.progress: dict[str, Any] | None = None  # the newest progress record: the running step's phase
        self.requested: set[str] = set()  # requests this viewer made that wait for the step's end (pause, stop)
        self.read_only = False  # read back from a run directory, no engine attached
        self.version = 0  # bumped on every change: views redraw only when it moved
        self.chart_version = 0  # bumped when series or markers change: charts redraw only then

    # -- derived ---------------------------------------------------------------
    @property
    def step(self) -> int:
        steps = [s.steps[-1] for s in self.series.values() if s.steps]
        return max(steps) if steps else self.start_step

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL_STATES

    @property
    def completions_per_step(self) -> int:
        cfg = self.config
        try:
            return int(cfg.get("per_device_train_batch_size", 0)) * int(cfg.get("gradient_accumulation_steps", 1))
        except (TypeError, ValueError):
            return 0

    def elapsed(self, now: float) -> float | None:
        """Seconds since the run started; frozen at the end for a finished run."""
        if self.started_at is None:
            return None
        end = self.ended_at if self.is_terminal and self.ended_at else (self.last_time if self.read_only else now)
        return max(0.0, (end or now) - self.started_at)

    def eta(self) -> float | None:
        """Seconds left, from the mean time of the last steps (before a step has ended: the
        engine's estimate from the first step's phase rates)."""
        if self.is_terminal or not self.total_steps:
            return None
        if self.metric("eta_s") is not None:
            return self.metric("eta_s")
        times = self.series.get("step_time")
        if not times or not times.values:
            current = self.current_progress()
            estimate = current.get("eta_s") if current else None
            return float(estimate) if isinstance(estimate, (int, float)) else None
        recent = [v for v in times.values[-10:] if math.isfinite(v)]
        if not recent:
            return None
        return max(0, self.total_steps - self.step) * (sum(recent) / len(recent))

    def current_progress(self) -> dict[str, Any] | None:
        """The progress record of the step under way (None between steps, or when the run is over)."""
        p = self.progress
        if p is None or self.is_terminal or not isinstance(p.get("step"), int):
            return None
        return p if p["step"] > self.step or p["step"] == self.step == 0 else None

    def pending(self) -> list[str]:
        """Requests waiting for the step's end: this viewer's, and those the engine reported."""
        current = self.current_progress()
        engine = current.get("pending", []) if current else []
        return [r for r in ("stop", "pause") if r in self.requested or r in engine]

    def set_progress(self, record: dict[str, Any] | None) -> None:
        if record != self.progress:
            self.progress = record
            self.version += 1

    def completions_per_s(self) -> float | None:
        series = self.series.get("completions_per_s")
        return series.last if series else None

    def metric(self, name: str) -> float | None:
        series = self.series.get(name)
        return series.last if series else None

    def reward_funcs(self) -> list[str]:
        names = [k.split("/")[1] for k in self.series if k.startswith("rewards/") and k.endswith("/mean")]
        return sorted(names)

    def latest_samples(self) -> dict | None:
        return self.samples[-1] if self.samples else None

    # -- feeding ---------------------------------------------------------------
    def set_run_info(
        self,
        *,
        run_dir: str | None,
        config: dict,
        total_steps: int | None = None,
        model: str | None = None,
        device: str | None = None,
        start_step: int = 0,
        time: float | None = None,
    ) -> None:
        self.run_dir = run_dir
        self.name = Path(run_dir).name if run_dir else str(config.get("run_name") or "")
        self.config = dict(config)
        # max_steps -1 (from num_train_epochs) is not known until the run has read its dataset: 0
        self.total_steps = max(0, int(total_steps if total_steps is not None else config.get("max_steps") or 0))
        self.model_name = short_model_name(model or str(config.get("model_name_or_path") or ""))
        if device:
            self.device = device
        self.start_step = start_step
        if time is not None and self.started_at is None:
            self.started_at = time
        self.version += 1

    def add_metrics(self, record: dict) -> None:
        """One metrics.jsonl record: {"step": n, "time": t, name: value, ...}."""
        try:
            step = int(record["step"])
        except (KeyError, TypeError, ValueError):
            return
        t = _as_float(record.get("time"))
        for name, value in record.items():
            if name in ("step", "time"):
                continue
            v = _as_float(value)
            if v is None:
                v = math.nan if value is None else None
            if v is None:
                continue
            self.series.setdefault(name, Series()).append(step, v)
        step_time = _as_float(record.get("step_time"))
        if t is not None:
            if self.started_at is None:
                self.started_at = t - (step_time or 0.0)
            self.last_time = t
        self.version += 1
        self.chart_version += 1

    def add_samples(self, record: dict) -> None:
        """One samples.jsonl record: {"step": n, "groups": [...]}."""
        if not isinstance(record.get("groups"), list):
            return
        self.samples.append(record)
        self.version += 1

    def add_event(self, record: dict) -> None:
        """One events.jsonl record: {"time", "step", "level", "kind", "message", "data"}."""
        kind = str(record.get("kind") or "info")
        data = record.get("data") if isinstance(record.get("data"), dict) else {}
        step = record.get("step") if isinstance(record.get("step"), int) else None
        t = _as_float(record.get("time"))
        line = EventLine(
            level=str(record.get("level") or "info"),
            kind=kind,
            message=str(record.get("message") or ""),
            step=step,
            time=t,
            data=data,
        )
        duplicate = kind == "status" and self.events and self.events[-1].message == line.message
        if not duplicate:  # a failure is logged as an error and as a status with the same text
            self.events.append(line)
            self.events_total += 1
        if t is not None:
            if self.started_at is None:
                self.started_at = t
            self.last_time = max(self.last_time or t, t)
        self._add_marker(kind, data, line.message, step)
        if kind == "adjust":
            self.adjustments += [Adjustment(k, self.config.get(k), v, step, t)
                                 for k, v in data.items() if not isinstance(v, dict)]
            self.config.update({k: v for k, v in data.items() if not isinstance(v, dict)})
        elif kind == "status":
            state = str(data.get("state") or "")
            if state:
                self._set_state(state, line.message, t)
        elif kind == "summary":
            self.summary = dict(data)
            if not self.is_terminal:  # the status record that follows says the same; it wins
                self._set_state(ended_state(data), line.message, t)
        elif kind == "error":
            self.error = line.message
            self.traceback_path = data.get("traceback") if isinstance(data.get("traceback"), str) else None
            self._set_state(RunState.FAILED.value, line.message, t)
        elif kind == "eval":
            eval_step = step if step is not None else self.step
            for name, value in data.items():
                v = _as_float(value)
                if v is not None:
                    key = name if name.startswith("eval/") else f"eval/{name}"
                    self.series.setdefault(key, Series()).append(eval_step, v)
            self.chart_version += 1
        self.version += 1

    def _add_marker(self, kind: str, data: dict, message: str, step: int | None) -> None:
        """The chart marker an event stands for, if any (call before the event updates the
        config and state: an adjustment's label names the old value, a resume follows a pause)."""
        at = step if step is not None else self.step
        if kind == "adjust":
            changes = [f"{k} {_short(self.config[k]) + ' → ' if k in self.config else ''}{_short(v)}"
                       for k, v in data.items() if not isinstance(v, dict)]
            marker = Marker(at, "adjust", f"step {at}: " + (", ".join(changes) or message))
        elif kind in ("checkpoint", "fault"):
            marker = Marker(at, kind, f"step {at}: {message}")
        elif kind == "detach":
            marker = Marker(at, "handover", f"step {at}: {message}")
        elif kind == "status" and data.get("state") == RunState.PAUSED and self.state != RunState.PAUSED:
            marker = Marker(at, "pause", f"step {at}: {message or 'paused'}")
        elif kind == "status" and data.get("state") == RunState.RUNNING and self.state == RunState.PAUSED:
            marker = Marker(at, "resume", f"step {at}: resumed")
        else:
            return
        self.markers.append(marker)
        self.chart_version += 1

    def _set_state(self, state: str, message: str = "", t: float | None = None) -> None:
        if self.state in TERMINAL_STATES and state not in TERMINAL_STATES and state != RunState.STARTING:
            return  # only a new process (a resume: it starts) brings an ended run back
        self.state = state
        self.state_message = message
        if state == RunState.PAUSED:
            self.requested.discard("pause")
        if state in TERMINAL_STATES:
            self.requested.clear()
        self.ended_at = (t if t is not None else self.last_time) if state in TERMINAL_STATES else None
        self.version += 1

    def end_note(self) -> str | None:
        """For a run that ended short of its steps: how it ended and how to go on, in one
        line (the dashboard header shows it); None otherwise."""
        if self.state not in RESUMABLE_STATES or self.state == RunState.FAILED:
            return None
        where = self.run_dir or self.name
        if self.state == CRASHED:
            how = f"crashed at step {self.step}: its process is gone"
        else:
            how = self.state_message or f"{self.state} at step {self.step}"
        if self.run_dir and resume_point(Path(self.run_dir)) is None:
            return f"{how} — no complete checkpoint to resume from"
        return f"{how} — resume with grpo-tui resume {where}"

    def set_state(self, state: str, message: str = "", t: float | None = None) -> None:
        self._set_state(state, message, t)

    # -- whole run directory ---------------------------------------------------
    @classmethod
    def from_run_dir(cls, root: str | Path) -> "RunModel":
        """Read a run directory (finished, failed or still being written) into a model."""
        from grpo_tui.model.follow import open_run_dir

        return open_run_dir(root)[0]

    def feed(self, metrics: Iterable[dict], samples: Iterable[dict], events: Iterable[dict]) -> None:
        """Merge records from files in step order so markers and alarms land where they happened."""
        metrics, events = list(metrics), list(events)
        mi = ei = 0
        while mi < len(metrics) or ei < len(events):
            take_event = ei < len(events) and (
                mi >= len(metrics) or _time_key(events[ei]) <= _time_key(metrics[mi])
            )
            if take_event:
                self._add_file_event(events[ei])
                ei += 1
            else:
                self.add_metrics(metrics[mi])
                mi += 1
        for record in samples:
            self.add_samples(record)

    def _add_file_event(self, record: dict) -> None:
        if record.get("kind") == "run_started":
            data = record.get("data") or {}
            if data.get("device"):
                self.device = str(data["device"])
            if data.get("model"):
                self.model_name = short_model_name(str(data["model"]))
            if data.get("total_steps"):
                self.total_steps = int(data["total_steps"])
        self.add_event(record)


def short_model_name(name: str) -> str:
    """A hub id as is; a local path by its folder name (the full path is in the config)."""
    if name.startswith(("/", ".", "~")) or name.count("/") > 1 or _is_local(name):
        return Path(name).name
    return name


def _is_local(name: str) -> bool:
    from engine.config.schema import REPO_ROOT

    try:
        return Path(name).exists() or (REPO_ROOT / name).exists()
    except OSError:
        return False


def _time_key(record: dict) -> float:
    t = record.get("time")
    return float(t) if isinstance(t, (int, float)) else math.inf
