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
    """nan_loss, loss_spike (a step's loss 3x the running minimum after warmup), or None."""
    losses = [m["loss"] for m in metrics if m.get("event") == "step" and "loss" in m]
    if any(not math.isfinite(x) for x in losses):
        return "nan_loss"
    if len(losses) >= 5:
        low = min(losses[: len(losses) // 2] or losses)
        if losses[-1] > 3 * max(low, 1e-6) and losses[-1] > losses[0]:
            return "loss_spike"
    return None


def oom_advice(plan_path: Path) -> list[str]:
    """Concrete changes that fit, computed by the estimator for this run's plan and GPU."""
    from planner import hardware, memory, models
    from planner.plan import Plan

    try:
        plan = Plan.load(plan_path)
        model = models.resolve(plan.model) if not Path(plan.model).exists() else models.resolve(plan.model)
    except Exception:
        return ["lower --batch (raise --grad-accum to keep the effective batch), turn on --grad-ckpt, or use QLoRA"]
    gpu = hardware.find(plan.gpu) if plan.gpu else None
    if gpu is None:
        det = hardware.detect()
        gpu = hardware.spec_for_detected(det.gpus[0]) if det.gpus else None
    if gpu is None:
        return ["lower --batch (raise --grad-accum to keep the effective batch), turn on --grad-ckpt, or use QLoRA"]
    cap = gpu.memory_bytes
    options = []
    effective = plan.batch * plan.grad_accum
    for b in range(plan.batch - 1, 0, -1):
        trial = plan.with_(batch=b, grad_accum=max(1, math.ceil(effective / b)))
        if memory.total_bytes(model, trial) <= cap:
            options.append(f"--batch {b} --grad-accum {trial.grad_accum} (same effective batch): "
                           f"{memory.total_bytes(model, trial) / 2**30:.1f} GiB of {cap / 2**30:.1f}")
            break
    if not plan.grad_ckpt and plan.method != "prefix":
        t = plan.with_(grad_ckpt=True)
        total = memory.total_bytes(model, t)
        if total <= cap:
            options.append(f"--grad-ckpt: {total / 2**30:.1f} GiB of {cap / 2**30:.1f}")
    if plan.loss == "standard" and plan.method != "prefix":
        t = plan.with_(loss="chunked")
        total = memory.total_bytes(model, t)
        if total <= cap:
            options.append(f"--loss chunked: {total / 2**30:.1f} GiB of {cap / 2**30:.1f}")
    if plan.method in ("lora", "dora", "full"):
        t = plan.with_(method="qlora", precision="bf16", grad_ckpt=True)
        total = memory.total_bytes(model, t)
        if total <= cap:
            options.append(f"--method qlora --grad-ckpt: {total / 2**30:.1f} GiB of {cap / 2**30:.1f}")
    options.append("more GPUs: ftplan recommend --gpus N shows the ZeRO stage and count that fit")
    return options


def diagnose(run_dir: Path, exit_code: int, log_text: str, metrics: list[dict]) -> Diagnosis | None:
    rows = {r["id"]: r for r in _rows()}
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
        tail = [l for l in log_text.strip().splitlines() if l.strip()][-1:] or ["(no output)"]
        return Diagnosis("unknown", "Training script failed", f"exit code {exit_code}: {tail[0][:200]}",
                         ("read stderr.log in the run directory",), "runner")
    return None
