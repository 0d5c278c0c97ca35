"""Typed events the runner yields; the CLI renders them with Rich, the TUI in a worker."""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Started:
    total_steps: int
    start_step: int
    info: dict


@dataclass(frozen=True)
class Metric:
    step: int
    total_steps: int
    values: dict              # loss, lr, grad_norm, tokens_per_s, step_s, mem_*


@dataclass(frozen=True)
class Eval:
    step: int
    eval_loss: float


@dataclass(frozen=True)
class Checkpoint:
    step: int
    path: str
    reason: str


@dataclass(frozen=True)
class LogLine:
    text: str


@dataclass(frozen=True)
class Diagnosis:
    failure_id: str
    name: str
    cause: str
    advice: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Finished:
    state: str                # succeeded | failed | interrupted
    exit_code: int
    last_step: int
    diagnosis: Diagnosis | None = None
    output: str = ""


def _count(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**53


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)  # nan stays: it is a diagnosis


# What each event the display reads must hold; a line that claims to be one of them and does
# not is shown as text and never trusted.
SHAPES = {"step": {"step": _count}, "eval": {"step": _count, "eval_loss": _number},
          "checkpoint": {"step": _count, "path": lambda v: isinstance(v, str)}}
OPTIONAL = {"total_steps": _count, "start_step": _count, "loss": _number, "tokens_per_s": _number,
            "mem_reserved_gib": _number, "lr": _number}


def parse(line: str) -> dict | None:
    """The script's JSON event on this output line, or None for any other line (including a
    line that names a known event but lacks its fields or holds the wrong types)."""
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        event = json.loads(line)
    except (ValueError, RecursionError):
        return None
    if not isinstance(event, dict) or not isinstance(event.get("event"), str):
        return None
    need = SHAPES.get(event["event"], {})
    if not all(k in event and ok(event[k]) for k, ok in need.items()):
        return None
    if not all(ok(event[k]) for k, ok in OPTIONAL.items() if k in event):
        return None
    return event


def typed(event: dict):
    """The typed event for a script event the display shows, or None (finished, failed, ...)."""
    kind = event.get("event")
    if kind == "start":
        return Started(event.get("total_steps", 0), event.get("start_step", 0), event)
    if kind == "step":
        return Metric(event["step"], event.get("total_steps", 0), event)
    if kind == "eval":
        return Eval(event["step"], event["eval_loss"])
    if kind == "checkpoint":
        return Checkpoint(event["step"], event["path"], event.get("reason", ""))
    return None


def read_line(line: str, metrics: list[dict]):
    """What one line of the script's output shows: a LogLine for text; for a JSON event,
    recorded in `metrics`, its typed event (None for those the display does not show)."""
    event = parse(line)
    if event is None:
        return LogLine(line.rstrip("\n"))
    metrics.append(event)
    return typed(event)
