"""Comparing runs: `grpo-tui compare RUN RUN…` overlays their metrics by step with a legend
of run names, and lists the settings that differ between their configs."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from grpo_tui.app import GrpoApp
from grpo_tui.model.config_diff import MISSING, adjusted, config_diff, flatten, show_value
from grpo_tui.screens.compare import CompareScreen, OverlayChart, run_labels
from grpo_tui.screens.launcher import LauncherScreen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"
ROOT = RECORDED.parents[2]


def two_runs(tmp_path: Path) -> tuple[Path, Path]:
    """The recorded run, and a copy trained with a higher learning rate and better rewards."""
    base, other = tmp_path / "baseline", tmp_path / "lr-1e-4"
    shutil.copytree(RECORDED, base)
    shutil.copytree(RECORDED, other)
    config = (other / "config.yaml").read_text()
    (other / "config.yaml").write_text(config.replace("learning_rate: 5.0e-05", "learning_rate: 1.0e-04"))
    lines = []
    for line in (other / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "reward" in record:
            record["reward"] = min(1.0, record["reward"] + 0.3)
        lines.append(json.dumps(record))
    (other / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    return base, other


def text_of(widget) -> str:
    return str(widget.render())


async def until(pilot, predicate, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.05)


def test_config_diff_keeps_only_what_differs() -> None:
    a = {"learning_rate": 5e-5, "dataset": {"task": "arithmetic", "task_args": {"digits": 2}}, "beta": 0.04}
    b = {"learning_rate": 1e-4, "dataset": {"task": "arithmetic", "task_args": {"digits": 3}}, "beta": 0.04,
         "reward_funcs": ["accuracy", "format"]}
    assert flatten(a)["dataset.task_args.digits"] == 2
    rows = config_diff([a, b])
    assert rows == [("learning_rate", [5e-5, 1e-4]), ("dataset.task_args.digits", [2, 3]),
                    ("reward_funcs", [MISSING, ["accuracy", "format"]])]
    assert config_diff([a, dict(a)]) == []
    assert [show_value(v) for v in (5e-5, None, True, ["accuracy", "format"], MISSING)] == [
        "5e-05", "null", "true", "[accuracy, format]", MISSING]
    assert adjusted({"lr": 5e-5, "beta": 0.0}, {"lr": 1e-4, "beta": 0.0, "seed": 1}) == {
        "lr": "5e-05 → 0.0001", "beta": "0", "seed": "1"}
    assert run_labels([Path("x/run"), Path("y/run"), Path("y/other")]) == ["x/run", "y/run", "other"]


def test_compare_overlays_runs_and_diffs_their_configs(tmp_path: Path) -> None:
    base, other = two_runs(tmp_path)

    async def go() -> None:
        app = GrpoApp(compare=[str(base), str(other)], clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            screen = app.screen
            assert isinstance(screen, CompareScreen)
            legend = text_of(screen.query_one("#cmp-legend"))
            assert "baseline" in legend and "lr-1e-4" in legend and "step 12/12" in legend
            await until(pilot, lambda: all(c._drawn for c in screen.query(OverlayChart)), "the charts")
            titles = [c.title for c in screen.query(OverlayChart)]
            assert titles[:2] == ["reward", "KL"] and "eval accuracy" in titles
            assert screen.query(OverlayChart).first().runs_drawn == 2  # both runs' rewards on one chart

            await pilot.press("2")
            table = screen.query_one("#cmp-diff")
            rows = [table.get_row_at(i) for i in range(table.row_count)]
            # the recorded run raised its learning rate to 1e-4 at step 5; the other started there
            assert rows == [["learning_rate", "5e-05 → 0.0001", "0.0001"]]
            assert "1 of" in text_of(screen.query_one("#cmp-summary"))
            assert [str(c.label) for c in table.columns.values()] == ["setting", "baseline", "lr-1e-4"]

            # a run that goes on is followed: its new step shows
            with open(other / "metrics.jsonl", "a") as f:
                f.write(json.dumps({"step": 13, "reward": 0.9, "kl": 0.01}) + "\n")
            await until(pilot, lambda: "step 13" in text_of(screen.query_one("#cmp-legend")), "the new step")

            await pilot.press("escape")  # opened from the command line: to the launcher
            assert isinstance(app.screen, LauncherScreen)

    asyncio.run(go())


def test_cli_compare_refuses_a_missing_run_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    for args in ([str(RECORDED), str(tmp_path / "nope")], [str(RECORDED)]):
        result = subprocess.run([sys.executable, "-m", "grpo_tui", "compare", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and result.stdout == ""
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert "nope is not a run directory" in subprocess.run(
        [sys.executable, "-m", "grpo_tui", "compare", str(RECORDED), str(tmp_path / "nope")], cwd=ROOT, env=env,
        capture_output=True, text=True, timeout=120).stderr


def test_compare_snapshot(snap_compare, tmp_path: Path) -> None:
    """120x36: the reward and KL of two recorded runs overlaid, two charts to a row."""
    base, other = two_runs(tmp_path)
    app = GrpoApp(compare=[str(base), str(other)], clock=lambda: 0.0)

    async def drawn(pilot) -> None:  # the charts drawn, however busy the machine
        await until(pilot, lambda: all(c.runs_drawn for c in pilot.app.screen.query(OverlayChart)), "the charts")

    assert snap_compare(app, terminal_size=(120, 36), run_before=drawn)


def test_compare_config_snapshot_small_terminal(snap_compare, tmp_path: Path) -> None:
    base, other = two_runs(tmp_path)
    app = GrpoApp(compare=[str(base), str(other)], clock=lambda: 0.0)
    assert snap_compare(app, terminal_size=(80, 24), press=["2"], run_before=lambda pilot: pilot.pause(0.5))


def test_launcher_palette_compares_the_highlighted_run_with_another(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    root.mkdir()
    two_runs(root)

    async def go() -> None:
        app = GrpoApp(runs_root=root, presets_finder=list, clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LauncherScreen) and len(app.screen.runs) == 2, "runs")
            first, second = app.screen.runs[0].name, app.screen.runs[1].name
            await pilot.press("ctrl+p", *f"compare {first} with {second}")
            await pilot.pause(0.3)
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen), "the comparison")
            assert app.screen.labels == [first, second]
            await pilot.press("escape")  # back to the launcher it came from
            assert isinstance(app.screen, LauncherScreen)

    asyncio.run(go())


def test_launcher_compares_the_runs_marked_with_space(tmp_path: Path) -> None:
    """Space marks runs in the recent-runs list (● in their first column), c compares the marked."""
    root = tmp_path / "runs"
    root.mkdir()
    two_runs(root)
    shutil.copytree(RECORDED, root / "third")

    async def go() -> None:
        app = GrpoApp(runs_root=root, presets_finder=list, clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, LauncherScreen) and len(app.screen.runs) == 3, "runs")
            launcher = app.screen
            names = [r.name for r in launcher.runs]
            table = launcher.query_one("#runs")
            table.focus()
            await pilot.press("c")  # nothing marked: it says how, and stays
            await pilot.pause(0.1)
            assert app.screen is launcher
            await pilot.press("space")  # marks the first and moves to the second
            await pilot.press("down")  # skip the second
            await pilot.press("space")  # marks the third
            await pilot.pause(0.1)
            assert [str(table.get_cell(str(r.path), "mark")) for r in launcher.runs] == ["●", " ", "●"]
            await pilot.press("c")
            await until(pilot, lambda: isinstance(app.screen, CompareScreen), "the comparison")
            assert app.screen.labels == [names[0], names[2]]
            await pilot.press("escape")
            assert app.screen is launcher and launcher.marked == []
            assert [str(table.get_cell(str(r.path), "mark")) for r in launcher.runs] == [" ", " ", " "]

    asyncio.run(go())
