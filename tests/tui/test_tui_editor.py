"""The preset editor never writes into the bundled presets: a bundled preset opens as a copy
saved to the user's folder, "save as" offers ./presets/ or the user's folder, problems are
marked on their line, and saving with problems or leaving with unsaved changes asks first."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from textual.widgets import Input

from conftest import ROOT
from conftest import wait_for as until
from engine.config.presets import find_presets, user_preset_dir
from grpo_tui.app import GrpoApp
from grpo_tui.screens.confirm import ChoiceScreen, ConfirmScreen
from grpo_tui.screens.editor import PresetEditorScreen
from grpo_tui.screens.launcher import LauncherScreen
from grpo_tui.screens.save_as import SaveAsScreen, save_places
from grpo_tui.widgets.yaml_area import YamlTextArea

DATA = Path(__file__).resolve().parents[1] / "data"
BUNDLED = ROOT / "presets" / "tiny-arithmetic.yaml"


@pytest.fixture
def places(tmp_path: Path, monkeypatch) -> Path:
    """A private home, config folder and working folder (its ./presets/ holds mine.yaml)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    work = tmp_path / "work"
    (work / "presets").mkdir(parents=True)
    shutil.copy(DATA / "presets" / "tiny-arithmetic.yaml", work / "presets" / "mine.yaml")
    monkeypatch.chdir(work)
    return work


def editor_app(path: Path, new: bool = False) -> tuple[GrpoApp, PresetEditorScreen]:
    app = GrpoApp(runs_root=Path.cwd() / "runs", presets_finder=list, clock=lambda: 0.0)
    return app, PresetEditorScreen(path, new=new)


def area_of(editor: PresetEditorScreen) -> YamlTextArea:
    return editor.query_one("#editor-text", YamlTextArea)


def header(editor: PresetEditorScreen) -> str:
    return str(editor.query_one("#editor-header").render())


def test_a_bundled_preset_is_edited_as_a_copy_in_the_users_folder(places: Path) -> None:
    before = BUNDLED.read_bytes()
    copy = places.parent / "config" / "grpo-tui" / "presets" / "tiny-arithmetic.yaml"

    async def go() -> None:
        app = GrpoApp(runs_root=places / "runs", presets_finder=find_presets, clock=lambda: 0.0)
        async with app.run_test(size=(100, 30)) as pilot:
            launcher = app.screen
            assert isinstance(launcher, LauncherScreen) and launcher.selected_preset().path == BUNDLED
            await pilot.press("e")
            await until(pilot, lambda: isinstance(app.screen, PresetEditorScreen), "the editor")
            editor = app.screen
            await pilot.pause(0.1)
            assert editor.bundled and editor.path == copy
            assert "editing a copy of the bundled preset tiny-arithmetic; Ctrl+S saves to" in header(editor)
            area = area_of(editor)
            area.text = area.text.replace("max_steps: 1000", "max_steps: 5")
            await pilot.press("ctrl+s")
            await until(pilot, copy.exists, "the copy")
            assert "max_steps: 5" in copy.read_text()
            assert BUNDLED.read_bytes() == before
            assert "editing a copy" not in header(editor) and "tiny-arithmetic.yaml" in header(editor)
            await pilot.press("escape")  # saved: leaves without a question
            await until(pilot, lambda: app.screen is launcher, "the launcher")
            assert launcher.selected_preset().path == copy  # the copy takes the bundled preset's place

    asyncio.run(go())
    assert BUNDLED.read_bytes() == before


@pytest.mark.parametrize("place", [0, 1], ids=["./presets", "user folder"])
def test_save_as_goes_to_the_place_chosen(places: Path, place: int) -> None:
    mine = places / "presets" / "mine.yaml"
    folder = [places / "presets", user_preset_dir()][place]

    async def go() -> None:
        app, editor = editor_app(mine)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            await pilot.pause(0.1)
            area_of(editor).text = area_of(editor).text.replace("seed: 42", "seed: 7")  # a valid change
            await pilot.press("f2")
            await until(pilot, lambda: isinstance(app.screen, SaveAsScreen), "the save-as dialog")
            dialog = app.screen
            assert [f for _, f in dialog.places] == [places / "presets", user_preset_dir()]
            assert dialog.folder == places / "presets"  # where the preset came from
            for _ in range(place):
                await pilot.press("down")  # typing the name, ↓ picks the next place
            assert dialog.folder == folder
            if place == 0:
                dialog.query_one("#saveas-name", Input).value = "mine"  # taken: the dialog says so and stays
                await pilot.press("enter")
                await pilot.pause(0.1)
                assert app.screen is dialog and "exists" in str(dialog.query_one("#saveas-target").render())
            dialog.query_one("#saveas-name", Input).value = "mine-2"
            target = dialog.query_one("#saveas-target")
            await until(pilot, lambda: str(target.render()) == f"saves {folder / 'mine-2.yaml'}", "the file named")
            await pilot.press("enter")
            await until(pilot, lambda: (folder / "mine-2.yaml").exists(), "the saved file")
            assert app.screen is editor and editor.path == folder / "mine-2.yaml" and not editor.modified
            assert "seed: 7" in (folder / "mine-2.yaml").read_text()
            assert "seed: 7" not in mine.read_text()

    asyncio.run(go())


def test_save_as_never_offers_the_bundled_folder(places: Path, monkeypatch) -> None:
    monkeypatch.chdir(ROOT)  # here ./presets/ is the bundled presets' folder
    assert [folder for _, folder in save_places()] == [user_preset_dir()]


def test_problems_are_marked_on_their_line_and_f8_visits_them(places: Path) -> None:
    async def go() -> None:
        app, editor = editor_app(places / "presets" / "mine.yaml")
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            area = area_of(editor)
            await pilot.pause(0.1)
            assert area.error_lines == frozenset()
            area.text = area.text.replace("learning_rate:", "learnin_rate:").replace("beta:", "betta:")
            await until(pilot, lambda: len(editor.problems) == 2, "two problems")
            lines = sorted(line for line, _ in editor.problems)
            assert [area.document.get_line(i).split(":")[0] for i in lines] == ["betta", "learnin_rate"]
            assert area.error_lines == frozenset(lines)
            area.move_cursor((0, 0))
            await pilot.press("f8")
            assert area.cursor_location[0] == lines[0]
            await pilot.press("f8")
            assert area.cursor_location[0] == lines[1]
            await pilot.press("f8")  # from the last, back to the first
            assert area.cursor_location[0] == lines[0]
            area.text = area.text.replace("betta:", "beta:")
            await until(pilot, lambda: len(editor.problems) == 1, "one problem left")
            assert area.error_lines == frozenset({lines[1]})

    asyncio.run(go())


def test_saving_with_problems_asks_first(places: Path) -> None:
    mine = places / "presets" / "mine.yaml"
    before = mine.read_text()

    async def go() -> None:
        app, editor = editor_app(mine)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            await pilot.pause(0.1)
            area_of(editor).text = before.replace("learning_rate:", "learnin_rate:")
            await pilot.press("ctrl+s")  # asked at once, without waiting for the validation's delay
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            assert "Save with 1 error?" in str(app.screen.query_one(".dialog-title").render())
            await pilot.press("n")
            await until(pilot, lambda: app.screen is editor, "the editor")
            assert mine.read_text() == before and editor.modified
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
            await pilot.press("y")
            await until(pilot, lambda: "learnin_rate" in mine.read_text(), "the save")
            assert not editor.modified

    asyncio.run(go())


def test_leaving_a_new_preset_asks_first(places: Path) -> None:
    async def go() -> None:
        app, editor = editor_app(places / "presets" / "mine.yaml", new=True)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            await pilot.pause(0.1)
            assert not editor.modified and editor.unsaved  # never saved, though not yet changed
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the question")
            await pilot.press("c")  # cancel: still editing
            await until(pilot, lambda: app.screen is editor, "the editor")
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the question again")
            await pilot.press("s")  # save: a new preset needs a name first
            await until(pilot, lambda: isinstance(app.screen, SaveAsScreen), "the save-as dialog")
            app.screen.query_one("#saveas-name", Input).value = "fresh"
            await pilot.press("enter")
            await until(pilot, lambda: editor not in app.screen_stack, "the editor to close")
            assert (places / "presets" / "fresh.yaml").read_text() == (places / "presets" / "mine.yaml").read_text()  # beside its source

    asyncio.run(go())


def test_leaving_with_edits_asks_and_discard_keeps_the_file(places: Path) -> None:
    mine = places / "presets" / "mine.yaml"
    before = mine.read_bytes()

    async def go() -> None:
        app, editor = editor_app(mine)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            await pilot.pause(0.1)
            await pilot.press("escape")  # nothing changed: no question
            await until(pilot, lambda: editor not in app.screen_stack, "the editor to close")
            editor2 = PresetEditorScreen(mine)
            await app.push_screen(editor2)
            await pilot.pause(0.1)
            area_of(editor2).text += "seed: 3\n"
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, ChoiceScreen), "the question")
            await pilot.press("d")
            await until(pilot, lambda: editor2 not in app.screen_stack, "the editor to close")

    asyncio.run(go())
    assert mine.read_bytes() == before


def test_saving_a_bundled_copy_over_an_earlier_copy_asks_first(places: Path) -> None:
    copy = user_preset_dir() / "tiny-arithmetic.yaml"
    copy.parent.mkdir(parents=True)
    copy.write_text("# my earlier copy\nmax_steps: 3\n")
    before = BUNDLED.read_bytes()

    async def go() -> None:
        app, editor = editor_app(BUNDLED)
        async with app.run_test(size=(100, 30)) as pilot:
            await app.push_screen(editor)
            await pilot.pause(0.1)
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question")
            assert "Replace" in str(app.screen.query_one(".dialog-title").render())
            await pilot.press("n")
            await until(pilot, lambda: app.screen is editor, "the editor")
            assert copy.read_text() == "# my earlier copy\nmax_steps: 3\n"
            await pilot.press("ctrl+s")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), "the question again")
            await pilot.press("y")
            await until(pilot, lambda: copy.read_bytes() == before, "the copy replaced")

    asyncio.run(go())
    assert BUNDLED.read_bytes() == before
