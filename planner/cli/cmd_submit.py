"""ftplan submit: sbatch a run directory's slurm.sbatch, then follow the job like ftplan run."""

from __future__ import annotations

from pathlib import Path

from planner.cli import output
from planner.cli.cmd_run import follow


def add_arguments(p) -> None:
    p.add_argument("run_dir", help="a directory written by ftplan render")
    p.add_argument("--no-follow", action="store_true", help="print the job id and return")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--force", action="store_true", help="start over, deleting earlier outputs of this directory")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="ARG",
                   help="extra sbatch option, e.g. --sbatch-arg=--partition=gpu (repeatable)")
    p.add_argument("--json", action="store_true", help="print events as JSON lines")


def run(args) -> int:
    from runner import slurm

    job_id = slurm.submit(Path(args.run_dir), tuple(args.sbatch_arg), resume=args.resume, force=args.force)
    output.note(f"submitted job {job_id}; follow it later with: ftplan run {args.run_dir}")
    if args.no_follow:
        print(job_id)
        return 0
    return follow(slurm.follow(Path(args.run_dir)), as_json=args.json)
