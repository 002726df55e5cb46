"""Rebuild tests/data/recorded-run/: a real short run of the tiny model, used by the
dashboard snapshot tests so they are deterministic (no engine, no clock).

    HF_HUB_OFFLINE=1 python tests/data/make_recorded_run.py

It adjusts the learning rate after step 4 and checkpoints after step 8 so the charts
show both kinds of marker; model weights (checkpoints/, final/) are dropped to keep the
fixture small, and absolute paths are rewritten relative to the runs folder.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from engine.config.presets import load_preset  # noqa: E402
from engine.run.control import Control  # noqa: E402
from engine.run.events import StepMetrics  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402

OUT = HERE / "recorded-run"


def main() -> None:
    tmp = HERE / "recorded-run.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = load_preset(
        "tiny-arithmetic",
        [
            "max_steps=12",
            "per_device_train_batch_size=32",
            "log_completions_groups=3",
            "eval_max_samples=100",
            "eval_steps=6",
            "run_name=recorded-run",
            f"output_dir={tmp}",
        ],
    )
    control = Control()

    def on_event(event) -> None:
        if isinstance(event, StepMetrics) and event.step == 4:
            control.adjust(learning_rate=1e-4)
        if isinstance(event, StepMetrics) and event.step == 8:
            control.checkpoint()

    control.subscribe(on_event)
    Trainer(cfg, control=control).run()
    keep_as_fixture(tmp, OUT)


def keep_as_fixture(tmp: Path, out: Path) -> None:
    """A finished run made a test fixture: weights and the live files (heartbeat, progress, the
    command channel) dropped, absolute paths made relative to the runs folder, moved to ``out``."""
    shutil.rmtree(tmp / "checkpoints", ignore_errors=True)
    shutil.rmtree(tmp / "final", ignore_errors=True)
    shutil.rmtree(tmp / "commands", ignore_errors=True)
    for name in ("heartbeat.json", "progress.json", ".lock"):
        (tmp / name).unlink(missing_ok=True)
    (tmp / "checkpoints").mkdir()
    for path in tmp.iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8").replace(str(tmp), f"runs/{out.name}")
            text = text.replace(str(HERE.parents[1]) + "/", "")
            path.write_text(text, encoding="utf-8")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    (out / "checkpoints" / ".keep").write_text("")


if __name__ == "__main__":
    main()
