"""The reward test bench: scores as you type, errors as rows, opened from the inspector
and the dashboard with the sample in it."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from pathlib import Path

from textual.app import App
from textual.widgets import Input, Static, TextArea

from engine.config.presets import load_preset
from grpo_tui.app import GrpoApp
from grpo_tui.screens.inspector import InspectorScreen
from grpo_tui.screens.reward_bench import SCORE_DELAY, RewardBenchScreen

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded-run"


class BenchApp(App):
    CSS_PATH = Path(__file__).resolve().parents[2] / "grpo_tui" / "app.tcss"

    def __init__(self, screen: RewardBenchScreen) -> None:
        super().__init__()
        self.bench = screen

    def on_mount(self) -> None:
        self.push_screen(self.bench)


async def built(pilot, bench: RewardBenchScreen, timeout: float = 20.0) -> None:
    """Wait until the reward functions are built (or failed to build) and scored once."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while bench.funcs is None and bench.build_error is None:
        assert loop.time() < end, "the reward functions were never built"
        await pilot.pause(0.05)
    await pilot.pause()


async def rescored(pilot) -> None:
    await pilot.pause(SCORE_DELAY + 0.2)


def row(bench: RewardBenchScreen, name: str):
    return next(r for r in bench.rows if r.name == name)


def table_text(bench: RewardBenchScreen) -> str:
    return str(bench.query_one("#bench-table", Static).render())


def test_scores_follow_the_edits() -> None:
    cfg = load_preset("tiny-arithmetic", check_paths=True)

    async def go() -> None:
        bench = RewardBenchScreen(cfg, prompt="12+30=")
        app = BenchApp(bench)
        async with app.run_test(size=(100, 30)) as pilot:
            await built(pilot, bench)
            assert bench.build_error is None
            # No answer column was given: the bench offers one to fill in.
            bench.query_one("#bench-col-0", Input).focus()
            await pilot.press("4", "2")
            bench.query_one("#bench-completion", TextArea).focus()
            await pilot.press("4", "2")
            await rescored(pilot)
            assert row(bench, "accuracy").value == 1.0 and bench.total == 1.0
            assert "1.0" in table_text(bench)
            assert "length counts characters" in str(bench.query_one("#bench-note", Static).render())
            await pilot.press("backspace", "3")
            await rescored(pilot)
            assert bench.query_one("#bench-completion", TextArea).text == "43"
            assert row(bench, "accuracy").value == 0.0 and bench.total == 0.0
            await pilot.press("escape")
            assert not isinstance(app.screen, RewardBenchScreen)

    asyncio.run(go())


def test_a_raising_reward_is_an_error_row_and_a_bad_spec_a_message(tmp_path: Path) -> None:
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        "def boom(prompts, completions, **kwargs):\n"
        '    """Always fails."""\n'
        "    raise ValueError('the plugin broke')\n"
    )
    cfg = load_preset("tiny-arithmetic", [f"reward_funcs=[accuracy, '{plugin}:boom']"], check_paths=True)

    async def go() -> None:
        bench = RewardBenchScreen(cfg, prompt="1+2=", completion="3", columns={"answer": "3"})
        async with BenchApp(bench).run_test(size=(100, 30)) as pilot:
            await built(pilot, bench)
            assert row(bench, "accuracy").value == 1.0
            boom = row(bench, "boom")
            assert math.isnan(boom.value) and "the plugin broke" in boom.error
            assert bench.total == 1.0  # the failing function is skipped, as in training
            text = table_text(bench)
            assert "ValueError: the plugin broke" in text and "error" in text and "total" in text

        broken = dataclasses.replace(cfg, reward_funcs=[str(tmp_path / "missing.py") + ":f"])
        bench = RewardBenchScreen(broken, prompt="1+2=", completion="3")
        async with BenchApp(bench).run_test(size=(100, 30)) as pilot:
            await built(pilot, bench)
            assert bench.funcs is None and bench.build_error
            text = table_text(bench)
            assert "could not be built" in text and "missing.py" in text and "Traceback" not in text

    asyncio.run(go())


def test_opened_from_the_inspector_and_the_dashboard() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.press("i")
            inspector = app.screen
            assert isinstance(inspector, InspectorScreen)
            await pilot.press("tab", "down")  # the second completion of the first group
            group, comp = inspector.current_group(), inspector.current_completion()
            await pilot.press("e")
            bench = app.screen
            assert isinstance(bench, RewardBenchScreen)
            await built(pilot, bench)
            prompt, completion, columns = bench.inputs()
            assert (prompt, completion, columns) == (group["prompt"], comp["text"], {"answer": group["answer"]})
            assert row(bench, "accuracy").value == comp["rewards"]["accuracy"]
            await pilot.press("escape", "escape")  # bench, then inspector
            await pilot.press("r")  # from the dashboard: the latest sample's first completion
            bench = app.screen
            assert isinstance(bench, RewardBenchScreen)
            await built(pilot, bench)
            first = app.screen_stack[-2].model.latest_samples()["groups"][0]
            assert bench.inputs()[:2] == (first["prompt"], first["completions"][0]["text"])
            assert bench.total == first["completions"][0]["reward"]

    asyncio.run(go())
