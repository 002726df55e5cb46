"""The heartbeat tells the truth during long steps, and a run is crashed only when its process is gone."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.run.channel import (
    CRASHED, HEARTBEAT, HEARTBEAT_S, STALE_S, ChannelServer, process_started, read_heartbeat, run_state,
    write_json_atomic,
)
from engine.run.control import Control

ROOT = Path(__file__).resolve().parents[3]
BOUND = 4 * HEARTBEAT_S  # generous: a beat is due every HEARTBEAT_S


def status() -> dict:
    return {"state": "running", "step": 3, "max_steps": 10}


def beat_age_watcher(run_dir: Path, seconds: float) -> subprocess.Popen:
    """Another process (which no lock of ours can starve) that samples the heartbeat's age
    every 50 ms for ``seconds`` and prints the largest it saw."""
    code = (
        "import json, sys, time\n"
        f"path, end, worst = {str(run_dir / HEARTBEAT)!r}, time.time() + {seconds}, 0.0\n"
        "while time.time() < end:\n"
        "    try: worst = max(worst, time.time() - json.load(open(path))['time'])\n"
        "    except (OSError, ValueError): pass\n"
        "    time.sleep(0.05)\n"
        "print(worst)\n")
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_heartbeat_is_rewritten_while_the_main_thread_is_busy_in_python(tmp_path):
    server = ChannelServer(tmp_path, Control(), status)
    server.start()
    worst, done = [0.0], threading.Event()

    def read() -> None:
        while not done.is_set():
            beat = read_heartbeat(tmp_path)
            if beat:
                worst[0] = max(worst[0], time.time() - beat["time"])
            time.sleep(0.05)

    reader = threading.Thread(target=read)
    reader.start()
    first = read_heartbeat(tmp_path)["time"]
    try:
        end = time.time() + 3.0
        while time.time() < end:  # a reward function that holds the GIL in pure Python
            sum(i * i for i in range(2000))
    finally:
        done.set()
        reader.join()
    last = read_heartbeat(tmp_path)
    server.stop()
    assert last["time"] > first + HEARTBEAT_S / 2  # rewritten during the loop
    assert worst[0] < BOUND, f"heartbeat went {worst[0]:.1f}s without a beat"
    assert last["pid"] == os.getpid() and last["host"] == socket.gethostname() and last["step"] == 3


@pytest.mark.slow
def test_heartbeat_goes_on_during_a_c_call_that_holds_the_gil(tmp_path):
    """An exact big-integer power holds the GIL for its whole length (what math-verify does
    with an answer such as ``3^{3^{15}}``): no thread of this process runs meanwhile, yet
    the beat must go on, as seen from another process."""
    k, took = 10**6, 0.0
    while took < 0.2:  # calibrate: time grows as k ** 1.585 (Karatsuba)
        k *= 2
        t0 = time.perf_counter()
        3 ** k
        took = time.perf_counter() - t0
    k = int(k * (1.5 * BOUND / took) ** (1 / 1.585))  # one call of about 1.5 bounds
    server = ChannelServer(tmp_path, Control(), status)
    server.start()
    try:
        for _ in range(4):  # a busy machine can make the calibrated call too short: lengthen it
            watcher = beat_age_watcher(tmp_path, 2 * BOUND + 1)
            time.sleep(0.5)
            t0 = time.perf_counter()
            3 ** k
            took = time.perf_counter() - t0
            worst = float(watcher.communicate(timeout=120)[0])
            if took > BOUND:
                break
            k = int(k * 1.6)
    finally:
        server.stop()
    assert took > BOUND, "the C call was too short to tell"
    assert worst < BOUND, f"heartbeat went {worst:.1f}s without a beat during a {took:.1f}s C call"


def write_beat(run_dir: Path, **fields) -> None:
    write_json_atomic(run_dir / HEARTBEAT, {"state": "running", "step": 1, "interval": HEARTBEAT_S, **fields})


def test_a_live_process_is_running_however_old_its_beat(tmp_path):
    old = time.time() - 3600
    write_beat(tmp_path, pid=os.getpid(), host=socket.gethostname(), started=process_started(os.getpid()), time=old)
    assert run_state(tmp_path, "running") == "running"
    assert run_state(tmp_path, "paused", now=time.time() + 3600) == "paused"


def test_a_gone_process_is_crashed_however_fresh_its_beat(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    write_beat(tmp_path, pid=dead.pid, host=socket.gethostname(), time=time.time())
    assert run_state(tmp_path, "running") == CRASHED
    # a live pid that belongs to a later process (the pid was reused) is not the trainer
    write_beat(tmp_path, pid=os.getpid(), host=socket.gethostname(), started=1.0, time=time.time())
    assert run_state(tmp_path, "running") == CRASHED
    assert run_state(tmp_path, "finished") == "finished"  # a final status stands


def test_from_another_host_only_a_beat_stale_for_several_intervals_is_crashed(tmp_path):
    now = time.time()
    write_beat(tmp_path, pid=1, host="another-host.invalid", time=now - 3 * HEARTBEAT_S)
    assert run_state(tmp_path, "running", now=now) == "running"
    assert run_state(tmp_path, "running", now=now + STALE_S) == CRASHED
    assert STALE_S >= 5 * HEARTBEAT_S


@pytest.mark.slow
def test_the_beat_stops_when_the_training_process_dies(tmp_path):
    """Killed with SIGKILL (nothing runs at exit), the trainer leaves no heartbeat process
    behind: its beat goes stale and the run reads as crashed."""
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r})\n"
        "import time\n"
        "from engine.run.channel import ChannelServer\n"
        "from engine.run.control import Control\n"
        f"server = ChannelServer({str(tmp_path)!r}, Control(), lambda: {{'state': 'running', 'step': 1}})\n"
        "server.start(); print(server._pulse.proc.pid, flush=True); time.sleep(600)\n")
    trainer = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        pulse = psutil.Process(int(trainer.stdout.readline()))
        assert run_state(tmp_path, "running") == "running"
    finally:
        trainer.send_signal(signal.SIGKILL)
        trainer.wait(30)
    pulse.wait(10)  # raises TimeoutExpired if it outlives the trainer
    assert run_state(tmp_path, "running") == CRASHED
    seen = json.loads((tmp_path / HEARTBEAT).read_text())
    time.sleep(HEARTBEAT_S * 1.5)
    assert json.loads((tmp_path / HEARTBEAT).read_text()) == seen  # nobody beats for it any more
