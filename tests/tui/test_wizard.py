"""The wizard driven with Textual's Pilot, on the CPU, through to a real run."""

import asyncio
import json
import time

import pytest

pytest.importorskip("textual")

from planner.tui.app import FtplanApp  # noqa: E402
from planner.tui.state import WizardState  # noqa: E402


async def _next(pilot, app, name):
    await pilot.click("#next")
    await pilot.pause(0.3)
    assert type(app.screen).__name__ == name


def test_checklist_verdict_and_back_keeps_answers():
    async def go():
        app = FtplanApp()
        async with app.run_test(size=(100, 30)) as pilot:
            app.screen.query_one("#q-knowledge_changes").focus()
            await pilot.press("space")
            await pilot.pause()
            assert "RAG" in str(app.screen.query_one("#verdict").render())
            await _next(pilot, app, "HardwareScreen")
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen.query_one("#q-knowledge_changes").value is True
            await pilot.press("q")
        assert app.return_code in (0, None)

    asyncio.run(go())


def test_bad_input_shows_an_error_not_a_traceback():
    async def go():
        app = FtplanApp(WizardState(model="Lama-9"))
        async with app.run_test(size=(100, 30)) as pilot:
            await _next(pilot, app, "HardwareScreen")
            await _next(pilot, app, "ModelScreen")
            await pilot.click("#next")
            await pilot.pause(0.3)
            assert type(app.screen).__name__ == "ModelScreen"
            assert any("unknown model" in str(n.message) for n in app._notifications)

    asyncio.run(go())


def test_whole_flow_to_a_real_run(tmp_path, tiny_model, dataset, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = dataset("alpaca", 64)

    async def go():
        app = FtplanApp(WizardState(model=str(tiny_model), gpu="L4", seq_len=128, data=str(data), method="lora"))
        async with app.run_test(size=(120, 40)) as pilot:
            await _next(pilot, app, "HardwareScreen")
            await _next(pilot, app, "ModelScreen")
            await _next(pilot, app, "PlanScreen")
            assert "fits" in str(app.screen.query_one("#fits").render())
            timing = str(app.screen.query_one("#speed").render())
            assert "tokens/s" in timing and "MFU" in timing and "$" in timing
            await _next(pilot, app, "ScriptScreen")
            await pilot.click("#run")
            await pilot.pause(0.5)
            assert type(app.screen).__name__ == "RunScreen"
            deadline = time.time() + 240
            while time.time() < deadline and "succeeded" not in str(app.screen.query_one("#stats").render()):
                await pilot.pause(0.5)
            assert "succeeded" in str(app.screen.query_one("#stats").render())
            assert app.screen.losses
        return app.state.run_dir

    run_dir = asyncio.run(go())
    events = [json.loads(l) for l in (tmp_path / run_dir / "metrics.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "finished"


def test_a_two_node_plan_gets_zero_and_a_slurm_submit_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    async def go():
        app = FtplanApp(WizardState(model="Llama-3.1-70B", gpu="H100-SXM", gpus=8, nodes=2, method="full",
                                    seq_len=2048))
        async with app.run_test(size=(120, 40)) as pilot:
            await _next(pilot, app, "HardwareScreen")
            assert app.screen.query_one("#nodes").value == "2"
            await _next(pilot, app, "ModelScreen")
            await _next(pilot, app, "PlanScreen")
            plan = app.state.advice.plan
            assert plan.world_size == 16 and plan.zero >= 2 and app.state.advice.estimate.fits
            assert "16 x H100-SXM" in str(app.screen.query_one("#speed").render())
            await _next(pilot, app, "ScriptScreen")
            assert "ftplan submit" in str(app.screen.query_one("#launch").render())

    asyncio.run(go())
