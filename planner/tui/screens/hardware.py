"""Step 2: the GPUs: detected through NVML, or chosen from the catalog."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from planner import hardware
from planner.tui.screens.base import WizardScreen


class HardwareScreen(WizardScreen):
    HELP = "Pick the GPU you have (or plan to rent or buy), how many per node, and how many nodes."

    def compose(self) -> ComposeResult:
        det = hardware.detect()
        if det.gpus:
            g = det.gpus[0]
            found = f"Detected {len(det.gpus)} x {g.name} ({g.total_bytes / 2**30:.1f} GiB, driver {det.driver_version})"
            if g.catalog_name:
                self.state.gpu = g.catalog_name
                self.state.gpus = len(det.gpus)
        else:
            found = det.problem
        yield Header()
        yield Static("2 · Hardware", classes="title")
        with VerticalScroll():
            yield Static(found, classes="hint", id="detected")
            with Horizontal(classes="row"):
                yield Label("GPU")
                yield Select([(f"{g.name} · {g.memory_bytes / 2**30:.0f} GiB · ${g.price_per_hour_usd:.2f}/h", g.name)
                              for g in hardware.catalog()], value=self.state.gpu, allow_blank=False, id="gpu")
            with Horizontal(classes="row"):
                yield Label("GPUs per node")
                yield Input(str(self.state.gpus), id="gpus", type="integer")
            with Horizontal(classes="row"):
                yield Label("Nodes")
                yield Input(str(self.state.nodes), id="nodes", type="integer")
        yield self.nav_buttons("Next: model and data")
        yield Footer()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "back":
            self.action_back()
            return
        gpus = self.query_one("#gpus", Input).value.strip()
        nodes = self.query_one("#nodes", Input).value.strip()
        for label, value in (("GPUs per node", gpus), ("Nodes", nodes)):
            if not value.isdigit() or int(value) < 1:
                self.app.show_error(f"{label} must be a whole number of at least 1")
                return
        self.state.gpu = self.query_one("#gpu", Select).value
        self.state.gpus = int(gpus)
        self.state.nodes = int(nodes)
        from planner.tui.screens.model import ModelScreen

        self.app.push_screen(ModelScreen())
