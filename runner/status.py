"""status.json of a run directory: state, pid, exit code, start and end times."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

STATES = ("running", "submitted", "succeeded", "failed", "interrupted")


def path(run_dir: Path) -> Path:
    return Path(run_dir) / "status.json"


def read(run_dir: Path) -> dict:
    p = path(run_dir)
    if not p.is_file():
        return {}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # unreadable, not UTF-8, not JSON: never trusted
        return {}
    if not isinstance(data, dict):
        return {}
    if data.get("state") == "running" and not _alive(data.get("runner_pid")):
        # the runner died without writing its end (SIGKILL, a lost node): what it left is an
        # interrupted run, which --resume continues from its last checkpoint
        data = {**data, "state": "interrupted", "runner_lost": True}
    return data


def write(run_dir: Path, **fields) -> dict:
    data = {**read(run_dir), **fields}
    p = path(run_dir)
    tmp = p.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, p)  # readers never see half a file
    return data


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def is_running(run_dir: Path) -> bool:
    """A live process owns this directory (a stale 'running' from a crash does not count)."""
    return read(run_dir).get("state") == "running"


def _alive(pid) -> bool:
    if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**31:
        return False  # a pid that is no process's (0 and negatives would address process groups)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return True
