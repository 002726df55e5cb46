"""The field docs where users read them: `grpo-tui fields`, the preset editor's hint bar that
follows the cursor, and the adjust form's hints -- all within an 80×24 terminal."""

from __future__ import annotations

import asyncio
import shutil
import unicodedata
from pathlib import Path

from engine.config.schema import ADJUSTABLE_FIELDS, RunConfig, config_to_dict
from grpo_tui.app import GrpoApp
from grpo_tui.cli.main import main
from grpo_tui.screens.adjust import AdjustScreen
from grpo_tui.screens.editor import PresetEditorScreen, key_at

DATA = Path(__file__).resolve().parents[1] / "data"
RECORDED = DATA / "recorded-run"


def columns(line: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


# --------------------------------------------------------------------------- grpo-tui fields


def test_fields_lists_type_default_and_doc_of_the_matching_keys(capsys):
    assert main(["fields", "learning"]) == 0
    out = capsys.readouterr().out
    assert "learning_rate" in out and "float in [0, 1] = 1e-06" in out and "learning rate (peak, after warm-up)" in out
    assert "beta" not in out


def test_fields_lists_every_key_within_80_columns(capsys):
    assert main(["fields"]) == 0
    out = capsys.readouterr().out
    assert all(columns(line) <= 80 for line in out.splitlines())
    for key in ("dataset.split", "loss_type", "vllm_importance_sampling_mode", "run_name"):
        assert f"\n{key} " in out
    assert '"grpo" | "bnpo" | "dr_grpo" | "dapo" | "cispo"' in out and '"vespo" = "dapo"' in out
    assert "── optimisation ──" in out


def test_fields_takes_a_glob_and_says_when_nothing_matches(capsys):
    assert main(["fields", "dataset.*"]) == 0
    keys = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line and not line.startswith((" ", "──"))]
    assert keys and all(k.startswith("dataset.") for k in keys)
    assert main(["fields", "no_such_key"]) == 1
    assert "no preset key matches 'no_such_key'" in capsys.readouterr().err


# --------------------------------------------------------------------------- the preset editor


def test_key_at_finds_the_key_a_line_belongs_to():
    text = "# a comment\ndataset:\n  task: arithmetic\n  split: train\nreward_funcs:\n- accuracy\n\nbeta: 0.0\n"
    assert [key_at(text, row) for row in range(8)] == [
        None, "dataset", "dataset.task", "dataset.split", "reward_funcs", "reward_funcs", None, "beta"]


def test_editor_hint_follows_the_cursor(tmp_path: Path) -> None:
    preset = tmp_path / "mine.yaml"
    shutil.copy(DATA / "presets" / "tiny-arithmetic.yaml", preset)

    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            editor = PresetEditorScreen(preset)
            await app.push_screen(editor)
            await pilot.pause(0.1)
            area = editor.query_one("#editor-text")
            hint = editor.query_one("#editor-hint")
            lines = area.text.splitlines()
            beta = next(i for i, line in enumerate(lines) if line.startswith("beta:"))
            area.move_cursor((beta, 0))
            await pilot.pause(0.1)
            assert str(hint.render()).startswith("beta: float in [0, 1000] = 0.0 — KL coefficient against the reference model")
            await pilot.press("down")  # the next line's key, as the cursor moves
            await pilot.pause(0.1)
            below = lines[beta + 1].split(":")[0]
            assert str(hint.render()).startswith(f"{below}: ")
            assert hint.region.bottom <= 24

    asyncio.run(go())


# --------------------------------------------------------------------------- the adjust form


def test_adjust_form_shows_each_fields_doc_and_fits_80x24() -> None:
    async def go() -> None:
        app = GrpoApp(run_dir=str(RECORDED), clock=lambda: 0.0)
        async with app.run_test(size=(80, 24)) as pilot:
            cfg = RunConfig()
            form = AdjustScreen(cfg, config_to_dict(cfg))
            await app.push_screen(form)
            await pilot.pause(0.1)
            hint = form.query_one("#adjust-hint")
            assert str(hint.render()) == "learning_rate: float in [0, 1] = 1e-06 — learning rate (peak, after warm-up)"
            await pilot.press("tab")
            await pilot.pause(0.1)
            assert str(hint.render()).startswith("beta: float in [0, 1000] = 0.0 — KL coefficient")
            for name in ADJUSTABLE_FIELDS:
                assert str(form.query_one(f"#in-{name}").tooltip).startswith(f"{name}: ")
            screen = form.region
            for button in form.query("Button"):
                assert screen.contains_region(button.region), button.id
            assert screen.contains_region(hint.region)

    asyncio.run(go())
