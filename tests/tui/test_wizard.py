"""The wizard driven with Textual's Pilot, on the CPU, through to a real run."""

import asyncio
import json
import time
from pathlib import Path

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


async def _to_plan(pilot, app):
    await _next(pilot, app, "HardwareScreen")
    await _next(pilot, app, "ModelScreen")
    await _next(pilot, app, "PlanScreen")


def _errors(app) -> list[str]:
    return [str(n.message) for n in app._notifications if n.severity == "error"]


def test_every_fix_the_plan_screen_offers_applies_and_fits(tmp_path, monkeypatch):
    """70B full fine-tuning on the one H100 the user has does not fit: the screen offers the
    search's changes (QLoRA, more GPUs); each key applies its change and the plan then fits."""
    monkeypatch.chdir(tmp_path)

    def state():
        return WizardState(model="Llama-3.1-70B", gpu="H100-SXM", gpus=1, method="full", seq_len=2048)

    async def offered() -> int:
        app = FtplanApp(state())
        async with app.run_test(size=(120, 40)) as pilot:
            await _to_plan(pilot, app)
            assert not app.state.report.estimate.fits
            assert "does not fit" in str(app.screen.query_one("#fits").render())
            return len(app.state.report.fixes)

    count = asyncio.run(offered())
    assert count >= 2

    async def press(i: int) -> None:
        app = FtplanApp(state())
        async with app.run_test(size=(120, 40)) as pilot:
            await _to_plan(pilot, app)
            fix = app.state.report.fixes[i]
            await pilot.press(str(i + 1))
            await pilot.pause(0.3)
            assert not _errors(app)
            assert app.state.report.plan == fix.plan and app.state.report.estimate.fits
            assert "fits" in str(app.screen.query_one("#fits").render())
            await _next(pilot, app, "ScriptScreen")
            assert not _errors(app)

    for i in range(count):
        asyncio.run(press(i))


def test_q_in_a_text_field_is_a_letter_and_the_data_report_comes_at_once(tmp_path, monkeypatch, dataset):
    monkeypatch.chdir(tmp_path)
    data = dataset("alpaca", 40)

    async def go():
        app = FtplanApp(WizardState(model="Qwen2.5-0.5B", gpu="L4"))
        async with app.run_test(size=(100, 30)) as pilot:
            await _next(pilot, app, "HardwareScreen")
            await _next(pilot, app, "ModelScreen")
            field = app.screen.query_one("#data")
            field.focus()
            await pilot.press("q")
            await pilot.pause()
            assert field.value.endswith("q") and app.is_running
            field.value = str(data)
            await pilot.pause(0.3)
            report = str(app.screen.query_one("#data-report").render())
            assert "40 rows" in report and "alpaca" in report
            assert app.screen.query_one("#seq_len").value != "2048"  # the data's recommended length
            await _next(pilot, app, "PlanScreen")
            assert app.state.report.plan.seq_len == int(app.state.seq_len) < 2048
            await _next(pilot, app, "ScriptScreen")
            assert app.screen.query_one("#dir").value == "runs/Qwen2.5-0.5B-lora-sft"

    before = set(Path("/tmp").glob("ftplan-preview-*"))
    asyncio.run(go())
    assert set(Path("/tmp").glob("ftplan-preview-*")) == before


def test_the_trainer_chosen_on_the_model_screen_is_the_plan_estimated_and_rendered(tmp_path, monkeypatch):
    """TRL chosen in the wizard: the plan screen estimates TRL's program (its evidence line says
    so) and the script screen shows TRL's trainer, the same decision as `--trainer trl`."""
    pytest.importorskip("peft")
    monkeypatch.chdir(tmp_path)

    async def go():
        app = FtplanApp(WizardState(model="Llama-3.1-8B", gpu="H100-SXM", method="lora", seq_len=2048))
        async with app.run_test(size=(120, 40)) as pilot:
            await _next(pilot, app, "HardwareScreen")
            await _next(pilot, app, "ModelScreen")
            app.screen.query_one("#trainer").value = "trl"
            await pilot.pause()
            await _next(pilot, app, "PlanScreen")
            plan = app.state.plan
            assert plan.trainer == "trl" and plan.loss == "chunked"
            assert "under TRL" in app.state.report.estimate.evidence.detail
            await _next(pilot, app, "ScriptScreen")
            await pilot.pause(0.5)
            return app.screen.code

    assert "SFTTrainer" in asyncio.run(go())
