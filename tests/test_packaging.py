"""`pip install .` gives an ftplan that finds knowledge/ and templates/ (wheel in a fresh venv)."""

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
    venv = tmp_path / "venv"
    # system site packages provide rich/jinja2/textual; ftplan itself comes only from the wheel
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall",
                          str(wheel)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-2000:]
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "NO_COLOR": "1"}
    where = subprocess.run([str(venv / "bin/python"), "-c", "import planner, sys; print(planner.__file__)"],
                           capture_output=True, text=True, cwd=tmp_path, env=env)
    assert str(venv) in where.stdout, where.stdout + where.stderr
    out = subprocess.run([str(venv / "bin/ftplan"), "estimate", "--model", "Llama-3.2-1B", "--gpu", "L4", "--json"],
                         capture_output=True, text=True, cwd=tmp_path, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["fits"] is True
    render = subprocess.run([str(venv / "bin/ftplan"), "render", "--model", "Llama-3.2-1B", "--data",
                             str(ROOT / "runner/data/instructions.jsonl"), "-o", str(tmp_path / "run"), "--gpu", "L4"],
                            capture_output=True, text=True, cwd=tmp_path, env=env)
    assert render.returncode == 0, render.stderr
    assert (tmp_path / "run" / "train.py").exists()


def test_python_dash_m_planner_works():
    out = subprocess.run([sys.executable, "-m", "planner", "models", "--json"], capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and len(json.loads(out.stdout)) >= 25
