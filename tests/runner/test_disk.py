"""Disk: the estimate sizes a checkpoint and the run; render keeps fewer checkpoints on a small
disk or refuses; the script keeps the newest K, checks free space before it starts and before
each save, and on a full disk stops with its last complete checkpoint intact."""

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from planner import disk, models, render
from planner.plan import Plan
from runner import process

ROOT = Path(__file__).resolve().parents[2]


def test_checkpoint_and_disk_figures():
    spec = models.resolve("Llama-3.1-8B")
    lora = Plan(model=spec.name)
    full = Plan(model=spec.name, method="full")
    # LoRA: fp32 adapters and two fp32 AdamW states; full: bf16 weights and two bf16 states
    n = 41_943_040
    assert disk.checkpoint_bytes(spec, lora) == n * 4 * 3 + disk.SMALL_FILES_BYTES
    assert disk.checkpoint_bytes(spec, full) == spec.total_params() * 2 * 3 + disk.SMALL_FILES_BYTES
    assert disk.final_model_bytes(spec, full) == spec.total_params() * 2 + disk.SMALL_FILES_BYTES
    assert disk.disk_bytes(spec, full) == 3 * disk.checkpoint_bytes(spec, full) + disk.final_model_bytes(spec, full)
    out = subprocess.run([sys.executable, "-m", "planner", "estimate", "--model", spec.name, "--method", "full", "--gpu", "H200",
                          "--json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    d = json.loads(out)
    assert d["checkpoint_bytes"] == disk.checkpoint_bytes(spec, full) and d["disk_bytes"] == disk.disk_bytes(spec, full)


def test_a_small_disk_keeps_fewer_checkpoints_or_refuses_with_the_figures():
    spec = models.resolve("Llama-3.1-8B")
    full = Plan(model=spec.name, method="full", keep_checkpoints=3)
    ckpt, final = disk.checkpoint_bytes(spec, full), disk.final_model_bytes(spec, full)
    assert disk.fit_to_disk(spec, full, 10 * ckpt) == (full, "")
    assert disk.fit_to_disk(spec, full, 2 * ckpt + final) == (full.with_(keep_checkpoints=1), "")
    plan, warning = disk.fit_to_disk(spec, full, ckpt)
    assert plan.keep_checkpoints == 1 and re.search(r"needs \d+\.\d GiB of disk .* stops before writing", warning)


def _rendered(tmp_path, tiny_model, dataset, run_dir, **plan):
    spec = models.resolve(str(tiny_model))
    data = dataset("alpaca", 60)
    p = Plan(model=str(tiny_model), method="lora", batch=2, seq_len=160, precision="fp32", eval_fraction=0.0, rank=4,
             alpha=8, **plan)
    render.render(p, spec, run_dir, str(tiny_model), str(data), "alpaca", command="pytest")
    return run_dir


def test_the_script_keeps_the_newest_checkpoints(tmp_path, tiny_model, dataset):
    pytest.importorskip("peft")
    run_dir = _rendered(tmp_path, tiny_model, dataset, tmp_path / "run", max_steps=5, save_steps=1, keep_checkpoints=2)
    assert list(process.run(run_dir))[-1].state == "succeeded", (run_dir / "stderr.log").read_text()[-2000:]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000004", "step-000005"]


def test_a_full_disk_at_a_save_stops_with_the_last_checkpoint_intact(tmp_path, tiny_model, dataset, monkeypatch):
    torch = pytest.importorskip("torch")
    run_dir = _rendered(tmp_path, tiny_model, dataset, tmp_path / "run", max_steps=5, save_steps=1)
    spec_ = importlib.util.spec_from_file_location("rendered_train", run_dir / "train.py")
    train = importlib.util.module_from_spec(spec_)
    spec_.loader.exec_module(train)
    model = torch.nn.Linear(4, 4)
    optimizer = torch.optim.AdamW(model.parameters())
    train.save_checkpoint(model, optimizer, 1, "periodic")
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(train.shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 1000, 1000))
    with pytest.raises(SystemExit) as stop:
        train.save_checkpoint(model, optimizer, 2, "periodic")
    assert stop.value.code == 4
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000001"]  # intact, nothing half-written
    assert (run_dir / "checkpoints" / "step-000001" / "trainable.pt").exists()
    failed = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert failed["event"] == "failed" and "not enough disk space" in failed["reason"]

    def refuse(obj, f, *a, **k):  # the disk fills while the checkpoint is written
        raise RuntimeError("[enforce fail at inline_container.cc:626] PytorchStreamWriter failed writing file data/0")

    monkeypatch.undo()
    monkeypatch.setattr(train.torch, "save", refuse)
    with pytest.raises(SystemExit):
        train.save_checkpoint(model, optimizer, 3, "periodic")
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["step-000001"]


def test_a_run_on_a_nearly_full_filesystem_is_refused_up_front(tmp_path, tiny_model, dataset):
    """A real small filesystem (tmpfs; skipped where mounting is not allowed)."""
    pytest.importorskip("peft")
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)],
                                                       capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    try:
        run_dir = _rendered(tmp_path, tiny_model, dataset, mount / "run", max_steps=2, save_steps=1)
        free = shutil.disk_usage(mount).free
        (mount / "filler").write_bytes(b"\0" * (free - 512 * 1024))  # leave half a megabyte
        done = list(process.run(run_dir))[-1]
        assert done.state == "failed" and done.exit_code == 4
        assert done.diagnosis.failure_id == "disk-full"
        assert not (run_dir / "checkpoints").exists() or not any((run_dir / "checkpoints").iterdir())
    finally:
        subprocess.run(["umount", str(mount)])
