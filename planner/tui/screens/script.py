"""Step 5: the rendered train.py and its launch command; save the run directory."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Static

from planner import models, render
from planner.errors import FtplanError
from planner.tui.screens.base import WizardScreen

SAMPLES = Path(__file__).resolve().parents[3] / "runner" / "data"


class ScriptScreen(WizardScreen):
    HELP = "Review the script; Save writes the run directory (train.py, launch.sh, merge.py, plan.toml); Run launches it."

    def compose(self) -> ComposeResult:
        s = self.state
        default = s.run_dir or f"runs/{Path(s.model).name}-{s.advice.plan.method}-{s.task}"
        yield Header()
        yield Static("5 · Script", classes="title")
        with Horizontal(classes="row"):
            yield Label("Run directory")
            yield Input(default, id="dir")
        with VerticalScroll(id="script"):
            yield Static(id="code")
        yield Static("", id="launch", classes="hint")
        with Horizontal(classes="buttons"):
            yield Button("Back", id="back")
            yield Button("Save", id="save", variant="primary")
            yield Button("Save and run", id="run", variant="success")
        yield Footer()

    def on_mount(self) -> None:
        self._write_run(preview=True)

    def _data(self) -> tuple[str, str]:
        s = self.state
        if s.data:
            from planner import data

            return s.data, data.inspect(s.data, task=s.task).format
        sample = SAMPLES / ("preferences.jsonl" if s.task == "dpo" else "instructions.jsonl")
        return str(sample), "preference" if s.task == "dpo" else "alpaca"

    def _write_run(self, preview: bool) -> Path | None:
        s = self.state
        plan = s.advice.plan
        target = Path(self.query_one("#dir", Input).value.strip() or "run")
        out = Path("/tmp") / f"ftplan-preview-{id(self)}" if preview else target
        try:
            spec = models.resolve(plan.model)
            data_path, fmt = self._data()
            model_path = spec.path or spec.hub_id or plan.model
            result = render.render(plan.with_(data=data_path, data_format=fmt), spec, out, model_path, data_path, fmt,
                                   command="ftplan (wizard)", estimate=s.advice.estimate,
                                   recommendations=s.advice.recommendations, force=preview)
        except FtplanError as e:
            self.app.show_error(str(e))
            return None
        code = (out / "train.py").read_text()
        self.query_one("#code", Static).update(Syntax(code, "python", line_numbers=True, word_wrap=False))
        note = "" if s.data else "  (no dataset given: the shipped sample data stands in)"
        if plan.nodes > 1:  # one launch.sh per node: SLURM starts them
            launch = f"submit: ftplan submit {target}   (or run launch.sh on each of the {plan.nodes} nodes)"
        else:
            launch = f"launch: bash {target / 'launch.sh'}   or: ftplan run {target}"
        self.query_one("#launch", Static).update(launch + note)
        return None if preview else result.run_dir

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
            return
        run_dir = self._write_run(preview=False)
        if run_dir is None:
            return
        self.state.run_dir = str(run_dir)
        self.app.notify(f"saved {run_dir}")
        if event.button.id == "run":
            from planner.tui.screens.run import RunScreen

            self.app.push_screen(RunScreen())
