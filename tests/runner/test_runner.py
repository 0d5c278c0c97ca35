"""Runner behaviour: refusals, status, diagnosis, Ctrl-C with checkpoint and resume."""

import os
import signal
from pathlib import Path

import pytest

from planner import models, render
from planner.errors import RunError
from planner.plan import Plan
from runner import diagnose, process, status
from runner.events import Finished, Metric


def fake_run_dir(tmp_path, script: str) -> Path:
    """A run directory whose launch.sh runs `script` (a Python body) instead of training."""
    d = tmp_path / "run"
    d.mkdir()
    (d / "train.py").write_text(script)
    (d / "launch.sh").write_text('#!/usr/bin/env bash\ncd "$(dirname "$0")"\nexec "${PYTHON:-python3}" train.py "$@"\n')
    (d / "plan.toml").write_text('[plan]\nmodel = "Llama-3.1-8B"\nmethod = "lora"\nbatch = 8\nseq_len = 4096\ngpu = "L4"\n')
    return d


def test_events_status_and_logs(tmp_path):
    d = fake_run_dir(tmp_path, (
        "import json\nprint('hello')\n"
        "print(json.dumps({'event': 'start', 'total_steps': 2, 'start_step': 0}))\n"
        "for s in (1, 2): print(json.dumps({'event': 'step', 'step': s, 'total_steps': 2, 'loss': 1.0 / s}))\n"
        "print(json.dumps({'event': 'finished', 'step': 2, 'output': 'out'}))\n"))
    events = list(process.run(d))
    assert [e.step for e in events if isinstance(e, Metric)] == [1, 2]
    assert events[-1].state == "succeeded" and events[-1].output == "out"
    st = status.read(d)
    assert st["state"] == "succeeded" and st["exit_code"] == 0 and st["started"] and st["ended"]
    assert "hello" in (d / "stdout.log").read_text()


def test_outputs_are_not_overwritten_without_force(tmp_path):
    d = fake_run_dir(tmp_path, "print('x')\n")
    list(process.run(d))
    (d / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(RunError, match="--force"):
        list(process.run(d))
    assert list(process.run(d, force=True))[-1].state == "succeeded"
    assert not (d / "metrics.jsonl").exists()


def test_a_second_run_on_a_running_directory_is_refused(tmp_path):
    d = fake_run_dir(tmp_path, "import time\ntime.sleep(1)\n")
    status.write(d, state="running", runner_pid=os.getpid())
    with pytest.raises(RunError, match="already running"):
        list(process.run(d))
    status.write(d, state="running", runner_pid=999_999_999)  # stale: its process is gone
    assert list(process.run(d))[-1].state == "succeeded"


def test_resume_needs_a_checkpoint(tmp_path):
    d = fake_run_dir(tmp_path, "print('x')\n")
    with pytest.raises(RunError, match="no checkpoint"):
        list(process.run(d, resume=True))


def test_oom_is_diagnosed_with_changes_the_estimator_says_fit(tmp_path):
    d = fake_run_dir(tmp_path, "import sys\nsys.stderr.write('torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB\\n')\nsys.exit(1)\n")
    done = list(process.run(d))[-1]
    assert done.state == "failed" and done.exit_code == 1
    assert done.diagnosis.failure_id == "cuda-oom"
    advice = " ".join(done.diagnosis.advice)
    assert "--batch" in advice and "GiB of" in advice
    assert status.read(d)["diagnosis"]["failure_id"] == "cuda-oom"


def test_missing_package_gives_the_install_command(tmp_path):
    d = fake_run_dir(tmp_path, "import bitsandbytes_not_installed_here\n")
    done = list(process.run(d))[-1]
    assert done.diagnosis.failure_id == "missing-package"
    assert done.diagnosis.advice == ("pip install bitsandbytes_not_installed_here",)


def test_nan_loss_gets_the_failure_tables_advice(tmp_path):
    d = fake_run_dir(tmp_path, (
        "import json, sys\n"
        "print(json.dumps({'event': 'step', 'step': 1, 'total_steps': 3, 'loss': float('nan')}))\nsys.exit(3)\n"))
    done = list(process.run(d))[-1]
    assert done.exit_code == 3 and done.diagnosis.failure_id == "nan-loss" and "bf16" in done.diagnosis.advice[0]


def test_metric_signals():
    steps = [{"event": "step", "loss": x} for x in (2.0, 1.5, 1.0, 0.9, 4.5)]
    assert diagnose.metric_signal(steps) == "loss_spike"
    assert diagnose.metric_signal(steps[:4]) is None


def test_ctrl_c_saves_a_checkpoint_and_resume_continues(tmp_path, tiny_model, dataset):
    pytest.importorskip("peft")
    spec = models.resolve(str(tiny_model))
    data = dataset("alpaca", 160)
    plan = Plan(model=str(tiny_model), method="lora", batch=2, seq_len=160, precision="fp32", max_steps=400,
                save_steps=1000, eval_fraction=0.0, rank=4, alpha=8)
    run_dir = tmp_path / "run"
    render.render(plan, spec, run_dir, str(tiny_model), str(data), "alpaca", command="pytest")
    gen = process.run(run_dir)
    events = []
    for ev in gen:
        events.append(ev)
        if isinstance(ev, Metric) and ev.step >= 3:
            os.killpg(int(status.read(run_dir)["pid"]), signal.SIGINT)  # what Ctrl-C does to the script
            break
    events += list(gen)
    done = events[-1]
    assert isinstance(done, Finished) and done.state == "interrupted" and done.exit_code == 130
    saved = sorted((run_dir / "checkpoints").glob("step-*"))
    assert saved and (saved[-1] / "trainable.pt").exists()
    stopped_at = int(saved[-1].name.split("-")[1])
    (run_dir / "train.py").write_text((run_dir / "train.py").read_text().replace("MAX_STEPS = 400", f"MAX_STEPS = {stopped_at + 2}"))
    resumed = list(process.run(run_dir, resume=True))
    assert resumed[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-2000:]
    assert [e.step for e in resumed if isinstance(e, Metric)] == [stopped_at + 1, stopped_at + 2]


@pytest.mark.parametrize("stderr,failure", [
    ("[rank0]: RuntimeError: expected mat1 and mat2 to have the same dtype, but got: c10::BFloat16 != float", "zero3-dtype"),
    ("[rank1]:[E] Watchdog caught collective operation timeout: WorkNCCL(SeqNum=5, OpType=ALLREDUCE)", "collective-timeout"),
    ("torch.distributed.elastic.rendezvous.api.RendezvousTimeoutError", "rendezvous"),
    ("ValueError: FooForCausalLM does not support an attention implementation through "
     "torch.nn.functional.scaled_dot_product_attention yet.", "attention-unsupported"),
    ("ValueError: The repository ./m contains custom code which must be executed to correctly load the model.", "remote-code"),
    ("RuntimeError: [enforce fail at inline_container.cc:626] . PytorchStreamWriter failed writing file data/3: "
     "file write failed", "disk-full"),
    ("OSError: [Errno 28] No space left on device", "disk-full"),
])
def test_distributed_failures_are_diagnosed(tmp_path, stderr, failure):
    d = fake_run_dir(tmp_path, f"import sys\nprint({stderr!r}, file=sys.stderr)\nsys.exit(1)\n")
    done = list(process.run(d))[-1]
    assert done.diagnosis.failure_id == failure and done.diagnosis.advice[0]


def test_an_unknown_failure_under_torchrun_names_the_workers_error_not_torchruns_summary(tmp_path):
    d = fake_run_dir(tmp_path, (
        "import sys\n"
        "print('[rank0]: ValueError: the dataset has no rows', file=sys.stderr)\n"
        "print('torch.distributed.elastic.multiprocessing.errors.ChildFailedError:', file=sys.stderr)\n"
        "print('============================================================', file=sys.stderr)\n"
        "sys.exit(1)\n"))
    done = list(process.run(d))[-1]
    assert done.diagnosis.failure_id == "unknown" and "the dataset has no rows" in done.diagnosis.cause
