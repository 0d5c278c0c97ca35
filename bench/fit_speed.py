"""Fit the step-time model's efficiency coefficients (planner/speed.py) to every committed
H100 run and print them as knowledge/speed.toml's [model] table.

    python3 bench/fit_speed.py            (CPU; reads bench/results/*.jsonl)

The fit is a linear program: the largest relative error over the runs timed over ten steps or
more (the speed benchmark, the re-timed runs) as small as it goes, plus a small weight on the
mean error of every run so that coefficients the worst runs do not pin stay where the bulk of
the runs put them. Runs timed over only three steps (the memory matrices: repeating two of
them over ten steps moved their step time by 20%, retime-h100.jsonl rows 1 and 8) only have
to stay inside a looser bound each; every one of them has a ten-step twin in
retime-h100.jsonl, which is held to the minimax."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from planner import hardware, models, speed  # noqa: E402
from planner.plan import Plan  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
# file -> None: timed over 10+ steps, held to the minimax; a number: 3 timed steps, a bound
FILES = {
    "speed-h100.jsonl": None, "retime-h100.jsonl": None, "mistral-h100.jsonl": None,
    "packing-h100.jsonl": None, "engines-dpo-h100.jsonl": None,
    "memory-h100-compiled.jsonl": 0.25, "memory-h100.jsonl": 0.35,
}
MEAN_WEIGHT = 4.0


def timed(r: dict) -> bool:
    """Runs whose step time the model describes: finished, full-length rows (padded batches of
    varied length are shorter than seq_len; packed ones are full), and a bench model built like the catalog's
    (retime row 28 had transformers' default Mistral window; mistral-h100.jsonl has it right)."""
    return bool(r.get("step_s")) and not r.get("oom") and (r.get("lengths", "full") == "full" or r["plan"]["packing"]) and \
        r.get("label") != "retime:row28"


def measured_runs():
    for name in FILES:
        for line in (RESULTS / name).read_text().splitlines():
            r = json.loads(line)
            if timed(r):
                yield {**r, "_file": name}


def fit(rows, bounds):
    """Coefficients minimising max |error| over the rows without a bound + MEAN_WEIGHT x the
    mean |error| of all rows, each bounded row within its bound (scipy's HiGHS)."""
    import numpy as np
    from scipy.optimize import linprog

    X = np.array(rows)
    n_rows, n = X.shape
    # variables: coefficients (n), the max error t, each row's |error| e_i
    c = np.concatenate([np.zeros(n), [1.0], np.full(n_rows, MEAN_WEIGHT / n_rows)])
    A, b = [], []
    for i, row in enumerate(X):
        e = np.zeros(n_rows)
        e[i] = 1
        A += [np.concatenate([row, [0], -e]), np.concatenate([-row, [0], -e])]
        b += [1.0, -1.0]
        if bounds[i] is None:
            A.append(np.concatenate([np.zeros(n), [-1], e]))
            b.append(0.0)
        else:
            A.append(np.concatenate([np.zeros(n), [0], e]))
            b.append(bounds[i])
    res = linprog(c, A_ub=np.array(A), b_ub=np.array(b), bounds=[(0, None)] * len(c), method="highs")
    if res.status != 0:
        raise SystemExit(f"no fit within the bounds: {res.message}")
    return res.x[:n]


def main() -> None:
    import numpy as np

    gpu = hardware.resolve("H100-SXM")
    fitted = [x for x in speed.FEATURES if x.name not in speed.SET_BY_HAND]
    rows, bounds, labels = [], [], []
    for r in measured_runs():
        plan = Plan(**r["plan"])
        f = speed.raw_features(models.resolve(plan.model), plan, gpu)
        rows.append([f[x.name] / r["step_s"] for x in fitted])
        bounds.append(FILES[r["_file"]])
        labels.append((r["_file"], r.get("label") or f"{plan.model} {plan.method} {plan.task} b{plan.batch} s{plan.seq_len}"))
    coef = fit(rows, bounds)
    print("[model]")
    for x, c in zip(fitted, coef):
        print(f"{x.name} = {c:.4g}")
    err = np.array(rows) @ coef - 1
    for (name, label), e in sorted(zip(labels, err), key=lambda t: -abs(t[1])):
        print(f"# {e:+.3f}  {name}: {label}")
    for name in FILES:
        e = np.array([x for (f, _), x in zip(labels, err) if f == name])
        if len(e):
            print(f"# {name}: median |error| {np.median(abs(e)):.3f}, max {abs(e).max():.3f}, {len(e)} runs")


if __name__ == "__main__":
    main()
