"""The help screen: every key of the screen it was opened on, and the keys that work everywhere.

Built from the bindings themselves (the screen's and the app's, those hidden from the footer
included), so it cannot drift from what the keys do. Keys that do nothing right now (Resume
while the run trains, controls on a finished run) are listed dimmed, marked "not now".
Esc, ? and F1 close it.
"""

from __future__ import annotations

import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.dom import DOMNode
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

from grpo_tui.commands import COMMANDS

KEY_WIDTH = 14
COMMAND_TITLES = {action: title for action, title, _ in COMMANDS}


def screen_title(screen: Screen) -> str:
    """``DashboardScreen`` → ``Dashboard``; ``ConfigViewScreen`` → ``Config view``."""
    words = re.findall(r"[A-Z][a-z0-9]*", type(screen).__name__.removesuffix("Screen")) or ["Screen"]
    return " ".join([words[0], *(w.lower() for w in words[1:])])


def key_rows(node: DOMNode, app) -> list[tuple[str, str, bool]]:
    """(keys, what it does, acts now) for each of ``node``'s bindings, in their order; one row
    per action, its keys joined (``l / esc``)."""
    rows: dict[tuple[str, str], list] = {}
    for key, bindings in node._bindings.key_to_bindings.items():
        for binding in bindings:
            text = binding.tooltip or binding.description
            if binding.system or not text:
                continue
            row = rows.setdefault((binding.action, text), [[], binding])
            shown = app.get_key_display(binding)
            if shown not in row[0]:
                row[0].append(shown)
    generic = {b.action for b in Screen.BINDINGS if isinstance(b, Binding)}  # focus moves, copy: listed last
    ordered = sorted(rows.items(), key=lambda item: item[0][0] in generic)
    return [(" / ".join(keys), _sentence(COMMAND_TITLES.get(action, text)), _acts_now(node, binding))
            for (action, text), (keys, binding) in ordered]


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _acts_now(node: DOMNode, binding: Binding) -> bool:
    action = binding.action
    if "." in action.split("(")[0]:  # "app.pop_screen": another namespace decides
        return True
    name = action.split("(")[0]
    try:
        return node.check_action(name, ()) is not False
    except Exception:  # noqa: BLE001 - a check that fails to answer must not hide the help
        return True


def render_rows(rows: list[tuple[str, str, bool]]) -> Content:
    parts: list = []
    for keys, text, now in rows:
        parts.append((f" {keys:<{KEY_WIDTH}}", "bold $accent" if now else "$text-muted"))
        parts.append((text + ("" if now else "  (not now)"), "" if now else "$text-muted"))
        parts.append("\n")
    return Content.assemble(*parts[:-1]) if parts else Content.styled(" no keys", "$text-muted")


class HelpScreen(ModalScreen[None]):
    """The keys of the screen below; Esc, ? or F1 closes it."""

    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > Vertical { width: 76; max-width: 100%; height: auto; max-height: 100%;
                            border: round $accent; background: $surface; padding: 0 1; }
    HelpScreen VerticalScroll { height: auto; max-height: 100%; }
    HelpScreen .help-section { color: $text-muted; text-style: bold; }
    HelpScreen #help-everywhere { margin-top: 1; }
    """

    BINDINGS = [Binding("escape,question_mark,f1", "close", "Close", id="help.close")]

    def __init__(self, screen: Screen) -> None:
        super().__init__()
        self.title_text = screen_title(screen)
        self.screen_rows = key_rows(screen, screen.app)
        self.app_rows = key_rows(screen.app, screen.app)

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"Keys — {self.title_text}"
            box.border_subtitle = "Esc or ? closes · Ctrl+P: every command"
            with VerticalScroll():
                yield Static(render_rows(self.screen_rows), id="help-screen-keys")
                yield Static("Everywhere", classes="help-section", id="help-everywhere")
                yield Static(render_rows(self.app_rows), id="help-app-keys")

    def action_close(self) -> None:
        self.dismiss(None)
