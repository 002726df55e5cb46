"""Where presets live: the user's folder (XDG_CONFIG_HOME respected), the bundled folder the
editor never writes to, and which copy a name finds."""

from __future__ import annotations

import pytest

from engine.config.presets import bundled_preset_dir, find_presets, is_bundled, load_preset, preset_dirs, user_preset_dir
from conftest import ROOT, write


@pytest.fixture
def home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    return home


def test_user_dir_follows_xdg_config_home(home, tmp_path, monkeypatch):
    assert user_preset_dir() == home / ".config" / "grpo-tui" / "presets"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    assert user_preset_dir() == tmp_path / "cfg" / "grpo-tui" / "presets"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/cfg")  # not absolute: ignored, as the spec says
    assert user_preset_dir() == home / ".config" / "grpo-tui" / "presets"


def test_bundled_presets_are_told_apart(home, tmp_path):
    assert bundled_preset_dir() == ROOT / "presets"
    assert is_bundled(ROOT / "presets" / "tiny-arithmetic.yaml")
    assert not is_bundled(tmp_path / "presets" / "tiny-arithmetic.yaml")
    assert not is_bundled(user_preset_dir() / "tiny-arithmetic.yaml")


def test_a_user_copy_takes_the_bundled_presets_place(home, tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)  # from the source tree ./presets/ is the bundled folder: searched last
    assert preset_dirs() == [user_preset_dir(), bundled_preset_dir()]
    copy = write(user_preset_dir() / "tiny-arithmetic.yaml", (ROOT / "presets" / "tiny-arithmetic.yaml").read_text()
                 .replace("max_steps: 1000", "max_steps: 7"))
    assert load_preset("tiny-arithmetic").max_steps == 7
    (info,) = [i for i in find_presets() if i.name == "tiny-arithmetic"]
    assert info.path == copy
    work = tmp_path / "work"
    write(work / "presets" / "tiny-arithmetic.yaml", copy.read_text().replace("max_steps: 7", "max_steps: 9"))
    monkeypatch.chdir(work)
    assert preset_dirs()[0] == work / "presets"
    assert load_preset("tiny-arithmetic").max_steps == 9
