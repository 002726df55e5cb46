"""Columns that reward functions add with ``log_extra`` show in the group inspector."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

from grpo_tui.app import GrpoApp
from grpo_tui.screens.inspector import InspectorScreen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


def test_the_inspector_shows_log_extra_columns(tmp_path: Path) -> None:
    run_dir = shutil.copytree(RECORDED, tmp_path / "run")
    samples = run_dir / "samples.jsonl"
    records = [json.loads(line) for line in samples.read_text().splitlines() if line.strip()]
    for group in records[-1]["groups"]:
        for completion in group["completions"]:
            completion["extra"] = {"gold_parsed": "[7, '7']", "judge_note": None}
    samples.write_text("".join(json.dumps(r) + "\n" for r in records))

    async def go() -> None:
        app = GrpoApp(run_dir=str(run_dir), clock=lambda: 0.0)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.press("i")
            inspector = app.screen
            assert isinstance(inspector, InspectorScreen) and inspector.step == records[-1]["step"]
            await pilot.pause(0.1)
            text = str(inspector.query_one("#insp-breakdown").render())
            assert "gold_parsed [7, '7']" in text and "judge_note —" in text

    asyncio.run(go())
