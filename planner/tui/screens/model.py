"""Step 3: model, task, method, sequence length and the dataset (validated, with lengths)."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from planner import data, models
from planner.errors import FtplanError
from planner.plan import METHODS
from planner.tui.screens.base import WizardScreen


class ModelScreen(WizardScreen):
    HELP = "Model: a catalog name, a local path, a Hub id or a size like 7B. Data: a local JSON/JSONL file (optional)."

    def compose(self) -> ComposeResult:
        s = self.state
        yield Header()
        yield Static("3 · Model and data", classes="title")
        with VerticalScroll():
            with Horizontal(classes="row"):
                yield Label("Model")
                yield Input(s.model, id="model", placeholder="Llama-3.1-8B, ./my-model, 7B")
            with Horizontal(classes="row"):
                yield Label("Task")
                yield Select([("SFT", "sft"), ("DPO", "dpo")], value=s.task, allow_blank=False, id="task")
            with Horizontal(classes="row"):
                yield Label("Method")
                yield Select([("recommend for me", "auto")] + [(m, m) for m in METHODS], value=s.method or "auto",
                             allow_blank=False, id="method")
            with Horizontal(classes="row"):
                yield Label("Sequence length")
                yield Input(str(s.seq_len), id="seq_len", type="integer")
            with Horizontal(classes="row"):
                yield Label("Dataset")
                yield Input(s.data, id="data", placeholder="path/to/train.jsonl (optional)")
            yield Static("", id="data-report", classes="hint")
        yield self.nav_buttons("Next: plan")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
            return
        s = self.state
        try:
            s.model = self.query_one("#model", Input).value.strip()
            models.resolve(s.model)
            s.task = self.query_one("#task", Select).value
            s.method = self.query_one("#method", Select).value
            seq = self.query_one("#seq_len", Input).value.strip()
            if not seq.isdigit() or not 8 <= int(seq) <= 1_048_576:
                raise FtplanError("sequence length must be a whole number from 8 to 1,048,576")
            s.seq_len = int(seq)
            s.data = self.query_one("#data", Input).value.strip()
            s.examples = None
            if s.data:
                stats = data.inspect(s.data, task=s.task)
                s.examples = stats.rows
                self.query_one("#data-report", Static).update(
                    f"{stats.rows} rows, {stats.format}; tokens p50 {stats.percentiles[50]}, p99 {stats.percentiles[99]} ({stats.tokenizer})")
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        from planner.tui.screens.plan import PlanScreen

        self.app.push_screen(PlanScreen())
