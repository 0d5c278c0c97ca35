"""Flags shared by estimate, recommend and render, and their resolution to plan objects."""

from __future__ import annotations

import argparse

from planner import hardware, models
from planner.errors import FtplanError, HardwareError
from planner.plan import DPO_LOSSES, LOSSES, METHODS, OFFLOADS, OPTIMIZERS, PRECISIONS, REPORT_TO, TASKS, Plan


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    return value


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="catalog name, local dir or config.json, Hub id, or a size like 7B")
    p.add_argument("--task", choices=TASKS, default="sft")


def add_hardware_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", help="catalog GPU (ftplan gpus); default: the GPU NVML detects")
    p.add_argument("--gpus", type=_positive_int, help="GPUs per node (default: detected count, or 1)")
    p.add_argument("--nodes", type=_positive_int, default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_plan_args(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = Plan(model="")
    g = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument("--method", choices=METHODS, default=g(d.method))
    p.add_argument("--batch", type=_positive_int, default=g(d.batch), help="micro-batch per GPU (DPO: pairs)")
    p.add_argument("--seq-len", type=_positive_int, default=g(d.seq_len))
    p.add_argument("--grad-accum", type=_positive_int, default=g(d.grad_accum))
    p.add_argument("--rank", type=_positive_int, default=g(d.rank))
    p.add_argument("--alpha", type=_positive_int, default=None, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--dropout", type=float, default=g(d.dropout))
    p.add_argument("--targets", default=g(d.targets), help="attention, all-linear, or a comma list of module names")
    p.add_argument("--virtual-tokens", type=_positive_int, default=g(d.virtual_tokens))
    p.add_argument("--precision", choices=PRECISIONS, default=g(d.precision))
    p.add_argument("--optim", choices=OPTIMIZERS, default=g(d.optim))
    ck = p.add_mutually_exclusive_group()
    ck.add_argument("--grad-ckpt", dest="grad_ckpt", action="store_true", default=g(d.grad_ckpt))
    ck.add_argument("--no-grad-ckpt", dest="grad_ckpt", action="store_false")
    p.add_argument("--loss", choices=LOSSES, default=g(d.loss))
    co = p.add_mutually_exclusive_group()
    co.add_argument("--compile", dest="compile", action="store_true", default=g(d.compile),
                    help="torch.compile each decoder layer on CUDA (default on)")
    co.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=g(d.zero))
    p.add_argument("--offload", choices=OFFLOADS, default=g(d.offload))
    p.add_argument("--engine", choices=("none", "deepspeed", "fsdp"), default=g(d.engine))
    p.add_argument("--shard", choices=("full", "hybrid"), default=g(d.shard),
                   help="FSDP: shard over all GPUs, or within a node and replicate across nodes")
    p.add_argument("--dpo-beta", type=float, default=g(d.dpo_beta))
    p.add_argument("--dpo-loss", choices=DPO_LOSSES, default=g(d.dpo_loss_type))


def add_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-tokens", type=_positive_int, help="training tokens per epoch, for total time and cost")
    p.add_argument("--epochs", type=float, help="epochs for total time and cost (default: the plan's)")
    p.add_argument("--price", type=float, help="USD per GPU-hour (default: the GPU catalog's on-demand price)")


def check_speed_args(args) -> None:
    if getattr(args, "price", None) is not None and args.price < 0:
        raise FtplanError(f"--price must be zero or more USD per GPU-hour (got {args.price})")
    if getattr(args, "epochs", None) is not None and args.epochs <= 0:
        raise FtplanError(f"--epochs must be positive (got {args.epochs})")
    if getattr(args, "dataset_tokens", None) is not None and args.dataset_tokens < 1:
        raise FtplanError(f"--dataset-tokens must be at least 1 (got {args.dataset_tokens})")


def add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset file (JSON or JSONL)")
    p.add_argument("--data-format", default="auto", choices=("auto", "alpaca", "sharegpt", "messages", "completion", "preference"))
    p.add_argument("--lr", type=float, dest="learning_rate")
    p.add_argument("--epochs", type=float)
    p.add_argument("--max-steps", type=int, default=0)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--eval-fraction", type=float, default=0.05)
    p.add_argument("--save-steps", type=_positive_int, default=100)
    p.add_argument("--logging-steps", type=_positive_int, default=1)
    p.add_argument("--report-to", choices=REPORT_TO, default="none")
    p.add_argument("--run-name", default="ftplan-run")
    p.add_argument("--no-packing", dest="packing", action="store_false", default=True)


def resolve_gpu(args) -> tuple[hardware.GpuSpec | None, int, str]:
    """(gpu, gpus per node, note). --gpu wins; else NVML; else no GPU (fits unknown)."""
    given = getattr(args, "gpus", None)
    if given is not None and given < 1:
        raise HardwareError(f"--gpus must be at least 1 (got {given}); plan for CPU-only hosts with --gpu NAME --gpus 1")
    if args.gpu:
        gpu = hardware.resolve(args.gpu)
        return gpu, given or 1, ""
    det = hardware.detect()
    if det.gpus:
        return hardware.spec_for_detected(det.gpus[0]), given or len(det.gpus), f"detected {len(det.gpus)} x {det.gpus[0].name}"
    return None, given or 1, det.problem


def plan_from_args(args, model: models.ModelSpec, **overrides) -> Plan:
    fields = dict(
        model=args.model, method=args.method, task=args.task, batch=args.batch, seq_len=args.seq_len,
        grad_accum=args.grad_accum, rank=args.rank, dropout=args.dropout, targets=args.targets,
        virtual_tokens=args.virtual_tokens, precision=args.precision, optim=args.optim, grad_ckpt=args.grad_ckpt,
        loss=args.loss, compile=args.compile, zero=args.zero, offload=args.offload, engine=args.engine, shard=args.shard,
        nodes=getattr(args, "nodes", None),
        dpo_beta=args.dpo_beta, dpo_loss_type=args.dpo_loss,
    )
    fields = {k: v for k, v in fields.items() if v is not None}
    if getattr(args, "alpha", None) is not None:
        fields["alpha"] = args.alpha
    elif "rank" in fields:
        fields["alpha"] = 2 * fields["rank"]
    fields.update(overrides)
    return Plan(**fields)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise FtplanError(message)
