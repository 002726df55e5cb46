"""Shared fixtures: offline mode, the bundled tiny model, short real training runs, and a
folder standing in for a local model."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
TINY_MODEL = ROOT / "assets" / "tiny-model"


def write(path: Path, text: str) -> Path:
    """``text`` written to ``path`` (folders made as needed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def cli(*args: str) -> list[str]:
    """The command line that runs grpo-tui with this interpreter."""
    return [sys.executable, "-m", "grpo_tui", *args]


def wait_until(predicate, timeout: float = 180.0, what: str = "condition") -> None:
    """Poll ``predicate`` until it holds; a generous timeout, since CI shares a busy 2-core machine."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


async def wait_for(pilot, condition, what: str, limit: float = 120.0) -> None:
    """In a Pilot test: let the app run until ``condition()`` holds, within a generous limit."""
    deadline = time.monotonic() + limit
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def tiny_config(tmp_path: Path, *overrides: str):
    """The tiny-arithmetic preset, shortened for tests, writing into tmp_path/run."""
    from engine.config.presets import load_preset

    base = [f"output_dir={tmp_path / 'run'}", "dataset.task_args.eval_size=64", "eval_steps=0", "save_steps=0"]
    return load_preset("tiny-arithmetic", [*base, *overrides])


def train(cfg, **trainer_kwargs):
    """Run a Trainer to the end in this thread; returns (trainer, events)."""
    from engine.run.control import Control
    from engine.training.trainer import Trainer

    control = Control()
    events: list = []
    control.subscribe(events.append)
    trainer = Trainer(cfg, control=control, **trainer_kwargs)
    trainer.run()
    return trainer, events


@pytest.fixture(scope="session")
def short_run(tmp_path_factory):
    """One real 6-step run of the tiny preset shared by the tests that only read its output."""
    tmp = tmp_path_factory.mktemp("short-run")
    cfg = tiny_config(tmp, "max_steps=6", "save_steps=3", "log_completions_groups=2")
    trainer, events = train(cfg)
    return trainer, events


@pytest.fixture
def model_dir(tmp_path) -> Path:
    d = tmp_path / "model"
    d.mkdir()
    (d / "config.json").write_text("{}")
    return d


# Tests that train a model or start processes: `pytest -m "not slow"` (make test-quick) leaves them out.
# Whole modules whose every test does, and any test that reads the shared short training run;
# a test elsewhere that trains carries @pytest.mark.slow itself.
SLOW_MODULES = {
    "tests/engine/parallel/test_distributed.py",
    "tests/engine/training/test_faults.py",
    "tests/engine/training/test_train_integration.py",
    "tests/engine/training/test_toolbox.py",
    "tests/engine/training/test_flat_groups.py",
    "tests/engine/training/test_checkpoint_format.py",
    "tests/engine/test_gpu_path.py",
    "tests/tui/test_cli.py",
    "tests/tui/test_tui_attach.py",
    "tests/tui/test_tui_live.py",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        module = Path(str(item.fspath)).resolve().relative_to(ROOT).as_posix()
        if module in SLOW_MODULES or "short_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
