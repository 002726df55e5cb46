"""Follow a run directory another process is writing (or read a finished one).

The same JSON-lines tails serve a first full read and every later poll, so a run
opened while it trains keeps moving on screen, read-only. A run whose last status is not
terminal is checked against its heartbeat at each poll: once its process is gone it shows
as crashed (as ``grpo-tui runs`` lists it), not as running forever.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.run.channel import CRASHED, run_state
from engine.run.events import RunState
from engine.run.jsonl import JsonlTail
from engine.run.progress import read_progress
from engine.run.rundir import CONFIG, EVENTS, METRICS, SAMPLES, UNKNOWN

from grpo_tui.model.run_model import TERMINAL_STATES, RunModel


class RunFollower:
    def __init__(self, root: str | Path, model: RunModel) -> None:
        self.root = Path(root)
        self.model = model
        self._tails = {name: JsonlTail(self.root / name) for name in (METRICS, SAMPLES, EVENTS)}
        self._has_config = False

    def poll(self) -> bool:
        """Feed what was appended since the last poll; True if anything was."""
        if not self._has_config:
            self._read_config()
        metrics = self._tails[METRICS].read_new()
        samples = self._tails[SAMPLES].read_new()
        events = self._tails[EVENTS].read_new()
        if samples:
            samples = samples[-self.model.samples.maxlen :] if self.model.samples.maxlen else samples
        self.model.feed(metrics, samples, events)
        before = self.model.version
        self.model.set_progress(read_progress(self.root))
        progressed = self.model.version != before
        return bool(metrics or samples or events) | progressed | self._check_process()

    def _check_process(self) -> bool:
        """Mark the model crashed when no process trains the run any more; True if it changed."""
        state = self.model.state
        if state in TERMINAL_STATES or state == UNKNOWN or not self.model.events_total:
            return False
        if run_state(self.root, state) != CRASHED:
            return False
        self.model.set_state(CRASHED, f"crashed at step {self.model.step}: its process is gone")
        return True

    def _read_config(self) -> None:
        path = self.root / CONFIG
        try:
            config = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            return
        if isinstance(config, dict):
            self._has_config = True
            self.model.set_run_info(run_dir=str(self.root), config={**config, **self.model.config})


def open_run_dir(root: str | Path) -> tuple[RunModel, RunFollower]:
    """A read-only model of the run directory, and the follower that keeps it current."""
    model = RunModel()
    model.read_only = True
    model.run_dir = str(Path(root))
    model.name = Path(root).name
    follower = RunFollower(root, model)
    follower.poll()
    if model.state == RunState.STARTING and not model.events_total and not model.series:
        model.state = UNKNOWN
    return model, follower
