"""ftplan recommend: a complete plan with the rule behind each setting; with -o, its run
directory (the same files as render)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from planner import recommend, workflow
from planner.cli import args as A
from planner.cli import output
from planner.errors import FtplanError, HardwareError
from planner.plan import METHODS, TRAINERS, Plan, default_loss


def add_arguments(p) -> None:
    A.add_model_args(p)
    p.add_argument("--method", choices=METHODS, help="force a method (default: the best that fits)")
    p.add_argument("--examples", type=A.whole_number(1), help="rows in the training set (or give --data)")
    p.add_argument("--task-kind", default="general", choices=recommend.TASK_KINDS)
    p.add_argument("--trainer", choices=TRAINERS, default="ftplan",
                   help="the training program: ftplan's loop (default) or TRL's SFTTrainer/DPOTrainer")
    p.add_argument("--seq-len", type=A.whole_number(8), help="sequence length (default: from --data, else 2048)")
    p.add_argument("--data", help="dataset file: its rows and token lengths feed the rules")
    A.add_hardware_args(p)
    p.add_argument("--dataset-tokens", type=A.whole_number(1),
                   help="training tokens per epoch (default: measured from --data, or examples x seq-len)")
    p.add_argument("--price", type=A.non_negative_float, help="USD per GPU-hour (default: the GPU catalog's on-demand price)")
    p.add_argument("--explain", action="store_true", help="every rule's reason and source, and the memory terms")
    p.add_argument("-o", "--output", help="also render the recommended plan into this run directory (needs --data)")
    p.add_argument("--model-path", help="with -o: local model directory the script loads")
    p.add_argument("--force", action="store_true", help="with -o: overwrite the scripts in an existing directory")


def run(args) -> int:
    model = A.resolve_model(args)
    gpu, gpus, note = A.resolve_gpu(args)
    if gpu is None:
        raise HardwareError(f"{note.split(';')[0]}; recommend needs hardware: add --gpu NAME --gpus N")
    if args.output and not args.data:
        raise FtplanError("recommend -o renders a run directory and needs the dataset: add --data FILE")
    given = frozenset(k for k in ("method", "seq_len") if getattr(args, k) is not None)
    base = Plan(model=args.model, task=args.task, method=args.method or "lora", gpus=gpus, nodes=args.nodes,
                gpu=gpu.name, seq_len=args.seq_len or 2048, data=args.data or "", trainer=args.trainer,
                loss=default_loss(args.trainer))
    model_path = args.model_path or workflow.default_model_path(model, args.model)
    found = workflow.recommend_plan(model, base, gpu, data_path=args.data, examples=args.examples,
                                    task_kind=args.task_kind, given=given, tokens=args.dataset_tokens,
                                    price_per_hour=args.price,
                                    model_path=model_path if Path(model_path).is_dir() else None)
    result = None
    if args.output:
        command = "ftplan " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        result = workflow.render_run(found.report, Path(args.output), model_path, args.data, found.data.format, command,
                                     recommendations=found.advice.recommendations, force=args.force)
        for warning in result.warnings:
            output.note(f"warning: {warning}")
    if args.json:
        out = found.as_dict()
        if result is not None:
            out["run_dir"] = str(result.run_dir)
            out["files"] = [str(f) for f in result.files]
        output.print_json(out)
        return 0
    output.note(note)
    output.print_recommendations(found.advice, found.dataset, explain=args.explain)
    if result is not None:
        c = output.console()
        c.print(f"wrote {output.esc(result.run_dir)}: {', '.join(f.name for f in result.files)}")
        c.print(f"run it:   ftplan run {output.esc(shlex.quote(str(result.run_dir)))}")
    return 0
