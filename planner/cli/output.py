"""Print command results: JSON on --json, else Rich tables. NO_COLOR is honoured by Rich."""

from __future__ import annotations

import json
import sys


def gib(b: int | float | None) -> str:
    return "-" if b is None else f"{b / 2**30:,.2f} GiB"


def print_json(obj) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


def console():
    from rich.console import Console

    return Console(highlight=False)


def note(text: str) -> None:
    """A one-line notice on stderr, so piped stdout stays clean."""
    if text:
        print(f"ftplan: {text}", file=sys.stderr)


def esc(text) -> str:
    """A user-provided string made safe for Rich markup."""
    from rich.markup import escape

    return escape(str(text))


def print_estimate(est) -> None:
    from rich.table import Table

    c = console()
    p = est.plan
    loss = "TRL" if p.trainer == "trl" else f"loss {p.loss}"
    title = (f"{esc(est.model.name)} · {p.method} · {p.task} · batch {p.batch} x seq {p.seq_len}"
             f"{' · ckpt' if p.grad_ckpt else ''} · {p.optim} · {loss}"
             f"{f' · ZeRO-{p.zero}' if p.zero else ''}{f' · {p.world_size} GPUs' if p.world_size > 1 else ''}")
    t = Table(title=title, title_justify="left")
    t.add_column("term")
    t.add_column("per GPU", justify="right")
    t.add_column("how")
    for term in est.terms:
        if term.at_peak:
            t.add_row(term.name, gib(term.bytes), esc(term.detail))
        else:
            t.add_row(f"[dim]{term.name}[/]", f"[dim]({gib(term.bytes)})[/]", f"[dim]{esc(term.detail)}[/]")
    t.add_row("[bold]total[/]", f"[bold]{gib(est.total_bytes)}[/]",
              f"peak as nvidia-smi shows it (reserved + context), {est.peak_phase}")
    c.print(t)
    c.print(f"trainable {est.trainable_params:,} of {est.model.total_params():,} params")
    c.print(f"evidence: {esc(est.evidence.line())}")
    c.print(f"host RAM: {gib(est.host_ram_bytes)} per training process (RSS: the process, the checkpoint while it "
            f"loads{', offloaded states' if est.plan.offload != 'none' else ''})")
    if est.gpu is None:
        c.print("no GPU given or detected: add --gpu NAME to check the fit")
        return
    c.print(verdict_line(est))


def verdict_line(est) -> str:
    """'H100-SXM (79.65 GiB): fits, headroom 12.00 GiB; largest micro-batch that fits: 8' (markup)."""
    verdict = "[green]fits[/]" if est.fits else "[red]does not fit[/]"
    top = f"; largest micro-batch that fits: {est.max_micro_batch}" if est.max_micro_batch is not None else ""
    return f"{esc(est.gpu.name)} ({gib(est.gpu.memory_bytes)}): {verdict}, headroom {gib(est.headroom_bytes)}{top}"


def print_fixes(fixes) -> None:
    if not fixes:
        return
    c = console()
    c.print("changes that fit:")
    for i, f in enumerate(fixes, 1):
        c.print(f"  [{i}] {esc(f.describe())}", markup=True)


def print_report(report) -> None:
    """An estimate, its fixes when it does not fit, and its speed."""
    print_estimate(report.estimate)
    from planner import disk

    est = report.estimate
    console().print(f"disk: {gib(disk.checkpoint_bytes(est.model, est.plan))} a checkpoint, {est.plan.keep_checkpoints} kept; "
                    f"{gib(disk.disk_bytes(est.model, est.plan))} with the final model")
    if report.estimate.gpu is not None:
        print_fixes(report.fixes)
        print_speed(report.speed, report.dataset)


def print_recommendations(advice, dataset=None, explain: bool = False) -> None:
    """The summary, every setting with its rule, the fit verdict and the speed: compact enough
    for an 80 x 24 terminal; `explain` adds each rule's reason and source, the memory terms and
    the step time's terms."""
    from rich.table import Table

    c = console()
    c.print(f"[bold]{esc(advice.summary)}[/]")
    if explain:
        t = Table(title=f"Recommended plan for {esc(advice.plan.model)}", title_justify="left")
        for col in ("setting", "value", "rule", "why", "source"):
            t.add_column(col, overflow="fold")
        for r in advice.recommendations:
            t.add_row(*(esc(v) for v in (r.setting, r.value, r.rule_id, r.why, r.source)))
        c.print(t)
        for r in advice.recommendations:
            for a in r.also_considered:
                c.print(f"[dim]{r.setting}: also considered {esc(a)}[/]")
    else:
        # two settings a line: "rank = 16 (rank.instruction)"
        grid = Table.grid(padding=(0, 2))
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        grid.add_column(no_wrap=True, overflow="ellipsis", ratio=1)
        cells = [f"{r.setting} = [bold]{esc(advice.plan.targets if r.setting == 'targets' else r.value)}[/] "
                 f"[dim]({esc(r.rule_id)})[/]" for r in advice.recommendations]
        half = (len(cells) + 1) // 2
        for left, right in zip(cells[:half], cells[half:] + [""]):
            grid.add_row(left, right)
        c.print(grid)
    for n in advice.notes:
        c.print(f"note: {esc(n)}")
    if explain:
        print_estimate(advice.estimate)
        print_speed(advice.speed, dataset)
        return
    if advice.estimate.gpu is not None:
        c.print(verdict_line(advice.estimate))
    print_speed_line(advice.speed, dataset)
    c.print("[dim]--explain: each rule's reason and source, the memory and step-time terms[/]")


def print_speed_line(sp, dataset=None) -> None:
    """Tokens/s, step time and MFU; total time and cost with what the dataset's size rests on."""
    c = console()
    if sp is None:
        c.print("speed: no datasheet figures for this GPU; give --gpu NAME for time and cost")
        return
    c.print(f"speed: {sp.tokens_per_s:,.0f} tokens/s on {sp.plan.world_size} x {esc(sp.gpu.name)}, "
            f"{sp.step_s:.2f} s/step, MFU {sp.mfu:.0%}")
    if sp.total_s is not None:
        basis = f" (dataset tokens {esc(dataset.basis)})" if dataset is not None else ""
        c.print(f"  {sp.total_steps:,} steps, {duration(sp.total_s)}, ${sp.cost:,.2f} at "
                f"${sp.price_per_hour:.2f}/GPU-hour{basis}")


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def print_speed(sp, dataset=None) -> None:
    """Step time as named terms, then tokens/s, MFU, total time and cost, and what the
    dataset's size rests on."""
    c = console()
    if sp is None:
        c.print("speed: this GPU has no datasheet figures in the catalog; give --gpu NAME for time and cost")
        return
    parts = ", ".join(f"{t.detail} {t.seconds * 1000:,.0f} ms" for t in sorted(sp.terms, key=lambda t: -t.seconds))
    c.print(f"speed on {esc(sp.gpu.name)}{' (compiled layers)' if sp.as_dict()['compiled'] else ''}: "
            f"{sp.step_s:.3f} s/step = {parts}")
    c.print(f"  {sp.tokens_per_s:,.0f} tokens/s over {sp.plan.world_size} GPU(s), MFU {sp.mfu:.0%} of "
            f"{sp.gpu.bf16_tflops:,.0f} TFLOP/s {sp.gpu.half_precision} (model fitted to H100 runs of our scripts)")
    if sp.total_s is not None:
        c.print(f"  {sp.dataset_tokens:,} tokens x {sp.epochs:g} epochs = {sp.total_steps:,} steps, "
                f"{duration(sp.total_s)}, ${sp.cost:,.2f} at ${sp.price_per_hour:.2f}/GPU-hour")
        if dataset is not None:
            c.print(f"  dataset tokens {esc(dataset.basis)}")
    else:
        c.print("  add --dataset-tokens N (or --data FILE) for total time and cost")
