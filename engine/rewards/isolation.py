"""Reward functions in worker processes: a function that hangs, prints, crashes the interpreter
or calls ``os._exit`` costs that batch's rewards, never the run.

Each user reward function (a plugin named in the config, a factory, or a callable handed to
the Python API that pickles by reference) gets a :class:`RewardWorker`: a process of its own,
started with the run and kept for all of it, that calls the function in its main thread
(:mod:`engine.rewards.worker_main`), so math-verify's default ``signal.alarm`` timeouts work
unchanged. Workers of different functions run at the same time.

- A call that does not answer within ``timeout`` seconds (``reward_timeout``) is given up:
  its rewards are None, the worker is killed and a fresh one starts for the next batch.
- A worker that dies mid-call (a segfault, ``os._exit``) costs that batch's rewards, with its
  exit code in the error; the next batch gets a fresh worker.
- What the function prints goes to a file, not the terminal; each call's output comes back
  with its result (the run's events show it).

Built-ins, reward models (they need the trainer's device) and callables that cannot be sent
to another process (lambdas, closures, functions defined in ``__main__`` or a notebook) run
in-process, on the trainer's thread, with no timeout. :func:`isolate` says which runs where.
"""

from __future__ import annotations

import atexit
import inspect
import os
import pickle
import subprocess
import sys
import tempfile
import time
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Callable

OUTPUT_MAX_CHARS = 4000  # of one call's printed output, in its event
_LIVE: "weakref.WeakSet[RewardWorker]" = weakref.WeakSet()
_ENGINE_ROOT = str(Path(__file__).resolve().parents[2])  # the folder holding the engine package
_WORKER_BOOT = ("import runpy, sys; root = sys.argv.pop(1); sys.path.insert(0, root); "
                "runpy.run_module('engine.rewards.worker_main', run_name='__main__', alter_sys=True)")


class WorkerFailed(Exception):
    """One call's rewards are lost (timed out, the worker died, or it cannot load the function:
    ``load_failed``); ``str(e)`` is the one line the run's events show."""

    def __init__(self, message: str, load_failed: bool = False) -> None:
        super().__init__(message)
        self.load_failed = load_failed


class RewardWorker:
    """One reward function's worker process, started lazily and replaced when it dies.

    ``target``: how the child finds the function, ``("spec", spec, factory kwargs or None)`` or
    ``("pickled", bytes)``. Calls go :meth:`submit` then :meth:`collect`, so the workers of
    several functions compute at once."""

    def __init__(self, name: str, target: tuple, timeout: float) -> None:
        self.name, self.target, self.timeout = name, target, float(timeout)
        self._proc: subprocess.Popen | None = None
        self._inbox: Connection | None = None  # what the child sends
        self._outbox: Connection | None = None  # what the child reads
        self._ready = False
        self._sent_history = 0  # log_history entries this worker already has
        self._deadline = 0.0
        # The child's stdout and stderr; appended to, and emptied once read, so a long run's
        # prints do not pile up on disk.
        self._output = tempfile.TemporaryFile(mode="a+b", prefix="grpo-reward-")
        _LIVE.add(self)

    # ---- life cycle
    def start(self) -> None:
        """Start the process and send it what to load (it loads while the run sets up)."""
        child_in, parent_out = os.pipe()
        parent_in, child_out = os.pipe()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ENGINE_ROOT, env.get("PYTHONPATH")) if p)
        try:
            self._proc = subprocess.Popen(
                # not `-m`: that puts the working folder first, where a module named `engine` would hide ours
                [sys.executable, "-c", _WORKER_BOOT, _ENGINE_ROOT, str(child_in), str(child_out)],
                stdin=subprocess.DEVNULL, stdout=self._output, stderr=subprocess.STDOUT,
                pass_fds=(child_in, child_out), env=env,
                start_new_session=True,  # Ctrl+C in the dashboard's terminal is the trainer's to handle
            )
        except OSError:
            os.close(parent_in)
            os.close(parent_out)
            raise
        finally:
            os.close(child_in)
            os.close(child_out)
        self._inbox = Connection(parent_in, writable=False)
        self._outbox = Connection(parent_out, readable=False)
        self._ready, self._sent_history = False, 0
        self._outbox.send({"sys_path": list(sys.path), "target": self.target})

    def close(self) -> None:
        """End the process (it exits when its input closes; killed if it does not)."""
        proc, self._proc = self._proc, None
        for conn in (self._outbox, self._inbox):
            if conn is not None:
                try:
                    conn.close()
                except OSError:
                    pass
        self._inbox = self._outbox = None
        if proc is not None and proc.poll() is None:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def _replace(self) -> None:
        """Kill this worker's process; the next call starts a fresh one."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        self.close()

    # ---- calls
    def _wait_ready(self) -> None:
        if self._ready:
            return
        if not self._inbox.poll(self.timeout):
            self._replace()
            raise WorkerFailed(f"its worker process did not load it within reward_timeout ({self.timeout:g} s)")
        try:
            kind, message = self._inbox.recv()
        except (EOFError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self.close()
            raise WorkerFailed(f"its worker process ended while loading it (exit code {code})"
                               f"{self._output_hint()}", load_failed=True) from None
        if kind == "load_error":
            self.close()
            raise WorkerFailed(message, load_failed=True)
        self._ready = True

    def submit(self, payload: bytes, history: list) -> None:
        """Send one call (the pickled keyword arguments) and the new ``log_history`` entries."""
        if self._proc is None or self._proc.poll() is not None:
            self.close()
            self.start()
        self._wait_ready()
        try:
            self._outbox.send_bytes(payload)
            self._outbox.send(history[self._sent_history:])
        except (BrokenPipeError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self.close()
            raise WorkerFailed(f"its worker process ended (exit code {code})") from None
        self._sent_history = len(history)
        self._deadline = time.monotonic() + self.timeout

    def collect(self, cancelled: Callable[[], bool] | None = None) -> tuple[Any, dict, dict]:
        """``(values, log_extra columns, log_metric values)`` of the call sent last. Raises
        :class:`WorkerFailed` when it timed out, ``cancelled()`` turned true while waiting (a stop
        was asked for) or the worker died (the worker is replaced), or when the function raised
        (its one-line error)."""
        while not self._inbox.poll(min(max(self._deadline - time.monotonic(), 0.0), 0.25)):
            if cancelled is not None and cancelled():
                self._replace()
                raise WorkerFailed("given up because the run is stopping: the batch's rewards are None")
            if time.monotonic() >= self._deadline:
                self._replace()
                raise WorkerFailed(f"no result within reward_timeout ({self.timeout:g} s): the batch's rewards "
                                   "are None and its worker process was replaced")
        try:
            reply = self._inbox.recv()
        except (EOFError, OSError):
            code = self._proc.wait() if self._proc is not None else None
            self.close()
            raise WorkerFailed(f"its worker process ended (exit code {code}) during the call: the batch's "
                               "rewards are None and a fresh worker takes the next batch") from None
        kind, value, extra, metrics = reply
        if kind == "error":
            raise WorkerFailed(value)
        return value, extra, metrics

    def output(self) -> str:
        """What the function printed since the last call to this (at most OUTPUT_MAX_CHARS)."""
        fd = self._output.fileno()
        size = os.fstat(fd).st_size
        if not size:
            return ""
        data = os.pread(fd, min(size, 1 << 20), 0)
        os.ftruncate(fd, 0)  # the child is between calls (or gone): nothing is being written
        text = data.decode("utf-8", errors="replace").rstrip()
        if len(text) > OUTPUT_MAX_CHARS:
            text = text[:OUTPUT_MAX_CHARS] + f"… ({len(text) - OUTPUT_MAX_CHARS} more characters)"
        return text

    def _output_hint(self) -> str:
        text = self.output()
        return f": {text.splitlines()[-1]}" if text else ""


# --------------------------------------------------------------------------- which runs where


def _reads_environments(fn) -> bool:
    """Whether a reward function names an ``environments`` parameter (TRL passes the episodes'
    environment instances under that name)."""
    try:
        return "environments" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def worker_target(func) -> tuple[tuple | None, str]:
    """``(target, why)``: how a worker finds ``func`` (a
    :class:`~engine.rewards.scoring.RewardFunction`), or None and why it runs in-process."""
    from engine.rewards.builtins import _BUILTINS
    from engine.rewards.plugins import is_plugin_spec
    from engine.rewards.reward_models import RewardModel

    if isinstance(func.fn, RewardModel):
        return None, "a reward model, on the trainer's device"
    if func.spec == "environment" or _reads_environments(func.fn):
        return None, "it reads the episodes' environments, which live in the trainer's process"
    if func.spec in _BUILTINS and getattr(func.fn, "__module__", "") in ("engine.rewards.builtins",
                                                                         "engine.rewards.open_r1"):
        return None, "built in"
    if os.name == "nt":
        return None, "worker processes are POSIX-only"
    if is_plugin_spec(func.spec):
        return ("spec", func.spec, func.kwargs), ""
    module = getattr(func.fn, "__module__", None)
    if module == "__main__":
        return None, "defined in __main__ (a script or notebook), which a worker cannot import"
    try:
        return ("pickled", pickle.dumps(func.fn)), ""
    except Exception as exc:  # noqa: BLE001 - lambdas, closures, objects holding locks ...
        return None, f"cannot be sent to another process ({type(exc).__name__})"


def isolate(funcs: list, timeout: float) -> list[str]:
    """Give each of ``funcs`` that can have one a started :class:`RewardWorker`
    (``func.worker``); one line per function saying where it runs."""
    lines = []
    for func in funcs:
        target, why = worker_target(func)
        if target is None:
            func.worker = None
            lines.append(f"{func.name}: in-process ({why})")
            continue
        func.worker = RewardWorker(func.name, target, timeout)
        try:
            func.worker.start()
        except OSError as exc:  # no processes or file descriptors to spare
            func.worker.close()
            func.worker = None
            lines.append(f"{func.name}: in-process (its worker process did not start: {exc.strerror or exc})")
            continue
        lines.append(f"{func.name}: worker process (reward_timeout {timeout:g} s)")
    return lines


def close_workers(funcs) -> None:
    """End the worker processes of ``funcs``."""
    for func in funcs or ():
        worker = getattr(func, "worker", None)
        if worker is not None:
            worker.close()
            func.worker = None


@atexit.register
def _close_all() -> None:
    for worker in list(_LIVE):
        worker._replace()
