"""Step 1: should you fine-tune? The checklist from knowledge/checklist.toml, with a verdict."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Checkbox, Footer, Header, Static

from planner import advisor
from planner.tui.screens.base import WizardScreen


class ChecklistScreen(WizardScreen):
    HELP = "Tick what is true for your project (Space); the verdict updates. Next continues even if it says not to fine-tune."

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("1 · Should you fine-tune?", classes="title")
        yield Static(id="verdict")  # above the list, so it shows without scrolling at 80 x 24
        with VerticalScroll():
            for q in advisor.questions():
                yield Checkbox(q["text"], value=self.state.answers.get(q["id"], False), id=f"q-{q['id']}")
        with Horizontal(classes="buttons"):
            yield Button("Next: hardware", id="next", variant="primary")
        yield Footer()

    def on_mount(self) -> None:
        self._update()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        self.state.answers[event.checkbox.id.removeprefix("q-")] = event.value
        self._update()

    def _update(self) -> None:
        answers = {q["id"]: self.state.answers.get(q["id"], False) for q in advisor.questions()}
        v = advisor.verdict(answers)
        text = f"[b]Verdict: {v.name}[/b] · " + "; ".join(v.reasons)
        if v.instead:
            text += f"\n[i]Instead:[/i] {v.instead}"
        self.query_one("#verdict", Static).update(text)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        from planner.tui.screens.hardware import HardwareScreen

        self.app.push_screen(HardwareScreen())
