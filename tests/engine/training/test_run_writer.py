"""The run-directory writer is a subscriber of the run's events: which event becomes which
line, and a write that fails stops the run instead of vanishing with the subscriber."""

from __future__ import annotations

import pytest

from engine.run.control import Control
from engine.run.events import EvalResult, LogEvent, RunFinished, RunState, StateChanged, StepMetrics, StepSamples
from engine.run.jsonl import read_jsonl
from engine.run.rundir import RunWriter
from engine.training.publisher import Publisher


def test_each_event_becomes_its_line(tmp_path):
    control, step = Control(), {"now": 0}
    writer = RunWriter(tmp_path, step=lambda: step["now"])
    control.subscribe(writer)
    control.publish(StateChanged(state=RunState.STARTING, message="loading model"))
    control.publish(EvalResult(step=0, metrics={"eval/accuracy": 0.25}, time=5.0))  # before training: step 0's line
    step["now"] = 1
    control.publish(StepMetrics(step=1, metrics={"reward": 0.5}, time=6.0))
    control.publish(StepSamples(step=1, groups=[{"prompt": "1+1="}]))
    control.publish(LogEvent(level="warning", category="health", message="flat", step=1, data={"alarm": "x"}))
    control.publish(EvalResult(step=1, metrics={"eval/accuracy": 0.5}))  # at a stop: no step's line
    control.publish(StateChanged(state=RunState.PAUSED))
    control.publish(RunFinished(summary={"steps": 1}))
    writer.close()

    assert read_jsonl(tmp_path / "metrics.jsonl") == [
        {"step": 0, "time": 5.0, "eval/accuracy": 0.25},
        {"step": 1, "time": 6.0, "reward": 0.5},
    ]
    assert read_jsonl(tmp_path / "samples.jsonl") == [{"step": 1, "groups": [{"prompt": "1+1="}]}]
    events = [{k: v for k, v in e.items() if k != "time"} for e in read_jsonl(tmp_path / "events.jsonl")]
    assert events == [
        {"step": 0, "level": "info", "kind": "status", "message": "loading model", "data": {"state": "starting"}},
        {"step": 1, "level": "warning", "kind": "health", "message": "flat", "data": {"alarm": "x"}},
        {"step": 1, "level": "info", "kind": "status", "message": "paused", "data": {"state": "paused"}},
    ]


def test_a_failed_write_is_raised_where_the_run_publishes(tmp_path):
    control = Control()
    writer = RunWriter(tmp_path)
    control.subscribe(writer)
    publisher = Publisher(control, writer)
    writer.close()  # every write now fails
    with pytest.raises(ValueError, match="closed file"):
        publisher.log("info", "adjust", "adjusted beta=0.1")
    with pytest.raises(ValueError, match="closed file"):  # still subscribed: each write is tried
        publisher.set_state(RunState.FAILED, "disk gone")
