"""How the ranks of a multi-process run meet signals and their own end: the launcher passes
the terminal's Ctrl-C and hangup to them (grpo_tui.cli.rank_launcher), a rank keeps a signal
that comes before its run can act on it, and a finished rank exits without the interpreter's
teardown."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.run.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[3]
LAUNCH_TIMEOUT = 240


def _env() -> dict:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "ACCELERATE_USE_CPU": "1"}


RANK_EXIT = """
import atexit, sys, threading, time
import torch.distributed as dist
import grpo_tui.cli.headless as headless

dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
atexit.register(lambda: print("exit functions ran; group left:", not dist.is_initialized()))
threading.Thread(target=lambda: time.sleep(60), daemon=True).start()
threading.Thread(target=lambda: (time.sleep(0.5), print("worker thread done"))).start()  # waited for
from concurrent.futures import ThreadPoolExecutor
pool = ThreadPoolExecutor(2)  # idle workers, which only threading's exit hooks end
pool.submit(print, "pool used").result()


class Teardown:
    def __del__(self):
        print("interpreter teardown")


keep = Teardown()
headless._run_and_report = lambda trainer: 3  # a run that ended with code 3
print("run over", end="")  # unflushed output must still come out
headless._run_headless(None)
print("not reached")
"""


def test_a_rank_leaves_its_group_and_exits_without_the_interpreters_teardown(tmp_path):
    """A finished rank must not abort in the interpreter's teardown (where a daemon thread
    inside torch, or a process-group thread, can end it with "terminate called without an
    active exception" and fail the launch): exit functions run, output is flushed, the
    teardown is skipped, and the run's exit code stands."""
    proc = subprocess.run([sys.executable, "-c", RANK_EXIT, str(tmp_path / "store")], cwd=ROOT, env=_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "run over" in proc.stdout
    assert proc.stdout.index("worker thread done") < proc.stdout.index("exit functions ran; group left: True")
    assert "not reached" not in proc.stdout
    assert "interpreter teardown" not in proc.stdout


def test_the_launcher_passes_each_stop_on_once_and_knows_the_stop_it_asked_for():
    """A SIGTERM that reaches the launcher twice at once (sent to the whole process group, and
    passed on by the process that started it) is one stop for the ranks; a second Ctrl-C is a
    second however soon it comes (the ranks then abandon the run), and a third kills them; a
    stop before any rank has started ends the launch."""
    import signal

    from grpo_tui.cli.rank_launcher import Relay

    class Rank:
        def __init__(self):
            self.got = []

        def send_signal(self, signum):
            self.got.append(signum)

    now = [100.0]
    ranks = [Rank(), Rank()]
    relay = Relay(clock=lambda: now[0], ranks=lambda: ranks)
    with pytest.raises(SystemExit) as ended:
        relay.receive(signal.SIGINT)
    assert ended.value.code == 130 and ranks[0].got == []
    relay = Relay(clock=lambda: now[0], ranks=lambda: ranks)
    relay.launching = True
    relay.receive(signal.SIGTERM)
    now[0] += 0.01
    relay.receive(signal.SIGTERM)  # the same SIGTERM by its second way
    assert [r.got for r in ranks] == [[signal.SIGTERM]] * 2
    assert relay.asked_for(143) and not relay.asked_for(130) and not relay.asked_for(1)
    relay.receive(signal.SIGINT)
    now[0] += 0.01
    relay.receive(signal.SIGINT)
    # the second stop abandons the run; the third kills the ranks (one stuck in a collective acts on neither)
    assert [r.got for r in ranks] == [[signal.SIGTERM, signal.SIGINT, signal.SIGKILL]] * 2
    assert relay.asked_for(130) and relay.asked_for(-2)  # (a rank the signal itself ended)


def test_a_stop_while_the_ranks_are_being_started_reaches_them_once_they_are():
    import signal

    from grpo_tui.cli.rank_launcher import PASSED_ON, Relay

    class Rank:
        got: list = []

        def send_signal(self, signum):
            self.got.append(signum)

    ranks: list = []
    relay = Relay(ranks=lambda: ranks)
    relay.launching = True
    relay.receive(signal.SIGTERM)  # accelerate is starting torch's launcher: no rank yet
    ranks.append(Rank())
    saved = {signum: signal.getsignal(signum) for signum in PASSED_ON}
    try:
        relay.ranks_started()
        assert all(signal.getsignal(signum) == relay.receive for signum in PASSED_ON)  # the relay's again
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
    assert ranks[0].got == [signal.SIGTERM] and relay.pending == []


HELD = """
import os, signal
from grpo_tui.model.signals import Signals, hold_from_start

hold_from_start()
os.kill(os.getpid(), signal.SIGINT)  # while the rank still imports torch and loads its model
os.kill(os.getpid(), signal.SIGHUP)
signals = Signals().install((signal.SIGINT, signal.SIGTERM, signal.SIGHUP))
print("stops", signals.stops, "hangup", signals.hangup, file=open(os.environ["OUT"], "w"))
"""


def test_a_rank_keeps_the_signals_that_come_before_its_run_can_act_on_them(tmp_path):
    """A signal passed on before the rank's run installs its handlers neither kills the rank nor
    raises KeyboardInterrupt in an import: the run's handlers act on it when they come."""
    out = tmp_path / "out.txt"
    proc = subprocess.run([sys.executable, "-c", HELD], cwd=ROOT, env={**_env(), "OUT": str(out)},
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_text().split() == ["stops", "[2]", "hangup", "True"]


def _wait_for_step(run: Path, step: int, proc: subprocess.Popen, log: Path) -> int:
    """The newest step logged, once it is ``step`` or later (the run's output on failure)."""
    deadline = time.monotonic() + LAUNCH_TIMEOUT
    while True:
        output = log.read_text()[-3000:] if log.exists() else f"(no {log.name})"
        metrics = read_jsonl(run / "metrics.jsonl") if (run / "metrics.jsonl").exists() else []
        if metrics and metrics[-1]["step"] >= step:
            return metrics[-1]["step"]
        assert proc.poll() is None, f"exit {proc.returncode}: {output}"
        assert time.monotonic() < deadline, f"no step {step}: {output}"
        time.sleep(0.05)


def test_a_foreground_two_process_run_outlives_its_terminal_and_stops_on_ctrl_c(tmp_path):
    """``--num-processes 2`` in a terminal: the terminal going away (SIGHUP to the command's
    process group) leaves the run going, its output in console.log; Ctrl-C (SIGINT to the group)
    then stops it at a step boundary with a checkpoint and the final model, exit 130, with no
    launcher traceback. (torch's launcher used to kill the ranks 30 s after either signal.)"""
    import signal

    run, terminal = tmp_path / "run", tmp_path / "terminal.txt"
    with open(terminal, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "grpo_tui", "train", "tiny-arithmetic", "--headless", "--num-processes", "2",
             "--max-steps", "5000", "--output", str(run), "--set", "dataset.task_args.eval_size=16"],
            cwd=ROOT, env=_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        hung_up_at = _wait_for_step(run, 2, proc, terminal)
        os.killpg(proc.pid, signal.SIGHUP)
        _wait_for_step(run, hung_up_at + 5, proc, run / "console.log")
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=LAUNCH_TIMEOUT)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    console = (run / "console.log").read_text()
    assert proc.returncode == 130, terminal.read_text()[-2000:] + console[-3000:]
    assert "Traceback" not in terminal.read_text() + console
    assert "Warning:" not in terminal.read_text() + console  # (libraries' deprecations, on every rank's screen)
    assert "stopped by SIGINT at step" in console and "model saved to" in console
    stop = max(r["step"] for r in read_jsonl(run / "metrics.jsonl"))
    assert (run / "checkpoints" / f"step-{stop:06d}" / "COMPLETE").exists()
    assert (run / "final" / "config.json").exists()
