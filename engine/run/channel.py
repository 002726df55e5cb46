"""Reaching a run from another process: a heartbeat out, a command channel in.

Both live in the run directory, so a viewer needs nothing but the path (and works over
SSH from any shell on the machine):

- ``heartbeat.json`` — rewritten every ``HEARTBEAT_S`` seconds by the training process:
  pid, host, state, step. A run whose last status is not final and whose heartbeat is
  older than ``STALE_S`` is shown as crashed, not as running forever.
- ``commands/`` — a viewer drops one JSON file per command (written to a temporary name,
  then renamed, so the engine never reads half a command); the engine applies it to its
  :class:`~engine.run.control.Control` within ``POLL_S`` and deletes it. Several viewers can
  send commands at once.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from engine.run.control import Control
from engine.run.events import RunState

HEARTBEAT = "heartbeat.json"
COMMANDS = "commands"
HEARTBEAT_S = 2.0
STALE_S = 15.0
POLL_S = 0.2
COMMAND_NAMES = ("pause", "resume", "stop", "checkpoint", "adjust")

CRASHED = "crashed"
"""The state :func:`run_state` gives a run whose process died. Not a :class:`RunState`: no
process reports it, a reader infers it from a stale heartbeat."""


def write_json_atomic(path: Path, data: dict) -> None:
    """Readers see the old file or the new one, whole. The temporary name is unique to this
    write: two threads of one process beating at once must not share (and truncate) it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


def send_command(run_dir: str | os.PathLike, command: str, **args: Any) -> Path:
    """Queue a command for the process training ``run_dir`` (pause, resume, stop, checkpoint, adjust)."""
    if command not in COMMAND_NAMES:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMAND_NAMES)}")
    folder = Path(run_dir) / COMMANDS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
    write_json_atomic(path, {"command": command, "args": args, "time": time.time(), "pid": os.getpid()})
    return path


def apply_command(control: Control, record: dict) -> None:
    command, args = record.get("command"), record.get("args") or {}
    if command == "pause":
        control.pause()
    elif command == "resume":
        control.resume()
    elif command == "stop":
        control.stop()
    elif command == "checkpoint":
        control.checkpoint()
    elif command == "adjust" and isinstance(args, dict):
        control.adjust(**args)


class ChannelServer:
    """The training process's side: a daemon thread that beats and serves commands."""

    def __init__(self, run_dir: str | os.PathLike, control: Control, status: Callable[[], dict]) -> None:
        self.root = Path(run_dir)
        self.control = control
        self.status = status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="grpo-channel", daemon=True)
        (self.root / COMMANDS).mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.beat()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.beat()

    def beat(self) -> None:
        try:
            write_json_atomic(self.root / HEARTBEAT, {
                "pid": os.getpid(), "host": socket.gethostname(), "time": time.time(), **self.status(),
            })
        except OSError:
            pass  # a full disk must not stop training; the run will look stale, not wrong

    def poll(self) -> int:
        """Apply every waiting command, oldest first; returns how many."""
        folder = self.root / COMMANDS
        try:
            names = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except OSError:
            return 0
        for path in names:
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                record = None
            try:
                path.unlink()
            except OSError:
                pass
            if isinstance(record, dict):
                apply_command(self.control, record)
        return len(names)

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(POLL_S):
            self.poll()
            if time.monotonic() - last_beat >= HEARTBEAT_S:
                self.beat()
                last_beat = time.monotonic()


def read_heartbeat(run_dir: str | os.PathLike) -> dict | None:
    try:
        return json.loads((Path(run_dir) / HEARTBEAT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def run_state(run_dir: str | os.PathLike, last_status: str, now: float | None = None) -> str:
    """What a run is doing now, from its last written status and its heartbeat.

    A final status (finished, failed) is the answer. Otherwise the run is live only while its
    heartbeat is fresh, and then its last status holds; a stale or missing heartbeat means the
    process died: :data:`CRASHED`."""
    if last_status in (RunState.FINISHED, RunState.FAILED):
        return last_status
    beat = read_heartbeat(run_dir)
    now = time.time() if now is None else now
    if beat is None or now - float(beat.get("time", 0)) > STALE_S:
        return CRASHED
    return last_status  # written at each change, so fresher than the periodic heartbeat
