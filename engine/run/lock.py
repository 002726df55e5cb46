"""One process per run directory: an OS lock held for the life of the training process.

Two processes training one directory rewrite each other's logs and race for its commands
(a ``resume`` of a paused run, a second dashboard, a script). The lock is ``flock`` on
``<run>/.lock``: the operating system releases it when the process ends however it ends
(kill -9 included), so a crashed run never leaves a stale lock behind. The file holds the
holder's pid and host, for the message that refuses the second process.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

try:
    import fcntl
except ImportError:  # not POSIX: no lock (the heartbeat check still refuses a live run)
    fcntl = None

LOCK = ".lock"
WAIT_S = 10.0  # how long a second process waits for the first to let go (a hand-over in progress)


class RunLocked(RuntimeError):
    """Another process trains this run directory."""


class RunLock:
    """``acquire()`` the run directory for this process (waiting up to ``wait_s`` for a
    process that is handing the run over), ``release()`` when training ends."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK
        self._fd: int | None = None

    def acquire(self, wait_s: float | None = None) -> None:
        wait_s = WAIT_S if wait_s is None else wait_s
        if fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _holder(fd)
                    os.close(fd)
                    raise RunLocked(f"run directory {self.path.parent} is being trained by {holder}: "
                                    f"watch it with grpo-tui attach {self.path.parent}, or stop it first") from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the lock
            self._fd = None


def _holder(fd: int) -> str:
    """``process 1234 on host`` from the lock file, as far as it says."""
    try:
        record = json.loads(os.pread(fd, 4096, 0) or b"{}")
        return f"process {record['pid']} on {record['host']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
