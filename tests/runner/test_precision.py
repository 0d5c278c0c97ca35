"""fp16 for cards without bf16: the plan follows the card in recommend and estimate, and the
rendered fp16 script trains with loss scaling, checkpoints the scaler and resumes (CPU)."""

import json

import pytest

from planner import hardware, memory, models, recommend, render
from planner.errors import PlanError
from planner.plan import Plan, validate
from runner import process
from runner.events import Finished, Metric

pytest.importorskip("peft")


@pytest.mark.parametrize("gpu", ["T4", "V100-32GB"])
def test_recommend_never_picks_bf16_on_a_card_without_it(gpu):
    card = hardware.resolve(gpu)
    assert not card.bf16
    for model in ("Llama-3.2-1B", "Qwen2.5-0.5B", "Llama-3.1-8B"):
        advice = recommend.recommend(models.resolve(model), Plan(model=model, gpu=card.name), card)
        assert advice.plan.precision == "fp16"
        assert any(r.setting == "precision" and r.value == "fp16" for r in advice.recommendations)


def test_bf16_on_a_card_without_it_is_refused_with_the_fix():
    with pytest.raises(PlanError, match="--precision fp16"):
        validate(Plan(model="Llama-3.2-1B", gpu="T4", precision="bf16"), models.resolve("Llama-3.2-1B"))


def test_fp16_full_fine_tuning_keeps_fp32_master_weights():
    spec = models.resolve("Llama-3.2-1B")
    fp16 = memory.estimate(spec, Plan(model=spec.name, method="full", precision="fp16")).term_bytes()
    bf16 = memory.estimate(spec, Plan(model=spec.name, method="full", precision="bf16")).term_bytes()
    assert fp16["weights"] == 2 * bf16["weights"] and fp16["optimizer_states"] == 2 * bf16["optimizer_states"]
    lora = memory.estimate(spec, Plan(model=spec.name, precision="fp16")).term_bytes()
    assert lora["weights"] == bf16["weights"]  # the frozen base runs in fp16


@pytest.mark.parametrize("method", ["lora", "full"])
def test_the_fp16_script_scales_the_loss_checkpoints_the_scaler_and_resumes(tmp_path, tiny_model, dataset, method):
    spec = models.resolve(str(tiny_model))
    data = dataset("alpaca")
    plan = Plan(model=str(tiny_model), method=method, precision="fp16", batch=2, seq_len=160, max_steps=2, save_steps=1,
                learning_rate=1e-3, rank=4, alpha=8, eval_fraction=0.0, data=str(data), data_format="alpaca")
    run_dir = tmp_path / "run"
    render.render(plan, spec, run_dir, str(tiny_model), str(data), "alpaca", command="pytest")
    text = (run_dir / "train.py").read_text()
    assert "GradScaler" in text and "scaler.unscale_(optimizer)" in text and "float16" in text
    events = list(process.run(run_dir))
    assert isinstance(events[-1], Finished) and events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-2000:]
    assert (run_dir / "checkpoints" / "step-000001" / "scaler.pt").exists()
    (run_dir / "train.py").write_text(text.replace("MAX_STEPS = 2", "MAX_STEPS = 3"))
    events = list(process.run(run_dir, resume=True))
    assert events[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-2000:]
    assert [e.step for e in events if isinstance(e, Metric)] == [3]
    losses = [json.loads(line)["loss"] for line in (run_dir / "metrics.jsonl").read_text().splitlines() if '"step"' in line
              and '"loss"' in line]
    assert all(loss == loss for loss in losses)
    bf16 = render.render_files(plan.with_(precision="bf16"), spec, tmp_path / "other", str(tiny_model), str(data), "alpaca", "pytest")
    assert "GradScaler" not in bf16["train.py"] and "scaler" not in bf16["train.py"]
