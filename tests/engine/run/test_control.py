"""Live control of a real run on a background thread: pause, resume, adjust, checkpoint, stop."""

from __future__ import annotations

import queue
import time

import pytest

from conftest import tiny_config
from engine.run.control import Control
from engine.run.events import LogEvent, RunFinished, RunState, StateChanged, StepMetrics
from engine.training.trainer import Trainer


def start(tmp_path, *overrides):
    cfg = tiny_config(tmp_path, "max_steps=400", "log_completions_groups=1", *overrides)
    control = Control()
    events: queue.Queue = queue.Queue()
    control.subscribe(events.put)
    trainer = Trainer(cfg, control=control, evaluate=False)
    thread = trainer.start()
    return trainer, control, events, thread


def wait_for(events: queue.Queue, predicate, timeout: float = 120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            event = events.get(timeout=0.5)
        except queue.Empty:
            continue
        if predicate(event):
            return event
    raise AssertionError("event never came")


def is_step(event, at_least: int = 1) -> bool:
    return isinstance(event, StepMetrics) and event.step >= at_least


@pytest.mark.slow
def test_pause_resume_adjust_checkpoint_stop(tmp_path):
    trainer, control, events, thread = start(tmp_path)
    wait_for(events, lambda e: is_step(e, 2))

    control.pause()
    wait_for(events, lambda e: isinstance(e, StateChanged) and e.state == RunState.PAUSED)
    paused_at = trainer.step
    time.sleep(1.0)
    assert trainer.step == paused_at  # no step while paused

    control.checkpoint()  # served while paused
    ckpt = wait_for(events, lambda e: isinstance(e, LogEvent) and e.category == "checkpoint")
    assert (trainer.run_dir / "checkpoints" / f"step-{paused_at:06d}" / "COMPLETE").exists(), ckpt.message

    control.adjust(learning_rate=1e-5, temperature=0.7)
    control.resume()
    adjusted = wait_for(events, lambda e: isinstance(e, LogEvent) and e.category == "adjust")
    assert adjusted.data == {"learning_rate": 1e-5, "temperature": 0.7}
    step = wait_for(events, lambda e: is_step(e, paused_at + 1))
    assert step.metrics["learning_rate"] == 1e-5
    assert step.metrics["temperature"] == 0.7

    control.adjust(learning_rate=-1.0)  # invalid: rejected with a message, run goes on
    rejected = wait_for(events, lambda e: isinstance(e, LogEvent) and e.category == "adjust")
    assert rejected.level == "error" and "learning_rate" in rejected.message

    control.stop()
    finished = wait_for(events, lambda e: isinstance(e, RunFinished))
    thread.join(60)
    assert finished.summary["steps"] < 400
    assert (trainer.run_dir / "final" / "model.safetensors").exists()


def test_heartbeats_from_two_threads_never_leave_a_torn_file(tmp_path):
    """The channel thread and the engine thread both beat; a reader must always see a whole file."""
    import threading

    from engine.run.channel import ChannelServer, read_heartbeat
    from engine.run.control import Control

    server = ChannelServer(tmp_path, Control(), lambda: {"state": "running", "step": 1, "max_steps": 2})
    server.beat()
    done = threading.Event()
    torn = []

    def read() -> None:
        while not done.is_set():
            if read_heartbeat(tmp_path) is None:
                torn.append(1)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=lambda: [server.beat() for _ in range(300)]) for _ in range(2)]
    reader.start()
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    done.set()
    reader.join()
    assert not torn and read_heartbeat(tmp_path)["step"] == 1
    assert not list(tmp_path.glob(".heartbeat.json*"))  # no temporary files left behind
