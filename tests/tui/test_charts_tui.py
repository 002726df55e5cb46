"""The dashboard's charts in the app: a spike that shows at every size and zoom, markers of
every kind, the cursor, zoom, log scale, a maximised chart, the metric picker and its
per-preset memory, and charts that keep up with new steps.

The run is tests/data/recorded-run with a 30x one-step KL spike and a pause, a resume,
a fault and a handover added (built in a temporary folder, so it is deterministic).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import statistics
from pathlib import Path

import pytest
from rich.console import Console

from grpo_tui.app import GrpoApp
from grpo_tui.screens.dashboard import DashboardScreen
from grpo_tui.screens.metric_picker import MetricPickerScreen
from grpo_tui.widgets.charts.chart import MetricChart

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"
SPIKE_STEP = 7


@pytest.fixture(autouse=True)
def config_home(tmp_path: Path, monkeypatch) -> Path:
    """Chart choices go to a folder of the test's own, never the user's ~/.config."""
    home = tmp_path / "config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home))
    return home


def make_marked_run(root: Path) -> Path:
    """recorded-run plus a 30x KL spike at step 7 and a marker of every kind."""
    run = root / "marked-run"
    shutil.copytree(RECORDED, run)
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    kls = [m["kl"] for m in metrics if "kl" in m]
    times = {m["step"]: m["time"] for m in metrics}
    for m in metrics:
        if m["step"] == SPIKE_STEP:
            m["kl"] = 30 * statistics.median(kls)
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    added = [
        (2, "status", "paused at step 2", {"state": "paused"}),
        (2, "status", "running", {"state": "running"}),
        (5, "fault", "paused: reward function accuracy failed on 3 steps in a row", {"fault": "reward"}),
        (5, "status", "paused at step 5 by a fault", {"state": "paused"}),
        (6, "status", "running", {"state": "running"}),
        (10, "detach", "handed over at step 10: continuing in a background process", {}),
    ]
    for i, (step, kind, message, data) in enumerate(added):
        events.append({"time": times[step] + 0.001 * (i + 1), "step": step, "level": "info", "kind": kind,
                       "message": message, "data": data})
    events.sort(key=lambda e: e["time"])
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    return run


@pytest.fixture
def marked_run(tmp_path: Path) -> Path:
    return make_marked_run(tmp_path / "runs")


def run(coro) -> None:
    asyncio.run(coro)


def chart_text(chart: MetricChart) -> list[str]:
    """What the chart shows, as plain lines (the header first)."""
    console = Console(width=chart.size.width, record=True, file=open("/dev/null", "w"))
    console.print(chart.render())
    return console.export_text().splitlines()


def y_labels(lines: list[str]) -> list[float]:
    return [float(m.group(1)) for line in lines if (m := re.match(r"^\s*([-\d.e]+)┤", line))]


async def settle(pilot) -> None:
    await pilot.pause(0.5)  # the charts draw on the dashboard's timer


def kl_chart(app) -> MetricChart:
    return next(c for c in app.screen.query(MetricChart) if c.spec.title == "KL")


@pytest.mark.parametrize("size", [(80, 24), (120, 40), (200, 60)])
def test_the_spike_shows_at_every_size_and_zoom(marked_run: Path, size) -> None:
    spike = max(json.loads(line).get("kl", 0) for line in (marked_run / "metrics.jsonl").read_text().splitlines())

    async def go() -> None:
        app = GrpoApp(run_dir=str(marked_run), clock=lambda: 0.0)
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            screen: DashboardScreen = app.screen
            chart = kl_chart(app)
            chart.scroll_visible(animate=False)
            for keys in ([], ["right_curly_bracket"] * 3 + ["plus"], ["plus"], ["0", "minus"]):
                await pilot.press(*keys)
                await settle(pilot)
                chart.update_from(screen.model, screen.view)
                lines = chart_text(chart)
                assert max(y_labels(lines)) >= spike, (keys, lines)
                assert "step" in lines[-1] and all(t.isdigit() for t in lines[-1].split()[1:])

    run(go())


def test_cursor_reads_markers_and_values(marked_run: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(marked_run), clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            screen: DashboardScreen = app.screen
            hint = str(screen.query_one(".chart-hint").render())
            for word in ("A adjust", "C ckpt", "P pause", "R resume", "H handover", "F fault"):
                assert word in hint
            await pilot.press("right_curly_bracket")  # the first marker: the pause at step 2
            await pilot.press("right_curly_bracket", "right_curly_bracket")  # the fault at step 5
            await settle(pilot)
            assert screen.view.cursor == 5
            hint = str(screen.query_one(".chart-hint").render())
            assert "F step 5: paused: reward function accuracy failed" in hint
            await pilot.press("left_curly_bracket")
            await settle(pilot)
            assert "step 4: learning_rate 5e-5 → 0.0001" in str(screen.query_one(".chart-hint").render())
            reward = next(c for c in screen.query(MetricChart) if c.spec.title == "reward")
            assert chart_text(reward)[0].startswith("reward @4  ━total 0.2188")
            await pilot.press("right_square_bracket")
            assert screen.view.cursor == 5
            await pilot.press("escape")
            assert screen.view.cursor is None and isinstance(app.screen, DashboardScreen)

    run(go())


def test_zoom_log_and_maximise(marked_run: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(marked_run), clock=lambda: 0.0)
        async with app.run_test(size=(200, 60)) as pilot:
            await settle(pilot)
            screen: DashboardScreen = app.screen
            await pilot.press("plus")
            assert screen.view.zoom == (3, 9)
            await pilot.press("plus", "plus")
            lo, hi = screen.view.zoom
            assert hi - lo >= 4
            await pilot.press("0")
            assert screen.view.zoom is None
            await pilot.press("L")
            await settle(pilot)
            assert chart_text(kl_chart(app))[0].rstrip().endswith("log")
            kl_chart(app).focus()
            await pilot.press("enter")
            await settle(pilot)
            shown = [c for c in screen.query(MetricChart) if c.display and c.parent.id == "grid-overview"]
            assert shown == [kl_chart(app)] and kl_chart(app).size.height > 40
            await pilot.press("escape")
            await settle(pilot)
            assert all(c.display for c in screen.query("#grid-overview MetricChart"))

    run(go())


def test_metric_picker_adds_a_metric_and_remembers_it_per_preset(marked_run: Path, config_home: Path) -> None:
    async def go(pick: bool) -> None:
        app = GrpoApp(run_dir=str(marked_run), clock=lambda: 0.0)
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            chart = kl_chart(app)
            if pick:
                chart.focus()
                await pilot.press("e")
                picker = app.screen
                assert isinstance(picker, MetricPickerScreen)
                names = [picker.query_one("#picker-list").get_option_at_index(i).value
                         for i in range(picker.query_one("#picker-list").option_count)]
                assert "time/generate" in names and "rewards/accuracy/std" in names and "eval/accuracy" in names
                for _ in range(names.index("time/generate")):
                    await pilot.press("down")
                await pilot.press("space", "enter")
                await settle(pilot)
            assert [name for name, _ in chart.spec.expand(app.screen.model)] == ["kl", "time/generate"]
            assert "━time/gen" in chart_text(chart)[0]

    run(go(pick=True))
    saved = json.loads((config_home / "grpo-tui" / "charts.json").read_text())
    assert saved == {"recorded-run": {"KL": ["kl", "time/generate"]}}  # the preset's name, from run_name
    run(go(pick=False))  # a new session shows the choice


def test_every_visible_chart_catches_up_with_a_new_step(marked_run: Path) -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(marked_run), clock=lambda: 0.0)
        async with app.run_test(size=(200, 60)) as pilot:
            await settle(pilot)
            screen: DashboardScreen = app.screen
            record = json.loads((marked_run / "metrics.jsonl").read_text().splitlines()[-1])
            record.update(step=13, kl=0.5, reward=0.75, time=record["time"] + 1)
            screen.model.add_metrics(record)
            charts = screen.visible_charts()
            for _ in range(100):
                await pilot.pause(0.1)
                if not any(c.needs_redraw(screen.model, screen.view) for c in charts):
                    break
            assert not any(c.needs_redraw(screen.model, screen.view) for c in charts)
            assert "━ 0.5" in chart_text(kl_chart(app))[0]

    run(go())


# -- snapshots -------------------------------------------------------------------
def marked_app(root: Path) -> GrpoApp:
    return GrpoApp(run_dir=str(make_marked_run(root)), clock=lambda: 0.0)


def test_snapshot_markers_80x24(snap_compare, tmp_path: Path) -> None:
    assert snap_compare(marked_app(tmp_path), terminal_size=(80, 24), run_before=settle)


def test_snapshot_cursor_on_a_fault_120x40(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await pilot.press("right_curly_bracket", "right_curly_bracket", "right_curly_bracket")
        await settle(pilot)

    assert snap_compare(marked_app(tmp_path), terminal_size=(120, 40), run_before=before)


def test_snapshot_log_scale_zoomed_200x60(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await pilot.press("L", "plus")
        await settle(pilot)

    assert snap_compare(marked_app(tmp_path), terminal_size=(200, 60), run_before=before)


def test_snapshot_maximised_chart_80x24(snap_compare, tmp_path: Path) -> None:
    async def before(pilot) -> None:
        await settle(pilot)
        await pilot.press("tab")
        app = pilot.app
        kl_chart(app).focus()
        await pilot.press("z")
        await settle(pilot)

    assert snap_compare(marked_app(tmp_path), terminal_size=(80, 24), run_before=before)


def test_page_down_shows_the_lower_rows_of_charts_with_the_focus_on_the_tabs() -> None:
    """At 80x24 the Training tab has more rows of charts than fit; the hint says PgDn/↓ shows
    them, and they do so where a user lands: the focus on the tab bar, not on a chart."""

    def shown(app) -> set[str]:
        grid = app.screen.query_one("#grid-training")
        top, bottom = grid.region.y, grid.region.bottom
        return {c.spec.title for c in grid.query(MetricChart)
                if c.display and top <= c.region.y and c.region.bottom <= bottom and c.region.height > 0}

    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            await pilot.press("2")
            await pilot.pause(0.5)
            assert "Tabs" in type(app.focused).__name__
            first = shown(app)
            assert first and "PgDn" in str(app.screen.query_one("#tab-training .chart-hint").render())
            await pilot.press("pagedown")
            await pilot.pause(0.2)
            second = shown(app)
            assert second and not second & first
            hint = str(app.screen.query_one("#tab-training .chart-hint").render())
            assert "PgUp/↑: 1 row above" in hint and "PgDn/↓: 2 more rows" in hint
            await pilot.press("up")
            await pilot.pause(0.2)
            assert shown(app) == first

    run(go())
