"""``grpo-tui fields --trl``: how each TRL name that is not one of our fields is handled,
printed from the table the Python API and the preset loader both read."""

from __future__ import annotations

import os
import sys


def list_trl_names(pattern: str | None) -> int:
    """TRL's names that are not our fields, each with how it is handled and TRL's default."""
    from engine.config.trl_names import trl_name_rows

    rows = [r for r in trl_name_rows() if not pattern or pattern.lower() in r[0].lower()]
    if not rows:
        print(f"grpo-tui: no TRL key matches {pattern!r} (grpo-tui fields --trl lists them)", file=sys.stderr)
        return 1
    column = max(len(r[0]) for r in rows) + 2
    try:
        for name, kind, default, note in rows:
            print(f"{name.ljust(column)}{kind} (TRL default {default}): {note}")
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
