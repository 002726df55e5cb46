"""How a run speaks: every event leaves through ``control.publish``, whose first subscriber
is the run-directory writer (rank 0), then the reporters, the dashboard or a headless
printer. The trainer and its collaborators only say what happened.
"""

from __future__ import annotations

from engine.run.control import Control
from engine.run.events import Event, LogEvent, RunState, StateChanged


class Publisher:
    """Publishes the run's events; ``writer`` (the run directory's, subscribed first) is asked
    after each one whether its write failed, so a run that cannot write its directory stops
    with that error (the Control swallows its subscribers' exceptions)."""

    def __init__(self, control: Control, writer=None, channel=None) -> None:
        self.control, self.writer, self.channel = control, writer, channel

    @property
    def state(self) -> RunState:
        return self.control.state

    def publish(self, event: Event) -> None:
        self.control.publish(event)
        if self.writer is not None:
            self.writer.raise_failure()
            for level, message in self.writer.take_notices():  # the disk filled up, or took writes again
                self.control.publish(LogEvent(level=level, category="disk", message=message))

    def log(self, level: str, category: str, message: str, step: int | None = None, data: dict | None = None) -> None:
        """A line in the events pane and events.jsonl: ``level`` info | warning | error."""
        self.publish(LogEvent(level=level, category=category, message=message, step=step, data=data or {}))

    def set_state(self, state: RunState, message: str = "") -> None:
        self.publish(StateChanged(state=state, message=message))
        if self.channel is not None:
            self.channel.beat()  # other processes see the change at once
