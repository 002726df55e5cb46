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
