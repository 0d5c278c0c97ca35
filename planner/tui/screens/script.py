"""Step 5: the rendered train.py and its launch command; save the run directory."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Static

from planner import models, workflow
from planner.errors import FtplanError
from planner.tui.screens.base import WizardScreen

SAMPLES = Path(__file__).resolve().parents[3] / "runner" / "data"


class ScriptScreen(WizardScreen):
    HELP = "Review the script; Save writes the run directory (train.py, launch.sh, merge.py, plan.toml); Run launches it."
    code = ""  # the previewed train.py

    def compose(self) -> ComposeResult:
        s = self.state
        yield Header()
        yield Static("5 · Script", classes="title")
        with Horizontal(classes="row"):
            yield Label("Run directory")
            yield Input(workflow.default_run_dir(s.model, s.plan), id="dir")
        with VerticalScroll(id="script"):
            yield Static(id="code")
        yield Static("", id="launch", classes="hint")
        with Horizontal(classes="buttons"):
            yield Button("Back", id="back")
            yield Button("Save", id="save", variant="primary")
            yield Button("Save and run", id="run", variant="success")
        yield Footer()

    def on_mount(self) -> None:
        target = self.query_one("#dir", Input).value.strip() or "run"
        try:
            code = workflow.preview(self.state.report, *self._paths(), self.state.advice.recommendations, target)
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        self.code = code  # the train.py that Save writes
        self.query_one("#code", Static).update(Syntax(code, "python", line_numbers=True, word_wrap=False))
        self._show_launch(Path(target))

    def _paths(self) -> tuple[str, str, str]:
        """(model path, data path, data format): the wizard's dataset, or the shipped sample."""
        s = self.state
        spec = models.resolve(s.model)
        model_path = workflow.default_model_path(spec, s.model)
        data = s.recommended.data
        if data is not None:
            return model_path, s.data, data.format
        sample = SAMPLES / ("preferences.jsonl" if s.task == "dpo" else "instructions.jsonl")
        return model_path, str(sample), "preference" if s.task == "dpo" else "alpaca"

    def _show_launch(self, target: Path) -> None:
        plan = self.state.plan
        note = "" if self.state.data else "  (no dataset given: the shipped sample data stands in)"
        if plan.nodes > 1:  # one launch.sh per node: SLURM starts them
            launch = f"submit: ftplan submit {target}   (or run launch.sh on each of the {plan.nodes} nodes)"
        else:
            launch = f"launch: bash {target / 'launch.sh'}   or: ftplan run {target}"
        self.query_one("#launch", Static).update(launch + note)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
            return
        target = Path(self.query_one("#dir", Input).value.strip() or "run")
        try:
            result = workflow.render_run(self.state.report, target, *self._paths(), command="ftplan (wizard)",
                                         recommendations=self.state.advice.recommendations, allow_oom=False)
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        self.state.run_dir = str(result.run_dir)
        self._show_launch(target)
        self.app.notify(f"saved {result.run_dir}")
        if event.button.id == "run":
            from planner.tui.screens.run import RunScreen

            self.app.push_screen(RunScreen())
