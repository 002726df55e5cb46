"""Signals to a process that trains: SIGTERM and SIGINT stop a headless run at a step boundary
with a checkpoint (resumable, no step redone), a second one abandons it, and a dashboard whose
terminal goes away (tmux killed, as an SSH drop does) trains on as a detached run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from conftest import ROOT, cli, wait_until
from engine.run.channel import read_heartbeat
from engine.run.checkpoints import checkpoint_step, latest_checkpoint
from engine.run.rundir import read_jsonl

pytestmark = pytest.mark.slow

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
QUICK = ["--set", "dataset.task_args.eval_size=32", "--set", "eval_steps=0", "--set", "save_steps=0"]


def steps(run_dir) -> list[int]:
    return [r["step"] for r in read_jsonl(run_dir / "metrics.jsonl")] if (run_dir / "metrics.jsonl").exists() else []


def events(run_dir) -> list[dict]:
    return read_jsonl(run_dir / "events.jsonl")


def alive(pid: int) -> bool:
    """The process runs (a zombie, which nobody may reap here, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_sigterm_stops_headless_run_at_a_checkpoint_and_resume_redoes_no_step(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(cli("train", "tiny-arithmetic", "--headless", "--max-steps", "60", *QUICK,
                                "--output", str(run)), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(steps(run)) >= 5, what="5 steps")
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out  # stopped early by SIGTERM: not "finished"
    done = steps(run)
    assert done == list(range(len(done))) and done[-1] < 60
    newest = latest_checkpoint(run)
    assert newest is not None and checkpoint_step(newest) == done[-1]  # the checkpoint is at the stop
    assert (run / "final" / "model.safetensors").exists()
    messages = [e["message"] for e in events(run)]
    assert any("SIGTERM received" in m for m in messages)
    assert f"run stopped at step {done[-1]} of 60" in messages
    assert "stopped by SIGTERM" in out and f"grpo-tui resume {run}" in out

    resumed = subprocess.run(cli("resume", str(run), "--headless"), cwd=ROOT, env=ENV, capture_output=True,
                             text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert steps(run) == list(range(61))  # each step exactly once: none redone, none lost
    assert any(e["kind"] == "resume" and f"at step {done[-1]}" in e["message"] for e in events(run))


def test_a_second_stop_signal_abandons_at_once_and_says_what_stays(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.Popen(cli("train", "tiny-arithmetic", "--headless", "--max-steps", "400", *QUICK,
                                "--output", str(run)), cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: len(steps(run)) >= 3, what="3 steps")
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGINT)  # before the stop can take effect: abandon
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Python runs pending handlers in signal-number order: either may count as the second
    assert proc.returncode in (130, 143), out
    second = signal.Signals(proc.returncode - 128).name
    abandoned = [e for e in events(run) if e["kind"] == "abandon"]
    assert len(abandoned) == 1 and f"second {second}" in abandoned[0]["message"], out
    assert abandoned[0]["message"] in out
    assert not (run / "final").exists()


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")
def test_dashboard_trains_on_when_its_terminal_goes_away(tmp_path):
    run = tmp_path / "run"
    socket = f"grpo-sig-{uuid.uuid4().hex[:8]}"  # a tmux server of its own
    tmux = ["tmux", "-L", socket]
    command = " ".join([f"HF_HUB_OFFLINE=1 {sys.executable} -m grpo_tui run tiny-arithmetic --max-steps 3000",
                        *QUICK, "--output", str(run)])
    pid = None
    try:
        # a shell in tmux, the command typed into it: what a user on an SSH session does
        subprocess.run([*tmux, "new-session", "-d", "-s", "train", "-x", "120", "-y", "40", "-c", str(ROOT),
                        "bash --norc --noprofile"], check=True, env=ENV)
        subprocess.run([*tmux, "send-keys", "-t", "train", command, "Enter"], check=True)
        wait_until(lambda: len(steps(run)) >= 5 and (read_heartbeat(run) or {}).get("pid"), what="5 steps")
        pid = read_heartbeat(run)["pid"]
        subprocess.run([*tmux, "kill-session", "-t", "train"], check=True)

        at_close = len(steps(run))
        wait_until(lambda: len(steps(run)) >= at_close + 20, what="steps after the terminal went away")
        assert alive(pid)
        closed = [e for e in events(run) if e["kind"] == "detach"]
        assert len(closed) == 1 and "terminal closed" in closed[0]["message"]
        assert "terminal closed" in (run / "console.log").read_text()
        listed = subprocess.run(cli("runs", "--root", str(tmp_path)), cwd=ROOT, env=ENV, capture_output=True,
                                text=True, timeout=120)
        assert "running" in listed.stdout, listed.stdout

        sent = subprocess.run(cli("send", str(run), "stop"), cwd=ROOT, env=ENV, capture_output=True, text=True,
                              timeout=120)
        assert sent.returncode == 0, sent.stderr
        wait_until(lambda: not alive(pid), timeout=240, what="the process to end after stop")
    finally:
        subprocess.run([*tmux, "kill-server"], capture_output=True)
        if pid is not None and alive(pid):
            os.kill(pid, signal.SIGKILL)
    assert (run / "final" / "model.safetensors").exists()
    done = steps(run)
    assert done == list(range(len(done))) and done[-1] > at_close  # every step once, none redone
    assert any(e["message"] == f"run stopped at step {done[-1]} of 3000" for e in events(run))
