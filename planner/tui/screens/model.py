"""Step 3: model, task, method, sequence length and the dataset (validated, with lengths)."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape
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
                yield Label("Trainer")
                yield Select([("ftplan's loop (fastest)", "ftplan"), ("TRL (SFTTrainer / DPOTrainer)", "trl")],
                             value=s.trainer, allow_blank=False, id="trainer")
            with Horizontal(classes="row"):
                yield Label("Sequence length")
                yield Input(str(s.seq_len), id="seq_len", type="integer")
            with Horizontal(classes="row"):
                yield Label("Dataset")
                yield Input(s.data, id="data", placeholder="path/to/train.jsonl (optional)")
            yield Static("", id="data-report", classes="hint")
        yield self.nav_buttons("Next: plan")
        yield Footer()

    def on_mount(self) -> None:
        self._reported = self.state.data.strip()
        self._report_data(self.state.data, set_length=True)

    def on_input_changed(self, event: Input.Changed) -> None:
        """The data report as soon as the field names a file; its recommended length becomes the
        sequence length. Done once on mount, so the Changed message Textual posts for the
        field's first value changes nothing (and never races the user's first key)."""
        if event.input.id == "data" and event.value.strip() != self._reported:
            self._reported = event.value.strip()
            self._report_data(event.value, set_length=True)

    def _report_data(self, path: str, set_length: bool) -> None:
        path = path.strip()
        report = self.query_one("#data-report", Static)
        if not path or not Path(path).expanduser().is_file():
            report.update("")
            return
        try:
            stats = data.inspect(path, task=self.query_one("#task", Select).value)
        except FtplanError as e:
            report.update(escape(f"{path}: {e}"))
            return
        length = stats.recommended_max_length()
        if set_length:
            self.query_one("#seq_len", Input).value = str(length)
        report.update(escape(f"{stats.rows:,} rows, {stats.tokens:,} tokens, {stats.format}; tokens p50 "
                             f"{stats.percentiles[50]}, p99 {stats.percentiles[99]} ({stats.tokenizer}); "
                             f"sequence length {length} (rule max_length.data)"))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
            return
        s = self.state
        try:
            model = self.query_one("#model", Input).value.strip()
            models.resolve(model)
            seq = self.query_one("#seq_len", Input).value.strip()
            if not seq.isdigit() or not 8 <= int(seq) <= 1_048_576:
                raise FtplanError("sequence length must be a whole number from 8 to 1,048,576")
            path = self.query_one("#data", Input).value.strip()
            task = self.query_one("#task", Select).value
            if path:
                data.inspect(path, task=task)
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        s.model, s.task, s.method, s.seq_len, s.data = model, task, self.query_one("#method", Select).value, int(seq), path
        s.trainer = self.query_one("#trainer", Select).value
        s.examples = None
        from planner.tui.screens.plan import PlanScreen

        self.app.push_screen(PlanScreen())
