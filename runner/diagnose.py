"""Failure diagnosis: match a finished run's log and metrics against knowledge/failures.toml;
for out-of-memory, compute the changes that fit with the estimator."""

from __future__ import annotations

import math
import re
from pathlib import Path

from planner import knowledge
from runner.events import Diagnosis


def _rows() -> list[dict]:
    return knowledge.rows("failures", "failure")


def _make(row: dict, advice: list[str]) -> Diagnosis:
    return Diagnosis(row["id"], row["name"], row["cause"], tuple(advice), row["source"])


def metric_signal(metrics: list[dict]) -> str | None:
    """nan_loss, loss_spike (the last loss over 3x the lowest before it and above the first), or None."""
    losses = [m["loss"] for m in metrics if m.get("event") == "step" and "loss" in m]
    if any(not math.isfinite(x) for x in losses):
        return "nan_loss"
    if len(losses) >= 5:
        low = min(losses[:-1])
        if losses[-1] > 3 * max(low, 1e-6) and losses[-1] > losses[0]:
            return "loss_spike"
    return None


GENERIC_OOM = "lower --batch (raise --grad-accum to keep the effective batch), turn on --grad-ckpt, or use QLoRA"


def oom_advice(plan_path: Path) -> list[str]:
    """Concrete changes that fit, computed by the estimator for this run's plan and GPU."""
    from planner import hardware, models, search
    from planner.errors import FtplanError
    from planner.plan import Plan

    try:
        plan = Plan.load(plan_path)
        model = models.resolve(plan.model, trust_remote_code=plan.trust_remote_code)
    except FtplanError:
        return [GENERIC_OOM]
    gpu = hardware.find(plan.gpu) if plan.gpu else None
    if gpu is None:
        det = hardware.detect()
        gpu = hardware.spec_for_detected(det.gpus[0], len(det.gpus)) if det.gpus else None
    if gpu is None:
        return [GENERIC_OOM]
    options = [f.describe() for f in search.fixes(model, plan, gpu)]
    return options + ["more GPUs: ftplan recommend --gpus N shows the ZeRO stage and count that fit"]


def diagnose(run_dir: Path, exit_code: int, log_text: str, metrics: list[dict]) -> Diagnosis | None:
    for row in _rows():
        for pattern in row.get("match", ()):
            m = re.search(pattern, log_text)
            if not m:
                continue
            if row["id"] == "cuda-oom":
                return _make(row, oom_advice(Path(run_dir) / "plan.toml"))
            if row["id"] == "missing-package":
                package = (m.group(1) if m.groups() else "").split(".")[0]
                pip_name = {"bitsandbytes": "bitsandbytes", "peft": "peft", "liger_kernel": "liger-kernel",
                            "transformers": "transformers", "wandb": "wandb", "tensorboard": "tensorboard"}.get(package, package)
                return _make(row, [f"pip install {pip_name}" if pip_name else row["advice"]])
            return _make(row, [row["advice"]])
    sig = metric_signal(metrics)
    if sig:
        row = next(r for r in _rows() if r.get("signal") == sig)
        return _make(row, [row["advice"]])
    if exit_code not in (0, 130):
        lines = [l for l in log_text.strip().splitlines() if l.strip()]
        # under torchrun the last lines are its own summary: the worker's exception is the last "...Error:" line
        errors = [l for l in lines if re.search(r"\w+(Error|Exception):", l) and "ChildFailedError" not in l]
        tail = errors[-1:] or lines[-1:] or ["(no output)"]
        return Diagnosis("unknown", "Training script failed", f"exit code {exit_code}: {tail[0][:200]}",
                         ("read stderr.log in the run directory",), "runner")
    return None
