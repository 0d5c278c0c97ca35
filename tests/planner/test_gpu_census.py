"""The activation formula against the saved-tensor census taken on the H100 at the catalog's
full widths (bench/results/census-gpu-h100.jsonl: `python3 bench/census.py --cuda ...`):
what CUDA's kernels and autocast keep, which the CPU census cannot see (LayerNorm in fp32,
the layout sdpa hands back)."""

import json
from pathlib import Path

import pytest

from planner import memory, models
from planner.plan import Plan

CENSUS = Path(__file__).resolve().parents[2] / "bench" / "results" / "census-gpu-h100.jsonl"
ROWS = [json.loads(line) for line in CENSUS.read_text().splitlines() if line.strip()]


def test_the_census_covers_four_families_with_layernorm_among_them():
    families = {models.resolve(r["model"]).family for r in ROWS}
    assert len(families) >= 4 and "gpt_neox" in families


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['method']}")
def test_eager_formula_matches_the_gpu_census(row):
    plan = Plan(model=row["model"], method=row["method"], seq_len=row["seq_len"], batch=row["batch"],
                compile=False)  # the census runs eager autograd
    formula = memory.layer_activation_bytes_per_token(models.resolve(row["model"]), plan)
    assert formula == pytest.approx(row["per_token_per_layer"], rel=0.01)
