"""The step-time model against our rendered scripts timed on an H100 (bench/results/), the
issue's speed targets in the committed benchmark, and time and cost arithmetic."""

import json
import math
import statistics
from pathlib import Path

import pytest

from bench import fit_speed
from planner import hardware, models, script, speed
from planner.plan import Plan

BENCH = Path(__file__).resolve().parents[2] / "bench" / "results"
H100 = hardware.resolve("H100-SXM")


def runs(name):
    rows = [json.loads(line) for line in (BENCH / name).read_text().splitlines() if line.strip()]
    return [r for r in rows if r.get("step_s") and not r["oom"]]


def error(run, gpu=H100) -> float:
    plan = Plan(**run["plan"])
    predicted = speed.estimate(models.resolve(plan.model), plan, gpu).step_s
    return (predicted - run["step_s"]) / run["step_s"]


# Runs timed over ten steps or more (after four untimed), as the fit selects them
# (bench/fit_speed.py timed(): full-length rows, the bench's windowed Mistral left out).
TEN_STEP = [r for r in fit_speed.measured_runs() if fit_speed.FILES[r["_file"]] is None]


@pytest.mark.parametrize("run", TEN_STEP, ids=lambda r: r.get("label") or r["plan"]["engine"] + "-" + r["plan"]["task"])
def test_every_run_timed_over_ten_steps_within_15_percent(run):
    """The issue's bound, on every run timed over ten steps (bench/fit_speed.py reaches 14.2%)."""
    assert abs(error(run)) <= 0.15


def _timed_rows(name):
    rows = [json.loads(line) for line in (BENCH / name).read_text().splitlines()]
    return [(i, r) for i, r in enumerate(rows) if fit_speed.timed(r)]


@pytest.mark.parametrize("name,prefix", [("memory-h100.jsonl", "row"), ("memory-h100-compiled.jsonl", "compiled-row")])
def test_every_three_step_run_has_a_ten_step_twin(name, prefix):
    """Every plan the memory matrices timed over three steps was timed again over ten, all of
    them (not those the model missed): the ten-step timing is the run's speed measurement."""
    again = {r["label"]: r for r in runs("retime-h100.jsonl")}
    for i, r in _timed_rows(name):
        twin = again[f"retime:{prefix}{i}"]
        assert Plan(**twin["plan"]).with_(max_steps=r["plan"]["max_steps"]) == Plan(**r["plan"])
        assert twin["steps"] >= 14


def test_speed_benchmark_median_within_5_percent():
    assert statistics.median(abs(error(r)) for r in runs("speed-h100.jsonl")) <= 0.05


@pytest.mark.parametrize("run", runs("memory-h100-engines.jsonl"), ids=lambda r: f"{r['plan']['engine']}-z{r['plan']['zero']}-{r['plan']['offload']}-{r['plan']['method']}")
def test_engine_runs_within_15_percent(run):
    """DeepSpeed and FSDP at world size 1: CPU Adam per engine, ZeRO-3's hooks, DeepSpeed's
    fp32 master step (knowledge/speed.toml, set from these runs)."""
    assert abs(error(run)) <= 0.15


@pytest.mark.parametrize("run", runs("qlora30b-h200.jsonl"), ids=lambda r: f"b{r['plan']['batch']}")
def test_the_h100_fit_carries_to_a_32b_qlora_on_the_h200(run):
    """Coefficients fitted on the H100 alone, the H200's datasheet rates: within 10%."""
    assert abs(error(run, hardware.resolve("H200"))) <= 0.10


@pytest.mark.parametrize("run", runs("memory-h100-compiled.jsonl"), ids=lambda r: r["model"])
def test_compiled_matrix_runs_within_25_percent(run):
    """Three timed steps of small models: held looser (the re-timed twins of two of them are
    in the ten-step set)."""
    assert abs(error(run)) <= 0.25


def test_first_matrix_timings_median_within_12_percent():
    """The first memory matrix timed three steps per run (eager, PEFT's cast on): the same plan
    timed over ten steps moved by up to 20% (rows 1 and 8), so a looser check."""
    errors = [abs(error(r)) for r in runs("memory-h100.jsonl")]
    assert len(errors) >= 38 and statistics.median(errors) <= 0.12 and max(errors) <= 0.35


def test_three_step_timings_are_noisy_enough_to_need_the_retimed_runs():
    """Why the ten-step set exists: first-matrix rows 1 and 8 timed again over ten steps."""
    first = [json.loads(line) for line in (BENCH / "memory-h100.jsonl").read_text().splitlines()]
    again = {r["label"]: r for r in runs("retime-h100.jsonl")}
    moved = [abs(again[f"retime:row{i}"]["step_s"] - first[i]["step_s"]) / first[i]["step_s"] for i in (1, 8)]
    assert min(moved) >= 0.15
    assert [Plan(**again[f"retime:row{i}"]["plan"]).with_(max_steps=4) for i in (1, 8)] == \
        [Plan(**first[i]["plan"]) for i in (1, 8)]


def test_packing_is_the_fastest_way_to_feed_varied_lengths():
    """The packing lever: varied-length answers packed into full blocks vs one a row padded."""
    rows = {r["label"]: r for r in runs("packing-h100.jsonl")}
    packed, padded = rows["8b-lora:packed-varied"], rows["8b-lora:padded-varied"]
    assert packed["plan"]["packing"] and not padded["plan"]["packing"]
    assert packed["tokens_per_s"] / padded["tokens_per_s"] >= 2.0


TARGETS = {"8b-lora:best": 12_000, "1b-full:best": 55_000, "8b-qlora:best": 6_000, "8b-dpo-lora:best": 7_000}


@pytest.mark.parametrize("label,target", TARGETS.items())
def test_committed_speed_meets_the_issue_targets_at_the_planners_batch(label, target):
    from planner import search

    run = next(r for r in runs("speed-h100.jsonl") if r["label"] == label)
    assert run["tokens_per_s"] >= target
    plan = Plan(**run["plan"])
    chosen = search.configure(models.resolve(plan.model), plan.with_(batch=1), H100, 64).plan
    assert (chosen.batch, chosen.grad_ckpt, chosen.loss) == (plan.batch, plan.grad_ckpt, plan.loss)


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
    once = {x.name: x.seconds for x in speed.estimate(m, base, H100).terms}
    four = {x.name: x.seconds for x in speed.estimate(m, base.with_(grad_accum=4), H100).terms}
    for name, seconds in four.items():  # micro-steps repeat, the optimizer steps once
        assert seconds == pytest.approx(once[name] * (1 if name.startswith("optimizer") else 4))
    slower_gpu = hardware.resolve("A100-80GB")
    assert speed.estimate(m, base, slower_gpu).step_s > t


def test_eager_dispatch_counts_each_familys_ops_and_the_extra_passes():
    llama, qwen3 = models.resolve("Llama-3.2-1B"), models.resolve("Qwen3-0.6B")
    plan = Plan(model="x", method="lora", compile=False)
    per_layer = lambda m, p: speed.eager_ops(m, p) / m.num_layers
    assert per_layer(qwen3, plan) > per_layer(llama, plan)  # q/k norms
    assert per_layer(llama, plan.with_(method="full")) < per_layer(llama, plan)  # no adapters, but weight gradients
    forward = per_layer(llama, plan.with_(grad_ckpt=True)) - per_layer(llama, plan)
    assert per_layer(llama, plan.with_(task="dpo")) - per_layer(llama, plan) < forward  # reference pass runs without adapters
    assert speed.raw_features(llama, plan.with_(task="dpo"), H100)["adapter_toggle"] > 0
    assert speed.raw_features(llama, plan, H100)["adapter_toggle"] == 0
    assert speed.raw_features(llama, plan.with_(compile=True), H100)["dispatch_eager"] == 0


def test_unmeasured_methods_are_not_compiled():
    assert script.compiles(Plan(model="x", method="lora"))
    assert not script.compiles(Plan(model="x", method="prefix"))
    assert not script.compiles(Plan(model="x", method="lora", compile=False))


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


def test_sdpas_math_kernel_is_charged_its_fp32_scores():
    """Falcon-7B's attention runs sdpa's math kernel (every score in fp32): the two Falcon runs
    with a step time on the H200 (the coefficient is read from them) are within 10%, where the
    fused-attention term alone left the LoRA run 36% short."""
    h200 = hardware.resolve("H200")
    timed = [r for name in ("shared-h200-4.jsonl", "families-h200.jsonl") for r in runs(name)
             if r["plan"]["model"] == "Falcon-7B"]
    assert len(timed) == 2
    for run in timed:
        assert abs(error(run, h200)) <= 0.10
        plan = Plan(**run["plan"])
        terms = {t.name for t in speed.estimate(models.resolve(plan.model), plan, h200).terms}
        assert "attention_math" in terms and "attention" not in terms


def test_lora_on_the_experts_costs_a_fold_per_pass_and_the_routed_weight_gradients_per_token():
    """The Mixtral-shaped pairs alone on the H200 (experts-h200-2.jsonl at batch 4,
    experts-b1-h200.jsonl at batch 1) set the two features: their step times with the experts
    adapted come out within 15% (the attention-only steps of this small MoE are
    predicted fast themselves); the folds do not shrink with the tokens, the weight gradients do,
    and checkpointing adds a fold per layer."""
    results = Path(__file__).resolve().parents[2] / "bench" / "results"
    h200 = hardware.resolve("H200")
    timed = [json.loads(line) for f in ("experts-h200-2.jsonl", "experts-b1-h200.jsonl")
             for line in (results / f).read_text().splitlines()]
    pairs = [r for r in timed if r["step_s"] and not r["plan"]["grad_ckpt"] and "experts" in r["plan"]["targets"]]
    assert len(pairs) == 2
    for r in pairs:
        plan = Plan(**r["plan"])
        predicted = speed.estimate(models.resolve(plan.model), plan, h200).step_s
        assert abs(predicted - r["step_s"]) <= 0.15 * r["step_s"], (plan.batch, predicted, r["step_s"])
    mixtral = models.resolve("bench/configs/mixtral-2b")
    raw = {(b, c): speed.raw_features(mixtral, Plan(model="bench/configs/mixtral-2b", method="lora", batch=b, grad_ckpt=c,
                                                    targets="attention,experts"), h200) for b in (1, 4) for c in (False, True)}
    assert raw[1, False]["expert_fold"] == raw[4, False]["expert_fold"] > 0
    assert raw[4, False]["expert_weight_grads"] == pytest.approx(4 * raw[1, False]["expert_weight_grads"])
    assert raw[4, True]["expert_fold"] == pytest.approx(1.5 * raw[4, False]["expert_fold"])
