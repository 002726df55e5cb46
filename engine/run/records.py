"""The record each line of a run directory's JSON-lines files holds, built in one place.

The run-directory writer appends these records, and the live dashboard feeds the very same
dicts to its model, so a run looks the same on screen while it trains and when its
directory is opened later. Field order is the order on disk.

- metrics.jsonl: ``{"step", "time", <metric name>: value, ...}``
- samples.jsonl: ``{"step", "groups": [...]}``
- events.jsonl:  ``{"time", "step", "level", "kind", "message", "data"}``; a status change
  is an event of kind ``status`` whose ``data`` is ``{"state": <RunState value>}``.
"""

from __future__ import annotations

from typing import Any, Mapping

from engine.run.events import LogEvent, RunState, StateChanged, StepMetrics, StepSamples


def metrics_record(step: int, metrics: Mapping[str, float], time: float) -> dict:
    """One optimizer step's metrics: ``metrics_record(3, {"reward": 0.5}, 1.0)`` is
    ``{"step": 3, "time": 1.0, "reward": 0.5}``."""
    return {"step": step, "time": time, **metrics}


def samples_record(step: int, groups: list[dict]) -> dict:
    """The sampled groups of one step (see :mod:`engine.training.samples` for a group's fields)."""
    return {"step": step, "groups": groups}


def event_record(
    level: str, kind: str, message: str, *, step: int | None, time: float, data: Mapping[str, Any] | None = None
) -> dict:
    """One line of the events pane: ``level`` is info | warning | error, ``kind`` the category
    (adjust, checkpoint, eval, status, ...)."""
    return {"time": time, "step": step, "level": level, "kind": kind, "message": message, "data": dict(data or {})}


def status_record(state: RunState | str, message: str, *, step: int | None, time: float) -> dict:
    """A status change; its message is the state's name when none is given, and a failure is an error."""
    state = str(getattr(state, "value", state))  # a RunState member's str() is its qualified name
    level = "error" if state == RunState.FAILED else "info"
    return event_record(level, "status", message or state, step=step, time=time, data={"state": state})


# The same records from the events the trainer publishes (what a subscriber receives).


def from_metrics(event: StepMetrics) -> dict:
    return metrics_record(event.step, event.metrics, event.time)


def from_samples(event: StepSamples) -> dict:
    return samples_record(event.step, event.groups)


def from_log(event: LogEvent) -> dict:
    return event_record(event.level, event.category, event.message, step=event.step, time=event.time, data=event.data)


def from_state(event: StateChanged, step: int | None) -> dict:
    """``step``: where the run stands (a state change carries none)."""
    return status_record(event.state, event.message, step=step, time=event.time)
