"""Capacity planning: on each GPU type, the setup recommend gives for the job (the fewest GPUs
it fits on, or the cheapest of that count, twice and four times it)."""

import json
import subprocess
import sys
from pathlib import Path

from planner import capacity, hardware, memory, models, search
from planner.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
L70 = models.resolve("Llama-3.1-70B")
FULL = Plan(model=L70.name, method="full")


def test_each_setup_fits_and_half_as_many_gpus_would_not():
    found = capacity.setups(L70, FULL)
    assert found
    for s in found:
        assert s.per_gpu_bytes <= s.gpu.memory_bytes
        assert memory.total_bytes(L70, s.plan) == s.per_gpu_bytes
        assert search.judge(L70, s.plan, s.gpu).fits
        if s.count > 1:
            half = search.layout(FULL.with_(gpus=1), s.count // 2)
            assert search.configure(L70, half, s.gpu, s.plan.effective_batch) is None


def test_with_a_dataset_setups_are_cheapest_first_and_may_use_more_gpus_than_the_fewest():
    found = capacity.setups(L70, FULL, dataset_tokens=100_000_000)
    costs = [s.speed.cost for s in found]
    assert costs == sorted(costs) and all(c > 0 for c in costs)
    for s in capacity.setups(L70, FULL):
        wider = next(w for w in found if w.gpu.name == s.gpu.name)
        assert wider.count in (s.count, 2 * s.count, 4 * s.count)


def test_cards_without_bf16_are_offered_with_fp16_plans():
    setups = capacity.setups(models.resolve("Llama-3.2-1B"), Plan(model="x", method="lora"))
    no_bf16 = [s for s in setups if not s.gpu.bf16]
    assert no_bf16 and all(s.plan.precision == "fp16" for s in no_bf16)
    assert all(s.plan.precision == "bf16" for s in setups if s.gpu.bf16)


def test_a_plan_that_fits_one_card_needs_one():
    s = capacity.setups(models.resolve("Llama-3.1-8B"), Plan(model="x", method="qlora"), [hardware.resolve("H100-SXM")])
    assert len(s) == 1 and s[0].count == 1 and s[0].plan.launcher_engine == "none"


def test_host_ram_rules_out_a_card_whose_node_cannot_load_the_weights():
    """A 70B full fine-tune loads 140 GB of weights in each process: a 4090 workstation's RAM
    (knowledge/gpus.toml) cannot hold that, whatever the GPU count."""
    gpu = hardware.resolve("RTX-4090")
    assert memory.host_ram_bytes(L70, FULL) > gpu.host_ram_bytes_per_gpu
    assert capacity.setups(L70, FULL, [gpu]) == []


def test_capacity_cli_json():
    out = subprocess.run([sys.executable, "-m", "planner", "capacity", "-m", "Llama-3.1-70B", "--method", "full",
                          "--gpu", "H100-SXM", "--dataset-tokens", "50000000", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    (s,) = d["setups"]
    assert s["gpu"] == "H100-SXM" and s["count"] >= 8 and s["engine"] == "deepspeed" and s["cost"] > 0
