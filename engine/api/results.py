"""What ``GRPOTrainer.train()`` returns and the metric helpers TRL and open-r1 scripts call
after it (``log_metrics``, ``save_metrics``, ``save_state``), as transformers' Trainer has them.

``train()`` returns :class:`TrainResult`: the run's summary (a dict, as before) that also reads
as transformers' ``TrainOutput`` (``global_step``, ``training_loss``, ``metrics``), so
``train_result.metrics`` works in a script written for TRL.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


class TrainResult(dict):
    """The run's summary, with ``TrainOutput``'s fields: ``global_step``, ``training_loss`` (the
    mean of the logged losses) and ``metrics`` (``train_runtime``, ``train_steps_per_second``,
    ``train_loss``)."""

    def __init__(self, summary: dict, log_history: list[dict]) -> None:
        super().__init__(summary)
        losses = [e["loss"] for e in log_history if isinstance(e.get("loss"), (int, float))]
        self.global_step = int(summary.get("steps") or 0)
        self.training_loss = sum(losses) / len(losses) if losses else 0.0
        runtime = float(summary.get("wall_time_s") or 0.0)
        self.metrics = {"train_runtime": runtime, "train_loss": self.training_loss,
                        "train_steps_per_second": round(self.global_step / runtime, 3) if runtime > 0 else 0.0}


def log_metrics(split: str, metrics: dict[str, Any], main: bool) -> None:
    """Print ``metrics`` under ``***** split metrics *****``, as transformers does (main process)."""
    if not main or not metrics:
        return
    from transformers.trainer_pt_utils import metrics_format

    shown = metrics_format(metrics)
    k_width = max(len(str(k)) for k in shown)
    v_width = max(len(str(v)) for v in shown.values())
    print(f"***** {split} metrics *****")
    for key in sorted(shown):
        print(f"  {key: <{k_width}} = {shown[key]:>{v_width}}")


def save_metrics(output_dir: Path, split: str, metrics: dict[str, Any], combined: bool, main: bool) -> None:
    """``<output_dir>/<split>_results.json``, merged into ``all_results.json`` when ``combined``."""
    if not main:
        return
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / f"{split}_results.json").write_text(json.dumps(metrics, indent=4, sort_keys=True), encoding="utf-8")
    if combined:
        path = output_dir / "all_results.json"
        merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
        merged.update(metrics)
        path.write_text(json.dumps(merged, indent=4, sort_keys=True), encoding="utf-8")
