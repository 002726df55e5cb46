"""Snapshots of the launcher, the dashboard and the inspector, fed from a recorded run
directory (tests/data/recorded-run, rebuilt by tests/data/make_recorded_run.py) so they
are deterministic: no engine, a frozen clock, fixed presets.

Update after an intended change: pytest tests/test_tui_snapshots.py --snapshot-update
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.config.schema import ConfigError, PresetInfo
from engine.config.presets import load_preset
from grpo_tui.app import GrpoApp

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = DATA / "recorded-run"
SIZE = (120, 36)
SMALL = (80, 24)


def fixed_presets() -> list[PresetInfo]:
    infos = []
    for path in sorted((DATA / "presets").glob("*.yaml")):
        lines = [line[2:] for line in path.read_text().splitlines() if line.startswith("# ")]
        try:
            load_preset(str(path))
            problems: list[str] = []
        except ConfigError as err:
            problems = err.problems
        infos.append(PresetInfo(path.stem, path, "\n".join(lines), not problems, problems))
    return infos


def recorded_app(**kwargs) -> GrpoApp:
    return GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0, **kwargs)


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch) -> None:
    """Saved chart choices of the user's own never change what a snapshot shows."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


async def settle(pilot) -> None:
    await pilot.pause(0.5)  # the charts draw on the dashboard's timer


@pytest.fixture
def runs_root(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    shutil.copytree(RECORDED, root / "recorded-run")
    return root


def test_launcher(snap_compare, runs_root: Path, monkeypatch) -> None:
    monkeypatch.chdir(DATA.parents[1])  # paths are shown relative to the current folder
    app = GrpoApp(runs_root=runs_root, presets_finder=fixed_presets, clock=lambda: 0.0)
    assert snap_compare(app, terminal_size=SIZE, press=["down"], run_before=settle)


def test_dashboard(snap_compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=settle)


def test_dashboard_small_terminal(snap_compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SMALL, run_before=settle)


def test_dashboard_training_tab(snap_compare) -> None:
    assert snap_compare(recorded_app(), terminal_size=SIZE, press=["2"], run_before=settle)


def test_dashboard_training_tab_small_terminal(snap_compare) -> None:
    """At 80x24 the charts keep rows enough to read and the grid scrolls."""
    assert snap_compare(recorded_app(), terminal_size=SMALL, press=["2"], run_before=settle)


def test_inspector(snap_compare) -> None:
    # A past step, the second group, sorted best-first, coloured by entropy.
    assert snap_compare(
        recorded_app(),
        terminal_size=SIZE,
        press=["i", "left_square_bracket", "left_square_bracket", "down", "b", "t"],
        run_before=settle,
    )


def test_dashboard_system_tab(snap_compare, monkeypatch) -> None:
    """The system tab with fixed figures (one GPU near full: the warning shows)."""
    from grpo_tui.model.system import GIB, GpuStat, SystemSnapshot
    from grpo_tui.screens import dashboard

    monkeypatch.setattr(dashboard, "SYSTEM_S", 3600.0)  # no timed sample adds to the trends: a slow machine draws the same

    snapshot = SystemSnapshot(cpu_percent=37.5, cores=16, ram_used=int(41.3 * GIB), ram_total=128 * GIB,
                              process_rss=int(9.2 * GIB), process_cpu=104.0,
                              gpus=[GpuStat(0, "NVIDIA H100 80GB HBM3", int(76.4 * GIB), 80 * GIB, 97.0)])

    class Fixed:
        def sample(self):
            return snapshot

    async def show(pilot) -> None:
        screen = pilot.app.screen
        screen._sampler = Fixed()
        pane = screen.query_one("#system-pane")
        pane.history.clear()  # what this machine showed at mount
        for share in (0.62, 0.70, 0.81, 0.88, 0.93):  # a rising trend
            pane._remember("GPU0", share)
        screen.sample_system()
        await pilot.press("5")
        await settle(pilot)

    assert snap_compare(recorded_app(), terminal_size=SIZE, run_before=show)
