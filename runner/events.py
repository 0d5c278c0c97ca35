"""Typed events the runner yields; the CLI renders them with Rich, the TUI in a worker."""

from __future__ import annotations

from dataclasses import dataclass, field


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
