"""Rebuild tests/data/recorded-calculator-run/: a real short run of the bundled calculator
agent (tiny-calculator-agent: the tiny agent model calling the built-in environment's `add`
tool), used by the inspector's snapshot of real episodes.

    HF_HUB_OFFLINE=1 python tests/data/make_recorded_calculator_run.py

Model weights (checkpoints/, final/) are dropped, and absolute paths are rewritten relative
to the runs folder.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from engine.config.presets import load_preset  # noqa: E402
from engine.run.control import Control  # noqa: E402
from engine.training.trainer import Trainer  # noqa: E402
from make_recorded_run import keep_as_fixture  # noqa: E402

OUT = HERE / "recorded-calculator-run"


def main() -> None:
    tmp = HERE / "recorded-calculator-run.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = load_preset("tiny-calculator-agent", ["max_steps=4", "log_completions_groups=2", "eval_steps=0",
                                                "save_steps=0", "run_name=recorded-calculator-run",
                                                f"output_dir={tmp}"])
    Trainer(cfg, control=Control()).run()
    keep_as_fixture(tmp, OUT)


if __name__ == "__main__":
    main()
