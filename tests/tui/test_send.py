"""``grpo-tui send`` refuses a run that no process trains: the command would lie unread."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from grpo_tui.cli.main import main

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


def test_send_to_a_finished_run_refuses_and_writes_nothing(tmp_path, capsys):
    run_dir = tmp_path / "recorded-run"
    shutil.copytree(RECORDED, run_dir)
    assert main(["send", str(run_dir), "stop"]) == 2
    err = capsys.readouterr().err
    assert "run recorded-run is finished (step 12/12): nothing to send to" in err
    assert len(err.strip().splitlines()) == 1
    assert not (run_dir / "commands").exists() or not list((run_dir / "commands").iterdir())


def test_send_to_a_crashed_run_names_the_resume_command(tmp_path, capsys):
    run_dir = tmp_path / "recorded-run"
    shutil.copytree(RECORDED, run_dir)
    events = (run_dir / "events.jsonl").read_text().splitlines()
    running_until = [i for i, line in enumerate(events) if '"state":"running"' in line][-1]
    (run_dir / "events.jsonl").write_text("\n".join(events[:running_until + 1]) + "\n")  # died while running
    (run_dir / "heartbeat.json").unlink(missing_ok=True)
    metrics = (run_dir / "metrics.jsonl").read_text().splitlines()
    (run_dir / "metrics.jsonl").write_text("\n".join(metrics[:7]) + "\n")  # steps 0-6
    checkpoint = run_dir / "checkpoints" / "step-000004"
    checkpoint.mkdir(parents=True)
    (checkpoint / "trainer_state.json").write_text(json.dumps({"step": 4}))
    (checkpoint / "COMPLETE").write_text("")
    assert main(["send", str(run_dir), "pause"]) == 2
    err = capsys.readouterr().err
    assert "run recorded-run is crashed (step 6/12): nothing to send to" in err
    assert f"resume it with grpo-tui resume {run_dir}" in err
    assert not (run_dir / "commands").exists() or not list((run_dir / "commands").iterdir())


def _live_copy(tmp_path: Path) -> Path:
    """The recorded run as if this test process were training it (a running status, a
    heartbeat naming this process)."""
    import os
    import socket

    from engine.run.channel import process_started

    run_dir = tmp_path / "recorded-run"
    shutil.copytree(RECORDED, run_dir)
    events = (run_dir / "events.jsonl").read_text().splitlines()
    running_until = [i for i, line in enumerate(events) if '"state":"running"' in line][-1]
    (run_dir / "events.jsonl").write_text("\n".join(events[:running_until + 1]) + "\n")
    (run_dir / "heartbeat.json").write_text(json.dumps({
        "pid": os.getpid(), "host": socket.gethostname(), "started": process_started(os.getpid()),
        "interval": 2.0, "state": "running", "step": 6, "time": 0}))
    return run_dir


def _commands(run_dir: Path) -> list[dict]:
    folder = run_dir / "commands"
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.exists() else []


def test_send_checks_an_adjustment_before_it_is_sent(tmp_path, capsys):
    run_dir = _live_copy(tmp_path)
    refused = {
        "self=1": "self: unknown key, not adjustable while running",
        "command=1": "command: unknown key, not adjustable while running",
        "learning_rate=1e9": "learning_rate: must be in [0, 1]",
        "max_completion_length=1000000000": "max_completion_length:",
        "max_completion_length=4096": "must be below the model's context of",
        "num_generations=4": "num_generations: not adjustable while running",
    }
    for change, why in refused.items():
        assert main(["send", str(run_dir), "adjust", change]) == 2, change
        err = capsys.readouterr().err
        assert err.startswith("grpo-tui: adjustment refused: ") and why in err, (change, err)
        assert len(err.strip().splitlines()) == 1
    assert main(["send", str(run_dir), "pause", "x=1"]) == 2
    assert "pause takes no KEY=VALUE" in capsys.readouterr().err
    assert _commands(run_dir) == []
    assert main(["send", str(run_dir), "adjust", "learning_rate=2e-5"]) == 0
    (sent,) = _commands(run_dir)
    assert sent["command"] == "adjust" and sent["args"] == {"learning_rate": 2e-5}


def test_send_never_writes_through_a_linked_commands_folder(tmp_path, capsys):
    run_dir = _live_copy(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (run_dir / "commands").symlink_to(elsewhere)
    assert main(["send", str(run_dir), "pause"]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert list(elsewhere.iterdir()) == []
