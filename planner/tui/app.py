"""The ftplan wizard: should you fine-tune -> hardware -> model and data -> plan -> script -> run."""

from __future__ import annotations

from textual.app import App
from textual.binding import Binding

from planner.tui.state import WizardState


class FtplanApp(App):
    CSS_PATH = "app.tcss"
    TITLE = "ftplan"
    SUB_TITLE = "plan, size, render and run a fine-tune"
    BINDINGS = [Binding("q", "quit", "quit"), Binding("question_mark", "help", "help")]

    def __init__(self, state: WizardState | None = None):
        super().__init__()
        self.state = state or WizardState()

    def on_mount(self) -> None:
        from planner.tui.screens.checklist import ChecklistScreen

        self.push_screen(ChecklistScreen())

    def check_action(self, action: str, parameters) -> bool | None:
        """q quits, except in a text field, where it is a letter."""
        from textual.widgets import Input

        if action == "quit" and isinstance(self.focused, Input):
            return False
        return True

    def action_help(self) -> None:
        screen = self.screen
        self.notify(getattr(screen, "HELP", "Tab moves between fields, Enter activates, Esc goes back, q quits."),
                    title="help", timeout=8)

    def show_error(self, message: str) -> None:
        """Errors from screens and workers appear here, never as a traceback."""
        self.notify(message, severity="error", timeout=10)


def run_app() -> int:
    FtplanApp().run()
    return 0
