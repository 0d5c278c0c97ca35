"""Our estimate beside two public ones, on the committed H100 runs.

- accelerate `estimate-memory`: "Training using Adam" is four times the model's size in
  the chosen dtype (weights, gradients and two Adam states; accelerate commands/estimate.py),
  whatever the method, batch or sequence. QLoRA is given int4 as the dtype.
- The guides' hardware table (docs/guides.md, "Memory Savings" of one guide, 7B row: full 28 GB,
  LoRA 16 GB, QLoRA 6 GB), scaled linearly by parameter count; DoRA, IA3 and prefix read
  the LoRA column.

Implemented here only, to compare: the product never uses them.

    python3 bench/estimators.py > bench/results/estimators-h100.md
"""

from __future__ import annotations

import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import hardware, memory, models  # noqa: E402
from planner.plan import Plan  # noqa: E402

H100_BYTES = hardware.resolve("H100-SXM").memory_bytes
RESULTS = Path(__file__).resolve().parent / "results" / "memory-h100.jsonl"
SEED_7B_GB = {"full": 28.0, "lora": 16.0, "qlora": 6.0}


def accelerate_training_bytes(spec: models.ModelSpec, plan: Plan) -> int:
    dtype_bytes = 0.5 if plan.method == "qlora" else (2 if plan.precision == "bf16" else 4)
    return int(spec.total_params() * dtype_bytes * 4)


def guides_table_bytes(spec: models.ModelSpec, plan: Plan) -> int:
    column = plan.method if plan.method in SEED_7B_GB else "lora"
    return int(SEED_7B_GB[column] * 1e9 * spec.total_params() / 7e9)


def runs() -> list[dict]:
    return [json.loads(line) for line in RESULTS.read_text().splitlines() if line.strip()]


def rows() -> list[dict]:
    out = []
    for r in runs():
        plan = Plan(**r["plan"])
        spec = models.resolve(plan.model)
        out.append({"run": r, "plan": plan, "measured": r["measured_nvml_peak_bytes"], "oom": r["oom"],
                    "ftplan": memory.total_bytes(spec, plan), "accelerate": accelerate_training_bytes(spec, plan),
                    "guides_table": guides_table_bytes(spec, plan)})
    return out


def main() -> None:
    table = rows()
    print("| model | method | task | batch x seq | ckpt | loss | optim | measured GB | ftplan | accelerate | guides' table |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    errors = {k: [] for k in ("ftplan", "accelerate", "guides_table")}
    for row in table:
        p = row["plan"]
        measured = "OOM" if row["oom"] else f"{row['measured'] / 1e9:.2f}"
        cells = []
        for k in errors:
            if row["oom"]:
                cells.append(f"{row[k] / 1e9:.1f} ({'fits' if row[k] <= H100_BYTES else 'no fit'})")
            else:
                err = (row[k] - row["measured"]) / row["measured"]
                errors[k].append(abs(err))
                cells.append(f"{row[k] / 1e9:.1f} ({err:+.0%})")
        print(f"| {p.model} | {p.method} | {p.task} | {p.batch} x {p.seq_len} | {'yes' if p.grad_ckpt else 'no'} | "
              f"{p.loss} | {p.optim} | {measured} | " + " | ".join(cells) + " |")
    print()
    for k, errs in errors.items():
        print(f"- {k}: median |error| {statistics.median(errs):.1%}, max {max(errs):.1%} over {len(errs)} runs that fit")


if __name__ == "__main__":
    main()
