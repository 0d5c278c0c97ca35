"""Every estimate says what it rests on: measured (the family's committed GPU runs, each
within the stated bound), or derived (a margin before the fit verdict); never a silent
fallback to another family's numbers."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from planner import evidence, hardware, knowledge, memory, models
from planner.errors import PlanError
from planner.plan import Plan, validate

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "results"


def committed_runs():
    """The committed runs of plans the planner estimates (one it now refuses, Falcon-7B QLoRA,
    is held by test_calibration.py)."""
    for f in sorted(BENCH.glob("*.jsonl")):
        for line in f.read_text().splitlines():
            r = json.loads(line) if line.strip() else None
            if r and "plan" in r and "measured_nvml_peak_bytes" in r:
                plan = Plan(**r["plan"])
                try:
                    validate(plan, models.resolve(plan.model))
                except PlanError:
                    continue
                yield f.name, r


@pytest.mark.parametrize("row", knowledge.rows("evidence", "measured"),
                         ids=lambda r: r["family"] + ("-moe" if r.get("moe") else "") + "-" + r.get("trainer", "ftplan"))
def test_each_measured_family_has_committed_runs_within_its_bound(row):
    errors = []
    for _, r in committed_runs():
        plan = Plan(**r["plan"])
        spec = models.resolve(plan.model)
        if spec.family != row["family"] or spec.is_moe != row.get("moe", False) or r["oom"]:
            continue
        if plan.trainer != row.get("trainer", "ftplan") or evidence.of(spec, plan).kind != "measured":
            continue  # another program's runs, or TRL with checkpointing (derived, below)
        if r.get("lengths", "full") != "full" and not plan.packing:
            continue  # padded batches shorter than seq_len: fit verdict only
        est = memory.total_bytes(spec, plan)
        errors.append(abs(est - r["measured_nvml_peak_bytes"]) / r["measured_nvml_peak_bytes"])
    assert len(errors) >= 2, f"{row['family']}: fewer than two committed runs"
    assert max(errors) <= row["bound"]
    assert (ROOT / row["source"]).is_file()


def cohere(tmp_path) -> str:
    """Cohere Command R's published config.json (tests/planner/data/published_configs.json) in a
    directory: a layout read from the model's own code, run on the H200 within the derived
    margin but not the measured bound (bench/results/shared-h200-6.jsonl)."""
    published = json.loads((Path(__file__).parent / "data" / "published_configs.json").read_text())
    (tmp_path / "cohere").mkdir()
    (tmp_path / "cohere" / "config.json").write_text(json.dumps(published["CohereForAI/c4ai-command-r-v01"]))
    return str(tmp_path / "cohere")


def test_a_measured_family_gets_no_margin_and_an_unmeasured_one_does(tmp_path):
    llama, moe = models.resolve("Llama-3.2-1B"), models.resolve(cohere(tmp_path))
    assert evidence.of(llama).kind == "measured" and evidence.of(llama).margin == 0
    ev = evidence.of(moe)
    assert ev.kind == "derived" and ev.margin > 0 and "census" in ev.detail
    plan = Plan(model=moe.name, method="lora")
    est = memory.estimate(moe, plan, hardware.resolve("H200"))
    margin = est.term_bytes()["evidence_margin"]
    rest = sum(t.bytes for t in est.terms if t.at_peak and t.name != "evidence_margin")
    assert margin == int(rest * ev.margin) and est.total_bytes == rest + margin
    assert "evidence_margin" not in memory.estimate(llama, Plan(model="Llama-3.2-1B")).term_bytes()


def test_moe_of_a_measured_dense_family_is_measured_by_its_own_runs():
    for name, source in (("Qwen3-30B-A3B", "shared-h200-4.jsonl"), (str(ROOT / "bench" / "configs" / "qwen2-moe-3b"), "shared-h200-5.jsonl")):
        ev = evidence.of(models.resolve(name))
        assert ev.kind == "measured" and ev.source.endswith(source)
    assert evidence.measured_row(models.resolve("Qwen3-30B-A3B")) is not evidence.measured_row(models.resolve("Qwen3-8B"))


def test_estimate_json_and_text_carry_the_evidence(tmp_path):
    out = subprocess.run([sys.executable, "-m", "planner", "estimate", "--model", cohere(tmp_path), "--method", "lora",
                          "--gpu", "H200", "--json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    ev = json.loads(out)["evidence"]
    assert ev["kind"] == "derived" and ev["margin"] == knowledge.table("evidence")["derived"]["margin"]
    text = subprocess.run([sys.executable, "-m", "planner", "estimate", "--model", "Llama-3.2-1B", "--gpu", "H200"],
                          capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert "evidence: measured" in text


def test_moe_qlora_counts_the_fused_experts_at_16_bits():
    spec = models.resolve("Mixtral-8x7B")
    b, detail = memory.base_weight_bytes(spec, Plan(model=spec.name, method="qlora"))
    assert b > spec.expert_params() * 2 and "16-bit" in detail
    assert spec.quantized_params() == spec.linear_params() - spec.expert_params()
    assert spec.active_linear_params() < spec.linear_params() / 3  # two of eight experts per token


def test_an_architecture_without_a_table_or_code_is_refused_not_read_as_llama(tmp_path, monkeypatch):
    from planner import inventory
    from planner.errors import ModelError

    monkeypatch.setattr(inventory, "available", lambda: False)
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text(json.dumps({"model_type": "brand_new", "hidden_size": 512, "num_hidden_layers": 2,
                                               "num_attention_heads": 8, "intermediate_size": 1024, "vocab_size": 1000}))
    with pytest.raises(ModelError, match="no layout for the 'brand_new'"):
        models.resolve(str(d))


# Families first planned as derived, then run on the H200 with our scripts: Falcon-7B, a
# Mixtral-shaped and a Qwen3-MoE-shaped model, Qwen1.5-MoE's shared expert, GLM-4, and the
# layouts read from the model's own code: Granite, SmolLM3, OLMoE and Cohere.
FIRST_DERIVED = {"falcon", "mixtral-moe", "glm4", "qwen2-moe", "qwen3-moe", "granite", "smollm3", "olmoe-moe", "cohere"}


def test_families_first_derived_fall_within_the_derived_margin_with_the_right_verdict():
    """bench/results/families-h200.jsonl, shared-h200-4.jsonl, -5 and -6: every run of a family that
    was derived when it ran is within the derived margin of the formulas' estimate, and the
    verdict with the evidence's margin is right for every run, out of memory included."""
    runs = [r for name, r in committed_runs()
            if name in ("families-h200.jsonl", "shared-h200-4.jsonl", "shared-h200-5.jsonl", "shared-h200-6.jsonl")]
    margin = knowledge.table("evidence")["derived"]["margin"]
    seen = set()
    for r in runs:
        plan = Plan(**r["plan"])
        spec = models.resolve(plan.model)
        family = spec.family + ("-moe" if spec.is_moe else "")
        if family not in FIRST_DERIVED:
            continue
        seen.add(family)
        est = memory.estimate(spec, plan, hardware.resolve(plan.gpu))
        assert est.fits == (not r["oom"]), plan
        if not r["oom"]:
            raw = est.total_bytes - est.term_bytes().get("evidence_margin", 0)
            assert abs(raw - r["measured_nvml_peak_bytes"]) / r["measured_nvml_peak_bytes"] <= margin
    assert seen == FIRST_DERIVED


def test_trl_with_checkpointing_counts_the_recomputed_layers_backward():
    """With TRL's fused head the peak of a checkpointed adapter run is the recomputed layer's
    backward: its gradients are counted (layer_backward_bytes), which holds every such run
    within 8% (each was 8-19% above the estimate without it); runs held out from the count,
    compiled and eager, hold it too, so both are measured."""
    runs = [r for _, r in committed_runs() if r["plan"].get("trainer") == "trl" and r["plan"]["grad_ckpt"]
            and r["plan"]["method"] != "full" and r.get("lengths", "full") == "full"]
    held_out = [Plan(**r["plan"]) for r in runs if r.get("label") == "trl:ckpt-held-out"]
    assert len(runs) >= 9 and {p.compile for p in held_out} == {True, False}
    for r in runs:
        plan = Plan(**r["plan"])
        spec = models.resolve(plan.model)
        ev = evidence.of(spec, plan)
        assert ev.kind == "measured", plan
        est = memory.estimate(spec, plan)
        raw = est.total_bytes - est.term_bytes().get("evidence_margin", 0)
        assert abs(raw - r["measured_nvml_peak_bytes"]) / r["measured_nvml_peak_bytes"] <= 0.08
        assert memory.layer_backward_bytes(spec, plan) > 0 and est.total_bytes >= r["measured_nvml_peak_bytes"]
    full = Plan(model="Qwen3-0.6B", method="full", grad_ckpt=True, trainer="trl", loss="chunked")
    assert memory.layer_backward_bytes(models.resolve(full.model), full) == 0

def test_a_setting_never_measured_makes_the_estimate_derived():
    """--kbit-prep is counted and measured for the gated-MLP families; on a LayerNorm family it
    is not: that plan is derived, whatever the family's own evidence (a row that reads the
    model's layout as well as the plan)."""
    neox = models.resolve("Pythia-1B")
    prepared = evidence.of(neox, Plan(model=neox.name, method="qlora", kbit_prep=True))
    assert prepared.kind == "derived" and prepared.margin > 0 and "prepare_model_for_kbit_training" in prepared.detail
    llama = models.resolve("Llama-3.1-8B")
    assert evidence.of(llama, Plan(model=llama.name, method="qlora", kbit_prep=True)).kind == "measured"


def test_qlora_on_a_layernorm_family_is_counted_uncompiled_and_held_out_by_a_second_run():
    """GPT-NeoX's QLoRA run under TRL, compiled, peaked at the uncompiled count; the estimate
    counts its layers so, and a run held out from that rule (ftplan's loop) holds it: measured."""
    neox, llama = models.resolve("Pythia-1B"), models.resolve("Llama-3.2-1B")
    plan = Plan(model=neox.name, method="qlora")
    assert evidence.of(neox, plan).kind == "measured"
    assert memory.layer_activation_bytes_per_token(neox, plan) == \
        memory.layer_activation_bytes_per_token(neox, Plan(model=neox.name, method="qlora", compile=False))
    lora = Plan(model=neox.name, method="lora")
    assert memory.layer_activation_bytes_per_token(neox, lora) < \
        memory.layer_activation_bytes_per_token(neox, Plan(model=neox.name, method="lora", compile=False))
    held_out = [r for _, r in committed_runs() if r.get("label") == "qlora-layernorm:held-out"]
    assert [r["plan"]["model"] for r in held_out] == ["Pythia-1B"]
    raw = memory.total_bytes(neox, Plan(**held_out[0]["plan"]))
    assert abs(raw - held_out[0]["measured_nvml_peak_bytes"]) / held_out[0]["measured_nvml_peak_bytes"] <= 0.08
    assert evidence.of(llama, Plan(model=llama.name, method="qlora")).kind == "measured"


def test_trl_dpo_with_precomputed_reference_log_probs_is_measured():
    """Full DPO under TRL with the reference log-probs precomputed: no reference copy, and the
    two runs (shared-h200-5.jsonl) are within 0.5% of that estimate."""
    runs = [r for _, r in committed_runs() if r["plan"].get("precompute_ref")]
    assert len(runs) >= 2
    for r in runs:
        plan = Plan(**r["plan"])
        spec = models.resolve(plan.model)
        assert plan.method == "full" and evidence.of(spec, plan).kind == "measured"
        est = memory.estimate(spec, plan)
        assert "reference_model" not in est.term_bytes() or est.term_bytes()["reference_model"] == 0
        assert abs(est.total_bytes - r["measured_nvml_peak_bytes"]) / r["measured_nvml_peak_bytes"] <= 0.02
