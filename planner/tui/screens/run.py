"""Step 6: run through the runner in a worker: live loss chart, tokens/s, memory, log tail;
stop (checkpoint) and resume; the runner's summary and diagnosis at the end."""

from __future__ import annotations

from pathlib import Path

from textual import work
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Button, Footer, Header, ProgressBar, RichLog, Sparkline, Static

from planner.errors import FtplanError
from planner.tui.screens.base import WizardScreen


class RunScreen(WizardScreen):
    HELP = "Stop saves a checkpoint and ends the run; Resume continues from it."

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(f"6 · Run  {self.state.run_dir}", classes="title")
        yield ProgressBar(id="progress", show_eta=True)
        yield Sparkline([], id="loss")
        yield Static("starting…", id="stats")
        yield RichLog(id="log", max_lines=500)
        with Horizontal(classes="buttons"):
            yield Button("Back", id="back")
            yield Button("Stop", id="stop", variant="warning")
            yield Button("Resume", id="resume", variant="primary", disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.losses: list[float] = []
        self.start(resume=False)

    def start(self, resume: bool) -> None:
        self.query_one("#resume", Button).disabled = True
        self.query_one("#stop", Button).disabled = False
        self.follow(resume)

    @work(thread=True, exclusive=True)
    def follow(self, resume: bool) -> None:
        from planner import workflow

        try:
            for ev in workflow.start_run(Path(self.state.run_dir), resume=resume, force=not resume):
                self.app.call_from_thread(self.show, ev)
        except FtplanError as e:
            self.app.call_from_thread(self.app.show_error, str(e))

    def show(self, ev) -> None:
        from runner.events import Checkpoint, Eval, Finished, LogLine, Metric, Started

        log = self.query_one("#log", RichLog)
        if isinstance(ev, Started):
            self.query_one("#progress", ProgressBar).update(total=ev.total_steps, progress=ev.start_step)
        elif isinstance(ev, Metric):
            v = ev.values
            self.losses.append(v.get("loss", 0.0))
            self.query_one("#loss", Sparkline).data = list(self.losses)
            self.query_one("#progress", ProgressBar).update(progress=ev.step)
            mem = f" · {v['mem_reserved_gib']:.1f} GiB reserved" if "mem_reserved_gib" in v else ""
            self.query_one("#stats", Static).update(
                f"step {ev.step}/{ev.total_steps} · loss {v.get('loss', 0):.4f} · {v.get('tokens_per_s', 0):,.0f} tok/s{mem}")
        elif isinstance(ev, Eval):
            log.write(f"step {ev.step}: eval loss {ev.eval_loss:.4f}")
        elif isinstance(ev, Checkpoint):
            log.write(f"step {ev.step}: checkpoint ({ev.reason})")
        elif isinstance(ev, LogLine):
            log.write(ev.text)
        elif isinstance(ev, Finished):
            text = f"{ev.state} at step {ev.last_step} (exit code {ev.exit_code})"
            if ev.diagnosis:
                text += f"\n{ev.diagnosis.name}: {ev.diagnosis.cause}\n" + "\n".join(f"· {a}" for a in ev.diagnosis.advice)
            self.query_one("#stats", Static).update(text)
            self.query_one("#stop", Button).disabled = True
            self.query_one("#resume", Button).disabled = ev.state != "interrupted"

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        elif event.button.id == "stop":
            from planner import workflow

            if not workflow.stop_run(Path(self.state.run_dir)):
                self.app.show_error("no run is alive in this directory")
        elif event.button.id == "resume":
            self.start(resume=True)
