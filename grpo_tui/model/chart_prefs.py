"""Which metrics each chart shows, remembered per preset in ~/.config/grpo-tui/charts.json.

A user who adds ``time/generate`` to a chart wants it there the next time a run of the
same preset opens, not on every other preset's charts. The file maps a preset name to
{chart title: [metric, ...]}; a chart not listed shows its default metrics. A missing or
unreadable file means defaults (never an error); a failed save raises :class:`OSError`
with one clear sentence for the caller to show.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any


def prefs_path() -> Path:
    """``$XDG_CONFIG_HOME/grpo-tui/charts.json`` (``~/.config`` when it is unset)."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "grpo-tui" / "charts.json"


def preset_key(config: dict[str, Any], run_dir: str | None) -> str:
    """The preset a run belongs to: its ``run_name`` (which defaults to the preset's name),
    else its directory's name without the ``-YYYYMMDD-HHMMSS`` a run directory gets.

    >>> preset_key({}, "runs/tiny-arithmetic-20250101-120000")
    'tiny-arithmetic'
    """
    name = config.get("run_name")
    if isinstance(name, str) and name:
        return name
    stem = Path(run_dir).name if run_dir else ""
    return re.sub(r"[-_]\d{8}[-_T]?\d{4,6}$", "", stem) or "default"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(prefs_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def load(preset: str) -> dict[str, list[str]]:
    """{chart title: metrics} saved for ``preset`` (only well-formed entries)."""
    entry = _read().get(preset)
    if not isinstance(entry, dict):
        return {}
    return {title: [m for m in metrics if isinstance(m, str)] for title, metrics in entry.items()
            if isinstance(title, str) and isinstance(metrics, list)}


def save(preset: str, chart: str, metrics: list[str] | None) -> None:
    """Remember ``metrics`` for ``chart`` of ``preset`` (None: forget them, back to defaults)."""
    data = _read()
    entry = data.get(preset) if isinstance(data.get(preset), dict) else {}
    if metrics is None:
        entry.pop(chart, None)
    else:
        entry[chart] = list(metrics)
    data[preset] = entry
    path = prefs_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(path)
    except OSError as err:
        raise OSError(f"cannot save chart choices to {path}: {err.strerror or err}") from err
