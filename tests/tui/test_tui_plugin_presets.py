"""A preset that names reward code of its author's (a file or a module) is marked ⚙ in the
launcher, its details say what it runs, and starting it lists that code and asks first;
listing and validating it never import the code (its top-level line would leave a file)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from conftest import wait_for, write
from engine.config.presets import find_presets
from grpo_tui.app import GrpoApp
from grpo_tui.screens.confirm import ConfirmScreen
from grpo_tui.screens.launcher import CODE_MARK, LauncherScreen, plugin_code

DATA = Path(__file__).resolve().parents[1] / "data"


def test_plugin_code_is_read_from_the_yaml_only() -> None:
    fields = {"reward_funcs": ["accuracy", "helpers.py:score", {"func": "pkg.rewards.cosine", "kwargs": {}}, "format"]}
    assert plugin_code(fields) == ["helpers.py:score", "pkg.rewards.cosine"]
    assert plugin_code({"reward_funcs": ["accuracy", "format"]}) == [] == plugin_code({})
    agentic = {"reward_funcs": [], "tools": ["tools.py:add"], "environment": "calculator",
               "environments": {"a": "envs.py:A", "b": "calculator"}, "rollout_func": "pkg.roll:out"}
    assert plugin_code(agentic) == ["tools.py:add", "envs.py:A", "pkg.roll:out"]  # "calculator" is built in


def test_launcher_marks_a_preset_that_runs_code_and_asks_before_starting_it(tmp_path: Path, monkeypatch) -> None:
    work = tmp_path / "work"
    marker = tmp_path / "imported"
    write(work / "presets" / "helpers.py",
          f"open({str(marker)!r}, 'w').close()  # top-level code: must not run before the user starts it\n"
          "def score(prompts, completions, **kwargs):\n    return [0.0] * len(completions)\n")
    text = (DATA / "presets" / "tiny-arithmetic.yaml").read_text()
    write(work / "presets" / "with-code.yaml", text.replace("reward_funcs: [accuracy]", "reward_funcs: [accuracy, helpers.py:score]"))
    shutil.copy(DATA / "presets" / "tiny-arithmetic.yaml", work / "presets" / "plain.yaml")
    monkeypatch.chdir(work)
    started: list = []

    async def go() -> None:
        app = GrpoApp(runs_root=work / "runs", presets_finder=lambda: find_presets(validate=False), clock=lambda: 0.0)
        app.start_run = lambda *args, **kwargs: started.append(args)
        async with app.run_test(size=(120, 36)) as pilot:
            await wait_for(pilot, lambda: isinstance(app.screen, LauncherScreen) and app.screen.presets, "presets")
            launcher = app.screen
            names = [info.name for info in launcher.presets]
            table = launcher.query_one("#presets")
            cells = {name: str(table.get_row_at(i)[0]) for i, name in enumerate(names)}
            assert cells["with-code"] == f"with-code {CODE_MARK}" and cells["plain"] == "plain"
            table.move_cursor(row=names.index("with-code"))
            await pilot.pause(0.1)
            assert "runs code  helpers.py:score" in str(launcher.query_one("#preset-details").render())
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            assert "helpers.py:score" in str(app.screen._message)
            await pilot.press("n")  # not trusted: nothing starts, nothing was imported
            await pilot.pause(0.1)
            assert started == [] and not marker.exists()
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
            await pilot.press("y")
            await wait_for(pilot, lambda: bool(started), "the start")
            assert Path(started[0][0]).name == "with-code.yaml"
            table.move_cursor(row=names.index("plain"))
            await pilot.press("enter")  # no code of its own: starts without a question
            await wait_for(pilot, lambda: len(started) == 2, "the plain start")
        assert not marker.exists()  # the launcher itself never imported it

    asyncio.run(go())
