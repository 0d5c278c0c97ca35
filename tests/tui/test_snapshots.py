"""One snapshot per wizard screen at 80 x 24 (pytest-textual-snapshot; accepted SVGs in
__snapshots__/). The run screen is live (its numbers change run to run) and is covered by
the Pilot test in test_wizard.py instead. Update after a deliberate change with
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
            pilot.app.screen.query_one("#next").press()
            await pilot.pause(0.3)
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
