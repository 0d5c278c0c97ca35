"""One snapshot per wizard screen at 80 x 24 (pytest-textual-snapshot; accepted SVGs in
__snapshots__/): the 80 x 24 check is these pictures. The run screen replays fixed events
so that its numbers are stable. Update after a deliberate change with
`pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs."""

import shutil
from pathlib import Path

import pytest

pytest.importorskip("textual")
pytest.importorskip("pytest_textual_snapshot")

from planner.tui.app import FtplanApp  # noqa: E402
from planner.tui.state import WizardState  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# A fixed absolute path: the script screen shows it, and the snapshot must not depend on the clone.
DATA = Path("/tmp/ftplan-snapshot-data/instructions.jsonl")


def app() -> FtplanApp:
    DATA.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "runner/data/instructions.jsonl", DATA)
    return FtplanApp(WizardState(model="Llama-3.2-1B", gpu="H100-SXM", seq_len=1024, data=str(DATA), method="lora"))


def forward(steps: int):
    async def run_before(pilot) -> None:
        for _ in range(steps):
            await pilot.app.workers.wait_for_complete()  # the data report sets the sequence length: never race it
            pilot.app.screen.query_one("#next").press()
            await pilot.pause(0.3)
        await pilot.app.workers.wait_for_complete()
        await pilot.pause(0.3)
    return run_before


@pytest.fixture(autouse=True)
def _no_gpu(monkeypatch, tmp_path):
    """The hardware screen shows what NVML finds: make it find nothing, as on CI."""
    from planner import hardware

    monkeypatch.setattr(hardware, "detect", lambda: hardware.Detection(problem="no NVIDIA driver (snapshot test)"))
    monkeypatch.chdir(tmp_path)


@pytest.mark.parametrize("screen,steps", [("checklist", 0), ("hardware", 1), ("model", 2), ("plan", 3), ("script", 4)])
def test_screen_at_80x24(snap_compare, screen, steps):
    assert snap_compare(app(), terminal_size=(80, 24), run_before=forward(steps))


RUN_DIR = Path("/tmp/ftplan-snapshot-run")
EVENTS = [
    {"event": "start", "total_steps": 3, "start_step": 0},
    {"event": "step", "step": 1, "total_steps": 3, "loss": 2.5, "tokens_per_s": 1000.0, "mem_reserved_gib": 1.5},
    {"event": "step", "step": 2, "total_steps": 3, "loss": 2.0, "tokens_per_s": 1000.0, "mem_reserved_gib": 1.5},
    {"event": "checkpoint", "step": 2, "path": "checkpoints/step-000002", "reason": "periodic"},
    {"event": "step", "step": 3, "total_steps": 3, "loss": 1.6, "tokens_per_s": 1000.0, "mem_reserved_gib": 1.5},
    {"event": "finished", "step": 3, "output": "output/final"},
]


def test_run_screen_at_80x24(snap_compare):
    """The run screen after a finished run: the runner drives a launch.sh that replays fixed
    events, so the numbers on screen are the same every time."""
    import json

    from planner.tui.screens.run import RunScreen

    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    lines = "\n".join(f"echo {json.dumps(json.dumps(e))}" for e in EVENTS)
    (RUN_DIR / "launch.sh").write_text(f"#!/usr/bin/env bash\necho 'loading the model'\n{lines}\n")
    the_app = app()
    the_app.state.run_dir = str(RUN_DIR)

    async def run_before(pilot) -> None:
        pilot.app.push_screen(RunScreen())
        for _ in range(100):
            await pilot.pause(0.1)
            if "succeeded" in str(pilot.app.screen.query_one("#stats").render()):
                break
        await pilot.pause(0.3)

    assert snap_compare(the_app, terminal_size=(80, 24), run_before=run_before)
