"""Disk a run needs: each checkpoint (the trained weights, the optimizer states, RNG and data
position), the K checkpoints the script keeps, and the final model. The script checks free
space against these figures before it starts and before each save (templates/train.py.j2)."""

from __future__ import annotations

from pathlib import Path

from planner import memory, script
from planner.models import ModelSpec
from planner.plan import Plan

# RNG states, the step and the scaler: a few kilobytes; counted so a figure is never zero
SMALL_FILES_BYTES = 1 << 20


def weights_bytes(model: ModelSpec, plan: Plan) -> int:
    """The whole model as saved: fp32 where the GPU keeps fp32 weights, else 16-bit."""
    return model.total_params() * (4 if plan.stores_fp32_weights else 2)


def checkpoint_bytes(model: ModelSpec, plan: Plan) -> int:
    """One checkpoint. On one GPU the script saves the trained parameters (an adapter, or every
    weight for full fine-tuning) and the optimizer's state dict; with several, accelerate's
    save_state writes the model's whole state dict (frozen base included) and every optimizer
    shard."""
    n = script.trainable_params(model, plan)
    trained = n * script.trainable_dtype_bytes(plan)
    if plan.distributed:
        trained = weights_bytes(model, plan) + (trained if plan.is_peft else 0)
    # the optimizer's states as saved: every shard, so unsharded
    return trained + int(n * memory.optimizer_bytes_per_param(plan)) + SMALL_FILES_BYTES


def final_model_bytes(model: ModelSpec, plan: Plan) -> int:
    """output/final: PEFT's adapter (fp32, as trained), or the full model's weights."""
    if plan.is_peft:
        return script.trainable_params(model, plan) * script.trainable_dtype_bytes(plan) + SMALL_FILES_BYTES
    return weights_bytes(model, plan) + SMALL_FILES_BYTES


def disk_bytes(model: ModelSpec, plan: Plan) -> int:
    """The run's peak on disk: the checkpoints it keeps, one more being written before the
    oldest is deleted, and the final model."""
    return (plan.keep_checkpoints + 1) * checkpoint_bytes(model, plan) + final_model_bytes(model, plan)


def free_bytes(path: Path) -> int:
    """Free space of the filesystem that holds `path` (or would: its nearest existing parent)."""
    import shutil

    path = Path(path).resolve()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def fit_to_disk(model: ModelSpec, plan: Plan, free: int) -> tuple[Plan, str]:
    """The plan with as many kept checkpoints as the disk holds (at most the plan's own), and a
    warning with the figures when not even one fits beside the final model here (the run may
    be copied to a larger disk: the script checks again where it runs, before it writes)."""
    keep = plan.keep_checkpoints
    while keep > 1 and disk_bytes(model, plan.with_(keep_checkpoints=keep)) > free:
        keep -= 1
    fitted = plan.with_(keep_checkpoints=keep)
    need = disk_bytes(model, fitted)
    if need <= free:
        return fitted, ""
    return fitted, (f"the run needs {need / 2**30:.1f} GiB of disk (checkpoints of {checkpoint_bytes(model, plan) / 2**30:.1f} GiB "
                    f"and a final model of {final_model_bytes(model, plan) / 2**30:.1f} GiB) and this filesystem has "
                    f"{free / 2**30:.1f} GiB free: train.py stops before writing what does not fit; free space or run it "
                    f"on a larger filesystem")
