"""`pip install .` gives an ftplan that finds knowledge/ and templates/: the wheel installed
into a directory of its own, ahead of everything else on the path, with this interpreter's
dependencies (the same in a virtual environment and in the system Python)."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_installs_into_a_fresh_venv_and_runs(tmp_path):
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "dist"), str(ROOT)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr[-2000:]
    wheel = next((tmp_path / "dist").glob("ftplan-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "planner/_knowledge/models.toml" in names and "planner/_templates/train.py.j2" in names
    assert "runner/data/instructions.jsonl" in names
    assert "planner/tui/app.tcss" in names and "planner/tui/screens/run.py" in names
    target = tmp_path / "site"
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                         capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {"PATH": f"{target / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(target), "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    where = subprocess.run([sys.executable, "-c", "import planner, sys; print(planner.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert str(target) in where.stdout, where.stdout + where.stderr
    ftplan = [sys.executable, str(target / "bin/ftplan")]
    out = subprocess.run([*ftplan, "estimate", "--model", "Llama-3.2-1B", "--gpu", "L4", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fits"] is True
    render = subprocess.run([*ftplan, "render", "--model", "Llama-3.2-1B", "--data",
                             str(ROOT / "runner/data/instructions.jsonl"), "-o", str(tmp_path / "run"), "--gpu", "L4"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "run" / "train.py").exists()


def test_python_dash_m_planner_works():
    out = subprocess.run([sys.executable, "-m", "planner", "models", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and len(json.loads(out.stdout)) >= 25
