"""A footer that packs its key hints tighter on narrow terminals (80 columns)."""

from __future__ import annotations

from textual import events
from textual.widgets import Footer

NARROW = 120


class ResponsiveFooter(Footer):
    def on_mount(self) -> None:
        self.compact = self.app.size.width < NARROW

    def on_resize(self, event: events.Resize) -> None:
        self.compact = self.app.size.width < NARROW
