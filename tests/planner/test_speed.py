"""The step-time model against our rendered scripts timed on an H100 (bench/results/), the
issue's speed targets in the committed benchmark, and time and cost arithmetic."""

import json
import math
import statistics
from pathlib import Path

import pytest

from planner import hardware, models, speed
from planner.plan import Plan

BENCH = Path(__file__).resolve().parents[2] / "bench" / "results"
H100 = hardware.resolve("H100-SXM")


def runs(name):
    rows = [json.loads(line) for line in (BENCH / name).read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("step_s") and not r["oom"]]


def error(run) -> float:
    plan = Plan(**run["plan"])
    predicted = speed.estimate(models.resolve(plan.model), plan, H100).step_s
    return (predicted - run["step_s"]) / run["step_s"]


@pytest.mark.parametrize("run", runs("speed-h100.jsonl"), ids=lambda r: r["label"])
def test_speed_benchmark_step_time_within_15_percent(run):
    assert abs(error(run)) <= 0.15


@pytest.mark.parametrize("run", runs("memory-h100-compiled.jsonl"), ids=lambda r: r["model"])
def test_compiled_matrix_runs_within_20_percent(run):
    """Six-step runs of small models: launch overheads dominate; held at 20% (Phi-3 is 17.6%)."""
    assert abs(error(run)) <= 0.20


def test_first_matrix_timings_median_within_12_percent():
    """The first memory matrix timed three steps per run (eager, PEFT's cast on): a looser check."""
    errors = [abs(error(r)) for r in runs("memory-h100.jsonl")]
    assert len(errors) >= 38 and statistics.median(errors) <= 0.12 and max(errors) <= 0.35


TARGETS = {"8b-lora:best": 12_000, "1b-full:best": 55_000, "8b-qlora:best": 6_000, "8b-dpo-lora:best": 7_000}


@pytest.mark.parametrize("label,target", TARGETS.items())
def test_committed_speed_meets_the_issue_targets_at_the_planners_batch(label, target):
    from planner import recommend

    run = next(r for r in runs("speed-h100.jsonl") if r["label"] == label)
    assert run["tokens_per_s"] >= target
    plan = Plan(**run["plan"])
    chosen, _ = recommend.fit_batch(models.resolve(plan.model), plan.with_(batch=1), H100, 64)
    assert (chosen.batch, chosen.grad_ckpt) == (plan.batch, plan.grad_ckpt)


def test_terms_sum_to_the_step_and_total_time_and_cost_follow():
    m = models.resolve("Llama-3.1-8B")
    plan = Plan(model=m.name, method="lora", batch=4, grad_accum=2, gpus=2)
    sp = speed.estimate(m, plan, H100, dataset_tokens=10_000_000, epochs=3, price_per_hour=2.0)
    assert sp.step_s == pytest.approx(sum(t.seconds for t in sp.terms))
    assert sp.tokens_per_step == 4 * 2048 * 2 * 2
    assert sp.total_steps == math.ceil(30_000_000 / sp.tokens_per_step)
    assert sp.cost == pytest.approx(sp.total_s / 3600 * 2.0 * 2)
    assert 0 < sp.mfu < 1
    assert speed.estimate(m, plan, H100).cost is None


def test_compilation_checkpointing_and_accumulation_move_the_time_the_right_way():
    m = models.resolve("Llama-3.1-8B")
    base = Plan(model=m.name, method="lora", batch=4)
    t = speed.estimate(m, base, H100).step_s
    assert speed.estimate(m, base.with_(compile=False), H100).step_s > t
    assert speed.estimate(m, base.with_(grad_ckpt=True), H100).step_s > t
    assert speed.estimate(m, base.with_(grad_accum=4), H100).step_s == pytest.approx(4 * t, rel=0.01)
    slower_gpu = hardware.resolve("A100-80GB")
    assert speed.estimate(m, base, slower_gpu).step_s > t


def test_unmeasured_methods_are_not_compiled():
    assert speed.compiles(Plan(model="x", method="lora"))
    assert not speed.compiles(Plan(model="x", method="prefix"))
    assert not speed.compiles(Plan(model="x", method="lora", compile=False))


def test_communication_grows_with_sharding_and_across_nodes():
    m = models.resolve("Llama-3.1-70B")
    comm = lambda **kw: speed.raw_features(m, Plan(model="x", method="full", batch=1, **kw), H100)["communication"]
    assert comm(gpus=1) == 0
    assert 0 < comm(gpus=8, zero=2) < comm(gpus=8, zero=3) < comm(gpus=8, nodes=2, zero=3)
    pcie = hardware.resolve("RTX-4090")
    assert speed.raw_features(m, Plan(model="x", method="full", batch=1, gpus=8, zero=3), pcie)["communication"] > \
        comm(gpus=8, zero=3)


def test_a_gpu_without_datasheet_figures_gets_no_speed_estimate():
    from dataclasses import replace

    unknown = replace(H100, name="Mystery", bf16_tflops=0.0)
    assert speed.estimate(models.resolve("Llama-3.2-1B"), Plan(model="x"), unknown) is None
