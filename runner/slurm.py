"""Hand a run directory's slurm.sbatch to SLURM and follow the job through its log.

The batch script writes slurm-<job id>.out in the run directory; rank 0's JSON lines in it
are the same events `ftplan run` shows for a local run. status.json records the job id."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from planner.errors import RunError
from runner import diagnose, status
from runner.events import Finished, Metric, read_line

DONE_STATES = {"COMPLETED": "succeeded", "FAILED": "failed", "CANCELLED": "interrupted", "TIMEOUT": "failed",
               "OUT_OF_MEMORY": "failed", "NODE_FAIL": "failed", "PREEMPTED": "interrupted", "BOOT_FAIL": "failed",
               "DEADLINE": "failed"}


def _slurm(cmd: list[str], what: str) -> str:
    if shutil.which(cmd[0]) is None:
        raise RunError(f"{cmd[0]} not found: {what} needs SLURM's commands on PATH (run on a login node)")
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr or proc.stdout or "no output").strip().splitlines()[-1]
        raise RunError(f"{cmd[0]} refused the job: {last}")
    return proc.stdout


def submit(run_dir: str | Path, sbatch_args: tuple[str, ...] = (), resume: bool = False, force: bool = False) -> str:
    """sbatch the run directory's slurm.sbatch (with --resume, continuing from the last
    checkpoint); return the job id. A directory with earlier outputs is refused as ftplan run
    refuses it, unless --resume or --force (which clears them first)."""
    from runner import process

    run_dir = Path(run_dir).resolve()
    script = run_dir / "slurm.sbatch"
    if not script.exists():
        raise RunError(f"{run_dir} has no slurm.sbatch; render it again with this ftplan (ftplan render --plan {run_dir}/plan.toml -o DIR)")
    earlier = status.read(run_dir)
    if earlier.get("state") == "submitted" and _job_state(earlier.get("job_id")) not in (None, *DONE_STATES):
        raise RunError(f"{run_dir} already has job {earlier['job_id']} queued or running; cancel it with scancel first")
    process.check_dir(run_dir, resume, force)
    if force and not resume:
        process.clear_outputs(run_dir)
    job_id = _slurm(["sbatch", "--parsable", "--chdir", str(run_dir), *sbatch_args, str(script),
                     *(["--resume"] if resume else [])], "ftplan submit")
    job_id = job_id.strip().split(";")[0]
    status.write(run_dir, state="submitted", job_id=job_id, log=str(run_dir / f"slurm-{job_id}.out"),
                 started=status.now(), ended=None, exit_code=None, runner_pid=None)
    return job_id


SCONTROL_TIMEOUT_S = 30   # one scontrol call
UNANSWERED_S = 120        # no state from SLURM and no log: the job is not coming


def _job_state(job_id: str | None) -> str | None:
    """SLURM's state of the job (PENDING, RUNNING, COMPLETED, ...), or None once it has left
    the controller's memory."""
    m = re.search(r"JobState=(\w+)", _scontrol(job_id))
    return m.group(1) if m else None


def _scontrol(job_id: str | None) -> str:
    """`scontrol show job`'s answer; empty when SLURM is absent or does not answer in time."""
    if not job_id or shutil.which("scontrol") is None:
        return ""
    try:
        return subprocess.run(["scontrol", "show", "job", str(job_id)], capture_output=True, text=True,
                              timeout=SCONTROL_TIMEOUT_S).stdout
    except (subprocess.TimeoutExpired, OSError):
        return ""


def _exit_code(job_id: str) -> int | None:
    m = re.search(r"\bExitCode=(\d+):(\d+)", _scontrol(job_id))
    return int(m.group(1)) if m else None


def follow(run_dir: str | Path, poll_s: float = 1.0, timeout_s: float | None = None,
           silent_s: float | None = None) -> Iterator:
    """Yield the job's events from its log until SLURM says it ended; the last is Finished.
    When the scheduler does not know the job (or does not answer) and it has written no log,
    give up after `silent_s` (UNANSWERED_S) rather than wait for ever."""
    run_dir = Path(run_dir).resolve()
    st = status.read(run_dir)
    job_id = st.get("job_id")
    if isinstance(job_id, bool) or not isinstance(job_id, (str, int)) or not re.fullmatch(r"\d+(_\d+)?", str(job_id)):
        raise RunError(f"{run_dir} has no submitted job; submit it with ftplan submit {run_dir}")
    job_id = str(job_id)
    log = st.get("log")
    log_path = Path(log) if isinstance(log, str) and log else run_dir / f"slurm-{job_id}.out"
    silent_s = UNANSWERED_S if silent_s is None else silent_s
    metrics: list[dict] = []
    last_step, offset, buffer = 0, 0, ""
    start = time.monotonic()
    state = _job_state(job_id)
    while True:
        if log_path.exists():
            with open(log_path, errors="replace") as f:
                f.seek(offset)
                chunk = f.read()
                offset = f.tell()
            buffer += chunk
            *lines, buffer = buffer.split("\n")
            for line in filter(str.strip, lines):
                shown = read_line(line, metrics)
                if isinstance(shown, Metric):
                    last_step = shown.step
                if shown is not None:
                    yield shown
        if state in DONE_STATES or state is None and log_path.exists() and any(
                m.get("event") in ("finished", "failed", "interrupted") for m in metrics):
            break
        if state is None and not log_path.exists() and time.monotonic() - start > silent_s:
            raise RunError(f"SLURM does not know job {job_id} (or does not answer) and it has written no log in "
                           f"{silent_s:.0f} s; check it with squeue/sacct, then ftplan run {run_dir} again")
        if timeout_s is not None and time.monotonic() - start > timeout_s:
            raise RunError(f"job {job_id} still {state} after {timeout_s:.0f} s; follow it later with ftplan run {run_dir}")
        time.sleep(poll_s)
        state = _job_state(job_id)
    code = _exit_code(job_id) if state else None
    if code is None:
        code = 0 if any(m.get("event") == "finished" for m in metrics) else 1
    result = DONE_STATES.get(state or "", "succeeded" if code == 0 else "failed")
    log_text = log_path.read_text(errors="replace")[-200_000:] if log_path.exists() else ""
    diag = diagnose.diagnose(run_dir, code, log_text, metrics) if result != "succeeded" else None
    finished = next((m for m in reversed(metrics) if m.get("event") == "finished"), {})
    status.write(run_dir, state=result, exit_code=code, ended=status.now(), last_step=last_step,
                 diagnosis=diag.__dict__ if diag else None)
    yield Finished(result, code, last_step, diag, finished.get("output", ""))
