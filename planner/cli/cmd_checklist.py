"""ftplan checklist: fine-tune vs RAG vs prompt engineering from yes/no answers."""

from __future__ import annotations

from planner import advisor
from planner.cli import output
from planner.errors import FtplanError


def add_arguments(p) -> None:
    p.add_argument("--yes", nargs="+", action="extend", default=[], metavar="ID",
                   help="question ids answered yes (see the list); repeatable")
    p.add_argument("--json", action="store_true")


def run(args) -> int:
    qs = advisor.questions()
    ids = {q["id"] for q in qs}
    bad = [a for a in args.yes if a not in ids]
    if bad:
        raise FtplanError(f"unknown checklist question {bad[0]!r}; ids are: {', '.join(sorted(ids))}")
    v = advisor.verdict({q["id"]: q["id"] in args.yes for q in qs})
    if args.json:
        output.print_json({"questions": qs, "verdict": v.as_dict()})
        return 0
    c = output.console()
    for q in qs:
        c.print(f"[{'x' if q['id'] in args.yes else ' '}] {q['id']:18s} {q['text']}")
    c.print(f"\nVerdict: [bold]{v.name}[/]")
    for r in v.reasons:
        c.print(f"  - {r}")
    if v.instead:
        c.print(f"Instead: {v.instead}")
    c.print(f"[dim]source: {v.source}[/]")
    return 0
