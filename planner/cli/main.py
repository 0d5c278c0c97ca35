"""Entry point: parse, dispatch, and turn every FtplanError into one line on stderr with
exit code 2. Subcommand modules are imported only when chosen, so `ftplan estimate` never
pays for the runner or the TUI."""

from __future__ import annotations

import argparse
import importlib
import sys

from planner import __version__
from planner.errors import FtplanError

COMMANDS = {
    "estimate": "per-GPU peak memory of a plan, term by term, and whether it fits",
    "recommend": "a complete plan: method, hyperparameters, batch, ZeRO stage, each with its rule",
    "render": "write a run directory: train.py, launch.sh, plan.toml, merge.py",
    "run": "run a rendered directory with live progress, diagnosis and resume (follows a submitted SLURM job)",
    "submit": "hand a rendered directory's slurm.sbatch to SLURM and follow the job",
    "demo": "plan, render and really run a tiny LoRA fine-tune on the CPU (no GPU, no network)",
    "capacity": "the fewest GPUs of each catalog type a plan fits on, with time and cost, cheapest first",
    "gpus": "GPUs detected through NVML, and the catalog",
    "models": "the model catalog",
    "data": "detect a dataset's format, validate every row, report token lengths",
    "checklist": "fine-tune vs RAG vs prompt engineering",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2, no usage dump
        raise FtplanError(f"{message}; see '{self.prog} --help'")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ftplan", description="Plan, size, render and run LLM fine-tuning. No arguments: the terminal wizard.")
    p.add_argument("--version", action="version", version=f"ftplan {__version__}")
    p.add_argument("--verbose", action="store_true", help="show tracebacks for errors")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        _module(name).add_arguments(sp)
    return p


def _module(name: str):
    return importlib.import_module(f"planner.cli.cmd_{name}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in argv
    try:
        if not [a for a in argv if a != "--verbose"]:
            from planner.tui_launch import launch

            return launch()
        args = build_parser().parse_args(argv)
        if args.command is None:
            raise FtplanError("no command given; see 'ftplan --help'")
        return int(_module(args.command).run(args) or 0)
    except FtplanError as e:
        if verbose:
            raise
        print(f"ftplan: error: {' '.join(str(e).split())}", file=sys.stderr)  # always one line
        return e.exit_code
    except BrokenPipeError:
        return 0
    except OSError as e:  # the user's filesystem said no: a path, a permission, a full disk
        if verbose:
            raise
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"ftplan: error: {where}{e.strerror or e}; check the path, its permissions and free space", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ftplan: interrupted", file=sys.stderr)
        return 130

