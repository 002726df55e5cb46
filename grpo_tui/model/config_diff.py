"""Which settings differ between runs: their resolved configs flattened to dotted keys.

A comparison of two runs reads best as the few keys that made them different
(``learning_rate``, ``dataset.task_args.digits``), not as two 60-line YAML files side by side.
A value adjusted while the run trained shows both ends (``5e-05 → 0.0001``): two runs that
ended on the same learning rate from different starts did not train alike.
"""

from __future__ import annotations

from typing import Any, Sequence

MISSING = "—"


def flatten(config: dict, prefix: str = "") -> dict[str, Any]:
    """``{"dataset": {"split": "train"}}`` → ``{"dataset.split": "train"}``; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def config_diff(configs: Sequence[dict]) -> list[tuple[str, list[Any]]]:
    """Every dotted key whose value is not the same in all ``configs`` (a key one run lacks
    counts as different), with each run's value (:data:`MISSING` where it has none), in the
    order the keys first appear."""
    flat = [flatten(c or {}) for c in configs]
    keys: dict[str, None] = {}
    for f in flat:
        keys.update(dict.fromkeys(f))
    rows = []
    for key in keys:
        values = [f.get(key, MISSING) for f in flat]
        if any(v != values[0] for v in values[1:]):
            rows.append((key, values))
    return rows


def show_value(value: Any) -> str:
    """A value as YAML would write it inline: ``5e-05``, ``null``, ``[accuracy, format]``."""
    if value is MISSING:
        return MISSING
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {show_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def adjusted(original: dict, live: dict) -> dict[str, str]:
    """A run's settings as shown: config.yaml's values, and ``old → new`` for each one its
    live adjustments changed (``live`` is config.yaml with the adjustments applied)."""
    before, after = flatten(original or {}), flatten(live or {})
    shown = {}
    for key, value in {**before, **after}.items():
        if key in before and before[key] != value:
            shown[key] = f"{show_value(before[key])} → {show_value(value)}"
        else:
            shown[key] = show_value(value)
    return shown
