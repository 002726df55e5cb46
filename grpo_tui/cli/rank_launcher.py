"""accelerate's launcher (``accelerate launch``), with the terminal's signals left to the ranks.

Run as ``python -m grpo_tui.cli.rank_launcher ARGS``, with the arguments of ``accelerate launch``.
torch's elastic launcher, under accelerate, answers SIGINT, SIGTERM and SIGHUP itself: it passes
the signal to every rank, gives them 30 seconds and kills them. A rank stops at its next step
boundary with a checkpoint (SIGINT, SIGTERM) or goes on with its output in the run's console.log
(SIGHUP), so a stop during a step longer than 30 seconds lost the step and its checkpoint, and a
dropped SSH connection ended the run half a minute later, without one. Here the launcher passes
the three signals to its ranks and keeps waiting for them:

- SIGINT, SIGTERM: the run stops at the step boundary with a checkpoint and the final model; a
  second one abandons it (what a single process does, see :mod:`grpo_tui.model.signals`); a
  third kills the ranks, for one stuck where it cannot act on a signal;
- SIGHUP: the launcher's own output moves to the run's console.log and the run goes on.

When the ranks end, a rank's failure is one line, not the elastic launcher's report."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

CONSOLE_LOG_ENV = "GRPO_TUI_CONSOLE_LOG"
"""Where the launcher's output goes once the terminal is gone (the run's console.log)."""

PASSED_ON = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


REPEAT_S = 1.0
"""A SIGTERM again within this many seconds is one signal that came two ways (to the whole process
group, and passed on by the process that started the launcher), not a second stop. (A Ctrl-C
comes one way: that process leaves it to the launcher.)"""


KILL_AFTER = 3
"""The stop signal that kills the ranks outright (the first stops at the step boundary, the
second abandons the run)."""


class Relay:
    """Passes the signals it receives to the ranks (this process's children) and remembers the
    stop signals, so that ranks ending on them are a stop asked for, not a failure."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, ranks: Callable[[], list] | None = None) -> None:
        self.clock = clock
        self.ranks = ranks or _children
        self.stops: list[int] = []
        self.launching = False  # set once the ranks are being started
        self.pending: list[int] = []  # stops that came while no rank was there yet
        self._last: dict[int, float] = {}

    def install(self) -> Relay:
        for signum in PASSED_ON:
            signal.signal(signum, self.receive)
        return self

    def receive(self, signum: int, frame=None) -> None:
        from grpo_tui.model.signals import exit_code, send_output_to

        now, last = self.clock(), self._last.get(signum)
        if signum == signal.SIGTERM and last is not None and now - last < REPEAT_S:
            return
        self._last[signum] = now
        if signum == signal.SIGHUP:  # ranks started from now on write where this process does
            send_output_to(_console_log())  # the next write to the terminal would fail
        else:
            self.stops.append(signum)
            if not self.launching:  # no rank yet to stop: the launch does not start
                raise SystemExit(exit_code(signum))
            if len(self.stops) >= KILL_AFTER:  # the ranks did not end on the second: stuck where Python
                signum = signal.SIGKILL  # cannot run a handler (a collective whose peer is gone)
        if not self._send(signum) and signum != signal.SIGHUP:
            self.pending.append(signum)

    def _send(self, signum: int) -> int:
        """Pass ``signum`` to every rank; how many there were."""
        import psutil

        ranks = self.ranks()
        for rank in ranks:
            try:
                rank.send_signal(signum)
            except psutil.NoSuchProcess:
                pass
        return len(ranks)

    def ranks_started(self) -> None:
        """The ranks exist now: take the signals back (torch's launcher before 2.7 sets its own
        while it starts them) and pass on the stops that came before."""
        self.install()
        pending, self.pending = self.pending, []
        for signum in pending:
            self._send(signum)

    def asked_for(self, exit_code: int) -> bool:
        """Whether a rank's ``exit_code`` is the stop these signals asked for: 128 + the signal,
        or the signal itself (negative) for a rank it ended before the rank could act on it."""
        return any(shell_code(exit_code) == shell_code(-signum) for signum in self.stops)


def _console_log() -> str | None:
    """The run's console.log, its folder made if the run has not made it yet; None (/dev/null)
    where it cannot be written."""
    path = os.environ.get(CONSOLE_LOG_ENV)
    if path:
        try:
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "a"):
                pass
            return path
        except OSError:
            pass
    return None


def _children() -> list:
    """The ranks the terminal's signals do not reach: this process's children in another process
    group (the elastic launcher starts each rank in a session of its own; a single process,
    which accelerate starts in this group, has the terminal's signals already)."""
    import psutil

    group = os.getpgid(0)
    ranks = []
    for child in psutil.Process().children():
        try:
            if os.getpgid(child.pid) != group:
                ranks.append(child)
        except ProcessLookupError:
            pass
    return ranks


def describe_failure(rank: int, exit_code: int, pid: int | None) -> str:
    """One line for a rank that failed: its exit code, or the signal that ended it.

    >>> describe_failure(1, 1, 4242)
    'rank 1 (pid 4242) exited with code 1'
    >>> describe_failure(0, -9, None)
    'rank 0 was ended by SIGKILL'
    """
    who = f"rank {rank}" + (f" (pid {pid})" if pid else "")
    if exit_code < 0:
        try:
            name = signal.Signals(-exit_code).name
        except ValueError:
            name = f"signal {-exit_code}"
        return f"{who} was ended by {name}"
    return f"{who} exited with code {exit_code}"


def main(argv: list[str]) -> int:
    relay = Relay().install()
    try:
        return _launch(relay, argv)
    except KeyboardInterrupt:  # a signal while torch's launcher had Python's default handler in
        return shell_code(-signal.SIGINT)


def _launch(relay: Relay, argv: list[str]) -> int:
    import torch.distributed.run as distributed_run
    from accelerate.commands.launch import launch_command, launch_command_parser
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError

    elastic_run = distributed_run.run

    def run(elastic_args):  # torchrun's --signals_to_handle, which accelerate does not pass on
        elastic_args.signals_to_handle = "SIGQUIT"  # the rest is the relay's
        return elastic_run(elastic_args)

    distributed_run.run = run
    from torch.distributed.elastic.multiprocessing import api as elastic_api

    start = elastic_api.PContext.start

    def start_then_relay(context) -> None:
        start(context)
        relay.ranks_started()

    elastic_api.PContext.start = start_then_relay

    args = launch_command_parser().parse_args(argv)
    logging.getLogger("torch.distributed.elastic").setLevel(logging.CRITICAL)  # failures: our line below
    relay.launching = True
    try:
        launch_command(args)
    except subprocess.CalledProcessError as e:  # one process, which accelerate starts by itself
        relay.install()  # (torch's launcher may have reset the handlers on its way out)
        if not relay.asked_for(e.returncode):
            print(f"grpo-tui: {describe_failure(0, e.returncode, None)}", file=sys.stderr, flush=True)
        return shell_code(e.returncode)
    except ChildFailedError as e:
        relay.install()
        codes = {rank: failure.exitcode for rank, failure in e.failures.items()}
        if codes and all(relay.asked_for(code) for code in codes.values()):
            return shell_code(max(codes.values(), key=abs))  # the stop the user asked for: the ranks said so
        for rank, failure in sorted(e.failures.items()):
            print(f"grpo-tui: {describe_failure(rank, failure.exitcode, failure.pid)}", file=sys.stderr, flush=True)
        return shell_code(next((code for code in codes.values() if code), 1))
    return 0


def shell_code(code: int) -> int:
    """A process's exit code as a shell reports it: a signal's ending (negative) is 128 + the signal.

    >>> shell_code(130), shell_code(-2), shell_code(-9), shell_code(0)
    (130, 130, 137, 0)
    """
    return code if code >= 0 else 128 - code


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
