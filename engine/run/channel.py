"""Reaching a run from another process: a heartbeat out, a command channel in.

Both live in the run directory, so a viewer needs nothing but the path (and works over
SSH from any shell on the machine):

- ``heartbeat.json`` — rewritten every ``HEARTBEAT_S`` seconds for the training process by
  its own small process (:mod:`engine.run.pulse`), which a busy step cannot starve: pid,
  host, state, step. A run whose last status is not final shows as crashed only when its
  process is gone: on the same host the recorded pid is checked; from another host, its
  heartbeat is older than ``STALE_S`` (several intervals).
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

import psutil

from engine.run.control import Control
from engine.run.events import LogEvent, RunState
from engine.run.pulse import Pulse, write_json_atomic

HEARTBEAT = "heartbeat.json"
COMMANDS = "commands"
HEARTBEAT_S = 2.0
STALE_BEATS = 5
STALE_S = STALE_BEATS * HEARTBEAT_S
"""From another host, a heartbeat this old (five missed beats) means the process is gone."""
POLL_S = 0.2
MAX_COMMAND_BYTES = 65536  # a command file is a few hundred bytes; anything longer is not one
COMMAND_NAMES = ("pause", "resume", "stop", "checkpoint", "adjust", "reload_rewards")

CRASHED = "crashed"
"""The state :func:`run_state` gives a run whose process died. Not a :class:`RunState`: no
process reports it, a reader infers it from the heartbeat (a gone pid, or a stale beat)."""


def send_command(run_dir: str | os.PathLike, command: str, **args: Any) -> Path:
    """Queue a command for the process training ``run_dir`` (pause, resume, stop, checkpoint, adjust,
    reload_rewards)."""
    if command not in COMMAND_NAMES:
        raise ValueError(f"unknown command {command!r}; known: {', '.join(COMMAND_NAMES)}")
    folder = Path(run_dir) / COMMANDS
    if folder.is_symlink():
        raise ValueError(f"{folder} is a symbolic link: the run reads no commands through it")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{time.time():.6f}-{uuid.uuid4().hex[:8]}.json"
    write_json_atomic(path, {"command": command, "args": args, "time": time.time(), "pid": os.getpid()})
    return path


def command_problem(record: Any) -> str | None:
    """Why a command file cannot be applied (None when it can): not a known command, or
    arguments that are not a mapping of setting names. The values of an ``adjust`` are the
    trainer's to check, at the step boundary, against the run's config and model."""
    if not isinstance(record, dict):
        return "not a JSON object"
    command, args = record.get("command"), record.get("args")
    if command not in COMMAND_NAMES:
        return f"unknown command {str(command)[:40]!r} (known: {', '.join(COMMAND_NAMES)})"
    if args is not None and not isinstance(args, dict):
        return f"{command}: arguments must be an object, got {type(args).__name__}"
    if command == "adjust" and not all(isinstance(k, str) and k.isidentifier() for k in args or {}):
        return "adjust: setting names must be identifiers"
    if command == "adjust" and not args:
        return "adjust: no setting to change"
    return None


def apply_command(control: Control, record: dict) -> str | None:
    """Apply one command file's record; returns why it was discarded (None when applied)."""
    problem = command_problem(record)
    if problem is not None:
        return problem
    command, args = record.get("command"), record.get("args") or {}
    if command == "pause":
        control.pause()
    elif command == "resume":
        control.resume()
    elif command == "stop":
        control.stop()
    elif command == "checkpoint":
        control.checkpoint()
    elif command == "reload_rewards":
        control.reload_rewards()
    elif command == "adjust":
        control.adjust(**args)
    return None


class ChannelServer:
    """The training process's side: a daemon thread that serves commands every ``POLL_S`` and
    reports the status every ``HEARTBEAT_S`` to the heartbeat process, which writes the beat.

    The thread does nothing else, so commands reach the :class:`Control` at once whenever
    the process can run Python at all; the trainer acts on them at its next safe point. If
    the heartbeat process cannot start or dies, the thread writes the beats itself."""

    def __init__(self, run_dir: str | os.PathLike, control: Control, status: Callable[[], dict]) -> None:
        self.root = Path(run_dir)
        self.control = control
        self.status = status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="grpo-channel", daemon=True)
        self._pulse: Pulse | None = None
        self._identity = {"pid": os.getpid(), "host": socket.gethostname(), "started": process_started(os.getpid())}
        self._warned_link = False
        if not (self.root / COMMANDS).is_symlink():
            (self.root / COMMANDS).mkdir(parents=True, exist_ok=True)

    def start(self) -> None:
        self.beat()
        try:
            self._pulse = Pulse(self.root / HEARTBEAT, HEARTBEAT_S)
        except OSError:
            self._pulse = None  # the channel thread beats alone
        self._report()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        if self._pulse is not None:
            self._pulse.close()  # before the last beat, so none follows it
        self.beat()

    def _record(self) -> dict:
        return {**self._identity, "interval": HEARTBEAT_S, **self.status()}

    def beat(self) -> None:
        """Write the heartbeat now (at start, at each state change, at the end)."""
        try:
            record = self._record()
            now = time.time()
            write_json_atomic(self.root / HEARTBEAT, {**record, "time": now, "answered": now})
            if self._pulse is not None:
                self._pulse.report(record)
        except Exception:  # noqa: BLE001 - a full disk or a broken status must not stop training
            pass  # the run will look stale, not wrong

    def _report(self) -> None:
        """The periodic beat: through the heartbeat process while it lives, else written here."""
        if self._pulse is not None and self._pulse.alive:
            try:
                if self._pulse.report(self._record()):
                    return
            except Exception:  # noqa: BLE001 - as in beat()
                return
        self.beat()

    def poll(self) -> int:
        """Apply every waiting command, oldest first; returns how many."""
        folder = self.root / COMMANDS
        if folder.is_symlink():  # commands are files of the run's own: never delete through a link
            if not self._warned_link:
                self._warned_link = True
                self.control.publish(LogEvent(level="warning", category="command", message=(
                    f"{folder} is a symbolic link: commands are not read from it (remove it to send commands)")))
            return 0
        try:
            names = sorted(p for p in folder.iterdir() if p.suffix == ".json" and not p.name.startswith("."))
        except OSError:
            return 0
        for path in names:
            if path.is_symlink() or not path.is_file():  # only plain files of the run's own are commands
                continue
            try:
                record = json.loads(path.read_bytes()[:MAX_COMMAND_BYTES].decode("utf-8"))
            except (OSError, ValueError):
                record = None
            try:
                path.unlink()
            except OSError:
                pass
            try:
                problem = apply_command(self.control, record)
            except Exception as exc:  # noqa: BLE001 - a crafted command must not end the channel
                problem = f"{type(exc).__name__}: {exc}"
            if problem is not None:
                self.control.publish(LogEvent(level="warning", category="command",
                                              message=f"command {path.name} discarded: {problem}"))
        return len(names)

    def _loop(self) -> None:
        last_report = time.monotonic()
        while not self._stop.wait(POLL_S):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - one bad command file must not end the channel
                pass
            if time.monotonic() - last_report >= HEARTBEAT_S:
                self._report()
                last_report = time.monotonic()


def read_heartbeat(run_dir: str | os.PathLike) -> dict | None:
    try:
        beat = json.loads((Path(run_dir) / HEARTBEAT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return beat if isinstance(beat, dict) else None


def process_started(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None if there is none."""
    try:
        return psutil.Process(pid).create_time()
    except (psutil.Error, OSError):
        return None


def process_alive(pid: int, started: float | None = None) -> bool:
    """Whether ``pid`` is a running process on this host — not a zombie, and, when
    ``started`` is given, the same process that wrote the heartbeat (not a later one that
    was given its pid)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        return started is None or abs(proc.create_time() - float(started)) < 1.0
    except (psutil.Error, OSError, ValueError, TypeError):
        return False


def process_gone(beat: dict, now: float) -> bool:
    """Whether the process that wrote ``beat`` has ended. On the host that wrote it, its pid
    answers; from another host only the beat's age can: older than :data:`STALE_BEATS` of
    its intervals (at least :data:`STALE_S`)."""
    pid = beat.get("pid")
    if beat.get("host") == socket.gethostname() and isinstance(pid, int):
        return not process_alive(pid, beat.get("started"))
    try:
        interval = float(beat.get("interval") or HEARTBEAT_S)
        return now - float(beat.get("time", 0)) > max(STALE_S, STALE_BEATS * interval)
    except (TypeError, ValueError):
        return True


def is_final(status: str) -> bool:
    """A status after which the process writes nothing more (finished, failed)."""
    try:
        return RunState(status).is_terminal
    except ValueError:
        return False


def run_state(run_dir: str | os.PathLike, last_status: str, now: float | None = None) -> str:
    """What a run is doing now, from its last written status and its heartbeat.

    A final status (finished, failed) is the answer. Otherwise the run is live while the
    process that trains it exists (:func:`process_gone`), and then its last status holds; a
    missing heartbeat or a gone process means it died: :data:`CRASHED`. A long step never
    makes a live run look crashed: its heartbeat process goes on beating, and on the same
    host the pid alone decides."""
    if is_final(last_status):
        return last_status
    beat = read_heartbeat(run_dir)
    if beat is None or process_gone(beat, time.time() if now is None else now):
        return CRASHED
    return last_status  # written at each change, so fresher than the periodic heartbeat
