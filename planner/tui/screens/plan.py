"""Step 4: the plan: per-GPU memory as a stacked bar against the card, fits or not, changes
that make it fit (one key each), training time and cost, and the recommended settings with
their rules."""

from __future__ import annotations

from rich.markup import escape
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Header, Static

from planner import hardware, memory, models, recommend, speed, workflow
from planner.errors import FtplanError
from planner.plan import Plan, default_loss
from planner.tui.screens.base import WizardScreen

BAR_WIDTH = 60
COLOURS = ("red", "yellow", "green", "cyan", "blue", "magenta", "bright_red", "bright_yellow", "bright_green",
           "bright_cyan", "bright_blue", "white")


def memory_bar(est: memory.Estimate, width: int = BAR_WIDTH) -> str:
    """Rich markup: one coloured run per term, scaled to the card's capacity (or the total)."""
    scale = max(est.total_bytes, est.gpu.memory_bytes if est.gpu else 0)
    bar, legend, used = "", [], 0
    for term, colour in zip([t for t in est.terms if t.at_peak], COLOURS):
        cells = round(term.bytes / scale * width)
        used += cells
        bar += f"[{colour}]{'█' * cells}[/]"
        legend.append(f"[{colour}]■[/] {term.name} {term.bytes / 2**30:.2f} GiB")
    bar += f"[dim]{'░' * max(0, width - used)}[/]"  # the card's free memory
    return bar + "\n" + "  ".join(legend)


def speed_line(sp: speed.SpeedEstimate | None) -> str:
    """Tokens/s, step time and MFU; total time and cost where the dataset size is known."""
    if sp is None:
        return ""
    text = (f"speed: {sp.tokens_per_s:,.0f} tokens/s, {sp.step_s:.2f} s/step, MFU {sp.mfu:.0%} "
            f"on {sp.plan.world_size} x {sp.gpu.name}")
    if sp.total_s is not None:
        hours = sp.total_s / 3600
        text += f"; {sp.total_steps:,} steps, {hours:.1f} h, ${sp.cost:,.2f} at ${sp.price_per_hour:.2f}/GPU-hour"
    return text


class PlanScreen(WizardScreen):
    HELP = "The estimate is per GPU, as nvidia-smi shows it. Keys 1-4 apply a change that makes the plan fit."
    BINDINGS = [Binding(str(i + 1), f"fix({i})", f"fix {i + 1}", show=False) for i in range(4)]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("4 · Plan", classes="title")
        yield Static(id="memory-bar")
        yield Static(id="fits")
        yield Static(id="speed")
        yield DataTable(id="recs", zebra_stripes=True)
        yield self.nav_buttons("Next: script")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#recs", DataTable)
        table.add_columns("setting", "value", "rule", "why", "source")
        s = self.state
        try:
            model = models.resolve(s.model)
            gpu = hardware.resolve(s.gpu)
            base = Plan(model=s.model, task=s.task, method=s.method if s.method != "auto" else "lora",
                        seq_len=s.seq_len, gpus=s.gpus, nodes=s.nodes, gpu=gpu.name, trainer=s.trainer,
                        loss=default_loss(s.trainer))
            given = frozenset({"seq_len"} | ({"method"} if s.method != "auto" else set()))
            s.recommended = workflow.recommend_plan(model, base, gpu, data_path=s.data or None, examples=s.examples,
                                                    given=given, grow=False)
            s.report = s.recommended.report
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        self._show()

    def _show(self) -> None:
        report = self.state.report
        est = report.estimate
        self.query_one("#memory-bar", Static).update(memory_bar(est))
        verdict = "[green]fits[/]" if est.fits else "[red]does not fit[/]"
        text = (f"{escape(recommend.one_line(est))}\n{est.total_bytes / 2**30:.2f} GiB of {est.gpu.memory_bytes / 2**30:.2f} GiB "
                f"per {est.gpu.name}: {verdict}, headroom {est.headroom_bytes / 2**30:.2f} GiB"
                f"\n[dim]evidence: {escape(est.evidence.line())}[/]")
        for n in self.state.advice.notes:
            text += f"\n{escape(n)}"
        for i, f in enumerate(report.fixes):
            text += f"\n  {escape(f'[{i + 1}]')} {escape(f.describe())}"
        self.query_one("#fits", Static).update(text)
        self.query_one("#speed", Static).update(speed_line(report.speed))
        table = self.query_one("#recs", DataTable)
        table.clear()
        for r in self.state.advice.recommendations:
            table.add_row(r.setting, str(r.value), r.rule_id, r.why, r.source)

    def action_fix(self, index: int) -> None:
        report = self.state.report
        if report is None or index >= len(report.fixes):
            return
        try:
            self.state.report = workflow.apply_fix(report, index)
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        self._show()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        elif self.state.report is not None:
            from planner.tui.screens.script import ScriptScreen

            self.app.push_screen(ScriptScreen())
