"""Step 4: the plan: per-GPU memory as a stacked bar against the card, fits or not, changes
that make it fit (one key each), training time and cost, and the recommended settings with
their rules."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Button, DataTable, Footer, Header, Static

from planner import fixes, hardware, memory, models, recommend, speed
from planner.errors import FtplanError
from planner.plan import Plan
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
        legend.append(f"[{colour}]■[/] {term.name} {term.bytes / 2**30:.2f}")
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
    HELP = "The estimate is per GPU, as nvidia-smi shows it. Keys 1-3 apply a change that makes the plan fit."
    BINDINGS = [Binding("1", "fix(0)", "fix 1", show=False), Binding("2", "fix(1)", "fix 2", show=False),
                Binding("3", "fix(2)", "fix 3", show=False)]

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
                        seq_len=s.seq_len, gpus=s.gpus, nodes=s.nodes, gpu=gpu.name, data=s.data)
            s.advice = recommend.recommend(model, base, gpu, examples=s.examples, method_given=s.method != "auto",
                                           dataset_tokens=self._dataset_tokens())
        except FtplanError as e:
            self.app.show_error(str(e))
            return
        self._show(s.advice.estimate)

    def _dataset_tokens(self) -> int | None:
        s = self.state
        return s.examples * s.seq_len if s.examples else None  # packed rows: an upper bound

    def _show(self, est: memory.Estimate) -> None:
        self.query_one("#memory-bar", Static).update(memory_bar(est))
        verdict = "[green]fits[/]" if est.fits else "[red]does not fit[/]"
        text = (f"{est.total_bytes / 2**30:.2f} GiB of {est.gpu.memory_bytes / 2**30:.2f} GiB per {est.gpu.name}: {verdict}, "
                f"headroom {est.headroom_bytes / 2**30:.2f} GiB; largest micro-batch {est.max_micro_batch}")
        self._fixes = [] if est.fits else fixes.fitting_changes(est.model, est.plan, est.gpu)
        for i, f in enumerate(self._fixes):
            text += f"\n  [{i + 1}] {f.describe(est.gpu)}"
        self.query_one("#fits", Static).update(text)
        self.query_one("#speed", Static).update(speed_line(self.state.advice.speed))
        table = self.query_one("#recs", DataTable)
        table.clear()
        for r in self.state.advice.recommendations:
            table.add_row(r.setting, str(r.value), r.rule_id, r.why, r.source)

    def action_fix(self, index: int) -> None:
        if index >= len(getattr(self, "_fixes", [])):
            return
        fix = self._fixes[index]
        advice = self.state.advice
        est = memory.estimate(advice.estimate.model, fix.plan, advice.estimate.gpu)
        timing = speed.estimate(est.model, fix.plan, est.gpu, self._dataset_tokens())
        self.state.advice = recommend.Advice(fix.plan, advice.recommendations, est, advice.notes, timing)
        self._show(est)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
        elif self.state.advice is not None:
            from planner.tui.screens.script import ScriptScreen

            self.app.push_screen(ScriptScreen())
