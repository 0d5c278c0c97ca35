"""Fit the step-time model's efficiency coefficients (planner/speed.py) to every committed
H100 run, by non-negative least squares on relative error, and print them as
knowledge/speed.toml's [model] table.

    python3 bench/fit_speed.py            (CPU; reads bench/results/*.jsonl)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import hardware, models, speed  # noqa: E402
from planner.plan import Plan  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
FILES = ("memory-h100.jsonl", "memory-h100-compiled.jsonl", "speed-h100.jsonl")


def measured_runs():
    for name in FILES:
        for line in (RESULTS / name).read_text().splitlines():
            r = json.loads(line)
            if r.get("step_s") and not r.get("oom"):
                yield {**r, "_file": name}


def main() -> None:
    import numpy as np
    from scipy.optimize import nnls

    gpu = hardware.resolve("H100-SXM")
    rows, target, labels = [], [], []
    for r in measured_runs():
        plan = Plan(**r["plan"])
        f = speed.raw_features(models.resolve(plan.model), plan, gpu)
        rows.append([f[x.name] / r["step_s"] for x in speed.FEATURES])
        target.append(1.0)
        labels.append((r["_file"], r.get("label") or f"{plan.model} {plan.method} {plan.task} b{plan.batch} s{plan.seq_len}"))
    fitted = [i for i, x in enumerate(speed.FEATURES) if x.name not in speed.SET_BY_HAND]
    coef = np.zeros(len(speed.FEATURES))
    coef[fitted], _ = nnls(np.array(rows)[:, fitted], np.array(target))
    print("[model]")
    for x, c in zip(speed.FEATURES, coef):
        print(f"{x.name} = {c:.4g}")
    pred = np.array(rows) @ coef
    err = pred - 1
    for (name, label), e in sorted(zip(labels, err), key=lambda t: -abs(t[1])):
        print(f"# {e:+.3f}  {name}: {label}")
    for name in FILES:
        e = np.array([x for (f, _), x in zip(labels, err) if f == name])
        print(f"# {name}: median |error| {np.median(abs(e)):.3f}, max {abs(e).max():.3f}, {len(e)} runs")


if __name__ == "__main__":
    main()
