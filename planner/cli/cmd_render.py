"""ftplan render: write a run directory (train.py, launch.sh, merge.py, plan.toml)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

from planner import data, models, recommend, render, workflow
from planner.cli import args as A
from planner.cli import output
from planner.errors import FtplanError
from planner.plan import TASKS, Plan


def add_arguments(p) -> None:
    p.add_argument("--model", "-m", help="as for estimate (not needed with --plan)")
    A.add_trust_arg(p)
    p.add_argument("--task", choices=TASKS, default="sft")
    p.add_argument("--plan", help="render from a plan.toml (e.g. an earlier run directory's)")
    p.add_argument("--model-path", help="local model directory the script loads (default: the --model path or Hub id)")
    p.add_argument("-o", "--output", required=True, help="run directory to write")
    p.add_argument("--force", action="store_true", help="overwrite the scripts in an existing directory")
    p.add_argument("--allow-oom", action="store_true", help="render a plan that does not fit its GPU by the estimate")
    A.add_plan_args(p)
    A.add_training_args(p)
    A.add_hardware_args(p)



def run(args) -> int:
    if args.plan:
        plan = Plan.load(Path(args.plan))
        extra = _render_section(Path(args.plan))
        model_path = args.model_path or extra.get("model_path") or plan.model
        data_path = args.data or extra.get("data_path") or plan.data
    else:
        if not args.model:
            raise FtplanError("render needs --model (or --plan plan.toml)")
        model_early = A.resolve_model(args)
        plan = A.plan_from_args(args, model_early)
        plan = plan.with_(**{k: getattr(args, k) for k in ("learning_rate", "epochs") if getattr(args, k) is not None},
                          max_steps=args.max_steps, seed=args.seed, eval_fraction=args.eval_fraction,
                          save_steps=args.save_steps, logging_steps=args.logging_steps, report_to=args.report_to,
                          run_name=args.run_name, packing=args.packing,
                          packing_attends_across=args.packing_attends_across, data=args.data or "")
        if args.keep_checkpoints:
            plan = plan.with_(keep_checkpoints=args.keep_checkpoints)
        model_path = args.model_path or workflow.default_model_path(model_early, args.model)
        data_path = args.data
    if not data_path:
        raise FtplanError("render needs a dataset: --data FILE (JSON or JSONL)")
    model = models.resolve(plan.model, trust_remote_code=plan.trust_remote_code)
    stats = data.inspect(data_path, task=plan.task, data_format=plan.data_format if plan.data_format != "auto" else args.data_format,
                         model_path=model_path if Path(model_path).is_dir() else None)
    plan = plan.with_(data=str(Path(data_path).resolve()), data_format=stats.format)
    if args.plan and not args.gpu:
        from planner import hardware

        gpu, note = (hardware.find(plan.gpu) if plan.gpu else None), ""
    else:
        gpu, gpus, note = A.resolve_gpu(args)
        if not args.plan:
            plan = plan.with_(gpus=gpus)
    if gpu is not None:
        plan = plan.with_(gpu=gpu.name)
    plan = plan.with_(data=str(Path(data_path).resolve()))
    dataset = workflow.dataset_tokens(plan.seq_len, plan.packing, stats)
    report = workflow.estimate(model, plan, gpu, dataset)
    command = "ftplan " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = workflow.render_run(report, Path(args.output), model_path, data_path, stats.format, command,
                                 force=args.force, allow_oom=args.allow_oom)
    for warning in result.warnings:
        output.note(f"warning: {warning}")
    for problem in render.check_versions():
        output.note(f"warning: {problem}; the script may need changes")
    est = report.estimate
    summary = recommend.one_line(est)
    if args.json:
        output.print_json({"run_dir": str(result.run_dir), "files": [str(f) for f in result.files], "summary": summary,
                           "fits": est.fits, "data": stats.as_dict(), "estimate_total_bytes": est.total_bytes,
                           "dataset": dataset.as_dict(), "next_steps": result.next_steps})
        return 0
    output.note(note)
    c = output.console()
    esc = output.esc
    c.print(f"[bold]{esc(summary)}[/]")
    if est.gpu is not None:
        c.print(output.verdict_line(est) + (" (rendered with --allow-oom)" if not est.fits else ""))
    c.print(f"wrote {esc(result.run_dir)}: {', '.join(esc(f.name) for f in result.files)}")
    c.print(f"data: {stats.rows:,} rows, {stats.tokens:,} tokens, {stats.format}; tokens p50 {stats.percentiles[50]}, "
            f"p99 {stats.percentiles[99]} ({esc(stats.tokenizer)})")
    c.print(f"run it:   ftplan run {esc(shlex.quote(str(result.run_dir)))}    "
            f"(or: bash {esc(shlex.quote(str(result.run_dir / 'launch.sh')))})")
    c.print(esc(result.next_steps))
    return 0


def _render_section(plan_path: Path) -> dict:
    """plan.toml's [render] table (model and data paths): strings only, anything else ignored."""
    import tomllib

    with open(plan_path, "rb") as f:
        section = tomllib.load(f).get("render", {})
    return {k: v for k, v in section.items() if isinstance(v, str)} if isinstance(section, dict) else {}
