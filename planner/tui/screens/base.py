"""What every wizard screen shares: Esc goes back, a title line, next/back buttons."""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button


class WizardScreen(Screen):
    BINDINGS = [Binding("escape", "back", "back"), Binding("ctrl+n", "next", "next")]
    HELP = "Tab moves between fields, Enter activates, Ctrl+N next, Esc goes back, q quits."

    @property
    def state(self):
        return self.app.state

    @staticmethod
    def nav_buttons(next_label: str) -> Horizontal:
        """Back and the primary Next button, the same row on every step of the wizard."""
        return Horizontal(Button("Back", id="back"), Button(next_label, id="next", variant="primary"), classes="buttons")

    def action_back(self) -> None:
        if len(self.app.screen_stack) > 2:
            self.app.pop_screen()

    def action_next(self) -> None:
        buttons = self.query("#next")
        if buttons:
            buttons.first(Button).press()
