"""Training that holds: a signal to the runner stops the run with a checkpoint and --resume
continues it; one runner per directory; a dead runner reads as interrupted; resume checks what
it loads; a relative --model path still trains."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from planner import models, render
from planner.plan import Plan
from runner import process, status

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("peft")


def _ftplan(*args, cwd=ROOT, **kw):
    return subprocess.Popen([sys.executable, "-m", "planner", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, **kw)


def _steps(run_dir):
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["step"] for line in lines if json.loads(line).get("event") == "step"]


def _tiny_run(tmp_path, tiny_model, dataset, max_steps):
    spec = models.resolve(str(tiny_model))
    data = dataset("alpaca", 160)
    plan = Plan(model=str(tiny_model), method="lora", batch=2, seq_len=160, precision="fp32", max_steps=max_steps,
                save_steps=1000, eval_fraction=0.0, rank=4, alpha=8)
    run_dir = tmp_path / "run"
    render.render(plan, spec, run_dir, str(tiny_model), str(data), "alpaca", command="pytest")
    return run_dir


@pytest.mark.parametrize("signum,ignored", [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGINT, True)],
                         ids=["SIGTERM", "SIGHUP", "SIGINT-ignored-by-the-shell"])
def test_a_signal_to_the_runner_checkpoints_and_resume_reaches_the_end(tmp_path, tiny_model, dataset, signum, ignored,
                                                                       resume_to_the_end):
    run_dir = _tiny_run(tmp_path, tiny_model, dataset, max_steps=400)

    def background():  # what a shell does to a job it starts with &: SIGINT ignored
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)

    runner = _ftplan("run", str(run_dir), "--json", start_new_session=True, preexec_fn=background)
    deadline = time.time() + 120
    while time.time() < deadline and not ((run_dir / "metrics.jsonl").exists() and len(_steps(run_dir)) >= 2):
        time.sleep(0.2)
    os.kill(runner.pid, signum)  # the runner only, as SLURM, systemd or a closed terminal would
    out, err = runner.communicate(timeout=120)
    assert runner.returncode == 130, err[-2000:]
    st = status.read(run_dir)
    assert st["state"] == "interrupted" and not st.get("runner_lost")
    saved = sorted((run_dir / "checkpoints").glob("step-*"))
    assert saved, err[-2000:]
    stopped = int(saved[-1].name.split("-")[1])
    assert stopped == _steps(run_dir)[-1]  # the checkpoint is at the step the run reached
    resume_to_the_end(run_dir, stopped)


def test_two_runners_started_together_exactly_one_trains(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    (d / "train.py").write_text(
        "import json, time\nprint(json.dumps({'event': 'start', 'total_steps': 3, 'start_step': 0}))\n"
        "for s in (1, 2, 3):\n    time.sleep(0.5)\n"
        "    line = json.dumps({'event': 'step', 'step': s, 'total_steps': 3, 'loss': 1.0})\n"
        "    print(line, flush=True)\n    open('metrics.jsonl', 'a').write(line + '\\n')\n")
    (d / "launch.sh").write_text('#!/usr/bin/env bash\ncd "$(dirname "$0")"\nexec "${PYTHON:-python3}" train.py "$@"\n')
    runners = [_ftplan("run", str(d), "--json") for _ in range(2)]
    results = [r.communicate(timeout=60) for r in runners]
    codes = sorted(r.returncode for r in runners)
    assert codes == [0, 2], results
    refused = next(err for (out, err), r in zip(results, runners) if r.returncode == 2)
    assert "already running" in refused and "Traceback" not in refused
    assert _steps(d) == [1, 2, 3]


def test_a_runner_that_died_leaves_a_run_that_reads_as_interrupted(tmp_path):
    d = tmp_path / "run"
    d.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    status.write(d, state="running", runner_pid=dead.pid, pid=dead.pid)
    st = status.read(d)
    assert st["state"] == "interrupted" and st["runner_lost"] and not status.is_running(d)


def test_resume_refuses_a_checkpoint_that_does_not_match_the_plan(tmp_path, tiny_model, dataset):
    import torch

    run_dir = _tiny_run(tmp_path, tiny_model, dataset, max_steps=1)
    assert list(process.run(run_dir))[-1].state == "succeeded"
    last = sorted((run_dir / "checkpoints").glob("step-*"))[-1]
    saved = torch.load(last / "trainable.pt")
    saved["not.a.weight.of.this.plan"] = torch.zeros(1)
    torch.save(saved, last / "trainable.pt")
    train = run_dir / "train.py"
    train.write_text(train.read_text().replace("MAX_STEPS = 1", "MAX_STEPS = 2"))
    done = list(process.run(run_dir, resume=True))[-1]
    assert done.state == "failed"
    assert "does not hold this plan's trained weights" in (run_dir / "stderr.log").read_text()


def test_a_relative_model_path_trains_from_anywhere(tmp_path, tiny_model, dataset):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copytree(tiny_model, work / "my-model")
    shutil.copy(dataset("alpaca", 40), work / "data.jsonl")
    render_cmd = _ftplan("render", "--model", "./my-model", "--data", "data.jsonl", "--method", "lora", "--batch", "2",
                         "--seq-len", "160", "--max-steps", "1", "--precision", "fp32", "-o", "runs/first", cwd=work)
    out, err = render_cmd.communicate(timeout=120)
    assert render_cmd.returncode == 0, err[-2000:]
    assert f"MODEL_PATH = {str(work / 'my-model')!r}" in (work / "runs/first/train.py").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    runner = _ftplan("run", str(work / "runs/first"), "--json", cwd=elsewhere)
    out, err = runner.communicate(timeout=300)
    assert runner.returncode == 0, (err[-2000:], (work / "runs/first/stderr.log").read_text()[-2000:])
    assert [json.loads(line)["step"] for line in out.splitlines() if json.loads(line)["type"] == "Metric"] == [1]


@pytest.mark.parametrize("trainer", ["ftplan", "trl"])
def test_a_sequence_length_that_cuts_every_answer_stops_before_training_with_the_fix(tmp_path, tiny_model, dataset, trainer):
    if trainer == "trl":
        pytest.importorskip("trl")
    plan = Plan(model=str(tiny_model), method="lora", batch=2, seq_len=16, precision="fp32", max_steps=2, eval_fraction=0.0,
                rank=4, alpha=8, trainer=trainer, loss="chunked" if trainer == "trl" else "standard")
    run_dir = tmp_path / "run"
    render.render(plan, models.resolve(str(tiny_model)), run_dir, str(tiny_model), str(dataset("alpaca", 16)), "alpaca",
                  command="pytest")
    finished = list(process.run(run_dir))[-1]
    assert finished.state == "failed" and finished.diagnosis.failure_id == "no-targets", finished
    assert "--seq-len" in " ".join(finished.diagnosis.advice)
    assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())
