"""One process per run directory: a second trainer is refused with the first one's pid, and
a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import engine.run.lock as lock_module
from conftest import tiny_config, train
from engine.run.events import RunFailed
from engine.run.lock import RunLock, RunLocked


def test_a_second_holder_is_refused_naming_the_first(tmp_path):
    first = RunLock(tmp_path)
    first.acquire()
    try:
        with pytest.raises(RunLocked) as err:
            RunLock(tmp_path).acquire(wait_s=0.2)
        assert f"is being trained by process {os.getpid()} on" in str(err.value)
    finally:
        first.release()
    again = RunLock(tmp_path)
    again.acquire(wait_s=0)  # released: free at once
    again.release()


def test_a_killed_holder_leaves_no_stale_lock(tmp_path):
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, sys.argv[1]); from engine.run.lock import RunLock; "
        "RunLock(sys.argv[2]).acquire(); print('held', flush=True); time.sleep(600)"),
        str(lock_module.Path(lock_module.__file__).resolve().parents[2]), str(tmp_path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLocked, match=f"process {holder.pid} on"):
            RunLock(tmp_path).acquire(wait_s=0.2)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    started = time.monotonic()
    RunLock(tmp_path).acquire(wait_s=5)
    assert time.monotonic() - started < 5


@pytest.mark.slow
def test_a_trainer_is_refused_a_run_directory_another_process_trains(tmp_path, monkeypatch):
    monkeypatch.setattr(lock_module, "WAIT_S", 0.2)
    cfg = tiny_config(tmp_path, "max_steps=1")
    other = RunLock(tmp_path / "run")
    other.acquire()
    try:
        trainer, events = train(cfg)
    finally:
        other.release()
    assert isinstance(events[-1], RunFailed)
    assert f"is being trained by process {os.getpid()}" in events[-1].error
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # nothing of the refused run was written
