"""The wheel brings the presets and the tiny model along, and they are found wherever pip put
them: here ``pip install --prefix`` (``--user`` and a system pip install the same way, under
their own data folder), run from an unrelated folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT


@pytest.mark.slow
def test_a_wheel_installed_with_prefix_finds_its_presets(tmp_path: Path) -> None:
    wheels, prefix, elsewhere = tmp_path / "wheels", tmp_path / "prefix", tmp_path / "elsewhere"
    elsewhere.mkdir()
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", str(ROOT), "-w", str(wheels)], check=True, timeout=600,
                   capture_output=True)
    (wheel,) = wheels.glob("grpo_tui-*.whl")
    # --ignore-installed: never uninstall the environment's own (editable) grpo-tui first, as pip otherwise does
    subprocess.run([*pip, "install", "--no-deps", "--ignore-installed", "--prefix", str(prefix), str(wheel)],
                   check=True, timeout=300, capture_output=True)
    assert (Path(sys.prefix) / "bin" / "grpo-tui").exists() or os.name == "nt"  # this environment's is still there
    (site,) = prefix.glob("lib/python*/site-packages")
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", "import engine; from engine.config.schema import REPO_ROOT; "
                          "print(engine.__file__); print(REPO_ROOT)"], cwd=elsewhere, env=env, capture_output=True,
                         text=True, timeout=120)
    module, root = out.stdout.split()
    assert Path(module).is_relative_to(site) and Path(root) == prefix / "share" / "grpo-tui"
    listed = subprocess.run([sys.executable, "-m", "grpo_tui", "presets"], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "tiny-arithmetic" in listed.stdout
    assert (prefix / "share" / "grpo-tui" / "assets" / "tiny-model" / "config.json").is_file()


@pytest.mark.slow
def test_the_sdist_carries_what_its_tests_need(tmp_path: Path) -> None:
    """The source distribution holds the tests with their data, snapshots and conftest, the
    Makefile and the bundled model, so its tests run from the unpacked tree."""
    import tarfile

    out = subprocess.run([sys.executable, "-c", "import sys; from setuptools import build_meta; "
                          "print(build_meta.build_sdist(sys.argv[1]))", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=600, check=True)
    sdist = tmp_path / out.stdout.split()[-1]
    with tarfile.open(sdist) as tar:
        names = {name.split("/", 1)[1] for name in tar.getnames() if "/" in name}
    for needed in ("tests/conftest.py", "tests/data/recorded-run/metrics.jsonl", "tests/tui/__snapshots__",
                   "tests/helpers/scripted_agent.py", "Makefile", "assets/tiny-model/model.safetensors",
                   "presets/tiny-arithmetic.yaml", "engine/agents/episodes.py"):
        assert any(n == needed or n.startswith(needed + "/") for n in names), needed
    assert not any("__pycache__" in n for n in names)


def test_a_module_named_engine_in_the_working_folder_does_not_hide_ours(tmp_path: Path) -> None:
    """`engine` is a common name: a user's engine.py beside their script must not break
    `python -m grpo_tui` nor the API imported as grpo_tui.api (nor reward worker processes)."""
    (tmp_path / "engine.py").write_text("HIDDEN = True\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    listed = subprocess.run([sys.executable, "-m", "grpo_tui", "presets"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    assert listed.returncode == 0 and "tiny-arithmetic" in listed.stdout, listed.stderr[-500:]
    api = subprocess.run([sys.executable, "-c", "from grpo_tui.api import GRPOTrainer; import engine; "
                          "print(GRPOTrainer.__module__, hasattr(engine, 'HIDDEN'))"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert api.stdout.split() == ["engine.api.trainer", "False"], api.stderr[-500:]
    late = subprocess.run([sys.executable, "-c", "import engine, grpo_tui"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert late.returncode != 0 and "import grpo_tui (or grpo_tui.api) first, or rename that module" in late.stderr
