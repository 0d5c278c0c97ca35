"""Capacity planning: the fewest GPUs of each type, the engine that makes a plan fit, and the
cheapest catalog setup for a job."""

import json
import subprocess
import sys
from pathlib import Path

from planner import capacity, hardware, memory, models, recommend
from planner.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
L70 = models.resolve("Llama-3.1-70B")
FULL = Plan(model=L70.name, method="full")


def test_each_setup_fits_and_half_as_many_gpus_would_not():
    for s in capacity.setups(L70, FULL):
        assert s.per_gpu_bytes <= s.gpu.memory_bytes
        assert memory.total_bytes(L70, s.plan) == s.per_gpu_bytes
        if s.count > 1:
            assert recommend.fit_on(L70, FULL, s.gpu, s.count // 2) is None


def test_with_a_dataset_setups_are_cheapest_first_and_may_use_more_gpus_than_the_fewest():
    found = capacity.setups(L70, FULL, dataset_tokens=100_000_000)
    costs = [s.speed.cost for s in found]
    assert costs == sorted(costs) and all(c > 0 for c in costs)
    for s in found:
        fewest, _ = recommend.fewest_gpus(L70, FULL, s.gpu)
        assert s.count in (fewest, 2 * fewest, 4 * fewest)


def test_cards_without_bf16_are_not_offered():
    names = {s.gpu.name for s in capacity.setups(models.resolve("Llama-3.2-1B"), Plan(model="x", method="lora"))}
    assert names and not names & {g.name for g in hardware.catalog() if not g.bf16}


def test_a_plan_that_fits_one_card_needs_one():
    s = capacity.setups(models.resolve("Llama-3.1-8B"), Plan(model="x", method="qlora"), [hardware.resolve("H100-SXM")])
    assert len(s) == 1 and s[0].count == 1 and s[0].plan.launcher_engine == "none"


def test_capacity_cli_json():
    out = subprocess.run([sys.executable, "-m", "planner", "capacity", "-m", "Llama-3.1-70B", "--method", "full",
                          "--gpu", "H100-SXM", "--dataset-tokens", "50000000", "--json"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout)
    (s,) = d["setups"]
    assert s["gpu"] == "H100-SXM" and s["count"] >= 8 and s["engine"] == "deepspeed" and s["cost"] > 0
