"""Screens that need no engine: the read-only dashboard, the command palette, the
inspector's filters and the preset editor's validation as you type."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from grpo_tui.app import GrpoApp
from grpo_tui.screens.dashboard import DashboardScreen
from grpo_tui.screens.editor import PresetEditorScreen
from grpo_tui.screens.inspector import InspectorScreen

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = DATA / "recorded-run"


def run(coro) -> None:
    asyncio.run(coro)


async def palette(pilot, text: str) -> None:
    """Run the command-palette entry that ``text`` finds first."""
    await pilot.press("ctrl+p")
    await pilot.press(*text)
    await pilot.pause(0.3)
    await pilot.press("enter")
    await pilot.pause(0.1)


async def open_inspector(pilot) -> InspectorScreen:
    await pilot.press("i")
    inspector = pilot.app.screen
    assert isinstance(inspector, InspectorScreen)
    return inspector


def test_read_only_run_disables_controls_and_lists_commands() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            for action in ("pause", "checkpoint", "adjust", "stop"):
                assert screen.check_action(action, ()) is False  # hidden: nothing to control
            await pilot.press("p")  # nothing happens, nothing breaks
            await palette(pilot, "inspect")
            assert isinstance(app.screen, InspectorScreen)

    run(go())


def test_inspector_filters_and_steps() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            inspector = await open_inspector(pilot)
            assert inspector.step == 12
            await pilot.press("g")
            await pilot.press("3", "enter")
            assert inspector.step == 3 and inspector.record["step"] == 3
            total = len(inspector.groups)
            await pilot.press("z")
            assert all(g.get("reward_std", 0) == 0 for _, g in inspector.groups)
            assert len(inspector.groups) <= total
            await pilot.press("z", "b")
            advantages = [c["advantage"] for _, c in inspector.completions]
            assert advantages == sorted(advantages, reverse=True)
            await pilot.press("b")
            advantages = [c["advantage"] for _, c in inspector.completions]
            assert advantages == sorted(advantages)
            for _ in range(3):
                await pilot.press("t")
            assert inspector.mode == "logprob"
            await pilot.press("right_square_bracket")
            assert inspector.step == 4

    run(go())


def test_inspector_actions_are_in_the_palette_by_what_they_do() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            inspector = await open_inspector(pilot)
            assert not inspector.only_truncated
            await palette(pilot, "only truncated")
            assert app.screen is inspector and inspector.only_truncated
            step = inspector.step
            await palette(pilot, "previous step")
            assert inspector.step == step - 1

    run(go())


def test_preset_editor_validates_as_you_type_and_reverts(tmp_path: Path) -> None:
    preset = tmp_path / "mine.yaml"
    shutil.copy(DATA / "presets" / "tiny-arithmetic.yaml", preset)

    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            editor = PresetEditorScreen(preset)
            await app.push_screen(editor)
            await pilot.pause(0.1)
            assert editor.problems == []
            area = editor.query_one("#editor-text")
            area.text = area.text.replace("learning_rate:", "learnin_rate:")
            await pilot.pause(0.6)
            assert len(editor.problems) == 1
            line, problem = editor.problems[0]
            assert "learnin_rate" in problem and "learning_rate" in problem
            assert area.document.get_line(line).startswith("learnin_rate")
            await pilot.press("f8")
            assert area.cursor_location[0] == line
            await pilot.press("f5")  # revert to the file as it was opened
            await pilot.pause(0.1)
            assert "learnin_rate" not in area.text and editor.problems == []
            assert "learning_rate" in preset.read_text()  # nothing was saved

    run(go())
