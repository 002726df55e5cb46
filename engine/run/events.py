"""What a run says while it trains: its states and the events the trainer publishes.

Subscribers (the dashboard, the run-directory writer, reporters) receive these on the
engine thread, through :class:`engine.run.control.Control`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable


class RunState(str, Enum):
    """Where a run stands, as its process reports it (a status record in events.jsonl).

    The last four are terminal: the process writes no status after them. ``finished`` ran
    to ``max_steps``; ``stopped`` was asked to stop before (``send stop``, SIGTERM, the
    dashboard's stop) and saved a checkpoint there, so it resumes with no step redone;
    ``abandoned`` was left at once (a second stop signal, Abandon in the quit dialog) and
    resumes from its newest complete checkpoint; ``failed`` raised. A run whose process
    died without a terminal status is *crashed*: a reader infers that
    (:data:`engine.run.channel.CRASHED`), no process reports it."""

    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    CHECKPOINTING = "checkpointing"
    STOPPING = "stopping"
    FINISHED = "finished"
    STOPPED = "stopped"
    ABANDONED = "abandoned"
    FAILED = "failed"

    @property
    def is_terminal(self) -> bool:
        return self in (RunState.FINISHED, RunState.STOPPED, RunState.ABANDONED, RunState.FAILED)


# ---------------------------------------------------------------- events


@dataclass(kw_only=True)
class Event:
    """Base of everything the engine publishes; ``time`` is when it was made (epoch seconds)."""

    time: float = field(default_factory=time.time)
    kind = "event"


@dataclass
class RunStarted(Event):
    run_dir: str
    config: dict
    total_steps: int
    model: str
    device: str
    start_step: int = 0
    kind = "run_started"


@dataclass
class StateChanged(Event):
    state: RunState
    message: str = ""
    kind = "state"


@dataclass
class StepMetrics(Event):
    step: int
    metrics: dict[str, float]
    kind = "metrics"


@dataclass
class StepSamples(Event):
    step: int
    groups: list[dict]
    kind = "samples"


@dataclass
class LogEvent(Event):
    """Anything worth a line in the events pane: adjustments, checkpoints, warnings, errors."""

    level: str  # info | warning | error
    category: str  # adjust | checkpoint | reward_error | health | eval | nan | status | ...
    message: str
    step: int | None = None
    data: dict[str, Any] = field(default_factory=dict)
    kind = "log"


@dataclass
class EvalResult(Event):
    step: int
    metrics: dict[str, float]
    kind = "eval"


@dataclass
class RunFinished(Event):
    summary: dict
    kind = "finished"


@dataclass
class RunFailed(Event):
    error: str
    traceback_path: str | None = None
    kind = "failed"


Subscriber = Callable[[Event], None]
