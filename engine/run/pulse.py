"""The heartbeat's own process: beats on its own schedule, whatever the trainer is doing.

A thread of the training process cannot promise that. Python threads share one lock (the
GIL), and a C call that holds it starves every other thread for as long as it runs: a
``re`` match that backtracks, or a big-integer power. math-verify meets the second when a
completion answers ``3^{3^{15}}`` (sympy evaluates it exactly: 10 s holding the GIL; one
more level of exponent, minutes), and its own timeouts cannot run off the main thread. So
the heartbeat is written by a small child process (the standard library only, started as
a script) that is told the trainer's status through a pipe and rewrites ``heartbeat.json``
every interval with the trainer's pid, whatever that process is doing:

- ``time`` — when this beat was written (the child's clock, so it never stalls);
- ``answered`` — when the trainer last reported its status (old while a step is busy);
- ``pid``, ``host``, ``started`` — which process trains the run, for readers to check that
  it still exists (see :func:`engine.run.channel.run_state`).

The child stops beating when the trainer closes the pipe or dies (end of file on the pipe,
or its parent changes), so a dead trainer leaves a heartbeat that goes stale. It runs in
its own session: a terminal's hang-up or Ctrl-C reaches the trainer, never the heartbeat.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path


def write_json_atomic(path: Path, data: dict) -> None:
    """Readers see the old file or the new one, whole. The temporary name is unique to this
    write: two threads (or processes) beating at once must not share (and truncate) it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(data), encoding="utf-8")
    os.replace(tmp, path)


class Pulse:
    """The trainer's handle on its heartbeat process. ``report`` never blocks: a status
    that cannot be written to the pipe at once is dropped (the next one replaces it)."""

    def __init__(self, path: Path, interval: float) -> None:
        self._lock = threading.Lock()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(Path(__file__).resolve()), str(path), str(interval), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)
        os.set_blocking(self.proc.stdin.fileno(), False)

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def report(self, record: dict) -> bool:
        """Send the trainer's status (one JSON line, well under the pipe's atomic size)."""
        line = (json.dumps(record) + "\n").encode()
        with self._lock:
            try:
                os.write(self.proc.stdin.fileno(), line)
                return True
            except (BlockingIOError, BrokenPipeError, OSError, ValueError):
                return False

    def close(self, timeout: float = 2.0) -> None:
        """End the process (end of file on its pipe) and wait for it, so no beat follows."""
        with self._lock:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _beat_forever(path: Path, interval: float, parent: int) -> None:
    """The child's loop: write a beat every ``interval`` seconds with the newest status read
    from stdin; return on end of file or when ``parent`` is no longer the parent."""
    stdin = sys.stdin.fileno()
    os.set_blocking(stdin, False)
    record: dict = {}
    pending = b""
    next_beat = time.time()
    while os.getppid() == parent:
        wait = max(0.0, next_beat - time.time())
        readable, _, _ = select.select([stdin], [], [], wait)
        if readable:
            try:
                chunk = os.read(stdin, 65536)
            except BlockingIOError:  # a spurious wake-up, not end of file
                continue
            if not chunk:
                return  # the trainer closed the pipe or died
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                try:
                    update = json.loads(line)
                except ValueError:
                    continue
                if isinstance(update, dict):
                    record = {**update, "answered": time.time()}
            if time.time() < next_beat:
                continue
        if record:
            try:
                write_json_atomic(path, {**record, "time": time.time(), "interval": interval})
            except OSError:
                pass  # a full disk: the run looks stale, the trainer goes on
        next_beat = time.time() + interval


if __name__ == "__main__":
    import signal

    for name in ("SIGINT", "SIGHUP"):  # belt and braces: its own session already shields it
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    _beat_forever(Path(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]))
