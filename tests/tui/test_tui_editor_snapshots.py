"""Snapshots at 80x24: the preset editor with a problem marked on its line, and the launcher
whose preset table keeps only the columns that fit (the details pane shows the rest).

Update after an intended change: pytest tests/tui/test_tui_editor_snapshots.py --snapshot-update
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import write
from engine.config.presets import load_preset, user_preset_dir
from engine.config.schema import ConfigError, PresetInfo
from grpo_tui.app import GrpoApp
from grpo_tui.screens.editor import PresetEditorScreen
from grpo_tui.widgets.yaml_area import YamlTextArea

DATA = Path(__file__).resolve().parents[1] / "data"
SMALL = (80, 24)

GPU_PRESET = """\
# Math reasoning: a 1.5B instruct model on GSM8K with format and tag rewards.
# Hardware: one GPU with 40 GB or more (A100/H100); bf16; the vllm extra.
model_name_or_path: Qwen/Qwen2.5-Math-1.5B-Instruct
dataset: {name: openai/gsm8k, split: train}
reward_funcs: [accuracy, format, tag_count]
learning_rate: 1.0e-6
max_steps: 500
"""


@pytest.fixture
def home(tmp_path: Path, monkeypatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def test_editor_marks_a_problem_on_its_line(snap_compare, home: Path) -> None:
    text = (DATA / "presets" / "tiny-arithmetic.yaml").read_text().replace("[accuracy]", "[acuracy]")
    preset = write(user_preset_dir() / "mine.yaml", text)  # shown as ~/.config/...: the same on every machine

    async def open_editor(pilot) -> None:
        editor = PresetEditorScreen(preset)
        await pilot.app.push_screen(editor)
        editor.query_one(YamlTextArea).cursor_blink = False  # the same frame every time
        await pilot.pause(0.5)
        await pilot.press("f8")  # the cursor on the marked line, its hint below the text
        await pilot.pause(0.2)

    app = GrpoApp(runs_root=home / "runs", presets_finder=list, clock=lambda: 0.0)
    assert snap_compare(app, terminal_size=SMALL, run_before=open_editor)


def test_launcher_fits_80_columns(snap_compare, home: Path, tmp_path: Path) -> None:
    write(tmp_path / "presets" / "qwen-math-reasoning.yaml", GPU_PRESET)
    for name in ("tiny-arithmetic", "broken"):
        shutil.copy(DATA / "presets" / f"{name}.yaml", tmp_path / "presets" / f"{name}.yaml")
    shutil.copytree(DATA / "recorded-run", tmp_path / "runs" / "recorded-run")

    def presets() -> list[PresetInfo]:
        infos = []
        for path in sorted((tmp_path / "presets").glob("*.yaml")):
            lines = [line[2:] for line in path.read_text().splitlines() if line.startswith("# ")]
            try:
                load_preset(str(path), check_paths=False)
                problems: list[str] = []
            except ConfigError as err:
                problems = err.problems
            infos.append(PresetInfo(path.stem, path, "\n".join(lines), not problems, problems))
        return infos

    async def settle(pilot) -> None:
        await pilot.pause(0.5)

    app = GrpoApp(runs_root=tmp_path / "runs", presets_finder=presets, clock=lambda: 0.0)
    # The GPU preset highlighted: its hardware line in full in the details pane.
    assert snap_compare(app, terminal_size=SMALL, press=["up"], run_before=settle)
