"""ftplan demo: the whole flow on an embedded default, with no GPU and no network.

Builds a tiny Llama-shaped model and tokenizer locally, takes the shipped instruction
dataset, plans (estimate + rules), renders, and really runs a LoRA SFT through the runner."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from planner import data, memory, models, render
from planner.cli import args as A
from planner.cli import output
from planner.plan import Plan

# The demo's plan: small enough for a 2-core CPU in well under two minutes, large enough
# that the loss visibly falls. fp32 because bf16 matmuls are slow on CPUs.
DEMO = dict(method="lora", task="sft", batch=8, seq_len=128, rank=8, alpha=16, dropout=0.0, precision="fp32",
            learning_rate=3e-3, warmup_ratio=0.05, max_steps=40, save_steps=20, eval_steps=20, logging_steps=2,
            eval_fraction=0.05, run_name="ftplan-demo")


def add_arguments(p) -> None:
    p.add_argument("--dir", default="ftplan-demo", help="where to put the model and the run (a new numbered one if taken)")
    p.add_argument("--steps", type=A.whole_number(1, 100_000), default=DEMO["max_steps"])
    p.add_argument("--json", action="store_true", help="print runner events as JSON lines")


def _free_dir(base: Path) -> Path:
    if not base.exists() or not any(base.iterdir()):
        return base
    n = 2
    while Path(f"{base}-{n}").exists():
        n += 1
    return Path(f"{base}-{n}")


def run(args) -> int:
    from planner.cli.cmd_run import follow
    from runner import process, tiny

    c = output.console()
    root = _free_dir(Path(args.dir)).resolve()
    t0 = time.perf_counter()
    c.print(f"[bold]1. model[/]  building a tiny Llama-shaped model and tokenizer in {output.esc(root / 'model')} (random weights, no download)")
    model_dir = tiny.build_tiny(root / "model")
    model = models.resolve(str(model_dir))
    dataset = tiny.DATA_DIR / "instructions.jsonl"
    stats = data.inspect(str(dataset), task="sft", model_path=str(model_dir))
    c.print(f"[bold]2. data[/]   {dataset.name}: {stats.rows} rows, {stats.format}; tokens p50 {stats.percentiles[50]}, "
            f"p99 {stats.percentiles[99]} ({stats.tokenizer})")
    plan = Plan(model=str(model_dir), data=str(dataset), data_format=stats.format,
                **{**DEMO, "max_steps": max(1, args.steps), "save_steps": max(1, args.steps // 2)})
    est = memory.estimate(model, plan)
    c.print(f"[bold]3. plan[/]   LoRA r{plan.rank} on {model.total_params():,} params, {est.trainable_params:,} trainable; "
            f"batch {plan.batch} x {plan.seq_len} tokens; {plan.max_steps} steps; estimate on a GPU "
            f"{est.total_bytes / 2**30:.2f} GiB (mostly the CUDA context at this size)")
    run_dir = root / "run"
    result = render.render(plan, model, run_dir, str(model_dir), str(dataset), stats.format,
                           command=f"ftplan demo --dir {shlex.quote(str(root))}", estimate=est)
    c.print(f"[bold]4. render[/] {', '.join(f.name for f in result.files)} in {output.esc(run_dir)}")
    c.print("[bold]5. run[/]    training on the CPU through the runner")
    code = follow(process.run(run_dir), as_json=args.json)
    losses = [m["loss"] for m in _metrics(run_dir) if m.get("event") == "step"]
    if code != 0:
        return code
    c.print(f"\nloss {losses[0]:.3f} -> {losses[-1]:.3f} in {len(losses) * plan.logging_steps} steps; "
            f"{time.perf_counter() - t0:.0f} s in all")
    c.print(f"everything is in {output.esc(root)}:")
    c.print(f"  model    {output.esc(model_dir)}")
    c.print(f"  script   {output.esc(run_dir / 'train.py')}  (launch: {output.esc(run_dir / 'launch.sh')})")
    c.print(f"  metrics  {output.esc(run_dir / 'metrics.jsonl')}   logs: stdout.log, stderr.log, status.json")
    c.print(f"  adapter  {output.esc(run_dir / plan.output_dir / 'final')}")
    c.print(output.esc(result.next_steps))
    return 0


def _metrics(run_dir: Path) -> list[dict]:
    import json

    path = run_dir / "metrics.jsonl"
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()] if path.exists() else []
