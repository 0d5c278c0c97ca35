"""Run a rendered directory's launch.sh as a subprocess and turn its output into events.

The script's JSON lines (stdout) are the metrics; everything else goes to stdout.log and
stderr.log in the run directory; status.json records the state. Ctrl-C is passed to the
script, which saves a checkpoint and exits 130; so are SIGTERM and SIGHUP (SLURM's time limit
and preemption, systemd, `timeout`, a closed SSH session), and the runner waits for that
checkpoint. One runner per directory: an exclusive lock on run.lock, held (and inherited by
the training process) for the run's life."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from planner import script
from planner.errors import RunError
from runner import diagnose, status
from runner.events import Finished, Metric, read_line

LOCK = "run.lock"
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
OUTPUTS = ("metrics.jsonl", "stdout.log", "stderr.log", "checkpoints", "output", "status.json")


def check_dir(run_dir: Path, resume: bool, force: bool) -> None:
    """Refuse, before anything is written, a directory that is not a rendered run, one that is
    running, or one whose earlier outputs would be overwritten without --resume or --force."""
    if not (run_dir / "launch.sh").is_file():
        raise RunError(f"{run_dir} has no launch.sh; render a run directory first (ftplan render -o {run_dir})")
    if status.is_running(run_dir):
        raise RunError(f"{run_dir} is already running (pid {status.read(run_dir).get('runner_pid')}); wait, or stop that run first")
    has_outputs = any((run_dir / name).exists() for name in ("metrics.jsonl", "checkpoints", "output"))
    if resume:
        if not any(any((run_dir / "checkpoints").glob(pattern)) for pattern in script.CHECKPOINT_GLOBS.values()):
            raise RunError(f"{run_dir} has no checkpoint to resume from; run it without --resume")
    elif has_outputs and not force:
        raise RunError(f"{run_dir} already has run outputs; resume with --resume, or pass --force to start over (deletes them)")


def clear_outputs(run_dir: Path) -> None:
    for name in OUTPUTS:
        p = run_dir / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()


def lock(run_dir: Path) -> int:
    """An exclusive lock on the directory's run.lock (fcntl.flock: atomic, and released by the
    kernel when every process holding it has exited), or RunError if another run holds it."""
    if not (run_dir / "launch.sh").is_file():
        raise RunError(f"{run_dir} has no launch.sh; render a run directory first (ftplan render -o {run_dir})")
    # render writes run.lock, so a refused run leaves the directory as it was; one rendered by an
    # older ftplan gets it now
    fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunError(f"{run_dir} is already running (another ftplan run holds {LOCK}); wait, or stop that run first") from None
    return fd


def _forward_signals(proc: subprocess.Popen, received: list[int]) -> dict:
    """While a run is followed, SIGINT, SIGTERM and SIGHUP go to the script's process group
    (also when the shell that started us in the background set SIGINT to be ignored); the
    runner keeps reading until the script has saved and exited. Only the main thread can set
    handlers: elsewhere (the wizard's worker) the app stops runs itself."""
    def forward(signum, frame):
        if not received:
            _interrupt(proc, signum)
        received.append(signum)

    previous = {}
    try:
        for s in FORWARDED:
            previous[s] = signal.signal(s, forward)
    except ValueError:
        pass
    return previous


def run(run_dir: str | Path, resume: bool = False, force: bool = False, env: dict | None = None) -> Iterator:
    """Yield events until the script ends; the last is Finished. Interrupting the runner
    (Ctrl-C, SIGTERM, SIGHUP) forwards the signal to the script, waits for its checkpoint and
    still ends with Finished."""
    run_dir = Path(run_dir).resolve()
    fd = lock(run_dir)
    try:
        yield from _run_locked(run_dir, resume, force, env, fd)
    finally:
        os.close(fd)


def _run_locked(run_dir: Path, resume: bool, force: bool, env: dict | None, lock_fd: int) -> Iterator:
    check_dir(run_dir, resume, force)
    if force and not resume:
        clear_outputs(run_dir)
    cmd = ["bash", str(run_dir / "launch.sh")] + (["--resume"] if resume else [])
    child_env = {**os.environ, "PYTHON": sys.executable, "PYTHONUNBUFFERED": "1", **(env or {})}
    stdout_log = open(run_dir / "stdout.log", "a")
    stderr_log = open(run_dir / "stderr.log", "a")
    proc = subprocess.Popen(cmd, cwd=run_dir, stdout=subprocess.PIPE, stderr=stderr_log, text=True,
                            env=child_env, start_new_session=True, pass_fds=(lock_fd,))
    received: list[int] = []
    previous = _forward_signals(proc, received)
    status.write(run_dir, state="running", runner_pid=os.getpid(), pid=proc.pid, started=status.now(),
                 ended=None, exit_code=None, resume=resume)
    metrics: list[dict] = []
    last_step = 0
    try:
        # a signal to the runner goes to the script (_forward_signals): it checkpoints, logs
        # and exits, and this loop reads on to the end
        for line in proc.stdout:
            stdout_log.write(line)
            stdout_log.flush()
            shown = read_line(line, metrics)
            if isinstance(shown, Metric):
                last_step = shown.step
            if shown is not None:
                yield shown
        proc.wait()
    finally:
        if proc.poll() is None:
            _interrupt(proc)
            proc.wait()
        for s, handler in previous.items():
            signal.signal(s, handler)
        stdout_log.close()
        stderr_log.close()
    code = proc.returncode
    state = "succeeded" if code == 0 else ("interrupted" if code == 130 or received else "failed")
    log_text = (run_dir / "stderr.log").read_text(errors="replace")[-200_000:]
    diag = diagnose.diagnose(run_dir, code, log_text, metrics) if state != "succeeded" else None
    if state == "interrupted" and diag and diag.failure_id == "unknown":
        diag = None
    finished = next((m for m in reversed(metrics) if m.get("event") == "finished"), {})
    status.write(run_dir, state=state, exit_code=code, ended=status.now(), last_step=last_step,
                 diagnosis=diag.__dict__ if diag else None)
    yield Finished(state, code, last_step, diag, finished.get("output", ""))


def _interrupt(proc: subprocess.Popen, signum: int = signal.SIGINT) -> None:
    """The signal to the script's process group; it checkpoints and exits. SIGKILL after 10 min."""
    try:
        os.killpg(proc.pid, signum)
    except ProcessLookupError:
        return
    def _kill_later():
        try:
            proc.wait(timeout=600)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    threading.Thread(target=_kill_later, daemon=True).start()
