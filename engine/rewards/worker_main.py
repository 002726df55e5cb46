"""The reward worker process: loads one reward function and calls it, batch after batch, in
its main thread (``python -m engine.rewards.worker_main FD_IN FD_OUT``).

Running in a process's main thread is what math-verify's default timeouts need
(``signal.alarm`` works only there), and a process of its own is what lets the trainer kill a
function that hangs, survive one that crashes the interpreter or calls ``os._exit``, and keep
its prints off the dashboard's terminal (this process's stdout and stderr are a file the
trainer reads). The parent side is :mod:`engine.rewards.isolation`.

Protocol (pickles over two pipes): the parent sends ``{"sys_path", "target"}``; this process
answers ``("ready", None)`` or ``("load_error", message)``. Then, per batch, the parent sends the
call's keyword arguments (pickled bytes) and the ``log_history`` entries added since the last
call; this process answers ``("result", values, extra, metrics)`` or ``("error", message,
extra, metrics)``. End of input (the parent closed the pipe or died) ends the process.

Only light modules are imported here (no torch): each worker starts in well under a second
plus what the reward function itself imports.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
import sys
from multiprocessing.connection import Connection


def _load(target: tuple):
    from engine.rewards.plugins import _resolve_plugin, build_factory

    kind = target[0]
    if kind == "spec":
        _, spec, kwargs = target
        return build_factory(spec, kwargs) if kwargs is not None else _resolve_plugin(spec)
    return pickle.loads(target[1])  # a callable handed to the Python API, pickled by reference


def _plain(value):
    """What a log_extra cell travels as: numbers, text, booleans and None as they are, other
    objects (a parsed expression) as their text, so any value pickles back."""
    return value if value is None or isinstance(value, (str, bool, int, float)) else str(value)


async def _await(awaitable):
    return await awaitable


def _call(fn, kwargs: dict) -> tuple:
    from engine.rewards.common import _format_exception
    from engine.rewards.contract import RewardLog

    log = RewardLog()
    try:
        values = fn(**kwargs, log_extra=log.log_extra, log_metric=log.log_metric)
        if inspect.isawaitable(values):
            values = asyncio.run(_await(values))
        if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):  # a tensor or an array
            values = values.tolist()
        elif isinstance(values, (list, tuple)):
            values = list(values)
        reply = ("result", values)
    except (Exception, SystemExit) as exc:
        reply = ("error", _format_exception(exc))
    extra = {column: [_plain(v) for v in values_] for column, values_ in log.extra.items()}
    return (*reply, extra, log.metrics)


def main(fd_in: int, fd_out: int) -> None:
    inbox, outbox = Connection(fd_in, writable=False), Connection(fd_out, readable=False)
    try:
        init = inbox.recv()
    except EOFError:
        return
    sys.path[:] = init["sys_path"]
    try:
        fn = _load(init["target"])
    except BaseException as exc:  # noqa: BLE001 - the parent reports it and runs the function in-process
        from engine.rewards.common import _format_exception

        outbox.send(("load_error", _format_exception(exc)))
        return
    outbox.send(("ready", None))
    history: list = []
    while True:
        try:
            payload = inbox.recv_bytes()
            history.extend(inbox.recv())
        except (EOFError, OSError):
            return
        kwargs = pickle.loads(payload)
        kwargs["trainer_state"].log_history = history
        reply = _call(fn, kwargs)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            outbox.send(reply)
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            outbox.send(("error", f"its result could not be sent back: {type(exc).__name__}: {exc}", {}, reply[3]))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
