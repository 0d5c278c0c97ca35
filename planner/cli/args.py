"""Flags shared by estimate, recommend and render, and their resolution to plan objects."""

from __future__ import annotations

import argparse
import math

from planner import hardware, models
from planner.errors import FtplanError
from planner.plan import (
    DPO_LOSSES,
    ENGINES,
    FORMATS,
    LOSSES,
    METHODS,
    OFFLOADS,
    OPTIMIZERS,
    PRECISIONS,
    REPORT_TO,
    SHARDS,
    TASKS,
    TRAINERS,
    Plan,
    default_loss,
)


def whole_number(low: int, high: int = 10**9):
    """An argparse type: a whole number in [low, high], else one line saying the range."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: use a whole number from {low:,} to {high:,}")
        return value
    return parse


def number(low: float, high: float = math.inf, low_open: bool = False):
    """An argparse type: a finite number in [low, high] (or (low, high] with low_open)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or (low_open and value == low) or value > high:
            lower = f"above {low:g}" if low_open else f"at least {low:g}"
            upper = "" if high == math.inf else f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"{text!r} is out of range: use a finite number {lower}{upper}")
        return value
    return parse


positive_int = whole_number(1)
non_negative_float = number(0.0)
positive_float = number(0.0, low_open=True)


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", required=True, help="catalog name, local dir or config.json, Hub id, or a size like 7B")
    p.add_argument("--task", choices=TASKS, default="sft")
    add_trust_arg(p)


def add_trust_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--trust-remote-code", action="store_true",
                   help="build a model whose config names its own code (auto_map): runs that code, here and in the script")


def resolve_model(args) -> models.ModelSpec:
    return models.resolve(args.model, trust_remote_code=getattr(args, "trust_remote_code", False))


def add_hardware_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--gpu", help="catalog GPU (ftplan gpus); default: the GPU NVML detects")
    p.add_argument("--gpus", type=whole_number(1, 1024), help="GPUs per node (default: detected count, or 1)")
    p.add_argument("--nodes", type=whole_number(1, 4096), default=1)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def add_plan_args(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = Plan(model="")
    g = (lambda v: v) if defaults else (lambda v: None)
    p.add_argument("--method", choices=METHODS, default=g(d.method))
    p.add_argument("--batch", type=whole_number(1, 65_536), default=g(d.batch), help="micro-batch per GPU (DPO: pairs)")
    p.add_argument("--seq-len", type=whole_number(8, 1_048_576), default=g(d.seq_len))
    p.add_argument("--grad-accum", type=positive_int, default=g(d.grad_accum))
    p.add_argument("--rank", type=whole_number(1, 4096), default=g(d.rank))
    p.add_argument("--alpha", type=positive_int, default=None, help="LoRA alpha (default 2 x rank)")
    p.add_argument("--dropout", "--lora-dropout", dest="dropout", type=number(0.0, 0.99), default=g(d.dropout),
                   help="LoRA dropout (PEFT's default is 0.05; ours 0: faster, and no mask kept per layer)")
    p.add_argument("--targets", default=g(d.targets), help="attention, all-linear, or a comma list of module names; add experts to adapt a mixture of experts' fused experts")
    p.add_argument("--virtual-tokens", type=whole_number(1, 4096), default=g(d.virtual_tokens))
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="bf16 | fp16 | mixed | fp32 (default: bf16, or fp16 on a card without bf16)")
    p.add_argument("--optim", choices=OPTIMIZERS, default=g(d.optim))
    ck = p.add_mutually_exclusive_group()
    ck.add_argument("--grad-ckpt", dest="grad_ckpt", action="store_true", default=g(d.grad_ckpt))
    ck.add_argument("--no-grad-ckpt", dest="grad_ckpt", action="store_false")
    p.add_argument("--loss", choices=LOSSES, default=None,
                   help="standard | chunked | fused (Liger) | model (the model's own loss via labels=, as a plain "
                        "transformers loop computes it); default standard, or chunked (TRL's own head) with --trainer trl")
    p.add_argument("--trainer", choices=TRAINERS, default=g(d.trainer),
                   help="the training program: ftplan's loop (default) or TRL's SFTTrainer/DPOTrainer")
    ca = p.add_mutually_exclusive_group()
    ca.add_argument("--adapter-input-cast", dest="cast_adapter_inputs", action="store_true", default=g(d.cast_adapter_inputs),
                    help="keep PEFT's cast of each adapted layer's input to fp32 (PEFT's default; our scripts turn it off)")
    ca.add_argument("--no-adapter-input-cast", dest="cast_adapter_inputs", action="store_false")
    p.add_argument("--kbit-prep", action="store_true", default=g(d.kbit_prep),
                   help="QLoRA: PEFT's prepare_model_for_kbit_training, as many scripts call it (fp32 norms, embeddings, head)")
    co = p.add_mutually_exclusive_group()
    co.add_argument("--compile", dest="compile", action="store_true", default=g(d.compile),
                    help="torch.compile each decoder layer on CUDA (default on)")
    co.add_argument("--no-compile", dest="compile", action="store_false")
    p.add_argument("--zero", type=int, choices=(0, 1, 2, 3), default=g(d.zero))
    p.add_argument("--offload", choices=OFFLOADS, default=g(d.offload))
    p.add_argument("--engine", choices=ENGINES, default=g(d.engine))
    p.add_argument("--shard", choices=SHARDS, default=g(d.shard),
                   help="FSDP: shard over all GPUs, or within a node and replicate across nodes")
    p.add_argument("--dpo-beta", type=positive_float, default=g(d.dpo_beta))
    p.add_argument("--dpo-loss", choices=DPO_LOSSES, default=g(d.dpo_loss_type))
    p.add_argument("--precompute-ref-log-probs", dest="precompute_ref", action="store_true", default=g(d.precompute_ref),
                   help="DPO under --trainer trl: compute the reference log-probs once before training; full "
                        "fine-tuning then keeps no reference copy of the model")


def add_speed_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset-tokens", type=positive_int, help="training tokens per epoch, for total time and cost")
    p.add_argument("--epochs", type=positive_float, help="epochs for total time and cost (default: the plan's)")
    p.add_argument("--price", type=non_negative_float, help="USD per GPU-hour (default: the GPU catalog's on-demand price)")


def check_speed_args(args) -> None:
    if getattr(args, "price", None) is not None and args.price < 0:
        raise FtplanError(f"--price must be zero or more USD per GPU-hour (got {args.price})")
    if getattr(args, "epochs", None) is not None and args.epochs <= 0:
        raise FtplanError(f"--epochs must be positive (got {args.epochs})")
    if getattr(args, "dataset_tokens", None) is not None and args.dataset_tokens < 1:
        raise FtplanError(f"--dataset-tokens must be at least 1 (got {args.dataset_tokens})")


def add_training_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="dataset file (JSON or JSONL)")
    p.add_argument("--data-format", default="auto", choices=FORMATS)
    p.add_argument("--lr", type=number(0.0, 1.0, low_open=True), dest="learning_rate")
    p.add_argument("--epochs", type=positive_float)
    p.add_argument("--max-steps", type=whole_number(0), default=0)
    p.add_argument("--seed", type=whole_number(0, 2**32 - 1), default=42)
    p.add_argument("--eval-fraction", type=number(0.0, 0.49), default=0.05)
    p.add_argument("--save-steps", type=positive_int, default=100)
    p.add_argument("--keep-checkpoints", type=whole_number(1, 1000), default=None,
                   help="newest checkpoints kept on disk (default 2, or 1 when the disk has room for only one)")
    p.add_argument("--logging-steps", type=positive_int, default=1)
    p.add_argument("--report-to", choices=REPORT_TO, default="none")
    p.add_argument("--run-name", default="ftplan-run")
    p.add_argument("--no-packing", dest="packing", action="store_false", default=True)
    p.add_argument("--packing-attends-across", action="store_true",
                   help="pack without isolating examples (each attends to those before it in its block): older runs only")


def resolve_gpu(args):
    """The GPU, GPUs per node and a note, from --gpu/--gpus or NVML (planner/workflow.py)."""
    from planner import workflow

    hw = workflow.find_hardware(args.gpu, getattr(args, "gpus", None))
    return hw.gpu, hw.gpus, hw.note


PLAN_FLAGS = {"method": "method", "batch": "batch", "seq_len": "seq_len", "grad_accum": "grad_accum", "rank": "rank",
              "alpha": "alpha", "dropout": "dropout", "targets": "targets", "virtual_tokens": "virtual_tokens",
              "precision": "precision", "optim": "optim", "grad_ckpt": "grad_ckpt", "loss": "loss",
              "compile": "compile", "zero": "zero", "offload": "offload", "engine": "engine", "shard": "shard",
              "dpo_beta": "dpo_beta", "dpo_loss": "dpo_loss_type", "trainer": "trainer",
              "cast_adapter_inputs": "cast_adapter_inputs", "kbit_prep": "kbit_prep", "precompute_ref": "precompute_ref"}


def given_settings(args) -> frozenset[str]:
    """The plan settings a command line set (parsed with add_plan_args(defaults=False))."""
    return frozenset(field for flag, field in PLAN_FLAGS.items() if getattr(args, flag, None) is not None)


def plan_from_args(args, model: models.ModelSpec, **overrides) -> Plan:
    fields = dict(
        model=args.model, method=args.method, task=args.task, batch=args.batch, seq_len=args.seq_len,
        grad_accum=args.grad_accum, rank=args.rank, dropout=args.dropout, targets=args.targets,
        virtual_tokens=args.virtual_tokens, precision=args.precision, optim=args.optim, grad_ckpt=args.grad_ckpt,
        loss=args.loss, compile=args.compile, zero=args.zero, offload=args.offload, engine=args.engine, shard=args.shard,
        nodes=getattr(args, "nodes", None),
        dpo_beta=args.dpo_beta, dpo_loss_type=args.dpo_loss,
        trust_remote_code=getattr(args, "trust_remote_code", None) or None,
        trainer=args.trainer, cast_adapter_inputs=args.cast_adapter_inputs, kbit_prep=args.kbit_prep,
        precompute_ref=args.precompute_ref,
    )
    fields = {k: v for k, v in fields.items() if v is not None}
    if "loss" not in fields:
        fields["loss"] = default_loss(fields.get("trainer", "ftplan"))
    card = hardware.find(overrides.get("gpu") or "")
    if "precision" not in fields and card is not None:
        fields["precision"] = card.half_precision  # the card decides where the command line does not
    if getattr(args, "alpha", None) is not None:
        fields["alpha"] = args.alpha
    elif "rank" in fields:
        fields["alpha"] = 2 * fields["rank"]
    fields.update(overrides)
    return Plan(**fields)


def require(condition: bool, message: str) -> None:
    if not condition:
        raise FtplanError(message)
