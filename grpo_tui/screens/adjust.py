"""The adjust form: live-adjustable hyperparameters, validated before they are sent.

Values are typed as YAML (``1e-5``, ``[1.0, 0.5]``); only fields that changed are sent.
The engine applies them at the next step and logs an "adjust" event. Each input's tooltip, and
the hint line under the form for the focused one, give the field's type, default and doc (the
engine's field reference, as ``grpo-tui fields`` prints it).
"""

from __future__ import annotations

from typing import Any

import yaml
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from engine.config.docs import doc_for

from engine.config.schema import ADJUSTABLE_FIELDS as ADJUSTABLE  # the engine decides what may change live


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def parse_changes(current: dict[str, Any], texts: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Changed fields parsed as YAML, and per-field parse errors."""
    changes: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, text in texts.items():
        if text.strip() == format_value(current.get(name)):
            continue
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            errors[name] = "not a value (write e.g. 1e-5, 0.9 or [1.0, 0.5])"
            continue
        if isinstance(value, str):
            try:
                value = float(value)  # YAML 1.1 reads 1e-5 (no dot) as a string
            except ValueError:
                pass
        if name == "reward_weights" and value is None and current.get(name) is None:
            continue
        if value == current.get(name):
            continue
        changes[name] = value
    return changes, errors


def field_hint(name: str) -> Content:
    """``name: type = default`` then the field's doc, as the hint line shows it."""
    doc = doc_for(name)
    if doc is None:
        return Content(name)
    return Content.assemble((name, "bold"), f": {doc.type} = {doc.default}", (f" — {doc.doc}", "$text-muted"))


def validate(cfg: Any, changes: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, str]]:
    """The engine's own validation; problems mapped back to their fields."""
    from engine.config.schema import ConfigError
    from engine.config.checks import validate_adjustment

    try:
        return validate_adjustment(cfg, changes), {}
    except ConfigError as err:
        errors: dict[str, str] = {}
        for problem in getattr(err, "problems", None) or [str(err)]:
            field, _, message = problem.partition(":")
            key = field.strip().split(".")[0].split("[")[0]
            if key in ADJUSTABLE:
                errors[key] = (errors.get(key, "") + " " + message.strip()).strip()
            else:
                errors["_"] = (errors.get("_", "") + " " + problem).strip()
        return None, errors


class AdjustScreen(ModalScreen[dict | None]):
    """Returns the validated changes, or None when cancelled."""

    DEFAULT_CSS = """
    #adjust-hint { height: 2; margin-top: 1; }
    """

    BINDINGS = [
        Binding("escape", "cancel", "Cancel", id="adjust.cancel"),
        Binding("ctrl+s", "apply", "Apply", id="adjust.apply"),
    ]

    def __init__(self, cfg: Any, current: dict[str, Any]) -> None:
        super().__init__()
        self.cfg = cfg
        self.current = {name: current.get(name) for name in ADJUSTABLE}

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog", id="adjust-dialog"):
            yield Label("Adjust hyperparameters (applied at the next step)", classes="dialog-title")
            with Grid(id="adjust-grid") as grid:
                grid.styles.grid_gutter_horizontal = 0  # rows close up so the hint fits an 80×24 terminal
                for name in ADJUSTABLE:
                    yield Label(name, classes="field-label")
                    yield Input(format_value(self.current[name]), id=f"in-{name}", classes="field-input", compact=True,
                                tooltip=field_hint(name))
            yield Static("", id="adjust-hint")
            yield Label("", id="adjust-errors", classes="errors")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Apply (ctrl+s)", variant="primary", id="apply")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#adjust-errors").display = False
        self.query_one("#in-learning_rate", Input).focus()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        name = (event.widget.id or "").removeprefix("in-")
        if name in ADJUSTABLE:
            self.query_one("#adjust-hint", Static).update(field_hint(name))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "apply":
            self.action_apply()
        else:
            self.action_cancel()

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_apply(self) -> None:
        texts = {name: self.query_one(f"#in-{name}", Input).value for name in ADJUSTABLE}
        changes, errors = parse_changes(self.current, texts)
        if not errors and changes:
            coerced, errors = validate(self.cfg, changes)
        else:
            coerced = None
        for name in ADJUSTABLE:
            self.query_one(f"#in-{name}", Input).set_class(name in errors, "-invalid")
        if errors:
            shown = self.query_one("#adjust-errors", Label)
            shown.update("\n".join(f"{k}: {v}" if k != "_" else v for k, v in errors.items()))
            shown.display = True
            return
        if not changes:
            self.dismiss(None)
            return
        self.dismiss(coerced)
