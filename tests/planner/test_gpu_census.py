"""The activation formula against the saved-tensor census taken on the GPU at the catalog's
full widths (bench/results/census-gpu-h100.jsonl and census-gpu-h200.jsonl:
`python3 bench/census.py --cuda ...`): what CUDA's kernels and autocast keep, which the CPU
census cannot see (LayerNorm in fp32, the layout sdpa hands back, sdpa's math kernel)."""

import json
from pathlib import Path

import pytest

from planner import memory, models
from planner.plan import Plan

RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results"
ROWS = [json.loads(line) for name in ("census-gpu-h100.jsonl", "census-gpu-h200.jsonl")
        for line in (RESULTS / name).read_text().splitlines() if line.strip()]


def test_the_census_covers_five_families_with_layernorm_and_a_4_bit_base_among_them():
    families = {models.resolve(r["model"]).family for r in ROWS}
    assert len(families) >= 5 and {"gpt_neox", "falcon"} <= families
    assert any(r["method"] == "qlora" for r in ROWS)


def _formula(row, batch: int) -> int:
    plan = Plan(model=row["model"], method=row["method"], seq_len=row["seq_len"], batch=batch,
                compile=False)  # the census runs eager autograd
    return memory.layer_activation_bytes_per_token(models.resolve(row["model"]), plan)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: f"{r['model']}-{r['method']}")
def test_eager_formula_matches_the_gpu_census_at_one_and_two_sequences(row):
    """The census counts one layer at `batch` sequences and the bytes each further sequence
    adds: per token at batch 1 and on average at batch 2 (sdpa's math kernel copies k and v
    to every head only beyond batch 1)."""
    tokens = row["batch"] * row["seq_len"]
    at_one = row["per_layer_at_batch"] / tokens
    at_two = (row["per_layer_at_batch"] + row["per_token_per_layer"] * tokens) / (2 * tokens)
    assert _formula(row, row["batch"]) == pytest.approx(at_one, rel=0.015)
    assert _formula(row, 2 * row["batch"]) == pytest.approx(at_two, rel=0.015)
