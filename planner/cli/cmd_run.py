"""ftplan run: execute a run directory with live progress; diagnosis on failure."""

from __future__ import annotations

from pathlib import Path

from planner.cli import output


def add_arguments(p) -> None:
    p.add_argument("run_dir", help="a directory written by ftplan render")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint with the same plan")
    p.add_argument("--force", action="store_true", help="start over, deleting earlier outputs of this directory")
    p.add_argument("--json", action="store_true", help="print events as JSON lines instead of a progress bar")


def run(args) -> int:
    from planner import workflow

    return follow(workflow.start_run(Path(args.run_dir), resume=args.resume, force=args.force), as_json=args.json)


def follow(events, as_json: bool = False) -> int:
    """Render runner events with Rich (or as JSON lines); return the script's exit code."""
    import json

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from runner.events import Checkpoint, Eval, Finished, LogLine, Metric, Started

    c = output.console()
    progress = Progress(TextColumn("[bold]train[/]"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.fields[info]}"), console=c, transient=False, disable=as_json)
    task = None
    finished = None
    with progress:
        for ev in events:
            if as_json:
                print(json.dumps({"type": type(ev).__name__, **{k: v for k, v in ev.__dict__.items() if k != "diagnosis"},
                                  **({"diagnosis": ev.diagnosis.__dict__} if getattr(ev, "diagnosis", None) else {})},
                                 default=str), flush=True)
            if isinstance(ev, Started):
                task = progress.add_task("train", total=ev.total_steps, completed=ev.start_step, info="")
            elif isinstance(ev, Metric) and task is not None:
                v = ev.values
                mem = f" · mem {v['mem_reserved_gib']:.1f} GiB" if "mem_reserved_gib" in v else ""
                progress.update(task, completed=ev.step,
                                info=f"loss {v.get('loss', float('nan')):.4f} · {v.get('tokens_per_s', 0):,.0f} tok/s{mem}")
            elif isinstance(ev, Eval) and not as_json:
                progress.console.print(f"step {ev.step}: eval loss {ev.eval_loss:.4f}")
            elif isinstance(ev, Checkpoint) and not as_json:
                progress.console.print(f"step {ev.step}: checkpoint {output.esc(ev.path)} ({output.esc(ev.reason)})")
            elif isinstance(ev, LogLine) and not as_json and ev.text.strip():
                progress.console.print(f"[dim]{output.esc(ev.text)}[/]")
            elif isinstance(ev, Finished):
                finished = ev
    if finished is None:
        return 1
    if not as_json:
        colour = {"succeeded": "green", "interrupted": "yellow"}.get(finished.state, "red")
        c.print(f"[{colour}]{finished.state}[/] at step {finished.last_step} (exit code {finished.exit_code})")
        if finished.output:
            c.print(f"output: {output.esc(finished.output)}")
        if finished.diagnosis:
            d = finished.diagnosis
            c.print(f"[bold]{output.esc(d.name)}[/]: {output.esc(d.cause)}")
            for a in d.advice:
                c.print(f"  - {output.esc(a)}")
            c.print(f"[dim]source: {output.esc(d.source)}[/]")
    return finished.exit_code
